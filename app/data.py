"""The dashboard's one data module: every figure a page shows comes through here.

Each function runs a named query from `queries/` and caches the result for
`TTL_S` seconds. The viewer's scope is an argument of every cached function,
so it is part of every cache key: a result computed for one workspace can
never be served to another (`st.cache_data` is shared by all sessions).
Pages never see a `Scope` they did not get from `app.access`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from ingest.notifications import Notification, NotificationsError, Postgres, Where, open_notifications
from queries import AttemptLog, Limits, Scope, SqlResult, SqlSandbox, api, connect
from queries.errors import QueryError
from queries.trace import fanout as fanout_query
from queries.trace import trace_event

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "DELIVERYDASH_DATA_DIR"
#: Where the attempt log is when not under the data root: a directory or s3://bucket/prefix
#: (`deliverydash dashboard --log`); the object store's credentials come from AWS_* variables.
LOG_ENV = "DELIVERYDASH_LOG"
#: Set (by `deliverydash dashboard --config F` when F's queue is PostgreSQL): the fleet's notifications
#: are read from that database. Never shown: it may hold a password.
QUEUE_DSN_ENV = "DELIVERYDASH_QUEUE_DSN"
#: The engine publishes attempt files at least every export_interval_s (5 s by
#: default); half a minute keeps pages fresh without recomputing on every click.
TTL_S = 30
#: The SQL console's limits: per query, time, rows shown and bytes fetched;
#: per worker process, DuckDB's memory (the process may hold 768 MiB more:
#: `queries.limits.HEADROOM`); and how many queries run at once (more wait).
SQL_TIMEOUT_S = 20.0
SQL_MAX_ROWS = 10_000
SQL_MAX_BYTES = 64 * 1024 * 1024
SQL_MEMORY_LIMIT = "1GiB"
SQL_WORKERS = 2


def data_dir() -> Path:
    """The data root the dashboard reads (`deliverydash dashboard --data-dir`)."""
    return Path(os.environ.get(DATA_DIR_ENV, "data")).resolve()


def log_location() -> str:
    """Where the attempt log the dashboard reads is: `$DELIVERYDASH_LOG`, else the data root."""
    return os.environ.get(LOG_ENV) or str(data_dir())


@st.cache_resource(show_spinner=False)
def _log(root: str) -> AttemptLog:
    # One in-memory DuckDB per data directory, shared by every session: it
    # is thread-safe (a cursor per query) and caches Parquet footers.
    return connect(root)


def log() -> AttemptLog:
    """The attempt log at `log_location()`."""
    return _log(log_location())


@st.cache_resource(show_spinner=False)
def _sql_sandbox(root: str) -> SqlSandbox:
    # The console's queries run in worker processes of their own, never on
    # `_log`'s connection, whose views every viewer's pages read.
    return SqlSandbox(root, memory_limit=SQL_MEMORY_LIMIT, workers=SQL_WORKERS)


def sql_sandbox() -> SqlSandbox:
    """The SQL console's sandbox over `log_location()`."""
    return _sql_sandbox(log_location())


#: How long the SQL console must stay the last page run before its worker starts (`start_sql_worker`).
SQL_WORKER_AFTER_S = 1.0


class _PageRuns:
    """When the last page run of any session began (`page_run_begins`)."""

    last = 0.0


def page_run_begins() -> None:
    """A page run begins (app/main.py)."""
    _PageRuns.last = time.monotonic()


def start_sql_worker(after_s: float = SQL_WORKER_AFTER_S) -> threading.Timer:
    """Start a worker of the console's sandbox in `after_s` (if it has none), unless a page run of
    any viewer began meanwhile, so that the engineer's first query finds it started.

    Opening a worker binds a view over every file of the log: over a month, some 6 CPU s on the
    dashboard's cores. Started as the console was drawn, it slowed the pages a viewer clicked next
    by a fifth (docs/benchmarks.md); an engineer who opens the console to write a query stays on
    it longer than `after_s`, and one who did not needs no worker (the first query starts one).
    """
    sandbox, asked = sql_sandbox(), time.monotonic()
    timer = threading.Timer(after_s, _start_unless_a_page_ran, (sandbox, asked))
    timer.daemon = True
    timer.start()
    return timer


def _start_unless_a_page_ran(sandbox: SqlSandbox, asked: float) -> None:
    """Start a worker of `sandbox` (if it has none) unless a page run began after `asked`."""
    if _PageRuns.last > asked:
        return
    try:
        sandbox.start()
    except (QueryError, OSError) as exc:
        # The first query starts one and says what fails; this thread has no page to say it on.
        logger.warning("the SQL console's worker did not start ahead of its first query: %s", exc)


