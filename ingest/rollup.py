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
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.files import clean_temporary, publish_parquet
from ingest.schema import ATTEMPT_SCHEMA

ROLLUPS = ("outcomes", "latency", "errors")
ROLLUPS_DIR = "rollups"
_WRITE_OPTIONS = {"compression": "zstd", "compression_level": 1, "row_group_size": 122_880}


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


def build_rollups(table: pa.Table) -> dict[str, pa.Table]:
    """Aggregate contract rows into every rollup."""
    with duckdb.connect(":memory:") as con:
        con.execute("SET TimeZone = 'UTC'")  # hours are UTC hours
        con.execute("SET threads = 1")  # writers call this beside other work
        connect_macros(con)
        con.register("batch", table)
        return {name: con.sql(rollup_sql(name)).to_arrow_table() for name in ROLLUPS}


@cache
def rollup_schemas() -> dict[str, pa.Schema]:
    """Each rollup's columns and types (what it gives for no rows)."""
    return {name: table.schema for name, table in build_rollups(ATTEMPT_SCHEMA.empty_table()).items()}


def publish_rollups(
    table: pa.Table, data_dir: str | os.PathLike[str], date: str, hour: int, name: str
) -> None:
    """Build and publish the rollups of one attempt file (`name` in partition date/hour)."""
    for rollup, rows in build_rollups(table).items():
        publish_parquet(rows, rollup_root(data_dir, rollup), date, hour, name, **_WRITE_OPTIONS)


def _relative_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.glob("date=*/hour=*/*.parquet")} if root.is_dir() else set()


def reconcile(data_dir: str | os.PathLike[str], attempts_root: Path) -> tuple[int, int]:
    """Build missing rollups and remove orphaned ones; return (built, removed) file counts."""
    attempt_files = _relative_files(attempts_root)
    built = removed = 0
    for rollup in ROLLUPS:
        root = rollup_root(data_dir, rollup)
        present = _relative_files(root)
        for orphan in present - attempt_files:
            (root / orphan).unlink(missing_ok=True)
            removed += 1
        clean_temporary(root)
        for missing in sorted(attempt_files - present):
            date, hour = missing.parts[0].removeprefix("date="), int(missing.parts[1].removeprefix("hour="))
            rows = build_rollups(pq.read_table(attempts_root / missing, schema=ATTEMPT_SCHEMA))[rollup]
            publish_parquet(rows, root, date, hour, missing.name, **_WRITE_OPTIONS)
            built += 1
    return built, removed


def in_step(data_dir: str | os.PathLike[str], attempts_root: Path) -> bool:
    """Whether every attempt file has its rollups and no rollup lacks its attempt file."""
    attempt_files = _relative_files(attempts_root)
    return all(_relative_files(rollup_root(data_dir, r)) == attempt_files for r in ROLLUPS)
