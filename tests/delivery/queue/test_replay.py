"""Dead letters and replay, on every backend: what ends undelivered is kept, a replay makes new
jobs of it once, filters select, a dry run counts, old dead letters expire."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from delivery import batching
from delivery.queue import Job, Queue, ReplaySelection, Settlement
from tests.delivery.queue.helpers import FANOUT, Backend, Clock, event, record_for
from tests.delivery.queue.test_contract import backend, claim, clock, queue

__all__ = ["backend", "clock", "queue"]  # the fixtures, shared with the contract's cases


def end(
    queue: Queue, clock: Clock, outcome: str, error_class: str = "auth", **claim_options: Any
) -> list[Job]:
    """Claim every due job and settle each with `outcome` (a final record)."""
    jobs = claim(queue, clock, **claim_options)
    delivered = outcome == "delivered"
    queue.settle(
        [
            Settlement(
                job,
                record_for(
                    job,
                    n,
                    outcome=outcome,
                    error_class="none" if delivered else error_class,
                    status_code=200 if delivered else 401,
                ),
            )
            for n, job in enumerate(jobs)
        ]
    )
    return jobs


def dead_letters(backend: Backend) -> list[tuple[Any, ...]]:
    return backend.query(
        "SELECT job_id, destination_id, message_id, outcome, error_class, replay_id FROM dead_letters "
        "ORDER BY destination_id, message_id"
    )


def test_jobs_that_end_undelivered_leave_their_events_as_dead_letters(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    t0 = clock.now() - 60
    queue.enqueue([event("m1", t0), event("m2", t0, source_id="ios")], FANOUT)
    jobs = end(queue, clock, "failed", "auth")
    by_key = {(j.destination_id, j.events[0].message_id): j.id for j in jobs}
    assert dead_letters(backend) == [
        (by_key["hook-a", "m1"], "hook-a", "m1", "failed", "auth", None),
        (by_key["hook-a", "m2"], "hook-a", "m2", "failed", "auth", None),
        (by_key["hook-b", "m1"], "hook-b", "m1", "failed", "auth", None),
    ]
    # The payload is kept as received, though the job and its event are gone from the queue.
    assert backend.query("SELECT payload FROM dead_letters WHERE message_id = 'm2'")[0][0] == (
        event("m2", t0).payload
    )
    assert [backend.count(t) for t in ("jobs", "events")] == [0, 0]


@pytest.mark.parametrize("outcome", ["delivered", "retry"])
def test_delivered_and_retried_jobs_leave_no_dead_letter(
    backend: Backend, queue: Queue, clock: Clock, outcome: str
) -> None:
    queue.enqueue([event("m1", clock.now() - 60)], FANOUT)
    jobs = claim(queue, clock)
    due = None if outcome == "delivered" else clock.now() + 60
    queue.settle([Settlement(j, record_for(j, n, outcome=outcome), due) for n, j in enumerate(jobs)])
    assert dead_letters(backend) == []


def test_a_batch_that_ends_undelivered_keeps_every_event_it_carried(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    t0 = clock.now() - 60
    queue.enqueue([event(f"m{i}", t0, source_id="ios") for i in range(3)], FANOUT)
    first, *others = claim(queue, clock)
    record = record_for(first, 0, outcome="dropped", error_class="server", event_count=3)
    queue.settle([Settlement(first, record, merged=tuple(others))])
    assert [(row[0], row[2], row[3]) for row in dead_letters(backend)] == [
        (first.id, "m0", "dropped"),
        (first.id, "m1", "dropped"),
        (first.id, "m2", "dropped"),
    ]


def test_a_replay_makes_one_new_job_per_dead_letter_once(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    t0 = clock.now() - 60
    queue.enqueue([event("m1", t0), event("m2", t0, source_id="ios")], FANOUT)
    dead = {j.id: j for j in end(queue, clock, "skipped", "disabled")}

    result = queue.replay(ReplaySelection(destination_id="hook-a"), "rpl-1", clock.now())
    assert (result.jobs, dict(result.by_destination), result.already_replayed) == (2, {"hook-a": 2}, 0)
    replays = claim(queue, clock)
    assert sorted(messages := [j.events[0].message_id for j in replays]) == ["m1", "m2"], messages
    for job in replays:
        original = dead[job.replay_of or ""]
        assert (job.destination_id, job.events, job.attempts) == ("hook-a", original.events, 0)
        assert job.received_at == original.received_at == t0  # the event's receipt, not the replay's
        assert job.id not in dead
        assert not batching.is_fresh(job)  # it goes alone: its record names the job it replays
    assert {row[5] for row in dead_letters(backend) if row[1] == "hook-a"} == {"rpl-1"}
    assert {row[5] for row in dead_letters(backend) if row[1] == "hook-b"} == {None}

    # The same replay again, by mistake: nothing new, and it says why.
    again = queue.replay(ReplaySelection(destination_id="hook-a"), "rpl-2", clock.now())
    assert (again.jobs, again.already_replayed) == (0, 2)
    # Asked for: the same dead letters once more.
    forced = queue.replay(ReplaySelection(destination_id="hook-a", again=True), "rpl-3", clock.now())
    assert (forced.jobs, forced.already_replayed) == (2, 2)
    assert len(claim(queue, clock)) == 2


def test_a_replayed_job_that_fails_again_is_a_dead_letter_of_its_own(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    queue.enqueue([event("m1", clock.now() - 60, source_id="ios")], FANOUT)
    (original,) = end(queue, clock, "failed")
    queue.replay(ReplaySelection(), "rpl-1", clock.now())
    (replayed,) = end(queue, clock, "failed")
    assert replayed.replay_of == original.id
    rows = backend.query("SELECT job_id, replay_of, replay_id FROM dead_letters ORDER BY id")
    assert rows == [(original.id, None, "rpl-1"), (replayed.id, original.id, None)]
    assert queue.replay(ReplaySelection(), "rpl-2", clock.now()).jobs == 1
    # The replay of the replay names the event's first job, as the first replay did.
    (again,) = claim(queue, clock)
    assert again.replay_of == original.id


def test_filters_select_and_a_dry_run_changes_nothing(backend: Backend, queue: Queue, clock: Clock) -> None:
    t0 = clock.now() - 60
    queue.enqueue([event("a1", t0), event("b1", t0, workspace_id="beta", source_id="ios")], FANOUT)
    end(queue, clock, "failed", "auth")
    queue.enqueue([event("a2", t0 + 1, source_id="ios")], FANOUT)
    end(queue, clock, "dropped", "server")

    def count(**filters: Any) -> int:
        return queue.replay(ReplaySelection(**filters), "dry", clock.now(), dry_run=True).jobs

    assert count() == 4
    assert count(destination_id="hook-b") == 1
    assert count(workspace_id="beta") == 1
    assert count(outcomes=frozenset({"dropped"})) == 1
    assert count(error_classes=frozenset({"auth"})) == 3
    assert count(outcomes=frozenset({"skipped"})) == 0
    assert count(since=clock.now() + 3600) == 0
    assert count(until=clock.now() + 3600) == 4
    assert dead_letters(backend)[0][5] is None
    assert backend.count("jobs") == 0


def test_dead_letters_expire(backend: Backend, queue: Queue, clock: Clock) -> None:
    queue.enqueue([event("m1", clock.now() - 60)], FANOUT)
    end(queue, clock, "failed")
    assert queue.expire_dead_letters(clock.now() - 3600) == 0
    assert queue.expire_dead_letters(clock.now() + 3600) == 2
    assert dead_letters(backend) == []


def test_replays_at_once_replay_each_dead_letter_once(backend: Backend, queue: Queue, clock: Clock) -> None:
    t0 = clock.now() - 60
    queue.enqueue([event(f"m{i}", t0, source_id="ios") for i in range(300)], FANOUT)
    end(queue, clock, "failed", limit=1_000, per_destination_limit=1_000)
    # Several engines on PostgreSQL; on SQLite one engine's threads (a second open is refused).
    others = [backend.open() for _ in range(3)] if backend.name == "postgres" else []
    results: list[int] = []
    lock = threading.Lock()

    def replay(q: Queue, n: int) -> None:
        jobs = q.replay(ReplaySelection(), f"rpl-{n}", clock.now()).jobs
        with lock:
            results.append(jobs)

    queues = others or [queue] * 4
    threads = [threading.Thread(target=replay, args=(q, n)) for n, q in enumerate(queues)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for other in others:
            other.close()
    assert sum(results) == 300
    assert backend.count("jobs") == 300
