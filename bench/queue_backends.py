"""Queue benchmark: the SQLite and PostgreSQL backends side by side, in one run.

    .venv/bin/python bench/queue_backends.py [--runs 3] [--events 40000] [--jobs 20000] [--dsn postgresql://...]

ENQUEUE: `--events` events (one destination each, ~250-byte payloads, unique
messageIds) in `enqueue` calls of 100 from 4 threads at once, as the
tracking API's threads call it; events/s from the first call to the last
return, every call durable (SQLite `synchronous=FULL`; PostgreSQL with its
defaults, `fsync` and `synchronous_commit` on).

CLAIM + SETTLE: `--jobs` jobs over 32 destinations are enqueued first (not
timed); then one claimer does what the worker does with the default
configuration: `claim(limit=64, per_destination_limit=4)` and one `settle`
of every claimed job with its attempt record, until the queue is empty.

Each run uses a fresh queue (a new directory, a new database). Without
`--dsn`, a PostgreSQL server is started for the run (tests/postgres.py) on
this machine, so it shares the cores with this script. Prints the median of
`--runs` and a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's directory heads sys.path, where this file would stand in for the
# standard library's `queue` (pyarrow and psycopg-pool import it): the repository takes its place.
sys.path[0] = str(ROOT)

from delivery.queue import Event, Job, Queue, Settlement  # noqa: E402
from delivery.queue.postgres import PostgresQueue  # noqa: E402
from delivery.queue.sqlite import SqliteQueue  # noqa: E402

THREADS = 4
BATCH = 100
DESTINATIONS = 32
CLAIM_LIMIT = 64  # [engine] concurrency's default
PER_DESTINATION = 4  # half of per_destination_concurrency's default, as the worker asks


def events(n: int, received_at: float, sources: int = 1) -> list[Event]:
    made = []
    for i in range(n):
        message_id = str(uuid.uuid4())
        payload = (
            f'{{"type":"track","event":"Order Completed","userId":"user-{i % 1000}",'
            f'"messageId":"{message_id}","properties":{{"order":{i},"revenue":42.5,"currency":"EUR"}},'
            '"timestamp":"2026-12-05T10:00:00Z"}'
        ).encode()
        source = f"s{i % sources}"
        made.append(Event(message_id, "acme", source, "track", "Order Completed", payload, received_at))
    return made


def record_for(job: Job) -> dict[str, Any]:
    """A delivered first attempt, as the worker records it."""
    started = dt.datetime.now(dt.UTC)
    return {
        "attempt_id": f"a-{job.id}",
        "job_id": job.id,
        "attempt": job.attempts + 1,
        "workspace_id": "acme",
        "source_id": job.events[0].source_id,
        "destination_id": job.destination_id,
        "integration": "webhook",
        "event_count": len(job.events),
        "events": [{"message_id": e.message_id, "type": e.type, "name": e.name} for e in job.events],
        "received_at": dt.datetime.fromtimestamp(job.received_at, dt.UTC),
        "started_at": started,
        "duration_ms": 12.5,
        "status_code": 200,
        "error_class": "none",
        "error_code": "ok",
        "retryable": False,
        "outcome": "delivered",
        "retry_after_s": None,
        "next_attempt_at": None,
        "request_bytes": 250,
        "response_body": '{"ok":true}',
        "error_message": None,
        "first_error_class": None,
    }


def bench_enqueue(queue: Queue, n: int) -> float:
    """Events/s enqueued in calls of `BATCH` from `THREADS` threads."""
    fanout = {"s0": ["d0"]}
    calls = [events(BATCH, time.time()) for _ in range(n // BATCH)]
    shares = [calls[k::THREADS] for k in range(THREADS)]
    barrier = threading.Barrier(THREADS + 1)

    def work(mine: list[list[Event]]) -> None:
        barrier.wait()
        for call in mine:
            queue.enqueue(call, fanout)

    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return len(calls) * BATCH / (time.perf_counter() - start)


def bench_claim_settle(queue: Queue, n: int) -> float:
    """Jobs/s claimed and settled by one claimer, the worker's way."""
    fanout = {f"s{k}": [f"d{k}"] for k in range(DESTINATIONS)}
    for start in range(0, n, 1000):
        queue.enqueue(events(min(1000, n - start), time.time() - 60, DESTINATIONS), fanout)
    done = 0
    start = time.perf_counter()
    while jobs := queue.claim(
        "bench", time.time(), limit=CLAIM_LIMIT, per_destination_limit=PER_DESTINATION, lease_s=60
    ):
        lost = queue.settle([Settlement(job, record_for(job)) for job in jobs])
        assert not lost
        done += len(jobs)
    elapsed = time.perf_counter() - start
    assert done == n, f"settled {done} of {n}"
    return n / elapsed


