"""What every query connection defines, and how it is locked down: the views, the macros, the sandbox.

Two kinds of connection define the same catalog: `queries.log.AttemptLog`'s
in-memory one, where the named queries run, and the SQL sandbox's worker
(`queries.sandbox_worker`), where people's SQL runs on a catalog it cannot
change. Both call `define_views` and `define_macros`, then `lock_down`.

The views, each over its Parquet files (``date=*/hour=*/*.parquet``,
hive-partitioned):

* `attempts`: the raw log, ``<data_dir>/attempts/``, one row per record;
* `outcomes`, `latency_histogram`, `destination_latency_histogram`,
  `error_templates`, `delay_histogram`, `destination_delay_histogram`:
  the hourly rollups of `ingest.rollup` (``<data_dir>/rollups/<rollup>/``,
  `ROLLUP_VIEWS` below), one file of each per attempt file.

DuckDB re-globs on every query, so newly published files are seen at once.
A column added to the contract or a rollup is NULL in files written before
it (`union_by_name`); should no file have it yet, the view adds it
(`padded_view_sql`), so queries naming it still run on old data. Until a
view's first file exists its glob matches nothing and `read_parquet` would
raise, so the view is then defined over an empty selection typed like the
files (`view_sources` says which views have files, and which files compaction
hides: `ingest.manifests`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import duckdb

from ingest.compaction import date_of, log_hours
from ingest.day_rollups import (
    HOUR_COLUMNS,
    SUMMARY,
    SUMMARY_COLUMNS,
    counted_by_day,
    covered_days,
    day_digests_of,
    day_files,
    day_key,
    day_start,
    reaggregated,
)
from ingest.files import ATTEMPTS_DIR, partition_key
from ingest.logstore import LogStore
from ingest.manifests import COMPACT_PREFIX, HourState, ManifestCache, counted_outputs, hidden_files
from ingest.rollup import DAY_ROLLUPS, ROLLUPS_DIR, connect_macros, rollup_tree
from ingest.schema import COLUMNS
from queries.loader import load_macros
from queries.rollup_columns import ROLLUP_VIEW_COLUMNS

VIEW = "attempts"
#: The views over the rollups, each with the rollup (`ingest.rollup.ROLLUPS`) it reads.
ROLLUP_VIEWS = {
    "outcomes": "outcomes",
    "integration_outcomes": "integration_outcomes",
    "latency_histogram": "latency",
    "destination_latency_histogram": "destination_latency",
    "error_templates": "errors",
    "delay_histogram": "delay",
    "destination_delay_histogram": "destination_delay",
    "redeliveries": "redeliveries",
    "message_index": "message_index",
}
#: By-day views whose days read from hourly files are summed per day, as their day files are
#: (`day_view_sql`): `double_deliveries.sql` counts on one row per job and date there. The others
#: need not, and summing a day of `outcomes` would cost every query over days.
SUMMED_PER_DAY = frozenset({"redeliveries"})
#: Every view the connection defines over the log's files.
VIEWS = (VIEW, *ROLLUP_VIEWS)
#: The view of the day files' sums of double deliveries per day received (`ingest.day_rollups.SUMMARY`):
#: in the by-day catalog, over the days built. The hourly catalog has none (it is the sandbox's): a
#: named query that reads it gets an empty one on its own cursor, so that it binds there too.
SUMMARY_VIEW = SUMMARY
#: Every view a named query may read.
QUERY_VIEWS = (*VIEWS, SUMMARY_VIEW)
#: Hive partition columns each view adds after its files' columns.
PARTITION_COLUMNS = (("date", "DATE"), ("hour", "INTEGER"))


def literal(text: str) -> str:
    """A SQL string literal; only for paths and settings chosen by the program."""
    return "'" + text.replace("'", "''") + "'"


def identifier(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def file_view_sql(
    parquet_glob: str, view: str = VIEW, hidden: Sequence[str] = (), compacted: Sequence[str] = ()
) -> str:
    """The view over the Parquet files, as docs/sql.md shows it, honouring compaction's manifests.

    A compaction's output (``compact-*``) counts only when it is one of
    `compacted` (named by a done manifest, not superseded), and any other
    file unless it is one of `hidden` (superseded by a done compaction);
    `ingest.manifests` says why. DuckDB skips the files left out whole, by name.
    """
    rows = _counted_files_sql([parquet_glob], hidden, compacted)
    return f"CREATE OR REPLACE VIEW {identifier(view)} AS {rows}"


def _counted_files_sql(
    globs: Sequence[str],
    hidden: Sequence[str],
    compacted: Sequence[str],
    replace: str = "",
    anchor: str | None = None,
) -> str:
    """The rows of the files of `globs` that count (`file_view_sql`), with `replace` (a REPLACE clause).

    Columns are matched by name across the files (`union_by_name`), which binds every file's
    schema each time a query names the view; with an `anchor` (`anchor_sql`), a file of no rows
    with every column of today read first, each file's columns are matched to the anchor's
    instead, and a file lacking one is an error (`is_schema_mismatch`).
    """
    by_name = "false" if anchor else "true"
    options = (
        f"hive_partitioning = true, hive_types = {{'date': DATE, 'hour': INTEGER}}, union_by_name = {by_name}"
    )
    small = f"NOT contains(filename, '/{COMPACT_PREFIX}')"
    if hidden:
        small += f" AND filename NOT IN ({_list(hidden)})"
    counted = f"({small}) OR filename IN ({_list(compacted)})" if compacted else small
    if anchor:
        files = f"[{literal(anchor)}, {_list(globs)}]"  # the anchor first: its columns are the view's
    else:
        files = literal(globs[0]) if len(globs) == 1 else f"[{_list(globs)}]"
    return (
        f"SELECT * EXCLUDE (filename) {replace}"
        f"FROM read_parquet({files}, {options}, filename = true) WHERE {counted}"
    )


def _list(paths: Sequence[str]) -> str:
    return ", ".join(literal(path) for path in sorted(paths))


def _empty_select(view: str, *, partitions: bool = True) -> str:
    """No rows, typed as `view` (with its Hive partition columns unless not `partitions`)."""
    typed = [*view_columns(view), *(PARTITION_COLUMNS if partitions else ())]
    columns = ", ".join(f"CAST(NULL AS {sql_type}) AS {identifier(name)}" for name, sql_type in typed)
    return f"SELECT {columns} WHERE false"


def empty_view_sql(view: str = VIEW, *, temp: bool = False) -> str:
    """The same columns and types as `file_view_sql` gives for `view`, and no rows (a TEMP view of
    the cursor with `temp`)."""
    kind = "TEMP VIEW" if temp else "VIEW"
    return f"CREATE OR REPLACE {kind} {identifier(view)} AS {_empty_select(view)}"


def padded_view_sql(
    parquet_glob: str, view: str = VIEW, hidden: Sequence[str] = (), compacted: Sequence[str] = ()
) -> str:
    """`file_view_sql` for files written before a column was added: every column of today, NULL where absent.

    `union_by_name` gives a column NULL in the files that lack it only if one
    file has it; with none, a query naming it would fail. The empty selection
    typed as today's files (`empty_view_sql`) supplies it.
    """
    rows = _padded_rows(view, [parquet_glob], hidden, compacted)
    return f"CREATE OR REPLACE VIEW {identifier(view)} AS {rows}"


def _padded_rows(
    view: str,
    globs: Sequence[str],
    hidden: Sequence[str],
    compacted: Sequence[str],
    anchor: str | None = None,
) -> str:
    """The counted rows of `globs` (none when empty) under the typed empty selection of `view`."""
    rows = _empty_select(view)
    if globs:
        rows += f" UNION ALL BY NAME ({_counted_files_sql(globs, hidden, compacted, anchor=anchor)})"
    return rows


def anchor_sql(view: str, path: str) -> str:
    """A statement writing `path`: a Parquet file of no rows with every column of `view`'s files today,
    as the first file of a range view (`range_view_sql`). Run on a connection of its own: the
    query connections cannot write files.

    Read first, its types are the view's: a file whose column has another type is cast to it, as
    the padded views cast today (a cast that fails is `is_schema_mismatch`). A column's type is
    never changed in place (docs/attempt-log.md): a new type would be a new column.
    """
    return f"COPY ({_empty_select(view, partitions=False)}) TO {literal(path)} (FORMAT parquet)"


def is_schema_mismatch(exc: duckdb.Error) -> bool:
    """Whether DuckDB refused a file of an anchored view: lacking a column of the anchor's that the
    query reads, or holding a value the anchor's type cannot take."""
    return "schema mismatch" in str(exc) or "failed to cast column" in str(exc)


