"""What a destination receives for one job: the body and the headers of the POST. Pure.

The body's shape is the integration's (`delivery.catalog.RequestShape`):

- ``event``: the event's JSON, byte for byte as the tracking API stored it
  (or as the pre-send checks fixed it); such integrations take no batches;
- ``batch``: always ``{"batch": [event, ...]}``, the shape of Segment's
  `/v1/batch`, even for a single event;
- ``event_or_batch`` (the webhook): one event as itself, several as a batch.

The stored payloads are already JSON, so a batch is assembled from their
bytes rather than parsed and encoded again.

The headers are `Content-Type: application/json`, the destination's
configured headers, and its credential where the integration's auth scheme
puts it (`Destination.request_headers`): the same on every request, built
once per destination. A destination with a `signing_secret` adds the
Standard Webhooks headers to each request (`signed`): the job's id, the
attempt's time and the signature of the exact body sent (`delivery.signing`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from delivery.catalog import RequestShape
from delivery.config import Destination
from delivery.queue import Event
from delivery.signing import Signer

CONTENT_TYPE: Final = "application/json"


def body(events: Sequence[Event], shape: RequestShape = RequestShape.EVENT_OR_BATCH) -> bytes:
    """The request body for a job's events, in the integration's `shape` (see the module docstring)."""
    if not events:
        raise ValueError("a job carries at least one event")
    if len(events) == 1 and shape is not RequestShape.BATCH:
        return events[0].payload
    if shape is RequestShape.EVENT:
        raise ValueError(f"an integration with request shape 'event' takes one event, got {len(events)}")
    return b'{"batch":[' + b",".join(event.payload for event in events) + b"]}"


def headers(destination: Destination) -> dict[str, str]:
    """`Content-Type: application/json`, the configured headers and the credential's, secrets revealed.

    A configured `Content-Type` (any case) replaces the default one, so the
    request never carries two.
    """
    configured = destination.request_headers()
    if any(name.lower() == "content-type" for name in configured):
        return configured
    return {"Content-Type": CONTENT_TYPE, **configured}


def signer(destination: Destination) -> Signer | None:
    """The destination's `Signer`, its keys decoded and keyed once; None for an unsigned destination."""
    if destination.signing_secret is None:
        return None
    previous = destination.previous_signing_secret
    expires_at = destination.previous_signing_secret_expires_at
    return Signer.from_secrets(
        destination.signing_secret.reveal(),
        previous.reveal() if previous is not None else None,
        expires_at.timestamp() if previous is not None and expires_at is not None else None,
    )


def signed(
    headers: Mapping[str, str], signer: Signer | None, job_id: str, sent_at: float, body: bytes
) -> Mapping[str, str]:
    """`headers`, plus the signature headers of `body` sent at `sent_at` (epoch seconds) when `signer` is set.

    The job's id is the `webhook-id`: every retry of the job carries the same
    one (a batch retried is one job, `delivery.batching`), so a receiver can
    drop a request it already processed.
    """
    if signer is None:
        return headers
    return {**headers, **signer.headers(job_id, int(sent_at), body)}
