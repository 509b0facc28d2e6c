"""The widgets pages share: time range and scope, each bound to a URL query parameter.

Bound widgets (`bind="query-params"`) write their value into the URL and
read it back on load, so a copied link reproduces the view. The scope
pickers only exist for operators: a workspace or partner link has its scope
fixed by the token, and no widget or URL parameter can widen it.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from app import data
from app.access import Viewer, ViewerKind
from queries import Scope

#: The longest range of whole days a page shows (`deliverydash report --days` too).
MAX_DAYS = 31


#: Where `select_time_range` leaves this run's range for the page (`time_range`).
_RANGE_KEY = "_time_range"


def select_time_range(received: list[dt.date], *, disabled: bool = False) -> tuple[dt.datetime, dt.datetime]:
    """Draw the range pickers in the sidebar and return the range picked, as a half-open [start,
    end) in UTC: one day of `received` (`data.days()`, newest first, not empty) and whole hours
    within it, or several whole days ending with the day picked (up to `MAX_DAYS`).

    Called by the entry file (app/main.py) on every run, before the page: a widget's identity
    includes the page that draws it, so pickers drawn by each page reset when the viewer switches
    pages (and a page switch drops the URL's parameters); the entry file's stay. `disabled` on
    pages the range does not apply to (the SQL console), which still draw them to keep them.
    """
    days = [day.isoformat() for day in received]
    day = st.sidebar.selectbox("Day (UTC)", days, key="day", bind="query-params", disabled=disabled)
    length = st.sidebar.number_input(
        "Days shown, ending with that day",
        min_value=1,
        max_value=MAX_DAYS,
        value=1,
        step=1,
        key="days",
        bind="query-params",
        disabled=disabled,
        help=f"1 for one day and a choice of its hours; up to {MAX_DAYS} whole days with a daily trend.",
    )
    midnight = dt.datetime.combine(dt.date.fromisoformat(day or days[0]), dt.time(), dt.UTC)
    if length > 1:
        picked = midnight - dt.timedelta(days=int(length) - 1), midnight + dt.timedelta(days=1)
    else:
        first, last = st.sidebar.slider(
            "Hours (UTC)",
            min_value=0,
            max_value=24,
            value=(0, 24),
            step=1,
            key="hours",
            bind="query-params",
            disabled=disabled,
            help="Start and end hour of the range; figures follow the events received in it.",
        )
        if last <= first:
            # The slider allows an empty range; an hour is the least a rollup can answer.
            first, last = (first, first + 1) if first < 24 else (23, 24)
        picked = midnight + dt.timedelta(hours=first), midnight + dt.timedelta(hours=last)
    if disabled:
        st.sidebar.caption("This page reads the whole log: the range is for the other pages.")
    st.session_state[_RANGE_KEY] = picked
    return picked


def time_range() -> tuple[dt.datetime, dt.datetime]:
    """The range picked in the sidebar for this run (`select_time_range`)."""
    picked: tuple[dt.datetime, dt.datetime] = st.session_state[_RANGE_KEY]
    return picked


def chart_period(start: dt.datetime, end: dt.datetime) -> str:
    """What a bar of the per-hour charts stands for: an hour of one day, a day of several (the
    queries read the day rollups over whole days: docs/log-store.md)."""
    return "day" if days_in(start, end) > 1 else "hour"


def days_in(start: dt.datetime, end: dt.datetime) -> int:
    """How many whole days a range of `time_range` spans (1 for hours of one day)."""
    return max(1, (end - start) // dt.timedelta(days=1))


def workspace_scope(viewer: Viewer, start: dt.datetime, end: dt.datetime) -> Scope | None:
    """The workspace a page shows: the link's own, or the operator's pick (None if none exist)."""
    if viewer.kind is ViewerKind.WORKSPACE:
        return viewer.scope
    options = data.workspaces(start, end)
    if not options:
        return None
    picked = st.sidebar.selectbox("Workspace", options, key="workspace", bind="query-params")
    return Scope.workspace(picked or options[0])


def integration_scope(viewer: Viewer, start: dt.datetime, end: dt.datetime) -> Scope | None:
    """The integration a page shows: the partner link's own, or the operator's pick."""
    if viewer.kind is ViewerKind.PARTNER:
        return viewer.scope
    options = data.integrations(start, end)
    if not options:
        return None
    picked = st.sidebar.selectbox("Integration", options, key="integration", bind="query-params")
    return Scope.integration(picked or options[0])
