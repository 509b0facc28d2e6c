"""The worker over real loopback HTTP sinks and a real SQLite queue.

Each test enqueues events through `Queue.enqueue`, runs a `Worker` with a
real `Sender` against sinks on 127.0.0.1 (raw asyncio servers that answer
from a script and count what they see), stops it, and reads the attempt
records the worker committed. Backoff is tiny (0.05 s doubling to 0.2 s,
no jitter) so retries happen within a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from delivery.config import Config, parse_config
from delivery.exporter import Exporter
from delivery.queue import Event, Job, JobState, Settlement
from delivery.queue.sqlite import SqliteQueue
from delivery.records import UNCLASSIFIED_PREFIX
from delivery.sender import Sender, SendResult
from delivery.transport import UNCLASSIFIED_CODE
from delivery.worker import ABORTED_AT_SHUTDOWN, SETTLE_CHUNK, Worker
from ingest.files import attempts_glob
from tests.delivery.faults import LOOPBACK, Exchange, FaultServer, closed_port

SECRET = "s3cret-token-value"
#: Safety net for waiting on a condition, not a measurement.
DEADLINE_S = 8.0


# -- sinks ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What a sink answers to one request."""

    status: int = 200
    body: bytes = b'{"ok":true}'
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Request:
    """One request a sink read."""

    at: float
    """time.monotonic() when it was read whole."""
    head: bytes
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        pairs = (line.split(":", 1) for line in lines if ":" in line)
        return {name.strip().lower(): value.strip() for name, value in pairs}


Script = Callable[[int, Request], Reply]
"""Reply to the n-th request (1-based) the sink reads."""


def always(reply: Reply) -> Script:
    return lambda n, request: reply


def in_turn(*replies: Reply) -> Script:
    """For each job (each distinct body), the replies in order, the last one repeated."""
    seen: Counter[bytes] = Counter()

    def script(n: int, request: Request) -> Reply:
        seen[request.body] += 1
        return replies[min(seen[request.body], len(replies)) - 1]

    return script


class Sink:
    """A keep-alive HTTP/1.1 server on loopback that answers from a `Script` and counts."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._server = FaultServer(self._serve)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.port}/hook"

    async def __aenter__(self) -> Sink:
        await self._server.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.__aexit__(None, None, None)

    async def _serve(self, exchange: Exchange) -> None:
        while True:
            raw = await exchange.read_request()
            head, _, body = raw.partition(b"\r\n\r\n")
            request = Request(time.monotonic(), head, body)
            self.requests.append(request)
            reply = self.script(len(self.requests), request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            TOTAL.observe(+1)
            try:
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                lines = [f"HTTP/1.1 {reply.status} X", f"Content-Length: {len(reply.body)}"]
                lines += [f"{name}: {value}" for name, value in reply.headers.items()]
                await exchange.send(("\r\n".join(lines) + "\r\n\r\n").encode() + reply.body)
            finally:
                self.in_flight -= 1
                TOTAL.observe(-1)


class _Total:
    """Requests in flight across every sink of a test."""

    def __init__(self) -> None:
        self.now = self.max = 0

    def observe(self, change: int) -> None:
        self.now += change
        self.max = max(self.max, self.now)


TOTAL = _Total()


@pytest.fixture(autouse=True)
def _reset_total() -> None:
    TOTAL.now = TOTAL.max = 0


# -- engine -----------------------------------------------------------------------------------------


@pytest.fixture
def queue(tmp_path: Path) -> Iterable[SqliteQueue]:
    q = SqliteQueue(tmp_path)
    yield q
    q.close()


def make_config(
    tmp_path: Path,
    destinations: Mapping[str, str],
    destination_options: Mapping[str, Mapping[str, Any]] | None = None,
    **engine: Any,
) -> Config:
    """A config with one source `web` and a webhook destination per (id, url), with its options if any."""
    settings = {
        "data_dir": str(tmp_path),
        "allow_private_targets": True,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.2,
        "backoff_jitter": 0,
        "request_timeout_s": 5,
        "lease_s": 10,
        "shutdown_grace_s": 2,
        "concurrency": 8,
        "per_destination_concurrency": 4,
        **engine,
    }
    return parse_config(
        {
            "engine": settings,
            "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_test_web"}],
            "destinations": [
                {
                    "id": destination_id,
                    "source": "web",
                    "integration": "webhook",
                    "url": url,
                    "headers": {"Authorization": f"Bearer {SECRET}"},
                    **(destination_options or {}).get(destination_id, {}),
                }
                for destination_id, url in destinations.items()
            ],
        }
    )


def enqueue(queue: SqliteQueue, destination_id: str, n: int = 1) -> list[Event]:
    now = time.time()
    events = [
        Event(
            message_id=f"{destination_id}-{i}",
            workspace_id="acme",
            source_id="web",
            type="track",
            name="Order Completed",
            payload=json.dumps({"messageId": f"{destination_id}-{i}", "event": "Order Completed"}).encode(),
            received_at=now,
        )
        for i in range(n)
    ]
    queue.enqueue(events, {"web": [destination_id]})
    return events


@dataclass
class Running:
    worker: Worker
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def stopped(self) -> float:
        """Set stop, wait for run() to return; how long that took."""
        started = time.monotonic()
        self.stop.set()
        await asyncio.wait_for(self.task, DEADLINE_S)
        return time.monotonic() - started


@contextlib.asynccontextmanager
async def running(
    config: Config, queue: SqliteQueue, sender: Sender | None = None, **options: Any
) -> AsyncIterator[Running]:
    """A worker running on `queue` until the block ends (then stopped gracefully)."""
    engine = config.engine
    async with contextlib.AsyncExitStack() as stack:
        if sender is None:
            # Connection limits well above the engine's, so that the bounds the sinks see are the worker's.
            sender = await stack.enter_async_context(
                Sender(request_timeout_s=engine.request_timeout_s, limit=100, limit_per_host=100)
            )
        stop = asyncio.Event()
        worker = Worker(config, queue, sender, owner="test-worker", **options)
        engine_run = Running(worker, stop, asyncio.create_task(worker.run(stop)))
        try:
            yield engine_run
        finally:
            if not engine_run.task.done():
                await engine_run.stopped()


async def eventually(condition: Callable[[], bool]) -> float:
    """Wait until `condition()` holds; return how long that took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > DEADLINE_S:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def unfinished(queue: SqliteQueue, destination_id: str | None = None) -> int:
    depth = queue.depth()
    counts = depth.by_state if destination_id is None else depth.by_destination.get(destination_id, {})
    return sum(counts.values())


