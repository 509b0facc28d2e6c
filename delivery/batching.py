"""Which claimed jobs share a request, for destinations that take batches. Pure.

Jobs are made one per (event, destination) when events are accepted. For a
destination whose `max_batch_events` is above 1, the worker combines the
due jobs of one claim into requests (the queue's claim lingers
`batch_linger_s` on such a destination first, so that events arriving
together go out together)::

    claimed jobs of one destination, oldest first
      ├── tried before (attempts > 0): alone, as it was built, so a retry resends the same events
      └── fresh (never tried, one event): in order, up to max_batch_events per request
                                          and max_batch_bytes per body

A request's jobs are checked one by one before they are combined (a job
that breaks an integration rule is skipped alone, the others are sent),
then merged into the first job: the request's attempt record carries that
job's id and every event, and the queue settles the others into it in the
same transaction (`Settlement.merged`). A retry therefore resends the batch
as one job, with the same `job_id`, `event_count` and `events`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final

from delivery.queue import Job

#: ``{"batch":[`` and ``]}`` around the events, one comma between two (`delivery.payload.body`).
ENVELOPE_BYTES: Final = len(b'{"batch":[') + len(b"]}")


def is_fresh(job: Job) -> bool:
    """Whether `job` may join others: never tried, one event (as the queue creates jobs), not a replay.

    A replayed job goes alone because its record names the one job it replays.
    """
    return job.attempts == 0 and len(job.events) == 1 and job.replay_of is None


def body_bytes(sizes: Sequence[int]) -> int:
    """Size of a batch body holding events of these sizes, envelope included."""
    return ENVELOPE_BYTES + sum(sizes) + max(0, len(sizes) - 1)


def fitting(sizes: Sequence[int], max_bytes: int) -> int:
    """How many of the leading events fit one body of at most `max_bytes`: at least 1."""
    total = ENVELOPE_BYTES
    for n, size in enumerate(sizes):
        total += size + (1 if n else 0)
        if total > max_bytes:
            return max(1, n)
    return len(sizes)


def requests(jobs: Sequence[Job], *, max_events: int, max_bytes: int) -> list[list[Job]]:
    """One destination's claimed jobs (oldest first) grouped into requests (see the module docstring).

    Jobs tried before go alone; fresh ones fill requests in order, each of at
    most `max_events` events and `max_bytes` of body (a job bigger than that
    alone still gets its own request: the configuration keeps every event
    under the smallest allowed `max_batch_bytes`).
    """
    groups: list[list[Job]] = []
    batch: list[Job] = []
    size = ENVELOPE_BYTES
    for job in jobs:
        if not is_fresh(job) or max_events <= 1:
            groups.append([job])
            continue
        event_bytes = len(job.events[0].payload)
        if batch and (len(batch) >= max_events or size + 1 + event_bytes > max_bytes):
            groups.append(batch)
            batch, size = [], ENVELOPE_BYTES
        size += event_bytes + (1 if batch else 0)
        batch.append(job)
    if batch:
        groups.append(batch)
    return groups


def combine(jobs: Sequence[Job]) -> Job:
    """The one job that `jobs` become for a request: the first one, carrying every event.

    Its `received_at` is the earliest of theirs (the record's, and the start
    of the retry window).
    """
    if not jobs:
        raise ValueError("nothing to combine")
    first = jobs[0]
    if len(jobs) == 1:
        return first
    if any(not is_fresh(job) for job in jobs) or len({job.destination_id for job in jobs}) > 1:
        raise ValueError("only fresh jobs of one destination are combined")
    return dataclasses.replace(
        first,
        events=tuple(event for job in jobs for event in job.events),
        received_at=min(job.received_at for job in jobs),
    )
