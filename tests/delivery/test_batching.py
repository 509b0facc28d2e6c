"""Batching: grouping jobs into requests (pure), and the worker against the partner simulator's
`batch` partner, checked by the attempt records it commits. The queue's side (claims counted in
requests, lingering, merged retries) is in tests/delivery/queue/test_contract.py, on every backend.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from delivery import batching
from delivery.config import Config, parse_config
from delivery.queue import Event, Job, JobState
from delivery.queue.sqlite import SqliteQueue
from delivery.sender import Sender
from delivery.worker import Worker
from deliverydash.partner_simulator.config import PartnerSpec
from deliverydash.partner_simulator.profiles import OK, Batch, Profile, Reply, Request, json_answer
from deliverydash.partner_simulator.servers import PartnerSet

T0 = 1_700_000_000.0


def event(i: int, *, payload: bytes | None = None, received_at: float = T0, **fields: Any) -> Event:
    document = {"type": "track", "event": "Paid", "userId": f"u{i}", "messageId": f"m{i}", **fields}
    body = payload if payload is not None else json.dumps(document).encode()
    return Event(f"m{i}", "acme", "web", "track", "Paid", body, received_at)


def job(i: int, *, attempts: int = 0, events: int = 1, size: int = 0) -> Job:
    payload = b"x" * size if size else None
    return Job(
        f"j{i}",
        "d",
        tuple(event(i * 100 + k, payload=payload) for k in range(events)),
        JobState.LEASED,
        attempts,
        T0,
        T0 + i,
    )


def ids(groups: Sequence[Sequence[Job]]) -> list[list[str]]:
    return [[j.id for j in group] for group in groups]


# -- pure ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jobs", "max_events", "max_bytes", "expected"),
    [
        ([job(i) for i in range(5)], 2, 10_000, [["j0", "j1"], ["j2", "j3"], ["j4"]]),
        ([job(i) for i in range(3)], 1, 10_000, [["j0"], ["j1"], ["j2"]]),
        # Tried before, or several events: alone, as they were built.
        ([job(0), job(1, attempts=2), job(2), job(3, events=3)], 10, 10_000, [["j1"], ["j3"], ["j0", "j2"]]),
        # 12 bytes of envelope, 100 per event, one comma between two: 2 events fit 213 bytes, not 212.
        ([job(i, size=100) for i in range(3)], 10, 213, [["j0", "j1"], ["j2"]]),
        ([job(i, size=100) for i in range(3)], 10, 212, [["j0"], ["j1"], ["j2"]]),
        # An event above the limit still goes, alone.
        ([job(0, size=500), job(1, size=10)], 10, 212, [["j0"], ["j1"]]),
    ],
)
def test_requests_group_fresh_jobs_by_count_and_bytes(
    jobs: list[Job], max_events: int, max_bytes: int, expected: list[list[str]]
) -> None:
    assert ids(batching.requests(jobs, max_events=max_events, max_bytes=max_bytes)) == expected


@pytest.mark.parametrize(
    ("sizes", "max_bytes", "n"),
    [([100, 100, 100], 314, 3), ([100, 100, 100], 313, 2), ([100], 50, 1), ([], 50, 0)],
)
def test_fitting_counts_the_leading_events_that_fit(sizes: list[int], max_bytes: int, n: int) -> None:
    assert batching.fitting(sizes, max_bytes) == n
    if n > 1:
        assert batching.body_bytes(sizes[:n]) <= max_bytes


def test_combine_keeps_the_first_job_and_the_earliest_receipt() -> None:
    combined = batching.combine([job(2), job(1), job(3)])
    assert (combined.id, combined.received_at, combined.attempts) == ("j2", T0 + 1, 0)
    assert [e.message_id for e in combined.events] == ["m200", "m100", "m300"]
    assert batching.combine([job(1, attempts=3)]) == job(1, attempts=3)
    with pytest.raises(ValueError):
        batching.combine([job(1), job(2, attempts=1)])


# -- the worker against the partner simulator -------------------------------------------------------


@dataclass
class FailFirst(Profile):
    """503 to the first request, then what `then` answers."""

    name: ClassVar[str] = "fail-first"
    then: Profile = dataclasses.field(default_factory=Batch)
    _seen: int = 0

    def decide(self, request: Request, now: float) -> Reply:
        self._seen += 1
        if self._seen == 1:
            return json_answer(503, {"error": "try again"})
        return self.then.decide(request, now) if self.then else OK


def config_for(tmp_path: Path, url: str, **destination: Any) -> Config:
    return parse_config(
        {
            "engine": {
                "data_dir": str(tmp_path),
                "allow_private_targets": True,
                "backoff_base_s": 0.05,
                "backoff_max_s": 0.2,
                "backoff_jitter": 0,
                "request_timeout_s": 5,
                "lease_s": 10,
                "concurrency": 8,
                "per_destination_concurrency": 4,
            },
            "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_test_web"}],
            "destinations": [
                {"id": "bulk", "source": "web", "integration": "webhook", "url": url, **destination}
            ],
        }
    )


def deliver(tmp_path: Path, profile: Profile, events: list[Event], **destination: Any) -> Any:
    """Enqueue `events`, run a worker until nothing is left; (partner stats, attempt records)."""
    queue = SqliteQueue(tmp_path)

    async def scenario() -> Any:
        async with PartnerSet([PartnerSpec("bulk", profile)]) as partners:
            config = config_for(tmp_path, partners.url("bulk"), **destination)
            queue.enqueue(events, {"web": ["bulk"]})
            async with Sender(request_timeout_s=5, limit=100, limit_per_host=100) as sender:
                stop = asyncio.Event()
                task = asyncio.create_task(Worker(config, queue, sender, owner="t").run(stop))
                deadline = time.monotonic() + 8
                while sum(queue.depth().by_state.values()) and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                stop.set()
                await task
            return partners.stats("bulk")

    try:
        stats = asyncio.run(scenario())
        rows = []
        while (batch := queue.outbox_batch(1000)) is not None:
            rows += batch.rows
            queue.outbox_ack(batch.batch_id)
        assert sum(queue.depth().by_state.values()) == 0
        assert queue._db.execute("SELECT count(*) FROM events").fetchone() == (0,)
    finally:
        queue.close()
    return stats, sorted(rows, key=lambda r: (r["job_id"], r["attempt"]))


def test_n_events_go_in_fewer_requests_with_one_record_each(tmp_path: Path) -> None:
    now = time.time()
    events = [event(i, received_at=now) for i in range(25)]
    stats, rows = deliver(tmp_path, Batch(max_events=10), events, max_batch_events=10)
    assert (stats.requests, stats.events, dict(stats.statuses)) == (3, 25, {200: 3})
    assert sorted(r["event_count"] for r in rows) == [5, 10, 10]
    assert len({r["job_id"] for r in rows}) == 3
    assert {(r["attempt"], r["outcome"]) for r in rows} == {(1, "delivered")}
    carried = [e["message_id"] for r in rows for e in r["events"]]
    assert sorted(carried) == sorted(e.message_id for e in events)  # each event once
    assert all(r["request_bytes"] > 10 * len(events[0].payload) for r in rows if r["event_count"] == 10)


def test_without_batching_each_event_is_a_request(tmp_path: Path) -> None:
    events = [event(i, received_at=time.time()) for i in range(6)]
    stats, rows = deliver(tmp_path, Batch(max_events=10), events, max_batch_events=1)
    assert (stats.requests, stats.events) == (6, 6)
    assert [r["event_count"] for r in rows] == [1] * 6


def test_a_retried_batch_keeps_its_job_id_and_events(tmp_path: Path) -> None:
    now = time.time()
    events = [event(i, received_at=now + i / 1000) for i in range(6)]
    stats, rows = deliver(tmp_path, FailFirst(), events, max_batch_events=10)
    assert (stats.requests, stats.events, dict(stats.statuses)) == (2, 12, {503: 1, 200: 1})
    assert [(r["attempt"], r["outcome"], r["event_count"]) for r in rows] == [
        (1, "retry", 6),
        (2, "delivered", 6),
    ]
    first, second = rows
    assert first["job_id"] == second["job_id"]
    assert first["events"] == second["events"]
    assert first["received_at"] == second["received_at"]
    assert [e["message_id"] for e in first["events"]] == [e.message_id for e in events]
    # The batch's request is the merged job's first: the retry carries its class.
    assert [(r["error_class"], r["first_error_class"]) for r in rows] == [
        ("server", "server"),
        ("none", "server"),
    ]


def test_an_event_that_breaks_a_rule_is_skipped_alone(tmp_path: Path) -> None:
    """crm-records needs a userId: the event without one is skipped, the others go in one batch."""
    now = time.time()
    events = [event(i, received_at=now) for i in range(5)]
    anonymous = json.dumps({"type": "track", "event": "Paid", "anonymousId": "a", "messageId": "m2"})
    events[2] = dataclasses.replace(events[2], payload=anonymous.encode())
    stats, rows = deliver(
        tmp_path, Batch(max_events=100), events, integration="crm-records", credential="tok"
    )
    assert (stats.requests, stats.events) == (1, 4)
    skipped = [r for r in rows if r["outcome"] == "skipped"]
    sent = [r for r in rows if r["outcome"] == "delivered"]
    assert [(r["attempt"], r["error_code"], r["event_count"]) for r in skipped] == [(0, "missing_user_id", 1)]
    assert [e["message_id"] for e in skipped[0]["events"]] == ["m2"]
    # Events received at the same instant may go in any order (docs/queue.md, fairness).
    assert [(r["event_count"], sorted(e["message_id"] for e in r["events"])) for r in sent] == [
        (4, ["m0", "m1", "m3", "m4"])
    ]
