"""Where changes made live to sources and destinations are kept: beside the queue (docs/live-config.md).

A change is a *patch*: the keys it sets over the table of one source or
destination (JSON; `null` removes a key). The store keeps one patch per
(kind, id) and a version, one more at every change, which engines read every
second to know when to read the patches again.

- `SqliteSettings`: `<data_dir>/settings.sqlite3`, a file of its own beside
  the SQLite queue, so the engine and `deliverydash destinations` can use it
  at once whatever holds the queue;
- `PostgresSettings`: tables in the queue's database, shared by a fleet.

Each has its own schema version and migrations (`MIGRATIONS`), apart from
the queue's; the read side (the table, the patches' form) is in
`ingest.live_settings`, for readers that must not import the engine.
`change` runs a caller's check inside the transaction that writes,
holding the version row locked, so two changes are checked one after the
other. The patches hold secrets in clear, as the TOML file does:
nothing here logs or shows them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from ingest.live_settings import SELECT_PATCHES, SQLITE_FILE, Patches, patches_of

#: What a patch is about.
Kind = Literal["sources", "destinations"]
#: A check run inside the writing transaction: the patches now -> the patch to store (or raises).
Check = Callable[[Patches], Mapping[str, Any]]

#: The schema, one statement list per version; the same on both backends (standard SQL).
MIGRATIONS: Final = (
    (
        "CREATE TABLE live_settings (kind TEXT NOT NULL, id TEXT NOT NULL, patch TEXT NOT NULL, "
        "seq BIGINT NOT NULL, updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, id))",
        "CREATE TABLE live_settings_version "
        "(one INTEGER PRIMARY KEY CHECK (one = 1), version BIGINT NOT NULL)",
        "INSERT INTO live_settings_version VALUES (1, 0)",
    ),
)


class SettingsError(Exception):
    """The store could not be read or written; the message never holds a secret."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every stored patch as of one version."""

    version: int
    """The store's version when read."""
    patches: Patches
    """Patches by kind, then id."""


