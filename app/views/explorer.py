"""Error explorer: failed attempts filtered by class, code, destination, integration and time.

Each sample leads to its job's attempt history: every attempt of one delivery.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from app import data, filters, hints, reads, session, style, trace
from ingest.taxonomy import ErrorClass

viewer = session.viewer()
start, end = filters.time_range()
scope = viewer.scope

st.title("Error explorer")
with st.spinner("Reading the attempt log…"):
    destinations = data.destinations(scope, start, end)

classes = [error_class.value for error_class in ErrorClass if error_class is not ErrorClass.NONE]
left, middle, right, last = st.columns(4)
error_class = left.selectbox("Error class", classes, index=None, key="error_class", bind="query-params")
error_code = middle.text_input(
    "Error code", key="error_code", bind="query-params", placeholder="e.g. 401, ECONNRESET"
).strip()
destination = right.selectbox(
    "Destination",
    sorted(destinations.get_column("destination_id").to_list()),
    index=None,
    key="destination",
    bind="query-params",
)
integration = last.selectbox(
    "Integration",
    sorted(set(destinations.get_column("integration").to_list())),
    index=None,
    key="filter_integration",  # not "integration": the partner page's picker has that key
    bind="query-params",
)
st.caption(
    f"{style.time_range(start, end)} · the latest {reads.EXPLORER_SAMPLES} attempts that did not deliver "
    "and match every filter set (empty filters match anything)."
)

with st.spinner("Finding matching attempts…"):
    samples = reads.explorer_samples(
        scope,
        start,
        end,
        error_class=error_class,
        error_code=error_code or None,
        destination_id=destination,
        integration=integration,
    )

if samples.is_empty():
    st.info("No failed attempts match these filters in this range.")
    trace.search(scope, start, end)
    st.stop()

if error_class is not None:
    st.markdown(f"**What to do about `{error_class}`:** {hints.hint(error_class)}")

shown = samples.select(
    "started_at",
    "destination_id",
    "integration",
    "attempt",
    "status_code",
    "error_class",
    "error_code",
    "outcome",
    "duration_ms",
    pl.coalesce("response_body", "error_message").str.slice(0, 300).alias("answer"),
    "job_id",
)
number = st.column_config.NumberColumn
st.dataframe(
    shown.to_pandas(),
    hide_index=True,
    column_config={
        "started_at": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "destination_id": "destination",
        "attempt": number("attempt", format="%d"),
        "status_code": number("HTTP status", format="%d"),
        "error_class": "error class",
        "error_code": "error code",
        "outcome": "job after this attempt",
        "duration_ms": number("duration (ms)", format="%.1f"),
        "answer": "response body or error",
        "job_id": "job",
    },
)

st.header("Attempt history of one job")
# Jobs with the most attempts first: their history shows what retries did. None is read until a
# job is picked: a history reads a day of the raw log (0.37 s at 100 million attempts a day), on
# every change of the filters above had it followed the first job (docs/dashboard.md).
by_attempts = samples.group_by("job_id", maintain_order=True).agg(pl.col("attempt").max())
jobs = by_attempts.sort("attempt", descending=True, maintain_order=True).get_column("job_id").to_list()
job = st.selectbox(
    "Job",
    jobs,
    index=None,
    placeholder="Pick a job to see every attempt of it (most attempts first)",
    key="job",
    bind="query-params",
)
if job is not None:
    with st.spinner("Reading the job's attempts…"):
        history = data.job_history(scope, job)
    st.dataframe(
        history.select(
            "attempt",
            "started_at",
            "duration_ms",
            "status_code",
            "error_class",
            "error_code",
            "retryable",
            "outcome",
            pl.coalesce("response_body", "error_message").str.slice(0, 300).alias("answer"),
        ).to_pandas(),
        hide_index=True,
        column_config={
            "attempt": number("attempt", format="%d"),
            "started_at": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm:ss.SSS"),
            "duration_ms": number("duration (ms)", format="%.1f"),
            "status_code": number("HTTP status", format="%d"),
            "error_class": "error class",
            "error_code": "error code",
            "outcome": "job after this attempt",
            "answer": "response body or error",
        },
    )

trace.search(scope, start, end)
