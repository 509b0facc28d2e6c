"""Partner error-rate page: one integration across all customers, no tenant ids, no payload values."""

from __future__ import annotations

import polars as pl
import streamlit as st

from app import advice, data, error_samples, evidence_pack, filters, reads, session, style
from app.charts import kept
from app.double_delivery import section as double_delivery_section
from app.evidence.charts import rates_chart, status_codes_chart

viewer = session.viewer()
start, end = filters.time_range()
scope = filters.integration_scope(viewer, start, end)

st.title("Partner error rates")
if scope is None:
    st.info("No integration has deliveries in this range. Pick another day in the sidebar.")
    st.stop()
st.caption(
    f"Integration **{scope.value}**, across every customer · {style.time_range(start, end)}. "
    "Aggregates only: no workspace ids, bodies redacted."
)

with st.spinner("Reading the attempt log…"):
    report, codes, hours, latency, samples, twice = reads.partner(scope, start, end)

if not report["requests"]:
    st.info(f"No requests to {scope.value} in this range.")
    st.stop()

evidence_pack.download_button(data.log(), scope, start, end)

cols = st.columns(5)
cols[0].metric("Requests", style.card_count(report["requests"]), help=style.card_help(report["requests"]))
cols[1].metric("Answered 429", style.pct(report["status_429_requests_pct"]))
cols[2].metric("Answered 5xx", style.pct(report["status_5xx_requests_pct"]))
cols[3].metric("Events delivered first try", style.pct(report["delivered_first_attempt_pct"]))
cols[4].metric(
    "Recovered by retries",
    style.pct(report["delivered_after_retries_pct"]),
    help="Share of events whose first attempt failed and a retry delivered.",
)

left, right = st.columns(2)
# Dozens of nonstandard codes would crowd out the standard ones: they share one bar.
left.plotly_chart(kept(status_codes_chart)(codes), width="stretch")

per = filters.chart_period(start, end)
right.plotly_chart(kept(rates_chart)(hours, per), width="stretch")

st.header("Latency")
timed = latency.filter(pl.col("integration") == scope.value)
if timed.height:
    values = timed.row(0, named=True)
    latency_cols = st.columns(4)
    latency_cols[0].metric("p50", style.ms(values["p50_ms"]))
    latency_cols[1].metric("p95", style.ms(values["p95_ms"]))
    latency_cols[2].metric("p99", style.ms(values["p99_ms"]))
    latency_cols[3].metric(
        "Requests timed", style.card_count(values["requests"]), help=style.card_help(values["requests"])
    )

st.header("Advice: answers that defeat retries")
notes = advice.advise(report, codes, samples)
if notes:
    for note in notes:
        st.warning(note)
else:
    st.success("Nothing stands out: this integration's error answers let retries do their job.")

st.header("Most frequent error answers")
st.caption(
    "Bodies are redacted: quoted values, numbers, e-mail addresses, URLs and customer ids are replaced by "
    "placeholders (the redact_body macro, docs/sql.md)."
)
error_samples.section(samples, partner=True, key="partner_error_sample")

double_delivery_section(scope, twice)
