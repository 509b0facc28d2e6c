"""The request a destination receives: Segment's event JSON, or a batch of them."""

from __future__ import annotations

import json

import pytest

from delivery.config import Destination, Secret
from delivery.payload import CONTENT_TYPE, body, headers
from delivery.queue import Event


def event(n: int) -> Event:
    payload = json.dumps({"messageId": f"m{n}", "type": "track", "event": "Tick", "properties": {"n": n}})
    return Event(f"m{n}", "acme", "web", "track", "Tick", payload.encode(), 0.0)


def destination(**headers: str) -> Destination:
    return Destination(
        id="hook",
        source="web",
        integration="webhook",
        url="https://hooks.example.com/x",
        headers={name: Secret(value) for name, value in headers.items()},
    )


def test_one_event_is_sent_as_stored() -> None:
    one = event(1)
    assert body([one]) is one.payload


def test_several_events_are_a_segment_batch() -> None:
    events = [event(n) for n in range(3)]
    assert json.loads(body(events)) == {"batch": [json.loads(e.payload) for e in events]}


def test_a_job_without_events_has_no_body() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        body([])


def test_headers_are_json_plus_the_configured_ones_revealed() -> None:
    assert headers(destination(Authorization="Bearer s3cret")) == {
        "Content-Type": CONTENT_TYPE,
        "Authorization": "Bearer s3cret",
    }


def test_a_configured_content_type_replaces_the_default() -> None:
    assert headers(destination(**{"content-type": "application/vnd.acme+json"})) == {
        "content-type": "application/vnd.acme+json"
    }
