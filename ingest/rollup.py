"""Hourly rollups of the attempt log, kept next to it, file for file.

Every attempt file ``attempts/date=D/hour=H/NAME`` has one file of each
rollup at ``rollups/<rollup>/date=D/hour=H/NAME``, aggregated by the SQL in
`ingest/rollups/<rollup>.sql` (documented in docs/attempt-log.md). Because
measures are sums (or a histogram), rollups of several files add up, so
the dashboard and the day report read a few hundred thousand rollup rows
instead of a hundred million records.

Writers publish an attempt file's rollups right after the file itself.
`repair` mends what a crash between the two left behind, or a data
directory written before a rollup existed: it builds the rollups an attempt
file lacks and removes those whose attempt file is gone. Only writers and
`deliverydash repair` call it; readers call `out_of_step`, which lists
directories and writes nothing, and say what it finds.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.files import ATTEMPTS_DIR, clean_temporary, partition_key
from ingest.logstore import LocalStore, LogStore, open_store
from ingest.schema import ATTEMPT_SCHEMA, empty_table

ROLLUPS = (
    "outcomes",
    "integration_outcomes",
    "latency",
    "destination_latency",
    "errors",
    "delay",
    "destination_delay",
    "redeliveries",
    "message_index",
)
#: Rollups that get day files (`ingest.day_rollups`): every one but the message index, whose rows
#: are keyed by event and would not shrink in a day file (docs/trace.md).
DAY_ROLLUPS = tuple(rollup for rollup in ROLLUPS if rollup != "message_index")
ROLLUPS_DIR = "rollups"
_WRITE_OPTIONS = {"compression": "zstd", "compression_level": 1}
#: Small row groups where rows are sorted by workspace and destination and a
#: page reads one of them: DuckDB then skips the row groups of everyone else.
_ROW_GROUP_SIZE = {
    "destination_latency": 8_192,
    "errors": 8_192,
    "destination_delay": 8_192,
    "redeliveries": 8_192,
}
#: Column encodings beyond the defaults: the message index's sorted hashes as their differences
#: (about 2.5 bytes a row where plain takes 5; docs/trace.md), its other columns in dictionaries.
#: Its row groups are the default size: a lookup reads one per file, and on a 4.9M-attempt file
#: one of 122,880 rows took 5.5 ms where the statistics of 736 groups of 8,192 took 35 ms.
_ENCODINGS: dict[str, dict[str, object]] = {
    "message_index": {
        "use_dictionary": ["destination_id", "outcome"],
        "column_encoding": {"message_hash": "DELTA_BINARY_PACKED"},
    },
}
#: Attempt columns no rollup reads: `repair` leaves them on disk. The
#: events list is most of a file's bytes, and reading it would make
#: repairing a day's rollups several times slower.
UNREAD_COLUMNS = frozenset({"events"})
#: Rollups that read the events list all the same: `redeliveries` keeps a
#: replayed job's message id, `message_index` every event's hash. `repair` reads it only for them.
READS_EVENTS = frozenset({"redeliveries", "message_index"})


def _publish(
    rollup: str, rows: pa.Table, store: LogStore, date: str, hour: int, name: str, *, exclusive: bool = False
) -> None:
    store.publish(rollup_key(rollup, date, hour, name), rows, exclusive=exclusive, **write_options(rollup))


def write_options(rollup: str) -> dict[str, object]:
    """How a file of `rollup` is written (`LogStore.publish` options)."""
    return {
        **_WRITE_OPTIONS,
        "row_group_size": _ROW_GROUP_SIZE.get(rollup, 122_880),  # DuckDB's own
        **_ENCODINGS.get(rollup, {}),
    }


def rollup_key(rollup: str, date: str, hour: int, name: str) -> str:
    """The store key of one rollup's file for the attempt file `name` of partition date/hour."""
    return partition_key(rollup_tree(rollup), date, hour, name)


def rollup_tree(rollup: str) -> str:
    """The key prefix (directory) of one rollup's partitioned files."""
    return f"{ROLLUPS_DIR}/{rollup}"


def rollup_root(data_dir: str | os.PathLike[str], rollup: str) -> Path:
    """Directory of one rollup's partitioned files in a local data directory."""
    return Path(data_dir) / rollup_tree(rollup)


def rollup_glob(log: str | os.PathLike[str] | LogStore, rollup: str) -> str:
    """The glob readers use for one rollup of the log at `log`."""
    return open_store(log).path(f"{rollup_tree(rollup)}/date=*/hour=*/*.parquet")


@cache
def rollup_sql(name: str) -> str:
    """The SQL of `ingest/rollups/<name>.sql` (`macros` included)."""
    return resources.files("ingest").joinpath("rollups", f"{name}.sql").read_text(encoding="utf-8")


