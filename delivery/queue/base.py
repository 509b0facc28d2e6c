"""The durable queue: what the tracking API, the workers and the exporter may ask of it.

A **job** is one or more events bound for one destination. Its life::

    enqueue ──> pending ──claim──> leased ──complete──> done
                  ^                  │
                  └───reschedule─────┘   (lease expired: another claim takes it)

Every state change a worker makes carries the attempt record of the request
behind it (`ingest.schema` columns), and the backend stores both in one
transaction: the record goes to an **outbox** that the exporter
(`delivery.exporter`) moves to the Parquet attempt log. So a record exists
exactly when its job's state change does.

`Queue` is a Protocol so that the embedded backend (`delivery.queue.sqlite`)
and a server one (PostgreSQL, claiming with ``FOR UPDATE SKIP LOCKED``, for
several engine processes) are interchangeable. Times are epoch seconds
(floats) passed in by the caller: the embedded queue never reads a clock
itself. A backend shared by several machines may judge leases, due times and
lapses by its own clock instead of the `now` arguments (PostgreSQL uses the
database's), so that engines with skewed clocks agree; due times passed in
are stored as given.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, Required, TypedDict, Unpack

from delivery.queue.outbox import decode_record

#: A messageId seen from a source within this window is acknowledged, not enqueued again.
DEDUP_WINDOW_S = 24 * 3600.0


class JobState(StrEnum):
    """Where a job is in its life (column `state` of the queue)."""

    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Event:
    """One accepted tracking call, as stored in the queue."""

    message_id: str
    """Segment messageId: the de-duplication key within a source."""
    workspace_id: str
    """The customer that owns the source."""
    source_id: str
    """The source the event came in through (decides the fan-out)."""
    type: str
    """Call type: track, identify, page, screen, group, alias."""
    name: str | None
    """Event name of a track call; NULL for the other types."""
    payload: bytes
    """The message as JSON, ready to send."""
    received_at: float
    """When the tracking API accepted it (epoch seconds)."""


@dataclass(frozen=True, slots=True)
class Job:
    """One or more events bound for one destination, as a claim hands it out."""

    id: str
    """Time-ordered id (`ingest.ids.new_id`), stable across retries: the record's `job_id`."""
    destination_id: str
    """The configured destination instance."""
    events: tuple[Event, ...]
    """The events carried, in order: one as enqueued; several once a batch request merged jobs."""
    state: JobState
    """State when this object was read."""
    attempts: int
    """Requests recorded so far: the next request is attempt `attempts + 1`."""
    due_at: float
    """When the job became (or becomes) due."""
    received_at: float
    """Earliest `received_at` of its events: the record's `received_at`."""
    first_error_class: str | None = None
    """`error_class` of its first request, once that request was retried (None before): every
    later record's `first_error_class`."""
    lease_owner: str | None = None
    """The worker holding the lease, if leased."""
    lease_expires_at: float | None = None
    """When the lease lapses and another claim may take the job."""
    lease_token: str | None = None
    """Identifies this one lease; `complete`/`reschedule` require it to be current."""
    replay_of: str | None = None
    """The first job of the event this job replays (`Queue.replay`; a replay of a replay names it too);
    None for a job of a received event. Every record of the job carries it (`replay_of`)."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """One job's state change after a request, for `Queue.settle`."""

    job: Job
    """The job, as claimed (its lease token is checked)."""
    record: Mapping[str, Any]
    """The attempt record of the request (`ingest.schema` columns)."""
    due_at: float | None = None
    """None: the job is finished (`complete`); else it is pending again, due then (`reschedule`)."""
    merged: tuple[Job, ...] = ()
    """Other claimed jobs whose events `job` carried in the same request (`delivery.batching.combine`).

    They end with `job`, or become part of it: a rescheduled `job` holds all
    their events from then on, and they are deleted. Every one's lease is
    checked; if one is lost, nothing is written for any of them.
    """