def drain(queue: SqliteQueue) -> list[dict[str, Any]]:
    """Every committed attempt record, taken out of the outbox, in (destination, job, attempt) order."""
    rows: list[dict[str, Any]] = []
    while (batch := queue.outbox_batch(10_000)) is not None:
        rows += batch.rows
        queue.outbox_ack(batch.batch_id)
    return sorted(rows, key=lambda r: (r["destination_id"], r["job_id"], r["attempt"]))


def columns(rows: Iterable[Mapping[str, Any]], *names: str) -> list[tuple[Any, ...]]:
    return [tuple(row[name] for name in names) for row in rows]


# -- one job at a time ------------------------------------------------------------------------------


def test_a_2xx_is_delivered_with_one_record(tmp_path: Path, queue: SqliteQueue) -> None:
    async def scenario() -> Sink:
        async with Sink(always(Reply(200))) as sink:
            config = make_config(tmp_path, {"hook": sink.url})
            (event,) = enqueue(queue, "hook")
            async with running(config, queue):
                await eventually(lambda: unfinished(queue) == 0)
            assert sink.requests[0].body == event.payload
            return sink

    sink = asyncio.run(scenario())
    (request,) = sink.requests
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    (row,) = drain(queue)
    assert columns([row], "attempt", "outcome", "status_code", "error_class", "error_code", "retryable") == [
        (1, "delivered", 200, "none", "200", False)
    ]
    assert row["request_bytes"] == len(request.body)
    assert row["response_body"] is None and row["next_attempt_at"] is None
    assert row["events"] == [{"message_id": "hook-0", "type": "track", "name": "Order Completed"}]
    assert row["received_at"] <= row["started_at"]
    assert 0 < row["duration_ms"] < 5_000


def test_503_twice_then_200_is_retried_and_delivered(tmp_path: Path, queue: SqliteQueue) -> None:
    async def scenario() -> Sink:
        async with Sink(in_turn(Reply(503, b"busy"), Reply(503, b"busy"), Reply(200))) as sink:
            config = make_config(tmp_path, {"hook": sink.url})
            enqueue(queue, "hook")
            async with running(config, queue):
                await eventually(lambda: unfinished(queue) == 0)
            return sink

    sink = asyncio.run(scenario())
    rows = drain(queue)
    assert len(sink.requests) == len(rows) == 3
    assert len({row["job_id"] for row in rows}) == 1
    assert columns(rows, "attempt", "outcome", "status_code", "response_body") == [
        (1, "retry", 503, "busy"),
        (2, "retry", 503, "busy"),
        (3, "delivered", 200, None),
    ]
    for earlier, later in itertools.pairwise(rows):
        assert earlier["next_attempt_at"] is not None
        assert earlier["started_at"] < earlier["next_attempt_at"] <= later["started_at"]
    # Backoff 0.05 s then 0.1 s (no jitter), counted from the end of each request.
    for row, delay in zip(rows, (0.05, 0.1), strict=False):
        ended = row["started_at"].timestamp() + row["duration_ms"] / 1000
        assert row["next_attempt_at"].timestamp() - ended == pytest.approx(delay, abs=0.005)
    assert rows[-1]["next_attempt_at"] is None


