"""The SQL sandbox beneath the guard: a read-only catalog, a cursor per query, workers killed and replaced."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from ingest.logstore import open_store
from queries import Limits, QueryError, SqlSandbox
from queries.catalog import VIEWS
from queries.sandbox_worker import NICENESS, Catalog

from .conftest import fixture_rows, publish


@pytest.fixture
def catalog(fixture_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The worker's connection, in this process: what a statement the guard let through would meet."""
    con = Catalog(open_store(fixture_dir), memory_limit=256 * 2**20, threads=1).connection()
    yield con
    con.close()


@pytest.fixture
def sandbox(fixture_dir: Path) -> Iterator[SqlSandbox]:
    with SqlSandbox(fixture_dir) as opened:
        yield opened


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE t AS SELECT 1 AS a",
        "CREATE OR REPLACE VIEW outcomes AS SELECT 1 AS a",
        "CREATE OR REPLACE MACRO in_scope(a, b, c, d, e) AS true",
        "DROP VIEW attempts",
        "ALTER VIEW outcomes RENAME TO gone",
        "CREATE SCHEMA s",
        "ATTACH ':memory:' AS other",
    ],
)
def test_the_catalog_cannot_be_changed_even_past_the_guard(
    catalog: duckdb.DuckDBPyConnection, statement: str
) -> None:
    with catalog.cursor() as cur, pytest.raises(duckdb.Error, match=r"read-only|in-memory database"):
        cur.execute(statement)
    with catalog.cursor() as cur:
        assert cur.sql("SELECT count(*) FROM outcomes").fetchall()[0][0] > 0
        views = {
            row[0] for row in cur.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        }
    assert views == set(VIEWS)


def test_a_temporary_object_lives_and_dies_with_its_cursor(catalog: duckdb.DuckDBPyConnection) -> None:
    with catalog.cursor() as cur:
        cur.execute("CREATE TEMP VIEW outcomes AS SELECT 'everyone' AS workspace_id")
        assert cur.sql("SELECT workspace_id FROM outcomes").fetchall() == [("everyone",)]
        with catalog.cursor() as other:
            assert other.sql("SELECT count(DISTINCT workspace_id) FROM outcomes").fetchall()[0][0] == 3
    with catalog.cursor() as later:
        assert later.sql("SELECT count(DISTINCT workspace_id) FROM outcomes").fetchall()[0][0] == 3


