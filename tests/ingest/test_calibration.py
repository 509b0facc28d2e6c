"""A full 2-million-attempt day with the default world, measured against the seed study.

One simulation (about 6 s) serves every test in this module. Figures are
computed with plain SQL over the Parquet files, not through `queries`, so a
mistake in either shows up as a disagreement.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from ingest.simulate import SimulationResult, simulate_day
from tests.ingest.attempt_checks import (
    SQL_CHECKS,
    classification_mismatches,
    open_log,
    partition_violations,
)

pytestmark = pytest.mark.slow

ATTEMPTS = 2_000_000
DAY = dt.date(2026, 11, 27)
TOLERANCE_PP = 0.3

#: Percentages of the seed's day.
SEED_FIGURES = {
    "events_delivered_first_attempt": 92.6,
    "events_delivered_eventually": 93.9,
    "events_failed": 5.5,
    "requests_401_403": 3.8,
    "requests_400": 0.51,
    "requests_429": 7.3,
    "requests_5xx": 1.3,
    "requests_network": 1.1,
}

FIGURES_SQL = """
WITH cohort AS (  -- jobs whose first event arrived on the day
    SELECT * FROM attempts
    WHERE received_at >= $day::TIMESTAMPTZ AND received_at < $day::TIMESTAMPTZ + INTERVAL 1 DAY
),
events AS (
    SELECT
        sum(event_count) FILTER (attempt <= 1) AS received,
        sum(event_count) FILTER (attempt = 1 AND outcome = 'delivered') AS first_attempt,
        sum(event_count) FILTER (outcome = 'delivered') AS eventually,
        sum(event_count) FILTER (outcome = 'failed') AS failed
    FROM cohort
),
requests AS (  -- requests started on the day
    SELECT
        count(*) AS total,
        count(*) FILTER (status_code IN (401, 403)) AS auth,
        count(*) FILTER (status_code = 400) AS bad_request,
        count(*) FILTER (status_code = 429) AS rate_limited,
        count(*) FILTER (status_code BETWEEN 500 AND 599) AS server,
        count(*) FILTER (error_class = 'network') AS network
    FROM attempts
    WHERE attempt >= 1
      AND started_at >= $day::TIMESTAMPTZ AND started_at < $day::TIMESTAMPTZ + INTERVAL 1 DAY
)
SELECT
    100.0 * first_attempt / received AS events_delivered_first_attempt,
    100.0 * eventually / received AS events_delivered_eventually,
    100.0 * failed / received AS events_failed,
    100.0 * auth / total AS requests_401_403,
    100.0 * bad_request / total AS requests_400,
    100.0 * rate_limited / total AS requests_429,
    100.0 * server / total AS requests_5xx,
    100.0 * network / total AS requests_network
FROM events, requests
"""


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationResult]:
    data_dir = tmp_path_factory.mktemp("day2m")
    return data_dir, simulate_day(ATTEMPTS, data_dir, date=DAY)


@pytest.fixture(scope="module")
def log(day: tuple[Path, SimulationResult]) -> duckdb.DuckDBPyConnection:
    return open_log(day[0])


@pytest.fixture(scope="module")
def figures(log: duckdb.DuckDBPyConnection) -> dict[str, float]:
    cursor = log.execute(FIGURES_SQL, {"day": DAY.isoformat()})
    names = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def test_writes_exactly_two_million_rows(
    day: tuple[Path, SimulationResult], log: duckdb.DuckDBPyConnection
) -> None:
    assert day[1].attempts == ATTEMPTS
    assert log.execute("SELECT count(*) FROM attempts").fetchone() == (ATTEMPTS,)


@pytest.mark.parametrize("name", list(SEED_FIGURES))
def test_matches_the_seed(name: str, figures: dict[str, float]) -> None:
    assert figures[name] == pytest.approx(SEED_FIGURES[name], abs=TOLERANCE_PP)


def test_outcomes_of_the_cohort_add_up(log: duckdb.DuckDBPyConnection) -> None:
    # Every event of the day's cohort ends delivered, failed or dropped: nothing is left retrying.
    received, settled = log.execute(
        "SELECT sum(event_count) FILTER (attempt <= 1), "
        "sum(event_count) FILTER (outcome IN ('delivered', 'failed', 'dropped')) FROM attempts"
    ).fetchone()
    assert received == settled


@pytest.mark.parametrize("check", sorted(SQL_CHECKS))
def test_invariant(check: str, log: duckdb.DuckDBPyConnection) -> None:
    assert SQL_CHECKS[check](log) == []


def test_classification_agrees_with_taxonomy(log: duckdb.DuckDBPyConnection) -> None:
    assert classification_mismatches(log) == []


def test_files_are_partitioned_and_sorted(day: tuple[Path, SimulationResult]) -> None:
    assert partition_violations(day[0]) == []


def nonstandard_codes(log: duckdb.DuckDBPyConnection) -> set[int]:
    rows = log.execute(
        "SELECT DISTINCT status_code FROM attempts WHERE error_class = 'nonstandard'"
    ).fetchall()
    return {code for (code,) in rows}


def test_nonstandard_codes_appear(log: duckdb.DuckDBPyConnection) -> None:
    codes = nonstandard_codes(log)
    assert 418 in codes
    assert codes - {418} <= set(range(1, 102))
    assert min(codes) < 10 and 101 in codes
    assert len(codes & set(range(1, 102))) > 50


def test_every_nonstandard_code_from_1_to_101_appears(log: duckdb.DuckDBPyConnection) -> None:
    assert set(range(1, 102)) <= nonstandard_codes(log)


def test_weird_webhook_answers_appear(log: duckdb.DuckDBPyConnection) -> None:
    codes = {code for (code,) in log.execute("SELECT DISTINCT error_code FROM attempts").fetchall()}
    assert {"CERT_HAS_EXPIRED", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "DEPTH_ZERO_SELF_SIGNED_CERT"} <= codes
    assert {"301", "302", "307", "404", "405", "410", "413"} <= codes
    assert {"ENOTFOUND", "ECONNREFUSED", "EHOSTUNREACH", "ECONNRESET", "ETIMEDOUT", "408"} <= codes
