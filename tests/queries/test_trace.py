"""The per-event trace and fan-out completeness on a simulated day (docs/trace.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from ingest.simulate import simulate_day
from queries import Scope, connect
from queries.log import AttemptLog
from queries.trace import ATTEMPT_COLUMNS, fanout, trace_event

START = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("trace")
    simulate_day(5_000, data_dir)
    return data_dir


@pytest.fixture(scope="module")
def log(day: Path) -> AttemptLog:
    with connect(day) as opened:
        yield opened


def _retried_event(day: Path) -> tuple[str, str, str, int]:
    """A retried job's event: its message id, workspace, job and records."""
    glob = f"{day}/attempts/*/*/*.parquet"
    row = duckdb.sql(
        f"SELECT events[1].message_id, workspace_id, job_id FROM read_parquet('{glob}') "
        "WHERE attempt = 2 AND event_count = 1 ORDER BY job_id LIMIT 1"
    ).fetchall()[0]
    records = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}') WHERE job_id = '{row[2]}'").fetchall()
    return row[0], row[1], row[2], records[0][0]


def test_trace_lists_every_record_of_the_event(day: Path, log: AttemptLog) -> None:
    message_id, _workspace, job, records = _retried_event(day)
    trace = trace_event(log, Scope.all(), message_id, START, END)
    assert trace.found
    assert trace.attempts.get_column("job_id").to_list() == [job] * records
    assert trace.attempts.get_column("attempt").to_list() == list(range(1, records + 1))
    mine = trace.destinations.filter(
        trace.destinations["destination_id"] == trace.attempts.item(0, "destination_id")
    )
    assert mine.item(0, "fate") == trace.attempts.item(-1, "outcome").replace("retry", "retrying")


def test_a_customer_finds_only_its_own_workspace(day: Path, log: AttemptLog) -> None:
    message_id, workspace, _, _ = _retried_event(day)
    assert trace_event(log, Scope.workspace(workspace), message_id, START, END).found
    other = trace_event(log, Scope.workspace("ws_not_theirs"), message_id, START, END)
    assert not other.found
    assert other.destinations.is_empty()


def test_partners_cannot_trace(log: AttemptLog) -> None:
    with pytest.raises(ValueError, match="partner"):
        trace_event(log, Scope.integration("webhook"), "anything", START, END)
    with pytest.raises(ValueError, match="partner"):
        fanout(log, Scope.integration("webhook"), START, END)


def test_an_unknown_message_is_not_found(log: AttemptLog) -> None:
    assert not trace_event(log, Scope.all(), "no-such-message", START, END).found


def test_fanout_counts_every_event_once(day: Path, log: AttemptLog) -> None:
    sources = fanout(log, Scope.all(), START, END)
    glob = f"{day}/attempts/*/*/*.parquet"
    events = duckdb.sql(
        f"SELECT count(DISTINCT e.message_id) FROM (SELECT unnest(events) AS e FROM read_parquet('{glob}') "
        "WHERE attempt <= 1)"
    ).fetchall()[0][0]
    assert sources.get_column("events").sum() == events
    split = (
        sources.get_column("delivered_all")
        + sources.get_column("delivered_some")
        + sources.get_column("delivered_none")
    )
    assert (split == sources.get_column("events")).all()


def test_the_attempt_columns_are_the_querys(day: Path, log: AttemptLog) -> None:
    message_id, _, _, _ = _retried_event(day)
    found = trace_event(log, Scope.all(), message_id, START, END)
    assert tuple(found.attempts.columns) == ATTEMPT_COLUMNS
    assert (
        tuple(trace_event(log, Scope.all(), "no-such-message", START, END).attempts.columns)
        == ATTEMPT_COLUMNS
    )