def test_the_catalog_file_is_gone(catalog: duckdb.DuckDBPyConnection) -> None:
    [(path,)] = catalog.sql("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchall()
    assert not Path(path).exists()
    assert catalog.sql(f"SELECT count(*) FROM read_blob('{path}')").fetchall() == [(0,)]


def test_the_configuration_is_locked(catalog: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(duckdb.Error, match="locked"):
        catalog.execute("SET enable_external_access = true")
    settings = dict(catalog.sql("SELECT name, value FROM duckdb_settings()").fetchall())
    assert settings["temp_directory"] == ""
    assert settings["enable_external_access"] == "false"
    assert settings["autoload_known_extensions"] == "false"


def test_a_worker_that_does_not_answer_in_time_is_killed_and_replaced(sandbox: SqlSandbox) -> None:
    sandbox.run("SELECT 1")
    [worker] = sandbox._idle
    os.kill(worker._process.pid, signal.SIGSTOP)  # a function call that ignores the interrupt, at its worst
    with pytest.raises(QueryError, match=r"longer than 0\.5 s.*time limit"):
        sandbox.run("SELECT 1", Limits(timeout_s=0.5))
    assert not worker.alive()
    assert sandbox.run("SELECT 42 AS answer").frame.item() == 42


def test_a_worker_killed_while_idle_is_replaced(sandbox: SqlSandbox) -> None:
    sandbox.run("SELECT 1")
    [worker] = sandbox._idle
    os.kill(worker._process.pid, signal.SIGKILL)
    worker._process.wait()
    assert sandbox.run("SELECT 42 AS answer").frame.item() == 42


def test_a_worker_dying_mid_query_is_an_error_and_the_next_query_runs(sandbox: SqlSandbox) -> None:
    sandbox.run("SELECT 1")
    [worker] = sandbox._idle
    threading.Timer(0.5, os.kill, (worker._process.pid, signal.SIGKILL)).start()
    with pytest.raises(QueryError, match="SQL worker stopped"):
        sandbox.run("SELECT sum(hash(i)) FROM range(1000000000000) t(i)", Limits(timeout_s=60))
    assert sandbox.run("SELECT 42 AS answer").frame.item() == 42


def test_workers_run_queries_side_by_side(fixture_dir: Path) -> None:
    with SqlSandbox(fixture_dir, workers=2) as sandbox:
        slow = Limits(timeout_s=60)
        results: list[object] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(sandbox.run("SELECT count(*) FROM attempts", slow))
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 4
        assert len(sandbox._idle) == 2


def test_a_table_macro_reads_the_files_not_the_empty_views_it_was_bound_over(sandbox: SqlSandbox) -> None:
    # The catalog binds the macros over empty views, then defines the views over the files.
    every_day = "'all', NULL, TIMESTAMPTZ '2000-01-01', TIMESTAMPTZ '2100-01-01'"
    through_macro = sandbox.run(f"SELECT sum(records) FROM scoped_outcomes({every_day})").frame.item()
    direct = sandbox.run("SELECT sum(records) FROM outcomes").frame.item()
    assert through_macro == direct > 0


def test_a_worker_runs_below_the_program_that_started_it(sandbox: SqlSandbox) -> None:
    sandbox.run("SELECT 1")
    [worker] = sandbox._idle
    assert os.getpriority(os.PRIO_PROCESS, worker._process.pid) == min(19, os.nice(0) + NICENESS)


def test_a_closed_sandbox_refuses_and_leaves_no_process(fixture_dir: Path) -> None:
    sandbox = SqlSandbox(fixture_dir)
    sandbox.run("SELECT 1")
    [worker] = sandbox._idle
    sandbox.close()
    assert not worker.alive()
    with pytest.raises(QueryError, match="closed"):
        sandbox.run("SELECT 1")


def test_the_views_follow_the_first_file(tmp_path: Path) -> None:
    with SqlSandbox(tmp_path) as sandbox:
        assert sandbox.run("SELECT count(*) AS n FROM attempts").frame.item() == 0
        publish(fixture_rows(), tmp_path)
        assert sandbox.run("SELECT count(*) AS n FROM attempts").frame.item() == len(fixture_rows())
        assert sandbox.run("SELECT count(*) AS n FROM outcomes").frame.item() > 0


def test_rows_are_cut_at_max_rows_and_say_so(sandbox: SqlSandbox) -> None:
    result = sandbox.run("SELECT * FROM range(1000000000000)", Limits(max_rows=3))
    assert result.frame.height == 3 and result.truncated
    exact = sandbox.run("SELECT * FROM range(3)", Limits(max_rows=3))
    assert exact.frame.height == 3 and not exact.truncated


def test_a_memory_limit_that_is_no_size_is_refused(fixture_dir: Path) -> None:
    with pytest.raises(ValueError, match="not a size"):
        SqlSandbox(fixture_dir, memory_limit="a lot")


def test_a_worker_that_reached_its_memory_limit_retires(sandbox: SqlSandbox) -> None:
    # Its allocators keep the address space the query took, which the process limit counts.
    sandbox.run("SELECT 1")
    [worker] = sandbox._idle
    with pytest.raises(QueryError, match="memory limit"):
        sandbox.run("SELECT len(list(i)) AS n FROM range(1000000000) t(i)")
    assert not worker.alive()
    # The next query has the whole budget again: it reaches the byte cap, not the memory limit.
    with pytest.raises(QueryError, match="result size limit"):
        sandbox.run("SELECT repeat('x', 10000) AS s FROM range(100000)", Limits(max_rows=100_000))