def test_a_retry_carries_the_class_of_the_jobs_first_request(tmp_path: Path, queue: SqliteQueue) -> None:
    async def scenario() -> None:
        async with Sink(in_turn(Reply(503, b"busy"), Reply(200))) as sink:
            config = make_config(tmp_path, {"hook": sink.url})
            enqueue(queue, "hook")
            async with running(config, queue):
                await eventually(lambda: unfinished(queue) == 0)

    asyncio.run(scenario())
    assert Exporter(queue, tmp_path).run_once() == 2
    with duckdb.connect() as db:
        logged = db.execute(
            "SELECT attempt, outcome, error_class, first_error_class FROM read_parquet($glob) "
            "ORDER BY attempt",
            {"glob": attempts_glob(tmp_path)},
        ).fetchall()
    assert logged == [(1, "retry", "server", "server"), (2, "delivered", "none", "server")]


def test_429_with_retry_after_waits_as_asked(tmp_path: Path, queue: SqliteQueue) -> None:
    async def scenario() -> Sink:
        limited = Reply(429, b'{"error":"slow down"}', {"Retry-After": "1"})
        async with Sink(in_turn(limited, Reply(200))) as sink:
            config = make_config(tmp_path, {"hook": sink.url})
            enqueue(queue, "hook")
            async with running(config, queue):
                await eventually(lambda: unfinished(queue) == 0)
            return sink

    sink = asyncio.run(scenario())
    first, second = sink.requests
    # Backoff alone would retry after 0.05 s; the destination asked for 1 s.
    assert 1.0 <= second.at - first.at < 1.5
    rows = drain(queue)
    assert columns(rows, "attempt", "outcome", "error_class", "retry_after_s") == [
        (1, "retry", "rate_limit", 1.0),
        (2, "delivered", "none", None),
    ]


def test_401_fails_at_once_and_the_echoed_secret_is_redacted(tmp_path: Path, queue: SqliteQueue) -> None:
    def echo(n: int, request: Request) -> Reply:
        return Reply(401, b"Unauthorized. You sent:\r\n" + request.head)

    async def scenario() -> Sink:
        async with Sink(echo) as sink:
            config = make_config(tmp_path, {"hook": sink.url})
            enqueue(queue, "hook")
            async with running(config, queue):
                await eventually(lambda: unfinished(queue) == 0)
            return sink

    sink = asyncio.run(scenario())
    assert len(sink.requests) == 1
    (row,) = drain(queue)
    assert columns([row], "attempt", "outcome", "error_class", "retryable") == [(1, "failed", "auth", False)]
    assert row["response_body"].startswith("Unauthorized. You sent:")
    assert "[REDACTED]" in row["response_body"]
    assert SECRET not in repr(row)


def test_always_503_is_dropped_after_max_attempts(tmp_path: Path, queue: SqliteQueue) -> None:
    async def scenario() -> Sink:
        async with Sink(always(Reply(503))) as sink:
            config = make_config(tmp_path, {"hook": sink.url}, max_attempts=3)
            enqueue(queue, "hook")
            async with running(config, queue):
                await eventually(lambda: unfinished(queue) == 0)
            return sink

    sink = asyncio.run(scenario())
    rows = drain(queue)
    assert len(sink.requests) == 3
    assert columns(rows, "attempt", "outcome", "retryable") == [
        (1, "retry", True),
        (2, "retry", True),
        (3, "dropped", True),
    ]
    assert rows[-1]["next_attempt_at"] is None


# -- several destinations ---------------------------------------------------------------------------


