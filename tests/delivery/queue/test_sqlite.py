"""The embedded queue over real SQLite files: life of a job, de-duplication, fairness, leases, outbox."""

from __future__ import annotations

import datetime as dt
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from delivery.queue import (
    DEDUP_WINDOW_S,
    Event,
    Job,
    JobState,
    LeaseLost,
    QueueError,
    Settlement,
    decode_record,
    encode_record,
)
from delivery.queue.sqlite import LOCK_FILE, MIGRATIONS, QUEUE_FILE, SqliteQueue
from ingest.ids import new_id
from ingest.schema import SchemaError
from tests.ingest.rows import attempt_row

T0 = 1_790_000_000.0  # epoch seconds: every clock in these tests is explicit
FANOUT = {"web": ["hook-a", "hook-b"], "ios": ["hook-a"]}


def event(message_id: str, received_at: float = T0, source_id: str = "web", **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "message_id": message_id,
        "workspace_id": "acme",
        "source_id": source_id,
        "type": "track",
        "name": "Order Completed",
        "payload": f'{{"messageId": "{message_id}", "event": "Order Completed"}}'.encode(),
        "received_at": received_at,
    }
    fields.update(overrides)
    return Event(**fields)


def record_for(job: Job, n: int = 0, **overrides: Any) -> dict[str, Any]:
    """An attempt record for `job`: delivered first attempt unless overridden."""
    started = dt.datetime.fromtimestamp(job.received_at, dt.UTC) + dt.timedelta(seconds=1)
    return attempt_row(
        n,
        started,
        attempt_id=f"att-{job.id}-{n}",
        job_id=job.id,
        destination_id=job.destination_id,
        received_at=dt.datetime.fromtimestamp(job.received_at, dt.UTC),
        events=[{"message_id": e.message_id, "type": e.type, "name": e.name} for e in job.events],
        **overrides,
    )


@pytest.fixture
def queue(tmp_path: Path):
    q = SqliteQueue(tmp_path)
    yield q
    q.close()


def claim(queue: SqliteQueue, owner: str = "w1", now: float = T0, **limits: Any) -> list[Job]:
    options = {"limit": 100, "per_destination_limit": 100, "lease_s": 30.0, **limits}
    return queue.claim(owner, now, **options)


def outbox(queue: SqliteQueue) -> list[dict[str, Any]]:
    """The outbox's records, read without opening a batch."""
    with sqlite3.connect(queue.path) as db:
        return [decode_record(text) for (text,) in db.execute("SELECT record FROM outbox ORDER BY id")]


def table_count(queue: SqliteQueue, table: str) -> int:
    with sqlite3.connect(queue.path) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# --- storage ---


def test_the_database_is_a_wal_file_under_data_dir_at_the_latest_schema(tmp_path: Path) -> None:
    SqliteQueue(tmp_path).close()
    with sqlite3.connect(tmp_path / QUEUE_FILE) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    reopened = SqliteQueue(tmp_path)  # migrations already ran: nothing to redo
    assert reopened.depth().by_state == {"pending": 0, "leased": 0}
    reopened.close()


def test_a_database_from_newer_code_is_refused(tmp_path: Path) -> None:
    SqliteQueue(tmp_path).close()
    with sqlite3.connect(tmp_path / QUEUE_FILE) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(QueueError, match="schema version"):
        SqliteQueue(tmp_path)


def test_synchronous_is_full_by_default_and_only_full_or_normal(queue: SqliteQueue, tmp_path: Path) -> None:
    assert queue._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    with pytest.raises(ValueError, match="synchronous"):
        SqliteQueue(tmp_path, synchronous="OFF")


# --- one engine per data directory ---

_HOLD = """
import sys, time
from delivery.queue.sqlite import SqliteQueue
queue = SqliteQueue(sys.argv[1])
print("open", flush=True)
time.sleep(600)
"""


