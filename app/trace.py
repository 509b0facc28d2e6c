"""The per-event trace on the customer and explorer pages, and the customer page's fan-out figure.

"Did my event reach every destination?" (docs/trace.md). A customer looks a messageId up within
its workspace, an engineer anywhere; partners never (their pages do not call this module, and
`queries.trace` refuses their scope all the same).
"""

from __future__ import annotations

import datetime as dt

import plotly.express as px
import polars as pl
import streamlit as st

from app import data, style
from queries.scope import Scope, ScopeKind
from queries.trace import REQUEST_COLUMNS

#: The columns of the fate table, as the page labels them.
FATE_LABELS = {
    "destination_id": "Destination",
    "integration": "Integration",
    "fate": "Fate",
    "why": "Why",
    "jobs": "Jobs",
    "attempts": "Requests",
    "last_status_code": "Last HTTP status",
    "last_error_class": "Last error class",
    "last_error_code": "Last error code",
    "last_started_at": "Last request (UTC)",
}
#: Fan-out completeness, as the figure and its cards name the three shares.
SHARES = {
    "delivered_all": "delivered to all its destinations",
    "delivered_some": "delivered to some",
    "delivered_none": "delivered to none",
}
SHARE_COLORS = {
    SHARES["delivered_all"]: "#2ca02c",
    SHARES["delivered_some"]: "#ff7f0e",
    SHARES["delivered_none"]: "#d62728",
}


def search(scope: Scope, start: dt.datetime, end: dt.datetime) -> None:
    """The search box and, for a message id found in `scope`, its fate per destination."""
    if scope.kind is ScopeKind.INTEGRATION:
        return  # a partner's view: events belong to the customers
    st.header("Trace one event")
    where = f"workspace {scope.value}" if scope.kind is ScopeKind.WORKSPACE else "every workspace"
    st.caption(
        f"Did an event reach every destination of its source? Its messageId, looked up in {where} "
        f"among the requests of {style.time_range(start, end)}."
    )
    message_id = st.text_input(
        "Message id", key="message_id", bind="query-params", placeholder="the event's messageId"
    ).strip()
    if not message_id:
        return
    with st.spinner("Looking the event up…"):
        attempts, destinations = data.trace(scope, message_id, start, end)
    if attempts.is_empty():
        st.info(f"No record of message `{message_id}` in {where} in this range.")
        return
    first = attempts.row(0, named=True)
    st.markdown(
        f"Message `{message_id}` of source **{first['source_id']}** (workspace **{first['workspace_id']}**), "
        f"received {first['received_at']:%Y-%m-%d %H:%M:%S} UTC."
    )
    fates = destinations.get_column("fate")
    cards = [
        ("Destinations of its source", destinations.height),
        ("Delivered", int((fates == "delivered").sum())),
        ("Failed, dropped or skipped", int(fates.is_in(["failed", "dropped", "skipped"]).sum())),
        ("Still retrying", int((fates == "retrying").sum())),
        ("Never sent (no job)", int((fates == "no job").sum())),
    ]
    for column, (label, value) in zip(st.columns(len(cards)), cards, strict=True):
        column.metric(label, f"{value:,}")
    table = destinations.select(*FATE_LABELS).with_columns(
        pl.col("jobs", "attempts", "last_status_code").cast(pl.Int64),
        pl.col("last_started_at").str.slice(0, 19),
    )
    st.dataframe(table.rename(FATE_LABELS), hide_index=True, width="stretch")
    with st.expander(f"Every request ({attempts.height:,} records)"):
        st.dataframe(
            attempts.select(REQUEST_COLUMNS),
            hide_index=True,
            width="stretch",
            column_config={
                "destination_id": "destination",
                "job_id": "job",
                "started_at": st.column_config.DatetimeColumn(
                    "started (UTC)", format="YYYY-MM-DD HH:mm:ss.SSS"
                ),
                "status_code": st.column_config.NumberColumn("HTTP status", format="%d"),
                "error_class": "error class",
                "error_code": "error code",
                "outcome": "job after this request",
                "replay_of": "replay of job",
            },
        )


def completeness(scope: Scope, start: dt.datetime, end: dt.datetime) -> None:
    """Fan-out completeness per source of `scope`: events delivered to all, some or none of their
    destinations."""
    st.header("Fan-out completeness")
    st.caption(
        "Per source, the events received in the range by whether they were delivered to every "
        "destination that got a job of them, to some, or to none (retries and replays count; a "
        "destination added after an event arrived is not counted for it)."
    )
    # Off until asked: it reads every message index row of the range (about 11 s for one workspace
    # of a 100-million-attempt day, docs/benchmarks.md), where the rest of the page takes under 1 s.
    if not st.toggle("Count fan-out completeness", key="fanout"):
        return
    with st.spinner("Counting each event's destinations…"):
        sources = data.fanout(scope, start, end)
    if sources.is_empty():
        st.caption("No event was received in this range.")
        return
    totals = {column: int(sources.get_column(column).sum()) for column in SHARES}
    events = int(sources.get_column("events").sum())
    for column, (share, label) in zip(st.columns(len(SHARES)), SHARES.items(), strict=True):
        column.metric(
            f"Events {label}",
            style.card_count(totals[share]),
            delta=style.pct(100 * totals[share] / events),
            delta_color="off",
            delta_arrow="off",
            help=style.card_help(totals[share]),
        )
    long = (
        sources.select("source_id", "events", *SHARES)
        .unpivot(index=["source_id", "events"], variable_name="share", value_name="count")
        .with_columns(
            pl.col("share").replace(SHARES),
            (100 * pl.col("count") / pl.col("events")).round(1).alias("percent"),
        )
        .with_columns(pl.format("{} ({}%)", pl.col("count"), pl.col("percent")).alias("label"))
        .filter(pl.col("count") > 0)  # no bar, no label
    )
    figure = px.bar(
        long.to_pandas(),
        x="count",
        y="source_id",
        color="share",
        orientation="h",
        text="label",
        color_discrete_map=SHARE_COLORS,
        labels={"count": "events", "source_id": "source", "share": "events"},
    )
    figure.update_layout(barmode="stack")
    height = max(260, 40 * sources.height + 160)
    title = "Fan-out completeness per source"
    st.plotly_chart(
        style.finish(figure, title=title, x="events", y="source", height=height),
        width="stretch",
    )
