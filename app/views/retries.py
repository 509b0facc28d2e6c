"""Retries: what each further attempt recovers, by class of first failure, and how long delivery takes."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from app import data, filters, reads, session, style
from app.charts import delay_buckets, kept, recovery_curves

#: The schedules the engineer may try: the engine's defaults first (docs/whatif.md).
WHATIF_PRESETS = {
    "actual schedule (engine defaults)": "base=30s,factor=2,max=1h,attempts=10,window=4h,jitter=0.2",
    "longer: 15 attempts within 8 h": "base=30s,factor=2,max=1h,attempts=15,window=8h,jitter=0.2",
    "shorter: 3 attempts": "base=30s,factor=2,max=1h,attempts=3,window=4h,jitter=0.2",
    "faster start: 10 s, tripling": "base=10s,factor=3,max=1h,attempts=10,window=4h,jitter=0.2",
}


def whatif_row(name: str, result: dict[str, Any], prefix: str) -> dict[str, object]:
    """One line of the what-if table: a schedule's (or, with prefix "actual_", the log's) figures."""
    return {
        "schedule": name,
        # Expected values, rounded: a schedule's events and requests are counted whole.
        "delivered": round(float(result[f"{prefix}delivered"])),
        "delivered_pct": result[f"{prefix}delivered_pct"],
        "requests": round(float(result[f"{prefix}requests"])),
        **{p: style.duration(result[f"{prefix}delay_{p}_s"]) for p in ("p50", "p90", "p99")},
    }


viewer = session.viewer()
start, end = filters.time_range()
scope = viewer.scope

st.title("Retries")
who = "all workspaces" if viewer.sees_everything else viewer.label
st.caption(
    f"{style.time_range(start, end)} · {who}. "
    "Events received in the range, followed through every retry to their final outcome."
)

with st.spinner("Reading the attempt log…"):
    curves, recovery, delay, buckets = reads.retries(scope, start, end)

if curves.is_empty():
    st.info("No events received in this range. Pick another day or widen the hours in the sidebar.")
    st.stop()

retried = int(recovery.get_column("retried").sum())
recovered = int(recovery.get_column("recovered").sum())
first_failed = int(recovery.get_column("first_failed").sum())
cols = st.columns(4)
cols[0].metric(
    "Events whose first attempt failed", style.card_count(first_failed), help=style.card_help(first_failed)
)
cols[1].metric("Of them, retried", style.card_count(retried), help=style.card_help(retried))
cols[2].metric(
    "Recovered by a retry",
    style.count(recovered),
    delta=style.pct(100 * recovered / retried if retried else 0) + " of retried",
    delta_color="off",
    delta_arrow="off",
)
overall = delay.filter(pl.col("delivery") == "after retries")
if overall.height:
    cols[3].metric("Median time to delivery after retries", style.duration(overall.item(0, "p50_ms") / 1000))

st.header("Recovery curve by attempt")
st.plotly_chart(
    kept(recovery_curves)(
        curves, "Share of events delivered after n attempts, by class of the first failure"
    ),
    width="stretch",
)

st.header("What retries recovered, per class of first failure")
number = st.column_config.NumberColumn
st.dataframe(
    recovery.to_pandas(),
    hide_index=True,
    column_config={
        "first_error_class": "first failure",
        "first_failed": number("first attempt failed (events)", format="localized"),
        "not_retried": number("not retried", format="localized"),
        "retried": number("retried", format="localized"),
        "recovered": number("recovered", format="localized"),
        "failed": number("failed later", format="localized"),
        "dropped": number("dropped", format="localized"),
        "skipped": number("skipped", format="localized"),
        "still_retrying": number("still retrying", format="localized"),
        "recovered_pct": number("recovered % of failed", format="%.2f%%"),
        "recovered_of_retried_pct": number("recovered % of retried", format="%.2f%%"),
        "mean_attempts_to_recover": number("mean attempt that delivered", format="%.1f"),
    },
)

st.header("Time from receipt to delivery")
if delay.height:
    readable = delay.with_columns(
        pl.col(column).map_elements(lambda ms: style.duration(ms / 1000), return_dtype=pl.String)
        for column in ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")
    )
    st.dataframe(
        readable.to_pandas(),
        hide_index=True,
        column_config={
            "delivery": "delivered",
            "deliveries": number("requests that delivered", format="localized"),
            "events": number("events", format="localized"),
            "p50_ms": "p50",
            "p95_ms": "p95",
            "p99_ms": "p99",
            "mean_ms": "mean",
            "max_ms": "max",
        },
    )
if buckets.height:
    st.plotly_chart(
        kept(delay_buckets)(buckets, "Delivered events by time from receipt to delivery"), width="stretch"
    )

if viewer.sees_everything:
    st.header("Retry what-if")
    st.caption(
        "The range's retried jobs tried again on paper at another schedule's times, each attempt "
        "answered as the destination answered other requests then (docs/whatif.md). The actual "
        "schedule replayed shows the model's error. Expected values; the model cannot know how a "
        "destination would have answered more or fewer requests, nor Retry-After waits."
    )
    chosen = st.multiselect(
        "Schedules", list(WHATIF_PRESETS), default=list(WHATIF_PRESETS)[1:3], key="whatif_presets"
    )
    if st.button("Run the what-if", key="whatif_run"):
        names = ["actual schedule (engine defaults)", *chosen]
        with st.spinner("Replaying the retried jobs…"):
            results = data.whatif(scope, start, end, [WHATIF_PRESETS[name] for name in names])
        rows = [whatif_row("actual (from the log)", results[0], "actual_")]
        rows += [whatif_row(name, result, "") for name, result in zip(names, results, strict=True)]
        st.dataframe(
            pl.DataFrame(rows).to_pandas(),
            hide_index=True,
            column_config={
                "schedule": "schedule",
                "delivered": st.column_config.NumberColumn("events delivered", format="localized"),
                "delivered_pct": st.column_config.NumberColumn("delivered %", format="%.2f%%"),
                "requests": st.column_config.NumberColumn("requests", format="localized"),
                "p50": "delay p50",
                "p90": "delay p90",
                "p99": "delay p99",
            },
        )