def test_a_second_open_of_one_data_directory_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    first = SqliteQueue(tmp_path)
    with pytest.raises(QueueError, match="another engine uses this data directory"):
        SqliteQueue(tmp_path)
    first.close()
    SqliteQueue(tmp_path).close()
    assert (tmp_path / LOCK_FILE).exists()  # left behind, harmlessly: the lock, not the file, counts


def test_another_process_is_refused_while_one_holds_the_directory_and_admitted_once_it_is_killed(
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-c", _HOLD, str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "open\n"
            with pytest.raises(QueueError) as refused:
                SqliteQueue(tmp_path)
            message = str(refused.value)
            assert str(tmp_path) in message
            assert f"process {holder.pid}" in message
            assert 'several engines need [queue] backend = "postgres"' in message
            holder.send_signal(signal.SIGKILL)  # no chance to close anything: the kernel drops the lock
            holder.wait(timeout=30)
        finally:
            holder.kill()
    reopened = SqliteQueue(tmp_path)
    assert reopened.depth().by_state == {"pending": 0, "leased": 0}
    reopened.close()


def test_a_queue_that_cannot_open_leaves_the_directory_free(tmp_path: Path) -> None:
    SqliteQueue(tmp_path).close()
    with sqlite3.connect(tmp_path / QUEUE_FILE) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(QueueError, match="schema version"):
        SqliteQueue(tmp_path)
    with sqlite3.connect(tmp_path / QUEUE_FILE) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    SqliteQueue(tmp_path).close()  # the refused open let go of the lock


# --- enqueue ---


def test_lifecycle_enqueue_claim_complete(queue: SqliteQueue) -> None:
    accepted = queue.enqueue([event("m1"), event("m2", source_id="ios")], FANOUT)
    assert accepted == ["m1", "m2"]
    depth = queue.depth()
    assert depth.by_state == {"pending": 3, "leased": 0}
    assert depth.by_destination == {
        "hook-a": {"pending": 2, "leased": 0},
        "hook-b": {"pending": 1, "leased": 0},
    }

    jobs = claim(queue)
    assert sorted((j.destination_id, j.events[0].message_id) for j in jobs) == [
        ("hook-a", "m1"),
        ("hook-a", "m2"),
        ("hook-b", "m1"),
    ]
    job = next(j for j in jobs if j.destination_id == "hook-b")
    assert job.events == (event("m1"),)  # the payload and every field come back as stored
    assert (job.state, job.attempts, job.lease_owner) == (JobState.LEASED, 0, "w1")
    assert job.lease_expires_at == T0 + 30.0
    assert job.received_at == T0
    assert queue.depth().by_state == {"pending": 0, "leased": 3}

    records = [record_for(j, n) for n, j in enumerate(jobs)]
    for j, record in zip(jobs, records, strict=True):
        queue.complete(j, record, T0 + 1)
    assert queue.depth().by_state == {"pending": 0, "leased": 0}
    assert outbox(queue) == records
    # Finished jobs are gone, and with the last of them each event's payload.
    assert [table_count(queue, t) for t in ("jobs", "job_events", "events")] == [0, 0, 0]


def test_job_ids_are_unique_time_ordered_ids(queue: SqliteQueue) -> None:
    before = new_id()
    queue.enqueue([event(f"m{i}") for i in range(1_000)], FANOUT)
    queue.enqueue([event(f"n{i}") for i in range(1_000)], FANOUT)
    after = new_id()
    with sqlite3.connect(queue.path) as db:
        ids = [job_id for (job_id,) in db.execute("SELECT id FROM jobs")]
    assert len(ids) == len(set(ids)) == 4_000
    assert all(re.fullmatch("[0-9A-HJKMNP-TV-Z]{26}", job_id) for job_id in ids)
    # The first 10 characters are the millisecond, as `new_id` makes them.
    assert all(before[:10] <= job_id[:10] <= after[:10] for job_id in ids)


def test_a_payload_stays_until_its_last_job_is_done(queue: SqliteQueue) -> None:
    queue.enqueue([event("m1")], FANOUT)
    first, second = claim(queue)
    queue.complete(first, record_for(first), T0)
    assert table_count(queue, "events") == 1
    queue.complete(second, record_for(second), T0)
    assert table_count(queue, "events") == 0


def test_a_source_without_destinations_is_acknowledged_and_stores_nothing(queue: SqliteQueue) -> None:
    assert queue.enqueue([event("m1", source_id="server")], FANOUT) == ["m1"]
    assert table_count(queue, "events") == 0
    assert claim(queue) == []
    assert queue.enqueue([event("m1", source_id="server")], FANOUT) == []  # still de-duplicated


def test_message_ids_are_deduplicated_per_source_for_24_hours(queue: SqliteQueue) -> None:
    assert queue.enqueue([event("m1")], FANOUT) == ["m1"]
    assert queue.enqueue([event("m1", T0 + DEDUP_WINDOW_S - 1)], FANOUT) == []
    assert queue.enqueue([event("m1", T0 + 10, source_id="ios")], FANOUT) == ["m1"]  # another source
    # Within one call too: the second copy is the duplicate.
    assert queue.enqueue([event("m2", T0 + 20), event("m2", T0 + 21)], FANOUT) == ["m2"]
    assert queue.depth().by_state["pending"] == 2 + 1 + 2
    # 24 hours after the first sighting it is a new event again.
    assert queue.enqueue([event("m1", T0 + DEDUP_WINDOW_S)], FANOUT) == ["m1"]
    assert queue.depth().by_state["pending"] == 7


def test_expired_dedup_entries_are_pruned(queue: SqliteQueue) -> None:
    queue.enqueue([event(f"m{i}") for i in range(5)], FANOUT)
    queue.enqueue([event("late", T0 + DEDUP_WINDOW_S + 1)], FANOUT)
    assert table_count(queue, "dedup") == 1


# --- claim ---


def test_claim_is_oldest_first_and_fair_per_destination(queue: SqliteQueue) -> None:
    busy = {"busy": ["hook-busy"], "quiet": ["hook-quiet"], "rare": ["hook-rare"]}
    queue.enqueue([event(f"b{i}", T0 + i, source_id="busy") for i in range(50)], busy)
    queue.enqueue([event(f"q{i}", T0 + 10 + i, source_id="quiet") for i in range(3)], busy)
    queue.enqueue([event(f"r{i}", T0 + 100 + i, source_id="rare") for i in range(2)], busy)
    now = T0 + 1000

    jobs = claim(queue, now=now, limit=20, per_destination_limit=4)
    assert Counter(j.destination_id for j in jobs) == {"hook-busy": 4, "hook-quiet": 3, "hook-rare": 2}
    assert [j.due_at for j in jobs] == sorted(j.due_at for j in jobs)
    assert [j.events[0].message_id for j in jobs if j.destination_id == "hook-busy"] == [
        "b0",
        "b1",
        "b2",
        "b3",
    ]

    # `limit` caps the total, keeping the oldest of each destination's share.
    jobs = claim(queue, "w2", now=now, limit=3, per_destination_limit=4)
    assert [j.events[0].message_id for j in jobs] == ["b4", "b5", "b6"]


def test_claim_leaves_out_excluded_destinations(queue: SqliteQueue) -> None:
    fanout = {"busy": ["hook-busy"], "quiet": ["hook-quiet"], "rare": ["hook-rare"]}
    queue.enqueue([event(f"b{i}", T0 + i, source_id="busy") for i in range(5)], fanout)
    queue.enqueue([event(f"q{i}", T0 + 10 + i, source_id="quiet") for i in range(3)], fanout)
    queue.enqueue([event(f"r{i}", T0 + 100 + i, source_id="rare") for i in range(2)], fanout)

    # `limit` destinations still come back although the oldest one is excluded.
    jobs = claim(queue, limit=1, per_destination_limit=4, exclude={"hook-busy"}, now=T0 + 1000)
    assert [j.events[0].message_id for j in jobs] == ["q0"]
    jobs = claim(queue, limit=10, per_destination_limit=4, exclude=["hook-busy", "hook-quiet"], now=T0 + 1000)
    assert [j.events[0].message_id for j in jobs] == ["r0", "r1"]
    jobs = claim(queue, limit=10, per_destination_limit=4, exclude=(), now=T0 + 1000)
    assert Counter(j.destination_id for j in jobs) == {"hook-busy": 4, "hook-quiet": 2}


def test_claim_takes_only_due_jobs(queue: SqliteQueue) -> None:
    queue.enqueue([event("now", T0), event("later", T0 + 60)], {"web": ["hook-a"]})
    assert [j.events[0].message_id for j in claim(queue, now=T0 + 1, lease_s=3600)] == ["now"]
    assert claim(queue, now=T0 + 59) == []
    assert [j.events[0].message_id for j in claim(queue, now=T0 + 60)] == ["later"]


def test_claim_with_nothing_to_do(queue: SqliteQueue) -> None:
    assert claim(queue) == []
    queue.enqueue([event("m1")], FANOUT)
    assert claim(queue, limit=0) == []


def test_concurrent_claims_never_hand_a_job_to_two_workers(queue: SqliteQueue) -> None:
    queue.enqueue([event(f"m{i}") for i in range(300)], FANOUT)
    taken: dict[str, list[str]] = {}

    def work(owner: str) -> None:
        taken[owner] = []
        while jobs := claim(queue, owner, limit=7, per_destination_limit=5):
            for job in jobs:
                queue.complete(job, record_for(job), T0)
                taken[owner].append(job.id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [job_id for owned in taken.values() for job_id in owned]
    assert len(ids) == len(set(ids)) == 600
    assert len(outbox(queue)) == 600


def test_concurrent_enqueues_share_commits_and_deduplicate_exactly_across_threads(
    queue: SqliteQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Six threads (the default executor's size on 2 cores) x 40 calls x 10 events,
    # drawn from 600 message ids: every id is sent by several calls at once.
    groups: list[int] = []
    commit_group = queue._commit_group

    def slow_commit(group: list[Any]) -> None:
        groups.append(len(group))
        time.sleep(0.002)  # hold the lead long enough for others to queue behind it
        commit_group(group)

    monkeypatch.setattr(queue, "_commit_group", slow_commit)
    returned: list[list[str]] = []
    lock = threading.Lock()

    def work(seed: int) -> None:
        for call in range(40):
            ids = [f"m{(seed * 97 + call * 31 + k * 7) % 600}" for k in range(10)]
            accepted = queue.enqueue([event(i) for i in ids] + [event(ids[0])], FANOUT)
            with lock:
                returned.append(accepted)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(returned) == sum(groups) == 240  # every call answered, each in exactly one commit
    assert max(groups) > 1 and len(groups) < 240  # and calls did share commits
    accepted = [message_id for call in returned for message_id in call]
    assert len(accepted) == len(set(accepted))  # no id accepted twice, across calls or within one
    sent = {
        f"m{(seed * 97 + call * 31 + k * 7) % 600}"
        for seed in range(6)
        for call in range(40)
        for k in range(10)
    }
    assert set(accepted) == sent
    assert table_count(queue, "events") == len(sent)
    assert table_count(queue, "jobs") == 2 * len(sent)
    with sqlite3.connect(queue.path) as db:
        stored = sorted(row[0] for row in db.execute("SELECT message_id FROM events"))
    assert stored == sorted(sent)


def test_a_failing_enqueue_in_a_group_is_rolled_back_alone(queue: SqliteQueue) -> None:
    class Broken(dict[str, list[str]]):
        def get(self, *args: Any) -> Any:
            raise RuntimeError("broken fan-out")

    good = queue._commit_group  # drive one group by hand: a good call, a broken one, a good one
    from delivery.queue.sqlite import _Enqueue

    calls = [
        _Enqueue([event("a"), event("b")], FANOUT),
        _Enqueue([event("c"), event("a", received_at=T0 + 1)], Broken()),
        _Enqueue([event("c"), event("b", received_at=T0 + 1)], FANOUT),
    ]
    good(calls)
    assert all(call.done for call in calls)
    assert calls[0].accepted == ["a", "b"] and calls[0].error is None
    assert isinstance(calls[1].error, RuntimeError) and calls[1].accepted == []
    assert calls[2].accepted == ["c"]  # "c" of the broken call was rolled back; "b" is a duplicate
    assert table_count(queue, "events") == 3
    assert table_count(queue, "dedup") == 3


# --- reschedule ---


def test_reschedule_counts_the_attempt_and_waits_for_the_due_time(queue: SqliteQueue) -> None:
    queue.enqueue([event("m1")], {"web": ["hook-a"]})
    (job,) = claim(queue)
    retry = record_for(job, outcome="retry", status_code=503, error_class="server", error_code="503")
    queue.reschedule(job, retry, T0 + 30)
    assert queue.depth().by_state == {"pending": 1, "leased": 0}
    assert claim(queue, now=T0 + 29) == []
    (again,) = claim(queue, now=T0 + 30)
    assert (again.id, again.attempts, again.due_at, again.received_at) == (job.id, 1, T0 + 30, T0)
    assert again.lease_token != job.lease_token
    queue.complete(again, record_for(again, 1, attempt=2), T0 + 31)
    assert [r["attempt"] for r in outbox(queue)] == [1, 2]


# --- leases ---


def test_a_lapsed_lease_goes_to_the_next_claim_and_the_old_holder_is_refused(queue: SqliteQueue) -> None:
    queue.enqueue([event("m1")], {"web": ["hook-a"]})
    (mine,) = claim(queue, "w1", now=T0, lease_s=10)
    assert claim(queue, "w2", now=T0 + 9.9) == []  # still held
    (theirs,) = claim(queue, "w2", now=T0 + 10, lease_s=10)
    assert theirs.id == mine.id and theirs.lease_owner == "w2"

    with pytest.raises(LeaseLost):
        queue.complete(mine, record_for(mine), T0 + 11)
    with pytest.raises(LeaseLost):
        queue.reschedule(mine, record_for(mine, outcome="retry"), T0 + 60)
    assert outbox(queue) == []  # nothing written
    assert queue.depth().by_destination == {"hook-a": {"pending": 0, "leased": 1}}

    queue.complete(theirs, record_for(theirs, 7), T0 + 12)
    assert [r["attempt_id"] for r in outbox(queue)] == [f"att-{theirs.id}-7"]


def test_a_lapsed_lease_nobody_took_is_still_the_holders(queue: SqliteQueue) -> None:
    queue.enqueue([event("m1")], {"web": ["hook-a"]})
    (job,) = claim(queue, lease_s=10)
    queue.complete(job, record_for(job), T0 + 60)
    assert len(outbox(queue)) == 1


def test_completing_twice_is_refused(queue: SqliteQueue) -> None:
    queue.enqueue([event("m1")], {"web": ["hook-a"]})
    (job,) = claim(queue)
    queue.complete(job, record_for(job), T0)
    with pytest.raises(LeaseLost):
        queue.complete(job, record_for(job, 1), T0)
    assert len(outbox(queue)) == 1


def test_release_gives_back_only_the_owners_leases(queue: SqliteQueue) -> None:
    queue.enqueue([event("m1"), event("m2")], {"web": ["hook-a"]})
    (mine,) = claim(queue, "w1", limit=1)
    (theirs,) = claim(queue, "w2", limit=1)
    assert queue.release("w1") == 1
    (again,) = claim(queue, "w3", now=T0 + 1)  # claimable at once, not at the lease's end
    assert again.id == mine.id
    with pytest.raises(LeaseLost):
        queue.complete(mine, record_for(mine), T0 + 1)
    queue.complete(theirs, record_for(theirs), T0 + 1)


def test_recover_frees_the_leases_of_a_dead_process(tmp_path: Path) -> None:
    before = SqliteQueue(tmp_path)
    before.enqueue([event("m1"), event("m2")], FANOUT)
    claimed = claim(before, "dead-worker", lease_s=3600)
    before.close()  # the process "dies" holding four leases

    after = SqliteQueue(tmp_path)
    assert claim(after, "w1", now=T0 + 1) == []
    assert after.recover(T0 + 1) == 4
    jobs = claim(after, "w1", now=T0 + 1)
    assert sorted(j.id for j in jobs) == sorted(j.id for j in claimed)
    after.close()


# --- settle many at once ---


def test_settle_applies_each_change_and_skips_lost_leases(queue: SqliteQueue) -> None:
    queue.enqueue([event("m1"), event("m2"), event("m3")], {"web": ["hook-a"]})
    claimed = claim(queue, lease_s=10)
    (taken,) = claim(queue, "w2", now=T0 + 10, limit=1)  # one lapsed lease changes hands
    lost = next(j for j in claimed if j.id == taken.id)
    done, retried = (j for j in claimed if j is not lost)
    records = [record_for(done), record_for(lost), record_for(retried, outcome="retry")]
    settled = queue.settle(
        [Settlement(done, records[0]), Settlement(lost, records[1]), Settlement(retried, records[2], T0 + 99)]
    )
    assert settled == [lost]
    assert outbox(queue) == [records[0], records[2]]
    assert queue.depth().by_state == {"pending": 1, "leased": 1}


def test_one_settle_group_releases_an_event_that_two_finished_jobs_shared(queue: SqliteQueue) -> None:
    queue.enqueue([event("m1"), event("m2")], FANOUT)  # two jobs per event
    jobs = claim(queue)
    m1_jobs = [j for j in jobs if j.events[0].message_id == "m1"]
    m2_job = next(j for j in jobs if j.events[0].message_id == "m2")
    settlements = [Settlement(j, record_for(j)) for j in (*m1_jobs, m2_job)]
    assert queue.settle(settlements) == []
    # m1 lost both references in one group; m2 keeps the one of its unfinished job.
    with sqlite3.connect(queue.path) as db:
        assert db.execute("SELECT message_id, refs FROM events").fetchall() == [("m2", 1)]
    assert table_count(queue, "jobs") == 1
    assert [r["job_id"] for r in outbox(queue)] == [s.job.id for s in settlements]


def test_a_settle_group_writes_nothing_for_a_merged_job_whose_lease_was_lost(queue: SqliteQueue) -> None:
    queue.enqueue([event("m1"), event("m2"), event("m3")], {"web": ["hook-a"]})
    first, second, third = claim(queue, lease_s=10)
    (taken,) = claim(queue, "w2", now=T0 + 10, limit=1)
    assert taken.id == first.id  # the oldest lapsed lease changed hands
    records = [record_for(second), record_for(third)]
    lost = queue.settle([Settlement(second, records[0], merged=(first,)), Settlement(third, records[1])])
    assert lost == [second]
    assert outbox(queue) == [records[1]]
    assert queue.depth().by_state == {"pending": 0, "leased": 2}


def test_the_outbox_keeps_a_non_finite_number_readable(queue: SqliteQueue) -> None:
    # orjson writes NaN as null; such a record takes the json module's way in and out.
    queue.enqueue([event("m1")], {"web": ["hook-a"]})
    (job,) = claim(queue)
    queue.complete(job, record_for(job, duration_ms=float("inf")), T0)
    batch = queue.outbox_batch(10)
    assert batch is not None
    assert batch.rows[0]["duration_ms"] == float("inf")


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
    queue: SqliteQueue, override: dict[str, Any], error: type[Exception], message: str
) -> None:
    queue.enqueue([event("m1")], {"web": ["hook-a"]})
    (job,) = claim(queue)
    with pytest.raises(error, match=message):
        queue.complete(job, record_for(job) | override, T0)
    assert outbox(queue) == []
    assert queue.depth().by_state == {"pending": 0, "leased": 1}


def test_records_round_trip_through_the_outbox_form() -> None:
    started = dt.datetime(2026, 3, 9, 23, 59, 59, 999_999, tzinfo=dt.UTC)
    record = attempt_row(
        1,
        started,
        status_code=None,
        error_class="network",
        error_code="ECONNRESET",
        error_message="connexion réinitialisée",
        next_attempt_at=started + dt.timedelta(seconds=30),
        retry_after_s=1.5,
        outcome="retry",
        duration_ms=0.1,
        events=[{"message_id": "m", "type": "identify", "name": None}],
    )
    assert decode_record(encode_record(record)) == record
    # orjson writes NaN as null: such a record takes the json module's way, both ways.
    assert decode_record(encode_record(record | {"retry_after_s": float("inf")}))["retry_after_s"] == float(
        "inf"
    )
    offset = dt.timezone(dt.timedelta(hours=2))
    assert decode_record(encode_record(record | {"started_at": started.astimezone(offset)})) == record


def test_outbox_batches_are_resumed_until_acknowledged(queue: SqliteQueue) -> None:
    queue.enqueue([event(f"m{i}") for i in range(5)], {"web": ["hook-a"]})
    jobs = claim(queue)
    records = [record_for(j, n) for n, j in enumerate(jobs)]
    for job, record in zip(jobs[:3], records, strict=False):
        queue.complete(job, record, T0)

    batch = queue.outbox_batch(2)
    assert batch is not None
    assert (batch.rows, batch.resumed) == (records[:2], False)
    for job, record in zip(jobs[3:], records[3:], strict=True):
        queue.complete(job, record, T0)  # committed after the batch was taken: not in it
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


# --- the first request's class (first_error_class) ---


def test_a_retried_job_remembers_its_first_requests_class(queue: SqliteQueue) -> None:
    queue.enqueue([event("m1", source_id="ios")], FANOUT)
    (job,) = claim(queue)
    assert job.first_error_class is None
    first = record_for(job, outcome="retry", error_class="server", first_error_class="server")
    queue.reschedule(job, first, T0 + 10)
    (job,) = claim(queue, now=T0 + 10)
    assert (job.attempts, job.first_error_class) == (1, "server")
    # A later failure of another class does not change it.
    second = record_for(job, 1, attempt=2, outcome="retry", error_class="timeout", first_error_class="server")
    queue.reschedule(job, second, T0 + 20)
    (job,) = claim(queue, now=T0 + 20)
    assert (job.attempts, job.first_error_class) == (2, "server")


def test_a_queue_file_from_before_first_error_class_is_migrated(tmp_path: Path) -> None:
    # The schema as migration 2 left it, with a job retried once under it.
    with sqlite3.connect(tmp_path / QUEUE_FILE) as db:
        for statements in MIGRATIONS[:2]:
            for statement in statements:
                db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.execute(
            "INSERT INTO events VALUES (1, 'm1', 'acme', 'web', 'track', 'Order Completed', ?, ?, 1)",
            (b'{"messageId": "m1"}', T0),
        )
        db.execute(
            "INSERT INTO jobs (id, destination_id, state, attempts, due_at, available_at, received_at) "
            "VALUES ('01OLDJOB', 'hook-a', 'pending', 1, ?, ?, ?)",
            (T0, T0, T0),
        )
        db.execute("INSERT INTO job_events VALUES ('01OLDJOB', 0, 1)")
    queue = SqliteQueue(tmp_path)
    try:
        with sqlite3.connect(queue.path) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        (job,) = claim(queue)
        # Its first request's class was never kept: its later records say NULL.
        assert (job.id, job.attempts, job.first_error_class) == ("01OLDJOB", 1, None)
        queue.complete(job, record_for(job, attempt=2, first_error_class=None), T0 + 1)
        assert [r["first_error_class"] for r in outbox(queue)] == [None]
        assert queue.depth().by_state == {"pending": 0, "leased": 0}
    finally:
        queue.close()
