"""The engine's writable handle on a fleet's notifications: two tables in the queue's PostgreSQL database.

The counterpart of `delivery.alerts.store.NotificationStore` (the SQLite
file) on the shared backend, with its methods (`watch_states`, `record`,
`close`) and the columns of its tables (`ingest.notifications.SCHEMA`; the
queue's migration 3 creates them). Several engines write here, so it has
what they need to agree on each destination's standing (docs/fleet.md,
"Shared alert state"):

- every standing row has a `version`, one more at each write, and healthy
  destinations keep their row (and its version) once they have one;
- `record(..., expected=v)` writes only over version `v` and returns the
  new version, or None, writing nothing, when another engine wrote the row
  since (the caller then reloads it: `standing`);
- `standings()` reads every row with its version (each engine re-reads them
  every few seconds, to take up what another stored);
- `enable(destination_id, notify)` re-enables a disabled destination in one
  transaction, whichever engine owns it.

Every method blocks on the network (from asyncio, call it through
`asyncio.to_thread`). Errors are `ingest.notifications.NotificationsError`,
whose message names the server and never the DSN's password.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from delivery.alerts.auth_watch import HEALTHY, Phase, WatchState
from delivery.alerts.store import NewNotification, Standing
from ingest.dsn import connect_timeout, describe, redact_dsn, scrub
from ingest.notifications import COLUMNS, NotificationsError, State

T = TypeVar("T")

_WATCH_COLUMNS = "phase, failures, first_failure_at, disabled_at, next_probe_at, version"
_STANDINGS = f"SELECT destination_id, {_WATCH_COLUMNS} FROM destination_watch"
_STANDING = f"SELECT {_WATCH_COLUMNS} FROM destination_watch WHERE destination_id = %s"
# Written over version `expected` only (None: whatever is there); a new row starts at expected + 1.
# When the version does not match, the row is left as it is and nothing is returned.
_WRITE = """
INSERT INTO destination_watch AS w
    (destination_id, phase, failures, first_failure_at, disabled_at, next_probe_at, version)
VALUES (%(destination)s, %(phase)s, %(failures)s, %(first)s, %(disabled)s, %(probe)s,
    coalesce(%(expected)s::bigint, 0) + 1)
ON CONFLICT (destination_id) DO UPDATE SET
    phase = excluded.phase, failures = excluded.failures, first_failure_at = excluded.first_failure_at,
    disabled_at = excluded.disabled_at, next_probe_at = excluded.next_probe_at, version = w.version + 1
