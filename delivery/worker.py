"""The delivery loop: claim due jobs, send each once, settle them with their attempt records.

One `Worker` per engine process::

    claim (a batch: at once if the queue is idle, else in a thread) ──> per job: precheck ─> body ─>
       ^                                                            send ─> classify ─> decide ─> record
       │                                                                                          │
       └── room again (a slot freed, new work, the poll interval) ──────── settle in groups <─────┘

The decisions are elsewhere and pure: `delivery.precheck` (jobs settled
without a request, and events fixed to the integration's rules),
`delivery.payload` (the body, and the headers signed where the destination signs), `delivery.classify`,
`delivery.records` (retry decision and record). This module only schedules.

**Concurrency.** At most `concurrency` requests are in flight at once, and
at most `per_destination_concurrency` to one destination. The bounds on what
is held are kept at the claim, not by semaphores: a destination with too
little room is passed to `Queue.claim` in `exclude`, and a claim asks for
no more than the room. A destination is claimed for again once a quarter of
its slots' worth of room is free, and for all its room, so claims come in
batches rather than one per finished request.

**Claiming ahead** (`claim_ahead`, docs/worker.md). A destination may hold
`AHEAD_SLOTS` (two) times its slots claimed and waiting in memory beside
those in flight (the worker as many times `concurrency`), so that the slots
freed while a claim runs (10-20 ms on PostgreSQL under load) do not wait for
it. A freed slot goes to the oldest due request waiting among the
destinations with room, not to its own destination's next one. A waiting
request starts only while its lease, timed by the engine's clock before the
claim, still covers its request, a stop's grace and its settlement, and
while its destination is still this engine's; otherwise it is given back.
Never for metered or batching destinations.

**Metering.** A destination with a rate limit has a token bucket
(`delivery.metering`; `[engine] metering`). Tokens are counted at the
claim: a destination without a whole token (or held by a Retry-After) is
left out of it, and one with fewer tokens than a claim takes is asked for no
more requests than it has tokens. Each request takes its token as it starts,
at once or at the worker's next free slot (never claimed ahead); one whose
destination lost its tokens or got a Retry-After meanwhile is given back.
No lease runs down while a job waits for a token: the jobs wait in the
queue instead. Each answer is reported to the meter (429: slow down; 2xx:
recover; Retry-After: hold the destination).

**Batching.** A destination with `max_batch_events` above 1 is claimed
only once its oldest due job has waited `batch_linger_s`, and its fresh
jobs are combined into requests (`delivery.batching`). Each job's events
are checked before they are combined, so a job that breaks an integration
rule is skipped alone; the rest go out in one request whose record carries
the first job's id and all their events, and the queue merges them into
that job as it settles (`Settlement.merged`). A slot, a token and a record
are per request, not per job.

**Settling.** Finished jobs are settled in groups (one transaction, one
fsync, per group or per chunk of it): a group is written when it reaches
`SETTLE_GROUP` jobs or `SETTLE_DELAY_S` after its first job finished,
whichever comes first. On
a queue with one writer at a time (SQLite: `Queue.one_writer`), a claim
waits for a settlement under way, and the requests claimed ahead ran out
meanwhile: there a group is written `SETTLE_CHUNK` jobs per transaction,
and claims and these transactions take turns, first come first served, so
a claim waits for one of the worker's short transactions at most.

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
import functools
import logging
import math
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from delivery import batching, payload, records, retry
from delivery.classify import classify
from delivery.config import Config, Destination
from delivery.metering import Meter, Metering
from delivery.precheck import CheckedJob, Fix, Prechecks, Rejection
from delivery.queue import ClaimOptions, Event, Job, Queue, Settlement
from delivery.retry import RetryPolicy
from delivery.sender import Sender, SendResult
from ingest.ids import new_id
from ingest.taxonomy import Classification

log = logging.getLogger(__name__)

#: Finished jobs a group holds at most before it is written.
SETTLE_GROUP: Final = 100
#: Longest a finished job waits for its group.
SETTLE_DELAY_S: Final = 0.05
#: Jobs settled in one transaction on a queue with one writer at a time (`Queue.one_writer`): a
#: group of 130 took 10-25 ms there, during which the requests claimed ahead (about 15 ms of work,
#: one slots' worth ahead) ran out while the next claim waited (docs/benchmarks.md, issue 16,
#: eighth sitting).
SETTLE_CHUNK: Final = 32
#: How often an idle worker looks for jobs that became due (retries), unless `notify`-ed.
POLL_INTERVAL_S: Final = 0.1
#: Requests a destination may hold waiting ahead (`claim_ahead`), in slots' worth, beside those in
#: flight. The room ahead must outlast a claim: 54-68 requests ended during one of 13-17 ms in the
#: engine benchmark on PostgreSQL, and with one slots' worth (64) all slots were busy 35-37 % of the
#: time against 63-72 % with two (docs/worker.md, "Claiming ahead").
AHEAD_SLOTS: Final = 2
#: What a job's lease keeps beyond its request and a stop's grace, for its settlement: a job waiting
#: ahead (`claim_ahead`) starts only while that much is left.
LEASE_MARGIN_S: Final = 1.0
#: How often a request waiting ahead asks whether its destination moved to another engine of a fleet.
OWNERSHIP_CHECK_S: Final = 0.05
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
        not_owned: Callable[[], frozenset[str]] = frozenset,
        known_now: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """`owner` names this worker's leases (unique per process run); `clock` gives epoch seconds.

        `rng` draws the retry jitter (a seeded one replays a schedule). `on_fixed`
        hears of every fix the pre-send checks make (metrics: `Metrics.record_fixes`).
        `not_owned()` names the destinations another engine of a fleet sends to
        (`delivery.ownership`): never claimed for here. `known_now(d)`, asked of a destination the
        config does not know, reads the config changed live again and says whether it knows it now:
        then its jobs are given back (to its owner) rather than skipped (docs/live-config.md).
        """
        engine = config.engine
        self._config, self._queue, self._sender, self._owner = config, queue, sender, owner
        self._clock = clock
        self._rng = rng or random.Random()
        self._policy = RetryPolicy.from_engine(engine)
        self._prechecks = prechecks or Prechecks(engine)
        self._poll_interval_s = poll_interval_s
        self._metering = (
            Metering(config.destinations, clock(), retry_after_max_s=engine.retry_after_max_s)
            if engine.metering
            else None
        )
        self._linger_s = engine.batch_linger_s
        self._on_fixed = on_fixed or (lambda integration, fixes: None)
        self._not_owned = not_owned
        self._known_now = known_now
        #: Taken by claims and settlements where the queue writes one transaction at a time: a lock
        #: serves its waiters in order, so a claim goes before the settler's next transaction.
        self._turn: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if queue.one_writer else contextlib.nullcontext()
        )
        self._settler = _Settler(
            queue,
            on_settled or (lambda record: None),
            turn=self._turn,
            chunk=SETTLE_CHUNK if queue.one_writer else None,
        )
        # Claim accounting (see the module docstring). Held: claimed and not yet answered, in flight
        # or waiting ahead; in flight: requests started.
        self._capacity = engine.concurrency
        self._slots = engine.per_destination_concurrency
        # A job waiting ahead starts only while its lease still covers its request, a stop's grace
        # and its settlement. Without claims ahead, every claimed job has a slot and starts at once.
        self._start_within_s = (
            engine.lease_s - engine.request_timeout_s - engine.shutdown_grace_s - LEASE_MARGIN_S
        )
        ahead = engine.claim_ahead and self._start_within_s > 0
        if not ahead:
            self._start_within_s = math.inf
        self._claims_ahead = ahead
        #: What a destination may hold by default (in flight and waiting), and the worker overall.
        depth = 1 + AHEAD_SLOTS if ahead else 1
        self._full_share = depth * self._slots
        self._full_capacity = depth * self._capacity
        self._min_claim = max(1, self._slots // 4)
        self._refill_at = max(1, min(engine.claim_batch_size, engine.concurrency) // 4)
        self._held = 0
        self._held_by_destination: Counter[str] = Counter()
        self._in_flight = 0
        self._in_flight_by_destination: Counter[str] = Counter()
        #: Requests claimed ahead, oldest first per destination, with when each must start by.
        self._ready: dict[str, deque[tuple[list[Job], float]]] = {}
        #: Destinations not claimed ahead for until one of their requests ends: a job of theirs
        #: waited ahead until its lease ran short.
        self._stale: set[str] = set()
        self._stop: asyncio.Event | None = None
        self._closed = False
        #: The destinations moved to other engines, as last asked (`_moved`), and when.
        self._moved_at = -math.inf
        self._moved_now: frozenset[str] = frozenset()
        self._tasks: set[asyncio.Task[list[Settlement]]] = set()
        self._chores: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._waiting_for: _Waiting | None = None
        self._excluded: frozenset[str] = frozenset()
        self._aborting = False
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Deliver by `config`'s destinations from the next request on (docs/live-config.md).

        Only sources and destinations may differ from the config the worker was built with.
        A request already started ends with what it started with; a destination whose rate
        limit is unchanged keeps its meter.
        """
        self._config = config
        self._headers = {d.id: payload.headers(d) for d in config.destinations}
        self._signers = {d.id: payload.signer(d) for d in config.destinations}
        self._shapes = {d.id: d.spec.request for d in config.destinations}
        #: Destinations whose requests combine jobs, and the most events per request.
        self._batches = {d.id: d.max_batch_events for d in config.destinations if d.max_batch_events > 1}
        if self._metering is not None:
            self._metering.reconfigure(config.destinations, self._clock())
        #: Destinations never claimed ahead for: their claims count requests and tokens, not jobs.
        self._not_ahead = frozenset(self._batches) | frozenset(
            d for d, _ in (self._metering.items() if self._metering is not None else ())
        )
        # One that became metered or batching waits no longer: its jobs were claimed without tokens.
        if waiting := self._not_ahead & self._ready.keys():
            self._give_back_ready(waiting)

    def meters(self) -> Iterable[tuple[str, Meter]]:
        """Each metered destination's meter, read by `/admin/status` (none with metering off)."""
        return () if self._metering is None else list(self._metering.items())

    def holding(self, destination_id: str) -> bool:
        """Whether jobs of the destination are claimed here (in flight or waiting) and not yet settled."""
        return self._held_by_destination[destination_id] > 0

    def notify(self) -> None:
        """New jobs were enqueued: claim now instead of at the next poll. Call from the event loop."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then stop gracefully (module docstring); return when done."""
        self._stop = stop  # once set, no request waiting ahead starts: release() below frees them
        settler = asyncio.create_task(self._settler.run())
        relay = asyncio.create_task(_set_when(stop, self._wake))
        try:
            await self._claim_until(stop)
            await self._finish_in_flight()
        finally:
            self._closed = True  # run() was cancelled, or is over: nothing more starts
            relay.cancel()
            for task in self._tasks:  # only when run() itself was cancelled
                task.cancel()
            await asyncio.gather(*self._tasks, *self._chores, return_exceptions=True)
            await self._settler.close(settler)
            released = await asyncio.to_thread(self._queue.release, self._owner)
            log.info("worker %s stopped; %d lease(s) released", self._owner, released)

    # -- claiming -------------------------------------------------------------------------------

    async def _claim_until(self, stop: asyncio.Event) -> None:
        engine = self._config.engine
        while not stop.is_set():
            not_owned = self._ask_moved(self._clock())
            if moved := not_owned & self._ready.keys():
                self._give_back_ready(moved)
            free = self._full_capacity - self._held
            if free < self._refill_at and self._held:
                await self._sleep("capacity", None)
                continue
            now = self._clock()
            tokens = self._tokens(now)
            blocked = self._full_destinations() | {d for d, n in tokens.items() if n == 0} | not_owned
            limits = self._limits(tokens)
            limit = min(engine.claim_batch_size, free)
            options: ClaimOptions = {
                "limit": limit,
                "per_destination_limit": self._full_share,
                "lease_s": engine.lease_s,
                "exclude": blocked,
                "limits": limits,
                "batches": self._batches,
                "linger_s": self._linger_s,
            }
            try:
                async with self._turn:
                    # At once when the queue is idle (SQLite, no other transaction): a thread's hop
                    # costs more than the claim, and requests finish meanwhile with nothing to follow.
                    jobs = self._queue.claim_if_idle(self._owner, now, **options)
                    if jobs is None:
                        jobs = await asyncio.to_thread(self._queue.claim, self._owner, now, **options)
            except Exception:
                log.exception("claiming jobs failed; trying again in %.2f s", self._poll_interval_s)
                await self._sleep("work", self._poll_interval_s)
                continue
            if stop.is_set():
                break  # claimed while stopping: left for release(), nothing was sent
            units = await self._requests(jobs, limits)
            units = await self._unless_held(units)
            self._take(units, now)
            if len(units) == limit:
                continue
            # Destinations that may have more due jobs: left out of this claim, or given all it asked.
            given = Counter(unit[0].destination_id for unit in units)
            maybe_more = (blocked - not_owned) | {
                d for d, n in given.items() if n == limits.get(d, self._full_share)
            }
            later = self._clock()
            if maybe_more - self._full_destinations() - {d for d, n in self._tokens(later).items() if n == 0}:
                continue  # one of them has room now
            self._excluded = maybe_more
            await self._sleep("work", self._idle_s(maybe_more, later))

    def _tokens(self, now: float) -> dict[str, int]:
        """Requests each metered destination may start now (whole tokens), when fewer than its slots."""
        if self._metering is None:
            return {}
        available = ((d, meter.available(now)) for d, meter in self._metering.items())
        return {d: n for d, n in available if n < self._slots}

    def _limits(self, tokens: Mapping[str, int]) -> dict[str, int]:
        """Requests each destination may be claimed for now, where fewer than the default share.

        The default share is its slots and `AHEAD_SLOTS` times as many ahead. A destination not
        claimed ahead for has its free slots, and a metered one no more than its tokens.
        """
        limits = dict(tokens)
        if self._claims_ahead:
            for destination in self._not_ahead | self._stale:
                limits.setdefault(destination, self._slots)
        for destination, held in self._held_by_destination.items():
            free = self._share(destination) - held
            if free < limits.get(destination, self._full_share):
                limits[destination] = free
        return limits

    def _share(self, destination_id: str) -> int:
        """The requests a destination may hold: its slots, and its room ahead unless not claimed ahead for."""
        if destination_id in self._not_ahead or destination_id in self._stale:
            return self._slots
        return self._full_share

    def _idle_s(self, waiting: frozenset[str], now: float) -> float:
        """How long an idle claim loop sleeps: the poll interval, or less when something is due sooner.

        Sooner: a metered destination in `waiting` gets a token, or a batching
        destination's lingering jobs become claimable (at most `batch_linger_s` away).
        """
        timeout = self._poll_interval_s
        if self._batches and self._linger_s > 0:
            timeout = min(timeout, self._linger_s)
        if self._metering is not None:
            for destination_id in waiting:
                meter = self._metering.get(destination_id)
                if meter is not None:
                    timeout = min(timeout, meter.wait_s(now))
        return timeout

    def _full_destinations(self) -> frozenset[str]:
        """Destinations with under a quarter of their slots' room: left out of claims until they have more."""
        return frozenset(
            destination
            for destination, held in self._held_by_destination.items()
            if self._share(destination) - held < self._min_claim
        )

    async def _requests(self, jobs: Sequence[Job], limits: Mapping[str, int]) -> list[list[Job]]:
        """A claim's jobs as requests: one job each, or combined for batching destinations.

        Jobs beyond the requests the claim counted (a batch cut short by
        `max_batch_bytes`) are given back at once rather than left waiting.
        """
        units: list[list[Job]] = []
        by_destination: dict[str, list[Job]] = {}
        for job in jobs:
            by_destination.setdefault(job.destination_id, []).append(job)
        surplus: list[Job] = []
        for destination_id, claimed in by_destination.items():
            destination = self._config.destination(destination_id)
            size = self._batches.get(destination_id, 1)
            if destination is None or size <= 1:
                units += [[job] for job in claimed]
                continue
            groups = batching.requests(claimed, max_events=size, max_bytes=destination.max_batch_bytes)
            counted = limits.get(destination_id, self._full_share)
            units += groups[:counted]
            surplus += [job for group in groups[counted:] for job in group]
        if surplus:
            await self._give_back(surplus)
        return units

    async def _unless_held(self, units: list[list[Job]]) -> list[list[Job]]:
        """`units` less those of destinations a Retry-After began to hold while the claim ran.

        Those jobs are given back: the whole destination waits, these included.
        """
        if self._metering is None:
            return units
        now = self._clock()
        held = {d for d, meter in self._metering.items() if meter.held_until > now}
        waiting = [job for unit in units if unit[0].destination_id in held for job in unit]
        if not waiting:
            return units
        await self._give_back(waiting)
        return [unit for unit in units if unit[0].destination_id not in held]

    async def _give_back(self, jobs: Sequence[Job]) -> None:
        """Release jobs claimed but not sent now: pending again, claimable at once."""
        try:
            await asyncio.to_thread(self._queue.release, self._owner, jobs)
        except Exception:
            log.exception("giving back %d job(s) failed; they are sent when their lease lapses", len(jobs))

    async def _sleep(self, waiting_for: _Waiting, timeout: float | None) -> None:
        """Wait for `notify`, `stop`, the timeout, or room that `waiting_for` needs (see `_release`)."""
        self._waiting_for = waiting_for
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        self._waiting_for = None

    def _take(self, units: Sequence[list[Job]], now: float) -> None:
        """Hold a claim's requests, and start those that have a slot.

        The others wait ahead, oldest due first per destination, until a slot
        frees; each must start by `now` (the engine's clock before the claim,
        so before the lease began) plus `_start_within_s`. A metered or
        batching destination is claimed for its free slots only, so its
        requests wait only for a slot of the worker's (`concurrency`).
        """
        start_by = now + self._start_within_s
        for jobs in units:
            destination_id = jobs[0].destination_id
            self._held += 1
            self._held_by_destination[destination_id] += 1
            ready = self._ready.get(destination_id)
            if ready is None:
                self._ready[destination_id] = ready = deque()
            # At the end, unless older than those claimed before it (given back once, claimed again).
            age, at = _age(jobs), len(ready)
            while at and _age(ready[at - 1][0]) > age:
                at -= 1
            ready.insert(at, (jobs, start_by))
        self._start_ready()

    def _start_ready(self) -> None:
        """Start waiting requests while there are slots: the oldest due first, across destinations.

        Given back instead: one past its start-by, one of a destination moved to another
        engine, and a metered destination's while a Retry-After holds it or it has no token left
        (a 429 since the claim): the next claim judges them again.
        """
        if self._closed or (self._stop is not None and self._stop.is_set()):
            return
        now = self._clock()
        moved = self._moved(now)
        while self._ready and self._in_flight < self._capacity:
            chosen: str | None = None
            oldest: tuple[float, str] | None = None
            for destination_id, ready in self._ready.items():
                if self._in_flight_by_destination[destination_id] < self._slots:
                    age = _age(ready[0][0])
                    if oldest is None or age < oldest:
                        chosen, oldest = destination_id, age
            if chosen is None:
                return
            if chosen in moved:
                self._give_back_ready([chosen])
                continue
            ready = self._ready[chosen]
            jobs, start_by = ready.popleft()
            if not ready:
                del self._ready[chosen]
            late = now > start_by  # its lease might lapse before its request settles
            if late:
                self._stale.add(chosen)
            if late or self._meter_refuses(chosen, now):
                self._unhold(chosen)
                self._chore(self._give_back(jobs))  # the next claim judges them again
                continue
            self._start(jobs, now)

    def _meter_refuses(self, destination_id: str, now: float) -> bool:
        """Whether a metered destination is held by a Retry-After or has no whole token now."""
        meter = self._metering.get(destination_id) if self._metering is not None else None
        return meter is not None and (meter.held_until > now or meter.available(now) < 1)

    def _moved(self, now: float) -> frozenset[str]:
        """`not_owned()`, asked at most every `OWNERSHIP_CHECK_S`: once per request would cost a set
        difference over every destination each time."""
        if now - self._moved_at >= OWNERSHIP_CHECK_S or now < self._moved_at:
            return self._ask_moved(now)
        return self._moved_now

    def _ask_moved(self, now: float) -> frozenset[str]:
        """`not_owned()` now, kept for `_moved`."""
        self._moved_now, self._moved_at = self._not_owned(), now
        return self._moved_now

    def _give_back_ready(self, destinations: Iterable[str]) -> None:
        """Give back the jobs waiting for `destinations`: moved to another engine, or metered since."""
        for destination_id in destinations:
            units = self._ready.pop(destination_id, ())
            for _ in units:
                self._unhold(destination_id)
            if units:
                self._chore(self._give_back([job for jobs, _ in units for job in jobs]))

    def _chore(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    def _start(self, jobs: list[Job], now: float) -> None:
        """Start one request for `jobs` (of one destination), held already, taking its token."""
        destination_id = jobs[0].destination_id
        if self._metering is not None and (meter := self._metering.get(destination_id)) is not None:
            meter.take(now)  # when it starts, not when it was claimed: it may have waited for a slot
        self._in_flight += 1
        self._in_flight_by_destination[destination_id] += 1
        # What follows the request is a callback, not a coroutine awaiting it: each coroutine
        # between the task and the socket is resumed on every answer (docs/benchmarks.md, issue 16).
        task = asyncio.create_task(self._attempt(jobs))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._ended, jobs))

    def _release(self, destination_id: str) -> None:
        """A job's request is over: free its slot for a request waiting ahead, and wake the claim loop
        if that makes room."""
        self._in_flight -= 1
        _count_down(self._in_flight_by_destination, destination_id)
        self._stale.discard(destination_id)
        self._unhold(destination_id)
        if self._ready:
            self._start_ready()

    def _unhold(self, destination_id: str) -> None:
        """One request of the destination is no longer held; wake the claim loop if that makes room."""
        self._held -= 1
        left = _count_down(self._held_by_destination, destination_id)
        if self._waiting_for == "capacity":
            if self._full_capacity - self._held >= self._refill_at:
                self._wake.set()
        elif (
            self._waiting_for == "work"
            and destination_id in self._excluded
            and self._share(destination_id) - left >= self._min_claim
        ):
            self._wake.set()

    # -- one job --------------------------------------------------------------------------------

    def _ended(self, jobs: list[Job], task: asyncio.Task[list[Settlement]]) -> None:
        """The request's task for `jobs` is over: free its slot, and hand its settlements to the settler."""
        self._tasks.discard(task)
        self._release(jobs[0].destination_id)
        if task.cancelled():
            return  # by a cancelled run(): its jobs are sent again
        error = task.exception()
        if error is not None:
            # A bug, not a delivery failure: nothing is recorded, the jobs' leases lapse
            # and they are claimed again.
            log.error("job %s: the attempt failed inside the engine", jobs[0].id, exc_info=error)
            return
        for settlement in task.result():
            self._settler.add(settlement)

    async def _attempt(self, jobs: list[Job]) -> list[Settlement]:
        """Check `jobs`, send the ones that pass in one request, and settle all of them."""
        destination = self._config.destination(jobs[0].destination_id)
        if (
            destination is None
            and self._known_now is not None
            and await self._known_now(jobs[0].destination_id)
        ):
            # Added live on another engine of a fleet, and claimed here before this one read it.
            await self._give_back(jobs)
            return []
        skip = self._prechecks.verdict(destination)
        if skip is not None:
            return [self._skipped(job, destination, skip) for job in jobs]
        assert destination is not None  # the precheck skips unknown destinations
        settlements: list[Settlement] = []
        passed: list[tuple[Job, tuple[Event, ...]]] = []
        for job in jobs:  # each job alone, so one bad event cannot skip a whole batch
            checked = self._checked(job, destination)
            if isinstance(checked, Rejection):
                settlements.append(self._skipped(job, destination, checked.verdict, checked.message))
            else:
                passed.append((job, checked.events))
        if not passed:
            return settlements
        if len(passed) > 1:
            passed = await self._fit(passed, destination)
        sent = batching.combine([job for job, _ in passed])
        settlements.append(
            await self._request(sent, tuple(job for job, _ in passed[1:]), passed, destination)
        )
        return settlements

    def _checked(self, job: Job, destination: Destination) -> CheckedJob | Rejection:
        checked = self._prechecks.events(destination, job.events)
        if isinstance(checked, CheckedJob) and checked.fixes:
            log.debug("job %s: fixed %s", job.id, ", ".join(f"{f.rule} at {f.path}" for f in checked.fixes))
            self._on_fixed(destination.integration, checked.fixes)
        return checked

    async def _fit(
        self, passed: list[tuple[Job, tuple[Event, ...]]], destination: Destination
    ) -> list[tuple[Job, tuple[Event, ...]]]:
        """The leading jobs whose events, as fixed, fit one body; the others are given back."""
        sizes = [len(events[0].payload) for _, events in passed]
        n = batching.fitting(sizes, destination.max_batch_bytes)
        if n < len(passed):
            await self._give_back([job for job, _ in passed[n:]])
        return passed[:n]

    async def _request(
        self,
        job: Job,
        merged: tuple[Job, ...],
        passed: Sequence[tuple[Job, tuple[Event, ...]]],
        destination: Destination,
    ) -> Settlement:
        """Send `job` (the combined one) once and decide its next step."""
        body = payload.body([e for _, events in passed for e in events], self._shapes[destination.id])
        sent_at = self._clock()
        # A replay signs as the job it replays: a receiver that took the first job's request after all
        # (a timeout it answered late) sees the same webhook-id, and can drop the replay.
        message_id = job.replay_of or job.id
        headers = payload.signed(
            self._headers[destination.id], self._signers[destination.id], message_id, sent_at, body
        )
        started = time.perf_counter()
        try:
            result = await self._sender.send(destination.url, body, headers)
        except asyncio.CancelledError:
            if not self._aborting:
                raise
            result = _cut_at_shutdown(started)
        ended = self._clock()
        verdict = _classify(result, job)
        decision = retry.decide(
            verdict,
            attempt=job.attempts + 1,
            received_at=records.utc(job.received_at),
            ended_at=records.utc(ended),
            retry_after=result.retry_after,
            policy=self._policy,
            rng=self._rng,
        )
        if self._metering is not None:
            self._metering.observe(
                destination.id,
                ended,
                sent_at=sent_at,
                status=result.status,
                retry_after_s=decision.retry_after_s,
            )
        record = records.request_record(
            job,
            destination,
            attempt_id=new_id(),
            started_at=records.utc(sent_at),
            request_bytes=len(body),
            result=result,
            verdict=verdict,
            decision=decision,
        )
        due_at = decision.next_attempt_at.timestamp() if decision.next_attempt_at is not None else None
        return Settlement(job, record, due_at, merged)

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


