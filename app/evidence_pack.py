"""The partner page's download of the evidence pack: built on click, never on page load."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from app import evidence
from queries import AttemptLog, Scope


def download_button(log: AttemptLog, scope: Scope, start: dt.datetime, end: dt.datetime) -> None:
    """A button downloading `evidence.build_pack` of the integration scope and range the page shows.

    The pack is made in the callable Streamlit runs when the button is
    clicked (a few seconds on a busy day), so showing the page costs nothing.
    """
    integration = str(scope.value)
    st.download_button(
        "Download the evidence pack (zip)",
        data=lambda: evidence.build_pack(log, integration, start, end, secrets=evidence.dashboard_secrets()),
        file_name=f"{evidence.folder_name(integration, start, end)}.zip",
        mime="application/zip",
        on_click="ignore",
        icon=":material/download:",
        help="An HTML report of this page's figures, the CSV behind every chart and redacted error samples, "
        "to share with the partner: no workspace ids, credentials or customer data (docs/evidence.md).",
    )
