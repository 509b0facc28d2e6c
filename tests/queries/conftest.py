"""A small attempt log with hand-countable figures, written through the real writer.

Three UTC dates: D0 = 2026-03-09, D1 = 2026-03-10 (the day the tests
report on), D2 = 2026-03-11. Jobs, all received on D1 unless said:

=====  ========  =================  =========  ======  =====================================
job    work-     destination        integr.    events  attempts
       space
=====  ========  =================  =========  ======  =====================================
J1     acme      dst_acme_hook      webhook    1       200 delivered
J2     acme      dst_acme_hook      webhook    3       200 delivered (a batch of 3)
J3     acme      dst_acme_amp       amplitude  1       429, 429, 200 delivered
J4     globex    dst_globex_hook    webhook    1       401 failed
J5     globex    dst_globex_mix     mixpanel   1       503 x 10: 8 on D1, 2 on D2, dropped
J6     initech   dst_initech_amp    amplitude  1       ECONNRESET (D1), 503 (D2): still retrying
J7     initech   dst_initech_amp    amplitude  1       attempt 0, precheck: skipped
J8     globex    dst_globex_hook    webhook    1       status 42 (nonstandard) failed
J9     globex    dst_globex_hook    webhook    2       ETIMEDOUT, 200 delivered
J10    initech   dst_initech_amp    amplitude  1       400 failed
J11    acme      dst_acme_hook      webhook    1       received D2: 200 delivered
J12    acme      dst_acme_amp       amplitude  1       received D0: 503 (D0), 200 (D1)
=====  ========  =================  =========  ======  =====================================

For D1, the cohort J1-J10 holds 13 events: 4 delivered on the first
attempt, 7 eventually, 3 failed, 1 dropped, 1 skipped, 1 still retrying.
Requests started on D1: 20 (J7 made none; J12's second attempt counts).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from ingest.files import attempts_glob
from ingest.rollup import connect_macros
from ingest.schema import rows_to_table
from ingest.simulate import simulate_day
from ingest.taxonomy import ErrorClass, Outcome
from ingest.writer import write_partitioned
from queries import AttemptLog, Scope, connect
from queries.catalog import file_view_sql
from queries.scope import query_parameters

D0 = datetime(2026, 3, 9, tzinfo=UTC)
D1 = datetime(2026, 3, 10, tzinfo=UTC)
D2 = datetime(2026, 3, 11, tzinfo=UTC)
D3 = datetime(2026, 3, 12, tzinfo=UTC)
#: The simulated day of `simulated_day_dir`.
SIMULATED_DAY = datetime(2026, 11, 27, tzinfo=UTC)

RATE_LIMIT_12S = '{"error":{"message":"Rate limit 10/s exceeded, retry in 12s","request_id":"req_8f3a9c21"}}'
RATE_LIMIT_7S = '{"error":{"message":"Rate limit 10/s exceeded, retry in 7s","request_id":"req_00aa11bb"}}'
INVALID_KEY = '{"error":{"message":"Invalid API key","request_id":"req_77ee88ff"}}'
UNAVAILABLE_HTML = "<html><body><h1>503 Service Unavailable</h1></body></html>"

DESTINATIONS = {
    "dst_acme_hook": ("acme", "webhook"),
    "dst_acme_amp": ("acme", "amplitude"),
    "dst_globex_hook": ("globex", "webhook"),
    "dst_globex_mix": ("globex", "mixpanel"),
    "dst_initech_amp": ("initech", "amplitude"),
}

_ids = itertools.count(1)


def at(day: datetime, clock: str) -> datetime:
    """`day` at a time of day written "HH:MM" or "HH:MM:SS" (UTC)."""
    parts = [int(p) for p in clock.split(":")]
    return day + timedelta(hours=parts[0], minutes=parts[1], seconds=parts[2] if len(parts) > 2 else 0)


def job(
    job_id: str,
    destination_id: str,
    received_at: datetime,
    attempts: list[dict[str, Any]],
    *,
    event_count: int = 1,
    unsent: bool = False,
    replay_of: str | None = None,
) -> list[dict[str, Any]]:
    """The records of one job: `attempts` hold what differs per request.

    `unsent` jobs were settled without a request: one record, attempt 0. A replay
    (`replay_of` the job it sends again) carries that job's events.
    Every contract column is spelled out, so the fixture reads as the log does.
    """
    workspace_id, integration = DESTINATIONS[destination_id]
    events = [
        {"message_id": f"{replay_of or job_id}-msg-{i}", "type": "track", "name": "Order Completed"}
        for i in range(event_count)
    ]
    rows = []
    # The class of the job's first request, on every record; none for a job never sent.
    first_error_class = None if unsent else attempts[0].get("error_class", ErrorClass.NONE.value)
    for number, spec in enumerate(attempts, start=0 if unsent else 1):
        status = spec.get("status_code")
        sent = number >= 1
        rows.append(
            {
                "attempt_id": f"A{next(_ids):025d}",
                "job_id": job_id,
                "attempt": number,
                "workspace_id": workspace_id,
                "source_id": f"src_{workspace_id}",
                "destination_id": destination_id,
                "integration": integration,
                "event_count": event_count,
                "events": events,
                "received_at": received_at,
                "started_at": spec["started_at"],
                "duration_ms": spec.get("duration_ms", 100.0) if sent else None,
                "status_code": status,
                "error_class": spec.get("error_class", ErrorClass.NONE.value),
                "error_code": spec.get("error_code", None if status is None else str(status)),
                "retryable": spec.get("retryable", False),
                "outcome": spec["outcome"],
                "retry_after_s": spec.get("retry_after_s"),
                "next_attempt_at": spec.get("next_attempt_at"),
                "request_bytes": 512 * event_count if sent else None,
                "response_body": spec.get("response_body"),
                "error_message": spec.get("error_message"),
                "first_error_class": first_error_class,
                "replay_of": replay_of,
            }
        )
    return rows


def ok(started_at: datetime, duration_ms: float = 100.0) -> dict[str, Any]:
    return {
        "started_at": started_at,
        "status_code": 200,
        "outcome": Outcome.DELIVERED.value,
        "duration_ms": duration_ms,
    }


def retry(started_at: datetime, next_at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "started_at": started_at,
        "outcome": Outcome.RETRY.value,
        "retryable": True,
        "next_attempt_at": next_at,
        **fields,
    }


def server_503(started_at: datetime, outcome: str) -> dict[str, Any]:
    return {
        "started_at": started_at,
        "status_code": 503,
        "error_class": ErrorClass.SERVER.value,
        "retryable": True,
        "outcome": outcome,
        "response_body": UNAVAILABLE_HTML,
        "duration_ms": 200.0,
    }


def fixture_rows() -> list[dict[str, Any]]:
    """Every record of J1-J12 (see the module docstring)."""
    j5_times = ["20:00:01", "20:20", "20:40", "21:00", "21:20", "21:40", "22:30", "23:30"]
    j5 = [server_503(at(D1, t), Outcome.RETRY.value) for t in j5_times]
    j5 += [
        server_503(at(D2, "00:05"), Outcome.RETRY.value),
        server_503(at(D2, "00:20"), Outcome.DROPPED.value),
    ]
    return [
        *job("J1", "dst_acme_hook", at(D1, "10:00"), [ok(at(D1, "10:00:01"), 120.0)]),
        *job("J2", "dst_acme_hook", at(D1, "11:00"), [ok(at(D1, "11:00:01"), 80.0)], event_count=3),
        *job(
            "J3",
            "dst_acme_amp",
            at(D1, "12:00"),
            [
                retry(
                    at(D1, "12:00:01"),
                    at(D1, "12:00:13"),
                    status_code=429,
                    error_class="rate_limit",
                    retry_after_s=12.0,
                    response_body=RATE_LIMIT_12S,
                    duration_ms=50.0,
                ),
                retry(
                    at(D1, "12:00:13"),
                    at(D1, "12:00:30"),
                    status_code=429,
                    error_class="rate_limit",
                    retry_after_s=7.0,
                    response_body=RATE_LIMIT_7S,
                    duration_ms=60.0,
                ),
                ok(at(D1, "12:00:30"), 70.0),
            ],
        ),
        *job(
            "J4",
            "dst_globex_hook",
            at(D1, "13:00"),
            [
                {
                    "started_at": at(D1, "13:00:01"),
                    "status_code": 401,
                    "error_class": "auth",
                    "outcome": "failed",
                    "response_body": INVALID_KEY,
                    "duration_ms": 30.0,
                },
            ],
        ),
        *job("J5", "dst_globex_mix", at(D1, "20:00"), j5),
        *job(
            "J6",
            "dst_initech_amp",
            at(D1, "22:00"),
            [
                retry(
                    at(D1, "22:00:01"),
                    at(D2, "00:30"),
                    error_class="network",
                    error_code="ECONNRESET",
                    error_message="read ECONNRESET",
                    duration_ms=15.0,
                ),
                retry(
                    at(D2, "00:30"),
                    at(D2, "02:00"),
                    status_code=503,
                    error_class="server",
                    response_body='{"error":"upstream unavailable"}',
                ),
            ],
        ),
        *job(
            "J7",
            "dst_initech_amp",
            at(D1, "14:00"),
            [
                {
                    "started_at": at(D1, "14:00:00"),
                    "error_class": "precheck",
                    "error_code": "MISSING_API_KEY",
                    "outcome": "skipped",
                },
            ],
            unsent=True,
        ),
        *job(
            "J8",
            "dst_globex_hook",
            at(D1, "15:00"),
            [
                {
                    "started_at": at(D1, "15:00:01"),
                    "status_code": 42,
                    "error_class": "nonstandard",
                    "outcome": "failed",
                    "response_body": "WTF",
                    "duration_ms": 40.0,
                },
            ],
        ),
        *job(
            "J9",
            "dst_globex_hook",
            at(D1, "16:00"),
            [
                retry(
                    at(D1, "16:00:01"),
                    at(D1, "16:01"),
                    error_class="timeout",
                    error_code="ETIMEDOUT",
                    error_message="request timed out after 10000 ms",
                    duration_ms=10_000.0,
                ),
                ok(at(D1, "16:01"), 90.0),
            ],
            event_count=2,
        ),
        *job(
            "J10",
            "dst_initech_amp",
            at(D1, "17:00"),
            [
                {
                    "started_at": at(D1, "17:00:01"),
                    "status_code": 400,
                    "error_class": "validation",
                    "outcome": "failed",
                    "duration_ms": 25.0,
                    "response_body": '{"error":{"message":"Invalid event: missing userId"}}',
                },
            ],
        ),
        *job("J11", "dst_acme_hook", at(D2, "02:00"), [ok(at(D2, "02:00:01"))]),
        *job(
            "J12",
            "dst_acme_amp",
            at(D0, "23:50"),
            [
                server_503(at(D0, "23:50:01"), Outcome.RETRY.value),
                ok(at(D1, "00:05")),
            ],
        ),
    ]


def publish(rows: list[dict[str, Any]], data_dir: Path) -> None:
    """Write contract rows the way the engine does: partitioned, atomically published."""
    write_partitioned(rows_to_table(rows), data_dir)


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the fixture log (read-only: shared by every test)."""
    data_dir = tmp_path_factory.mktemp("data")
    publish(fixture_rows(), data_dir)
    return data_dir


