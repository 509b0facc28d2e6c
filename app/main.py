"""The dashboard's entry file: who is looking, and the pages they may see.

Run with `deliverydash dashboard`; every page lives in `app/views/`.
"""

from __future__ import annotations

from typing import NoReturn

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from app import data, session
from app.access import AccessDenied, Viewer, ViewerKind

st.set_page_config(page_title="deliverydash", page_icon=":outbox_tray:", layout="wide")

DAY = st.Page("views/day.py", title="A day of HTTP responses", url_path="day", default=True)
CUSTOMER = st.Page("views/customer.py", title="Customer delivery dashboard", url_path="customer")
PARTNER = st.Page("views/partner.py", title="Partner error rates", url_path="partner")
RETRIES = st.Page("views/retries.py", title="Retries", url_path="retries")
EXPLORER = st.Page("views/explorer.py", title="Error explorer", url_path="explorer")
SQL = st.Page("views/sql_console.py", title="SQL console", url_path="sql")


def pages_for(viewer: Viewer) -> list[StreamlitPage]:
    """The pages a viewer may open; any other is not registered, so not reachable by URL."""
    if viewer.kind is ViewerKind.WORKSPACE:
        return [CUSTOMER, DAY, RETRIES, EXPLORER]
    if viewer.kind is ViewerKind.PARTNER:
        return [PARTNER, DAY, RETRIES]
    return [DAY, CUSTOMER, PARTNER, RETRIES, EXPLORER, SQL]


def refuse(reason: str) -> NoReturn:
    """The page a link that grants nothing gets: why, and no data."""
    st.navigation([st.Page(lambda: None, title="Access refused", url_path="refused")], position="hidden")
    st.title("Access refused")
    st.error(reason)
    st.caption("Links to this dashboard are made with `deliverydash link` by whoever runs it.")
    st.stop()


try:
    viewer = session.resolve_viewer()
except AccessDenied as exc:
    refuse(str(exc))

page = st.navigation(pages_for(viewer))
if viewer.kind is ViewerKind.LOCAL:
    st.sidebar.warning(
        "Access control is off: no dashboard secret is set, so every page and workspace is visible."
    )
else:
    st.sidebar.caption(f"Signed in by link as **{viewer.label}**.")

if not data.days():
    st.title(page.title)
    st.info(
        f"No delivery data yet in `{data.data_dir()}`. Run `make demo`, or "
        "`deliverydash simulate --attempts 2000000`, or start the engine with `deliverydash serve`."
    )
    st.stop()
page.run()
