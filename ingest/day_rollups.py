"""Day rollups: a closed day's hourly rollup files merged into one file per rollup (docs/log-store.md).

A range of whole days needs per-day figures, but the hourly rollups keep a
row per received hour and started hour, in one file per attempt file: 31
days of 10 million attempts are 28.7 million `outcomes` rows in 3,720
files. A day file holds the same rows with both hours truncated to the day
and the measures re-aggregated, at
``rollups/by_day/<rollup>/date=D/<digest>.parquet``.

`<digest>` names the attempt files of day D, and of the day before it, that
counted when the file was built (the readers' rules: `counted_names`). A
reader counts a day file only while that digest is the one of what counts
now (`day_digests`), so a late file, a compaction of one of the two days'
hours or a replaced day makes it read the day's hourly files again until the
day is built anew: never a record counted twice or missed, with no manifest
of its own.

The day before is in the digest because of `redeliveries` (`CARRIED`): its
day file carries, on the rows of jobs received the day before, that day's
figures of the same job, so that `double_deliveries.sql` need not look for them among
every row of the range (docs/double-delivery.md, "Over whole days"); and
because of `SUMMARY`, the double deliveries of the jobs received the day
before, summed, which the query adds up instead of classifying each job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache

import duckdb
import pyarrow as pa

from ingest.compaction import CLOSE_AFTER_S, GRACE_S, HourFiles, log_hours
from ingest.logstore import LogStore
from ingest.manifests import COMPACT_PREFIX, ManifestCache, now
from ingest.rollup import (
    DAY_ROLLUPS,
    ROLLUPS_DIR,
    connect_macros,
    rollup_key,
    rollup_schemas,
    rollup_sql,
    uncommented,
    write_options,
)
from ingest.schema import COLUMNS, empty_table

#: Key prefix of the day files, beside the hourly trees (``rollups/<rollup>/``).
DAY_DIR = f"{ROLLUPS_DIR}/by_day"
#: Columns holding an hour: truncated to the day.
HOUR_COLUMNS = ("received_hour", "started_hour")
#: How each measure of a rollup re-aggregates; every other column is a key.
MEASURES = {
    "records": "sum",
    "events": "sum",
    "requests": "sum",
    "deliveries": "sum",
    "unanswered": "sum",
    "duration_ms_sum": "sum",
    "request_bytes_sum": "sum",
    "delay_ms_sum": "sum",
    "duration_ms_max": "max",
    "delay_ms_max": "max",
    "last_seen": "max",
    # `CARRIED`'s columns filled in day files only (`_carried`): NULL in its hourly files, so summed
    # alike (all NULL) when a day is read from them; `may_count` as a measure, so that a job keeps
    # one row per day.
    "may_count": "bool_or",
    "earlier_deliveries": "sum",
    "earlier_unanswered": "sum",
}
#: Measures kept from the row of another measure's maximum: the latest error body.
LATEST = {"example": "last_seen"}
#: The rollup whose day files carry the day before's figures of a job received then
#: (`_carried`), and mark the rows that can count (`may_count`), first in the file.
CARRIED = "redeliveries"
#: The day file summing, per destination, how the jobs received the day before were delivered more
#: than once (`_received_before`): a month's `double_deliveries.sql` adds up 31 of them instead of
#: classifying every job (docs/double-delivery.md, "Over whole days").
SUMMARY = "redelivery_summary"
#: Its columns (DuckDB types): the 3 least job ids of a row's jobs as examples, in order. `mark`
#: is NULL on a row of figures; 'summed' on the one row saying that the day received is summed here
#: (it may have no figures); 'rows_later' on a row saying that jobs received that day have rows in
#: this day, two or more days later, which no sum holds; 'replays' on a row saying that this day has
#: rows of replays received that day (the query reads replays from those days, and from the days
#: read from hourly files).
SUMMARY_COLUMNS = (
    ("received_hour", "TIMESTAMP WITH TIME ZONE"),
    ("workspace_id", "VARCHAR"),
    ("destination_id", "VARCHAR"),
    ("integration", "VARCHAR"),
    ("cause", "VARCHAR"),
    ("certainty", "VARCHAR"),
    ("events", "BIGINT"),
    ("jobs", "BIGINT"),
    ("example_1", "VARCHAR"),
    ("example_2", "VARCHAR"),
    ("example_3", "VARCHAR"),
    ("mark", "VARCHAR"),
)
#: Every file a built day has: one per day rollup, and the summary.
DAY_FILES = (*DAY_ROLLUPS, SUMMARY)
#: Sort order of a day file where its rollup has the columns: a workspace's page skips the rest,
#: and so does a partner's in the rollups per integration.
_SORT = ("workspace_id", "destination_id", "integration")


def day_tree(rollup: str) -> str:
    """The key prefix of one rollup's day files."""
    return f"{DAY_DIR}/{rollup}"


