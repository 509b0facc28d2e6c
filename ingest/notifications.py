"""The notifications' storage contract: the file the engine writes and every reader reads.

Notifications are what operators and customers are told about a destination
(auth failures, a destination disabled by them, recoveries, manual
re-enables). The engine writes them (`delivery.alerts.store`); the dashboard,
`deliverydash notifications` and the admin API read them with the functions
here, so a reader never imports the engine.

The store is its own SQLite file, ``<data_dir>/notifications.sqlite3``, not
a table in the queue's file: the queue's schema is numbered by its own
migrations (`delivery.queue.sqlite.MIGRATIONS`) and its file takes thousands
of commits a second, while notifications are written a few times a day and
read by other processes that must never contend with deliveries or need
write access to the queue. The file uses a rollback journal rather than WAL
so a reader can open it read-only (``mode=ro``) without the ``-shm`` file
WAL readers need.

Two tables (`SCHEMA`):

- `notifications`: one row per notification (ids are ULIDs, so by time):
  kind, state, workspace, destination, first-seen time, a sample body.
- `destination_watch`: the standing of each destination that is not
  healthy (`delivery.alerts.auth_watch.WatchState`), so a disabled
  destination stays disabled across a restart.

A notification is `open` while someone has something to do (`auth_failing`,
`disabled`) and `resolved` once the destination delivers again or is
re-enabled by hand; `recovered` and `enabled` notifications are born
resolved (they report an ending). Bodies are stored as the attempt record
holds them, already redacted of the destination's secrets; request headers
and credentials are never stored.

`open_notifications(data_dir)` and `read_notifications(data_dir)` read the
file read-only and work whether or not the engine runs; a data directory
without the file has no notifications.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

NOTIFICATIONS_FILE: Final = "notifications.sqlite3"
BUSY_TIMEOUT_MS: Final = 10_000

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


def store_path(data_dir: str | Path) -> Path:
    """Where a data directory keeps its notifications."""
    return Path(data_dir) / NOTIFICATIONS_FILE


def read_notifications(
    data_dir: str | Path,
    *,
    state: State | str | None = None,
    workspace: str | None = None,
    limit: int | None = None,
) -> list[Notification]:
    """Notifications under `data_dir`, newest first, read-only (the engine need not run).

    `state` keeps only `open` or `resolved` ones (None or `all`: every one);
    `workspace` one customer's; `limit` the newest that many. A data
    directory without notifications gives an empty list.
    """
    path = store_path(data_dir)
    if not path.is_file():
        return []
    wanted = None if state in (None, "all") else State(state)
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


def open_notifications(data_dir: str | Path, workspace: str | None = None) -> list[Notification]:
    """The open notifications under `data_dir` (one workspace's if given), newest first; read-only.

    For the dashboard's "open notifications" per workspace: each has
    `workspace_id`, `destination_id`, `integration`, `kind`, `created_at`,
    `first_seen_at`, `failures`, `status_code`, `sample_body` and `message`.
    """
    return read_notifications(data_dir, state=State.OPEN, workspace=workspace)


def _select(
    db: sqlite3.Connection, state: State | None, workspace: str | None, limit: int | None
) -> list[Notification]:
    clauses: list[str] = []
    params: list[Any] = []
    if state is not None:
        clauses.append("state = ?")
        params.append(str(state))
    if workspace is not None:
        clauses.append("workspace_id = ?")
        params.append(workspace)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    tail = " LIMIT ?" if limit is not None else ""
    if limit is not None:
        params.append(limit)
    rows = db.execute(f"SELECT {COLUMNS} FROM notifications {where} ORDER BY id DESC{tail}", params)
    return [_notification(row) for row in rows.fetchall()]


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