def view_columns(view: str) -> tuple[tuple[str, str], ...]:
    """(name, DuckDB type) of the columns in `view`'s files: the contract's, or a rollup's."""
    if view == VIEW:
        return _ATTEMPT_COLUMNS
    if view == SUMMARY_VIEW:
        return SUMMARY_COLUMNS
    return ROLLUP_VIEW_COLUMNS[view]


_ATTEMPT_COLUMNS = tuple((c.name, c.sql_type) for c in COLUMNS)


def view_trees() -> dict[str, str]:
    """Each view's tree: the key prefix its partitions sit under."""
    return {VIEW: ATTEMPTS_DIR} | {view: rollup_tree(rollup) for view, rollup in ROLLUP_VIEWS.items()}


@dataclass(frozen=True, slots=True)
class ViewSource:
    """What one view reads: its files' glob, whether any file exists yet, and the files it leaves out."""

    glob: str
    backed: bool
    hidden: tuple[str, ...] = ()
    """Files superseded by a done compaction."""
    compacted: tuple[str, ...] = ()
    """Outputs of done compactions that count."""


def view_sources(store: LogStore, manifests: ManifestCache) -> dict[str, ViewSource]:
    """Each view's source in the log at `store` now.

    The manifests are read now; the files are globbed when a query runs.
    A compaction that begins or ends in between is left out whole: its
    outputs are no `compacted` file, and the files it merged still count.
    """
    left_out = _left_out(store, manifests.hours())
    sources = {}
    for view, tree in view_trees().items():
        glob = store.path(f"{tree}/date=*/hour=*/*.parquet")
        sources[view] = ViewSource(glob, store.has_files(f"{tree}/date="), *left_out(tree))
    return sources


