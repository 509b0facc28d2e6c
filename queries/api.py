"""One function per named query: the typed face of `queries/*.sql`.

Each takes an open `AttemptLog`, a `Scope` and a half-open range
[start, end) of whole UTC hours, and returns a polars DataFrame whose
columns the matching `.sql` file documents. The queries read the hourly
rollups: counts and sums are exact, latency percentiles within 5% (or
exact from the raw log, on request). Metric definitions: docs/sql.md.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from queries.log import AttemptLog
from queries.scope import Scope


def day_report(log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> pl.DataFrame:
    """One row: the event cohort's fate and the requests' error shares (day_report.sql)."""
    return log.run("day_report", scope, start, end)


def funnel(log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> pl.DataFrame:
    """Stages `step, stage, kind, attempt, events, pct`, ready for `px.funnel` (funnel.sql)."""
    return log.run("funnel", scope, start, end)


def by_status_code(log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> pl.DataFrame:
    """Requests and events per status code; no-response rows per error code (by_status_code.sql)."""
    return log.run("by_status_code", scope, start, end)


def by_error(log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> pl.DataFrame:
    """Requests, unsent jobs and events per error class and code (by_error.sql)."""
    return log.run("by_error", scope, start, end)


def by_destination(log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> pl.DataFrame:
    """Requests and cohort figures per destination (by_destination.sql)."""
    return log.run("by_destination", scope, start, end)


def by_integration(log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> pl.DataFrame:
    """Requests and cohort figures per integration (by_integration.sql)."""
    return log.run("by_integration", scope, start, end)


def hourly(log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> pl.DataFrame:
    """Requests per UTC hour and error class, long format (hourly.sql)."""
    return log.run("hourly", scope, start, end)


def latency(
    log: AttemptLog,
    scope: Scope,
    start: datetime,
    end: datetime,
    *,
    per_integration: bool = False,
    exact: bool = False,
) -> pl.DataFrame:
    """p50/p95/p99/mean/max of duration_ms, overall or per integration.

    By default this reads the hourly latency histograms
    (latency_histogram.sql), per integration for `all` and an integration,
    per destination for a workspace or a destination: requests, mean and
    max exact, percentiles within 5%, at the cost of a few rows per hour
    and bucket. `exact=True` reads every request of the scope from the raw
    log instead (latency.sql), for exact percentiles: several times slower
    for a busy scope. Both give the same columns.
    """
    name = "latency" if exact else "latency_histogram"
    return log.run(name, scope, start, end, per_integration=per_integration)


def error_samples(
    log: AttemptLog, scope: Scope, start: datetime, end: datetime, *, limit: int = 20
) -> pl.DataFrame:
    """The `limit` most frequent non-2xx body templates, with an example each (error_samples.sql)."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return log.run("error_samples", scope, start, end, limit=limit)


def run_sql(log: AttemptLog, text: str, *, timeout_s: float | None = None) -> pl.DataFrame:
    """Run one read-only statement against the views (`deliverydash sql`).

    `attempts` is the raw log; `outcomes`, `latency_histogram`,
    `destination_latency_histogram` and `error_templates` are its hourly
    rollups (docs/sql.md).

    Raises `QueryError` for anything but SELECT, WITH, EXPLAIN, DESCRIBE,
    SUMMARIZE or SHOW, for several statements, and for failing queries.
    """
    return log.sql(text, timeout_s=timeout_s)
