"""The viewer of this browser session, resolved from the link's token on every rerun.

Moving between pages clears Streamlit's query parameters, so a token, once
verified, is kept in the session and put back into the URL: the address bar
stays a complete link, and the token is verified again on every rerun, so
an expiry mid-session ends access.
"""

from __future__ import annotations

import streamlit as st

from app.access import LOCAL_VIEWER, AccessDenied, Viewer, resolve_secret, verify

TOKEN_PARAM = "token"
_TOKEN_KEY = "_access_token"
_VIEWER_KEY = "_viewer"


def resolve_viewer() -> Viewer:
    """Who is looking; raises `AccessDenied` when a secret is set and the link grants nothing."""
    secret = resolve_secret()
    if secret is None:
        viewer = LOCAL_VIEWER
    else:
        token: str | None = st.query_params.get(TOKEN_PARAM) or st.session_state.get(_TOKEN_KEY)
        try:
            viewer = verify(token, secret)
        except AccessDenied:
            st.session_state.pop(_TOKEN_KEY, None)
            st.session_state.pop(_VIEWER_KEY, None)
            raise
        st.session_state[_TOKEN_KEY] = token
        if token is not None and st.query_params.get(TOKEN_PARAM) != token:
            st.query_params[TOKEN_PARAM] = token
    st.session_state[_VIEWER_KEY] = viewer
    return viewer


def viewer() -> Viewer:
    """The viewer `resolve_viewer` found in this rerun (pages run after the entry file)."""
    found: Viewer = st.session_state[_VIEWER_KEY]
    return found