@dataclass(frozen=True, slots=True)
class OutboxBatch:
    """Committed attempt records taken together by the exporter."""

    batch_id: str
    """Unique forever (a ULID), so files named after it are never confused with another batch's."""
    lines: bytes
    """The attempt records in their outbox form (`encode_record`), one a line, in outbox order.

    As text, so the exporter can hand it to Arrow's JSON reader, which parses
    outside the GIL the worker's event loop needs."""
    resumed: bool
    """The batch was opened earlier and never acknowledged: part of it may be published already."""

    def __len__(self) -> int:
        return self.lines.count(b"\n") + 1 if self.lines else 0

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The attempt records, equal to the mappings handed to `complete`/`reschedule`."""
        return [decode_record(line) for line in self.lines.splitlines()]


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Counts for /metrics and /admin/status."""

    by_state: Mapping[str, int]
    """Unfinished jobs by state (`pending`, `leased`)."""
    by_destination: Mapping[str, Mapping[str, int]]
    """The same, per destination."""
    outbox_rows: int
    """Attempt records committed but not yet in the Parquet log."""


#: Outcomes whose jobs leave a dead letter: the events were not delivered and may be replayed.
DEAD_OUTCOMES = frozenset({"failed", "dropped", "skipped"})


@dataclass(frozen=True, slots=True)
class ReplaySelection:
    """Which dead letters a replay takes (`Queue.replay`): every given filter must hold."""

    destination_id: str | None = None
    """Only the jobs of this destination."""
    workspace_id: str | None = None
    """Only the events of this workspace."""
    since: float | None = None
    """Only jobs that ended at or after this time (epoch seconds)."""
    until: float | None = None
    """Only jobs that ended before this time (epoch seconds)."""
    error_classes: frozenset[str] = frozenset()
    """Only jobs whose last record had one of these `error_class` values (empty: any)."""
    outcomes: frozenset[str] = DEAD_OUTCOMES
    """Only jobs that ended with one of these outcomes."""
    again: bool = False
    """Take dead letters a replay took before, too (a replay is otherwise never repeated)."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What `Queue.replay` did (or would do, for a dry run)."""

    jobs: int
    """Jobs enqueued (or that would be): one per dead-lettered event."""
    by_destination: Mapping[str, int]
    """The same, per destination."""
    already_replayed: int
    """Dead letters the selection matched that an earlier replay took (left alone unless `again`)."""


class ClaimOptions(TypedDict, total=False):
    """`Queue.claim`'s keyword arguments (see there), for a call that passes them on."""

    limit: Required[int]
    per_destination_limit: Required[int]
    lease_s: Required[float]
    exclude: Collection[str]
    limits: Mapping[str, int] | None
    batches: Mapping[str, int] | None
    linger_s: float


class QueueError(Exception):
    """The queue cannot do what was asked."""


class StorageFull(QueueError):
    """The queue's disk is below its free-space reserve, or full: nothing of the call was stored.

    Raised by `Queue.enqueue` before the disk is actually full (the reserve
    leaves room for the worker's settlements and the exporter's files), and
    when the disk did fill. New events are refused until space returns.
    """

    def __init__(self, free_bytes: int, reserve_bytes: int, *, reason: str | None = None) -> None:
        """`reason` replaces the message about the reserve (a database server's disk: its own words)."""
        super().__init__(
            reason
            or f"{free_bytes / 2**20:.1f} MiB free on the queue's disk, under the reserve of "
            f"{reserve_bytes / 2**20:.1f} MiB ([engine] min_free_bytes)"
        )
        self.free_bytes = free_bytes
        """Free bytes on the filesystem when the call was refused."""
        self.reserve_bytes = reserve_bytes
        """The reserve the queue keeps."""


class LeaseLost(QueueError):
    """The caller's lease on a job is gone (it lapsed and another claim took the job).

    Nothing was written: the other holder will settle the job.
    """