@contextmanager
def postgres(dsn: str | None) -> Iterator[Callable[[], tuple[Queue, Callable[[], None]]]]:
    """Yields a function that opens a queue on a new database (and its clean-up)."""
    server = None
    if dsn is None:
        from tests.postgres import start_postgres

        server = start_postgres({"max_connections": "100", "log_min_messages": "warning"})
        dsn = server.dsn()
    import psycopg

    counter = iter(range(1_000_000))

    def fresh() -> tuple[Queue, Callable[[], None]]:
        name = f"bench_queue_{os.getpid()}_{next(counter)}"
        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        own = psycopg.conninfo.make_conninfo(dsn, dbname=name)
        queue = PostgresQueue(own, max_size=THREADS + 2)

        def drop() -> None:
            queue.close()
            with psycopg.connect(dsn, autocommit=True) as db:
                db.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

        return queue, drop

    try:
        yield fresh
    finally:
        if server is not None:
            server.stop()


def sqlite_opener(root: Path) -> Callable[[], tuple[Queue, Callable[[], None]]]:
    counter = iter(range(1_000_000))

    def fresh() -> tuple[Queue, Callable[[], None]]:
        queue = SqliteQueue(root / f"run{next(counter)}")
        return queue, queue.close

    return fresh


def measure(opener: Callable[[], tuple[Queue, Callable[[], None]]], bench: Callable[[Queue], float]) -> float:
    queue, close = opener()
    try:
        return bench(queue)
    finally:
        close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=40_000, help="events enqueued per run")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs settled per run")
    parser.add_argument("--dsn", default=None, help="a PostgreSQL server to use (default: start one)")
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores; the PostgreSQL server shares them with this script")
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp, postgres(args.dsn) as pg:
        backends = {"sqlite": sqlite_opener(Path(tmp)), "postgres": pg}
        benches: dict[str, Callable[[Queue], float]] = {
            "enqueue": lambda q: bench_enqueue(q, args.events),
            "claim+settle": lambda q: bench_claim_settle(q, args.jobs),
        }
        for run in range(args.runs):
            for what, bench in benches.items():
                for name, opener in backends.items():
                    rate = measure(opener, bench)
                    results.setdefault((what, name), []).append(rate)
                    print(f"run {run + 1}: {what:<13} {name:<8} {rate:>10,.0f}/s", file=sys.stderr)

    print()
    print("| operation | SQLite runs | median | PostgreSQL runs | median | PostgreSQL / SQLite |")
    print("|---|---|---|---|---|---|")
    for what, unit in (("enqueue", "events/s"), ("claim+settle", "jobs/s")):
        cells = []
        for name in ("sqlite", "postgres"):
            rates = results[(what, name)]
            cells += [", ".join(f"{rate:,.0f}" for rate in rates), f"**{statistics.median(rates):,.0f}**"]
        ratio = statistics.median(results[(what, "postgres")]) / statistics.median(results[(what, "sqlite")])
        print(f"| {what} ({unit}) | {' | '.join(cells)} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
