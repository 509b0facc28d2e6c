"""The attempt log opened for queries: a sandboxed in-memory DuckDB with one view.

`connect(data_dir)` opens an in-memory connection and defines the view
`attempts` over ``<data_dir>/attempts/date=*/hour=*/*.parquet``. DuckDB
re-globs on every query, so newly published files are seen at once. Until
the first file exists the glob matches nothing and `read_parquet` would
raise, so the view is then defined over an empty selection typed like the
contract; every query checks for files first and switches the view over
(and back, should every file be removed).

The connection is a sandbox for user-written SQL (`AttemptLog.sql`): it
can read only the attempt log's directory, loads no extensions, sees no
Python variables, and its configuration is locked. It runs in UTC, the
zone of the `date`/`hour` partitions.
"""

from __future__ import annotations

import glob
import os
import threading
from datetime import datetime
from pathlib import Path
from types import TracebackType

import duckdb
import polars as pl

from ingest.schema import COLUMNS
from ingest.writer import attempts_glob, attempts_root
from queries.errors import QueryError
from queries.loader import load_query, parameter_names
from queries.readonly import read_only_statement
from queries.scope import Scope, query_parameters

VIEW = "attempts"
#: Hive partition columns the view adds after the contract's columns.
PARTITION_COLUMNS = (("date", "DATE"), ("hour", "INTEGER"))


def _literal(text: str) -> str:
    """A SQL string literal; only for paths and settings chosen by the program."""
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def file_view_sql(parquet_glob: str) -> str:
    """The view over the Parquet files, as docs/sql.md shows it."""
    return (
        f"CREATE OR REPLACE VIEW {VIEW} AS SELECT * FROM read_parquet({_literal(parquet_glob)}, "
        "hive_partitioning = true, hive_types = {'date': DATE, 'hour': INTEGER}, union_by_name = true)"
    )


def empty_view_sql() -> str:
    """The same columns and types as `file_view_sql` gives, and no rows."""
    typed = [(c.name, c.sql_type) for c in COLUMNS] + list(PARTITION_COLUMNS)
    columns = ", ".join(f"CAST(NULL AS {sql_type}) AS {_identifier(name)}" for name, sql_type in typed)
    return f"CREATE OR REPLACE VIEW {VIEW} AS SELECT {columns} WHERE false"


def _sandbox(
    con: duckdb.DuckDBPyConnection, readable_dir: Path, *, memory_limit: str | None, threads: int | None
) -> None:
    # Order matters: directories must be allowed before external access is
    # switched off, and nothing can change once the configuration is locked.
    settings = [
        "SET GLOBAL TimeZone = 'UTC'",
        f"SET allowed_directories = [{_literal(str(readable_dir))}]",
        "SET enable_external_access = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET python_enable_replacements = false",
        # Files are immutable once published, so their footers can be cached.
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
    """Read access to one data directory's attempt log. Safe to share between threads.

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
        self._glob = attempts_glob(self.data_dir)
        self._con = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        self._file_backed: bool | None = None
        _sandbox(self._con, attempts_root(self.data_dir), memory_limit=memory_limit, threads=threads)
        self._sync_view()

    def run(self, name: str, scope: Scope, start: datetime, end: datetime, **params: object) -> pl.DataFrame:
        """Run the named query (`queries/<name>.sql`) for `scope` over [start, end).

        `params` are the query's own extra parameters (e.g. `limit`); a name
        the query does not use raises `QueryError`, so a typo cannot pass
        silently.
        """
        return self._fetch(load_query(name), _bind(name, scope, start, end, params))

    def plan(self, name: str, scope: Scope, start: datetime, end: datetime, **params: object) -> str:
        """DuckDB's EXPLAIN of the named query: how it would run, and which files it would read."""
        bound = _bind(name, scope, start, end, params)
        plan = self._fetch("EXPLAIN " + load_query(name), bound)
        return "\n".join(plan.get_column("explain_value"))

    def sql(self, text: str, *, timeout_s: float | None = None) -> pl.DataFrame:
        """Run one read-only statement written by a person against the `attempts` view.

        Accepts SELECT, WITH, EXPLAIN, DESCRIBE, SUMMARIZE and SHOW; anything
        else, several statements, a parse error, a failing query or one still
        running after `timeout_s` seconds raises `QueryError`.
        """
        with self._con.cursor() as cur:
            read_only_statement(cur, text)
        try:
            return self._fetch(text, None, timeout_s=timeout_s)
        except duckdb.InterruptException as exc:
            raise QueryError(f"the query ran longer than {timeout_s:g} s and was stopped") from exc
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc

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
        self, sql: str, params: dict[str, object] | None, *, timeout_s: float | None = None
    ) -> pl.DataFrame:
        self._sync_view()
        with self._con.cursor() as cur:
            # DuckDB has no statement timeout: interrupting from a timer is the way.
            timer = threading.Timer(timeout_s, cur.interrupt) if timeout_s is not None else None
            if timer is not None:
                timer.start()
            try:
                result: pl.DataFrame = cur.sql(sql, params=params).pl()
            finally:
                if timer is not None:
                    timer.cancel()
        return result

    def _has_files(self) -> bool:
        # iglob is lazy: this stops at the first file, however large the log.
        return next(glob.iglob(self._glob), None) is not None

    def _sync_view(self) -> None:
        has_files = self._has_files()
        with self._lock:
            if has_files != self._file_backed:
                with self._con.cursor() as cur:
                    cur.execute(file_view_sql(self._glob) if has_files else empty_view_sql())
                self._file_backed = has_files


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