def _left_out(
    store: LogStore, states: dict[tuple[str, int], HourState]
) -> Callable[[str], tuple[tuple[str, ...], tuple[str, ...]]]:
    """What the manifests' `states` say, as a tree's (hidden, compacted) paths (`ViewSource`)."""
    hidden, compacted = hidden_files(states), counted_outputs(states)

    def paths(tree: str, names: dict[tuple[str, int], frozenset[str]]) -> tuple[str, ...]:
        return tuple(
            sorted(
                store.path(partition_key(tree, date, hour, name))
                for (date, hour), group in names.items()
                for name in group
            )
        )

    return lambda tree: (paths(tree, hidden), paths(tree, compacted))


def range_view_sql(
    store: LogStore,
    manifests: ManifestCache,
    dates: Sequence[str],
    views: Collection[str] = VIEWS,
    anchors: Mapping[str, str] | None = None,
) -> list[str]:
    """Statements making each of `views`, as TEMP views, read only the partitions of `dates`.

    A named query over hours of a day reads a few days' partitions (its
    cohort's retries run a day past the range), but a view over every
    partition opens every file's footer when the query is bound (`union_by_name`):
    over a month of history that took longer than the query. These views list
    only the `dates` partitions that exist (a glob matching nothing is an
    error), leave out what the manifests hide, and are padded with today's
    columns (`padded_view_sql`). Binding a view opens its files' footers, so
    a query gets only the views it reads (`queries.loader.names_read`).

    A view with a file of `anchors` (view to path, `anchor_sql`) reads its files' columns as the
    anchor's, not each by name: matching 100 files' columns by name took 3-4 ms each time a query
    named the view, several times a query (docs/benchmarks.md). Should a file lack one of them (a
    file written before the column was added), the query fails (`is_schema_mismatch`), and the
    caller reads those dates without anchors.
    """
    left_out = _left_out(store, manifests.hours())
    statements = []
    for view, tree in view_trees().items():
        if view not in views:
            continue
        globs = [
            store.path(f"{tree}/date={date}/hour=*/*.parquet")
            for date in dates
            if store.has_files(f"{tree}/date={date}/")
        ]
        rows = _padded_rows(view, globs, *left_out(tree), anchor=(anchors or {}).get(view))
        statements.append(f"CREATE OR REPLACE TEMP VIEW {identifier(view)} AS {rows}")
    return statements


