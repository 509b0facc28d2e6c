"""The delivery loop: claim due jobs, send each once, settle them with their attempt records.

One `Worker` per engine process::

    claim (a batch, in a thread) ──> per job: precheck ─> body ─> send ─> classify ─> decide ─> record
       ^                                                                                   │
       └── room again (a slot freed, new work, the poll interval) ── settle in groups <────┘

The decisions are elsewhere and pure: `delivery.precheck` (jobs settled
without a request, and events fixed to the integration's rules),
`delivery.payload` (the body), `delivery.classify`,
`delivery.records` (retry decision and record). This module only schedules.

**Concurrency.** At most `concurrency` jobs are held (claimed and not yet
sent to the end) at once, and at most `per_destination_concurrency` of one
destination. Both bounds are kept at the claim, not by semaphores: a
destination with no free slot is passed to `Queue.claim` in `exclude`, and
a claim asks for no more than the free slots. A claimed job therefore never
waits for a slot while its lease runs, and a slow or dead destination holds
at most its own slots, never the others'. A destination is claimed for
again once half its slots are free, so claims come in batches rather than
one per finished request.

**Settling.** Finished jobs are settled in groups (one transaction, one
fsync): a group is written when it reaches `SETTLE_GROUP` jobs or
`SETTLE_DELAY_S` after its first job finished, whichever comes first.

**Stopping.** When `stop` is set: nothing more is claimed; requests in
flight get `shutdown_grace_s` to finish; any still running are cut and
recorded as `ECONNABORTED` (the request may have reached the destination,
so it is in the log like any other, and its job is retried by the policy);
the last group is settled; the worker's remaining leases are released.

docs/worker.md tells the same at more length.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

from delivery import payload, records
from delivery.classify import UnclassifiedError, classify
from delivery.config import Config, Destination
from delivery.precheck import Fix, Prechecks, Rejection
from delivery.queue import Job, Queue, Settlement
from delivery.retry import RetryPolicy
from delivery.sender import Sender, SendResult
from ingest.ids import new_id
from ingest.taxonomy import Classification, classify_transport

log = logging.getLogger(__name__)

#: Jobs settled in one transaction, at most before it is written.
SETTLE_GROUP: Final = 100
#: Longest a finished job waits for its group.
SETTLE_DELAY_S: Final = 0.05
#: How often an idle worker looks for jobs that became due (retries), unless `notify`-ed.
POLL_INTERVAL_S: Final = 0.1
#: The code an exception `classify` does not know is recorded with, until the taxonomy has one.
UNCLASSIFIED_CODE: Final = "EUNCLASSIFIED"
#: Why a request cut at shutdown has no answer.
ABORTED_AT_SHUTDOWN: Final = "request cut short when the engine stopped (shutdown_grace_s ran out)"

#: Called with each attempt record once it is committed (metrics).
OnSettled = Callable[[Mapping[str, Any]], None]
#: Called with a destination's integration and the fixes made to a job's events, before its request.
OnFixed = Callable[[str, Sequence[Fix]], None]
#: What an idle claim loop waits for: free capacity overall, or room at a destination that may have work.
_Waiting = Literal["capacity", "work"]


class Worker:
    """Delivers the queue's jobs until stopped; see the module docstring."""

    def __init__(
        self,
        config: Config,
        queue: Queue,
        sender: Sender,
        *,
        owner: str,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        prechecks: Prechecks | None = None,
        poll_interval_s: float = POLL_INTERVAL_S,
        on_settled: OnSettled | None = None,
        on_fixed: OnFixed | None = None,
    ) -> None:
        """`owner` names this worker's leases (unique per process run); `clock` gives epoch seconds.

        `rng` draws the retry jitter (a seeded one replays a schedule). `on_fixed`
        hears of every fix the pre-send checks make (metrics: `Metrics.record_fixes`).
        """
        engine = config.engine
        self._config, self._queue, self._sender, self._owner = config, queue, sender, owner
        self._clock = clock
        self._rng = rng or random.Random()
        self._policy = RetryPolicy.from_engine(engine)
        self._prechecks = prechecks or Prechecks(engine)
        self._poll_interval_s = poll_interval_s
        self._headers = {d.id: payload.headers(d) for d in config.destinations}
        self._shapes = {d.id: d.spec.request for d in config.destinations}
        self._on_fixed = on_fixed or (lambda integration, fixes: None)
        self._settler = _Settler(queue, on_settled or (lambda record: None))
        # Claim accounting (see the module docstring).
        self._capacity = engine.concurrency
        self._slots = engine.per_destination_concurrency
        self._per_claim = max(1, self._slots // 2)
        self._refill_at = max(1, min(engine.claim_batch_size, engine.concurrency) // 4)
        self._held = 0
        self._held_by_destination: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._waiting_for: _Waiting | None = None
        self._excluded: frozenset[str] = frozenset()
        self._aborting = False

    def notify(self) -> None:
        """New jobs were enqueued: claim now instead of at the next poll. Call from the event loop."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then stop gracefully (module docstring); return when done."""
        settler = asyncio.create_task(self._settler.run())
        relay = asyncio.create_task(_set_when(stop, self._wake))
        try:
            await self._claim_until(stop)
            await self._finish_in_flight()
        finally:
            relay.cancel()
            for task in self._tasks:  # only when run() itself was cancelled
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._settler.close(settler)
            released = await asyncio.to_thread(self._queue.release, self._owner)
            log.info("worker %s stopped; %d lease(s) released", self._owner, released)

    # -- claiming -------------------------------------------------------------------------------

    async def _claim_until(self, stop: asyncio.Event) -> None:
        engine = self._config.engine
        while not stop.is_set():
            free = self._capacity - self._held
            if free < self._refill_at and self._held:
                await self._sleep("capacity", None)
                continue
            excluded = self._full_destinations()
            limit = min(engine.claim_batch_size, free)
            try:
                jobs = await asyncio.to_thread(
                    self._queue.claim,
                    self._owner,
                    self._clock(),
                    limit=limit,
                    per_destination_limit=self._per_claim,
                    lease_s=engine.lease_s,
                    exclude=excluded,
                )
            except Exception:
                log.exception("claiming jobs failed; trying again in %.2f s", self._poll_interval_s)
                await self._sleep("work", self._poll_interval_s)
                continue
            if stop.is_set():
                break  # claimed while stopping: left for release(), nothing was sent
            for job in jobs:
                self._start(job)
            if len(jobs) == limit:
                continue
            # Destinations that may have more due jobs: left out of this claim, or given all it asked.
            given = Counter(job.destination_id for job in jobs)
            maybe_more = excluded | {d for d, n in given.items() if n == self._per_claim}
            full = self._full_destinations()
            if maybe_more - full:
                continue  # one of them has room now
            self._excluded = maybe_more
            await self._sleep("work", self._poll_interval_s)

    def _full_destinations(self) -> frozenset[str]:
        """Destinations with fewer free slots than one claim takes: left out of claims."""
        return frozenset(
            destination
            for destination, held in self._held_by_destination.items()
            if self._slots - held < self._per_claim
        )

    async def _sleep(self, waiting_for: _Waiting, timeout: float | None) -> None:
        """Wait for `notify`, `stop`, the timeout, or room that `waiting_for` needs (see `_release`)."""
        self._waiting_for = waiting_for
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        self._waiting_for = None

    def _start(self, job: Job) -> None:
        self._held += 1
        self._held_by_destination[job.destination_id] += 1
        task = asyncio.create_task(self._deliver(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, destination_id: str) -> None:
        """A job's request is over: free its slots, and wake the claim loop if that makes room."""
        self._held -= 1
        left = self._held_by_destination[destination_id] - 1
        if left:
            self._held_by_destination[destination_id] = left
        else:
            del self._held_by_destination[destination_id]
        if self._waiting_for == "capacity":
            if self._capacity - self._held >= self._refill_at:
                self._wake.set()
        elif (
            self._waiting_for == "work"
            and destination_id in self._excluded
            and self._slots - left >= self._per_claim
        ):
            self._wake.set()

    # -- one job --------------------------------------------------------------------------------

    async def _deliver(self, job: Job) -> None:
        try:
            settlement = await self._attempt(job)
        except Exception:
            # A bug, not a delivery failure: nothing is recorded, the job's lease lapses
            # and it is claimed again.
            log.exception("job %s: the attempt failed inside the engine", job.id)
            return
        finally:
            self._release(job.destination_id)
        self._settler.add(settlement)

    async def _attempt(self, job: Job) -> Settlement:
        destination = self._config.destination(job.destination_id)
        skip = await self._prechecks.verdict(destination)
        if skip is not None:
            return self._skipped(job, destination, skip)
        assert destination is not None  # the precheck skips unknown destinations
        checked = self._prechecks.events(destination, job.events)
        if isinstance(checked, Rejection):
            return self._skipped(job, destination, checked.verdict, checked.message)
        if checked.fixes:
            log.debug("job %s: fixed %s", job.id, ", ".join(f"{f.rule} at {f.path}" for f in checked.fixes))
            self._on_fixed(destination.integration, checked.fixes)
        body = payload.body(checked.events, self._shapes[destination.id])
        started_at = records.utc(self._clock())
        result = await self._send(destination, body)
        ended_at = records.utc(self._clock())
        verdict, unclassified = _classify(result, job)
        decision = records.decide(
            verdict,
            attempt=job.attempts + 1,
            received_at=records.utc(job.received_at),
            ended_at=ended_at,
            retry_after=result.retry_after,
            policy=self._policy,
            rng=self._rng,
        )
        record = records.request_record(
            job,
            destination,
            attempt_id=new_id(),
            started_at=started_at,
            request_bytes=len(body),
            result=result,
            verdict=verdict,
            decision=decision,
            unclassified=unclassified,
        )
        due_at = decision.next_attempt_at.timestamp() if decision.next_attempt_at is not None else None
        return Settlement(job, record, due_at)

    def _skipped(
        self,
        job: Job,
        destination: Destination | None,
        verdict: Classification,
        error_message: str | None = None,
    ) -> Settlement:
        """The job settled without a request: one `skipped` record."""
        record = records.skip_record(
            job,
            destination,
            attempt_id=new_id(),
            settled_at=records.utc(self._clock()),
            verdict=verdict,
            error_message=error_message,
        )
        return Settlement(job, record)

    async def _send(self, destination: Destination, body: bytes) -> SendResult:
        started = time.perf_counter()
        try:
            return await self._sender.send(destination.url, body, self._headers[destination.id])
        except asyncio.CancelledError:
            if not self._aborting:
                raise
            # Cut by the stop sequence, not by a caller: record the request like any other.
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
            error = ConnectionAbortedError(ABORTED_AT_SHUTDOWN)
            duration_ms = (time.perf_counter() - started) * 1000
            return SendResult(duration_ms, error=error, error_message=f"ConnectionAbortedError: {error}")

    # -- stopping -------------------------------------------------------------------------------

    async def _finish_in_flight(self) -> None:
        if not self._tasks:
            return
        _, running = await asyncio.wait(set(self._tasks), timeout=self._config.engine.shutdown_grace_s)
        if running:
            log.warning("cutting %d request(s) still running after shutdown_grace_s", len(running))
            self._aborting = True
            for task in running:
                task.cancel()
            await asyncio.wait(running)


def _classify(result: SendResult, job: Job) -> tuple[Classification, bool]:
    """The verdict, and whether it is the stand-in for an exception `classify` does not know."""
    try:
        return classify(result), False
    except UnclassifiedError as error:
        log.error(
            "job %s: %s; recorded as %s (retryable) until the table knows it",
            job.id,
            error,
            UNCLASSIFIED_CODE,
        )
        return classify_transport(UNCLASSIFIED_CODE), True


async def _set_when(stop: asyncio.Event, wake: asyncio.Event) -> None:
    await stop.wait()
    wake.set()


class _Settler:
    """Collects finished jobs and settles them in groups, one queue transaction per group."""

    def __init__(self, queue: Queue, on_settled: OnSettled) -> None:
        self._queue = queue
        self._on_settled = on_settled
        self._pending: list[Settlement] = []
        self._has_work = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False

    def add(self, settlement: Settlement) -> None:
        self._pending.append(settlement)
        if len(self._pending) == 1:
            self._has_work.set()
        if len(self._pending) >= SETTLE_GROUP:
            self._full.set()

    async def run(self) -> None:
        """Settle groups until `close`; then settle what is left and return."""
        while True:
            await self._has_work.wait()
            if not self._closing and len(self._pending) < SETTLE_GROUP:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), SETTLE_DELAY_S)
            group, self._pending = self._pending, []
            self._has_work.clear()
            self._full.clear()
            if group:
                settled = await asyncio.to_thread(self._settle, group)
                self._report(settled)
            if self._closing and not self._pending:
                return

    def _report(self, settled: Sequence[Settlement]) -> None:
        for settlement in settled:
            try:
                self._on_settled(settlement.record)
            except Exception:
                log.exception("on_settled failed for attempt %s", settlement.record.get("attempt_id"))

    async def close(self, runner: asyncio.Task[None]) -> None:
        """Settle everything added so far and stop `runner` (the task running `run`)."""
        self._closing = True
        self._has_work.set()
        self._full.set()
        await runner

    def _settle(self, group: Sequence[Settlement]) -> list[Settlement]:
        """Settle `group` (in a thread); return the settlements committed."""
        try:
            lost = self._queue.settle(group)
        except Exception:
            # One bad record (a bug) must not keep the others from their commit.
            log.exception("settling a group of %d jobs failed; settling them one by one", len(group))
            return [s for s in group if self._settle_alone(s)]
        for job in lost:
            # Another worker took the job after its lease lapsed; it records its own attempt.
            log.warning("job %s: lease lost before its attempt was settled; not recorded here", job.id)
        lost_ids = {job.id for job in lost}
        return [s for s in group if s.job.id not in lost_ids]

    def _settle_alone(self, settlement: Settlement) -> bool:
        try:
            lost = self._queue.settle([settlement])
        except Exception:
            log.exception(
                "job %s: could not be settled; it stays leased until its lease lapses, then is sent again",
                settlement.job.id,
            )
            return False
        if lost:
            log.warning("job %s: lease lost before its attempt was settled; not recorded", settlement.job.id)
        return not lost