def day_key(rollup: str, date: str, digest: str) -> str:
    """The key of `rollup`'s day file of `date` standing for the attempt files of `digest`."""
    return f"{day_tree(rollup)}/date={date}/{digest}.parquet"


def digest(names: Iterable[str]) -> str:
    """The digest of counted attempt files named ``hour=HH/NAME`` (the day before's: ``before/...``)."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:24]


@cache
def layout() -> str:
    """Named in every digest: the day files' layout, down to what decides their columns.

    A day file of another layout never counts, even for a day whose day
    before has no files, and is built again: one of an earlier release, or
    built before a rollup's SQL (comments aside), the attempt contract's
    columns, the summary's, or DuckDB's version (which types the rollups'
    results) changed. So every day file that counts has the columns of today:
    the by-day views read them without matching columns by name
    (`queries.catalog.day_view_sql`), which DuckDB does for every file each
    time a query names the view. A change to how this module builds them
    raises `_LAYOUT_VERSION` by hand.
    """
    statements = [uncommented(rollup_sql(name)) for name in (*DAY_ROLLUPS, "macros")]
    contract = [f"{column.name} {column.sql_type}" for column in COLUMNS]
    summary = [f"{name} {sql_type}" for name, sql_type in SUMMARY_COLUMNS]
    return f"layout/{_LAYOUT_VERSION}/" + digest([*statements, *contract, *summary, duckdb.__version__])


#: The version of how this module builds day files: raised by any change to what they hold.
_LAYOUT_VERSION = 3


def day_digests_of(by_day: dict[str, frozenset[str]]) -> dict[str, str]:
    """Per date of `by_day` (`counted_by_day`), the digest of its counted files and the day before's."""
    return {
        date: digest([layout(), *names, *(f"before/{name}" for name in by_day.get(_day_before(date), ()))])
        for date, names in by_day.items()
    }


def _day_before(date: str) -> str:
    return (dt.date.fromisoformat(date) - dt.timedelta(days=1)).isoformat()


def counted_names(files: HourFiles) -> frozenset[str]:
    """The attempt files of one hour that readers count (`ingest.manifests`' rules).

    A compaction's output counts when a done manifest names it and nothing
    superseded it; any other file unless a done compaction superseded it.
    """
    if files.state is None:
        return frozenset(name for name in files.names if not name.startswith(COMPACT_PREFIX))
    hidden, outputs = files.state.hidden(), files.state.counted_outputs()
    return frozenset(
        name
        for name in files.names
        if (name in outputs if name.startswith(COMPACT_PREFIX) else name not in hidden)
    )


def counted_by_day(hours: Iterable[HourFiles]) -> dict[str, frozenset[str]]:
    """Per date, its counted attempt files named ``hour=HH/NAME``; dates with none left out."""
    by_day: dict[str, set[str]] = {}
    for files in hours:
        names = counted_names(files)
        if names:
            by_day.setdefault(files.date, set()).update(f"hour={files.hour:02d}/{name}" for name in names)
    return {date: frozenset(names) for date, names in by_day.items()}