@dataclass(frozen=True, slots=True)
class DaySource:
    """What one rollup's by-day view reads: the day files that count, and the other days' hourly files."""

    day_files: tuple[str, ...]
    """Day files (`ingest.day_rollups`) whose digest is that of the attempt files counting now."""
    hourly: tuple[str, ...]
    """Globs of the hourly files of each day without such a day file (and with files of this rollup)."""
    hidden: tuple[str, ...] = ()
    compacted: tuple[str, ...] = ()
    """As `ViewSource`'s, for the hourly files."""

    def day_files_of(self, dates: Collection[str]) -> tuple[str, ...] | None:
        """The day files of `dates`, which fix what the view holds for them (a day file is never
        rewritten: a day built anew gets another digest); None if one of them is read from hourly
        files, whose partitions gain files."""
        if any(date_of(glob) in dates for glob in self.hourly):
            return None
        return tuple(path for path in self.day_files if date_of(path) in dates)


@dataclass(frozen=True, slots=True)
class DayCatalog:
    """What the by-day catalog reads now: each view's source, and the days built."""

    sources: dict[str, DaySource]
    covered: frozenset[str]
    """The dates read from their day files (`ingest.day_rollups.covered_days`)."""


def day_view_sources(store: LogStore, manifests: ManifestCache) -> DayCatalog:
    """The views of the by-day catalog: each rollup view from its day files (no `attempts`).

    A day counts its day files when the digest of its counted attempt files
    (one listing of the attempt log and its manifests) is theirs; every
    other day is read from its hourly files, hours truncated to the day
    (docs/log-store.md, "Ranges of whole days").
    """
    hours = log_hours(store, manifests)
    # The states log_hours read: one listing of the manifests for both uses.
    left_out = _left_out(store, {(h.date, h.hour): h.state for h in hours if h.state is not None})
    by_day = counted_by_day(hours)
    digests = day_digests_of(by_day)
    covered = covered_days(digests, day_files(store))
    sources = {}
    for view, rollup in ROLLUP_VIEWS.items():
        tree = rollup_tree(rollup)
        # A rollup without day files (the message index) reads its hourly files on every day.
        with_days = covered if rollup in DAY_ROLLUPS else frozenset()
        days = tuple(store.path(day_key(rollup, date, digests[date])) for date in sorted(with_days))
        others = tuple(
            store.path(f"{tree}/date={date}/hour=*/*.parquet")
            for date in sorted(by_day.keys() - with_days)
            if store.has_files(f"{tree}/date={date}/")
        )
        sources[view] = DaySource(days, others, *left_out(tree))
    summaries = tuple(store.path(day_key(SUMMARY, date, digests[date])) for date in sorted(covered))
    sources[SUMMARY_VIEW] = DaySource(summaries, ())
    return DayCatalog(sources, covered)


def day_view_sql(view: str, source: DaySource, *, temp: bool = False) -> str:
    """The by-day view of a rollup: day rows from its day files and from other days' hourly files
    (a TEMP view of its cursor, with `temp`).

    Typed like the hourly view (`_empty_select`), with `hour` NULL: a row
    stands for a whole day. The hourly rows of the views in `SUMMED_PER_DAY`
    are summed per day as their day files' are, so that they too hold one row per key and day.
    """
    parts = [_empty_select(view)]
    if source.day_files:
        # Every day file that counts has today's columns (`ingest.day_rollups.layout`): matching them
        # by name took 10-25 ms each time a query named the view, several times a query.
        options = "hive_partitioning = true, hive_types = {'date': DATE}, union_by_name = false"
        parts.append(f"SELECT * FROM read_parquet([{_list(source.day_files)}], {options})")
    if source.hourly:
        names = {name for name, _ in view_columns(view)}
        truncated = [f"{day_start(identifier(c))} AS {identifier(c)}" for c in HOUR_COLUMNS if c in names]
        replace = f"REPLACE ({''.join(c + ', ' for c in truncated)}CAST(NULL AS INTEGER) AS hour) "
        hourly = _counted_files_sql(source.hourly, source.hidden, source.compacted, replace)
        if view in SUMMED_PER_DAY:
            # Every column of today, NULL in files written before it was added (as `padded_view_sql`):
            # the sums name each one.
            summed = [reaggregated(name, sql_type) for name, sql_type in view_columns(view)]
            padded = f"({hourly}) UNION ALL BY NAME ({_empty_select(view)})"
            hourly = f"SELECT {', '.join(summed)}, date, hour FROM ({padded}) GROUP BY ALL"
        parts.append(hourly)
    kind = "TEMP VIEW" if temp else "VIEW"
    return f"CREATE OR REPLACE {kind} {identifier(view)} AS " + " UNION ALL BY NAME ".join(
        f"({part})" for part in parts
    )


