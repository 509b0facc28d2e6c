"""Invariants every simulated attempt log must hold, shared by small days and the 2M day.

Each check takes a DuckDB connection with an `attempts` view and returns the
offending rows (a few of them), so a failure shows what broke.
"""

from __future__ import annotations

import datetime as dt
import glob
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.files import attempts_glob, attempts_root
from ingest.schema import RESPONSE_BODY_LIMIT
from ingest.taxonomy import (
    FINAL_OUTCOMES,
    TRANSPORT_CODES,
    ErrorClass,
    Outcome,
    classify_status,
    classify_transport,
)
from ingest.writer import SORT_KEYS

Rows = list[tuple[Any, ...]]
UUID4 = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def open_log(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the view `attempts` over the published files."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.read_parquet(attempts_glob(data_dir), hive_partitioning=False).create_view("attempts")
    return con


def _violations(sql: str, **params: Any) -> Callable[[duckdb.DuckDBPyConnection], Rows]:
    def check(con: duckdb.DuckDBPyConnection) -> Rows:
        return con.execute(f"{sql} LIMIT 5", params).fetchall()

    return check


SQL_CHECKS: dict[str, Callable[[duckdb.DuckDBPyConnection], Rows]] = {
    "one_first_row_per_job": _violations(
        "SELECT job_id, count(*) FILTER (attempt <= 1) AS n FROM attempts GROUP BY job_id HAVING n <> 1"
    ),
    "one_final_row_per_job": _violations(
        "SELECT job_id, count(*) FILTER (list_contains($final, outcome)) AS n FROM attempts "
        "GROUP BY job_id HAVING n <> 1",
        final=sorted(FINAL_OUTCOMES),
    ),
    "attempts_numbered_1_to_k": _violations(
        "SELECT job_id, min(attempt), max(attempt), count(*), count(DISTINCT attempt) FROM attempts "
        "GROUP BY job_id HAVING min(attempt) <> 1 OR max(attempt) <> count(*) "
        "OR count(DISTINCT attempt) <> count(*)"
    ),
    "only_the_last_attempt_is_not_retry": _violations(
        "SELECT job_id, attempt, outcome FROM (SELECT job_id, attempt, outcome, "
        "max(attempt) OVER (PARTITION BY job_id) AS last FROM attempts) "
        "WHERE (outcome = 'retry') = (attempt = last)"
    ),
    "job_fields_stable_across_attempts": _violations(
        "SELECT job_id FROM attempts GROUP BY job_id HAVING count(DISTINCT received_at) > 1 "
        "OR count(DISTINCT destination_id) > 1 OR count(DISTINCT workspace_id) > 1 "
        "OR count(DISTINCT source_id) > 1 OR count(DISTINCT integration) > 1 "
        "OR count(DISTINCT events) > 1 OR count(DISTINCT request_bytes) > 1"
    ),
    # Every record carries the class of its job's attempt-1 record; attempt 0 (no request) NULL.
    "first_error_class_is_the_first_requests": _violations(
        "SELECT a.job_id, a.attempt, a.first_error_class, f.error_class FROM attempts AS a "
        "LEFT JOIN (SELECT job_id, error_class FROM attempts WHERE attempt = 1) AS f USING (job_id) "
        "WHERE a.first_error_class IS DISTINCT FROM f.error_class"
    ),
    "next_attempt_at_only_on_retry_and_later": _violations(
        "SELECT job_id, attempt, outcome, started_at, next_attempt_at FROM attempts "
        "WHERE (outcome = 'retry') <> (next_attempt_at IS NOT NULL) OR next_attempt_at <= started_at"
    ),
    "next_attempt_starts_when_scheduled": _violations(
        "SELECT job_id, attempt, next_attempt_at, next_start FROM (SELECT job_id, attempt, outcome, "
        "next_attempt_at, lead(started_at) OVER (PARTITION BY job_id ORDER BY attempt) AS next_start "
        "FROM attempts) WHERE outcome = 'retry' AND (next_start IS NULL "
        "OR abs(epoch_us(next_start) - epoch_us(next_attempt_at)) > 1000)"
    ),
    "at_most_10_attempts": _violations("SELECT job_id, attempt FROM attempts WHERE attempt > 10"),
    "no_attempt_after_the_4h_window": _violations(
        "SELECT job_id, attempt, received_at, started_at FROM attempts "
        "WHERE started_at > received_at + INTERVAL 4 HOUR"
    ),
    "started_after_received": _violations(
        "SELECT job_id, attempt, received_at, started_at FROM attempts WHERE started_at < received_at"
    ),
    "status_null_exactly_for_transport_codes": _violations(
        "SELECT status_code, error_code FROM attempts "
        "WHERE (status_code IS NULL) <> list_contains($codes, error_code) "
        "OR (status_code IS NOT NULL AND error_code <> status_code::VARCHAR)",
        codes=sorted(TRANSPORT_CODES),
    ),
    "error_message_exactly_without_response": _violations(
        "SELECT status_code, error_code, error_message FROM attempts "
        "WHERE (status_code IS NULL) <> (error_message IS NOT NULL)"
    ),
    "outcome_follows_classification": _violations(
        "SELECT error_class, retryable, outcome FROM attempts "
        "WHERE (outcome = 'delivered') <> (error_class = 'none') "
        "OR (outcome IN ('retry', 'dropped') AND NOT retryable) OR (outcome = 'failed' AND retryable)"
    ),
    "enum_columns_hold_contract_values": _violations(
        "SELECT error_class, outcome FROM attempts "
        "WHERE NOT list_contains($classes, error_class) OR NOT list_contains($outcomes, outcome)",
        classes=[c.value for c in ErrorClass],
        outcomes=[o.value for o in Outcome],
    ),
    "response_body_only_for_non_2xx_and_short": _violations(
        "SELECT status_code, strlen(response_body) FROM attempts WHERE response_body IS NOT NULL "
        "AND (status_code IS NULL OR status_code BETWEEN 200 AND 299 OR strlen(response_body) > $limit)",
        limit=RESPONSE_BODY_LIMIT,
    ),
    "every_non_2xx_response_has_a_body": _violations(
        "SELECT status_code FROM attempts WHERE response_body IS NULL "
        "AND status_code IS NOT NULL AND status_code NOT BETWEEN 200 AND 299"
    ),
    "retry_after_only_with_a_response": _violations(
        "SELECT status_code, retry_after_s FROM attempts "
        "WHERE retry_after_s IS NOT NULL AND (status_code IS NULL OR retry_after_s < 0)"
    ),
    "requests_have_duration_and_bytes": _violations(
        "SELECT attempt, duration_ms, request_bytes FROM attempts WHERE attempt >= 1 "
        "AND (duration_ms IS NULL OR duration_ms <= 0 OR request_bytes IS NULL OR request_bytes <= 0)"
    ),
    "event_count_is_len_events": _violations(
        "SELECT event_count, len(events) FROM attempts WHERE event_count <> len(events) OR event_count < 1"
    ),
    "message_ids_are_uuid4": _violations(
        "SELECT m FROM (SELECT unnest(events).message_id AS m FROM attempts) "
        "WHERE m IS NULL OR NOT regexp_full_match(m, $uuid4)",
        uuid4=UUID4,
    ),
    "message_ids_are_unique": _violations(
        "SELECT m, count(*) FROM (SELECT unnest(events).message_id AS m FROM attempts WHERE attempt <= 1) "
        "GROUP BY m HAVING count(*) > 1"
    ),
    "attempt_ids_are_unique": _violations(
        "SELECT attempt_id, count(*) FROM attempts GROUP BY attempt_id HAVING count(*) > 1"
    ),
    "job_ids_sort_by_received_at": _violations(
        # A ULID-style id starts with its millisecond, so text order is time order.
        "SELECT job_id, received_at, previous FROM (SELECT job_id, received_at, "
        "lag(received_at) OVER (ORDER BY job_id) AS previous FROM attempts WHERE attempt <= 1) "
        "WHERE epoch_us(received_at) // 1000 < epoch_us(previous) // 1000"
    ),
    "attempt_ids_sort_by_started_at": _violations(
        "SELECT attempt_id, started_at, previous FROM (SELECT attempt_id, started_at, "
        "lag(started_at) OVER (ORDER BY attempt_id) AS previous FROM attempts) "
        "WHERE epoch_us(started_at) // 1000 < epoch_us(previous) // 1000"
    ),
}


def classification_mismatches(con: duckdb.DuckDBPyConnection) -> Rows:
    """Distinct (status, code, class, retryable) combinations the taxonomy would classify otherwise."""
    combos = con.execute(
        "SELECT DISTINCT status_code, error_code, error_class, retryable FROM attempts"
    ).fetchall()
    wrong = []
    for status, code, error_class, retryable in combos:
        verdict = classify_transport(code) if status is None else classify_status(status)
        found = (code, error_class, retryable)
        if (verdict.error_code, verdict.error_class.value, verdict.retryable) != found:
            wrong.append((status, *found))
    return wrong


_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/[^/]+\.parquet")


def partition_violations(data_dir: Path) -> list[str]:
    """Files whose rows are outside their hour directory or out of the writer's sort order."""
    bad = []
    root = attempts_root(data_dir)
    for name in sorted(glob.glob(attempts_glob(data_dir))):
        path = Path(name)
        match = _PARTITION.fullmatch(path.relative_to(root).as_posix())
        assert match, path
        start = dt.datetime.fromisoformat(match[1]).replace(hour=int(match[2]), tzinfo=dt.UTC)
        table = pq.read_table(path, columns=[key for key, _ in SORT_KEYS])
        started = table.column("started_at")
        if pc.min(started).as_py() < start or pc.max(started).as_py() >= start + dt.timedelta(hours=1):
            bad.append(f"{path}: rows outside the hour")
        if not table.equals(table.sort_by(SORT_KEYS)):
            bad.append(f"{path}: rows out of order")
    return bad