WHERE %(expected)s::bigint IS NULL OR w.version = %(expected)s::bigint
RETURNING version
"""
_LOCK = f"{_STANDING} FOR UPDATE"
_RESOLVE = """
UPDATE notifications SET state = 'resolved', resolved_at = %s WHERE destination_id = %s AND state = 'open'
"""
_INSERT = (
    f"INSERT INTO notifications ({COLUMNS}) VALUES ({', '.join(['%s'] * 13)}) ON CONFLICT (id) DO NOTHING"
)
_TABLES = "SELECT to_regclass('notifications') IS NOT NULL AND to_regclass('destination_watch') IS NOT NULL"


class PostgresNotificationStore:
    """The engine's writable handle on the fleet's notifications; see the module docstring.

    A small pool (one connection, two at most): an engine writes here from
    one task, a few times a day plus a read every few seconds.
    """

    def __init__(self, dsn: str, *, connect_timeout_s: float = 10.0) -> None:
        """Connect to the queue's database; `NotificationsError` if it cannot, or lacks the tables.

        The tables are the queue's migration 3: `PostgresQueue` applies it
        when it opens (the engine opens the queue first), or `deliverydash
        migrate` does.
        """
        self.target = redact_dsn(dsn)
        """The DSN without its password."""
        self._dsn = dsn
        self._where = describe(dsn)
        self._timeout_s = connect_timeout_s
        try:
            timeout = connect_timeout(dsn, connect_timeout_s)
            # One connection first: its failure is reported here, scrubbed; the pool's would be retried.
            with psycopg.connect(dsn, autocommit=True, connect_timeout=timeout) as db:
                row = db.execute(_TABLES).fetchone()
        except psycopg.Error as error:
            raise self._error(error) from None
        if not row or not row[0]:
            raise NotificationsError(
                f"PostgreSQL ({self._where}) has no notification tables: apply the queue's migrations "
                "first (deliverydash migrate)"
            )
        self._pool: ConnectionPool[Any] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=2,
            open=False,
            kwargs={"autocommit": True, "connect_timeout": timeout},
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced first
            name=f"deliverydash-alerts-{os.getpid()}",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout:
            self._pool.close()
            raise NotificationsError(
                f"cannot connect to PostgreSQL ({self._where}): no connection within {connect_timeout_s:g} s"
            ) from None

    def __repr__(self) -> str:
        return f"PostgresNotificationStore({self.target!r})"

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.close()

    def watch_states(self) -> dict[str, WatchState]:
        """The stored standing of every destination that is not healthy."""
        return {d: s.state for d, s in self.standings().items() if s.state.phase is not Phase.HEALTHY}

    def standings(self) -> dict[str, Standing]:
        """Every stored standing (healthy ones too) with its version."""
        rows = self._run(lambda db: db.execute(_STANDINGS).fetchall())
        return {row[0]: _standing(row[1:]) for row in rows}

    def standing(self, destination_id: str) -> Standing:
        """One destination's stored standing (healthy, version 0, when it has none)."""
        row = self._run(lambda db: db.execute(_STANDING, (destination_id,)).fetchone())
        return _standing(row) if row is not None else Standing()

    def record(
        self,
        destination_id: str,
        state: WatchState,
        notifications: Iterable[NewNotification] = (),
        *,
        expected: int | None = None,
    ) -> int | None:
        """Store a standing and the notifications it raised, in one transaction; the row's new version.

        With `expected`, only over that version (0: no row yet): if another
        engine wrote the row since, nothing is written and None returned.
        """
        notes = list(notifications)
        params = {
            "destination": destination_id,
            "phase": str(state.phase),
            "failures": state.failures,
            "first": state.first_failure_at,
            "disabled": state.disabled_at,
            "probe": state.next_probe_at,
            "expected": expected,
        }

        def write(db: psycopg.Connection[Any]) -> int | None:
            with db.transaction():
                row = db.execute(_WRITE, params).fetchone()
                if row is None:
                    return None  # another engine's version: nothing to roll back
                for note in notes:
                    _insert(db, note)
                return int(row[0])

        return self._run(write)

    def enable(
        self, destination_id: str, notify: Callable[[WatchState], NewNotification]
    ) -> tuple[NewNotification | None, Standing]:
        """Re-enable a destination if auth failures disabled it; (its notification or None, the standing).

        One transaction holding the row's lock: the stored standing is read;
        if it is disabled, `notify(before)` makes the `enabled` notification,
        which is stored with the destination made healthy (the row's version
        one more, so its owner's next write over the old version fails and it
        reloads) and every open notification of it resolved.
        """

        def apply(db: psycopg.Connection[Any]) -> tuple[NewNotification | None, Standing]:
            with db.transaction():
                row = db.execute(_LOCK, (destination_id,)).fetchone()
                before = _standing(row) if row is not None else Standing()
                if before.state.phase is not Phase.DISABLED:
                    return None, before
                note = notify(before.state)
                written = db.execute(_WRITE, _healthy(destination_id, before.version)).fetchone()
                if written is None:  # unreachable under the row lock; refuse rather than guess
                    raise NotificationsError(f"the standing of {destination_id} changed while locked")
                _insert(db, note)
                return note, Standing(HEALTHY, int(written[0]))

        return self._run(apply)

    # -- plumbing ---------------------------------------------------------------------------------

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        try:
            with self._pool.connection(timeout=self._timeout_s) as db:
                return work(db)
        except PoolTimeout:
            raise NotificationsError(
                f"no connection to PostgreSQL ({self._where}) within {self._timeout_s:g} s"
            ) from None
        except psycopg.Error as error:
            raise self._error(error) from None

    def _error(self, error: psycopg.Error) -> NotificationsError:
        # Not chained by the callers: the driver's exception may quote the DSN.
        code = f" [{error.sqlstate}]" if error.sqlstate else ""
        return NotificationsError(
            f"notifications in PostgreSQL ({self._where}){code}: {scrub(str(error), self._dsn)}"
        )


def _standing(row: tuple[Any, ...]) -> Standing:
    """A `Standing` from (phase, failures, first_failure_at, disabled_at, next_probe_at, version)."""
    phase, failures, first, disabled, probe, version = row
    return Standing(WatchState(Phase(phase), failures, first, disabled, probe), int(version))


def _healthy(destination_id: str, expected: int) -> dict[str, Any]:
    return {
        "destination": destination_id,
        "phase": str(Phase.HEALTHY),
        "failures": 0,
        "first": None,
        "disabled": None,
        "probe": None,
        "expected": expected,
    }


def _insert(db: psycopg.Connection[Any], note: NewNotification) -> None:
    """Add a notification; one that resolves closes the destination's open ones first."""
    if note.resolves:
        db.execute(_RESOLVE, (note.created_at, note.destination_id))
    state = State.RESOLVED if note.resolves else State.OPEN
    db.execute(
        _INSERT,
        (
            note.id,
            note.kind,
            str(state),
            _text(note.workspace_id),
            _text(note.destination_id),
            _text(note.integration),
            note.created_at,
            note.first_seen_at,
            note.failures,
            note.status_code,
            _text(note.sample_body) if note.sample_body is not None else None,
            _text(note.message),
            note.created_at if note.resolves else None,
        ),
    )


def _text(value: str) -> str:
    """`value` as PostgreSQL's text takes it: no NUL, no lone surrogate (a partner's body may hold either).

    SQLite stores both; PostgreSQL would refuse the whole transaction, and
    with it the destination's standing.
    """
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
