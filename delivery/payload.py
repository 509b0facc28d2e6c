"""What a destination receives for one job: the body and the headers of the POST. Pure.

Every integration speaks the generic webhook format for now, Segment's own:

- a job with one event: that event's JSON, byte for byte as the tracking API
  stored it;
- a job with several (a destination with ``max_batch_events > 1``):
  ``{"batch": [event, ...]}``, the shape of Segment's `/v1/batch`.

The stored payloads are already JSON, so a batch is assembled from their
bytes rather than parsed and encoded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from delivery.config import Destination
from delivery.queue import Event

CONTENT_TYPE: Final = "application/json"


def body(events: Sequence[Event]) -> bytes:
    """The request body for a job's events (see the module docstring)."""
    if not events:
        raise ValueError("a job carries at least one event")
    if len(events) == 1:
        return events[0].payload
    return b'{"batch":[' + b",".join(event.payload for event in events) + b"]}"


def headers(destination: Destination) -> dict[str, str]:
    """`Content-Type: application/json` and the destination's configured headers, secrets revealed.

    A configured `Content-Type` (any case) replaces the default one, so the
    request never carries two.
    """
    configured = destination.request_headers()
    if any(name.lower() == "content-type" for name in configured):
        return configured
    return {"Content-Type": CONTENT_TYPE, **configured}
