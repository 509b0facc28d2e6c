"""What the worker writes about a request: the decision taken on it and its attempt record. Pure.

A record is a mapping with the columns of `ingest.schema` (documented in
docs/attempt-log.md), built from what the worker knows at that point: the
claimed `Job`, its `Destination`, the `SendResult`, the `Classification` and
the `Decision` taken on it (`delivery.retry.decide`). The worker hands it to the queue with the job's
state change (the outbox), and the queue checks it against the contract.

Never in a record: request headers, or any secret. The sender already
redacts response bodies and error texts and keeps 2 KiB of a body; the
builder redacts again with the destination's configured secrets (its
signing secrets included, which are never sent but which a receiver may
quote back) and cuts again, so a record is safe whatever `SendResult` it
is given.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from delivery.config import Destination
from delivery.queue import Job
from delivery.retry import Decision
from delivery.sender import SendResult
from delivery.signing import SECRET_PREFIX
from delivery.transport.redaction import keep, redact, secrets_of
from ingest.schema import RESPONSE_BODY_LIMIT
from ingest.taxonomy import Classification, Outcome

#: `integration` of a job whose destination is no longer configured.
UNKNOWN_INTEGRATION: Final = "unknown"
#: How `error_message` begins when no table knew the failure's exception.
UNCLASSIFIED_PREFIX: Final = "unclassified: "


def request_record(
    job: Job,
    destination: Destination,
    *,
    attempt_id: str,
    started_at: dt.datetime,
    request_bytes: int,
    result: SendResult,
    verdict: Classification,
    decision: Decision,
) -> dict[str, Any]:
    """The record of one request: attempt `job.attempts + 1`.

    `started_at` is when the request started (UTC, aware), `request_bytes`
    the body's size. The `error_message` of a failure no table knows
    (`SendResult.unclassified`) starts with `UNCLASSIFIED_PREFIX`, so such
    records can be found.
    """
    error_message = None
    if result.status is None and result.error_message is not None:
        error_message = redact(result.error_message, _secrets(destination))
        if result.unclassified is not None:
            error_message = UNCLASSIFIED_PREFIX + error_message
    return {
        **_job_columns(attempt_id, job, job.attempts + 1, destination.integration),
        "started_at": started_at,
        "duration_ms": result.duration_ms,
        "status_code": result.status,
        "error_class": str(verdict.error_class),
        "error_code": verdict.error_code,
        "retryable": verdict.retryable,
        "outcome": str(decision.outcome),
        "retry_after_s": decision.retry_after_s,
        "next_attempt_at": decision.next_attempt_at,
        "request_bytes": request_bytes,
        "response_body": _kept_body(result, destination),
        "error_message": error_message,
        # Attempt 1 is the first request; a retry carries what the queue kept of it.
        "first_error_class": str(verdict.error_class) if job.attempts == 0 else job.first_error_class,
        "replay_of": job.replay_of,
    }


def skip_record(
    job: Job,
    destination: Destination | None,
    *,
    attempt_id: str,
    settled_at: dt.datetime,
    verdict: Classification,
    error_message: str | None = None,
) -> dict[str, Any]:
    """The record of a job settled without a request (outcome `skipped`).

    `attempt` is 0 for a job never tried, else the number the next request
    would have had (docs/attempt-log.md). `destination` is None when the job's
    destination is no longer configured. `error_message` says what to change
    (an integration rule the job breaks); it is redacted like any other text.
    """
    if error_message is not None and destination is not None:
        error_message = redact(error_message, _secrets(destination))
    integration = destination.integration if destination is not None else UNKNOWN_INTEGRATION
    return {
        **_job_columns(attempt_id, job, job.attempts + 1 if job.attempts else 0, integration),
        "started_at": settled_at,
        "duration_ms": None,
        "status_code": None,
        "error_class": str(verdict.error_class),
        "error_code": verdict.error_code,
        "retryable": verdict.retryable,
        "outcome": str(Outcome.SKIPPED),
        "retry_after_s": None,
        "next_attempt_at": None,
        "request_bytes": None,
        "response_body": None,
        "error_message": error_message,
        # NULL for a job never tried (attempt 0); a skip after tries carries its first request's class.
        "first_error_class": job.first_error_class if job.attempts else None,
        "replay_of": job.replay_of,
    }


def utc(epoch_s: float) -> dt.datetime:
    """Epoch seconds as an aware UTC datetime (the log's timestamps)."""
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC)


def _job_columns(attempt_id: str, job: Job, attempt: int, integration: str) -> dict[str, Any]:
    """The record's first columns, in the contract's order: ids, and what every record of a job shares."""
    if not job.events:
        raise ValueError(f"job {job.id} carries no events")
    first = job.events[0]
    return {
        "attempt_id": attempt_id,
        "job_id": job.id,
        "attempt": attempt,
        "workspace_id": first.workspace_id,
        "source_id": first.source_id,
        "destination_id": job.destination_id,
        "integration": integration,
        "event_count": len(job.events),
        "events": [{"message_id": e.message_id, "type": e.type, "name": e.name} for e in job.events],
        "received_at": utc(job.received_at),
    }


def _kept_body(result: SendResult, destination: Destination) -> str | None:
    """The response body of a non-2xx response, redacted and cut to the log's limit."""
    if result.status is None or 200 <= result.status < 300 or result.body is None:
        return None
    return keep(result.body, _secrets(destination), RESPONSE_BODY_LIMIT)


def _secrets(destination: Destination) -> list[str]:
    secrets = secrets_of(destination.request_headers(), destination.url)
    if destination.credential is not None:
        # A Basic credential is sent encoded: its plain form (and password) must be redacted too.
        credential = destination.credential.reveal()
        secrets += [credential, *credential.split(":", 1)[1:]]
    for signing_secret in (destination.signing_secret, destination.previous_signing_secret):
        if signing_secret is not None:
            # Never sent, but the receiver holds it and may quote it, whole or as its base64 alone.
            whole = signing_secret.reveal()
            secrets += [whole, whole.removeprefix(SECRET_PREFIX)]
    return [secret for secret in secrets if secret]