def copy_log(source: Path, data_dir: Path) -> Path:
    """Copy the log at `source` (`fixture_dir`) into `data_dir`, for a test that changes it: the same
    files as publishing `fixture_rows()` there (about a second, its rollups included), in a fraction.

    The copies are new files (`copyfile`, not `copy2`'s kept times), as a publish's would be: the
    repair, compaction and day builds leave files younger than their grace alone.
    """
    shutil.copytree(source, data_dir, copy_function=shutil.copyfile, dirs_exist_ok=True)
    return data_dir


@pytest.fixture
def log(fixture_dir: Path) -> Iterator[AttemptLog]:
    with connect(fixture_dir) as opened:
        yield opened


@pytest.fixture(scope="module")
def module_log(fixture_dir: Path) -> Iterator[AttemptLog]:
    """The fixture log opened once for a module whose tests only read through it: its SQL sandbox's
    worker process starts once, not once per test (about a second each)."""
    with connect(fixture_dir) as opened:
        yield opened


@pytest.fixture(scope="session")
def simulated_day_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated day of 300,000 attempts on `SIMULATED_DAY` (read-only: shared by every module that
    compares queries on a realistic day, since simulating it takes seconds)."""
    data_dir = tmp_path_factory.mktemp("simulated")
    simulate_day(300_000, data_dir, date=SIMULATED_DAY.date())
    return data_dir


#: The raw versions of the named queries: the same figures, from the `attempts` view alone.
RAW_DIR = Path(__file__).parent / "raw"


def raw_connection(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """A plain DuckDB with only the `attempts` view: what the queries read before the rollups."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    connect_macros(con)  # redact_body, which error_samples applies for an integration
    con.execute(file_view_sql(attempts_glob(data_dir)))
    return con


def run_raw(
    con: duckdb.DuckDBPyConnection, name: str, scope: Scope, start: datetime, end: datetime, **extra: object
) -> pl.DataFrame:
    """The raw version of the named query `name` (`RAW_DIR`) on `con` (`raw_connection`)."""
    text = (RAW_DIR / f"{name}.sql").read_text(encoding="utf-8")
    wanted = con.extract_statements(text)[0].named_parameters
    offered = query_parameters(scope, start, end) | extra
    return con.sql(text, params={key: offered[key] for key in wanted}).pl()