class Queue(Protocol):
    """A durable job queue with an attempt-record outbox. Every method is blocking."""

    @property
    def location(self) -> str:
        """Where the queue is, for logs and status pages (never a password)."""
        ...

    @property
    def one_writer(self) -> bool:
        """Whether one write transaction runs at a time (SQLite): a claim waits for a settlement under way.

        The worker then keeps settlements short and lets a claim go between
        them (docs/worker.md, "Settling in groups"). A server backend (PostgreSQL) runs
        them side by side.
        """
        ...

    def enqueue(self, events: Sequence[Event], fanout: Mapping[str, Sequence[str]]) -> list[str]:
        """Store `events` and one job per (event, destination of its source), in one transaction.

        `fanout` maps a source id to its destination ids. A messageId seen from
        the same source within `DEDUP_WINDOW_S` (of the first sighting, by
        `received_at`) is a duplicate: acknowledged, not enqueued again.
        Returns the message ids newly accepted, after the commit. Raises
        `StorageFull`, storing nothing, while the disk is below the backend's
        free-space reserve.
        """
        ...

    def claim(
        self,
        owner: str,
        now: float,
        *,
        limit: int,
        per_destination_limit: int,
        lease_s: float,
        exclude: Collection[str] = (),
        limits: Mapping[str, int] | None = None,
        batches: Mapping[str, int] | None = None,
        linger_s: float = 0.0,
    ) -> list[Job]:
        """Lease up to `limit` requests' worth of jobs that are due, or whose lease lapsed, oldest first.

        At most `per_destination_limit` requests of one destination per call
        (`limits` lowers it for some: a metered destination with fewer tokens),
        so a backlog at one destination cannot crowd out the others, and none
        of the destinations in `exclude` (those the caller has no room for: a
        job claimed and left waiting would spend its lease).

        A job is one request, except at the destinations in `batches`
        (destination id -> most events per request), where up to that many
        *fresh* jobs (never tried, one event: `delivery.batching.is_fresh`)
        count as one request. Such a destination is claimable only once its
        oldest claimable job has been so for `linger_s`, so that jobs arriving
        meanwhile join the same request.
        """
        ...

    def claim_if_idle(self, owner: str, now: float, **options: Unpack[ClaimOptions]) -> list[Job] | None:
        """`claim`, if it can run at once without waiting on a lock or the network; else None.

        The one blocking method an event loop may call directly: the worker
        does, and runs `claim` in a thread only when this gives None. A backend
        whose claim is a round trip to a server always gives None.
        """
        ...

    def complete(self, job: Job, record: Mapping[str, Any], now: float) -> None:
        """Finish `job` and add its final attempt record to the outbox, in one transaction.

        Raises `LeaseLost` (writing nothing) if `job.lease_token` is no longer current.
        """
        ...

    def reschedule(self, job: Job, record: Mapping[str, Any], due_at: float) -> None:
        """Make `job` pending again, due at `due_at`, and add the attempt record, in one transaction.

        Raises `LeaseLost` (writing nothing) if `job.lease_token` is no longer current.
        """
        ...

    def settle(self, settlements: Sequence[Settlement]) -> list[Job]:
        """`complete` or `reschedule` many jobs in one transaction (one disk sync for all).

        A job whose lease is lost (or one of whose `merged` jobs' is) is
        skipped, nothing written for it, and returned; the others are settled.
        """
        ...

    def release(self, owner: str, jobs: Collection[Job] | None = None) -> int:
        """Give back every lease `owner` holds (at shutdown), or only those of `jobs`; return how many.

        The jobs are pending again at their due times, so claimable at once.
        """
        ...

    def recover(self, now: float) -> int:
        """At start-up: make jobs leased by owners that are no longer running claimable now.

        The embedded backend has one engine, so every lease is a dead one's; a
        shared backend frees only leases it can tell are dead (lapsed).
        """
        ...

    def outbox_batch(self, limit: int) -> OutboxBatch | None:
        """The open (unacknowledged) batch if there is one, else a new batch of up to `limit` records.

        None when the outbox is empty.
        """
        ...

    def outbox_ack(self, batch_id: str) -> int:
        """Delete the batch's records: they are in the Parquet log. Return how many."""
        ...

    def depth(self) -> QueueDepth:
        """Job counts by state and destination, and the outbox's size."""
        ...

    def replay(
        self, selection: ReplaySelection, replay_id: str, now: float, *, dry_run: bool = False
    ) -> ReplayResult:
        """Enqueue again the dead-lettered events `selection` matches, as new jobs, in one transaction.

        A settlement whose record's outcome is in `DEAD_OUTCOMES` keeps the
        job's events as dead letters (`settle`). Each one matched becomes a
        new job (one event, due at `now`, its `replay_of` the dead job's id,
        its `received_at` the event's), and is marked with `replay_id`, so a
        second replay leaves it alone unless `selection.again`. Events are not
        de-duplicated again: a replay is a deliberate second delivery.
        """
        ...

    def expire_dead_letters(self, before: float) -> int:
        """Delete dead letters of jobs that ended before `before` (epoch seconds); return how many."""
        ...

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """Whether this engine alone holds the fleet-wide lock `name` while the block runs.

        For work one engine of a fleet does at a time (compacting the attempt
        log): the block runs either way, and skips its work when it gets False.
        """
        ...

    def close(self) -> None:
        """Release the backend's resources."""
        ...