def days() -> list[dt.date]:
    """UTC days on which events were received, newest first (`queries.api.received_days`)."""
    if not log().store.has_files("attempts/date="):
        return []
    return _received_days(log_location())


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _received_days(root: str) -> list[dt.date]:
    return api.received_days(_log(root))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _named(
    root: str,
    name: str,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    params: tuple[tuple[str, Any], ...],
) -> pl.DataFrame:
    # The one cached entry point: the data directory, the `queries.api`
    # function, the scope, the range and the parameters are all in the key.
    query = getattr(api, name)
    frame: pl.DataFrame = query(_log(root), scope, start, end, **dict(params))
    return frame


def _run(name: str, scope: Scope, start: dt.datetime, end: dt.datetime, **params: Any) -> pl.DataFrame:
    _run_hook()
    return _named(log_location(), name, scope, start, end, tuple(sorted(params.items())))


#: Per thread: what to call before each named query (`before_each_query`).
_thread = threading.local()


def _run_hook() -> None:
    if (before := getattr(_thread, "before_query", None)) is not None:
        before()


@contextlib.contextmanager
def before_each_query(hook: Callable[[], None]) -> Iterator[None]:
    """Call `hook` before each named query this thread runs in the block: the reading ahead
    (`app.prefetch`) stops there, the hook raising, when a page has run since it began the page it
    reads or when it is no longer wanted."""
    _thread.before_query = hook
    try:
        yield
    finally:
        _thread.before_query = None


