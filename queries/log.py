"""The attempt log opened for queries: a sandboxed in-memory DuckDB with seven views.

`connect(data_dir)` opens an in-memory connection and defines, each over
its Parquet files (``date=*/hour=*/*.parquet``, hive-partitioned):

* `attempts`: the raw log, ``<data_dir>/attempts/``, one row per record;
* `outcomes`, `latency_histogram`, `destination_latency_histogram`,
  `error_templates`, `delay_histogram`, `destination_delay_histogram`:
  the hourly rollups of `ingest.rollup`
  (``<data_dir>/rollups/<rollup>/``, `ROLLUP_VIEWS` below), one file of each
  per attempt file, which the named queries read.

DuckDB re-globs on every query, so newly published files are seen at once.
A column added to the contract or a rollup is NULL in files written before
it (`union_by_name`); should no file have it yet, the view adds it
(`padded_view_sql`), so queries naming it still run on old data.
Until a view's first file exists its glob matches nothing and `read_parquet`
would raise, so the view is then defined over an empty selection typed like
the files; every query checks for files first and switches the views over
(and back, should every file be removed).

Reading never writes. Should a writer have crashed between an attempt file
and its rollups, or the data directory predate a rollup, the rollups and
the log disagree until a writer or `deliverydash repair` runs
`ingest.rollup.repair`; `AttemptLog.rollups_out_of_step` counts the files
concerned, so that whoever shows figures can say they are incomplete.

The connection is a sandbox for user-written SQL (`AttemptLog.sql`): it
can read only the attempt log's and the rollups' directories, loads no
extensions, sees no Python variables, and its configuration is locked. It
runs in UTC, the zone of the `date`/`hour` partitions, and defines the
`body_template(body)` macro the `error_templates` rollup is made with and
the macros the named queries share (`queries/_macros.sql`).
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from types import TracebackType

import duckdb
import polars as pl

from ingest.files import attempts_glob, attempts_root
from ingest.rollup import ROLLUPS_DIR, connect_macros, out_of_step, rollup_glob, rollup_schemas
from ingest.schema import COLUMNS
from queries.errors import QueryError
from queries.loader import load_macros, load_query, parameter_names
from queries.readonly import read_only_statement
from queries.scope import Scope, query_parameters

VIEW = "attempts"
#: The views over the rollups, each with the rollup (`ingest.rollup.ROLLUPS`) it reads.
ROLLUP_VIEWS = {
    "outcomes": "outcomes",
    "latency_histogram": "latency",
    "destination_latency_histogram": "destination_latency",
    "error_templates": "errors",
    "delay_histogram": "delay",
    "destination_delay_histogram": "destination_delay",
}
#: Every view the connection defines.
VIEWS = (VIEW, *ROLLUP_VIEWS)
#: Hive partition columns each view adds after its files' columns.
PARTITION_COLUMNS = (("date", "DATE"), ("hour", "INTEGER"))


def _literal(text: str) -> str:
    """A SQL string literal; only for paths and settings chosen by the program."""
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def file_view_sql(parquet_glob: str, view: str = VIEW) -> str:
    """The view over the Parquet files, as docs/sql.md shows it."""
    return (
        f"CREATE OR REPLACE VIEW {_identifier(view)} AS SELECT * FROM read_parquet({_literal(parquet_glob)}, "
        "hive_partitioning = true, hive_types = {'date': DATE, 'hour': INTEGER}, union_by_name = true)"
    )


def _empty_select(view: str) -> str:
    typed = [*view_columns(view), *PARTITION_COLUMNS]
    columns = ", ".join(f"CAST(NULL AS {sql_type}) AS {_identifier(name)}" for name, sql_type in typed)
    return f"SELECT {columns} WHERE false"


def empty_view_sql(view: str = VIEW) -> str:
    """The same columns and types as `file_view_sql` gives for `view`, and no rows."""
    return f"CREATE OR REPLACE VIEW {_identifier(view)} AS {_empty_select(view)}"


def padded_view_sql(parquet_glob: str, view: str = VIEW) -> str:
    """`file_view_sql` for files written before a column was added: every column of today, NULL where absent.

    `union_by_name` gives a column NULL in the files that lack it only if one
    file has it; with none, a query naming it would fail. The empty selection
    typed as today's files (`empty_view_sql`) supplies it.
    """
    files = file_view_sql(parquet_glob, view).split(" AS ", 1)[1]
    return f"CREATE OR REPLACE VIEW {_identifier(view)} AS {_empty_select(view)} UNION ALL BY NAME {files}"


@cache
def view_columns(view: str) -> tuple[tuple[str, str], ...]:
    """(name, DuckDB type) of the columns in `view`'s files: the contract's, or a rollup's."""
    if view == VIEW:
        return tuple((c.name, c.sql_type) for c in COLUMNS)
    schema = rollup_schemas()[ROLLUP_VIEWS[view]]
    # DuckDB names the types it reads the Arrow schema as, exactly as it reads the files.
    with duckdb.connect(":memory:") as scratch:
        relation = scratch.from_arrow(schema.empty_table())
        return tuple(
            (name, str(sql_type)) for name, sql_type in zip(relation.columns, relation.types, strict=True)
        )