def test_a_dead_and_a_slow_destination_do_not_starve_a_healthy_one(
    tmp_path: Path, queue: SqliteQueue
) -> None:
    async def scenario() -> tuple[Sink, Sink, float]:
        async with Sink(always(Reply(200, delay_s=3))) as slow, Sink(always(Reply(200))) as healthy:
            with closed_port() as dead_port:
                config = make_config(
                    tmp_path,
                    {"slow": slow.url, "dead": f"http://{LOOPBACK}:{dead_port}/hook", "healthy": healthy.url},
                    concurrency=6,
                    per_destination_concurrency=2,
                    max_attempts=3,
                    shutdown_grace_s=0,
                )
                # The slow and dead destinations' jobs are older: claims, oldest first, meet them first.
                enqueue(queue, "slow", 20)
                enqueue(queue, "dead", 20)
                enqueue(queue, "healthy", 20)
                async with running(config, queue) as engine:
                    took = await eventually(lambda: unfinished(queue, "healthy") == 0)
                    assert slow.in_flight == 2  # still sleeping on its first requests
                    assert len(slow.requests) == 2
                    await engine.stopped()
        return slow, healthy, took

    _, healthy, took = asyncio.run(scenario())
    assert took < 2.0  # while the slow destination's first requests were still in flight
    assert len(healthy.requests) == 20
    assert healthy.max_in_flight <= 2
    rows = drain(queue)
    by_destination: dict[str, list[str]] = {}
    for row in rows:
        by_destination.setdefault(row["destination_id"], []).append(row["outcome"])
    assert by_destination["healthy"] == ["delivered"] * 20
    assert set(by_destination["dead"]) <= {"retry", "dropped"}
    assert all(row["error_code"] == "ECONNREFUSED" for row in rows if row["destination_id"] == "dead")
    # The slow destination's two requests were cut at stop (shutdown_grace_s = 0) and recorded.
    assert [r["error_code"] for r in rows if r["destination_id"] == "slow"] == ["ECONNABORTED"] * 2


def test_concurrency_is_bounded_per_destination_and_overall(tmp_path: Path, queue: SqliteQueue) -> None:
    async def scenario() -> tuple[Sink, Sink]:
        reply = always(Reply(200, delay_s=0.05))
        async with Sink(reply) as a, Sink(reply) as b:
            config = make_config(
                tmp_path, {"a": a.url, "b": b.url}, concurrency=5, per_destination_concurrency=3
            )
            enqueue(queue, "a", 30)
            enqueue(queue, "b", 30)
            async with running(config, queue):
                await eventually(lambda: unfinished(queue) == 0)
            return a, b

    a, b = asyncio.run(scenario())
    assert len(a.requests) == len(b.requests) == 30
    assert a.max_in_flight == b.max_in_flight == 3
    assert TOTAL.max == 5
    assert len(drain(queue)) == 60


def test_a_busy_destination_is_claimed_for_again_once_a_quarter_of_its_slots_are_free(
    tmp_path: Path, queue: SqliteQueue
) -> None:
    def script(n: int, request: Request) -> Reply:
        """Two of the first eight requests are answered, the rest hang until the stop cuts them."""
        return Reply(200) if n <= 2 else Reply(200, delay_s=30)

    async def scenario() -> Sink:
        async with Sink(script) as sink:
            slots = {"concurrency": 8, "per_destination_concurrency": 8}
            config = make_config(tmp_path, {"hook": sink.url}, shutdown_grace_s=0.1, **slots)
            enqueue(queue, "hook", 30)
            async with running(config, queue):
                # Two free slots of eight (a quarter) are claimed for and used: eight in flight again.
                await eventually(lambda: len(sink.requests) == 10 and sink.in_flight == 8)
                await asyncio.sleep(0.2)
                assert len(sink.requests) == 10  # and no more than the slots
            return sink

    sink = asyncio.run(scenario())
    assert sink.max_in_flight == 8
    rows = drain(queue)
    assert Counter(row["outcome"] for row in rows) == {"delivered": 2, "retry": 8}


def leased(queue: SqliteQueue) -> int:
    return queue.depth().by_state[JobState.LEASED]


@pytest.mark.parametrize("ahead", [True, False])
def test_jobs_claimed_ahead_wait_for_a_slot_and_are_given_back_at_stop(
    tmp_path: Path, queue: SqliteQueue, ahead: bool
) -> None:
    async def scenario() -> tuple[Sink, int]:
        async with Sink(always(Reply(200, delay_s=0.3))) as sink:
            slots = {"concurrency": 4, "per_destination_concurrency": 4, "claim_ahead": ahead}
            config = make_config(tmp_path, {"hook": sink.url}, **slots)
            enqueue(queue, "hook", 20)
            async with running(config, queue) as engine:
                await eventually(lambda: sink.in_flight == 4)
                await asyncio.sleep(0.1)  # the claim loop has had its turn
                held = leased(queue)
                await engine.stopped()
            return sink, held

    sink, held = asyncio.run(scenario())
    # Ahead: four in flight and twice as many more leased, waiting; never more than the slots in flight.
    assert held == (12 if ahead else 4)
    assert sink.max_in_flight == 4
    assert len(sink.requests) == 4  # none of those waiting started once the worker stopped
    assert columns(drain(queue), "outcome") == [("delivered",)] * 4
    assert queue.depth().by_state == {JobState.PENDING: 16, JobState.LEASED: 0}


