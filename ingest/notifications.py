"""The notifications' storage contract: where the engine writes them and how every reader reads them.

Notifications are what operators and customers are told about a destination
(auth failures, a destination disabled by them, recoveries, manual
re-enables). The engine writes them (`delivery.alerts.store`,
`delivery.alerts.postgres_store`); the dashboard, `deliverydash
notifications` and the admin API read them with the functions here, so a
reader never imports the engine. Where they live follows the queue's
backend:

- **SQLite (one engine)**: their own file, ``<data_dir>/notifications.sqlite3``,
  not a table in the queue's file: the queue's schema is numbered by its own
  migrations (`delivery.queue.sqlite.MIGRATIONS`) and its file takes
  thousands of commits a second, while notifications are written a few
  times a day and read by other processes that must never contend with
  deliveries or need write access to the queue. The file uses a rollback
  journal rather than WAL so a reader can open it read-only (``mode=ro``)
  without the ``-shm`` file WAL readers need.
- **PostgreSQL (a fleet)**: two tables of the same columns in the queue's
  database (created by its migration 3, `delivery.queue.postgres.MIGRATIONS`),
  so that every engine lists what any of them raised. `Postgres(dsn)` names
  it; a reader's transaction is ``READ ONLY``.

Two tables (`SCHEMA`):

- `notifications`: one row per notification (ids are ULIDs, so by time):
  kind, state, workspace, destination, first-seen time, a sample body.
- `destination_watch`: the standing of each destination that is not
  healthy (`delivery.alerts.auth_watch.WatchState`), so a disabled
  destination stays disabled across a restart. (On PostgreSQL it also keeps
  healthy ones' rows, and a `version` per row: docs/fleet.md.)

A notification is `open` while someone has something to do (`auth_failing`,
`disabled`) and `resolved` once the destination delivers again or is
re-enabled by hand; `recovered` and `enabled` notifications are born
resolved (they report an ending). Bodies are stored as the attempt record
holds them, already redacted of the destination's secrets; request headers
and credentials are never stored.

`read_notifications(where)` and `open_notifications(where)` take where to
read: a data directory (the SQLite file) or `Postgres(dsn)`. Both read only,
whether or not an engine runs; a data directory without the file, or a
database not migrated yet, has no notifications. A database that cannot be
read raises `NotificationsError`, whose message names the server and never
the password.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, TypeAlias

import psycopg
import psycopg.errors

from ingest.dsn import connect_timeout, describe, redact_dsn, scrub

NOTIFICATIONS_FILE: Final = "notifications.sqlite3"
BUSY_TIMEOUT_MS: Final = 10_000
#: Seconds a reader waits for a connection to PostgreSQL (unless the DSN says `connect_timeout`).
CONNECT_TIMEOUT_S: Final = 10.0

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS notifications (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
        workspace_id TEXT NOT NULL,
        destination_id TEXT NOT NULL,
        integration TEXT NOT NULL,
        created_at REAL NOT NULL,
        first_seen_at REAL,
        failures INTEGER NOT NULL DEFAULT 0,
        status_code INTEGER,
        sample_body TEXT,
        message TEXT NOT NULL,
        resolved_at REAL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS notifications_open ON notifications (state, destination_id)",
    """CREATE TABLE IF NOT EXISTS destination_watch (
        destination_id TEXT PRIMARY KEY,
        phase TEXT NOT NULL,
        failures INTEGER NOT NULL,
        first_failure_at REAL,
        disabled_at REAL,
        next_probe_at REAL
    ) WITHOUT ROWID""",
)
COLUMNS: Final = (
    "id, kind, state, workspace_id, destination_id, integration, created_at, "
    "first_seen_at, failures, status_code, sample_body, message, resolved_at"
)


class State(StrEnum):
    """Whether a notification still asks for something to be done."""

    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification, as stored and as listed."""

    id: str
    """A ULID: notifications sort by it in the order they were raised."""
    kind: str
    """`auth_failing`, `disabled`, `recovered` or `enabled` (`delivery.alerts.auth_watch.Change`)."""
    state: State
    """`open` until the destination delivers again or is re-enabled; then `resolved`."""
    workspace_id: str
    """The customer whose destination it is."""
    destination_id: str
    """The destination."""
    integration: str
    """The destination's integration (catalog name)."""
    created_at: dt.datetime
    """When it was raised (UTC)."""
    first_seen_at: dt.datetime | None
    """The first auth failure of the streak it is about (UTC); None for a manual enable of a healthy one."""
    failures: int
    """Consecutive auth failures counted when it was raised."""
    status_code: int | None
    """The status of the response it quotes (401, 403), if any."""
    sample_body: str | None
    """That response's body, redacted as the attempt log holds it (at most 2 KiB)."""
    message: str
    """One sentence for people: what happened and what to do."""
    resolved_at: dt.datetime | None
    """When it was resolved, if it is."""

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO 8601 text."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, dt.datetime):
                data[key] = value.isoformat().replace("+00:00", "Z")
        data["state"] = str(self.state)
        return data


