"""The `Queue` protocol, every backend through the same cases: life of a job, de-duplication,
fairness, batches, leases, settlements, the outbox.

Each case runs on SQLite (a file in `tmp_path`) and on PostgreSQL (a fresh
database of the session's server). Time is the `Clock`'s: SQLite judges it by
the `now` each call is given, so waiting is instant; PostgreSQL judges it by
the database's clock, so leases that must lapse are short and the test sleeps.
What only one backend does is tested in `test_sqlite.py` and `test_postgres.py`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from delivery import batching
from delivery.queue import DEDUP_WINDOW_S, Job, JobState, LeaseLost, Queue, Settlement
from delivery.queue.postgres import PostgresQueue
from delivery.queue.sqlite import QUEUE_FILE, SqliteQueue
from ingest.ids import new_id
from ingest.schema import SchemaError
from tests.delivery.queue.helpers import (
    FANOUT,
    Backend,
    Clock,
    enqueue_concurrently,
    event,
    postgres_query,
    record_for,
    sqlite_query,
)

#: A lease short enough to wait out, long enough to outlast the calls that follow it.
SHORT_LEASE_S = 0.3


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        query = sqlite_query(tmp_path / QUEUE_FILE)
        tested = Backend("sqlite", lambda: SqliteQueue(tmp_path), query, Clock(virtual=True))
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        query = postgres_query(dsn)
        tested = Backend("postgres", lambda: PostgresQueue(dsn, max_size=8), query, Clock(virtual=False))
    try:
        yield tested
    finally:
        tested.queue.close()


@pytest.fixture
def queue(backend: Backend) -> Queue:
    return backend.queue


@pytest.fixture
def clock(backend: Backend) -> Clock:
    return backend.clock


def claim(queue: Queue, clock: Clock, owner: str = "w1", **options: Any) -> list[Job]:
    options = {"limit": 100, "per_destination_limit": 100, "lease_s": 30.0, **options}
    return queue.claim(owner, clock.now(), **options)


def messages(jobs: list[Job]) -> list[str]:
    return [j.events[0].message_id for j in jobs]


# --- enqueue ---


def test_lifecycle_enqueue_claim_complete(backend: Backend, queue: Queue, clock: Clock) -> None:
    t0 = clock.now() - 60
    accepted = queue.enqueue([event("m1", t0), event("m2", t0, source_id="ios")], FANOUT)
    assert accepted == ["m1", "m2"]
    depth = queue.depth()
    assert depth.by_state == {"pending": 3, "leased": 0}
    assert depth.by_destination == {
        "hook-a": {"pending": 2, "leased": 0},
        "hook-b": {"pending": 1, "leased": 0},
    }

    before = clock.now()
    jobs = claim(queue, clock)
    after = clock.now()
    assert sorted((j.destination_id, j.events[0].message_id) for j in jobs) == [
        ("hook-a", "m1"),
        ("hook-a", "m2"),
        ("hook-b", "m1"),
    ]
    job = next(j for j in jobs if j.destination_id == "hook-b")
    assert job.events == (event("m1", t0),)  # the payload and every field come back as stored
    assert (job.state, job.attempts, job.lease_owner) == (JobState.LEASED, 0, "w1")
    assert job.lease_expires_at is not None
    assert before + 30 - 1e-3 <= job.lease_expires_at <= after + 30 + 1e-3
    assert job.received_at == job.due_at == t0
    assert queue.depth().by_state == {"pending": 0, "leased": 3}

    records = [record_for(j, n) for n, j in enumerate(jobs)]
    for j, record in zip(jobs, records, strict=True):
        queue.complete(j, record, clock.now())
    assert queue.depth().by_state == {"pending": 0, "leased": 0}
    assert backend.outbox() == records
    # Finished jobs are gone, and with the last of them each event's payload.
    assert [backend.count(t) for t in ("jobs", "events")] == [0, 0]


def test_job_ids_are_unique_time_ordered_ids(backend: Backend, queue: Queue, clock: Clock) -> None:
    before = new_id()
    queue.enqueue([event(f"m{i}", clock.now()) for i in range(1_000)], FANOUT)
    queue.enqueue([event(f"n{i}", clock.now()) for i in range(1_000)], FANOUT)
    after = new_id()
    ids = [job_id for (job_id,) in backend.query("SELECT id FROM jobs")]
    assert len(ids) == len(set(ids)) == 4_000
    assert all(re.fullmatch("[0-9A-HJKMNP-TV-Z]{26}", job_id) for job_id in ids)
    # The first 10 characters are the millisecond, as `new_id` makes them.
    assert all(before[:10] <= job_id[:10] <= after[:10] for job_id in ids)


def test_a_payload_stays_until_its_last_job_is_done(backend: Backend, queue: Queue, clock: Clock) -> None:
    queue.enqueue([event("m1", clock.now())], FANOUT)
    first, second = claim(queue, clock)
    queue.complete(first, record_for(first), clock.now())
    assert backend.count("events") == 1
    queue.complete(second, record_for(second), clock.now())
    assert backend.count("events") == 0


def test_a_source_without_destinations_is_acknowledged_and_stores_nothing(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    assert queue.enqueue([event("m1", clock.now(), source_id="server")], FANOUT) == ["m1"]
    assert backend.count("events") == 0
    assert claim(queue, clock) == []
    assert queue.enqueue([event("m1", clock.now(), source_id="server")], FANOUT) == []  # still de-duplicated


def test_message_ids_are_deduplicated_per_source_for_24_hours(queue: Queue, clock: Clock) -> None:
    t0 = clock.now()
    assert queue.enqueue([event("m1", t0)], FANOUT) == ["m1"]
    assert queue.enqueue([event("m1", t0 + DEDUP_WINDOW_S - 1)], FANOUT) == []
    assert queue.enqueue([event("m1", t0 + 10, source_id="ios")], FANOUT) == ["m1"]  # another source
    # Within one call too: the second copy is the duplicate.
    assert queue.enqueue([event("m2", t0 + 20), event("m2", t0 + 21)], FANOUT) == ["m2"]
    assert queue.depth().by_state["pending"] == 2 + 1 + 2
    # 24 hours after the first sighting it is a new event again.
    assert queue.enqueue([event("m1", t0 + DEDUP_WINDOW_S)], FANOUT) == ["m1"]
    assert queue.depth().by_state["pending"] == 7


def test_expired_dedup_entries_are_pruned(backend: Backend, queue: Queue, clock: Clock) -> None:
    t0 = clock.now()
    queue.enqueue([event(f"m{i}", t0) for i in range(5)], FANOUT)
    queue.enqueue([event("late", t0 + DEDUP_WINDOW_S + 1)], FANOUT)
    assert backend.count("dedup") == 1


def test_concurrent_enqueues_deduplicate_exactly_across_threads(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    returned, sent = enqueue_concurrently(queue, clock.now())
    assert len(returned) == 240
    accepted = [message_id for call in returned for message_id in call]
    assert len(accepted) == len(set(accepted))  # no id accepted twice, across calls or within one
    assert set(accepted) == sent
    assert backend.count("events") == len(sent)
    assert backend.count("jobs") == 2 * len(sent)
    assert sorted(row[0] for row in backend.query("SELECT message_id FROM events")) == sorted(sent)


# --- claim ---


def test_claim_is_oldest_first_and_fair_per_destination(queue: Queue, clock: Clock) -> None:
    t0 = clock.now() - 1000
    busy = {"busy": ["hook-busy"], "quiet": ["hook-quiet"], "rare": ["hook-rare"]}
    queue.enqueue([event(f"b{i}", t0 + i, source_id="busy") for i in range(50)], busy)
    queue.enqueue([event(f"q{i}", t0 + 10 + i, source_id="quiet") for i in range(3)], busy)
    queue.enqueue([event(f"r{i}", t0 + 100 + i, source_id="rare") for i in range(2)], busy)

    jobs = claim(queue, clock, limit=20, per_destination_limit=4)
    assert Counter(j.destination_id for j in jobs) == {"hook-busy": 4, "hook-quiet": 3, "hook-rare": 2}
    assert [j.due_at for j in jobs] == sorted(j.due_at for j in jobs)
    assert messages([j for j in jobs if j.destination_id == "hook-busy"]) == ["b0", "b1", "b2", "b3"]

    # `limit` caps the total, keeping the oldest of each destination's share.
    jobs = claim(queue, clock, "w2", limit=3, per_destination_limit=4)
    assert messages(jobs) == ["b4", "b5", "b6"]


def test_claim_leaves_out_excluded_destinations(queue: Queue, clock: Clock) -> None:
    t0 = clock.now() - 1000
    fanout = {"busy": ["hook-busy"], "quiet": ["hook-quiet"], "rare": ["hook-rare"]}
    queue.enqueue([event(f"b{i}", t0 + i, source_id="busy") for i in range(5)], fanout)
    queue.enqueue([event(f"q{i}", t0 + 10 + i, source_id="quiet") for i in range(3)], fanout)
    queue.enqueue([event(f"r{i}", t0 + 100 + i, source_id="rare") for i in range(2)], fanout)

    # `limit` destinations still come back although the oldest one is excluded.
    jobs = claim(queue, clock, limit=1, per_destination_limit=4, exclude={"hook-busy"})
    assert messages(jobs) == ["q0"]
    jobs = claim(queue, clock, limit=10, per_destination_limit=4, exclude=["hook-busy", "hook-quiet"])
    assert messages(jobs) == ["r0", "r1"]
    jobs = claim(queue, clock, limit=10, per_destination_limit=4, exclude=())
    assert Counter(j.destination_id for j in jobs) == {"hook-busy": 4, "hook-quiet": 2}


def test_claim_takes_only_due_jobs(queue: Queue, clock: Clock) -> None:
    now = clock.now()
    queue.enqueue(
        [event("past", now - 1), event("soon", now + SHORT_LEASE_S), event("later", now + 3600)],
        {"web": ["hook-a"]},
    )
    first = messages(claim(queue, clock, lease_s=3600))
    assert "past" in first and "later" not in first
    clock.sleep(SHORT_LEASE_S)
    second = messages(claim(queue, clock, lease_s=3600))
    assert sorted(first + second) == ["past", "soon"]


def test_claim_with_nothing_to_do(queue: Queue, clock: Clock) -> None:
    assert claim(queue, clock) == []
    queue.enqueue([event("m1", clock.now())], FANOUT)
    assert claim(queue, clock, limit=0) == []


def test_concurrent_claims_never_hand_a_job_to_two_workers(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    queue.enqueue([event(f"m{i}", clock.now() - 1) for i in range(300)], FANOUT)
    taken: dict[str, list[str]] = {}

    def work(owner: str) -> None:
        taken[owner] = []
        while jobs := claim(queue, clock, owner, limit=7, per_destination_limit=5):
            for job in jobs:
                queue.complete(job, record_for(job), clock.now())
                taken[owner].append(job.id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [job_id for owned in taken.values() for job_id in owned]
    assert len(ids) == len(set(ids)) == 600
    assert len(backend.outbox()) == 600


# --- batches ---


def test_a_claim_counts_requests_for_batching_destinations(queue: Queue, clock: Clock) -> None:
    t0 = clock.now() - 10
    queue.enqueue([event(f"m{i}", t0 + i / 100) for i in range(25)], {"web": ["d", "one"]})
    options: dict[str, Any] = {"per_destination_limit": 2, "lease_s": 60, "batches": {"d": 10}}
    jobs = claim(queue, clock, "w", limit=100, **options)
    counts = {d: sum(j.destination_id == d for j in jobs) for d in ("d", "one")}
    assert counts == {"d": 20, "one": 2}  # two requests each: 2 x 10 events, and 2 single events
    # `limit` counts requests too, and `limits` lowers one destination's share (a metered one).
    queue.release("w")
    jobs = claim(queue, clock, "w", limit=1, exclude=["one"], **options)
    assert len(jobs) == 10
    queue.release("w")
    jobs = claim(queue, clock, "w", limit=100, limits={"d": 1, "one": 1}, **options)
    assert [j.destination_id for j in jobs].count("d") == 10
    assert [j.destination_id for j in jobs].count("one") == 1


def test_a_batching_destination_lingers_from_its_oldest_due_job(queue: Queue, clock: Clock) -> None:
    options: dict[str, Any] = {"limit": 10, "per_destination_limit": 2, "lease_s": 60, "batches": {"d": 10}}
    queue.enqueue([event("fresh", clock.now())], {"web": ["d"]})
    assert claim(queue, clock, "w", linger_s=600, **options) == []  # waits for others to join
    assert claim(queue, clock, "w", **options) != []  # without lingering it goes at once
    queue.release("w")
    # An older job makes the destination's oldest one 700 s old: both go now, in one request's worth.
    queue.enqueue([event("old", clock.now() - 700)], {"web": ["d"]})
    assert sorted(messages(claim(queue, clock, "w", linger_s=600, **options))) == ["fresh", "old"]


def test_a_retried_batch_is_one_job_with_every_event(backend: Backend, queue: Queue, clock: Clock) -> None:
    t0 = clock.now() - 100
    queue.enqueue([event(f"m{i}", t0 + i) for i in range(3)], {"web": ["d"]})
    claimed = claim(queue, clock, "w", limit=1, per_destination_limit=1, batches={"d": 10})
    combined = batching.combine(claimed)
    retry = record_for(combined, outcome="retry")
    assert queue.settle([Settlement(combined, retry, clock.now() - 1, tuple(claimed[1:]))]) == []
    (again,) = claim(queue, clock, "w", limit=10, per_destination_limit=10, batches={"d": 10})
    assert (again.id, again.attempts, again.received_at) == (claimed[0].id, 1, t0)
    assert [e.message_id for e in again.events] == ["m0", "m1", "m2"]
    assert queue.settle([Settlement(again, record_for(again, 2))]) == []
    assert queue.depth().by_state == {JobState.PENDING: 0, JobState.LEASED: 0}
    assert [backend.count(t) for t in ("jobs", "events")] == [0, 0]
    assert [row["event_count"] for row in backend.outbox()] == [3, 3]


def test_a_batch_with_one_lost_lease_writes_nothing(backend: Backend, queue: Queue, clock: Clock) -> None:
    queue.enqueue([event(f"m{i}", clock.now() - 1) for i in range(2)], {"web": ["d"]})
    options: dict[str, Any] = {"limit": 1, "per_destination_limit": 1, "batches": {"d": 10}}
    first, second = claim(queue, clock, "a", lease_s=SHORT_LEASE_S, **options)
    clock.sleep(SHORT_LEASE_S)
    assert len(claim(queue, clock, "b", lease_s=60, **options)) == 2  # takes both
    combined = batching.combine([first, second])
    assert queue.settle([Settlement(combined, record_for(combined), None, (second,))]) == [combined]
    assert backend.outbox() == []
    assert queue.depth().by_state == {JobState.PENDING: 0, JobState.LEASED: 2}


def test_release_gives_back_only_the_jobs_named(queue: Queue, clock: Clock) -> None:
    queue.enqueue([event(f"m{i}", clock.now() - 1) for i in range(3)], {"web": ["d"]})
    jobs = claim(queue, clock, "w", limit=3, per_destination_limit=3)
    assert queue.release("w", jobs[1:]) == 2
    assert queue.release("other", jobs[:1]) == 0
    assert queue.depth().by_state == {JobState.PENDING: 2, JobState.LEASED: 1}


# --- reschedule ---


def test_reschedule_counts_the_attempt_and_waits_for_the_due_time(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    t0 = clock.now() - 100
    queue.enqueue([event("m1", t0), event("m2", t0)], {"web": ["hook-a"]})
    later, soon = claim(queue, clock)
    retry = {"outcome": "retry", "status_code": 503, "error_class": "server", "error_code": "503"}
    due_soon = clock.now() + SHORT_LEASE_S
    queue.reschedule(later, record_for(later, **retry), clock.now() + 3600)
    queue.reschedule(soon, record_for(soon, **retry), due_soon)
    assert queue.depth().by_state == {"pending": 2, "leased": 0}
    assert later.id not in [j.id for j in claim(queue, clock)]
    clock.sleep(SHORT_LEASE_S)
    (again,) = claim(queue, clock)
    assert (again.id, again.attempts, again.due_at, again.received_at) == (soon.id, 1, due_soon, t0)
    assert again.lease_token != soon.lease_token
    queue.complete(again, record_for(again, 1, attempt=2), clock.now())
    assert [r["attempt"] for r in backend.outbox()] == [1, 1, 2]


def test_a_retried_job_remembers_its_first_requests_class(queue: Queue, clock: Clock) -> None:
    queue.enqueue([event("m1", clock.now() - 100, source_id="ios")], FANOUT)
    (job,) = claim(queue, clock)
    assert job.first_error_class is None
    first = record_for(job, outcome="retry", error_class="server", first_error_class="server")
    queue.reschedule(job, first, clock.now() - 1)
    (job,) = claim(queue, clock)
    assert (job.attempts, job.first_error_class) == (1, "server")
    # A later failure of another class does not change it.
    second = record_for(job, 1, attempt=2, outcome="retry", error_class="timeout", first_error_class="server")
    queue.reschedule(job, second, clock.now() - 1)
    (job,) = claim(queue, clock)
    assert (job.attempts, job.first_error_class) == (2, "server")


# --- leases ---


def test_a_lapsed_lease_goes_to_the_next_claim_and_the_old_holder_is_refused(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    queue.enqueue([event("m1", clock.now() - 1)], {"web": ["hook-a"]})
    (mine,) = claim(queue, clock, "w1", lease_s=SHORT_LEASE_S)
    clock.sleep(SHORT_LEASE_S)
    (theirs,) = claim(queue, clock, "w2", lease_s=30)
    assert theirs.id == mine.id and theirs.lease_owner == "w2"
    assert claim(queue, clock, "w3") == []  # and now held again

    with pytest.raises(LeaseLost):
        queue.complete(mine, record_for(mine), clock.now())
    with pytest.raises(LeaseLost):
        queue.reschedule(mine, record_for(mine, outcome="retry"), clock.now() + 60)
    assert backend.outbox() == []  # nothing written
    assert queue.depth().by_destination == {"hook-a": {"pending": 0, "leased": 1}}

    queue.complete(theirs, record_for(theirs, 7), clock.now())
    assert [r["attempt_id"] for r in backend.outbox()] == [f"att-{theirs.id}-7"]


def test_a_live_lease_is_not_claimed(queue: Queue, clock: Clock) -> None:
    queue.enqueue([event("m1", clock.now() - 1)], {"web": ["hook-a"]})
    (job,) = claim(queue, clock, "w1", lease_s=30)
    clock.sleep(SHORT_LEASE_S)
    assert claim(queue, clock, "w2") == []
    queue.complete(job, record_for(job), clock.now())


def test_a_lapsed_lease_nobody_took_is_still_the_holders(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    queue.enqueue([event("m1", clock.now() - 1)], {"web": ["hook-a"]})
    (job,) = claim(queue, clock, lease_s=SHORT_LEASE_S)
    clock.sleep(SHORT_LEASE_S)
    queue.complete(job, record_for(job), clock.now())
    assert len(backend.outbox()) == 1


def test_completing_twice_is_refused(backend: Backend, queue: Queue, clock: Clock) -> None:
    queue.enqueue([event("m1", clock.now() - 1)], {"web": ["hook-a"]})
    (job,) = claim(queue, clock)
    queue.complete(job, record_for(job), clock.now())
    with pytest.raises(LeaseLost):
        queue.complete(job, record_for(job, 1), clock.now())
    assert len(backend.outbox()) == 1


def test_release_gives_back_only_the_owners_leases(queue: Queue, clock: Clock) -> None:
    queue.enqueue([event("m1", clock.now() - 2), event("m2", clock.now() - 1)], {"web": ["hook-a"]})
    (mine,) = claim(queue, clock, "w1", limit=1)
    (theirs,) = claim(queue, clock, "w2", limit=1)
    assert queue.release("w1") == 1
    (again,) = claim(queue, clock, "w3")  # claimable at once, not at the lease's end
    assert again.id == mine.id
    with pytest.raises(LeaseLost):
        queue.complete(mine, record_for(mine), clock.now())
    queue.complete(theirs, record_for(theirs), clock.now())


def test_recover_frees_the_lapsed_leases_of_a_dead_process(backend: Backend, clock: Clock) -> None:
    backend.queue.enqueue([event("m1", clock.now() - 1), event("m2", clock.now() - 1)], FANOUT)
    claimed = claim(backend.queue, clock, "dead-worker", lease_s=SHORT_LEASE_S)
    clock.sleep(SHORT_LEASE_S)
    after = backend.reopen()  # the process "died" holding four leases, which lapsed since
    assert after.recover(clock.now()) == 4
    assert after.depth().by_state == {"pending": 4, "leased": 0}
    jobs = claim(after, clock, "w1")
    assert sorted(j.id for j in jobs) == sorted(j.id for j in claimed)


# --- settle many at once ---


def test_settle_applies_each_change_and_skips_lost_leases(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    t0 = clock.now() - 100
    queue.enqueue([event("m1", t0), event("m2", t0), event("m3", t0)], {"web": ["hook-a"]})
    claimed = claim(queue, clock, lease_s=SHORT_LEASE_S)
    clock.sleep(SHORT_LEASE_S)
    (taken,) = claim(queue, clock, "w2", limit=1)  # one lapsed lease changes hands
    lost = next(j for j in claimed if j.id == taken.id)
    done, retried = (j for j in claimed if j is not lost)
    records = [record_for(done), record_for(lost), record_for(retried, outcome="retry")]
    settled = queue.settle(
        [
            Settlement(done, records[0]),
            Settlement(lost, records[1]),
            Settlement(retried, records[2], clock.now() + 99),
        ]
    )
    assert settled == [lost]
    assert backend.outbox() == [records[0], records[2]]
    assert queue.depth().by_state == {"pending": 1, "leased": 1}


def test_one_settle_group_releases_an_event_that_two_finished_jobs_shared(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    queue.enqueue([event("m1", clock.now() - 1), event("m2", clock.now() - 1)], FANOUT)  # two jobs per event
    jobs = claim(queue, clock)
    m1_jobs = [j for j in jobs if j.events[0].message_id == "m1"]
    m2_job = next(j for j in jobs if j.events[0].message_id == "m2")
    settlements = [Settlement(j, record_for(j)) for j in (*m1_jobs, m2_job)]
    assert queue.settle(settlements) == []
    # m1 lost both references in one group; m2 keeps the one of its unfinished job.
    assert backend.query("SELECT message_id, refs FROM events") == [("m2", 1)]
    assert backend.count("jobs") == 1
    assert [r["job_id"] for r in backend.outbox()] == [s.job.id for s in settlements]


def test_a_settle_group_writes_nothing_for_a_merged_job_whose_lease_was_lost(
    backend: Backend, queue: Queue, clock: Clock
) -> None:
    t0 = clock.now() - 100
    queue.enqueue([event("m1", t0), event("m2", t0), event("m3", t0)], {"web": ["hook-a"]})
    first, second, third = claim(queue, clock, lease_s=SHORT_LEASE_S)
    clock.sleep(SHORT_LEASE_S)
    (taken,) = claim(queue, clock, "w2", limit=1)
    assert taken.id == first.id  # the oldest lapsed lease changed hands
    records = [record_for(second), record_for(third)]
    lost = queue.settle([Settlement(second, records[0], merged=(first,)), Settlement(third, records[1])])
    assert lost == [second]
    assert backend.outbox() == [records[1]]
    assert queue.depth().by_state == {"pending": 0, "leased": 2}


def test_settling_nothing_is_nothing(queue: Queue) -> None:
    assert queue.settle([]) == []


# --- the records the outbox keeps ---


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ({"surprise": 1}, SchemaError, "unknown attempt column"),
        ({"outcome": None}, SchemaError, "'outcome' is required"),
        ({"status_code": "200"}, SchemaError, "'status_code' cannot hold"),
        ({"status_code": 70_000}, SchemaError, "'status_code' cannot hold"),  # SMALLINT
        ({"retryable": 1}, SchemaError, "'retryable' cannot hold"),
        ({"started_at": dt.datetime(2026, 1, 1)}, SchemaError, "'started_at' cannot hold"),  # naive
        ({"events": [{"message_id": 5}]}, SchemaError, "'events' cannot hold"),
        ({"job_id": "another"}, ValueError, "record is for job"),
    ],
)
def test_a_record_that_breaks_the_contract_is_refused_and_nothing_is_written(
    backend: Backend,
    queue: Queue,
    clock: Clock,
    override: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    queue.enqueue([event("m1", clock.now() - 1)], {"web": ["hook-a"]})
    (job,) = claim(queue, clock)
    with pytest.raises(error, match=message):
        queue.complete(job, record_for(job) | override, clock.now())
    assert backend.outbox() == []
    assert queue.depth().by_state == {"pending": 0, "leased": 1}


def test_the_outbox_keeps_a_non_finite_number_readable(queue: Queue, clock: Clock) -> None:
    # orjson writes NaN as null; such a record takes the json module's way in and out.
    queue.enqueue([event("m1", clock.now() - 1)], {"web": ["hook-a"]})
    (job,) = claim(queue, clock)
    queue.complete(job, record_for(job, duration_ms=float("inf")), clock.now())
    batch = queue.outbox_batch(10)
    assert batch is not None
    assert batch.rows[0]["duration_ms"] == float("inf")


def test_outbox_batches_are_resumed_until_acknowledged(queue: Queue, clock: Clock) -> None:
    queue.enqueue([event(f"m{i}", clock.now() - 10 + i) for i in range(5)], {"web": ["hook-a"]})
    jobs = claim(queue, clock)
    records = [record_for(j, n) for n, j in enumerate(jobs)]
    for job, record in zip(jobs[:3], records, strict=False):
        queue.complete(job, record, clock.now())

    batch = queue.outbox_batch(2)
    assert batch is not None
    assert (batch.rows, batch.resumed, len(batch)) == (records[:2], False, 2)
    for job, record in zip(jobs[3:], records[3:], strict=True):
        queue.complete(job, record, clock.now())  # committed after the batch was taken: not in it
    again = queue.outbox_batch(10)
    assert again is not None
    assert (again.batch_id, again.rows, again.resumed) == (batch.batch_id, records[:2], True)

    assert queue.outbox_ack(batch.batch_id) == 2
    rest = queue.outbox_batch(10)
    assert rest is not None
    assert (rest.rows, rest.resumed) == (records[2:], False)
    assert rest.batch_id != batch.batch_id
    assert queue.depth().outbox_rows == 3
    queue.outbox_ack(rest.batch_id)
    assert queue.outbox_batch(10) is None
    assert queue.depth().outbox_rows == 0
    assert queue.outbox_ack(rest.batch_id) == 0  # acknowledged twice: nothing left to delete
