"""Small simulated days (`ingest.simulate.simulate_day`): exact sizes, invariants, determinism."""

from __future__ import annotations

import datetime as dt
import glob
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from ingest.files import attempts_glob
from ingest.ids import new_id
from ingest.simulate import SimulationResult, simulate_day
from ingest.world import build_world
from tests.ingest.attempt_checks import (
    SQL_CHECKS,
    classification_mismatches,
    open_log,
    partition_violations,
)

SIZES = [1, 17, 1_000, 50_000]
#: Small, but every hour of the day is drawn and played whatever the size.
DETERMINISM_ROWS = 2_000
DAY = dt.date(2026, 11, 27)
MOVED_DATE = dt.date(2025, 1, 2)


@pytest.fixture(scope="module", params=SIZES, ids=[f"n={n}" for n in SIZES])
def small_day(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, Path, SimulationResult]:
    data_dir = tmp_path_factory.mktemp(f"day{request.param}")
    return request.param, data_dir, simulate_day(request.param, data_dir)


@pytest.fixture(scope="module")
def small_log(small_day: tuple[int, Path, SimulationResult]) -> duckdb.DuckDBPyConnection:
    return open_log(small_day[1])


def read_sorted(data_dir: Path) -> pa.Table:
    con = duckdb.connect()
    relation = con.read_parquet(attempts_glob(data_dir), hive_partitioning=False)
    return relation.order("attempt_id").to_arrow_table()


def test_writes_exactly_the_rows_asked_for(
    small_day: tuple[int, Path, SimulationResult], small_log: duckdb.DuckDBPyConnection
) -> None:
    n, data_dir, result = small_day
    assert small_log.execute("SELECT count(*) FROM attempts").fetchone() == (n,)
    assert result.attempts == n
    assert sorted(result.files) == sorted(Path(p) for p in glob.glob(attempts_glob(data_dir)))


def test_result_counts_jobs_and_events(
    small_day: tuple[int, Path, SimulationResult], small_log: duckdb.DuckDBPyConnection
) -> None:
    result = small_day[2]
    jobs, events = small_log.execute(
        "SELECT count(DISTINCT job_id), sum(event_count) FILTER (attempt <= 1) FROM attempts"
    ).fetchone()
    assert (result.jobs, result.events) == (jobs, events)


def test_every_job_is_received_on_the_day(small_log: duckdb.DuckDBPyConnection) -> None:
    assert small_log.execute(
        "SELECT count(*) FROM attempts WHERE received_at::DATE <> $day", {"day": DAY}
    ).fetchone() == (0,)


@pytest.mark.parametrize("check", sorted(SQL_CHECKS))
def test_invariant(check: str, small_log: duckdb.DuckDBPyConnection) -> None:
    assert SQL_CHECKS[check](small_log) == []


def test_classification_agrees_with_taxonomy(small_log: duckdb.DuckDBPyConnection) -> None:
    assert classification_mismatches(small_log) == []


def test_files_are_partitioned_and_sorted(small_day: tuple[int, Path, SimulationResult]) -> None:
    assert partition_violations(small_day[1]) == []


def test_message_ids_parse_as_uuid4(small_log: duckdb.DuckDBPyConnection) -> None:
    ids = [
        m
        for (m,) in small_log.execute(
            "SELECT unnest(events).message_id FROM attempts WHERE attempt <= 1"
        ).fetchall()
    ]
    parsed = [uuid.UUID(m) for m in ids]
    assert all(
        u.version == 4 and u.variant == uuid.RFC_4122 and str(u) == m
        for u, m in zip(parsed, ids, strict=True)
    )


def test_ids_start_with_their_millisecond(small_log: duckdb.DuckDBPyConnection) -> None:
    # epoch_ms() rounds to the nearest millisecond; ids truncate, like integer division.
    rows = small_log.execute(
        "SELECT job_id, epoch_us(received_at) // 1000, attempt_id, epoch_us(started_at) // 1000 "
        "FROM attempts LIMIT 2000"
    ).fetchall()
    for job_id, received_ms, attempt_id, started_ms in rows:
        assert job_id[:10] == new_id(received_ms)[:10]
        assert attempt_id[:10] == new_id(started_ms)[:10]
        assert len(job_id) == len(attempt_id) == 26


@pytest.fixture(scope="module")
def seven(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    data_dir = tmp_path_factory.mktemp("seed7")
    simulate_day(DETERMINISM_ROWS, data_dir, seed=7)
    return read_sorted(data_dir)


def test_same_seed_same_data(seven: pa.Table, tmp_path: Path) -> None:
    # Ids come from the seeded generator too, so the tables match to the last id.
    simulate_day(DETERMINISM_ROWS, tmp_path, seed=7)
    assert read_sorted(tmp_path).equals(seven)


def test_other_seed_other_data(seven: pa.Table, tmp_path: Path) -> None:
    simulate_day(DETERMINISM_ROWS, tmp_path, seed=8)
    other = read_sorted(tmp_path)
    assert other.num_rows == seven.num_rows
    assert set(other.column("attempt_id").to_pylist()).isdisjoint(seven.column("attempt_id").to_pylist())
    assert other.select(["destination_id", "started_at"]) != seven.select(["destination_id", "started_at"])


def test_days_of_one_seed_share_the_world_not_the_traffic(seven: pa.Table, tmp_path: Path) -> None:
    # A month simulated with one seed: each destination keeps its workspace, source and
    # integration from day to day (as a customer's do), while each day's events are its own.
    simulate_day(DETERMINISM_ROWS, tmp_path, seed=7, date=DAY + dt.timedelta(days=1))
    next_day = read_sorted(tmp_path)
    world = build_world(7)
    owners = set(
        zip(
            world.dest_id,
            world.dest_workspace,
            world.dest_source,
            world.int_name[world.dest_integration],
            strict=True,
        )
    )
    for day in (seven, next_day):
        columns = day.select(["destination_id", "workspace_id", "source_id", "integration"]).to_pydict()
        assert set(zip(*columns.values(), strict=True)) <= owners
    assert set(next_day.column("attempt_id").to_pylist()).isdisjoint(seven.column("attempt_id").to_pylist())
    assert next_day.column("destination_id").to_pylist() != seven.column("destination_id").to_pylist()


@pytest.fixture(scope="module")
def moved_day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    data_dir = tmp_path_factory.mktemp("moved")
    reported: list[int] = []
    simulate_day(3_000, data_dir, date=MOVED_DATE, progress=reported.append)
    return data_dir, reported


def test_date_moves_the_day(moved_day: tuple[Path, list[int]]) -> None:
    con = open_log(moved_day[0])
    assert con.execute("SELECT min(received_at::DATE), max(received_at::DATE) FROM attempts").fetchone() == (
        MOVED_DATE,
        MOVED_DATE,
    )


def test_progress_reports_every_row(moved_day: tuple[Path, list[int]]) -> None:
    reported = moved_day[1]
    assert sum(reported) == 3_000
    assert 1 < len(reported) <= 24  # at most one report per hour of the day