def test_a_slot_goes_to_the_oldest_job_held_not_to_its_own_destinations_next(
    tmp_path: Path, queue: SqliteQueue
) -> None:
    """A batching destination's older jobs, claimed late (they linger), start before the busy one's ahead."""

    async def scenario() -> tuple[Sink, Sink]:
        async with Sink(always(Reply(200, delay_s=0.2))) as busy, Sink(always(Reply(200))) as batched:
            config = make_config(
                tmp_path,
                {"busy": busy.url, "batched": batched.url},
                {"batched": {"max_batch_events": 10}},
                concurrency=2,
                per_destination_concurrency=2,
                batch_linger_s=0.3,
            )
            enqueue(queue, "batched", 3)  # older than every job of `busy`
            enqueue(queue, "busy", 20)
            async with running(config, queue):
                # Until `busy` is well past the batched request (on a loaded machine it may still
                # be at its sixth when the batched one arrives): the order is what is asserted.
                await eventually(lambda: len(batched.requests) == 1 and len(busy.requests) >= 8)
            return busy, batched

    busy, batched = asyncio.run(scenario())
    # `busy` sends two requests every 0.2 s, and always has four more waiting ahead. The batched
    # request is claimed at the first claim after its 0.3 s of lingering (0.4 s, when both slots went
    # to `busy`'s jobs waiting ahead), and takes the next slot to free (0.6 s) before them: as the older.
    before = [r for r in busy.requests if r.at < batched.requests[0].at]
    assert len(before) <= 7
    assert TOTAL.max == 2


def test_a_job_that_waited_ahead_too_long_is_given_back_and_sent_once(
    tmp_path: Path, queue: SqliteQueue
) -> None:
    def script(n: int, request: Request) -> Reply:
        """The first two requests take a second: the jobs waiting behind them outwait their start-by."""
        return Reply(200, delay_s=1.0) if n <= 2 else Reply(200)

    async def scenario() -> tuple[Sink, list[int]]:
        async with Sink(script) as sink:
            # A lease of 5 s covers a request of 2 s, a grace of 1.5 s and 1 s to settle: a job starts
            # within 0.5 s.
            timing = {"lease_s": 5, "request_timeout_s": 2, "shutdown_grace_s": 1.5}
            config = make_config(
                tmp_path, {"hook": sink.url}, concurrency=2, per_destination_concurrency=2, **timing
            )
            enqueue(queue, "hook", 6)
            seen: list[int] = []
            async with running(config, queue):
                await eventually(lambda: sink.in_flight == 2)
                seen.append(leased(queue))  # two in flight and four ahead
                await eventually(lambda: unfinished(queue) == 0)
            return sink, seen

    sink, seen = asyncio.run(scenario())
    assert seen == [6]
    bodies = [json.loads(request.body)["messageId"] for request in sink.requests]
    assert sorted(bodies) == sorted(f"hook-{i}" for i in range(6))  # each sent once
    assert columns(drain(queue), "outcome") == [("delivered",)] * 6


def test_jobs_waiting_ahead_for_a_destination_that_moved_are_given_back(
    tmp_path: Path, queue: SqliteQueue
) -> None:
    moved: set[str] = set()

    async def scenario() -> tuple[Sink, int]:
        async with Sink(always(Reply(200, delay_s=0.5))) as sink:
            config = make_config(tmp_path, {"hook": sink.url}, concurrency=2, per_destination_concurrency=2)
            enqueue(queue, "hook", 10)
            async with running(config, queue, not_owned=lambda: frozenset(moved)):
                await eventually(lambda: sink.in_flight == 2 and leased(queue) == 6)
                moved.add("hook")  # another engine of the fleet owns it now; the claim loop sleeps on
                await eventually(lambda: leased(queue) == 0)  # the two in flight ended, the four waiting
                await eventually(lambda: sink.in_flight == 0)
                await asyncio.sleep(0.1)
                return sink, leased(queue)

    sink, held = asyncio.run(scenario())
    assert held == 0
    assert len(sink.requests) == 2  # the freed slots did not start the waiting jobs
    assert unfinished(queue) == 8


