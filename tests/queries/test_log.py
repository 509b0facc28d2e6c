"""Opening the log: empty directories, files published later, the SQL guard and sandbox."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from ingest.files import attempts_root
from ingest.rollup import ROLLUPS, repair
from queries import (
    AttemptLog,
    QueryError,
    Scope,
    connect,
    day_report,
    funnel,
    latency,
    query_names,
    run_sql,
)
from queries.catalog import ROLLUP_VIEWS, VIEWS

from .conftest import D1, D2, at, copy_log, fixture_rows, job, ok, publish

EXPLORER_FILTERS: dict[str, object] = dict.fromkeys(
    ["error_class", "error_code", "status_code", "destination_id", "integration"]
)
EXTRA: dict[str, dict[str, object]] = {
    "error_samples": {"limit": 5},
    "explorer_hours": EXPLORER_FILTERS,
    "explorer_samples": EXPLORER_FILTERS | {"limit": 5},
    "job_history": {"job_id": "J3"},
    "latency": {"per_integration": False},
    "latency_histogram": {"per_integration": False},
    "whatif_answers": {"resolution_s": 60.0},
    "trace_index": {"message_id": "J3-msg-0"},
    "trace_attempts": {"message_id": "J3-msg-0", "destinations": [], "dates": [], "hours": []},
    "trace_destinations": {"workspace_id": "acme", "source_id": "src_acme"},
}


@pytest.fixture(scope="module")
def log(module_log: AttemptLog) -> AttemptLog:
    """This module's tests only read the fixture log (refused statements and a stopped query included):
    they share one."""
    return module_log


def test_an_empty_data_dir_gives_zeros(tmp_path: Path) -> None:
    with connect(tmp_path / "not-yet-created") as log:
        report = day_report(log, Scope.all(), D1, D2)
        assert report.height == 1
        assert all(value == 0 for value in report.row(0))
        assert funnel(log, Scope.all(), D1, D2).get_column("events").to_list() == [0, 0, 0, 0, 0]
        delay = log.run("delivery_delay", Scope.all(), D1, D2)
        assert delay.select("deliveries", "events").rows() == [(0, 0)] * 3  # three rows, always
        for name in query_names():
            if name not in {"day_report", "funnel", "delivery_delay"}:
                assert log.run(name, Scope.all(), D1, D2, **EXTRA.get(name, {})).is_empty(), name
        scopes = [
            Scope.all(),
            Scope.workspace("acme"),
            Scope.destination("dst_acme_hook"),
            Scope.integration("webhook"),
        ]
        for scope in scopes:
            assert latency(log, scope, D1, D2).is_empty(), scope
            assert latency(log, scope, D1, D2, exact=True).is_empty(), scope
        for view in VIEWS:
            assert run_sql(log, f"SELECT count(*) AS n FROM {view}").item() == 0, view


def test_every_rollup_has_a_view(tmp_path: Path) -> None:
    assert VIEWS == (
        "attempts",
        "outcomes",
        "integration_outcomes",
        "latency_histogram",
        "destination_latency_histogram",
        "error_templates",
        "delay_histogram",
        "destination_delay_histogram",
        "redeliveries",
        "message_index",
    )
    assert sorted(ROLLUP_VIEWS.values()) == sorted(ROLLUPS)
    with connect(tmp_path) as log:
        assert sorted(run_sql(log, "SHOW TABLES").get_column("name")) == sorted(VIEWS)


@pytest.fixture(scope="module")
def empty_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttemptLog]:
    with connect(tmp_path_factory.mktemp("empty")) as empty:
        yield empty


@pytest.mark.parametrize("view", VIEWS)
def test_the_empty_view_has_the_file_views_columns(empty_log: AttemptLog, log: AttemptLog, view: str) -> None:
    empty_columns = run_sql(empty_log, f"DESCRIBE {view}").select("column_name", "column_type")
    file_columns = run_sql(log, f"DESCRIBE {view}").select("column_name", "column_type")
    assert empty_columns.rows() == file_columns.rows()


def test_files_published_after_connect_are_seen(tmp_path: Path) -> None:
    with connect(tmp_path) as log:
        assert day_report(log, Scope.all(), D1, D2).item(0, "requests") == 0
        publish(fixture_rows(), tmp_path)
        assert day_report(log, Scope.all(), D1, D2).item(0, "requests") == 20
        publish(job("LATE", "dst_acme_hook", at(D1, "18:00"), [ok(at(D1, "18:00:01"))]), tmp_path)
        assert day_report(log, Scope.all(), D1, D2).item(0, "requests") == 21


@pytest.mark.parametrize("hours", [24, 23], ids=["whole day", "hours of a day"])
def test_a_snapshot_lists_the_log_once(fixture_dir: Path, tmp_path: Path, hours: int) -> None:
    # A day after the fixture's: its partition appears only with the late job, after the listing.
    start = D2 + timedelta(days=1)
    end = start + timedelta(hours=hours)
    late = job(
        "LATE", "dst_acme_hook", start + timedelta(hours=6), [ok(start + timedelta(hours=6, seconds=1))]
    )
    copy_log(fixture_dir, tmp_path)
    with connect(tmp_path) as log:
        with log.snapshot():
            assert day_report(log, Scope.all(), start, end).item(0, "requests") == 0
            publish(late, tmp_path)
            assert day_report(log, Scope.all(), start, end).item(0, "requests") == 0
            with log.snapshot():  # nested: the outer listing still
                assert day_report(log, Scope.all(), start, end).item(0, "requests") == 0
            with ThreadPoolExecutor(max_workers=1) as other:  # another thread is in no snapshot
                assert (
                    other.submit(day_report, log, Scope.all(), start, end).result().item(0, "requests") == 1
                )
        assert day_report(log, Scope.all(), start, end).item(0, "requests") == 1


def test_a_log_whose_files_all_went_is_empty_again(fixture_dir: Path, tmp_path: Path) -> None:
    copy_log(fixture_dir, tmp_path)
    with connect(tmp_path) as log:
        assert day_report(log, Scope.all(), D1, D2).item(0, "requests") == 20
        shutil.rmtree(attempts_root(tmp_path))
        assert run_sql(log, "SELECT count(*) AS n FROM attempts").item() == 0
        # Orphans now: the hourly rollups still hold them until a repair removes them, while a
        # range of whole days follows the day's attempt files (docs/log-store.md), which are gone.
        orphans = list((tmp_path / "rollups").glob("*/date=*/hour=*/*.parquet"))
        assert log.rollups_out_of_step() == len(orphans) > 0
        assert run_sql(log, "SELECT count(*) AS n FROM outcomes").item() > 0
        assert day_report(log, Scope.all(), D1, D2).item(0, "requests") == 0
        repair(tmp_path)
        assert day_report(log, Scope.all(), D1, D2).item(0, "requests") == 0
        for view in VIEWS:
            assert run_sql(log, f"SELECT count(*) AS n FROM {view}").item() == 0, view


def test_threads_can_share_a_log(log: AttemptLog) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: day_report(log, Scope.all(), D1, D2), range(16)))
    assert all(result.equals(results[0]) for result in results)
    assert results[0].item(0, "requests") == 20


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM attempts",
        "WITH a AS (SELECT * FROM attempts) SELECT count(*) FROM a",
        "FROM attempts SELECT count(*)",
        "EXPLAIN SELECT count(*) FROM attempts",
        "EXPLAIN ANALYZE SELECT count(*) FROM attempts",
        "DESCRIBE attempts",
        "SUMMARIZE SELECT duration_ms FROM attempts",
        "SHOW TABLES",
        "-- how many?\nSELECT count(*) FROM attempts;",
        "SELECT sum(records) FROM outcomes",
        "SELECT integration, sum(requests) FROM latency_histogram GROUP BY ALL",
        "SELECT destination_id, sum(requests) FROM destination_latency_histogram GROUP BY ALL",
        "SELECT template, sum(requests) FROM error_templates GROUP BY ALL",
        "DESCRIBE error_templates",
    ],
)
def test_read_only_statements_run(log: AttemptLog, sql: str) -> None:
    assert run_sql(log, sql).height >= 1


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("INSERT INTO attempts SELECT * FROM attempts", "INSERT"),
        ("COPY (SELECT 1) TO 'x.csv'", "COPY"),
        ("ATTACH 'other.duckdb' AS other", "ATTACH"),
        ("SET threads = 1", "SET"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("CREATE OR REPLACE VIEW attempts AS SELECT 1", "CREATE"),
        ("DROP VIEW attempts", "DROP"),
        ("DROP VIEW outcomes", "DROP"),
        ("CREATE OR REPLACE VIEW latency_histogram AS SELECT 1", "CREATE"),
        ("DROP VIEW destination_latency_histogram", "DROP"),
        ("INSERT INTO error_templates SELECT * FROM error_templates", "INSERT"),
        ("CREATE OR REPLACE MACRO body_template(body) AS body", "CREATE"),
        ("PRAGMA version", "PRAGMA"),
        ("INSTALL httpfs", "LOAD"),
        ("EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'", "EXPLAIN runs here only for SELECT"),
        ("SELECT 1; SELECT 2", "one statement at a time"),
        ("SELECT 1; DROP VIEW attempts", "one statement at a time"),
        ("", "no SQL statement"),
        ("-- nothing", "no SQL statement"),
        ("SELEKT 1", "does not parse"),
    ],
)
def test_everything_else_is_refused(log: AttemptLog, sql: str, problem: str) -> None:
    with pytest.raises(QueryError, match=problem):
        run_sql(log, sql)


def test_a_refused_copy_writes_nothing(fixture_dir: Path, tmp_path: Path) -> None:
    copy_log(fixture_dir, tmp_path)
    target = attempts_root(tmp_path) / "date=2026-03-10" / "hour=99" / "x.parquet"
    with connect(tmp_path) as log, pytest.raises(QueryError):
        run_sql(log, f"COPY (SELECT * FROM attempts) TO '{target}'")
    assert not target.exists()


def test_only_the_log_directory_is_readable(log: AttemptLog) -> None:
    with pytest.raises(QueryError, match="disabled by configuration"):
        run_sql(log, "SELECT * FROM read_csv('/etc/passwd')")


def test_the_attempt_and_rollup_directories_are_readable_and_nothing_beside_them(
    fixture_dir: Path, tmp_path: Path
) -> None:
    copy_log(fixture_dir, tmp_path)
    (tmp_path / "engine-state.csv").write_text("secret\n1\n")
    with connect(tmp_path) as log:
        for directory in ["attempts", "rollups/outcomes", "rollups/destination_latency"]:
            files = f"{tmp_path / directory}/date=*/hour=*/*.parquet"
            assert run_sql(log, f"SELECT count(*) FROM read_parquet('{files}')").item() > 0
        for path in [tmp_path / "engine-state.csv", tmp_path / "rollups" / ".." / "engine-state.csv"]:
            with pytest.raises(QueryError, match="disabled by configuration"):
                run_sql(log, f"SELECT * FROM read_csv('{path}')")


def test_a_query_failing_in_duckdb_is_a_query_error(log: AttemptLog) -> None:
    with pytest.raises(QueryError, match="no_such_column"):
        run_sql(log, "SELECT no_such_column FROM attempts")


def test_a_slow_query_is_stopped(log: AttemptLog) -> None:
    with pytest.raises(QueryError, match=r"longer than 0\.2 s"):
        run_sql(log, "SELECT sum(hash(i)) FROM range(1000000000000) t(i)", timeout_s=0.2)
    assert run_sql(log, "SELECT 1 AS one").item() == 1  # the log is still usable


def test_named_query_arguments_are_checked(log: AttemptLog) -> None:
    with pytest.raises(QueryError, match="no parameter"):
        log.run("day_report", Scope.all(), D1, D2, limit=3)
    with pytest.raises(QueryError, match="needs parameter"):
        log.run("error_samples", Scope.all(), D1, D2)
    with pytest.raises(QueryError, match="no query named"):
        log.run("nope", Scope.all(), D1, D2)


def test_results_are_polars(log: AttemptLog) -> None:
    assert isinstance(run_sql(log, "SELECT 1 AS one"), pl.DataFrame)


#: A query that would run for hours.
FOR_EVER = "SELECT count(*) FROM range(10_000_000_000_000) WHERE range % 7 = 3"


def test_interrupt_stops_the_query_of_that_thread_and_the_log_reads_on(log: AttemptLog) -> None:
    outcome: list[BaseException | object] = []
    started = threading.Event()

    def count_for_ever() -> None:
        started.set()
        try:
            outcome.append(log.trusted_sql(FOR_EVER))
        except QueryError as exc:
            outcome.append(exc)

    assert not log.interrupt(threading.get_ident())  # no query of this thread runs
    thread = threading.Thread(target=count_for_ever, daemon=True)
    thread.start()
    assert started.wait(30)
    deadline = time.monotonic() + 60
    # Again until it ends: an interrupt that comes before DuckDB begins the query is lost.
    while thread.is_alive() and time.monotonic() < deadline:
        log.interrupt(thread.ident or 0)
        thread.join(0.05)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], QueryError)
    assert "Interrupted" in str(outcome[0])
    assert log.trusted_sql("SELECT 42 AS answer").item() == 42