def day_digests(store: LogStore, manifests: ManifestCache | None = None) -> dict[str, str]:
    """Per date with attempt files, the digest a day file must have to count now."""
    return day_digests_of(counted_by_day(log_hours(store, manifests)))


def day_files(store: LogStore) -> dict[tuple[str, str], set[str]]:
    """(rollup, date) -> the digests of its day files present."""
    found: dict[tuple[str, str], set[str]] = {}
    for key in store.keys(f"{DAY_DIR}/"):
        parts = key.removeprefix(f"{DAY_DIR}/").split("/")
        if len(parts) == 3 and parts[1].startswith("date=") and parts[2].endswith(".parquet"):
            found.setdefault((parts[0], parts[1].removeprefix("date=")), set()).add(
                parts[2][: -len(".parquet")]
            )
    return found


def covered_days(digests: dict[str, str], present: dict[tuple[str, str], set[str]]) -> frozenset[str]:
    """The dates whose day file of every rollup has the digest of what counts now."""
    return frozenset(
        date
        for date, wanted in digests.items()
        if all(wanted in present.get((name, date), ()) for name in DAY_FILES)
    )


@dataclass
class DayBuildResult:
    """What one `build_days` run did."""

    built: list[str]
    """Dates whose day files were written."""
    deleted: int = 0
    """Superseded day files deleted (past their grace)."""
    unready: list[str] = field(default_factory=list)
    """Dates left alone: an attempt file of the day, or of the day before for `CARRIED`, lacks a
    rollup (`deliverydash repair` mends it)."""


def build_days(
    store: LogStore,
    *,
    dates: Iterable[str] | None = None,
    close_after_s: float = CLOSE_AFTER_S,
    grace_s: float = GRACE_S,
    manifests: ManifestCache | None = None,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = now,
) -> DayBuildResult:
    """Write the day files of every closed day (or of `dates`) that has none counting now.

    A day is closed once its last hour is (`close_after_s` after midnight
    ending it). `progress` is called with 1 per day of the log looked at. Day files
    of other digests are deleted once `grace_s` old.
    """
    at = clock()
    hours = log_hours(store, manifests)
    by_day = counted_by_day(hours)
    digests = day_digests_of(by_day)
    present = day_files(store)
    wanted = set(dates) if dates is not None else None
    result = DayBuildResult(built=[])
    for date, names in sorted(by_day.items()):
        if progress is not None:
            progress(1)
        if wanted is not None and date not in wanted:
            continue
        if wanted is None and _day_end(date) + close_after_s > at:
            continue
        current = digests[date]
        if all(current in present.get((name, date), ()) for name in DAY_FILES):
            result.deleted += _delete_stale(store, date, current, at - grace_s)
        elif _build_day(store, date, names, by_day.get(_day_before(date), frozenset()), current):
            result.built.append(date)
            result.deleted += _delete_stale(store, date, current, at - grace_s)
        else:
            result.unready.append(date)
    return result


def _day_end(date: str) -> float:
    return dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC).timestamp() + 86_400


def _build_day(
    store: LogStore, date: str, names: frozenset[str], before: frozenset[str], current: str
) -> bool:
    """Merge the hourly rollups of `names` into day files (`CARRIED`'s, and `SUMMARY`, with the day
    before's files `before`); False when one is missing (nothing written)."""
    tables: dict[str, pa.Table] = {}
    try:
        for rollup in DAY_ROLLUPS:
            tables[rollup] = merge_day(rollup, _hourly_tables(store, rollup, date, names))
        day_before = merge_day(CARRIED, _hourly_tables(store, CARRIED, _day_before(date), before))
    except FileNotFoundError:
        return False
    tables[CARRIED] = _carried(tables[CARRIED], day_before, date)
    tables[SUMMARY] = _received_before(tables[CARRIED], day_before, date)
    for name, table in tables.items():
        store.publish(day_key(name, date, current), table, exclusive=True, **write_options(name))
    return True


