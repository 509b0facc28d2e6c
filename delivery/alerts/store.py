"""The engine's writable handle on the notifications file (`ingest.notifications` is its contract).

`NotificationStore` writes a destination's standing (`delivery.alerts.auth_watch.WatchState`)
and the notifications it raised in one transaction; readers use `ingest.notifications`.
On the PostgreSQL backend its counterpart is `delivery.alerts.postgres_store`;
`notifications_source(config)` says where a config's notifications are read.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from delivery.alerts.auth_watch import HEALTHY, Phase, WatchState
from delivery.config import Config
from ingest.notifications import (
    BUSY_TIMEOUT_MS,
    COLUMNS,
    SCHEMA,
    Notification,
    Postgres,
    State,
    Where,
    store_path,
    utc,
)


def notifications_source(config: Config) -> Where:
    """Where `config`'s engines keep their notifications: the queue's PostgreSQL database, or `data_dir`."""
    if config.queue.backend == "postgres" and config.queue.dsn is not None:
        return Postgres(config.queue.dsn.reveal())
    return config.engine.data_dir


@dataclass(frozen=True, slots=True)
class Standing:
    """A destination's stored standing and its version (PostgreSQL: one more at each write)."""

    state: WatchState = HEALTHY
    version: int = 0
    """0: nothing stored yet (healthy)."""


@dataclass(frozen=True, slots=True)
class NewNotification:
    """What the engine raises; the store gives it an id and a state."""

    id: str
    kind: str
    workspace_id: str
    destination_id: str
    integration: str
    created_at: float
    """Epoch seconds."""
    message: str
    first_seen_at: float | None = None
    failures: int = 0
    status_code: int | None = None
    sample_body: str | None = None
    resolves: bool = False
    """Whether it ends the destination's open notifications (a recovery or a manual enable)."""

    def stored(self) -> Notification:
        """The notification as the store holds it once written."""
        return Notification(
            id=self.id,
            kind=self.kind,
            state=State.RESOLVED if self.resolves else State.OPEN,
            workspace_id=self.workspace_id,
            destination_id=self.destination_id,
            integration=self.integration,
            created_at=utc(self.created_at),
            first_seen_at=utc(self.first_seen_at) if self.first_seen_at is not None else None,
            failures=self.failures,
            status_code=self.status_code,
            sample_body=self.sample_body,
            message=self.message,
            resolved_at=utc(self.created_at) if self.resolves else None,
        )


class NotificationStore:
    """The engine's writable handle on the file: one connection behind a lock, for any thread.

    Every method blocks on disk: from asyncio, call it through `asyncio.to_thread`.
    """

    def __init__(self, data_dir: str | Path) -> None:
        path = store_path(data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode = DELETE")
        self._db.execute("PRAGMA synchronous = FULL")
        with self._transaction():
            for statement in SCHEMA:
                self._db.execute(statement)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def watch_states(self) -> dict[str, WatchState]:
        """The stored standing of every destination that was not healthy."""
        with self._lock:
            rows = self._db.execute(
                "SELECT destination_id, phase, failures, first_failure_at, disabled_at, next_probe_at "
                "FROM destination_watch"
            ).fetchall()
        return {row[0]: WatchState(Phase(row[1]), *row[2:]) for row in rows}

    def record(
        self, destination_id: str, state: WatchState, notifications: Iterable[NewNotification] = ()
    ) -> None:
        """Store a destination's new standing and the notifications it raised, in one transaction."""
        with self._transaction():
            if state.phase is Phase.HEALTHY:
                self._db.execute("DELETE FROM destination_watch WHERE destination_id = ?", (destination_id,))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO destination_watch VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        destination_id,
                        str(state.phase),
                        state.failures,
                        state.first_failure_at,
                        state.disabled_at,
                        state.next_probe_at,
                    ),
                )
            for note in notifications:
                self._insert(note)

    def _insert(self, note: NewNotification) -> None:
        if note.resolves:
            self._db.execute(
                "UPDATE notifications SET state = 'resolved', resolved_at = ? "
                "WHERE destination_id = ? AND state = 'open'",
                (note.created_at, note.destination_id),
            )
        state = State.RESOLVED if note.resolves else State.OPEN
        self._db.execute(
            f"INSERT INTO notifications ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                note.id,
                note.kind,
                str(state),
                note.workspace_id,
                note.destination_id,
                note.integration,
                note.created_at,
                note.first_seen_at,
                note.failures,
                note.status_code,
                note.sample_body,
                note.message,
                note.created_at if note.resolves else None,
            ),
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
