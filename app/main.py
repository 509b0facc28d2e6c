"""The dashboard's entry file: who is looking, and the pages they may see.

Run with `deliverydash dashboard`; every page lives in `app/views/`.
"""

from __future__ import annotations

from typing import NoReturn

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from app import data, filters, prefetch, session
from app.access import AccessDenied, Viewer, ViewerKind

st.set_page_config(page_title="deliverydash", page_icon=":outbox_tray:", layout="wide")

#: Every page: file in app/, title, URL path.
DAY = ("views/day.py", "A day of HTTP responses", "day")
CUSTOMER = ("views/customer.py", "Customer delivery dashboard", "customer")
PARTNER = ("views/partner.py", "Partner error rates", "partner")
RETRIES = ("views/retries.py", "Retries", "retries")
EXPLORER = ("views/explorer.py", "Error explorer", "explorer")
SQL = ("views/sql_console.py", "SQL console", "sql")


def allowed(viewer: Viewer) -> list[tuple[str, str, str]]:
    """The pages a viewer may open (file, title, URL path), their home page first."""
    if viewer.kind is ViewerKind.WORKSPACE:
        return [CUSTOMER, DAY, RETRIES, EXPLORER]
    if viewer.kind is ViewerKind.PARTNER:
        return [PARTNER, DAY, RETRIES]
    return [DAY, CUSTOMER, PARTNER, RETRIES, EXPLORER, SQL]


def pages_for(viewer: Viewer) -> list[StreamlitPage]:
    """The pages a viewer may open, their home page first; any other is not registered, so not reachable."""
    return [
        st.Page(path, title=title, url_path=url_path, default=index == 0)
        for index, (path, title, url_path) in enumerate(allowed(viewer))
    ]


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

# Every figure of this run from one listing of the log: a page's sections agree with each other.
# The reading ahead of other pages waits while it runs.
data.page_run_begins()
with prefetch.foreground(), data.log().snapshot():
    days = data.days()
    if not days:
        st.title(page.title)
        st.info(
            f"No delivery data yet in `{data.log_location()}`. Run `make demo`, or "
            "`deliverydash simulate --attempts 2000000`, or start the engine with `deliverydash serve`."
        )
        st.stop()
    console = page.url_path == SQL[2]
    filters.select_time_range(days, disabled=console)
    # The console reads every partition; a page, those of its range.
    shown = None if console else filters.time_range()
    if shown is not None:
        prefetch.showing(*shown)
    if out_of_step := data.rollups_out_of_step(*(shown or (None, None))):
        files = "1 file" if out_of_step == 1 else f"{out_of_step:,} files"
        st.warning(
            f"The rollups are out of step with the attempt log ({files}), so figures may be incomplete. "
            "Run `deliverydash repair` to mend them."
        )
    try:
        page.run()
    finally:
        # Then the other pages, for the same range (also after `st.stop()` in the page).
        if shown is not None:
            prefetch.schedule(viewer, [url_path for _, _, url_path in allowed(viewer)], *shown)