def day_report(scope: Scope, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """One row of cohort and request figures (queries/day_report.sql)."""
    return _run("day_report", scope, start, end).row(0, named=True)


def daily(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Per day received: events, first-attempt and eventual delivery rates (queries/daily.sql)."""
    return _run("daily", scope, start, end)


def funnel(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """First-attempt versus eventual delivery stages (queries/funnel.sql)."""
    return _run("funnel", scope, start, end)


def by_status_code(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Requests per status code (queries/by_status_code.sql)."""
    return _run("by_status_code", scope, start, end)


def by_error(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Requests per error class and code (queries/by_error.sql)."""
    return _run("by_error", scope, start, end)


def by_destination(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Requests and event fates per destination (queries/by_destination.sql)."""
    return _run("by_destination", scope, start, end)


def by_integration(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Requests and event fates per integration (queries/by_integration.sql)."""
    return _run("by_integration", scope, start, end)


def destinations(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Destinations with records in the range, their workspace and integration (destinations.sql)."""
    return _run("destinations", scope, start, end)


def hourly(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Requests per UTC hour and error class (queries/hourly.sql)."""
    return _run("hourly", scope, start, end)


def destination_hours(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Requests, events and 429s per destination and UTC hour (queries/destination_hours.sql)."""
    return _run("destination_hours", scope, start, end)


def latency(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Latency percentiles per integration or destination, from histograms (queries/latency_histogram.sql)."""
    return _run("latency", scope, start, end, per_integration=True)


def error_samples(scope: Scope, start: dt.datetime, end: dt.datetime, limit: int = 20) -> pl.DataFrame:
    """The most frequent error body templates with an example each (queries/error_samples.sql)."""
    return _run("error_samples", scope, start, end, limit=limit)


def retries(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Recovery curves by attempt, overall and per class of first failure (queries/retries.sql)."""
    return _run("retries", scope, start, end)


def whatif(
    scope: Scope, start: dt.datetime, end: dt.datetime, schedules: Sequence[str]
) -> list[dict[str, Any]]:
    """The cohort's actual figures and those each schedule would have given, a row each, the log
    read once for all (queries/whatif.py)."""
    return _run("whatif", scope, start, end, schedules=tuple(schedules)).rows(named=True)


def retry_recovery(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Per class of first failure, what retries recovered (queries/retry_recovery.sql)."""
    return _run("retry_recovery", scope, start, end)


def delivery_delay(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Receipt-to-delivery delay percentiles (queries/delivery_delay.sql)."""
    return _run("delivery_delay", scope, start, end)


def delivery_delay_histogram(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Delivered events per delay bucket (queries/delivery_delay_histogram.sql)."""
    return _run("delivery_delay_histogram", scope, start, end)


def destination_failures(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Failed, dropped and skipped events per destination and class (queries/destination_failures.sql)."""
    return _run("destination_failures", scope, start, end)


def explorer_samples(scope: Scope, start: dt.datetime, end: dt.datetime, **filters: Any) -> pl.DataFrame:
    """The latest failed records matching the filters (queries/explorer_samples.sql)."""
    return _run("explorer_samples", scope, start, end, **filters)


def double_deliveries(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Events delivered more than once, per destination, cause, certainty (double_deliveries.sql)."""
    return _run("double_deliveries", scope, start, end)


def job_history(scope: Scope, job_id: str) -> pl.DataFrame:
    """Every attempt of one job, if it is in the scope (queries/job_history.sql)."""
    return _job_history(log_location(), scope, job_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _job_history(root: str, scope: Scope, job_id: str) -> pl.DataFrame:
    return api.job_history(_log(root), scope, job_id)


def trace(
    scope: Scope, message_id: str, start: dt.datetime, end: dt.datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One event's records and its fate per destination of its source, in `scope` (queries.trace).

    A partner's scope raises ValueError: pages offer no trace to partners.
    """
    return _trace(log_location(), scope, message_id, start, end)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _trace(
    root: str, scope: Scope, message_id: str, start: dt.datetime, end: dt.datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    traced = trace_event(_log(root), scope, message_id, start, end)
    return traced.attempts, traced.destinations


def fanout(scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Fan-out completeness per source (queries/fanout.sql); a partner's scope raises ValueError."""
    return _fanout(log_location(), scope, start, end)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _fanout(root: str, scope: Scope, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    return fanout_query(_log(root), scope, start, end)


def rollups_out_of_step(start: dt.datetime | None = None, end: dt.datetime | None = None) -> int:
    """Files of the attempt log and its rollups out of step at `log_location()`; 0 when in step.

    Until `deliverydash repair` mends them, figures from the rollups leave
    out attempt files without rollups (or count rollups whose attempt file
    is gone). With a range, only those its figures read
    (`AttemptLog.rollups_out_of_step`). It counts files, the same for every
    viewer, so it is keyed by the data directory and range alone.
    """
    return _rollups_out_of_step(log_location(), start, end)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _rollups_out_of_step(root: str, start: dt.datetime | None, end: dt.datetime | None) -> int:
    return _log(root).rollups_out_of_step(start, end)


def workspaces(start: dt.datetime, end: dt.datetime) -> list[str]:
    """Workspaces with traffic in the range, busiest first (operators' scope picker, workspaces.sql)."""
    frame: pl.DataFrame = _run("workspaces", Scope.all(), start, end)
    return frame.get_column("workspace_id").to_list()


def integrations(start: dt.datetime, end: dt.datetime) -> list[str]:
    """Integrations with traffic in the range, busiest first (operators' scope picker, integrations.sql)."""
    frame: pl.DataFrame = _run("integrations", Scope.all(), start, end)
    return frame.get_column("integration").to_list()


def notifications_source() -> Where:
    """Where the notifications are: the fleet's PostgreSQL database when named, else the data root."""
    dsn = os.environ.get(QUEUE_DSN_ENV)
    return Postgres(dsn) if dsn else data_dir()


def notifications(workspace: str) -> list[Notification]:
    """The engine's open notifications for one workspace (auth failures, auto-disabled destinations).

    Read from the engine's store (the SQLite file under the data directory,
    or a fleet's PostgreSQL database), read-only and uncached: a small read,
    and a notification should show at once. Raises
    `ingest.notifications.NotificationsError` (no password in its message)
    when the database cannot be read.
    """
    return open_notifications(notifications_source(), workspace=workspace)


def open_notices(workspace: str) -> list[Notification] | None:
    """`notifications(workspace)`, or None when they cannot be read (the reason goes to the log only:
    it names the database's server, which is nobody's business on a customer's page)."""
    try:
        return notifications(workspace)
    except NotificationsError:
        logger.warning("the dashboard could not read the notifications", exc_info=True)
        return None


def as_csv(frame: pl.DataFrame) -> bytes:
    """CSV of a query result; nested values (the `events` list, structs) as JSON text, as CSV has no lists."""
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    flat = frame.with_columns(
        pl.Series(name, [json.dumps(value, default=str) for value in frame.get_column(name).to_list()])
        for name in nested
    )
    return flat.write_csv().encode()


def run_sql(text: str) -> SqlResult:
    """An engineer's query in the SQL sandbox: its first `SQL_MAX_ROWS` rows; raises `QueryError`.

    Not cached: the log grows, and a console that answers from a cache is a
    console that lies.
    """
    limits = Limits(timeout_s=SQL_TIMEOUT_S, max_rows=SQL_MAX_ROWS, max_bytes=SQL_MAX_BYTES)
    return sql_sandbox().run(text, limits)


__all__ = [
    "QueryError",
    "by_destination",
    "by_error",
    "by_integration",
    "by_status_code",
    "data_dir",
    "day_report",
    "days",
    "destinations",
    "error_samples",
    "funnel",
    "hourly",
    "integrations",
    "latency",
    "log",
    "rollups_out_of_step",
    "run_sql",
    "sql_sandbox",
    "workspaces",
]
