"""The embedded queue: one SQLite file in WAL mode, ``<data_dir>/queue.sqlite3``.

Durability: every transaction that `enqueue` returns from is on disk
(``synchronous=FULL`` fsyncs the WAL at each commit), because the tracking API
answers 200 right after it. ``NORMAL`` would survive a killed process but
could lose the last commits on power loss; see docs/queue.md for figures.
Claims commit without the fsync (a lease matters only while its process
lives); the next durable commit syncs them with it.

Threads: one connection behind one lock, so an instance may be shared by
any number of threads, and calls run one at a time (SQLite serialises
writers anyway); `enqueue` calls that arrive together share one commit
(group commit), each still returning only once its own events are durable.
Every method blocks on disk: from asyncio, call it through
`asyncio.to_thread` (or one executor thread), never on the event loop; the one
exception is `claim_if_idle`, which gives up rather than wait.

One engine process owns a data directory: `recover` treats every lease it
finds as left by a dead process, so the queue holds an exclusive lock on
``queue.sqlite3.lock`` beside the file while it is open, and a second open
(from any process) is refused. Several engines share a queue on PostgreSQL
(`delivery.queue.postgres`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import sqlite3
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, Unpack

import numpy as np

from delivery.queue import dead_letters
from delivery.queue.base import (
    DEDUP_WINDOW_S,
    ClaimOptions,
    Event,
    Job,
    JobState,
    LeaseLost,
    OutboxBatch,
    QueueDepth,
    QueueError,
    ReplayResult,
    ReplaySelection,
    Settlement,
    StorageFull,
)
from delivery.queue.claims import Candidate, choose, destination_share
from delivery.queue.outbox import encode_record
from ingest.ids import new_id, new_ids

QUEUE_FILE = "queue.sqlite3"
#: Beside the database: held (`flock`) by the one queue that has the data directory open.
LOCK_FILE = "queue.sqlite3.lock"
BUSY_TIMEOUT_MS = 10_000
#: SQLite's default: a commit that takes the WAL past this many pages checkpoints it.
WAL_AUTOCHECKPOINT_PAGES = 1000
#: The schema's `DROP COLUMN` (migration 5) and the outbox's `RETURNING` need it (3.35.5 fixed
#: `DROP COLUMN` defects that could corrupt a database).
MIN_SQLITE = (3, 35, 5)
#: Host parameters per statement for `IN (...)` lists, well under SQLite's limit.
_CHUNK = 500

#: Schema migrations: `PRAGMA user_version` is how many have run. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # An event's payload is stored once however many destinations it fans
        # out to; `refs` counts its unfinished jobs, and it goes with the last.
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            message_id TEXT NOT NULL,
            workspace_id TEXT NOT NULL,
            source_id TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT,
            payload BLOB NOT NULL,
            received_at REAL NOT NULL,
            refs INTEGER NOT NULL
        )""",
        # `available_at` is when a claim may take the job: its due time while
        # pending, its lease's expiry while leased. One index then serves
        # claims of due jobs and of lapsed leases alike. Finished jobs are
        # deleted: their history is the attempt log.
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            destination_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'done')),
            attempts INTEGER NOT NULL DEFAULT 0,
            due_at REAL NOT NULL,
            available_at REAL NOT NULL,
            received_at REAL NOT NULL,
            lease_owner TEXT,
            lease_token TEXT,
            lease_expires_at REAL
        ) WITHOUT ROWID""",
        # Claims walk it per destination; depth counts from it without the table.
        "CREATE INDEX jobs_claim ON jobs (destination_id, available_at, state)",
        "CREATE INDEX jobs_leased ON jobs (lease_owner) WHERE lease_owner IS NOT NULL",
        """CREATE TABLE job_events (
            job_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            event_id INTEGER NOT NULL,
            PRIMARY KEY (job_id, position)
        ) WITHOUT ROWID""",
        """CREATE TABLE dedup (
            source_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            seen_at REAL NOT NULL,
            PRIMARY KEY (source_id, message_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX dedup_expiry ON dedup (seen_at)",
        # Attempt records waiting for the exporter; `batch_id` is set once a
        # batch takes them and stays until the batch is acknowledged.
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            batch_id TEXT,
            record TEXT NOT NULL
        )""",
        "CREATE INDEX outbox_open ON outbox (batch_id) WHERE batch_id IS NOT NULL",
    ),
    (
        # Claims order a destination's jobs by (available_at, id). Events that
        # arrive in one batch share available_at, and without id in the index
        # SQLite sorted the whole backlog of such a destination on every claim
        # (53% of the engine's time with 150,000 jobs queued for one destination).
        "DROP INDEX jobs_claim",
        "CREATE INDEX jobs_claim ON jobs (destination_id, available_at, id)",
    ),
    (
        # The class of a job's first request, set when that request is
        # retried, so every later record carries it (`first_error_class`).
        # Jobs queued before have NULL: their later records say so.
        "ALTER TABLE jobs ADD COLUMN first_error_class TEXT",
    ),
    (
        # The events of jobs that ended undelivered, one row each, until a
        # replay takes them (`replay_id`) or they expire (docs/replay.md).
        """CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY,
            job_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            destination_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            workspace_id TEXT NOT NULL,
            source_id TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT,
            payload BLOB NOT NULL,
            received_at REAL NOT NULL,
            ended_at REAL NOT NULL,
            outcome TEXT NOT NULL,
            error_class TEXT,
            replay_of TEXT,
            replay_id TEXT
        )""",
        "CREATE INDEX dead_letters_destination ON dead_letters (destination_id, ended_at)",
        "CREATE INDEX dead_letters_ended ON dead_letters (ended_at)",
        # The job a replayed job replays; NULL for the jobs of received events.
        "ALTER TABLE jobs ADD COLUMN replay_of TEXT",
    ),
    (
        # An outbox batch is the records up to an id, in a row of its own, not a
        # mark on each record: marking rewrote every record taken (2.5 MB of pages
        # for 4,500 records, 15 ms of the write lock that claims and settlements
        # wait for; docs/benchmarks.md, issue 16). A batch taken before carries
        # over: its records were the outbox's first.
        "CREATE TABLE outbox_batches (batch_id TEXT PRIMARY KEY, last_id INTEGER NOT NULL)",
        "INSERT INTO outbox_batches "
        "SELECT batch_id, max(id) FROM outbox WHERE batch_id IS NOT NULL GROUP BY batch_id",
        "DROP INDEX outbox_open",
        "ALTER TABLE outbox DROP COLUMN batch_id",
    ),
)

# Destinations with their earliest claimable job, earliest first: one index
# seek per destination (a skip-scan written out), instead of reading every
# due job to rank it per destination.
_READY_DESTINATIONS = """
WITH RECURSIVE destination(id) AS (
    SELECT min(destination_id) FROM jobs
    UNION ALL
    SELECT (SELECT min(destination_id) FROM jobs WHERE destination_id > destination.id)
    FROM destination WHERE destination.id IS NOT NULL
)
SELECT id, ready_at FROM (
    SELECT id, (SELECT min(available_at) FROM jobs WHERE destination_id = destination.id) AS ready_at
    FROM destination WHERE id IS NOT NULL
)
WHERE ready_at <= :now
ORDER BY ready_at
LIMIT :limit
"""
_CLAIMABLE = """
SELECT id, available_at, attempts, replay_of, due_at, received_at, first_error_class FROM jobs
WHERE destination_id = :destination AND available_at <= :now
ORDER BY available_at, id
LIMIT :limit
"""
_LEASE = """
UPDATE jobs SET state = 'leased', lease_owner = ?, lease_token = ?, lease_expires_at = ?, available_at = ?
WHERE id = ?
"""
_EVENT_COLUMNS = "message_id, workspace_id, source_id, type, name, payload, received_at"
_KEEP_DEAD_LETTER = (
    f"INSERT INTO dead_letters ({', '.join(dead_letters.COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(dead_letters.COLUMNS))})"
)


class _Found(NamedTuple):
    """A claimable job's columns, as the claim read them."""

    destination_id: str
    attempts: int
    due_at: float
    received_at: float
    first_error_class: str | None
    replay_of: str | None


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    iterator = iter(items)
    while chunk := tuple(islice(iterator, size)):
        yield chunk


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _lock_data_dir(data_dir: Path) -> int:
    """Lock `data_dir` for this queue's life: the open file descriptor of its held lock file.

    `recover` treats every lease in the file as a dead process's, so a second
    engine on the same directory would steal the first one's jobs. `flock` is
    released when the descriptor closes, including when the process dies
    (even by SIGKILL), so a lock file is never left stale.
    """
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise QueueError(
            f"{data_dir}: another engine uses this data directory's queue ({holder} holds {path.name}); "
            'one data directory serves one engine: several engines need [queue] backend = "postgres"'
        ) from None
    except BaseException:
        os.close(fd)
        raise
    # Who holds it, for the message above (the lock, not this text, is what counts).
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def _is_disk_full(error: BaseException) -> bool:
    """Whether SQLite failed because the disk is full (SQLITE_FULL), or the OS said so (ENOSPC)."""
    if isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return True
    return isinstance(error, OSError) and error.errno == errno.ENOSPC


