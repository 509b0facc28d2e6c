"""A day of HTTP responses: the seed's story, told from the attempt log."""

from __future__ import annotations

import polars as pl
import streamlit as st

from app import filters, reads, session, style
from app.charts import daily_trend, delivered_per_attempt, fates_bar, hourly_classes, kept, terminal_codes

viewer = session.viewer()
start, end = filters.time_range()
scope = viewer.scope
who = "all workspaces" if viewer.sees_everything else viewer.label

st.title("A day of HTTP responses")
st.caption(
    f"{style.time_range(start, end)} · {who}. "
    "Event figures follow the events received in the range to their final outcome; "
    "request figures count the HTTP requests started in it."
)

with st.spinner("Reading the attempt log…"):
    report, codes, hours, funnel, trend = reads.day(scope, start, end)

if not report["events_received"] and not report["requests"]:
    st.info("No deliveries in this range. Pick another day or widen the hours in the sidebar.")
    st.stop()

cols = st.columns(5)
cols[0].metric(
    "Events received",
    style.card_count(report["events_received"]),
    help=style.card_help(report["events_received"]),
)
cols[1].metric("Delivered on the first attempt", style.pct(report["delivered_first_attempt_pct"]))
cols[2].metric(
    "Delivered eventually",
    style.pct(report["delivered_eventually_pct"]),
    delta=f"+{report['delivered_after_retries_pct']:.2f} pp thanks to retries",
    delta_color="off",
    delta_arrow="off",
)
cols[3].metric("Never arrive: terminal errors", style.pct(report["failed_pct"]))
cols[4].metric(
    "HTTP requests", style.card_count(report["requests"]), help=style.card_help(report["requests"])
)

st.header("What happened to the events")
st.plotly_chart(kept(fates_bar)(report, "Events received in the range, by final outcome"), width="stretch")
if trend is not None and trend.height:
    st.plotly_chart(kept(daily_trend)(trend, "Delivery rates by day received"), width="stretch")

st.header("Terminal problems: only a person can fix them")
st.markdown(
    "Auth failures (401/403) mean the customer's credentials for the destination are wrong or expired; "
    "validation failures (400/422) mean the destination rejects the payload. Retrying does not help."
)
terminal_cols = st.columns(3)
terminal_cols[0].metric("Requests answered 401 or 403", style.pct(report["auth_requests_pct"]))
terminal_cols[1].metric("Requests answered 400", style.pct(report["status_400_requests_pct"]))
terminal_cols[2].metric(
    "Events failed for good", style.card_count(report["failed"]), help=style.card_help(report["failed"])
)
terminal_chart = kept(terminal_codes)(codes, "Terminal 4xx answers by status code")
if terminal_chart is not None:
    st.plotly_chart(terminal_chart, width="stretch")

st.header("Ephemeral problems: retries fix most of them")
st.markdown(
    "Rate limits (429), server errors (5xx), timeouts and network errors pass; the engine retries them "
    "with exponential backoff for up to four hours."
)
passing_cols = st.columns(4)
passing_cols[0].metric("Requests answered 429", style.pct(report["status_429_requests_pct"]))
passing_cols[1].metric("Requests answered 5xx", style.pct(report["status_5xx_requests_pct"]))
passing_cols[2].metric("Network failures", style.pct(report["network_requests_pct"]))
passing_cols[3].metric("Timeouts", style.pct(report["timeout_requests_pct"]))
per = filters.chart_period(start, end)
st.plotly_chart(kept(hourly_classes)(hours, f"Requests per {per} by error class", per), width="stretch")

st.header("What retries gain")
attempts_chart = kept(delivered_per_attempt)(
    funnel, "Events delivered at each attempt: the first, then what each retry added"
)
if attempts_chart is not None:
    st.plotly_chart(attempts_chart, width="stretch")
st.metric(
    "Events delivered thanks to retries",
    style.count(report["delivered_after_retries"]),
    delta=style.pct(report["delivered_after_retries_pct"]) + " of events",
    delta_color="off",
    delta_arrow="off",
)

st.header("WTF webhooks: answers outside HTTP's vocabulary")
wtf = codes.filter(pl.col("error_class") == "nonstandard")
st.metric("Requests with a nonstandard status", style.pct(report["nonstandard_requests_pct"]))
if wtf.height:
    st.dataframe(
        wtf.select("label", "requests", "pct").to_pandas(),
        column_config={
            "label": "status code",
            "requests": st.column_config.NumberColumn("requests", format="localized"),
            "pct": st.column_config.NumberColumn("share of requests", format="%.4f%%"),
        },
        hide_index=True,
    )
else:
    st.caption("No nonstandard status codes in this range.")