def _hourly_tables(store: LogStore, rollup: str, date: str, names: Iterable[str]) -> list[pa.Table]:
    """`rollup`'s hourly files of the attempt files `names` (``hour=HH/NAME``) of `date`."""
    parts = []
    for name in sorted(names):
        hour, file_name = name.split("/")
        parts.append(store.read_table(rollup_key(rollup, date, int(hour.removeprefix("hour=")), file_name)))
    return parts


def _carried(day: pa.Table, before: pa.Table, date: str) -> pa.Table:
    """`CARRIED`'s day rows of `date` with its day-only columns, those that can count first.

    A job received the day before gets that day's deliveries and unanswered
    requests (0 when it had no row then). Any other row gets NULL, a job
    received two or more days before too: the query groups that job's rows
    (a job's records span a day or two unless its retry window is longer
    than a day).
    `may_count`: the row can make its job count as delivered twice, alone or
    with its job's other rows (docs/double-delivery.md).
    """
    with duckdb.connect(":memory:") as con:
        con.execute("SET threads = 1")  # the compacting round runs beside the engine's work
        con.register("day", day)
        con.register("before", before)
        order = ", ".join(f'"{name}"' for name in _SORT)
        received_before = f"received_hour = TIMESTAMPTZ '{_day_before(date)} 00:00:00+00'"
        carried = f"day.{received_before}"
        sql = f"""
            SELECT day.* REPLACE (
                day.deliveries >= 2 OR day.unanswered >= 1 OR day.replay_of IS NOT NULL
                    OR day.received_hour < TIMESTAMPTZ '{date} 00:00:00+00' AS may_count,
                CASE WHEN {carried} THEN coalesce(earlier.deliveries, 0) END AS earlier_deliveries,
                CASE WHEN {carried} THEN coalesce(earlier.unanswered, 0) END AS earlier_unanswered
            )
            FROM day
            LEFT JOIN (SELECT job_id, deliveries, unanswered FROM before WHERE {received_before}) AS earlier
                USING (job_id)
            ORDER BY may_count DESC, {order}"""
        return con.sql(sql).to_arrow_table().cast(day.schema)


def _received_before(day: pa.Table, before: pa.Table, date: str) -> pa.Table:
    """`SUMMARY` of `date`: the jobs received the day before, as received (no replay), delivered
    more than once, summed per destination, cause and certainty.

    `day` is `CARRIED`'s day rows of `date` (`_carried`), `before` those of the day before. A
    job received the day before has its figures whole in its row of `date`, which carries that
    day's, or else in its row of the day before: the same sums as `double_deliveries.sql` makes,
    unless the job has rows two or more days after it was received, which a 'rows_later' row of
    the later day's summary tells the query (which then classifies that day's jobs itself).
    """
    received = f"TIMESTAMPTZ '{_day_before(date)} 00:00:00+00'"
    columns = ", ".join(f'CAST({name} AS {sql_type}) AS "{name}"' for name, sql_type in SUMMARY_COLUMNS)
    with duckdb.connect(":memory:") as con:
        con.execute("SET threads = 1")  # the compacting round runs beside the engine's work
        connect_macros(con)
        con.register("day", day)
        con.register("before", before)
        sql = f"""
            WITH jobs AS (
                SELECT
                    workspace_id, destination_id, integration, job_id, event_count,
                    deliveries + earlier_deliveries AS deliveries,
                    unanswered + earlier_unanswered AS unanswered
                FROM day
                WHERE received_hour = {received} AND replay_of IS NULL
                UNION ALL
                SELECT workspace_id, destination_id, integration, job_id, event_count, deliveries, unanswered
                FROM before ANTI JOIN (SELECT job_id FROM day WHERE received_hour = {received}) USING (job_id)
                WHERE received_hour = {received} AND replay_of IS NULL
            ),
            rows AS (
                SELECT
                    {received} AS received_hour, workspace_id, destination_id, integration,
                    twice_cause(deliveries) AS cause, twice_certainty(deliveries) AS certainty,
                    sum(event_count) AS events, count(*) AS jobs, min(job_id, 3) AS examples,
                    NULL AS mark
                FROM jobs
                WHERE received_twice(deliveries, unanswered)
                GROUP BY ALL
                UNION ALL
                SELECT {received} AS received_hour, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 'summed'
                UNION ALL
                SELECT DISTINCT received_hour, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 'rows_later'
                FROM day
                WHERE received_hour < {received}
                UNION ALL
                SELECT DISTINCT received_hour, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 'replays'
                FROM day
                WHERE replay_of IS NOT NULL
            )
            SELECT {columns}
            FROM (
                SELECT *, examples[1] AS example_1, examples[2] AS example_2, examples[3] AS example_3
                FROM rows
            )
            ORDER BY mark NULLS LAST, received_hour, workspace_id, destination_id, integration, cause,
                certainty"""
        return con.sql(sql).to_arrow_table()