def schema_version(data_dir: str | os.PathLike[str]) -> int:
    """The schema version of the queue under `data_dir` (0 when there is none), read without changing it."""
    path = Path(data_dir) / QUEUE_FILE
    if not path.is_file():
        return 0
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


class _Enqueue:
    """One `enqueue` call waiting for the group commit that holds it."""

    __slots__ = ("accepted", "done", "error", "events", "fanout")

    def __init__(self, events: Sequence[Event], fanout: Mapping[str, Sequence[str]]) -> None:
        self.events = events
        self.fanout = fanout
        self.accepted: list[str] = []
        self.error: BaseException | None = None
        self.done = False


class SqliteQueue:
    """The `delivery.queue.Queue` protocol over one SQLite file under `data_dir`."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        min_free_bytes: int = 0,
        lock: bool = True,
    ) -> None:
        """`min_free_bytes`: `enqueue` refuses new events (`StorageFull`) while the disk has less free.

        `lock=False` leaves the data directory's lock to the process that
        holds it: only for a process that engine started (its exporter's,
        `delivery.export_process`), never for another engine.
        """
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        if sqlite3.sqlite_version_info < MIN_SQLITE:  # refused before the directory is locked or opened
            raise QueueError(
                f"the queue needs SQLite {'.'.join(map(str, MIN_SQLITE))} or later; "
                f"this Python links SQLite {sqlite3.sqlite_version}"
            )
        self.path = Path(data_dir) / QUEUE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.min_free_bytes = min_free_bytes
        self._lock_fd = _lock_data_dir(self.path.parent) if lock else -1
        try:
            # Autocommit mode: transactions are the explicit BEGIN IMMEDIATE below,
            # so a writer takes the write lock before it reads what it will change.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except BaseException:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
            raise
        self._lock = threading.Lock()
        # Group commit of `enqueue` calls: those waiting, and whether one of them is committing.
        self._group = threading.Condition(threading.Lock())
        self._waiting: list[_Enqueue] = []
        self._leading = False
        # Job ids for `enqueue`, made many at a time (only under the write lock).
        self._id_rng = np.random.default_rng()
        try:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise QueueError(f"{self.path}: cannot use WAL mode (got {mode!r})")
            self._db.execute(f"PRAGMA synchronous = {synchronous}")
            self._synchronous = synchronous
            self._migrate()
        except BaseException:
            self.close()
            raise

    # --- plumbing ---

    @property
    def location(self) -> str:
        """See `delivery.queue.Queue.location`: the database file."""
        return str(self.path)

    def _migrate(self) -> None:
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise QueueError(
                    f"{self.path} has schema version {version}; this code knows {len(MIGRATIONS)}"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    @contextmanager
    def _transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction under the connection's lock; `durable`: see `_durability`."""
        with self._lock, self._durability(durable):
            self._db.execute("BEGIN IMMEDIATE")
            with self._committed() as db:
                yield db

    @contextmanager
    def _durability(self, durable: bool) -> Iterator[None]:
        """Within the block, commit with the fsync (`durable`) or without it (the lock held).

        Without: for a claim, whose leases matter only while this process lives.
        A power cut may lose it (the jobs are then claimable as before it, and
        sent again, as after any crash mid-request); the next durable commit
        syncs the WAL, claims included.
        """
        if durable or self._synchronous != "FULL":
            yield
            return
        self._db.execute("PRAGMA synchronous = NORMAL")
        try:
            yield
        finally:
            self._db.execute("PRAGMA synchronous = FULL")

    @contextmanager
    def _committed(self) -> Iterator[sqlite3.Connection]:
        """Commit the transaction begun, or roll it back if the block raises."""
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # a failed COMMIT leaves it open
                self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Always held: one engine uses a SQLite queue (its lock file sees to it)."""
        yield True

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite) and let another engine open the file."""
        with self._lock:
            self._db.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the lock
                self._lock_fd = -1

    # --- the tracking API's side ---

    def enqueue(self, events: Sequence[Event], fanout: Mapping[str, Sequence[str]]) -> list[str]:
        """See `delivery.queue.Queue.enqueue`.

        Group commit: calls made at the same time from several threads are
        written in one transaction, so one disk sync covers them all. The
        first caller to find no commit under way leads: it takes every call
        waiting (its own included), applies each under its own savepoint in
        arrival order (so de-duplication between them is exact, and a call
        that fails is rolled back alone), commits, and wakes the others. Each
        caller returns only after the commit that holds its events.
        """
        if not events:
            return []
        self._check_free_space()
        call = _Enqueue(events, fanout)
        with self._group:
            self._waiting.append(call)
            while not call.done and self._leading:
                self._group.wait()
            if not call.done:
                self._leading = True
                group, self._waiting = self._waiting, []
        if not call.done:
            try:
                self._commit_group(group)
            finally:
                with self._group:
                    self._leading = False
                    self._group.notify_all()
        if call.error is not None:
            if _is_disk_full(call.error):
                raise StorageFull(self._free_bytes(), self.min_free_bytes) from call.error
            raise call.error
        return call.accepted

    def _check_free_space(self) -> None:
        """Refuse new events while the disk is below the reserve (one statvfs: microseconds)."""
        if self.min_free_bytes and (free := self._free_bytes()) < self.min_free_bytes:
            raise StorageFull(free, self.min_free_bytes)

    def _free_bytes(self) -> int:
        return shutil.disk_usage(self.path.parent).free

    def _commit_group(self, group: list[_Enqueue]) -> None:
        """Apply `group` in one transaction; every call ends done, with its result or its error."""
        try:
            with self._transaction() as db:
                for call in group:
                    db.execute("SAVEPOINT enqueue")
                    try:
                        accepted = self._deduplicate(db, call.events)
                        if accepted:
                            self._store(db, accepted, call.fanout)
                    except Exception as error:  # this call's alone: the others go on
                        db.execute("ROLLBACK TO enqueue")
                        call.error = error
                    else:
                        call.accepted = [event.message_id for event in accepted]
                    db.execute("RELEASE enqueue")
                oldest = min(e.received_at for call in group for e in call.events) - DEDUP_WINDOW_S
                db.execute("DELETE FROM dedup WHERE seen_at < ?", (oldest,))
        except BaseException as error:  # the commit failed: nothing of the group is durable
            for call in group:
                call.error = call.error or error
                call.accepted = []
            if not isinstance(error, Exception):
                raise
        finally:
            for call in group:
                call.done = True

    def _deduplicate(self, db: sqlite3.Connection, events: Sequence[Event]) -> list[Event]:
        """Events whose messageId was not seen from their source in the window; record them as seen."""
        seen: dict[tuple[str, str], float] = {}
        by_source: dict[str, list[str]] = {}
        for event in events:
            by_source.setdefault(event.source_id, []).append(event.message_id)
        for source_id, message_ids in by_source.items():
            for chunk in _chunks(sorted(set(message_ids))):
                rows = db.execute(
                    f"SELECT message_id, seen_at FROM dedup WHERE source_id = ? AND message_id IN "
                    f"({_marks(len(chunk))})",
                    (source_id, *chunk),
                )
                seen.update(((source_id, message_id), seen_at) for message_id, seen_at in rows)
        accepted = []
        for event in events:
            key = (event.source_id, event.message_id)
            first = seen.get(key)
            if first is not None and event.received_at - first < DEDUP_WINDOW_S:
                continue
            seen[key] = event.received_at
            accepted.append(event)
        db.executemany(
            "INSERT INTO dedup (source_id, message_id, seen_at) VALUES (?, ?, ?) "
            "ON CONFLICT (source_id, message_id) DO UPDATE SET seen_at = excluded.seen_at",
            [(e.source_id, e.message_id, e.received_at) for e in accepted],
        )
        return accepted

    def _store(
        self, db: sqlite3.Connection, events: list[Event], fanout: Mapping[str, Sequence[str]]
    ) -> None:
        # Ids are handed out here rather than read back row by row: the
        # transaction holds the write lock, so nobody else can take them.
        next_id = db.execute("SELECT coalesce(max(id), 0) + 1 FROM events").fetchone()[0]
        job_ids = iter(new_ids(sum(len(fanout.get(event.source_id, ())) for event in events), self._id_rng))
        event_rows, job_rows, link_rows = [], [], []
        for event in events:
            destinations = fanout.get(event.source_id, ())
            if not destinations:
                continue  # acknowledged and de-duplicated, but nobody to deliver it to
            event_id, next_id = next_id, next_id + 1
            event_rows.append(
                (
                    event_id,
                    event.message_id,
                    event.workspace_id,
                    event.source_id,
                    event.type,
                    event.name,
                    event.payload,
                    event.received_at,
                    len(destinations),
                )
            )
            for destination_id in destinations:
                job_id = next(job_ids)
                job_rows.append(
                    (job_id, destination_id, event.received_at, event.received_at, event.received_at)
                )
                link_rows.append((job_id, 0, event_id))
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", event_rows)
        db.executemany(
            "INSERT INTO jobs (id, destination_id, state, due_at, available_at, received_at) "
            "VALUES (?, ?, 'pending', ?, ?, ?)",
            job_rows,
        )
        db.executemany("INSERT INTO job_events (job_id, position, event_id) VALUES (?, ?, ?)", link_rows)

    # --- the workers' side ---

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
        """See `delivery.queue.Queue.claim`."""
        with self._transaction(durable=False) as db:
            return self._claim(
                db,
                owner,
                now,
                limit=limit,
                per_destination_limit=per_destination_limit,
                lease_s=lease_s,
                exclude=exclude,
                limits=limits,
                batches=batches,
                linger_s=linger_s,
            )

    @property
    def one_writer(self) -> bool:
        """See `delivery.queue.Queue.one_writer`: yes, SQLite writes one transaction at a time."""
        return True

    def claim_if_idle(self, owner: str, now: float, **options: Unpack[ClaimOptions]) -> list[Job] | None:
        """See `delivery.queue.Queue.claim_if_idle`: a claim unless another transaction is under way.

        Under way: another thread's (this connection's lock is held) or another
        process's (the engine's exporter holds SQLite's write lock).
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            # Its commit runs no checkpoint either (that syncs the files): the next other commit does.
            self._db.execute("PRAGMA wal_autocheckpoint = 0")
            with self._durability(False):
                self._db.execute("PRAGMA busy_timeout = 0")
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as error:
                    if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # BUSY_RECOVERY, ... too
                        raise
                    return None  # another process writes (the exporter)
                finally:
                    self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                with self._committed() as db:
                    return self._claim(db, owner, now, **options)
        finally:
            self._db.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            self._lock.release()

    def _claim(
        self, db: sqlite3.Connection, owner: str, now: float, **options: Unpack[ClaimOptions]
    ) -> list[Job]:
        """`claim` inside a transaction already begun."""
        limit, per_destination_limit = options["limit"], options["per_destination_limit"]
        if limit <= 0 or per_destination_limit <= 0:
            return []
        excluded = frozenset(options.get("exclude", ()))
        limits, batches = options.get("limits") or {}, options.get("batches") or {}
        linger_s, lease_s = options.get("linger_s", 0.0), options["lease_s"]
        # Ask for as many more destinations as may be left out, so `limit` others still come back.
        ready = {"now": now, "limit": limit + len(excluded) + len(batches)}
        destinations = db.execute(_READY_DESTINATIONS, ready).fetchall()
        candidates: list[Candidate] = []
        found: dict[str, _Found] = {}
        for destination_id, ready_at in destinations:
            if destination_id in excluded:
                continue
            size = batches.get(destination_id, 1)
            if size > 1 and ready_at > now - linger_s:
                continue  # lingering: its oldest job waits for others to join its request
            share = destination_share(destination_id, per_destination_limit, limits, batches)
            if share <= 0:
                continue
            rows = db.execute(_CLAIMABLE, {"destination": destination_id, "now": now, "limit": share})
            for job_id, available_at, attempts, replay_of, due_at, received_at, first_class in rows:
                found[job_id] = _Found(destination_id, attempts, due_at, received_at, first_class, replay_of)
                # A replayed job goes alone: its record names the one job it replays.
                shares = size > 1 and attempts == 0 and replay_of is None
                candidates.append((available_at, job_id, destination_id, shares))
        chosen = choose(candidates, limit, per_destination_limit, limits, batches)
        if not chosen:
            return []
        token, expires_at = new_id(), now + lease_s
        db.executemany(_LEASE, [(owner, token, expires_at, expires_at, job_id) for job_id in chosen])
        # The jobs as leased, from what the claim read and the lease it wrote: not read again
        # (on the event loop, a claim's second read of its jobs cost more than building them).
        events = self._read_events(db, chosen)
        jobs = []
        for job_id in chosen:
            job = found[job_id]
            jobs.append(
                Job(
                    id=job_id,
                    destination_id=job.destination_id,
                    events=tuple(events[job_id]),
                    state=JobState.LEASED,
                    attempts=job.attempts,
                    due_at=job.due_at,
                    received_at=job.received_at,
                    first_error_class=job.first_error_class,
                    lease_owner=owner,
                    lease_expires_at=expires_at,
                    lease_token=token,
                    replay_of=job.replay_of,
                )
            )
        return jobs

    def _read_events(self, db: sqlite3.Connection, job_ids: Sequence[str]) -> dict[str, list[Event]]:
        """The events of each of `job_ids`, in order."""
        events: dict[str, list[Event]] = {job_id: [] for job_id in job_ids}
        for chunk in _chunks(job_ids):
            for job_id, *values in db.execute(
                f"SELECT je.job_id, {_EVENT_COLUMNS} FROM job_events je JOIN events e ON e.id = je.event_id "
                f"WHERE je.job_id IN ({_marks(len(chunk))}) ORDER BY je.job_id, je.position",
                chunk,
            ):
                events[job_id].append(Event(*values))
        return events

    def complete(self, job: Job, record: Mapping[str, Any], now: float) -> None:
        """See `delivery.queue.Queue.complete`. The finished job is deleted, its payloads with it.

        `now` is not stored: the record's `started_at` already says when the job settled.
        """
        stored = self._outbox_form(job, record)
        with self._transaction() as db:
            self._settle(db, Settlement(job, record), stored)

    def reschedule(self, job: Job, record: Mapping[str, Any], due_at: float) -> None:
        """See `delivery.queue.Queue.reschedule`."""
        stored = self._outbox_form(job, record)
        with self._transaction() as db:
            self._settle(db, Settlement(job, record, due_at), stored)

    def settle(self, settlements: Sequence[Settlement]) -> list[Job]:
        """See `delivery.queue.Queue.settle`.

        Statements are per group, not per job (leases read with one `IN`
        list, finished jobs deleted together, records inserted together):
        one statement per job each was most of a group's cost, under the lock.
        """
        stored = [self._outbox_form(s.job, s.record) for s in settlements]
        with self._transaction() as db:
            tokens = self._lease_tokens(db, [part.id for s in settlements for part in (s.job, *s.merged)])
            lost, kept, finished, settled = [], [], [], []
            for settlement, text in zip(settlements, stored, strict=True):
                parts = (settlement.job, *settlement.merged)
                if any(part.lease_token is None or tokens.get(part.id) != part.lease_token for part in parts):
                    lost.append(settlement.job)
                    continue
                kept.append((text,))
                settled.append(settlement)
                if settlement.due_at is None:
                    finished += [part.id for part in parts]
                else:
                    self._reschedule(db, settlement)
            self._finish_all(db, finished)
            db.executemany("INSERT INTO outbox (record) VALUES (?)", kept)
            self._keep_dead_letters(db, settled)
        return lost

    @staticmethod
    def _keep_dead_letters(db: sqlite3.Connection, settlements: Sequence[Settlement]) -> None:
        db.executemany(_KEEP_DEAD_LETTER, dead_letters.rows(settlements))

    @staticmethod
    def _lease_tokens(db: sqlite3.Connection, job_ids: Sequence[str]) -> dict[str, str]:
        """The current lease token of each of `job_ids` that is leased."""
        tokens: dict[str, str] = {}
        for chunk in _chunks(job_ids):
            rows = db.execute(
                f"SELECT id, lease_token FROM jobs WHERE state = 'leased' AND id IN ({_marks(len(chunk))})",
                chunk,
            )
            tokens.update(rows)
        return tokens

    @staticmethod
    def _finish_all(db: sqlite3.Connection, job_ids: Sequence[str]) -> None:
        """Delete finished jobs, and the events no other job needs."""
        references: Counter[int] = Counter()
        for chunk in _chunks(job_ids):
            marks = _marks(len(chunk))
            references.update(
                row[0]
                for row in db.execute(f"SELECT event_id FROM job_events WHERE job_id IN ({marks})", chunk)
            )
            db.execute(f"DELETE FROM job_events WHERE job_id IN ({marks})", chunk)
            db.execute(f"DELETE FROM jobs WHERE id IN ({marks})", chunk)
        # An event two finished jobs shared (fan-out) loses both references.
        db.executemany(
            "UPDATE events SET refs = refs - ? WHERE id = ?", [(n, e) for e, n in references.items()]
        )
        for chunk in _chunks(list(references)):
            db.execute(f"DELETE FROM events WHERE refs <= 0 AND id IN ({_marks(len(chunk))})", chunk)

    def _settle(self, db: sqlite3.Connection, settlement: Settlement, stored: str) -> None:
        """Finish (`due_at` None) or reschedule the job (and its merged ones) and add the record.

        LeaseLost before any write.
        """
        parts = (settlement.job, *settlement.merged)
        for part in parts:
            self._check_lease(db, part)
        if settlement.due_at is None:
            self._finish_all(db, [part.id for part in parts])
        else:
            self._reschedule(db, settlement)
        db.execute("INSERT INTO outbox (record) VALUES (?)", (stored,))
        self._keep_dead_letters(db, [settlement])

    def _reschedule(self, db: sqlite3.Connection, settlement: Settlement) -> None:
        """Make the job pending again at `settlement.due_at`, holding its merged jobs' events."""
        job = settlement.job
        if settlement.merged:
            self._merge(db, job, settlement.merged)
        # The first request's class is kept from the record of attempt 1 on, for later records.
        db.execute(
            "UPDATE jobs SET state = 'pending', attempts = attempts + 1, due_at = ?, available_at = ?, "
            "first_error_class = coalesce(first_error_class, ?), "
            "lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE id = ?",
            (settlement.due_at, settlement.due_at, settlement.record.get("first_error_class"), job.id),
        )

    @staticmethod
    def _merge(db: sqlite3.Connection, job: Job, merged: Sequence[Job]) -> None:
        """Make `job` hold the events of `merged` after its own, in order, and delete those jobs.

        Each event keeps its one reference from this destination, now through `job`.
        """
        event_ids: list[int] = []
        for part in (job, *merged):
            event_ids += [
                row[0]
                for row in db.execute(
                    "SELECT event_id FROM job_events WHERE job_id = ? ORDER BY position", (part.id,)
                )
            ]
            db.execute("DELETE FROM job_events WHERE job_id = ?", (part.id,))
        db.executemany("DELETE FROM jobs WHERE id = ?", [(part.id,) for part in merged])
        db.executemany(
            "INSERT INTO job_events (job_id, position, event_id) VALUES (?, ?, ?)",
            [(job.id, position, event_id) for position, event_id in enumerate(event_ids)],
        )
        db.execute("UPDATE jobs SET received_at = ? WHERE id = ?", (job.received_at, job.id))

    @staticmethod
    def _outbox_form(job: Job, record: Mapping[str, Any]) -> str:
        if record.get("job_id") != job.id:
            raise ValueError(f"record is for job {record.get('job_id')!r}, not {job.id!r}")
        return encode_record(record)

    @staticmethod
    def _check_lease(db: sqlite3.Connection, job: Job) -> None:
        row = db.execute("SELECT state, lease_token FROM jobs WHERE id = ?", (job.id,)).fetchone()
        if job.lease_token is None or row != (JobState.LEASED, job.lease_token):
            raise LeaseLost(f"job {job.id} is no longer leased to {job.lease_owner!r} under this lease")

    def release(self, owner: str, jobs: Collection[Job] | None = None) -> int:
        """See `delivery.queue.Queue.release`."""
        with self._transaction() as db:
            if jobs is None:
                return self._unlease(db, "lease_owner = ?", (owner,))
            mine = "id = ? AND lease_owner = ? AND lease_token = ?"
            return sum(self._unlease(db, mine, (job.id, owner, job.lease_token)) for job in jobs)

    def recover(self, now: float) -> int:
        """See `delivery.queue.Queue.recover`: here every lease belongs to a previous process."""
        with self._transaction() as db:
            return self._unlease(db, "lease_owner IS NOT NULL", ())

    @staticmethod
    def _unlease(db: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> int:
        # Back to its due time: it was due when claimed, so it is claimable at once.
        return db.execute(
            "UPDATE jobs SET state = 'pending', available_at = due_at, lease_owner = NULL, "
            f"lease_token = NULL, lease_expires_at = NULL WHERE {where}",
            params,
        ).rowcount

    # --- the exporter's side ---

    def outbox_batch(self, limit: int) -> OutboxBatch | None:
        """See `delivery.queue.Queue.outbox_batch`."""
        taken = self._take_batch(limit)
        if taken is None:
            return None
        batch_id, last_id, resumed = taken
        return OutboxBatch(batch_id, self._batch_lines(batch_id, last_id).encode(), resumed)

    def _take_batch(self, limit: int) -> tuple[str, int, bool] | None:
        """The open batch (the oldest, if a migration carried several over), else a new one of the
        first `limit` records: (its id, its last record's id, whether it was open); None if the
        outbox is empty."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT batch_id, last_id FROM outbox_batches ORDER BY last_id LIMIT 1"
            ).fetchone()
            if row is not None:
                return row[0], row[1], True
            (last_id,) = db.execute(
                "SELECT max(id) FROM (SELECT id FROM outbox ORDER BY id LIMIT ?)", (limit,)
            ).fetchone()
            if last_id is None:
                return None
            batch_id = new_id()
            db.execute("INSERT INTO outbox_batches VALUES (?, ?)", (batch_id, last_id))
            return batch_id, last_id, False

    def _batch_lines(self, batch_id: str, last_id: int) -> str:
        """The records of batch `batch_id` (up to `last_id`) as JSON lines, or "" if it was
        acknowledged meanwhile.

        Read outside the write lock: WAL readers block no writer. One statement,
        so one snapshot: in it either the batch is open, and the records up to
        `last_id` are its own (while its last record stays, every new one gets a
        greater id), or another exporter acknowledged it, and nothing is read (ids
        start again once the outbox empties: records up to `last_id` may be newer
        ones by then). One text rather than a row each: every row fetched hands
        the GIL between threads, and a batch has thousands.
        """
        with self._lock:
            (lines,) = self._db.execute(
                "SELECT group_concat(record, char(10)) FROM (SELECT record FROM outbox "
                "WHERE id <= ? AND EXISTS (SELECT 1 FROM outbox_batches WHERE batch_id = ?) ORDER BY id)",
                (last_id, batch_id),
            ).fetchone()
        return lines or ""

    def outbox_ack(self, batch_id: str) -> int:
        """See `delivery.queue.Queue.outbox_ack`."""
        with self._transaction() as db:
            rows = db.execute(
                "DELETE FROM outbox_batches WHERE batch_id = ? RETURNING last_id", (batch_id,)
            ).fetchall()  # every row fetched: the statement ends before the next
            return db.execute("DELETE FROM outbox WHERE id <= ?", rows[0]).rowcount if rows else 0

    # --- dead letters ---

    def replay(
        self, selection: ReplaySelection, replay_id: str, now: float, *, dry_run: bool = False
    ) -> ReplayResult:
        """See `delivery.queue.Queue.replay`.

        A transaction per `dead_letters.CHUNK` dead letters, so that enqueues
        are not held up by a big replay; each chunk's jobs and marks commit
        together, so a replay cut short has replayed exactly what it marked,
        and running it again takes the rest.
        """
        condition, params = dead_letters.where(selection, "sqlite")
        with self._lock:
            matched = self._db.execute(
                f"SELECT destination_id, replay_id IS NOT NULL, count(*) FROM dead_letters WHERE {condition} "
                "GROUP BY 1, 2",
                params,
            ).fetchall()
        counted = dead_letters.tally(matched, selection.again)
        if dry_run:
            return counted
        if not selection.again:
            condition += " AND replay_id IS NULL"
        replayed: Counter[str] = Counter()
        after = 0
        while True:
            with self._transaction() as db:
                chunk = db.execute(
                    # A replay names the first job of its event: a replay of a replay too.
                    f"SELECT id, coalesce(replay_of, job_id), destination_id, {_EVENT_COLUMNS} "
                    "FROM dead_letters "
                    f"WHERE {condition} AND id > :after ORDER BY id LIMIT {dead_letters.CHUNK}",
                    params | {"after": after},
                ).fetchall()
                if not chunk:
                    break
                self._enqueue_replays(db, chunk, now)
                marks = [(replay_id, row[0]) for row in chunk]
                db.executemany("UPDATE dead_letters SET replay_id = ? WHERE id = ?", marks)
            replayed.update(row[2] for row in chunk)
            after = chunk[-1][0]
        return ReplayResult(sum(replayed.values()), dict(replayed), counted.already_replayed)

    def _enqueue_replays(self, db: sqlite3.Connection, chunk: Sequence[Sequence[Any]], now: float) -> None:
        """One new job per dead letter of `chunk` (id, job id, destination, then an event's columns)."""
        next_id = db.execute("SELECT coalesce(max(id), 0) + 1 FROM events").fetchone()[0]
        job_ids = new_ids(len(chunk), self._id_rng)
        event_rows, job_rows, link_rows = [], [], []
        for n, (_, replay_of, destination_id, *event) in enumerate(chunk):
            event_id = next_id + n
            received_at = event[-1]
            event_rows.append((event_id, *event, 1))
            job_rows.append((job_ids[n], destination_id, now, now, received_at, replay_of))
            link_rows.append((job_ids[n], 0, event_id))
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", event_rows)
        db.executemany(
            "INSERT INTO jobs (id, destination_id, state, due_at, available_at, received_at, replay_of) "
            "VALUES (?, ?, 'pending', ?, ?, ?, ?)",
            job_rows,
        )
        db.executemany("INSERT INTO job_events (job_id, position, event_id) VALUES (?, ?, ?)", link_rows)

    def expire_dead_letters(self, before: float) -> int:
        """See `delivery.queue.Queue.expire_dead_letters`."""
        with self._transaction() as db:
            return db.execute("DELETE FROM dead_letters WHERE ended_at < ?", (before,)).rowcount

    # --- visibility ---

    def depth(self) -> QueueDepth:
        """See `delivery.queue.Queue.depth`."""
        with self._lock:
            counts = self._db.execute(
                "SELECT destination_id, state, count(*) FROM jobs GROUP BY destination_id, state"
            ).fetchall()
            outbox_rows = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        by_state: dict[str, int] = {JobState.PENDING: 0, JobState.LEASED: 0}
        by_destination: dict[str, dict[str, int]] = {}
        for destination_id, state, n in counts:
            by_state[state] = by_state.get(state, 0) + n
            by_destination.setdefault(destination_id, {JobState.PENDING: 0, JobState.LEASED: 0})[state] = n
        return QueueDepth(by_state, by_destination, outbox_rows)
