"""Hourly rollups of the attempt log, kept next to it, file for file.

Every attempt file ``attempts/date=D/hour=H/NAME`` has one file of each
rollup at ``rollups/<rollup>/date=D/hour=H/NAME``, aggregated by the SQL in
`ingest/rollups/<rollup>.sql` (documented in docs/attempt-log.md). Because
measures are sums (or a histogram), rollups of several files add up, so
the dashboard and the day report read a few hundred thousand rollup rows
instead of a hundred million records.

Writers publish an attempt file's rollups right after the file itself.
`reconcile` repairs what a crash between the two left behind: it builds the
rollups an attempt file lacks and removes those whose attempt file is gone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.files import clean_temporary, publish_parquet
from ingest.schema import ATTEMPT_SCHEMA

ROLLUPS = (
    "outcomes",
    "latency",
    "destination_latency",
    "errors",
    "delay",
    "destination_delay",
)
ROLLUPS_DIR = "rollups"
_WRITE_OPTIONS = {"compression": "zstd", "compression_level": 1}
#: Small row groups where rows are sorted by workspace and destination and a
#: page reads one of them: DuckDB then skips the row groups of everyone else.
_ROW_GROUP_SIZE = {
    "destination_latency": 8_192,
    "errors": 8_192,
    "destination_delay": 8_192,
}
#: Attempt columns no rollup reads: `reconcile` leaves them on disk. The
#: events list is most of a file's bytes, and reading it would make healing
#: a day's rollups several times slower.
UNREAD_COLUMNS = frozenset({"events"})


def _publish(
    rollup: str, rows: pa.Table, data_dir: str | os.PathLike[str], date: str, hour: int, name: str
) -> None:
    options = {**_WRITE_OPTIONS, "row_group_size": _ROW_GROUP_SIZE.get(rollup, 122_880)}  # DuckDB's own
    publish_parquet(rows, rollup_root(data_dir, rollup), date, hour, name, **options)


def rollup_root(data_dir: str | os.PathLike[str], rollup: str) -> Path:
    """Directory of one rollup's partitioned files."""
    return Path(data_dir) / ROLLUPS_DIR / rollup


def rollup_glob(data_dir: str | os.PathLike[str], rollup: str) -> str:
    """The glob readers use for one rollup."""
    return str(rollup_root(data_dir, rollup) / "date=*" / "hour=*" / "*.parquet")


@cache
def rollup_sql(name: str) -> str:
    """The SQL of `ingest/rollups/<name>.sql` (`macros` included)."""
    return resources.files("ingest").joinpath("rollups", f"{name}.sql").read_text(encoding="utf-8")


def connect_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Define the macros the rollups use (`body_template`) on `con`."""
    con.execute(rollup_sql("macros"))


#: Rollups aggregated from another rollup's rows, not from the attempts: a
#: per-integration histogram is the per-destination one summed.
_BUILT_FROM = {"latency": "destination_latency", "delay": "destination_delay"}


def build_rollups(table: pa.Table, names: Iterable[str] = ROLLUPS) -> dict[str, pa.Table]:
    """Aggregate contract rows into each rollup of `names` (every rollup by default)."""
    wanted = list(names)
    sources = [_BUILT_FROM[name] for name in wanted if name in _BUILT_FROM]
    # Sources first, so the rollups built from them can read them by name.
    order = sorted(set(wanted) | set(sources), key=lambda name: name in _BUILT_FROM)
    built: dict[str, pa.Table] = {}
    with duckdb.connect(":memory:") as con:
        con.execute("SET TimeZone = 'UTC'")  # hours are UTC hours
        con.execute("SET threads = 1")  # writers call this beside other work
        connect_macros(con)
        con.register("batch", table)
        for name in order:
            built[name] = con.sql(rollup_sql(name)).to_arrow_table()
            if name in sources:
                con.register(name, built[name])
    return {name: built[name] for name in wanted}


@cache
def rollup_schemas() -> dict[str, pa.Schema]:
    """Each rollup's columns and types (what it gives for no rows)."""
    return {name: table.schema for name, table in build_rollups(ATTEMPT_SCHEMA.empty_table()).items()}


def publish_rollups(
    table: pa.Table, data_dir: str | os.PathLike[str], date: str, hour: int, name: str
) -> None:
    """Build and publish the rollups of one attempt file (`name` in partition date/hour)."""
    for rollup, rows in build_rollups(table).items():
        _publish(rollup, rows, data_dir, date, hour, name)


_READ_COLUMNS = [name for name in ATTEMPT_SCHEMA.names if name not in UNREAD_COLUMNS]


def _relative_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.glob("date=*/hour=*/*.parquet")} if root.is_dir() else set()


#: An attempt file younger than this may still be waiting for its writer to
#: publish its rollups; readers leave it to the writer instead of doing the work twice.
GRACE_S = 30.0


def _differences(
    data_dir: str | os.PathLike[str], attempts_root: Path
) -> tuple[dict[str, set[Path]], dict[Path, list[str]]]:
    """(orphaned rollup files per rollup, settled attempt files -> the rollups they lack)."""
    # Rollups are listed before attempts: a file published between the two
    # listings then looks like it lacks rollups (and is left to its writer
    # for GRACE_S), never like an orphan to delete.
    present = {rollup: _relative_files(rollup_root(data_dir, rollup)) for rollup in ROLLUPS}
    attempt_files = _relative_files(attempts_root)
    orphans = {rollup: files - attempt_files for rollup, files in present.items()}
    cutoff = time.time() - GRACE_S
    lacking: dict[Path, list[str]] = {}
    for rollup, files in present.items():
        for missing in attempt_files - files:
            lacking.setdefault(missing, []).append(rollup)
    settled = {}
    for path, rollups in lacking.items():
        try:
            if (attempts_root / path).stat().st_mtime < cutoff:
                settled[path] = rollups
        except FileNotFoundError:  # removed since the listing
            pass
    return orphans, settled


def reconcile(data_dir: str | os.PathLike[str], attempts_root: Path) -> tuple[int, int]:
    """Build missing rollups and remove orphaned ones; return (built, removed) file counts."""
    orphans, lacking = _differences(data_dir, attempts_root)
    removed = 0
    for rollup, files in orphans.items():
        root = rollup_root(data_dir, rollup)
        for orphan in files:
            (root / orphan).unlink(missing_ok=True)
            removed += 1
        clean_temporary(root)
    built = 0
    for path, rollups in sorted(lacking.items()):
        date, hour = path.parts[0].removeprefix("date="), int(path.parts[1].removeprefix("hour="))
        # Only the rollups the file lacks: a data directory written before a
        # rollup existed gets that one, without rebuilding the others.
        rows = pq.read_table(attempts_root / path, schema=ATTEMPT_SCHEMA, columns=_READ_COLUMNS)
        for rollup, table in build_rollups(rows, rollups).items():
            _publish(rollup, table, data_dir, date, hour, path.name)
            built += 1
    return built, removed


def in_step(data_dir: str | os.PathLike[str], attempts_root: Path) -> bool:
    """Whether no rollup lacks its attempt file and no settled attempt file lacks a rollup."""
    orphans, lacking = _differences(data_dir, attempts_root)
    return not lacking and not any(orphans.values())
