"""The exporter moves committed attempt records from the outbox to Parquet exactly once.

In-process tests stop the protocol at each step with the exporter's
`after_step` seam; the kill tests run a real engine-like loop in a child
process (enqueue, claim, complete, export) and SIGKILL it at chosen moments,
then restart it, and finally check that the Parquet log holds every
committed record exactly once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import glob
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from delivery.exporter import Exporter, batch_stem, export_until
from delivery.queue import Event, Job
from delivery.queue.sqlite import SqliteQueue
from ingest.files import attempts_glob, attempts_root
from ingest.logstore import open_store
from ingest.rollup import out_of_step, rollup_root
from ingest.schema import ATTEMPT_SCHEMA, rows_to_table
from ingest.writer import write_partitioned
from tests.ingest.rows import attempt_row

REPO = Path(__file__).resolve().parents[2]
T0 = 1_790_000_000.0
#: Records on both sides of an hour boundary, so a batch is published as two files.
LATE = dt.datetime(2026, 3, 9, 22, 59, 59, tzinfo=dt.UTC)
#: Safety net against a hung child, not a measurement.
DEADLINE_S = 15.0


class Stop(Exception):
    """Raised by the `after_step` seam: the exporter "dies" at that step."""


@pytest.fixture
def queue(tmp_path: Path):
    q = SqliteQueue(tmp_path)
    yield q
    q.close()


def committed(queue: SqliteQueue, n: int, start: int = 0) -> list[dict[str, Any]]:
    """Enqueue `n` events, deliver them, and return the records now in the outbox."""
    events = [Event(f"m{i}", "acme", "web", "track", "Tick", b"{}", T0 + i) for i in range(start, start + n)]
    queue.enqueue(events, {"web": ["hook"]})
    records = []
    for k, job in enumerate(queue.claim("w", T0 + n + start, limit=n, per_destination_limit=n, lease_s=30)):
        record = record_for(job, start + k)
        queue.complete(job, record, T0)
        records.append(record)
    return records


def record_for(job: Job, n: int) -> dict[str, Any]:
    return attempt_row(
        n,
        LATE + dt.timedelta(seconds=n % 2),
        attempt_id=f"att-{n:06d}",
        job_id=job.id,
        destination_id=job.destination_id,
        events=[{"message_id": e.message_id, "type": e.type, "name": e.name} for e in job.events],
    )


def logged(log: str | Path) -> list[dict[str, Any]]:
    """Every record in the Parquet log at `log` (a directory or s3:// URL), read by DuckDB, by attempt_id."""
    store = open_store(log)
    if not store.has_files("attempts/date="):
        return []
    con = duckdb.connect()
    store.register(con)
    table = con.sql(
        "SELECT * FROM read_parquet($glob, hive_partitioning = false) ORDER BY attempt_id",
        params={"glob": store.path("attempts/date=*/hour=*/*.parquet")},
    ).to_arrow_table()
    assert table.schema.names == ATTEMPT_SCHEMA.names
    return table.to_pylist()


def as_logged(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`records` as the log holds them (Parquet types, attempt_id order)."""
    return rows_to_table(sorted(records, key=lambda r: r["attempt_id"])).to_pylist()


def test_the_log_holds_exactly_the_outbox_records(queue: SqliteQueue, tmp_path: Path) -> None:
    records = committed(queue, 40)
    exporter = Exporter(queue, tmp_path)
    assert exporter.run_once() == 40
    assert logged(tmp_path) == as_logged(records)
    # One file per hour the batch spans, named after the batch.
    assert len(exporter.files_written) == 2
    assert {p.parent.name for p in exporter.files_written} == {"hour=22", "hour=23"}
    assert len({p.name.split("-")[1] for p in exporter.files_written}) == 1
    assert all(p.name.startswith("outbox-") for p in exporter.files_written)
    assert queue.depth().outbox_rows == 0

    assert exporter.run_once() == 0  # nothing new: no new file
    assert len(glob.glob(attempts_glob(tmp_path))) == 2


def test_large_outboxes_go_in_several_batches(queue: SqliteQueue, tmp_path: Path) -> None:
    records = committed(queue, 25)
    exporter = Exporter(queue, tmp_path, batch_rows=10)
    assert exporter.run_once() == 25
    assert logged(tmp_path) == as_logged(records)
    assert len({p.name.split("-")[1] for p in exporter.files_written}) == 3  # batches of 10, 10, 5


@pytest.mark.parametrize("step", ["batched", "published"])
def test_a_batch_interrupted_at_any_step_is_finished_once(
    queue: SqliteQueue, tmp_path: Path, step: str
) -> None:
    records = committed(queue, 12)

    def fail_at(name: str) -> None:
        if name == step:
            raise Stop(name)

    with pytest.raises(Stop):
        Exporter(queue, tmp_path, after_step=fail_at).run_once()
    later = committed(queue, 5, start=12)  # committed while the batch was open
    assert len(logged(tmp_path)) == (12 if step == "published" else 0)

    assert Exporter(queue, tmp_path).run_once() == (5 if step == "published" else 17)
    assert logged(tmp_path) == as_logged(records + later)


def test_a_batch_an_earlier_release_cut_between_its_files_publishes_only_the_rest(
    queue: SqliteQueue, tmp_path: Path
) -> None:
    records = committed(queue, 12)
    batch = queue.outbox_batch(100)
    assert batch is not None
    # What a crash after the first of the batch's two files left behind, named as releases
    # before the object store named them (a random id after the batch's).
    first_hour = [r for r in batch.rows if r["started_at"].hour == 22]
    write_partitioned(rows_to_table(first_hour), tmp_path, prefix=f"{batch_stem(batch.batch_id)}-")

    exporter = Exporter(queue, tmp_path)
    assert exporter.run_once() == 12 - len(first_hour) == 6
    assert [p.parent.name for p in exporter.files_written] == ["hour=23"]
    assert logged(tmp_path) == as_logged(records)


def test_export_until_runs_on_an_interval_and_flushes_at_the_end(queue: SqliteQueue, tmp_path: Path) -> None:
    exporter = Exporter(queue, tmp_path)
    records = committed(queue, 3)

    async def engine() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(export_until(exporter, 0.02, stop))
        # Exported by the interval, not the final flush: stop is not set yet.
        # Polled, not slept: on a busy machine one export can take longer than any fixed sleep.
        deadline = time.monotonic() + 30
        while len(logged(tmp_path)) < 3:
            assert time.monotonic() < deadline, "the interval export never ran"
            await asyncio.sleep(0.01)
        assert len(logged(tmp_path)) == 3
        records.extend(await asyncio.to_thread(committed, queue, 2, 3))
        stop.set()
        await task

    asyncio.run(engine())
    assert logged(tmp_path) == as_logged(records)


def test_export_until_first_repairs_the_rollups_a_stopped_writer_left_out(
    queue: SqliteQueue, tmp_path: Path
) -> None:
    # A writer stopped between an attempt file and its rollups: the engine's exporter repairs
    # that when it starts (readers never write). Old enough to be out of the writers' grace.
    (path,) = write_partitioned(rows_to_table([attempt_row(0, LATE)]), tmp_path)
    lost = rollup_root(tmp_path, "outcomes") / path.relative_to(attempts_root(tmp_path))
    lost.unlink()
    os.utime(path, (T0, T0))
    exporter = Exporter(queue, tmp_path)

    async def engine() -> None:
        stop = asyncio.Event()
        stop.set()
        await export_until(exporter, 0.02, stop)

    asyncio.run(engine())
    assert lost.is_file()


# --- kill -9 ---

CHILD = r"""
import datetime as dt, itertools, os, signal, sys, time
from delivery.exporter import Exporter
from delivery.queue import Event
from delivery.queue.sqlite import SqliteQueue
from tests.ingest.rows import attempt_row

data_dir, log, run, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
kill_step, _, kill_nth = kill_at.partition(":")
late = dt.datetime(2026, 3, 9, 22, 59, 59, tzinfo=dt.UTC)
seen = {}

def count(step):
    seen[step] = seen.get(step, 0) + 1
    if step == kill_step and seen[step] == int(kill_nth):
        os.kill(os.getpid(), signal.SIGKILL)

queue = SqliteQueue(data_dir)
queue.recover(time.time())
exporter = Exporter(queue, log, after_step=count)
if kill_step == "file":  # after the n-th attempt file is published, before its rollups
    store_type = type(exporter.store)
    publish = store_type.publish
    def publish_and_count(self, key, *args, **kwargs):
        written = publish(self, key, *args, **kwargs)
        if key.startswith("attempts/"):
            count("file")
        return written
    store_type.publish = publish_and_count
records = 0
for i in itertools.count():
    now = time.time()
    if kill_at != "drain":
        queue.enqueue([Event(f"{run}-{i:05d}", "acme", "web", "track", "Tick", b"{}", now)],
                      {"web": ["hook-1", "hook-2"]})
        print("enqueued", i + 1, flush=True)
    jobs = queue.claim("child", now, limit=4, per_destination_limit=2, lease_s=60)
    if kill_at == "drain" and not jobs:
        break
    for job in jobs:
        record = attempt_row(
            0, late + dt.timedelta(seconds=records % 2), attempt_id=f"{run}-{records:05d}",
            job_id=job.id, destination_id=job.destination_id,
            events=[{"message_id": e.message_id, "type": e.type, "name": e.name} for e in job.events],
        )
        queue.complete(job, record, now)
        records += 1
        print("recorded", records, flush=True)
    if i % 5 == 4:
        exporter.run_once()
exporter.run_once()
"""


def start_child(data_dir: Path, log: str, run: str, kill_at: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), log, run, kill_at],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_child(
    data_dir: Path, log: str, run: str, kill_at: str, kill_after_records: int | None = None
) -> dict[str, int]:
    """Run one child to its end (its own SIGKILL, ours, or a clean exit); return its last printed counts."""
    counts = {"enqueued": 0, "recorded": 0}
    deadline = time.monotonic() + DEADLINE_S
    with start_child(data_dir, log, run, kill_at) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            what, n = line.split()
            counts[what] = int(n)
            if kill_after_records is not None and counts["recorded"] >= kill_after_records:
                os.kill(proc.pid, signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"child {run} never reached its moment")
        # The rest through the same reader: lines it read ahead are in its buffer, which
        # `communicate` (reading the pipe itself) would lose. The child is dead or ending: EOF.
        out = proc.stdout.read()
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        proc.wait(timeout=DEADLINE_S)
    # What it printed after the line that made us kill it, before the kill landed: on a busy
    # machine the child commits and prints a record or two more meanwhile.
    for line in out.splitlines():
        what, n = line.split()
        counts[what] = int(n)
    expected = 0 if kill_at == "drain" else -signal.SIGKILL
    assert proc.returncode == expected, stderr
    return counts


def open_batch_files(data_dir: Path, log: str) -> tuple[bool, int]:
    """Whether an exporter batch was left open, and how many attempt files it already published."""
    queue = SqliteQueue(data_dir)
    try:
        batch = queue.outbox_batch(10_000)  # resumes an open batch; opening a new one is harmless
        if batch is None or not batch.resumed:
            return False, 0
        stem = batch_stem(batch.batch_id)
        return True, sum(
            stored.key.rpartition("/")[2].startswith(stem) for stored in open_store(log).list("attempts/")
        )
    finally:
        queue.close()


@pytest.mark.parametrize("where", ["local disk", "object store"])
def test_kill_9_at_every_step_loses_and_duplicates_nothing(
    tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    data_dir = tmp_path / "data"
    log = str(data_dir) if where == "local disk" else request.getfixturevalue("s3_log")
    printed: dict[str, dict[str, int]] = {}

    # At an arbitrary moment of the loop (we kill it from outside).
    printed["a"] = run_child(data_dir, log, "a", "none", kill_after_records=25)
    # Right after a batch was taken, before anything was published.
    printed["b"] = run_child(data_dir, log, "b", "batched:2")
    assert open_batch_files(data_dir, log) == (True, 0)
    # After the first of a batch's two attempt files, before its rollups and the second file.
    printed["c"] = run_child(data_dir, log, "c", "file:3")
    assert open_batch_files(data_dir, log) == (True, 1)
    # After publishing, before the acknowledgement.
    printed["d"] = run_child(data_dir, log, "d", "published:2")
    assert open_batch_files(data_dir, log) == (True, 2)
    # Again from outside, soon after a restart that resumed the open batch.
    printed["e"] = run_child(data_dir, log, "e", "none", kill_after_records=3)
    # A clean run settles every job left and exports everything.
    printed["f"] = run_child(data_dir, log, "f", "drain")

    # The resumed batches wrote the rollups their files lacked: every file has each of its rollups.
    assert out_of_step(log, grace_s=0).files == 0
    records = logged(log)
    ids = [r["attempt_id"] for r in records]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    by_run = Counter(attempt_id.split("-")[0] for attempt_id in ids)
    for run, counts in printed.items():
        # A run's records are a gapless prefix: one past the last print if it died in between.
        written = by_run[run]
        assert written - counts["recorded"] in (0, 1), (run, written, counts)
        assert sorted(i for i in ids if i.startswith(f"{run}-")) == [f"{run}-{k:05d}" for k in range(written)]

    # Every event enqueued (by a commit, printed or not) was delivered once to each destination.
    deliveries = Counter((e["message_id"], r["destination_id"]) for r in records for e in r["events"])
    assert set(deliveries.values()) == {1}
    events = Counter(message_id for message_id, _ in deliveries)
    assert set(events.values()) == {2}
    for run, counts in printed.items():
        enqueued = sorted(m for m in events if m.startswith(f"{run}-"))
        assert len(enqueued) - counts["enqueued"] in (0, 1), (run, counts)
        assert enqueued == [f"{run}-{k:05d}" for k in range(len(enqueued))]

    queue = SqliteQueue(data_dir)
    depth = queue.depth()
    queue.close()
    assert (depth.by_state, depth.outbox_rows) == ({"pending": 0, "leased": 0}, 0)
    assert all(pq.read_schema(p).names == ATTEMPT_SCHEMA.names for p in glob.glob(attempts_glob(data_dir)))
