"""Retries: what each further attempt recovers, by class of first failure, and how long delivery takes."""

from __future__ import annotations

import plotly.express as px
import polars as pl
import streamlit as st

from app import data, filters, session, style

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
    curves = data.retries(scope, start, end)
    recovery = data.retry_recovery(scope, start, end)
    delay = data.delivery_delay(scope, start, end)
    buckets = data.delivery_delay_histogram(scope, start, end)

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
labelled = curves.with_columns(
    pl.col("first_error_class")
    .replace_strict(style.CLASS_LABELS, default=pl.col("first_error_class"))
    .fill_null("all events received")
    .alias("curve")
)
colors = {style.CLASS_LABELS[name]: color for name, color in style.CLASS_COLORS.items()}
colors["all events received"] = "#000000"
figure = px.line(
    labelled.to_pandas(),
    x="attempt",
    y="delivered_by_pct",
    color="curve",
    markers=True,
    color_discrete_map=colors,
    labels={"attempt": "attempts made", "delivered_by_pct": "delivered (%)", "curve": "first failure"},
)
figure.update_yaxes(ticksuffix="%", range=[0, 100])
st.plotly_chart(
    style.finish(
        figure,
        title="Share of events delivered after n attempts, by class of the first failure",
        x="attempts made",
        y="events delivered (% of the curve's events)",
        height=420,
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
    upper = pl.col("upper_ms").map_elements(lambda ms: style.duration(ms / 1000), return_dtype=pl.String)
    figure = px.bar(
        buckets.with_columns(upper.alias("up to")).to_pandas(),
        x="up to",
        y="events",
        color="delivery",
        barmode="group",
        log_y=True,
        labels={"events": "events delivered", "up to": "time to delivery, up to", "delivery": ""},
        color_discrete_map={
            "first attempt": style.CLASS_COLORS["none"],
            "after retries": style.CLASS_COLORS["rate_limit"],
        },
    )
    st.plotly_chart(
        style.finish(
            figure,
            title="Delivered events by time from receipt to delivery",
            x="time to delivery",
            y="events (log scale)",
        ),
        width="stretch",
    )