def uncommented(sql: str) -> str:
    """`sql` without its comments, blank lines and indentation: the same text for SQL whose comments
    alone differ. The project's SQL files hold no `--` inside a string literal."""
    lines = (re.sub(r"--.*", "", line).strip() for line in sql.splitlines())
    return "\n".join(line for line in lines if line)


def connect_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Define the macros the rollups use (`body_template`) on `con`."""
    con.execute(rollup_sql("macros"))


#: Rollups aggregated from another rollup's rows, not from the attempts: a
#: per-integration rollup is the per-destination one summed.
_BUILT_FROM = {
    "integration_outcomes": "outcomes",
    "latency": "destination_latency",
    "delay": "destination_delay",
}


class RollupBuilder:
    """Builds rollups on one DuckDB connection, made on first use and kept until `close`.

    Making a connection with the rollups' macros costs about 25 ms of CPU, a
    third of the rollups of a batch of 5,000 records: a process that builds
    them every second (the exporter's own, `delivery.export_process`) keeps
    one. Never across `os.fork`: a child that uses a DuckDB connection its
    parent made crashes (docs/benchmarks.md, issue 16).
    """

    def __init__(self) -> None:
        self._con: duckdb.DuckDBPyConnection | None = None

    def build(self, table: pa.Table, names: Iterable[str] = ROLLUPS) -> dict[str, pa.Table]:
        """Aggregate contract rows into each rollup of `names` (every rollup by default)."""
        wanted = list(names)
        sources = [_BUILT_FROM[name] for name in wanted if name in _BUILT_FROM]
        # Sources first, so the rollups built from them can read them by name.
        order = sorted(set(wanted) | set(sources), key=lambda name: name in _BUILT_FROM)
        con = self._connection()
        built: dict[str, pa.Table] = {}
        registered = ["batch"]
        con.register("batch", table)
        try:
            for name in order:
                built[name] = con.sql(rollup_sql(name)).to_arrow_table()
                if name in sources:
                    con.register(name, built[name])
                    registered.append(name)
        finally:
            for name in registered:  # the next batch must never read this one's rows
                con.unregister(name)
        return {name: built[name] for name in wanted}

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> RollupBuilder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            con = duckdb.connect(":memory:")
            con.execute("SET TimeZone = 'UTC'")  # hours are UTC hours
            con.execute("SET threads = 1")  # writers call this beside other work
            connect_macros(con)
            self._con = con
        return self._con


def build_rollups(
    table: pa.Table, names: Iterable[str] = ROLLUPS, *, builder: RollupBuilder | None = None
) -> dict[str, pa.Table]:
    """Aggregate contract rows into each rollup of `names` (every rollup by default), on `builder`'s
    connection if given, else on one made for this call."""
    if builder is not None:
        return builder.build(table, names)
    with RollupBuilder() as once:
        return once.build(table, names)


@cache
def rollup_schemas() -> dict[str, pa.Schema]:
    """Each rollup's columns and types (what it gives for no rows)."""
    return {name: table.schema for name, table in build_rollups(empty_table(ATTEMPT_SCHEMA)).items()}


def publish_rollups(
    table: pa.Table,
    store: LogStore,
    date: str,
    hour: int,
    name: str,
    *,
    exclusive: bool = False,
    builder: RollupBuilder | None = None,
) -> None:
    """Build (on `builder`, see `build_rollups`) and publish the rollups of one attempt file (`name`
    in partition date/hour).

    With `exclusive`, a rollup file already there is kept (`LogStore.publish`).
    """
    for rollup, rows in build_rollups(table, builder=builder).items():
        _publish(rollup, rows, store, date, hour, name, exclusive=exclusive)


_READ_COLUMNS = [name for name in ATTEMPT_SCHEMA.names if name not in UNREAD_COLUMNS]


def _listed(store: LogStore, tree: str, dates: Collection[str] | None = None) -> dict[str, float]:
    """Partition-relative keys (``date=D/hour=H/NAME``) of the Parquet files under `tree` (in the
    partitions of `dates` if given) -> modified time."""
    start = len(tree) + 1
    return {
        stored.key[start:]: stored.modified
        for prefix in _date_prefixes(tree, dates)
        for stored in store.list(prefix)
        if _is_partition_file(stored.key, start)
    }


def _partition_keys(store: LogStore, tree: str, dates: Collection[str] | None = None) -> set[str]:
    """The keys `_listed` gives, without their times (a local store then stats no file)."""
    start = len(tree) + 1
    return {
        key[start:]
        for prefix in _date_prefixes(tree, dates)
        for key in store.keys(prefix)
        if _is_partition_file(key, start)
    }


def _date_prefixes(tree: str, dates: Collection[str] | None) -> list[str]:
    return [f"{tree}/date="] if dates is None else [f"{tree}/date={date}/" for date in sorted(dates)]


def _is_partition_file(key: str, start: int) -> bool:
    return key.endswith(".parquet") and key.count("/", start) == 2


#: An attempt file younger than this may still be waiting for its writer to
#: publish its rollups: it is the writer's to finish, not out of step yet.
GRACE_S = 30.0


@dataclass(frozen=True, slots=True)
class OutOfStep:
    """Where a log's rollups and attempt files disagree: what `repair` would mend.

    Files are named by their key below their tree: ``date=D/hour=H/NAME``.
    """

    lacking: dict[str, tuple[str, ...]]
    """Attempt files older than `GRACE_S` -> the rollups they lack."""
    orphans: dict[str, frozenset[str]]
    """Per rollup, its files whose attempt file is gone."""

    @property
    def files(self) -> int:
        """Attempt files lacking a rollup plus orphaned rollup files: `repair`'s units of progress."""
        return len(self.lacking) + sum(len(files) for files in self.orphans.values())


def out_of_step(
    log: str | os.PathLike[str] | LogStore, *, grace_s: float = GRACE_S, dates: Collection[str] | None = None
) -> OutOfStep:
    """How the rollups of the log at `log` differ from its attempt files (in the partitions of
    `dates` if given); 0 `files` when in step.

    Reads listings (with each file's age), never a file's contents: cheap
    enough to ask before showing figures. Writes nothing. An attempt file
    younger than `grace_s` is left to its writer.
    """
    store = open_store(log)
    # Rollups are listed before attempts: a file published between the two
    # listings then looks like it lacks rollups (and is left to its writer
    # for GRACE_S), never like an orphan to delete.
    present = {rollup: _partition_keys(store, rollup_tree(rollup), dates) for rollup in ROLLUPS}
    attempt_files = _partition_keys(store, ATTEMPTS_DIR, dates)
    orphans = {rollup: frozenset(files - attempt_files) for rollup, files in present.items()}
    candidates = {}
    for name in attempt_files:
        missing = tuple(rollup for rollup in ROLLUPS if name not in present[rollup])
        if missing:
            candidates[name] = missing
    if not candidates:
        return OutOfStep(lacking={}, orphans=orphans)
    # Ages only when some file lacks rollups: a month's listing with a time per file took twice as
    # long. A file gone since the first listing lacks nothing.
    modified = _listed(store, ATTEMPTS_DIR, dates)
    cutoff = time.time() - grace_s
    lacking = {name: missing for name, missing in candidates.items() if modified.get(name, cutoff) < cutoff}
    return OutOfStep(lacking=lacking, orphans=orphans)


@dataclass(frozen=True, slots=True)
class RepairResult:
    """What `repair` did."""

    built: int
    """Rollup files built for attempt files that lacked them."""
    removed: int
    """Rollup files removed because their attempt file is gone."""


def repair(
    log: str | os.PathLike[str] | LogStore,
    progress: Callable[[int], None] | None = None,
    *,
    grace_s: float = GRACE_S,
) -> RepairResult:
    """Build the rollups attempt files lack and remove orphaned ones, as `out_of_step` finds them.

    `progress`, if given, is called with the units done since its last call
    (a `tqdm` bar's `update`): one per attempt file mended and per orphan
    removed, `out_of_step(log).files` in all. Safe beside a running
    writer: an attempt file younger than `grace_s` is left to it, and files
    are published whole (`LogStore.publish`). A writer that knows no other
    writer runs (an exporter at its start, after a crash a moment ago) may
    pass `grace_s=0` to mend its own latest files too.
    """
    store = open_store(log)
    todo = out_of_step(store, grace_s=grace_s)
    removed = 0
    for rollup, files in todo.orphans.items():
        store.delete(f"{rollup_tree(rollup)}/{name}" for name in sorted(files))
        removed += len(files)
        if progress is not None and files:
            progress(len(files))
    if isinstance(store, LocalStore):
        for rollup in ROLLUPS:
            clean_temporary(rollup_root(store.root, rollup))
    built = 0
    for name, rollups in sorted(todo.lacking.items()):
        built += _build_missing(store, name, rollups)
        if progress is not None:
            progress(1)
    return RepairResult(built=built, removed=removed)


def _build_missing(store: LogStore, name: str, rollups: tuple[str, ...]) -> int:
    """Publish `rollups` of attempt file `name` (``date=D/hour=H/NAME``); how many (0 if it went)."""
    date_part, hour_part, file_name = name.split("/")
    date, hour = date_part.removeprefix("date="), int(hour_part.removeprefix("hour="))
    try:
        columns = ATTEMPT_SCHEMA.names if READS_EVENTS.intersection(rollups) else _READ_COLUMNS
        rows = store.read_table(f"{ATTEMPTS_DIR}/{name}", schema=ATTEMPT_SCHEMA, columns=columns)
    except FileNotFoundError:  # removed since the listing (`simulate --replace`)
        return 0
    # Only the rollups the file lacks: a data directory written before a
    # rollup existed gets that one, without rebuilding the others.
    built = build_rollups(rows, rollups)
    for rollup, table in built.items():
        _publish(rollup, table, store, date, hour, file_name)
    return len(built)
