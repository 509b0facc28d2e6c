"""Contract rows for writer and schema tests, built by hand so every value is known.

Importable from a child process (the atomicity test runs the writer in one).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from ingest.schema import rows_to_table

UTC = dt.UTC


def attempt_row(
    n: int,
    started_at: dt.datetime,
    *,
    workspace_id: str = "ws_a",
    destination_id: str = "dst_a",
    **overrides: Any,
) -> dict[str, Any]:
    """A delivered first attempt; `n` makes its ids unique."""
    row: dict[str, Any] = {
        "attempt_id": f"att_{n:08d}",
        "job_id": f"job_{n:08d}",
        "attempt": 1,
        "workspace_id": workspace_id,
        "source_id": f"src_{workspace_id}",
        "destination_id": destination_id,
        "integration": "webhook",
        "event_count": 1,
        "events": [{"message_id": f"msg-{n}", "type": "track", "name": "Order Completed"}],
        "received_at": started_at - dt.timedelta(milliseconds=150),
        "started_at": started_at,
        "duration_ms": 42.5,
        "status_code": 200,
        "error_class": "none",
        "error_code": "200",
        "retryable": False,
        "outcome": "delivered",
        "retry_after_s": None,
        "next_attempt_at": None,
        "request_bytes": 700,
        "response_body": None,
        "error_message": None,
        "first_error_class": "none",
    }
    row.update(overrides)
    return row


def spread_table(hours: int, rows_per_hour: int, *, start: dt.datetime, offset: int = 0) -> pa.Table:
    """`rows_per_hour` rows in each of `hours` consecutive hours, in scrambled order."""
    rows = []
    for i in range(hours * rows_per_hour):
        hour, k = divmod(i, rows_per_hour)
        # Scramble workspace, destination and minute so that sorting has work to do.
        started = start + dt.timedelta(hours=hour, seconds=(k * 7919) % 3_600, microseconds=k)
        rows.append(
            attempt_row(
                offset + i,
                started,
                workspace_id=f"ws_{(k * 31) % 7}",
                destination_id=f"dst_{(k * 17) % 11:02d}",
            )
        )
    return rows_to_table(rows)
