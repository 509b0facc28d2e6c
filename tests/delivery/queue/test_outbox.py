"""The attempt record's outbox form: what every backend stores and the exporter reads back."""

from __future__ import annotations

import datetime as dt

from delivery.queue import decode_record, encode_record
from tests.ingest.rows import attempt_row


def test_records_round_trip_through_the_outbox_form() -> None:
    started = dt.datetime(2026, 3, 9, 23, 59, 59, 999_999, tzinfo=dt.UTC)
    record = attempt_row(
        1,
        started,
        status_code=None,
        error_class="network",
        error_code="ECONNRESET",
        error_message="connexion réinitialisée",
        next_attempt_at=started + dt.timedelta(seconds=30),
        retry_after_s=1.5,
        outcome="retry",
        duration_ms=0.1,
        events=[{"message_id": "m", "type": "identify", "name": None}],
    )
    assert decode_record(encode_record(record)) == record
    # orjson writes NaN as null: such a record takes the json module's way, both ways.
    assert decode_record(encode_record(record | {"retry_after_s": float("inf")}))["retry_after_s"] == float(
        "inf"
    )
    offset = dt.timezone(dt.timedelta(hours=2))
    assert decode_record(encode_record(record | {"started_at": started.astimezone(offset)})) == record