class NotificationsError(Exception):
    """The notifications could not be read; the message names where, never a password."""


@dataclass(frozen=True, slots=True)
class Postgres:
    """The notifications of a fleet: the tables in its queue's PostgreSQL database."""

    dsn: str = field(repr=False)
    """libpq's connection string (URL or key=value form); it may hold a password, never shown."""

    def __repr__(self) -> str:
        return f"Postgres({redact_dsn(self.dsn)!r})"

    def __str__(self) -> str:
        return f"PostgreSQL ({describe(self.dsn)})"


#: Where notifications are read: a data directory (its SQLite file) or a fleet's database.
Where: TypeAlias = str | Path | Postgres


def store_path(data_dir: str | Path) -> Path:
    """Where a data directory keeps its notifications."""
    return Path(data_dir) / NOTIFICATIONS_FILE


def read_notifications(
    where: Where,
    *,
    state: State | str | None = None,
    workspace: str | None = None,
    limit: int | None = None,
) -> list[Notification]:
    """Notifications in `where` (a data directory or `Postgres`), newest first; the engine need not run.

    `state` keeps only `open` or `resolved` ones (None or `all`: every one);
    `workspace` one customer's; `limit` the newest that many. A data
    directory without notifications, or a database without their tables,
    gives an empty list. Nothing is written: the file is opened read-only,
    the database's transaction is ``READ ONLY``.
    """
    wanted = None if state in (None, "all") else State(state)
    if isinstance(where, Postgres):
        return _read_postgres(where, wanted, workspace, limit)
    path = store_path(where)
    if not path.is_file():
        return []
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            return _select(db, wanted, workspace, limit)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # created, not yet initialised
                return []
            raise
    finally:
        db.close()


def open_notifications(where: Where, workspace: str | None = None) -> list[Notification]:
    """The open notifications in `where` (one workspace's if given), newest first; read-only.

    For the dashboard's "open notifications" per workspace: each has
    `workspace_id`, `destination_id`, `integration`, `kind`, `created_at`,
    `first_seen_at`, `failures`, `status_code`, `sample_body` and `message`.
    """
    return read_notifications(where, state=State.OPEN, workspace=workspace)


def _query(state: State | None, workspace: str | None, limit: int | None, mark: str) -> tuple[str, list[Any]]:
    """The select and its parameters; `mark` is the driver's placeholder (``?`` or ``%s``)."""
    clauses: list[str] = []
    params: list[Any] = []
    if state is not None:
        clauses.append(f"state = {mark}")
        params.append(str(state))
    if workspace is not None:
        clauses.append(f"workspace_id = {mark}")
        params.append(workspace)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    tail = f" LIMIT {mark}" if limit is not None else ""
    if limit is not None:
        params.append(limit)
    return f"SELECT {COLUMNS} FROM notifications {where} ORDER BY id DESC{tail}", params


def _select(
    db: sqlite3.Connection, state: State | None, workspace: str | None, limit: int | None
) -> list[Notification]:
    query, params = _query(state, workspace, limit, "?")
    return [_notification(row) for row in db.execute(query, params).fetchall()]


def _read_postgres(
    where: Postgres, state: State | None, workspace: str | None, limit: int | None
) -> list[Notification]:
    query, params = _query(state, workspace, limit, "%s")
    try:
        timeout = connect_timeout(where.dsn, CONNECT_TIMEOUT_S)
        with psycopg.connect(where.dsn, connect_timeout=timeout) as db:
            db.read_only = True
            rows = db.execute(query, params).fetchall()
    except psycopg.errors.UndefinedTable:
        return []  # the queue's migration 3 has not run yet: nothing was raised
    except psycopg.Error as error:
        # Not chained: the driver's exception may quote the DSN.
        reason = scrub(str(error), where.dsn)
        raise NotificationsError(f"cannot read the notifications in {where}: {reason}") from None
    return [_notification(row) for row in rows]


def _notification(row: tuple[Any, ...]) -> Notification:
    (id_, kind, state, workspace, destination, integration, created, first_seen) = row[:8]
    failures, status_code, sample_body, message, resolved = row[8:]
    return Notification(
        id=id_,
        kind=kind,
        state=State(state),
        workspace_id=workspace,
        destination_id=destination,
        integration=integration,
        created_at=utc(created),
        first_seen_at=utc(first_seen) if first_seen is not None else None,
        failures=failures,
        status_code=status_code,
        sample_body=sample_body,
        message=message,
        resolved_at=utc(resolved) if resolved is not None else None,
    )


def utc(epoch_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC)


def as_json(notifications: Iterable[Notification]) -> list[Mapping[str, Any]]:
    """Notifications as JSON-ready mappings (the admin API's and the webhook's shape)."""
    return [n.as_json() for n in notifications]