def test_a_destination_metered_by_a_live_change_has_its_waiting_jobs_given_back(
    tmp_path: Path, queue: SqliteQueue
) -> None:
    async def scenario() -> tuple[Sink, list[int]]:
        async with Sink(always(Reply(200, delay_s=0.3))) as sink:
            slots = {"concurrency": 2, "per_destination_concurrency": 2}
            config = make_config(tmp_path, {"hook": sink.url}, **slots)
            metered = make_config(tmp_path, {"hook": sink.url}, {"hook": {"rate_limit_per_s": 1000}}, **slots)
            enqueue(queue, "hook", 10)
            seen: list[int] = []
            async with running(config, queue) as engine:
                await eventually(lambda: sink.in_flight == 2 and leased(queue) == 6)
                engine.worker.reconfigure(metered)
                await eventually(lambda: leased(queue) == 2)  # the two in flight; none waits ahead
                seen.append(len(sink.requests))
                await eventually(lambda: unfinished(queue) == 0)
                seen.append(len(sink.requests))
            return sink, seen

    sink, seen = asyncio.run(scenario())
    assert seen == [2, 10]
    assert sink.max_in_flight == 2


def test_every_request_is_one_row_in_the_parquet_log(tmp_path: Path, queue: SqliteQueue) -> None:
    async def scenario() -> dict[str, Sink]:
        async with (
            Sink(always(Reply(200))) as ok,
            Sink(in_turn(Reply(503), Reply(502), Reply(200))) as flaky,
            Sink(always(Reply(401))) as auth,
            Sink(always(Reply(500))) as down,
        ):
            sinks = {"ok": ok, "flaky": flaky, "auth": auth, "down": down}
            config = make_config(tmp_path, {name: sink.url for name, sink in sinks.items()}, max_attempts=4)
            for name in sinks:
                enqueue(queue, name, 5)
            async with running(config, queue):
                await eventually(lambda: unfinished(queue) == 0)
            return sinks

    sinks = asyncio.run(scenario())
    exported = Exporter(queue, tmp_path).run_once()
    assert exported == sum(len(sink.requests) for sink in sinks.values())
    with duckdb.connect() as db:
        logged = dict(
            db.execute(
                "SELECT destination_id, count(*) FROM read_parquet($glob) GROUP BY destination_id",
                {"glob": attempts_glob(tmp_path)},
            ).fetchall()
        )
        duplicates = db.execute(
            "SELECT count(*) - count(DISTINCT attempt_id) FROM read_parquet($glob)",
            {"glob": attempts_glob(tmp_path)},
        ).fetchone()
        finals = dict(
            db.execute(
                "SELECT destination_id, list(DISTINCT outcome) FROM read_parquet($glob) "
                "WHERE outcome <> 'retry' GROUP BY destination_id",
                {"glob": attempts_glob(tmp_path)},
            ).fetchall()
        )
    assert logged == {name: len(sink.requests) for name, sink in sinks.items()}
    assert duplicates == (0,)
    assert (len(sinks["flaky"].requests), len(sinks["down"].requests)) == (5 + 5 + 5, 5 * 4)
    assert finals == {"ok": ["delivered"], "flaky": ["delivered"], "auth": ["failed"], "down": ["dropped"]}


class _CountingQueue(SqliteQueue):
    """The SQLite queue, counting the jobs of each transaction (`settle` call) the worker makes."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.groups: list[int] = []

    def settle(self, settlements: Sequence[Settlement]) -> list[Job]:
        self.groups.append(len(settlements))
        return super().settle(settlements)


def test_finished_jobs_are_settled_in_groups(tmp_path: Path) -> None:
    counting = _CountingQueue(tmp_path)

    async def scenario() -> None:
        async with Sink(always(Reply(200))) as sink:
            config = make_config(tmp_path, {"hook": sink.url}, concurrency=64, per_destination_concurrency=64)
            enqueue(counting, "hook", 300)
            async with running(config, counting):
                await eventually(lambda: unfinished(counting) == 0)

    try:
        asyncio.run(scenario())
        assert sum(counting.groups) == 300
        # One commit per request would be 300 groups; a group holds what finished within 50 ms,
        # written in transactions of SETTLE_CHUNK jobs at most (SQLite: one writer at a time).
        assert len(counting.groups) <= 30
        assert SETTLE_CHUNK >= max(counting.groups) >= 20
    finally:
        counting.close()


class _TurnQueue(_CountingQueue):
    """The counting queue, also logging claims as they end and settlements as they begin; the
    first settlement waits for `gate`."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.calls: list[str] = []
        self.gate = threading.Event()

    def claim_if_idle(self, owner: str, now: float, **options: Any) -> list[Job] | None:
        jobs = super().claim_if_idle(owner, now, **options)
        if jobs is not None:
            self.calls.append("claim")
        return jobs

    def claim(self, owner: str, now: float, **options: Any) -> list[Job]:
        jobs = super().claim(owner, now, **options)
        self.calls.append("claim")
        return jobs

    def settle(self, settlements: Sequence[Settlement]) -> list[Job]:
        self.calls.append("settle")
        if not self.gate.wait(DEADLINE_S):
            raise AssertionError("the test never opened the gate")
        return super().settle(settlements)


