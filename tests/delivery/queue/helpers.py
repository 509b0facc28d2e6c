"""What the queue tests build: events, attempt records, and each backend behind one test interface."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from delivery.queue import Event, Job, Queue, decode_record
from tests.ingest.rows import attempt_row

FANOUT = {"web": ["hook-a", "hook-b"], "ios": ["hook-a"]}


def event(message_id: str, received_at: float, source_id: str = "web", **overrides: Any) -> Event:
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
        **{"event_count": len(job.events), **overrides},
    )


@dataclass
class Clock:
    """The time a test runs on: the caller's `now`, and how time passes.

    The embedded queue judges time by the `now` it is given, so time can
    pass at once (`virtual`); PostgreSQL judges it by the database's clock,
    so time passes for real (short leases, short sleeps).
    """

    virtual: bool
    offset: float = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        if self.virtual:
            self.offset += seconds
        else:
            time.sleep(seconds)


@dataclass
class Backend:
    """A queue under test, with a look at its tables that opens no batch and takes no lease."""

    name: str
    open: Callable[[], Queue]
    """Opens (another) queue object on the same storage."""
    query: Callable[[str], list[tuple[Any, ...]]]
    """Runs read-only SQL on the storage (the tables share their names and columns)."""
    clock: Clock
    queue: Queue = field(init=False)

    def __post_init__(self) -> None:
        self.queue = self.open()

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT count(*) FROM {table}")[0][0])

    def outbox(self) -> list[dict[str, Any]]:
        """The outbox's records in order."""
        return [decode_record(text) for (text,) in self.query("SELECT record FROM outbox ORDER BY id")]

    def reopen(self) -> Queue:
        """Close the queue (a process ending) and open it again."""
        self.queue.close()
        self.queue = self.open()
        return self.queue


#: Message ids the concurrent enqueues draw from: every id is sent by several calls at once.
CONCURRENT_IDS = 600


def concurrent_ids(seed: int, call: int) -> list[str]:
    """The 10 message ids of one call of `enqueue_concurrently`."""
    return [f"m{(seed * 97 + call * 31 + k * 7) % CONCURRENT_IDS}" for k in range(10)]


def enqueue_concurrently(queue: Queue, received_at: float) -> tuple[list[list[str]], set[str]]:
    """Six threads (the default executor's size on 2 cores) x 40 calls x 10 events at once.

    Each call repeats its first id. Returns what each call accepted, and every id sent.
    """
    returned: list[list[str]] = []
    lock = threading.Lock()

    def work(seed: int) -> None:
        for call in range(40):
            ids = concurrent_ids(seed, call)
            accepted = queue.enqueue([event(i, received_at) for i in [*ids, ids[0]]], FANOUT)
            with lock:
                returned.append(accepted)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return returned, {i for seed in range(6) for call in range(40) for i in concurrent_ids(seed, call)}


def sqlite_query(path: Any) -> Callable[[str], list[tuple[Any, ...]]]:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as db:
            return db.execute(sql).fetchall()

    return query


def postgres_query(dsn: str) -> Callable[[str], list[tuple[Any, ...]]]:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn) as db:
            return db.execute(sql).fetchall()

    return query
