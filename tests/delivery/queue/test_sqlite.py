"""The embedded queue, what only it does: the file, its lock, group commit, recovery, migrations.

What every backend does is in `test_contract.py`, which runs on SQLite too.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from delivery.queue import Job, QueueError, decode_record
from delivery.queue.sqlite import LOCK_FILE, MIGRATIONS, QUEUE_FILE, SqliteQueue
from tests.delivery.queue.helpers import FANOUT, enqueue_concurrently, event, record_for

T0 = 1_790_000_000.0  # epoch seconds: every clock in these tests is explicit


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteQueue]:
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


def test_a_python_linking_an_sqlite_older_than_the_schema_needs_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.34.1")
    with pytest.raises(
        QueueError, match=r"needs SQLite 3\.35\.5 or later; this Python links SQLite 3\.34\.1"
    ):
        SqliteQueue(tmp_path)
    monkeypatch.undo()
    SqliteQueue(tmp_path).close()  # the refused open left the directory free


def test_synchronous_is_full_by_default_and_only_full_or_normal(queue: SqliteQueue, tmp_path: Path) -> None:
    assert queue._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    with pytest.raises(ValueError, match="synchronous"):
        SqliteQueue(tmp_path, synchronous="OFF")


# --- claims ---


def test_a_claim_if_idle_claims_at_once_and_gives_way_to_a_transaction_under_way(
    queue: SqliteQueue,
) -> None:
    queue.enqueue([event("m1", T0), event("m2", T0)], FANOUT)
    options: dict[str, Any] = {"limit": 100, "per_destination_limit": 100, "lease_s": 30.0}
    other = sqlite3.connect(queue.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process writing (the engine's exporter)
        started = time.monotonic()
        assert queue.claim_if_idle("w1", T0, **options) is None
        assert time.monotonic() - started < 5  # not the busy timeout's 10 s
        other.execute("ROLLBACK")
        claimed = queue.claim_if_idle("w1", T0, **options)
        assert claimed is not None and len(claimed) == 4
        # Committed: another connection sees the leases.
        assert other.execute("SELECT count(*) FROM jobs WHERE state = 'leased'").fetchone() == (4,)
    finally:
        other.close()
    # What it changed for its own transaction is back as it was.
    assert queue._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert queue._db.execute("PRAGMA busy_timeout").fetchone() == (10_000,)
    assert queue._db.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
    assert queue.claim_if_idle("w1", T0, **options) == []


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


# --- group commit ---


def test_concurrent_enqueues_share_commits_and_deduplicate_exactly_across_threads(
    queue: SqliteQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    commit_group = queue._commit_group

    def slow_commit(group: list[Any]) -> None:
        groups.append(len(group))
        time.sleep(0.002)  # hold the lead long enough for others to queue behind it
        commit_group(group)

    monkeypatch.setattr(queue, "_commit_group", slow_commit)
    returned, sent = enqueue_concurrently(queue, T0)

    assert len(returned) == sum(groups) == 240  # every call answered, each in exactly one commit
    assert max(groups) > 1 and len(groups) < 240  # and calls did share commits
    accepted = [message_id for call in returned for message_id in call]
    assert len(accepted) == len(set(accepted))  # no id accepted twice, across calls or within one
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
        _Enqueue([event("a", T0), event("b", T0)], FANOUT),
        _Enqueue([event("c", T0), event("a", T0 + 1)], Broken()),
        _Enqueue([event("c", T0), event("b", T0 + 1)], FANOUT),
    ]
    good(calls)
    assert all(call.done for call in calls)
    assert calls[0].accepted == ["a", "b"] and calls[0].error is None
    assert isinstance(calls[1].error, RuntimeError) and calls[1].accepted == []
    assert calls[2].accepted == ["c"]  # "c" of the broken call was rolled back; "b" is a duplicate
    assert table_count(queue, "events") == 3
    assert table_count(queue, "dedup") == 3


# --- recovery: every lease is a dead process's ---


def test_recover_frees_every_lease_in_the_file_lapsed_or_not(tmp_path: Path) -> None:
    before = SqliteQueue(tmp_path)
    before.enqueue([event("m1", T0), event("m2", T0)], FANOUT)
    claimed = claim(before, "dead-worker", lease_s=3600)
    before.close()  # the process "dies" holding four leases

    after = SqliteQueue(tmp_path)
    assert claim(after, "w1", now=T0 + 1) == []
    assert after.recover(T0 + 1) == 4
    jobs = claim(after, "w1", now=T0 + 1)
    assert sorted(j.id for j in jobs) == sorted(j.id for j in claimed)
    after.close()


# --- migrations ---


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


def test_an_outbox_batch_open_before_batches_had_their_own_table_is_resumed(tmp_path: Path) -> None:
    # Five records from a current queue, copied into a file at migration 4, the first three
    # in a batch that an exporter took and never acknowledged (each record marked).
    current = SqliteQueue(tmp_path / "current")
    try:
        current.enqueue([event(f"m{i}", T0 - 10 + i) for i in range(5)], {"web": ["hook-a"]})
        for n, job in enumerate(claim(current)):
            current.complete(job, record_for(job, n), T0)
        texts = [
            text for (text,) in sqlite3.connect(current.path).execute("SELECT record FROM outbox ORDER BY id")
        ]
    finally:
        current.close()
    with sqlite3.connect(tmp_path / QUEUE_FILE) as db:
        for statements in MIGRATIONS[:4]:
            for statement in statements:
                db.execute(statement)
        db.execute("PRAGMA user_version = 4")
        for i, text in enumerate(texts, start=1):
            db.execute("INSERT INTO outbox VALUES (?, ?, ?)", (i, "01OLDBATCH" if i <= 3 else None, text))
    queue = SqliteQueue(tmp_path)
    try:
        records = [decode_record(text) for text in texts]
        batch = queue.outbox_batch(10)
        assert batch is not None
        assert (batch.batch_id, batch.rows, batch.resumed) == ("01OLDBATCH", records[:3], True)
        assert queue.outbox_ack("01OLDBATCH") == 3
        rest = queue.outbox_batch(10)
        assert rest is not None
        assert (rest.rows, rest.resumed) == (records[3:], False)
        assert queue.outbox_ack(rest.batch_id) == 2
        assert queue.outbox_batch(10) is None
    finally:
        queue.close()


def test_records_written_after_the_outbox_emptied_form_a_batch_of_their_own(queue: SqliteQueue) -> None:
    # Ids may start again once the outbox is empty: a batch must still be what it was taken as.
    queue.enqueue([event(f"m{i}", T0 - 10 + i) for i in range(4)], {"web": ["hook-a"]})
    jobs = claim(queue)
    queue.complete(jobs[0], record_for(jobs[0], 0), T0)
    first = queue.outbox_batch(10)
    assert first is not None
    assert queue.outbox_ack(first.batch_id) == 1
    for n, job in enumerate(jobs[1:], start=1):
        queue.complete(job, record_for(job, n), T0)
    second = queue.outbox_batch(2)
    assert second is not None
    assert [r["attempt_id"] for r in second.rows] == [
        record_for(j, n)["attempt_id"] for n, j in enumerate(jobs[1:3], 1)
    ]
    assert queue.outbox_ack(first.batch_id) == 0  # an acknowledged batch's id deletes nothing later
    assert queue.outbox_ack(second.batch_id) == 2
    (third_row,) = queue.outbox_batch(10).rows  # type: ignore[union-attr]
    assert third_row["attempt_id"] == record_for(jobs[3], 3)["attempt_id"]


def test_a_batch_acknowledged_by_another_exporter_before_its_records_were_read_reads_none(
    queue: SqliteQueue, tmp_path: Path
) -> None:
    # An engine killed while its exporter's process runs on, and the next engine's exporter: two
    # exporters on one outbox. One takes a batch; before it reads the records, the other resumes
    # the batch, publishes and acknowledges it, and the engine writes new records, whose ids start
    # again at 1 in the emptied outbox.
    other = SqliteQueue(tmp_path, lock=False)
    try:
        queue.enqueue([event(f"m{i}", T0 - 10 + i) for i in range(4)], {"web": ["hook-a"]})
        jobs = claim(queue)
        records = [record_for(job, n) for n, job in enumerate(jobs)]
        for job, record in zip(jobs[:2], records[:2], strict=True):
            queue.complete(job, record, T0)
        taken = queue._take_batch(10)
        assert taken is not None
        batch_id, last_id, _ = taken
        resumed = other.outbox_batch(10)
        assert resumed is not None
        assert (resumed.batch_id, resumed.rows) == (batch_id, records[:2])
        assert other.outbox_ack(batch_id) == 2
        for job, record in zip(jobs[2:], records[2:], strict=True):
            queue.complete(job, record, T0)

        assert queue._batch_lines(batch_id, last_id) == ""  # not the new records under the old batch's name
        assert queue.outbox_ack(batch_id) == 0
        later = queue.outbox_batch(10)
        assert later is not None
        assert (later.rows, later.resumed) == (records[2:], False)
    finally:
        other.close()