def define_view(
    con: duckdb.DuckDBPyConnection, view: str, source: ViewSource, padded: bool | None = None
) -> bool | None:
    """(Re)define `view` over its files when it has some, else over an empty selection of its columns.

    Returns whether the view had to be padded (`padded_view_sql`), None
    when it has no files. Finding out reads every file's footer, which an
    object store makes slow: a caller redefining the view over the same
    files (compaction changed only which count) passes the last answer.
    """
    if not source.backed:
        con.execute(empty_view_sql(view))
        return None
    if padded is None:
        con.execute(file_view_sql(source.glob, view, source.hidden, source.compacted))
        padded = not _has_every_column(con, view)
        if not padded:
            return padded  # defined already: binding it again would read every footer again
    make = padded_view_sql if padded else file_view_sql
    con.execute(make(source.glob, view, source.hidden, source.compacted))
    return padded


def define_macros(con: duckdb.DuckDBPyConnection) -> None:
    """The macros the named queries share (`queries/_macros.sql`), once the views they read exist.

    DuckDB binds a table macro's body when it is created, so the views must
    exist first (`define_catalog` binds them over empty views of the same
    columns; a macro finds its tables again when it runs). `body_template`
    and the rollups' other macros (`ingest.rollup.connect_macros`) come
    before the views, which need none.
    """
    con.execute(load_macros())


def _has_every_column(con: duckdb.DuckDBPyConnection, view: str) -> bool:
    """Whether `view`'s files, together, have every column of today's (see `padded_view_sql`)."""
    present = {row[0] for row in con.execute(f"DESCRIBE {identifier(view)}").fetchall()}
    return all(name in present for name, _ in view_columns(view))


def define_catalog(con: duckdb.DuckDBPyConnection, sources: Mapping[str, ViewSource]) -> None:
    """Every macro and view, in the order DuckDB needs them.

    The macros are bound over empty views of the same columns, which the
    views over the files then replace: binding a macro binds the views it
    reads, and a view over a month of hourly files reads some 3,700 footers
    each time it is bound (the macros took 3 s of a month's 14 s, measured
    in docs/benchmarks.md). A macro finds its tables when it runs, so it
    reads the views over the files.
    """
    connect_macros(con)
    for view in sources:
        con.execute(empty_view_sql(view))
    define_macros(con)
    for view, source in sources.items():
        define_view(con, view, source)


def readable_dirs(store: LogStore) -> list[str]:
    """What a query may read: the two trees the views read, not the log's root itself.

    A local log's root is the engine's data directory, whose own state SQL
    has no business reading; an object store's, the bucket's other prefixes.
    """
    return [store.path(f"{ATTEMPTS_DIR}/"), store.path(f"{ROLLUPS_DIR}/")]


def lock_down(
    con: duckdb.DuckDBPyConnection,
    readable: Sequence[str],
    *,
    temp_directory: str | os.PathLike[str],
    memory_limit: str | None = None,
    threads: int | None = None,
) -> None:
    """The sandbox: read only `readable`, load nothing, spill to `temp_directory` ('' for nowhere), locked.

    DuckDB lets a query read and list its temp directory whatever
    `allowed_directories` says (checked on 2.0), so the temp directory must
    be private to the program or absent: `''` turns spilling off, and a
    query that outgrows `memory_limit` fails instead of writing to disk.
    Order matters: directories must be allowed before external access is
    switched off, and nothing can change once the configuration is locked.
    """
    allowed = ", ".join(literal(d) for d in readable)
    settings = [
        "SET GLOBAL TimeZone = 'UTC'",
        f"SET temp_directory = {literal(os.fspath(temp_directory))}",
        f"SET allowed_directories = [{allowed}]",
        "SET enable_external_access = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET python_enable_replacements = false",
        # Files are immutable once published, so their footers can be cached. A
        # rollup `repair` rebuilds under a lost file's name is newer than the
        # cached footer, and DuckDB, which compares modification times, rereads it.
        "SET parquet_metadata_cache = true",
    ]
    if memory_limit is not None:
        settings.append(f"SET memory_limit = {literal(memory_limit)}")
    if threads is not None:
        settings.append(f"SET threads = {int(threads)}")
    settings.append("SET lock_configuration = true")
    for statement in settings:
        con.execute(statement)
