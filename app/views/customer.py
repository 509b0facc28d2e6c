"""Customer delivery dashboard: one workspace, every destination.

The seed's question, answered for one customer: "how do delivery challenges affect my data?"
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from app import backlog, data, error_samples, filters, hints, reads, replay, session, style, trace
from app.charts import daily_trend, delivery_funnel, failed_by_class, hourly_classes, kept
from app.double_delivery import section as double_delivery_section


def replay_section(workspace: str, destinations: list[str]) -> None:
    """Count, then replay on confirmation, the workspace's events that ended undelivered.

    The workspace is the page's scope: a customer's link can replay only its own.
    """
    if not replay.available():
        st.caption(
            "Replaying needs the dashboard started with the engine's config: "
            "`deliverydash dashboard --config deliverydash.toml`."
        )
        return
    st.caption(
        "Events of jobs that ended failed, dropped or skipped are kept for a few days "
        "([engine] dead_letter_days). Replaying sends each once more, as a new job; "
        "events replayed before are left alone."
    )
    left, right = st.columns(2)
    every = "every destination"
    chosen = left.selectbox("Destination", [every, *destinations], key="replay_destination")
    destination = None if chosen == every else chosen
    outcomes = right.multiselect("Outcomes", replay.OUTCOMES, default=replay.OUTCOMES, key="replay_outcomes")
    selection = (workspace, destination, tuple(outcomes))
    if not outcomes:
        st.caption("Pick at least one outcome.")
        return
    if st.button("Count what can be replayed", key="replay_count"):
        try:
            counted = replay.replay(workspace, destination, outcomes, dry_run=True)
        except replay.ReplayError as exc:
            st.error(f"Cannot count: {exc}")
            return
        st.session_state["replay_counted"] = (selection, counted)
    counted_for, counted = st.session_state.get("replay_counted", (None, None))
    if counted_for != selection or counted is None:
        return
    already = counted.already_replayed
    before = f" ({already:,} replayed before are left alone)" if already else ""
    if not counted.jobs:
        st.info(f"Nothing to replay{before}.")
        return
    st.warning(f"{counted.jobs:,} events can be replayed{before}.")
    if st.button(f"Replay {counted.jobs:,} events", type="primary", key="replay_confirm"):
        try:
            done = replay.replay(workspace, destination, outcomes, dry_run=False)
        except replay.ReplayError as exc:
            st.error(f"Not replayed: {exc}")
            return
        del st.session_state["replay_counted"]
        st.success(
            f"Replay {done.replay_id}: {done.jobs:,} events enqueued. Their deliveries show here as "
            "recovered by replay once they reach the attempt log."
        )


viewer = session.viewer()
start, end = filters.time_range()
scope = filters.workspace_scope(viewer, start, end)

st.title("Customer delivery dashboard")
if scope is None:
    st.info("No workspace has deliveries in this range. Pick another day in the sidebar.")
    st.stop()
st.caption(f"Workspace **{scope.value}** · {style.time_range(start, end)}")

with st.spinner("Reading the attempt log…"):
    report, destinations, failures, errors, hours, funnel, samples, trend, twice = reads.customer(
        scope, start, end
    )
    notifications = data.open_notices(scope.value or "")

if not report["events_received"] and not report["requests"]:
    st.info(f"Workspace {scope.value} has no deliveries in this range.")
    st.stop()

cards = [
    ("Events received", "events_received"),
    ("Delivered first try", "delivered_first_attempt"),
    ("Delivered after retries", "delivered_after_retries"),
    ("Failed", "failed"),
    ("Dropped", "dropped"),
    ("Skipped", "skipped"),
    ("Still retrying", "still_retrying"),
]
if report["recovered_by_replay"]:
    # Among the failed, dropped and skipped: delivered later by a replay (docs/replay.md).
    cards.append(("Recovered by replay", "recovered_by_replay"))
cols = st.columns(len(cards))
for col, (label, column) in zip(cols, cards, strict=True):
    share = "" if column == "events_received" else style.pct(report[f"{column}_pct"])
    col.metric(
        label,
        style.card_count(report[column]),
        delta=share or None,
        delta_color="off",
        delta_arrow="off",
        help=style.card_help(report[column]),
    )

if trend is not None and trend.height:
    st.plotly_chart(kept(daily_trend)(trend, "Delivery rates by day received"), width="stretch")

st.header("Open notifications")
if notifications is None:
    st.warning("The engine's notifications cannot be read right now; try again in a moment.")
    notifications = []
for note in notifications:
    since = f"since {note.first_seen_at:%Y-%m-%d %H:%M} UTC"
    st.error(f"**{note.destination_id}** ({note.kind.replace('_', ' ')}, {since}): {note.message}")
    if note.sample_body:
        with st.container(border=True):
            st.text(note.sample_body)  # as the error samples' examples (`app.error_samples`)
auth = samples.filter(pl.col("error_class") == "auth")
if auth.height:
    alerts = auth.group_by("destination_id").agg(
        pl.col("requests").sum(), pl.col("last_seen").max(), pl.col("status_code").first()
    )
    for row in alerts.sort("requests", descending=True).iter_rows(named=True):
        st.warning(
            f"**{row['destination_id']}**: {row['requests']:,} requests refused for authentication "
            f"(HTTP {row['status_code']}), last at {row['last_seen']:%Y-%m-%d %H:%M} UTC. "
            + hints.hint("auth", row["status_code"])
        )
elif not notifications:
    st.success("No destination is failing authentication in this range.")

st.header("Backlog and headroom (live engine)")
backlog.section(scope)

st.header("Destinations")


def by_class(outcome: str) -> pl.DataFrame:
    """Per destination, e.g. "auth 120 · validation 3": the events of one outcome by error class."""
    rows = failures.filter(pl.col("outcome") == outcome).sort("events", descending=True)
    text = pl.concat_str(
        pl.col("error_class"),
        pl.col("events").map_elements(style.count, return_dtype=pl.String),
        separator=" ",
    )
    return rows.group_by("destination_id", maintain_order=True).agg(
        text.str.join(" · ").alias(f"{outcome}_by_class")
    )


table = (
    destinations.join(by_class("failed"), on="destination_id", how="left")
    .join(by_class("skipped"), on="destination_id", how="left")
    .with_columns(pl.col("failed_by_class", "skipped_by_class").fill_null(""))
    .select(
        "destination_id",
        "integration",
        "events_received",
        "delivered_first_attempt",
        pl.col("delivered_eventually")
        .sub(pl.col("delivered_first_attempt"))
        .alias("delivered_after_retries"),
        "failed",
        "failed_by_class",
        "dropped",
        "skipped",
        "skipped_by_class",
        "still_retrying",
        "recovered_by_replay",
        "first_attempt_pct",
        "eventually_pct",
    )
)
number = st.column_config.NumberColumn
st.dataframe(
    table.to_pandas(),
    hide_index=True,
    column_config={
        "destination_id": "destination",
        "integration": "integration",
        "events_received": number("events received", format="localized"),
        "delivered_first_attempt": number("delivered first try", format="localized"),
        "delivered_after_retries": number("delivered after retries", format="localized"),
        "failed": number("failed", format="localized"),
        "failed_by_class": "failed, by error class",
        "dropped": number("dropped", format="localized"),
        "skipped": number("skipped", format="localized"),
        "skipped_by_class": "skipped, by reason",
        "still_retrying": number("still retrying", format="localized"),
        "recovered_by_replay": number("recovered by replay", format="localized"),
        "first_attempt_pct": number("first try %", format="%.2f%%"),
        "eventually_pct": number("eventually %", format="%.2f%%"),
    },
)

left, right = st.columns(2)
left.plotly_chart(
    kept(delivery_funnel)(funnel, "First attempt versus eventual delivery (events)"),
    width="stretch",
)
failed_chart = kept(failed_by_class)(errors, "Failed requests by error class")
if failed_chart is not None:
    right.plotly_chart(failed_chart, width="stretch")

per = filters.chart_period(start, end)
st.plotly_chart(kept(hourly_classes)(hours, f"Requests per {per} by error class", per), width="stretch")

st.header("Error samples, grouped by template")
error_samples.section(samples, partner=False, key="error_sample")

double_delivery_section(scope, twice)

trace.completeness(scope, start, end)
trace.search(scope, start, end)

st.header("Replay what was not delivered")
replay_section(scope.value or "", destinations.get_column("destination_id").to_list())
