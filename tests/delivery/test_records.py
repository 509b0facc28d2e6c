"""The decision after a request and the attempt record it leaves: pure, every value exact."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from typing import Any

from delivery.config import Destination, Secret
from delivery.queue import Event, Job, JobState, check_record
from delivery.records import (
    UNCLASSIFIED_PREFIX,
    UNKNOWN_INTEGRATION,
    request_record,
    skip_record,
    utc,
)
from delivery.retry import Decision, RetryPolicy
from delivery.sender import SendResult
from delivery.transport.redaction import REDACTED
from ingest.schema import COLUMN_NAMES, RESPONSE_BODY_LIMIT, rows_to_table
from ingest.taxonomy import Classification, ErrorClass, Outcome, classify_status, classify_transport

T0 = 1_790_000_000.0
RECEIVED = utc(T0)
ENDED = RECEIVED + dt.timedelta(seconds=10)
#: No jitter, so every retry time is exact: base 1 s doubling, at most 8 s, 5 attempts in 60 s.
POLICY = RetryPolicy(
    max_attempts=5, retry_window_s=60, backoff_base_s=1, backoff_max_s=8, jitter=0, retry_after_max_s=30
)
HOOK = Destination(
    id="acme-hook",
    source="web",
    integration="webhook",
    url="https://hooks.example.com/deliver/tok_path_secret",
    headers={"Authorization": Secret("Bearer s3cret"), "X-Api-Key": Secret("k3y-value")},
)


def event(n: int, *, name: str | None = "Order Completed", type_: str = "track") -> Event:
    return Event(f"msg-{n}", "acme", "web", type_, name, b"{}", T0 + n)


def job(*events: Event, attempts: int = 0, first_error_class: str | None = None) -> Job:
    events = events or (event(0),)
    return Job(
        id="01JOB",
        destination_id=HOOK.id,
        events=events,
        state=JobState.LEASED,
        attempts=attempts,
        due_at=T0,
        received_at=min(e.received_at for e in events),
        first_error_class=first_error_class,
        lease_owner="w",
        lease_token="tok",
    )


def record(result: SendResult, verdict: Classification, decision: Decision, **options: Any) -> dict[str, Any]:
    return request_record(
        options.pop("job", job()),
        HOOK,
        attempt_id="01ATTEMPT",
        started_at=RECEIVED + dt.timedelta(seconds=1),
        request_bytes=321,
        result=result,
        verdict=verdict,
        decision=decision,
        **options,
    )


def after(seconds: float) -> dt.datetime:
    return ENDED + dt.timedelta(seconds=seconds)


# -- request_record -------------------------------------------------------------------------------


def test_a_delivered_request() -> None:
    two = job(event(1), event(2, name=None, type_="identify"))
    row = record(
        SendResult(12.5, status=200, body=None),
        classify_status(200),
        Decision(Outcome.DELIVERED),
        job=two,
    )
    assert row == {
        "attempt_id": "01ATTEMPT",
        "job_id": "01JOB",
        "attempt": 1,
        "workspace_id": "acme",
        "source_id": "web",
        "destination_id": "acme-hook",
        "integration": "webhook",
        "event_count": 2,
        "events": [
            {"message_id": "msg-1", "type": "track", "name": "Order Completed"},
            {"message_id": "msg-2", "type": "identify", "name": None},
        ],
        "received_at": utc(T0 + 1),
        "started_at": RECEIVED + dt.timedelta(seconds=1),
        "duration_ms": 12.5,
        "status_code": 200,
        "error_class": "none",
        "error_code": "200",
        "retryable": False,
        "outcome": "delivered",
        "retry_after_s": None,
        "next_attempt_at": None,
        "request_bytes": 321,
        "response_body": None,
        "error_message": None,
        "first_error_class": "none",
        "replay_of": None,
    }
    assert tuple(row) == COLUMN_NAMES
    check_record(row)


def test_a_first_request_is_its_own_first_error_class_and_a_retry_carries_the_jobs() -> None:
    first = record(
        SendResult(5.0, status=503, body="busy"), classify_status(503), Decision(Outcome.RETRY, after(1))
    )
    assert (first["attempt"], first["error_class"], first["first_error_class"]) == (1, "server", "server")
    # A batch request is a fresh job's first request too (delivery.batching.combine).
    batch = record(
        SendResult(5.0, status=429, body="slow"),
        classify_status(429),
        Decision(Outcome.RETRY, after(1)),
        job=job(event(1), event(2)),
    )
    assert (batch["attempt"], batch["first_error_class"]) == (1, "rate_limit")
    retry = record(
        SendResult(5.0, status=200),
        classify_status(200),
        Decision(Outcome.DELIVERED),
        job=job(attempts=2, first_error_class="timeout"),
    )
    assert (retry["attempt"], retry["error_class"], retry["first_error_class"]) == (3, "none", "timeout")
    check_record(retry)


def test_a_retried_request_is_numbered_after_the_attempts_made() -> None:
    decision = Decision(Outcome.RETRY, after(4), retry_after_s=3.0)
    row = record(
        SendResult(5.0, status=503, body="busy", retry_after="3"),
        classify_status(503),
        decision,
        job=job(attempts=2),
    )
    assert row["attempt"] == 3
    assert (row["outcome"], row["next_attempt_at"], row["retry_after_s"]) == ("retry", after(4), 3.0)
    assert (row["error_class"], row["error_code"], row["retryable"]) == ("server", "503", True)
    assert row["response_body"] == "busy"
    check_record(row)


def test_a_transport_failure_has_no_status_and_keeps_the_error_text() -> None:
    result = SendResult(0.8, error_code="ECONNREFUSED", error_message="ClientConnectorError: refused")
    row = record(result, classify_transport("ECONNREFUSED"), Decision(Outcome.RETRY, after(1)))
    assert row["status_code"] is None
    assert (row["error_class"], row["error_code"]) == ("network", "ECONNREFUSED")
    assert row["error_message"] == "ClientConnectorError: refused"
    assert row["response_body"] is None
    check_record(row)


def test_an_unclassified_failure_is_marked() -> None:
    result = SendResult(
        1.0,
        error_code="EUNCLASSIFIED",
        error_message="RuntimeError: odd",
        unclassified="no transport code for RuntimeError: odd: builtins.RuntimeError is in no table",
    )
    row = record(result, classify_transport("EUNCLASSIFIED"), Decision(Outcome.RETRY, after(1)))
    assert row["error_message"] == UNCLASSIFIED_PREFIX + "RuntimeError: odd"
    assert (row["error_class"], row["error_code"], row["retryable"]) == ("network", "EUNCLASSIFIED", True)
    check_record(row)


def test_no_secret_reaches_a_record() -> None:
    echo = "Unauthorized. You sent Authorization: Bearer s3cret and X-Api-Key: k3y-value ; bare s3cret too"
    rows = [
        record(SendResult(3.0, status=401, body=echo), classify_status(401), Decision(Outcome.FAILED)),
        record(
            SendResult(3.0, error_code="ECONNRESET", error_message=f"OSError: {echo}"),
            classify_transport("ECONNRESET"),
            Decision(Outcome.RETRY, after(1)),
        ),
    ]
    for row in rows:
        text = repr(row)
        assert "s3cret" not in text
        assert "k3y-value" not in text
        assert REDACTED in text
    assert rows[0]["response_body"].startswith("Unauthorized. You sent Authorization: [REDACTED] and")


def test_a_signing_secret_quoted_back_never_reaches_a_record() -> None:
    """The receiver holds the secrets: one quoting them (whole, or the base64 alone) is redacted."""
    new, old = (
        "whsec_" + base64.b64encode(b"n" * 32).decode(),
        "whsec_" + base64.b64encode(b"o" * 32).decode(),
    )
    signed = dataclasses.replace(
        HOOK,
        signing_secret=Secret(new),
        previous_signing_secret=Secret(old),
        previous_signing_secret_expires_at=RECEIVED,
    )
    # No "secret:" key before them, so only the destination's own secrets can redact these.
    echo = f"bad signature; mine is {new.removeprefix('whsec_')} (was {old.removeprefix('whsec_')}) | {new}"
    row = request_record(
        job(),
        signed,
        attempt_id="01ATTEMPT",
        started_at=RECEIVED,
        request_bytes=2,
        result=SendResult(3.0, status=401, body=echo),
        verdict=classify_status(401),
        decision=Decision(Outcome.FAILED),
    )
    assert row["response_body"] == "bad signature; mine is [REDACTED] (was [REDACTED]) | [REDACTED]"


def test_a_body_is_kept_to_the_limit_on_a_character_boundary() -> None:
    body = "é" * RESPONSE_BODY_LIMIT  # 2 bytes each
    row = record(SendResult(1.0, status=500, body=body), classify_status(500), Decision(Outcome.RETRY, ENDED))
    kept = row["response_body"].encode()
    assert len(kept) == RESPONSE_BODY_LIMIT
    assert row["response_body"] == "é" * (RESPONSE_BODY_LIMIT // 2)


def test_a_2xx_body_is_never_kept() -> None:
    row = record(
        SendResult(1.0, status=201, body="created"), classify_status(201), Decision(Outcome.DELIVERED)
    )
    assert row["response_body"] is None


def test_records_fit_the_parquet_contract() -> None:
    rows = [
        record(SendResult(1.0, status=200), classify_status(200), Decision(Outcome.DELIVERED)),
        record(SendResult(1.0, status=42, body=""), classify_status(42), Decision(Outcome.FAILED)),
        skip_record(job(), None, attempt_id="01SKIP", settled_at=ENDED, verdict=_precheck()),
    ]
    assert rows_to_table(rows).num_rows == 3


# -- skip_record ----------------------------------------------------------------------------------


def _precheck() -> Classification:
    return Classification(ErrorClass.PRECHECK, "private_target", False)


def test_a_job_never_tried_is_skipped_as_attempt_zero() -> None:
    row = skip_record(job(), HOOK, attempt_id="01SKIP", settled_at=ENDED, verdict=_precheck())
    assert row["attempt"] == 0
    assert (row["outcome"], row["error_class"], row["error_code"], row["retryable"]) == (
        "skipped",
        "precheck",
        "private_target",
        False,
    )
    for column in ("duration_ms", "status_code", "request_bytes", "response_body", "next_attempt_at"):
        assert row[column] is None
    assert row["started_at"] == ENDED
    assert row["integration"] == "webhook"
    assert row["first_error_class"] is None  # no request was made
    assert tuple(row) == COLUMN_NAMES
    check_record(row)


def test_a_job_skipped_after_tries_takes_the_next_number() -> None:
    disabled = Classification(ErrorClass.DISABLED, "disabled", False)
    tried = job(attempts=3, first_error_class="network")
    row = skip_record(tried, HOOK, attempt_id="01SKIP", settled_at=ENDED, verdict=disabled)
    assert row["attempt"] == 4
    # Its fate counts for the class of its first failure (queries/retry_recovery.sql).
    assert row["first_error_class"] == "network"


def test_a_job_of_a_removed_destination() -> None:
    row = skip_record(job(), None, attempt_id="01SKIP", settled_at=ENDED, verdict=_precheck())
    assert row["integration"] == UNKNOWN_INTEGRATION
    assert row["destination_id"] == "acme-hook"


def test_utc() -> None:
    assert utc(0) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert utc(T0).utcoffset() == dt.timedelta(0)