class SettingsStore(Protocol):
    """Where patches are kept. Every method blocks (run it in a thread from the event loop)."""

    def version(self) -> int:
        """The store's version: one more at every change."""
        ...

    def snapshot(self) -> Snapshot:
        """Every patch and the version they are of."""
        ...

    def change(self, kind: Kind, entry_id: str, check: Check, now: float) -> Snapshot:
        """Store `check(patches)` as the patch of (kind, id), atomically; the snapshot after it."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class SqliteSettings:
    """`<data_dir>/settings.sqlite3`: the store beside the embedded queue."""

    def __init__(self, data_dir: Path) -> None:
        """Open (create, migrate) the store in `data_dir`, readable by its owner only."""
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / SQLITE_FILE
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise SettingsError(f"{self.path}: {exc}") from None

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("CREATE TABLE IF NOT EXISTS live_settings_schema (version INTEGER NOT NULL)")
            row = self._db.execute("SELECT version FROM live_settings_schema").fetchone()
            current = row[0] if row else 0
            for statements in MIGRATIONS[current:]:
                for statement in statements:
                    self._db.execute(statement)
            if row is None:
                self._db.execute("INSERT INTO live_settings_schema VALUES (?)", (len(MIGRATIONS),))
            else:
                self._db.execute("UPDATE live_settings_schema SET version = ?", (len(MIGRATIONS),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def version(self) -> int:
        with self._lock:
            try:
                row = self._db.execute("SELECT version FROM live_settings_version").fetchone()
            except sqlite3.Error as exc:
                raise SettingsError(f"{self.path}: {exc}") from None
        return int(row[0])

    def snapshot(self) -> Snapshot:
        with self._lock:
            try:
                self._db.execute("BEGIN")
                try:
                    return self._read()
                finally:
                    self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise SettingsError(f"{self.path}: {exc}") from None

    def _read(self) -> Snapshot:
        (version,) = self._db.execute("SELECT version FROM live_settings_version").fetchone()
        return Snapshot(int(version), patches_of(self._db.execute(SELECT_PATCHES).fetchall()))

    def change(self, kind: Kind, entry_id: str, check: Check, now: float) -> Snapshot:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")  # the write lock: changes are checked one at a time
            except sqlite3.Error as exc:
                raise SettingsError(f"{self.path}: {exc}") from None
            try:
                patch = check(self._read().patches)
                version = self._db.execute(
                    "UPDATE live_settings_version SET version = version + 1 RETURNING version"
                ).fetchone()[0]
                self._db.execute(
                    "INSERT INTO live_settings VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, id) "
                    "DO UPDATE SET patch = excluded.patch, updated_at = excluded.updated_at",
                    (kind, entry_id, json.dumps(patch), version, now),
                )
                after = self._read()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise SettingsError(f"{self.path}: {exc}") from None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return after

    def close(self) -> None:
        with self._lock:
            self._db.close()


#: Serializes the PostgreSQL store's migrations across engines starting at once.
_MIGRATION_LOCK = 0x6C697665  # "live"


class PostgresSettings:
    """Tables in the queue's PostgreSQL database: the store a fleet shares."""

    def __init__(self, dsn: str) -> None:
        """Connect to `dsn` and migrate the store's tables."""
        import psycopg

        self._psycopg = psycopg
        self._dsn = dsn
        self._lock = threading.Lock()
        self._db: Any = None
        with self._lock:
            self._run(self._migrate)

    def _connection(self) -> Any:
        if self._db is None or self._db.closed:
            self._db = self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
        return self._db

    def _run(self, work: Callable[[Any], Any]) -> Any:
        """`work(connection)`; a database error as `SettingsError` (its text never holds the DSN)."""
        try:
            return work(self._connection())
        except self._psycopg.Error as exc:
            if self._db is not None and self._db.broken:
                self._db = None
            raise SettingsError(f"the settings' database: {type(exc).__name__}") from None

    def _migrate(self, db: Any) -> None:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            db.execute("CREATE TABLE IF NOT EXISTS live_settings_schema (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM live_settings_schema").fetchone()
            current = row[0] if row else 0
            for statements in MIGRATIONS[current:]:
                for statement in statements:
                    db.execute(statement)
            db.execute("DELETE FROM live_settings_schema")
            db.execute("INSERT INTO live_settings_schema VALUES (%s)", (len(MIGRATIONS),))

    def version(self) -> int:
        with self._lock:
            row = self._run(lambda db: db.execute("SELECT version FROM live_settings_version").fetchone())
        return int(row[0])

    def snapshot(self) -> Snapshot:
        def read(db: Any) -> Snapshot:
            with db.transaction():
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return self._read(db)

        with self._lock:
            result: Snapshot = self._run(read)
        return result

    @staticmethod
    def _read(db: Any) -> Snapshot:
        (version,) = db.execute("SELECT version FROM live_settings_version").fetchone()
        return Snapshot(int(version), patches_of(db.execute(SELECT_PATCHES).fetchall()))

    def change(self, kind: Kind, entry_id: str, check: Check, now: float) -> Snapshot:
        def write(db: Any) -> Snapshot:
            with db.transaction():
                db.execute("SELECT version FROM live_settings_version FOR UPDATE")
                patch = check(self._read(db).patches)
                (version,) = db.execute(
                    "UPDATE live_settings_version SET version = version + 1 RETURNING version"
                ).fetchone()
                db.execute(
                    "INSERT INTO live_settings VALUES (%s, %s, %s, %s, %s) ON CONFLICT (kind, id) "
                    "DO UPDATE SET patch = excluded.patch, updated_at = excluded.updated_at",
                    (kind, entry_id, json.dumps(patch), version, now),
                )
                return self._read(db)

        with self._lock:
            result: Snapshot = self._run(write)
        return result

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()


def open_settings(backend: str, data_dir: Path, dsn: str | None) -> SettingsStore:
    """The store beside the queue `backend` names (`[queue] backend`)."""
    if backend == "postgres":
        assert dsn is not None  # the config checks it
        return PostgresSettings(dsn)
    return SqliteSettings(data_dir)