def merge_day(rollup: str, parts: Iterable[pa.Table]) -> pa.Table:
    """The hourly rollup rows `parts` of one day as day rows: hours truncated, measures re-aggregated."""
    schema = rollup_schemas()[rollup]
    rows = pa.concat_tables([_conformed(part, schema) for part in parts] or [empty_table(schema)])
    with duckdb.connect(":memory:") as con:
        con.execute("SET threads = 1")  # the compacting round runs beside the engine's work
        con.register("hourly", rows)
        types = dict(zip(con.table("hourly").columns, con.table("hourly").types, strict=True))
        selected = []
        for name in schema.names:
            column = f'"{name}"'
            if name in HOUR_COLUMNS:
                selected.append(f"{day_start(column)} AS {column}")
            else:
                selected.append(reaggregated(name, str(types[name])))
        order = ", ".join(f'"{name}"' for name in _SORT if name in schema.names)
        # GROUP BY ALL groups by the truncated hours (a column's name would group by the column).
        sql = f"SELECT {', '.join(selected)} FROM hourly GROUP BY ALL"
        if order:
            sql += f" ORDER BY {order}"
        return con.sql(sql).to_arrow_table().cast(schema)


def day_start(column: str) -> str:
    """SQL for the start of the UTC day of the timestamp `column` (quoted), as a TIMESTAMPTZ.

    In epoch seconds: truncating in the session's time zone (``date_trunc``
    between two ``timezone`` calls) took 8 times as long, on every row of a
    day read from its hourly files.
    """
    return f"to_timestamp(epoch({column})::BIGINT // 86400 * 86400)"


def reaggregated(name: str, sql_type: str) -> str:
    """The SELECT expression of column `name` (of DuckDB type `sql_type`) in rows summed per day:
    a measure re-aggregated, the latest error body kept, any other column a key (``GROUP BY ALL``)."""
    column = f'"{name}"'
    if name in MEASURES:
        return f"CAST({MEASURES[name]}({column}) AS {sql_type}) AS {column}"
    if name in LATEST:
        return f'arg_max({column}, "{LATEST[name]}") AS {column}'
    return column


def _conformed(part: pa.Table, schema: pa.Schema) -> pa.Table:
    """`part` with `schema`'s columns: one an older file lacks (written before the column was added to
    its rollup) is NULL, as the views read it (`union_by_name`)."""
    columns = [
        part.column(field.name) if field.name in part.column_names else pa.nulls(part.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)


def _delete_stale(store: LogStore, date: str, current: str, cutoff: float) -> int:
    """Delete `date`'s day files of other digests written before `cutoff`; how many."""
    stale = [
        stored.key
        for name in DAY_FILES
        for stored in store.list(f"{day_tree(name)}/date={date}/")
        if not stored.key.endswith(f"/{current}.parquet") and stored.modified < cutoff
    ]
    store.delete(stale)
    return len(stale)
