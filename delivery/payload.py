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
puts it (`Destination.request_headers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from delivery.catalog import RequestShape
from delivery.config import Destination
from delivery.queue import Event

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