def test_a_claim_waiting_for_a_settlement_goes_before_the_groups_next_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite writes one transaction at a time: a claim asked while a group is being settled runs
    after that transaction, not after the whole group, so requests claimed ahead do not run out."""
    # Groups are written once full (SETTLE_GROUP jobs), not after a delay: the first is several chunks.
    monkeypatch.setattr("delivery.worker.SETTLE_DELAY_S", DEADLINE_S)
    turns = _TurnQueue(tmp_path)

    async def scenario() -> list[str]:
        async with Sink(always(Reply(200))) as sink:
            config = make_config(tmp_path, {"hook": sink.url}, concurrency=64, per_destination_concurrency=64)
            enqueue(turns, "hook", 1_000)
            async with running(config, turns):
                try:
                    await eventually(lambda: "settle" in turns.calls)
                    # Everything claimed is answered meanwhile, and the worker asks for more.
                    await eventually(lambda: sink.in_flight == 0)
                    await asyncio.sleep(0.1)
                finally:
                    turns.gate.set()
                await eventually(lambda: turns.calls.count("settle") >= 3)
                return list(turns.calls)

    try:
        calls = asyncio.run(scenario())
    finally:
        turns.close()
    first = calls.index("settle")
    assert turns.groups[:2] == [SETTLE_CHUNK, SETTLE_CHUNK]
    assert calls[first : first + 3] == ["settle", "claim", "settle"]


# -- stopping -------------------------------------------------------------------------------------


def test_stop_lets_requests_in_flight_finish_and_releases_the_rest(
    tmp_path: Path, queue: SqliteQueue
) -> None:
    async def scenario() -> tuple[Sink, float]:
        async with Sink(always(Reply(200, delay_s=0.3))) as sink:
            config = make_config(tmp_path, {"hook": sink.url}, per_destination_concurrency=2)
            enqueue(queue, "hook", 5)
            async with running(config, queue) as engine:
                await eventually(lambda: sink.in_flight == 2)
                took = await engine.stopped()
            return sink, took

    sink, took = asyncio.run(scenario())
    assert took < 1.0
    assert len(sink.requests) == 2
    assert columns(drain(queue), "attempt", "outcome") == [(1, "delivered")] * 2
    assert queue.depth().by_state == {JobState.PENDING: 3, JobState.LEASED: 0}
    assert len(queue.claim("next", time.time(), limit=10, per_destination_limit=10, lease_s=10)) == 3


def test_stop_cuts_requests_after_the_grace_period(tmp_path: Path, queue: SqliteQueue) -> None:
    async def scenario() -> float:
        async with Sink(always(Reply(200, delay_s=30))) as sink:
            config = make_config(tmp_path, {"hook": sink.url}, shutdown_grace_s=0.2)
            enqueue(queue, "hook", 2)
            async with running(config, queue) as engine:
                await eventually(lambda: sink.in_flight == 2)
                return await engine.stopped()

    took = asyncio.run(scenario())
    assert 0.2 <= took < 1.0
    rows = drain(queue)
    assert (
        columns(rows, "attempt", "outcome", "error_class", "error_code", "status_code")
        == [(1, "retry", "network", "ECONNABORTED", None)] * 2
    )
    assert all(ABORTED_AT_SHUTDOWN in row["error_message"] for row in rows)
    assert queue.depth().by_state == {JobState.PENDING: 2, JobState.LEASED: 0}


# -- jobs that are not sent, and the unusual ----------------------------------------------------


def test_a_private_target_is_refused_when_not_allowed(tmp_path: Path, queue: SqliteQueue) -> None:
    async def scenario() -> Sink:
        async with Sink(always(Reply(200))) as sink:
            allowed = make_config(tmp_path, {"hook": sink.url})
            # Loading refuses a loopback literal outright; this stands for a host *name* that
            # resolves to a private address at send time, which only the worker can see.
            config = dataclasses.replace(
                allowed, engine=dataclasses.replace(allowed.engine, allow_private_targets=False)
            )
            enqueue(queue, "hook")
            async with running(config, queue):
                await eventually(lambda: unfinished(queue) == 0)
            return sink

    sink = asyncio.run(scenario())
    assert sink.requests == []
    (row,) = drain(queue)
    assert columns([row], "attempt", "outcome", "error_class", "error_code", "retryable") == [
        (0, "skipped", "precheck", "private_target", False)
    ]
    assert row["duration_ms"] is None and row["status_code"] is None and row["request_bytes"] is None


def test_a_disabled_destination_is_skipped(tmp_path: Path, queue: SqliteQueue) -> None:
    async def scenario() -> Sink:
        async with Sink(always(Reply(200))) as sink:
            enabled = make_config(tmp_path, {"hook": sink.url})
            hook = dataclasses.replace(enabled.destinations[0], enabled=False)
            config = Config(engine=enabled.engine, sources=enabled.sources, destinations=(hook,))
            enqueue(queue, "hook")
            async with running(config, queue):
                await eventually(lambda: unfinished(queue) == 0)
            return sink

    assert asyncio.run(scenario()).requests == []
    assert columns(drain(queue), "attempt", "outcome", "error_class", "error_code", "first_error_class") == [
        (0, "skipped", "disabled", "disabled", None)
    ]


class _StrangeSender(Sender):
    """A sender whose requests fail with an exception no classification table knows."""

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        return SendResult(
            1.5,
            error_code=UNCLASSIFIED_CODE,
            error_message=f"LookupError: strange {SECRET}",
            unclassified="no transport code for LookupError: strange: builtins.LookupError is in no table",
        )


def test_an_unclassified_exception_is_retried_and_marked(
    tmp_path: Path, queue: SqliteQueue, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        config = make_config(tmp_path, {"hook": "http://127.0.0.1:9/hook"}, max_attempts=2)
        enqueue(queue, "hook")
        async with _StrangeSender(request_timeout_s=1) as sender, running(config, queue, sender):
            await eventually(lambda: unfinished(queue) == 0)

    with caplog.at_level(logging.ERROR, logger="delivery.worker"):
        asyncio.run(scenario())
    rows = drain(queue)
    assert columns(rows, "attempt", "outcome", "error_class", "error_code", "retryable") == [
        (1, "retry", "network", "EUNCLASSIFIED", True),
        (2, "dropped", "network", "EUNCLASSIFIED", True),
    ]
    assert all(row["error_message"].startswith(UNCLASSIFIED_PREFIX + "LookupError: strange") for row in rows)
    assert SECRET not in repr(rows)
    assert "until the table knows it" in caplog.text
    assert "builtins.LookupError is in no table" in caplog.text


def test_a_lost_lease_is_logged_and_not_recorded(
    tmp_path: Path, queue: SqliteQueue, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with Sink(always(Reply(200, delay_s=0.3))) as sink:
            config = make_config(tmp_path, {"hook": sink.url})
            enqueue(queue, "hook")
            async with running(config, queue):
                await eventually(lambda: sink.in_flight == 1)
                # Seen from an hour later the lease has lapsed, and another worker takes the job.
                (taken,) = queue.claim(
                    "other", time.time() + 3600, limit=1, per_destination_limit=1, lease_s=10
                )
                await eventually(lambda: sink.in_flight == 0)
                await asyncio.sleep(0.2)  # past the settle delay
            assert taken.lease_owner == "other"

    with caplog.at_level(logging.WARNING, logger="delivery.worker"):
        asyncio.run(scenario())
    assert drain(queue) == []
    assert "lease lost" in caplog.text
    assert queue.depth().by_state[JobState.LEASED] == 1  # still the other worker's


def test_notify_claims_at_once(tmp_path: Path, queue: SqliteQueue) -> None:
    async def scenario() -> float:
        async with Sink(always(Reply(200))) as sink:
            config = make_config(tmp_path, {"hook": sink.url})
            async with running(config, queue, poll_interval_s=60) as engine:
                await asyncio.sleep(0.05)  # the worker found nothing and sleeps for a minute
                enqueue(queue, "hook")
                engine.worker.notify()
                return await eventually(lambda: unfinished(queue) == 0)

    assert asyncio.run(scenario()) < 1.0
    assert columns(drain(queue), "outcome") == [("delivered",)]
