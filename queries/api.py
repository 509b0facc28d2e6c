"""One function per named query: the typed face of `queries/*.sql`.

Each takes an open `AttemptLog`, a `Scope` and a half-open range
[start, end) of whole UTC hours, and returns a polars DataFrame whose
columns the matching `.sql` file documents. The queries read the hourly
rollups: counts and sums are exact, latency percentiles within 5% (or
exact from the raw log, on request). Metric definitions: docs/sql.md.

A query that takes nothing but those is one line here (`_scoped`); the
others, with parameters of their own, are written out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Protocol, TypedDict, Unpack

import polars as pl

from queries import whatif as whatif_model
from queries.log import AttemptLog, reads_days
from queries.scope import Scope

#: How far from a job's creation its records are looked for: retries start
#: less than a day after received_at, and a retry window (4 h by default)
#: may be configured longer; an hour before, for clocks that differ a little.
JOB_SEARCH_BEFORE = timedelta(hours=1)
JOB_SEARCH_AFTER = timedelta(days=1, hours=4)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class ScopedQuery(Protocol):
    """A named query that takes nothing but the scope and the range."""

    def __call__(self, log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> pl.DataFrame: ...


def _scoped(name: str, summary: str) -> ScopedQuery:
    """The function that runs `queries/<name>.sql`, documented by `summary`."""

    def query(log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> pl.DataFrame:
        return log.run(name, scope, start, end)

    query.__name__ = query.__qualname__ = name
    query.__doc__ = f"{summary} ({name}.sql)."
    return query


day_report = _scoped("day_report", "One row: the event cohort's fate and the requests' error shares")
funnel = _scoped("funnel", "Stages `step, stage, kind, attempt, events, pct`, ready for `px.funnel`")
by_status_code = _scoped(
    "by_status_code", "Requests and events per status code; no-response rows per error code"
)
by_error = _scoped("by_error", "Requests, unsent jobs and events per error class and code")
by_destination = _scoped("by_destination", "Requests and cohort figures per destination")
by_integration = _scoped("by_integration", "Requests and cohort figures per integration")
destinations = _scoped("destinations", "Destinations with records in the range, busiest first (a picker)")
workspaces = _scoped("workspaces", "Workspaces with records in the range, busiest first (a picker)")
integrations = _scoped("integrations", "Integrations with records in the range, busiest first (a picker)")
hourly = _scoped("hourly", "Requests per UTC hour and error class, long format")
destination_hours = _scoped(
    "destination_hours", "Requests, events and 429s per destination and UTC hour (queries.headroom)"
)
daily = _scoped(
    "daily", "Per UTC day of receipt: events received, delivered first time and eventually, and their shares"
)
retries = _scoped(
    "retries",
    "Recovery curves: delivered by attempt k, for all events and per class of first failure. "
    "Columns: first_error_class (NULL: every event received), attempt, events, delivered, "
    "delivered_by, delivered_by_pct",
)
retry_recovery = _scoped(
    "retry_recovery", "Per class of first failure: events retried and what became of them"
)
delivery_delay = _scoped(
    "delivery_delay",
    "Receipt-to-delivery delay percentiles: all, first attempt, after retries. Three rows, "
    "`delivery` = 'all', 'first attempt', 'after retries', with deliveries, events, p50_ms, "
    "p95_ms, p99_ms (within 5%), mean_ms, max_ms",
)
delivery_delay_histogram = _scoped(
    "delivery_delay_histogram", "Delivered events per delay bucket, first attempt and after retries"
)
destination_failures = _scoped(
    "destination_failures",
    "The cohort's failed, dropped and skipped jobs and events per destination and error class, "
    "long format: workspace_id, destination_id, integration, outcome, error_class, jobs, events",
)
failures_by_class = _scoped(
    "failures_by_class",
    "The cohort's failed, dropped and skipped jobs and events per error class (destination_failures "
    "summed over destinations), long format: outcome, error_class, jobs, events",
)
double_deliveries = _scoped(
    "double_deliveries",
    "The cohort's events delivered more than once per destination, cause (lease_expired, replay, "
    "retry_after_timeout) and certainty (certain, possible), long format: workspace_id, "
    "destination_id, integration, cause, certainty, events, jobs, example_jobs "
    "(docs/double-delivery.md)",
)


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
    """The `limit` most frequent non-2xx body templates, with an example each (error_samples.sql).

    Scoped to an integration (a partner's view), templates and examples are
    redacted (no URLs, emails, quoted values, ids or numbers) and
    destination_id is NULL: nothing names a customer or quotes their data.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return log.run("error_samples", scope, start, end, limit=limit)


def whatif(
    log: AttemptLog,
    scope: Scope,
    start: datetime,
    end: datetime,
    *,
    schedules: Sequence[str],
    resolution_s: float = whatif_model.RESOLUTION_S,
) -> pl.DataFrame:
    """The cohort's actual figures beside each retry schedule's expected ones, a row per schedule.

    `schedules` as `queries.whatif.Schedule.parse` reads them; the log is read once for all
    (`queries.whatif.whatif_schedules`, which takes `Schedule`s and returns dicts).
    """
    parsed = [whatif_model.Schedule.parse(text) for text in schedules]
    return pl.DataFrame(
        whatif_model.whatif_schedules(log, scope, start, end, parsed, resolution_s=resolution_s)
    )


class ExplorerFilters(TypedDict, total=False):
    """The error explorer's filters: each left out, or None, matches anything."""

    error_class: str | None
    error_code: str | None
    status_code: int | None
    destination_id: str | None
    integration: str | None


#: Every filter, matching anything: what the queries bind for filters not given.
_ANY = ExplorerFilters(
    error_class=None, error_code=None, status_code=None, destination_id=None, integration=None
)


def explorer_hours(
    log: AttemptLog, scope: Scope, start: datetime, end: datetime, **filters: Unpack[ExplorerFilters]
) -> pl.DataFrame:
    """Records that did not deliver, matching the filters, per hour and error class (explorer_hours.sql)."""
    return log.run("explorer_hours", scope, start, end, **(_ANY | filters))


def explorer_samples(
    log: AttemptLog,
    scope: Scope,
    start: datetime,
    end: datetime,
    *,
    limit: int = 50,
    **filters: Unpack[ExplorerFilters],
) -> pl.DataFrame:
    """The latest `limit` records that did not deliver, matching the filters, newest first.

    Reads the raw log (explorer_samples.sql), but only the latest hours of
    [start, end) that hold `limit` matches: `explorer_hours` counts them per
    hour from the `outcomes` rollup first.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    counts = explorer_hours(log, scope, start, end, **filters)
    since = _latest_hours_holding(counts, limit)
    if since is not None and reads_days("explorer_hours", start, end):
        # Over several days the counts are per day (the day rollups): the hours needed are the
        # latest of the earliest day needed, counted per hour over that day alone.
        day_end = min(since + timedelta(days=1), end)
        later = int(counts.filter(pl.col("hour") >= day_end).get_column("records").sum())
        within = _latest_hours_holding(explorer_hours(log, scope, since, day_end, **filters), limit - later)
        since = within or since
    if since is None:  # nothing matches: the query still gives the columns, reading one hour
        since = end - timedelta(hours=1)
    return log.run("explorer_samples", scope, max(since, start), end, limit=limit, **(_ANY | filters))


def _latest_hours_holding(per_hour: pl.DataFrame, limit: int) -> datetime | None:
    """The start of the fewest latest hours holding `limit` records (of every hour, if fewer)."""
    hours = per_hour.group_by("hour").agg(pl.col("records").sum()).sort("hour", descending=True)
    if hours.is_empty():
        return None
    held = hours.with_columns(pl.col("records").cum_sum().alias("held"))
    enough = held.filter(pl.col("held") >= max(limit, 1))
    first: datetime = enough.get_column("hour")[0] if not enough.is_empty() else held.get_column("hour")[-1]
    return first


def received_days(log: AttemptLog) -> list[date]:
    """The UTC days on which the log received events, newest first (empty for an empty log).

    From the day rollups of `integration_outcomes`, not the raw log (whose newest
    `received_at` is a month of footers away) nor the partition directories
    (days of requests: a day's retries spill into the next one).
    """
    # The day rows' received_hour is a day already: distinct first, then a date each. Converting
    # every row's timestamp in the session's time zone took 0.3 s over a month. The rollup per
    # integration has the same received hours in a fraction of the rows: 0.02 s over a month where
    # `outcomes` took 0.06 s.
    frame = log.trusted_sql(
        "SELECT DISTINCT timezone('UTC', received_hour)::DATE AS day "
        "FROM (SELECT DISTINCT received_hour FROM integration_outcomes WHERE attempt <= 1) ORDER BY day DESC",
        by_day=True,
        views=("integration_outcomes",),
    )
    days: list[date] = frame.get_column("day").to_list()
    return days


def job_created_at(job_id: str) -> datetime:
    """The creation time a job id (a ULID) carries in its first 10 characters."""
    stamp = job_id[:10].upper()
    if len(stamp) != 10 or any(c not in _CROCKFORD for c in stamp):
        raise ValueError(f"not a job id (ULID): {job_id!r}")
    ms = 0
    for c in stamp:
        ms = ms * 32 + _CROCKFORD.index(c)
    return datetime.fromtimestamp(ms / 1000, UTC)


def job_history(log: AttemptLog, scope: Scope, job_id: str) -> pl.DataFrame:
    """Every record of job `job_id` in the scope, in attempt order (job_history.sql).

    Looks from the hour before the job's creation (its id's time) to a day
    and four hours after, opening only those hours' files. Empty when the
    job is not in the scope. Raises ValueError for a string that is no ULID.
    """
    created = job_created_at(job_id).replace(minute=0, second=0, microsecond=0)
    start = created - JOB_SEARCH_BEFORE
    end = created + timedelta(hours=1) + JOB_SEARCH_AFTER
    return log.run("job_history", scope, start, end, job_id=job_id)


def run_sql(
    log: AttemptLog, text: str, *, timeout_s: float | None = None, max_rows: int | None = None
) -> pl.DataFrame:
    """Run one read-only statement against the views (`deliverydash sql`).

    `attempts` is the raw log; `outcomes`, `latency_histogram`,
    `destination_latency_histogram`, `error_templates`,
    `delay_histogram` and `destination_delay_histogram` are its hourly
    rollups (docs/sql.md).

    Raises `QueryError` for anything but SELECT, WITH, EXPLAIN, DESCRIBE,
    SUMMARIZE or SHOW, for several statements, and for failing queries.
    At most `max_rows` rows come back when it is given.
    """
    return log.sql(text, timeout_s=timeout_s, max_rows=max_rows)