def _sandbox(
    con: duckdb.DuckDBPyConnection,
    readable_dirs: Sequence[Path],
    *,
    memory_limit: str | None,
    threads: int | None,
) -> None:
    # Order matters: directories must be allowed before external access is
    # switched off, and nothing can change once the configuration is locked.
    allowed = ", ".join(_literal(str(d)) for d in readable_dirs)
    settings = [
        "SET GLOBAL TimeZone = 'UTC'",
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
        settings.append(f"SET memory_limit = {_literal(memory_limit)}")
    if threads is not None:
        settings.append(f"SET threads = {int(threads)}")
    settings.append("SET lock_configuration = true")
    for statement in settings:
        con.execute(statement)


class AttemptLog:
    """Read access to one data directory's attempt log and rollups. Safe to share between threads.

    Each query runs on its own cursor, and results are fetched in full, so
    concurrent callers never see each other's pending results.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._attempts_root = attempts_root(self.data_dir)
        self._globs = {VIEW: attempts_glob(self.data_dir)} | {
            view: rollup_glob(self.data_dir, rollup) for view, rollup in ROLLUP_VIEWS.items()
        }
        self._con = duckdb.connect(":memory:")
        self._view_lock = threading.Lock()
        self._file_backed: dict[str, bool] = {}
        connect_macros(self._con)
        # The two directories the views read, not the data directory itself:
        # the engine keeps its own state there too, which user SQL has no business reading.
        readable = [self._attempts_root, self.data_dir / ROLLUPS_DIR]
        _sandbox(self._con, readable, memory_limit=memory_limit, threads=threads)
        self._sync_views()
        # After the views: DuckDB binds a table macro's body when it is created.
        self._con.execute(load_macros())

    def run(self, name: str, scope: Scope, start: datetime, end: datetime, **params: object) -> pl.DataFrame:
        """Run the named query (`queries/<name>.sql`) for `scope` over [start, end).

        `params` are the query's own extra parameters (e.g. `limit`); a name
        the query does not use raises `QueryError`, so a typo cannot pass
        silently. So does a query DuckDB refuses to run.
        """
        bound = _bind(name, scope, start, end, params)
        try:
            return self._fetch(load_query(name), bound)
        except duckdb.Error as exc:
            raise QueryError(f"query {name!r} failed: {exc}") from exc

    def plan(
        self,
        name: str,
        scope: Scope,
        start: datetime,
        end: datetime,
        *,
        analyze: bool = False,
        **params: object,
    ) -> str:
        """DuckDB's EXPLAIN of the named query: how it would run, and how many files it would read.

        With `analyze`, EXPLAIN ANALYZE: the query runs, and each scan also
        shows the rows it produced and the names of (the first few of) the
        files it read.
        """
        bound = _bind(name, scope, start, end, params)
        plan = self._fetch(("EXPLAIN ANALYZE " if analyze else "EXPLAIN ") + load_query(name), bound)
        return "\n".join(plan.get_column("explain_value"))

    def sql(self, text: str, *, timeout_s: float | None = None, max_rows: int | None = None) -> pl.DataFrame:
        """Run one read-only statement written by a person against the views.

        The views are `attempts` and the rollups `outcomes`,
        `latency_histogram`, `destination_latency_histogram`,
        `error_templates`, `delay_histogram` and
        `destination_delay_histogram` (docs/sql.md). Accepts
        SELECT, WITH, EXPLAIN, DESCRIBE, SUMMARIZE and SHOW; anything else,
        several statements, a parse error, a failing query or one still
        running after `timeout_s` seconds raises `QueryError`. With
        `max_rows`, at most that many rows are fetched (the query is limited,
        not cut after the fact, so `SELECT * FROM attempts` cannot fill memory).
        """
        with self._con.cursor() as cur:
            read_only_statement(cur, text)
        try:
            return self._fetch(text, None, timeout_s=timeout_s, max_rows=max_rows)
        except duckdb.InterruptException as exc:
            raise QueryError(f"the query ran longer than {timeout_s:g} s and was stopped") from exc
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc

    def rollups_out_of_step(self) -> int:
        """Attempt files lacking rollups plus rollup files without an attempt file; 0 when in step.

        Figures from the rollups leave out the former and count the latter
        until `deliverydash repair` (`ingest.rollup.repair`) mends them.
        Lists directories only; an attempt file younger than
        `ingest.rollup.GRACE_S` is its writer's to finish and not counted.
        """
        return out_of_step(self.data_dir).files

    def close(self) -> None:
        """Close the connection; later queries raise."""
        self._con.close()

    def __enter__(self) -> AttemptLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _fetch(
        self,
        sql: str,
        params: dict[str, object] | None,
        *,
        timeout_s: float | None = None,
        max_rows: int | None = None,
    ) -> pl.DataFrame:
        self._sync_views()
        with self._con.cursor() as cur:
            # DuckDB has no statement timeout: interrupting from a timer is the way.
            timer = threading.Timer(timeout_s, cur.interrupt) if timeout_s is not None else None
            if timer is not None:
                timer.start()
            try:
                relation = cur.sql(sql, params=params)
                if max_rows is not None:
                    relation = relation.limit(max_rows)
                result: pl.DataFrame = relation.pl()
            finally:
                if timer is not None:
                    timer.cancel()
        return result

    def _sync_views(self) -> None:
        # iglob is lazy: this stops at the first file, however large the log.
        has_files = {
            view: next(glob.iglob(pattern), None) is not None for view, pattern in self._globs.items()
        }
        with self._view_lock:
            for view, backed in has_files.items():
                if backed != self._file_backed.get(view):
                    with self._con.cursor() as cur:
                        cur.execute(
                            file_view_sql(self._globs[view], view) if backed else empty_view_sql(view)
                        )
                        if backed and not _has_every_column(cur, view):
                            cur.execute(padded_view_sql(self._globs[view], view))
                    self._file_backed[view] = backed


def _has_every_column(cur: duckdb.DuckDBPyConnection, view: str) -> bool:
    """Whether `view`'s files, together, have every column of today's (see `padded_view_sql`)."""
    present = {row[0] for row in cur.execute(f"DESCRIBE {_identifier(view)}").fetchall()}
    return all(name in present for name, _ in view_columns(view))


def _bind(
    name: str, scope: Scope, start: datetime, end: datetime, params: dict[str, object]
) -> dict[str, object]:
    wanted = parameter_names(name)
    unknown = params.keys() - wanted
    if unknown:
        raise QueryError(f"query {name!r} has no parameter(s) {', '.join(sorted(unknown))}")
    offered = query_parameters(scope, start, end) | params
    missing = wanted - offered.keys()
    if missing:
        raise QueryError(f"query {name!r} needs parameter(s) {', '.join(sorted(missing))}")
    return {key: offered[key] for key in wanted}


def connect(
    data_dir: str | os.PathLike[str], *, memory_limit: str | None = None, threads: int | None = None
) -> AttemptLog:
    """Open the attempt log under `data_dir` for queries (an empty or missing one too)."""
    return AttemptLog(data_dir, memory_limit=memory_limit, threads=threads)