def _count_down(counts: Counter[str], key: str) -> int:
    """Take one off `counts[key]`, dropping the key at zero (a counter lists who holds some); the rest."""
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]
    return left


def _age(jobs: list[Job]) -> tuple[float, str]:
    """The key a request waiting ahead is ordered by: its first job's due time, then id (claims' order)."""
    return jobs[0].due_at, jobs[0].id


def _cut_at_shutdown(started: float) -> SendResult:
    """The result of a request the stop sequence cut (not a caller): recorded like any other."""
    task = asyncio.current_task()
    assert task is not None
    task.uncancel()
    duration_ms = (time.perf_counter() - started) * 1000
    return SendResult(
        duration_ms,
        error_code="ECONNABORTED",
        error_message=f"ConnectionAbortedError: {ABORTED_AT_SHUTDOWN}",
    )


def _classify(result: SendResult, job: Job) -> Classification:
    """The verdict; a failure no table knows is logged, so that a table learns it."""
    if result.unclassified is not None:
        log.error(
            "job %s: %s; recorded as %s (retryable) until the table knows it",
            job.id,
            result.unclassified,
            result.error_code,
        )
    return classify(result)


async def _set_when(stop: asyncio.Event, wake: asyncio.Event) -> None:
    await stop.wait()
    wake.set()


class _Settler:
    """Collects finished jobs and settles them in groups: one queue transaction per group, or per
    `chunk` of it, each taking the worker's turn."""

    def __init__(
        self,
        queue: Queue,
        on_settled: OnSettled,
        *,
        turn: contextlib.AbstractAsyncContextManager[Any],
        chunk: int | None,
    ) -> None:
        """`turn` is taken for each transaction; `chunk`, if given, is the most jobs one of them settles."""
        self._queue = queue
        self._on_settled = on_settled
        self._turn = turn
        self._chunk = chunk
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
                await self._settle_in_turns(group)
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

    async def _settle_in_turns(self, group: Sequence[Settlement]) -> None:
        """Settle `group` in `chunk`s, one transaction each in its turn, and report what each committed.

        Cancelled between chunks (only when `run` itself is cancelled: the engine stops the
        worker with `stop`), the rest are not settled: their leases lapse, and they are sent
        again, as after a crash.
        """
        size = self._chunk or len(group)
        for start in range(0, len(group), size):
            async with self._turn:
                settled = await asyncio.to_thread(self._settle, group[start : start + size])
            self._report(settled)

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
