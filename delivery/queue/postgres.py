"""The shared queue: PostgreSQL, for any number of engine processes on one machine or many.

The tables are the embedded backend's (docs/queue.md), except that a job
holds its events' ids as an array (no ``job_events`` table: one row less to
write and delete per job), plus the outbox's batches and the schema's
version table. What differs, because several processes share the database:

- **Claims** read each ready destination's oldest claimable jobs (at most
  its share), choose among them by the same fairness rule as SQLite
  (`delivery.queue.claims`), then lock the chosen with ``FOR UPDATE SKIP
  LOCKED``, check again that each is claimable, and lease them. Two engines
  claiming at once skip each other's rows instead of waiting, and never
  lease one job twice; one that lost a race gets fewer jobs. Without batching
  destinations the rule is "the `limit` oldest", and the claim is one
  statement; with them, two.
- **The database's clock** decides leases: a lease expires at the database's
  ``clock_timestamp()`` + ``lease_s``, and "due" and "lapsed" are judged
  against that clock, so an engine whose clock is off cannot take a live
  lease. The ``now`` arguments of the `Queue` protocol are not used for that;
  due times the caller passes (``received_at``, ``reschedule``'s ``due_at``)
  are stored as given.
- **Settlements** lock the group's jobs in id order and check their lease
  tokens (one round trip), then write every change and the records, and
  commit (a second). An event still shared with other destinations' jobs is
  counted down under a lock taken in id order, so two groups never deadlock.
- **De-duplication** is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``
  expired ``RETURNING`` in the same statement that stores the events: two
  processes inserting one messageId at once are ordered by the row lock, the
  second sees the first's row, and only one of them accepts the event.
- **The outbox** is shared by every engine's exporter: a batch belongs to one
  queue instance at a time (`instance_id`) under a lease from the database's
  clock (``outbox_lease_s``), renewed each time its owner asks for it. A batch
  whose owner stopped asking (died) is resumed by another exporter once its
  lease lapsed. `outbox_ack` by an exporter that lost its batch raises
  `LeaseLost` and deletes nothing.
- **`recover`** frees only leases that already lapsed by the database's
  clock: other leases may belong to live engines.
- **Migrations** are numbered, recorded in ``schema_migrations`` and applied
  at start (or ahead of a roll-out with `migrate`) under an advisory lock, so
  engines starting together apply each once. A database migrated by newer
  code is refused.

Errors are mapped at this edge: disk full (SQLSTATE 53100) is `StorageFull`,
with nothing of the call stored; anything else from the driver is a
`QueueError`; a deadlock between two transactions is retried. The password of
the DSN never reaches a message: `redact_dsn` hides it for logs and status
pages, and connection failures name host, port, database and user only.

Threads: every method blocks on the network; calls from many threads each
take a connection of a pool (``min_size``..``max_size``). From asyncio, call
them through `asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, Unpack

import numpy as np
import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

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

# `redact_dsn` is re-exported (callers import it from here); the others keep their old private names.
from ingest.dsn import connect_timeout as _connect_timeout
from ingest.dsn import describe as _target
from ingest.dsn import redact_dsn as redact_dsn
from ingest.dsn import scrub as _scrub
from ingest.ids import new_id, new_ids

T = TypeVar("T")

#: Schema migrations, recorded in ``schema_migrations`` (one row per version). Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # As in SQLite: an event's payload is stored once however many
        # destinations it fans out to; `refs` counts its unfinished jobs.
        """CREATE TABLE events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            message_id text NOT NULL,
            workspace_id text NOT NULL,
            source_id text NOT NULL,
            type text NOT NULL,
            name text,
            payload bytea NOT NULL,
            received_at double precision NOT NULL,
            refs integer NOT NULL
        )""",
        # `available_at`: its due time while pending, its lease's expiry
        # (database clock) while leased; finished jobs are deleted. Its events
        # in order are an array (SQLite's `job_events` table): one row less
        # to write and delete per job.
        """CREATE TABLE jobs (
            id text PRIMARY KEY,
            destination_id text NOT NULL,
            event_ids bigint[] NOT NULL,
            state text NOT NULL CHECK (state IN ('pending', 'leased')),
            attempts integer NOT NULL DEFAULT 0,
            due_at double precision NOT NULL,
            available_at double precision NOT NULL,
            received_at double precision NOT NULL,
            first_error_class text,
            lease_owner text,
            lease_token text,
            lease_expires_at double precision
        )""",
        "CREATE INDEX jobs_claim ON jobs (destination_id, available_at, id)",
        "CREATE INDEX jobs_leased ON jobs (lease_owner) WHERE lease_owner IS NOT NULL",
        """CREATE TABLE dedup (
            source_id text NOT NULL,
            message_id text NOT NULL,
            seen_at double precision NOT NULL,
            PRIMARY KEY (source_id, message_id)
        )""",
        "CREATE INDEX dedup_expiry ON dedup (seen_at)",
        """CREATE TABLE outbox (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            batch_id text,
            record text NOT NULL
        )""",
        "CREATE INDEX outbox_open ON outbox (batch_id) WHERE batch_id IS NOT NULL",
        "CREATE INDEX outbox_unbatched ON outbox (id) WHERE batch_id IS NULL",
        # Which queue instance exports a batch, until when (database clock).
        """CREATE TABLE outbox_batches (
            batch_id text PRIMARY KEY,
            owner text NOT NULL,
            lease_expires_at double precision NOT NULL
        )""",
    ),
    (
        # A fleet's engines and who owns each destination (`delivery.ownership`):
        # heartbeats and ownership leases, both by the database's clock.
        """CREATE TABLE fleet_engines (
            engine text PRIMARY KEY,
            alive_until double precision NOT NULL
        )""",
        """CREATE TABLE destination_owners (
            destination_id text PRIMARY KEY,
            engine text NOT NULL,
            expires_at double precision NOT NULL
        )""",
    ),
    (
        # The fleet's notifications and each destination's auth standing (`delivery.alerts`):
        # the columns of the SQLite file's (`ingest.notifications.SCHEMA`), so that any engine's
        # admin API lists and clears what another raised. `version` goes up by one at every
        # write of a standing, which names the version it replaces: an engine holding a stale
        # copy (another re-enabled the destination meanwhile) writes nothing and reloads.
        """CREATE TABLE notifications (
            id text PRIMARY KEY,
            kind text NOT NULL,
            state text NOT NULL CHECK (state IN ('open', 'resolved')),
            workspace_id text NOT NULL,
            destination_id text NOT NULL,
            integration text NOT NULL,
            created_at double precision NOT NULL,
            first_seen_at double precision,
            failures integer NOT NULL DEFAULT 0,
            status_code integer,
            sample_body text,
            message text NOT NULL,
            resolved_at double precision
        )""",
        "CREATE INDEX notifications_open ON notifications (state, destination_id)",
        """CREATE TABLE destination_watch (
            destination_id text PRIMARY KEY,
            phase text NOT NULL,
            failures integer NOT NULL,
            first_failure_at double precision,
            disabled_at double precision,
            next_probe_at double precision,
            version bigint NOT NULL
        )""",
    ),
    (
        # The events of jobs that ended undelivered, one row each, until a replay takes
        # them (`replay_id`) or they expire (docs/replay.md); and the job a job replays.
        """CREATE TABLE dead_letters (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id text NOT NULL,
            position integer NOT NULL,
            destination_id text NOT NULL,
            message_id text NOT NULL,
            workspace_id text NOT NULL,
            source_id text NOT NULL,
            type text NOT NULL,
            name text,
            payload bytea NOT NULL,
            received_at double precision NOT NULL,
            ended_at double precision NOT NULL,
            outcome text NOT NULL,
            error_class text,
            replay_of text,
            replay_id text
        )""",
        "CREATE INDEX dead_letters_destination ON dead_letters (destination_id, ended_at)",
        "CREATE INDEX dead_letters_ended ON dead_letters (ended_at)",
        "ALTER TABLE jobs ADD COLUMN replay_of text",
    ),
)

#: The advisory lock held while migrating ("delivery" in ASCII), per database.
MIGRATION_LOCK = 0x64656C6976657279
#: Seconds an exporter keeps an outbox batch without asking for it again.
OUTBOX_LEASE_S = 120.0
#: Tries of a transaction PostgreSQL aborted as a deadlock.
_TRIES = 5
#: Dedup entries pruned per enqueue at most, and how often (seconds of `received_at`).
_PRUNE_ROWS = 10_000
_PRUNE_EVERY_S = 1.0

# The database's clock in epoch seconds, read once per statement.
_NOW = "SELECT extract(epoch FROM clock_timestamp())::float8 AS now"
_CLOCK = f"clock AS MATERIALIZED ({_NOW})"

_ENQUEUE = f"""
WITH input AS (
    SELECT * FROM unnest(
        %(message_id)b::text[], %(workspace_id)b::text[], %(source_id)b::text[], %(type)b::text[],
        %(name)b::text[], %(payload)b::bytea[], %(received_at)b::float8[], %(refs)b::int[]
    ) WITH ORDINALITY AS input(message_id, workspace_id, source_id, type, name, payload, received_at, refs, n)
),
-- Accepted: never seen, or seen {DEDUP_WINDOW_S:.0f} s or more before. Keys in order, so that
-- two calls inserting overlapping keys lock them in the same order.
accepted AS (
    INSERT INTO dedup AS seen (source_id, message_id, seen_at)
    SELECT source_id, message_id, received_at FROM input ORDER BY source_id, message_id
    ON CONFLICT (source_id, message_id) DO UPDATE SET seen_at = excluded.seen_at
    WHERE seen.seen_at <= excluded.seen_at - %(window)s
    RETURNING source_id, message_id
),
stored AS (
    INSERT INTO events (message_id, workspace_id, source_id, type, name, payload, received_at, refs)
    SELECT i.message_id, i.workspace_id, i.source_id, i.type, i.name, i.payload, i.received_at, i.refs
    FROM input i JOIN accepted a USING (source_id, message_id)
    WHERE i.refs > 0
    ORDER BY i.n
    RETURNING id, source_id, message_id
),
fanout AS MATERIALIZED (
    SELECT j.job_id, j.destination_id, s.id AS event_id, i.received_at
    FROM unnest(%(job_id)b::text[], %(destination_id)b::text[], %(event_n)b::int[])
        AS j(job_id, destination_id, n)
    JOIN input i USING (n)
    JOIN stored s ON s.source_id = i.source_id AND s.message_id = i.message_id
),
jobs_stored AS (
    INSERT INTO jobs (id, destination_id, event_ids, state, due_at, available_at, received_at)
    SELECT job_id, destination_id, ARRAY[event_id], 'pending', received_at, received_at, received_at
    FROM fanout
)
SELECT source_id, message_id FROM accepted
"""
# Expired entries, a bounded number at a time, skipping rows another enqueue holds.
_PRUNE = f"""
DELETE FROM dedup WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM dedup WHERE seen_at < %s LIMIT {_PRUNE_ROWS} FOR UPDATE SKIP LOCKED
))
"""
# Each ready destination's oldest claimable jobs, at most its share (read, not locked: most
# are not chosen). Destinations are found by a skip-scan of `jobs_claim` (one index seek
# each); those excluded or lingering are left out before `limit` applies.
_READY = f"""
WITH RECURSIVE {_CLOCK},
destination(id) AS (
    (SELECT destination_id FROM jobs ORDER BY destination_id LIMIT 1)
    UNION ALL
    SELECT (SELECT destination_id FROM jobs WHERE destination_id > destination.id
            ORDER BY destination_id LIMIT 1)
    FROM destination WHERE destination.id IS NOT NULL
),
ready AS (
    SELECT d.id, coalesce(share.n, %(default_share)s) AS share
    FROM (SELECT id FROM destination WHERE id IS NOT NULL) d
    CROSS JOIN LATERAL (SELECT min(available_at) AS ready_at FROM jobs WHERE destination_id = d.id) oldest
    CROSS JOIN clock
    LEFT JOIN unnest(%(share_ids)s::text[], %(shares)s::int[]) AS share(id, n) ON share.id = d.id
    WHERE oldest.ready_at <= clock.now
      AND d.id <> ALL(%(excluded)s::text[])
      AND coalesce(share.n, %(default_share)s) > 0
      AND (d.id <> ALL(%(batching)s::text[]) OR oldest.ready_at <= clock.now - %(linger_s)s)
    ORDER BY oldest.ready_at
    LIMIT %(limit)s
)"""
_CANDIDATE_JOBS = """
FROM ready CROSS JOIN clock CROSS JOIN LATERAL (
    SELECT id, available_at, attempts, replay_of FROM jobs
    WHERE destination_id = ready.id AND available_at <= clock.now
    ORDER BY available_at, id
    LIMIT ready.share
) job"""
_CANDIDATES = (
    f"{_READY}\nSELECT job.available_at, job.id, ready.id, job.attempts, job.replay_of{_CANDIDATE_JOBS}"
)
# The chosen jobs that are still claimable, locked, skipping those another transaction holds,
# then leased: one that another claim took since it was read has a lease that has not lapsed
# (or is gone), fails the check, and is left out. Rows: the job's columns, then an event's.
_LEASED = """
leased AS (
    UPDATE jobs SET state = 'leased', lease_owner = %(owner)s, lease_token = %(token)s,
        lease_expires_at = clock.now + %(lease_s)s, available_at = clock.now + %(lease_s)s
    FROM clock WHERE jobs.id IN (
        SELECT id FROM jobs, clock
        WHERE id IN (SELECT id FROM chosen) AND available_at <= clock.now
        FOR UPDATE OF jobs SKIP LOCKED
    )
    RETURNING jobs.id, jobs.destination_id, jobs.state, jobs.attempts, jobs.due_at, jobs.received_at,
        jobs.first_error_class, jobs.lease_owner, jobs.lease_expires_at, jobs.replay_of, jobs.event_ids
)
SELECT leased.id, leased.destination_id, leased.state, leased.attempts, leased.due_at, leased.received_at,
    leased.first_error_class, leased.lease_owner, leased.lease_expires_at, leased.replay_of,
    e.message_id, e.workspace_id, e.source_id, e.type, e.name, e.payload, e.received_at
FROM leased JOIN chosen USING (id)
    CROSS JOIN LATERAL unnest(leased.event_ids) WITH ORDINALITY AS je(event_id, position)
    JOIN events e ON e.id = je.event_id
ORDER BY chosen.rank, je.position
"""
# Leases the jobs `claims.choose` picked from `_CANDIDATES` (a second statement).
_LEASE = f"""
WITH {_CLOCK},
chosen AS (SELECT * FROM unnest(%(ids)b::text[]) WITH ORDINALITY AS chosen(id, rank)),
{_LEASED}"""
# Without batching destinations, `claims.choose` takes the `limit` oldest candidates (each
# destination's share is already its cap): reading and leasing are then one statement.
_CLAIM_OLDEST = f"""{_READY},
chosen AS (
    SELECT job.id, row_number() OVER (ORDER BY job.available_at, job.id) AS rank{_CANDIDATE_JOBS}
    ORDER BY job.available_at, job.id
    LIMIT %(limit)s
),
{_LEASED}"""
# A settle group locks its jobs (in id order) and reads their events' reference counts.
_LOCK_JOBS = """
SELECT j.id, j.lease_token, je.event_id, e.refs
FROM jobs j CROSS JOIN LATERAL unnest(j.event_ids) AS je(event_id) JOIN events e ON e.id = je.event_id
WHERE j.id = ANY(%b) AND j.state = 'leased'
ORDER BY j.id
FOR UPDATE OF j
"""
_FINISH_JOBS = "DELETE FROM jobs WHERE id = ANY(%b)"
# An event only the group's finished jobs referred to: nobody else can touch it.
_DELETE_EVENTS = "DELETE FROM events WHERE id = ANY(%b)"
# An event other jobs still share (fan-out): locked in id order, so that two groups finishing
# jobs of the same events never wait for each other in a cycle, then counted down.
_RELEASE_SHARED = (
    "SELECT FROM events WHERE id = ANY(%(events)b) ORDER BY id FOR UPDATE",
    "UPDATE events SET refs = refs - c.n FROM unnest(%(events)b::bigint[], %(counts)b::int[]) AS c(id, n) "
    "WHERE events.id = c.id",
    "DELETE FROM events WHERE id = ANY(%(events)b) AND refs <= 0",
)
# A merged job's events move to the end of the job that carried them, in order; the merged
# jobs are deleted (each event keeps its one reference from this destination, now through it).
_MERGE = """
WITH m AS (SELECT * FROM unnest(%b::text[], %b::text[], %b::int[]) AS m(target, part, rank)),
moved AS (
    SELECT m.target, array_agg(x.event_id ORDER BY m.rank, x.position) AS event_ids
    FROM m JOIN jobs p ON p.id = m.part
        CROSS JOIN LATERAL unnest(p.event_ids) WITH ORDINALITY AS x(event_id, position)
    GROUP BY m.target
),
parts_gone AS (DELETE FROM jobs WHERE id IN (SELECT part FROM m))
UPDATE jobs SET event_ids = jobs.event_ids || moved.event_ids FROM moved WHERE jobs.id = moved.target
"""
_RESCHEDULE = """
UPDATE jobs SET state = 'pending', attempts = attempts + 1, due_at = r.due_at, available_at = r.due_at,
    first_error_class = coalesce(jobs.first_error_class, r.first_class),
    received_at = coalesce(r.received_at, jobs.received_at),
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
FROM unnest(%s::text[], %s::float8[], %s::text[], %s::float8[]) AS r(id, due_at, first_class, received_at)
WHERE jobs.id = r.id
"""
_ADD_RECORDS = """
INSERT INTO outbox (record) SELECT r FROM unnest(%b::text[]) WITH ORDINALITY AS u(r, n) ORDER BY n
"""
_UNLEASE = """
UPDATE jobs SET state = 'pending', available_at = due_at, lease_owner = NULL, lease_token = NULL,
    lease_expires_at = NULL
WHERE id IN ({which})
"""
_OWNED_BY = "SELECT id FROM jobs WHERE lease_owner = %(owner)s ORDER BY id FOR UPDATE"
_OWNED_LEASES = """
SELECT j.id FROM jobs j JOIN unnest(%(ids)s::text[], %(tokens)s::text[]) AS r(id, token)
    ON j.id = r.id AND j.lease_token = r.token
WHERE j.lease_owner = %(owner)s ORDER BY j.id FOR UPDATE OF j
"""
_LAPSED = f"""
SELECT id FROM jobs, ({_NOW}) clock
WHERE state = 'leased' AND lease_expires_at <= clock.now ORDER BY id FOR UPDATE OF jobs SKIP LOCKED
"""
# The caller's own open batch first, else one whose owner's lease lapsed: taken (or renewed).
_TAKE_BATCH = f"""
WITH {_CLOCK},
candidate AS (
    SELECT b.batch_id FROM outbox_batches b, clock
    WHERE b.owner = %(me)s OR b.lease_expires_at <= clock.now
    ORDER BY b.owner = %(me)s DESC, b.batch_id
    LIMIT 1 FOR UPDATE OF b SKIP LOCKED
)
UPDATE outbox_batches b SET owner = %(me)s, lease_expires_at = clock.now + %(lease_s)s
FROM candidate, clock WHERE b.batch_id = candidate.batch_id
RETURNING b.batch_id
"""
_NEW_BATCH = f"""
WITH {_CLOCK},
taken AS (
    UPDATE outbox SET batch_id = %(batch_id)s
    WHERE id IN (
        SELECT id FROM outbox WHERE batch_id IS NULL ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    )
    RETURNING id, record
),
opened AS (
    INSERT INTO outbox_batches (batch_id, owner, lease_expires_at)
    SELECT %(batch_id)s, %(me)s, clock.now + %(lease_s)s FROM clock WHERE EXISTS (SELECT FROM taken)
)
SELECT count(*), string_agg(record, E'\\n' ORDER BY id) FROM taken
"""
_BATCH_LINES = "SELECT string_agg(record, E'\\n' ORDER BY id) FROM outbox WHERE batch_id = %s"
_ACK = """
WITH owned AS (DELETE FROM outbox_batches WHERE batch_id = %(batch_id)s AND owner = %(me)s RETURNING batch_id)
DELETE FROM outbox WHERE batch_id IN (SELECT batch_id FROM owned)
"""
_BATCH_OWNER = "SELECT owner FROM outbox_batches WHERE batch_id = %s"
_HEARTBEAT = f"""WITH {_CLOCK},
beat AS (
    INSERT INTO fleet_engines (engine, alive_until) SELECT %(engine)s, now + %(lease_s)s FROM clock
    ON CONFLICT (engine) DO UPDATE SET alive_until = excluded.alive_until
)
SELECT engine FROM fleet_engines, clock WHERE alive_until >= now AND engine <> %(engine)s
UNION ALL SELECT %(engine)s ORDER BY 1"""
# Engines gone for a day are forgotten (their rows only name them).
_FORGET_ENGINES = f"WITH {_CLOCK} DELETE FROM fleet_engines USING clock WHERE alive_until < now - 86400"
# Take each wanted destination that is free, lapsed or already ours; renew ours.
_ACQUIRE = f"""WITH {_CLOCK}
INSERT INTO destination_owners AS owner (destination_id, engine, expires_at)
SELECT wanted, %(engine)s, now + %(lease_s)s FROM unnest(%(destinations)s::text[]) AS wanted, clock
ON CONFLICT (destination_id) DO UPDATE SET engine = excluded.engine, expires_at = excluded.expires_at
WHERE owner.engine = excluded.engine OR owner.expires_at < (SELECT now FROM clock)
RETURNING destination_id"""
_OWNERS = (
    f"WITH {_CLOCK} SELECT destination_id, engine FROM destination_owners, clock WHERE expires_at >= now"
)
_RELEASE_DESTINATIONS = (
    "DELETE FROM destination_owners WHERE engine = %(engine)s AND destination_id = ANY(%(destinations)s)"
)
_JOB_COLUMNS = 10
_KEEP_DEAD_LETTERS = (
    f"INSERT INTO dead_letters ({', '.join(dead_letters.COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(dead_letters.COLUMNS))})"
)
# A replay's chunk of dead letters (naming the first job of each event, a replay's too), locked:
# a replay running at the same time on another engine waits, then finds them marked and leaves
# them (READ COMMITTED checks the rows again).
_REPLAY_CHUNK = (
    "SELECT id, coalesce(replay_of, job_id), destination_id, message_id, workspace_id, source_id, type, "
    "name, payload, received_at FROM dead_letters WHERE {condition} AND id > %(after)s "
    "ORDER BY id LIMIT {limit} FOR UPDATE"
)
_EVENT_IDS = "SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, %s)"
_REPLAY_EVENTS = """
INSERT INTO events (id, message_id, workspace_id, source_id, type, name, payload, received_at, refs)
OVERRIDING SYSTEM VALUE
SELECT *, 1 FROM unnest(
    %b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::bytea[], %b::float8[]
)
"""
_REPLAY_JOBS = """
INSERT INTO jobs (id, destination_id, event_ids, state, due_at, available_at, received_at, replay_of)
SELECT id, destination_id, ARRAY[event_id], 'pending', %b, %b, received_at, replay_of
FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::float8[], %b::text[])
    AS r(id, destination_id, event_id, received_at, replay_of)
"""


# --- the DSN, without its password: `ingest.dsn` (the notifications' reader needs it too) ---


def _connect(dsn: str, connect_timeout_s: float) -> psycopg.Connection[Any]:
    """One connection in autocommit mode, or a `QueueError` that names the server but not the password."""
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=_connect_timeout(dsn, connect_timeout_s))
    except psycopg.Error as error:
        reason = _scrub(str(error), dsn)
        raise QueueError(f"cannot connect to PostgreSQL ({_target(dsn)}): {reason}") from None


# --- migrations ---


def _schema_version(db: psycopg.Connection[Any]) -> int:
    exists = db.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def _check_not_newer(version: int, dsn: str) -> None:
    if version > len(MIGRATIONS):
        raise QueueError(
            f"the PostgreSQL queue ({_target(dsn)}) has schema version {version}, newer than this code's "
            f"{len(MIGRATIONS)}: it was migrated by a newer deliverydash; run that version"
        )


def _apply_migrations(db: psycopg.Connection[Any], dsn: str) -> tuple[int, int]:
    """Bring the schema to the latest version, one transaction under the advisory lock; (before, after)."""
    with db.transaction():
        # Engines starting together wait here for the first to finish, then find nothing to do.
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        before = _schema_version(db)
        _check_not_newer(before, dsn)
        if before == len(MIGRATIONS):
            return before, before  # up to date: nothing created, so no CREATE privilege needed
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, statements in enumerate(MIGRATIONS[before:], start=before + 1):
            for statement in statements:
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
    return before, len(MIGRATIONS)


def migrate(dsn: str, *, connect_timeout_s: float = 10.0) -> tuple[int, int]:
    """Apply the queue's pending schema migrations to the database at `dsn`; (version before, after).

    For an operator to run ahead of a roll-out (``deliverydash migrate``), so
    that engines started with ``migrate=False`` find the schema ready. Safe
    to run while engines run and to run twice (the second finds nothing to
    do), and from several places at once (an advisory lock orders them).
    Raises `QueueError` if the database is newer than this code or cannot
    be reached (the message never holds the password).
    """
    with _connect(dsn, connect_timeout_s) as db:
        try:
            return _apply_migrations(db, dsn)
        except psycopg.Error as error:
            reason = _scrub(str(error), dsn)
            raise QueueError(f"migrating the PostgreSQL queue ({_target(dsn)}): {reason}") from error


# --- the queue ---


def _configure(db: psycopg.Connection[Any]) -> None:
    """Settings of every pooled connection.

    A queue's tables swing between empty and a large backlog faster than
    statistics follow: autovacuum analyzes them while they are empty, and when
    a backlog arrives the planner, believing them empty, scans them whole for
    every claim and settle. Measured: an engine idle for 12 s then given 3,000
    jobs delivered about 350 requests/s, against 6,000 when the jobs were there
    before the statistics (or after an ANALYZE). Every statement here is meant
    to run on its indexes, so sequential scans are priced out for this
    session (PostgreSQL still uses one where no index serves).

    JIT compilation is off for the same sessions. A statement that must still
    scan a table (the outbox's batches, the fleet's engines: small tables read
    by a condition no index serves) carries the priced-out scan's cost of 10^10,
    far above the JIT thresholds, so the server compiled it, inlined and
    optimized, on every call: about 190 ms of its CPU each, 1.3-1.9 s per
    20,000 requests in the engine benchmark, most of the server's CPU beside
    the claims (pg_stat_statements, docs/benchmarks.md, issue 16). These
    statements are short and touch few rows: compiling never pays for itself.
    """
    db.execute("SELECT set_config('enable_seqscan', 'off', false), set_config('jit', 'off', false)")


class PostgresQueue:
    """The `delivery.queue.Queue` protocol over a PostgreSQL database any number of engines share."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        migrate: bool = True,
        outbox_lease_s: float = OUTBOX_LEASE_S,
        connect_timeout_s: float = 10.0,
    ) -> None:
        """Connect to `dsn` (libpq URL or key=value form) and check or bring its schema up to date.

        `migrate`: apply pending migrations (else refuse a database that
        needs them: `migrate()` is then the operator's step). `min_size`,
        `max_size`: the connection pool's bounds. `outbox_lease_s`: how long
        an exporter may keep an outbox batch without asking for it again
        before another exporter takes it over. Raises `QueueError` when the
        database cannot be reached (naming host, port, database and user,
        never the password) or its schema does not fit this code.
        """
        self.target = redact_dsn(dsn)
        """The DSN without its password: for logs and status pages."""
        self.instance_id = f"{socket.gethostname()}-{os.getpid()}-{new_id()}"
        """This queue object's name as the owner of outbox batches (unique per process run)."""
        self.outbox_lease_s = outbox_lease_s
        self._dsn = dsn
        self._where = _target(dsn)
        self._connect_timeout_s = connect_timeout_s
        self._id_rng = np.random.default_rng()
        self._pruned_until = float("-inf")
        with _connect(dsn, connect_timeout_s) as db:
            try:
                if migrate:
                    _apply_migrations(db, dsn)
                else:
                    self._check_schema(db)
            except psycopg.Error as error:
                raise QueueError(f"PostgreSQL queue ({self._where}): {_scrub(str(error), dsn)}") from error
        self._pool: ConnectionPool[Any] = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True, "connect_timeout": _connect_timeout(dsn, connect_timeout_s)},
            configure=_configure,
            name=f"deliverydash-queue-{os.getpid()}",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout:
            self._pool.close()
            raise QueueError(
                f"cannot connect to PostgreSQL ({self._where}): no connection within {connect_timeout_s:g} s"
            ) from None

    def __repr__(self) -> str:
        return f"PostgresQueue({self.target!r})"

    @property
    def location(self) -> str:
        """See `delivery.queue.Queue.location`: the DSN without its password."""
        return self.target

    def _check_schema(self, db: psycopg.Connection[Any]) -> None:
        version = _schema_version(db)
        _check_not_newer(version, self._dsn)
        if version < len(MIGRATIONS):
            raise QueueError(
                f"the PostgreSQL queue ({self._where}) has schema version {version}, this code needs "
                f"{len(MIGRATIONS)}: apply the migrations first (deliverydash migrate)"
            )

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """A session advisory lock on a pooled connection, held while the block runs, if free.

        Released at the end of the block, or by the server when this
        engine's connection dies with it.
        """
        key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
        try:
            with self._pool.connection(timeout=self._connect_timeout_s) as db:
                row = db.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                held = bool(row and row[0])
                try:
                    yield held
                finally:
                    if held and not db.broken:
                        db.execute("SELECT pg_advisory_unlock(%s)", (key,))
        except PoolTimeout:
            raise QueueError(
                f"no connection to PostgreSQL ({self._where}) within {self._connect_timeout_s:g} s"
            ) from None
        except psycopg.Error as error:
            raise self._mapped(error) from error

    # --- plumbing ---

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work` in a transaction of its own on a pooled connection, errors mapped to the queue's.

        Tried again when PostgreSQL broke a deadlock with it, and when its
        connection turned out broken (the server restarted, or dropped it):
        the pool's other idle connections are checked first. A call whose
        connection broke mid-way may have been committed: a retried `enqueue`
        then sees its events as duplicates, a retried `settle` sees its jobs
        as lost (their records are written once either way).
        """
        for attempt in range(1, _TRIES + 1):
            used: psycopg.Connection[Any] | None = None
            try:
                with self._pool.connection(timeout=self._connect_timeout_s) as db:
                    used = db
                    return work(db)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as error:
                if attempt == _TRIES:
                    raise self._mapped(error) from error
            except PoolTimeout:
                raise QueueError(
                    f"no connection to PostgreSQL ({self._where}) within {self._connect_timeout_s:g} s"
                ) from None
            except psycopg.OperationalError as error:
                if used is None or not used.broken or attempt == _TRIES:
                    raise self._mapped(error) from error
                self._pool.check()
            except psycopg.Error as error:
                raise self._mapped(error) from error
        raise AssertionError("unreachable")

    def _mapped(self, error: psycopg.Error) -> QueueError:
        """The queue's exception for a driver's: `StorageFull` for a full disk, else `QueueError`."""
        reason = _scrub(str(error), self._dsn)
        if isinstance(error, psycopg.errors.DiskFull):
            return StorageFull(0, 0, reason=f"PostgreSQL's disk is full ({self._where}): {reason}")
        code = f" [{error.sqlstate}]" if error.sqlstate else ""
        return QueueError(f"PostgreSQL ({self._where}){code}: {reason}")

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.close()

    # --- the tracking API's side ---

    def enqueue(self, events: Sequence[Event], fanout: Mapping[str, Sequence[str]]) -> list[str]:
        """See `delivery.queue.Queue.enqueue`: one statement (de-duplication, events, jobs).

        Within one call, a messageId's first copy is the candidate, later ones
        are duplicates (as in SQLite, for copies received less than the
        window apart: the copies of one request share their `received_at`).
        """
        if not events:
            return []
        candidates: dict[tuple[str, str], Event] = {}
        for event in events:
            candidates.setdefault((event.source_id, event.message_id), event)
        chosen = list(candidates.values())
        destinations = [fanout.get(event.source_id, ()) for event in chosen]
        job_ids = iter(new_ids(sum(len(d) for d in destinations), self._id_rng))
        jobs: tuple[list[str], list[str], list[int]] = ([], [], [])
        for n, targets in enumerate(destinations, start=1):
            for destination_id in targets:
                jobs[0].append(next(job_ids))
                jobs[1].append(destination_id)
                jobs[2].append(n)
        params = {
            "message_id": [e.message_id for e in chosen],
            "workspace_id": [e.workspace_id for e in chosen],
            "source_id": [e.source_id for e in chosen],
            "type": [e.type for e in chosen],
            "name": [e.name for e in chosen],
            "payload": [e.payload for e in chosen],
            "received_at": [e.received_at for e in chosen],
            "refs": [len(d) for d in destinations],
            "job_id": jobs[0],
            "destination_id": jobs[1],
            "event_n": jobs[2],
            "window": DEDUP_WINDOW_S,
        }
        oldest = min(event.received_at for event in events)

        def store(db: psycopg.Connection[Any]) -> set[tuple[str, str]]:
            accepted = {(source, message) for source, message in db.execute(_ENQUEUE, params)}
            if oldest >= self._pruned_until:
                # A separate transaction: pruning never holds up (or fails) an enqueue.
                self._pruned_until = oldest + _PRUNE_EVERY_S
                db.execute(_PRUNE, (oldest - DEDUP_WINDOW_S,))
            return accepted

        accepted = self._run(store)
        return [e.message_id for e in chosen if (e.source_id, e.message_id) in accepted]

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
        """See `delivery.queue.Queue.claim`. Due, lapsed and lingering are judged by the database's clock.

        `now` (the caller's clock) is not used: leases expire at the
        database's time of the claim plus `lease_s`.
        """
        if limit <= 0 or per_destination_limit <= 0:
            return []
        limits, batches = limits or {}, batches or {}
        special = sorted(set(limits) | set(batches))
        batching = {d for d, size in batches.items() if size > 1}
        params = {
            "default_share": per_destination_limit,
            "share_ids": special,
            "shares": [destination_share(d, per_destination_limit, limits, batches) for d in special],
            "excluded": list(exclude),
            "batching": sorted(batching),
            "linger_s": linger_s,
            "limit": limit,
        }

        token = new_id()
        lease = {"owner": owner, "token": token, "lease_s": lease_s}

        def oldest(db: psycopg.Connection[Any]) -> list[Job]:
            rows = db.cursor(binary=True).execute(_CLAIM_OLDEST, params | lease).fetchall()
            return _jobs_from_rows(rows, token)

        def fairest(db: psycopg.Connection[Any]) -> list[Job]:
            # Two statements, each its own transaction: the second checks again what the first read.
            candidates: list[Candidate] = [
                # A replayed job goes alone: its record names the one job it replays.
                (
                    available_at,
                    job_id,
                    destination_id,
                    destination_id in batching and attempts == 0 and replay_of is None,
                )
                for available_at, job_id, destination_id, attempts, replay_of in db.execute(
                    _CANDIDATES, params
                )
            ]
            chosen = choose(candidates, limit, per_destination_limit, limits, batches)
            if not chosen:
                return []
            rows = db.cursor(binary=True).execute(_LEASE, lease | {"ids": chosen}).fetchall()
            return _jobs_from_rows(rows, token)

        return self._run(fairest if batching else oldest)

    @property
    def one_writer(self) -> bool:
        """See `delivery.queue.Queue.one_writer`: no, claims and settlements run side by side."""
        return False

    def claim_if_idle(self, owner: str, now: float, **options: Unpack[ClaimOptions]) -> list[Job] | None:
        """See `delivery.queue.Queue.claim_if_idle`: never (a claim is a round trip to the server)."""
        return None

    def complete(self, job: Job, record: Mapping[str, Any], now: float) -> None:
        """See `delivery.queue.Queue.complete`. `now` is not stored (the record says when)."""
        if self.settle([Settlement(job, record)]):
            raise LeaseLost(f"job {job.id} is no longer leased to {job.lease_owner!r} under this lease")

    def reschedule(self, job: Job, record: Mapping[str, Any], due_at: float) -> None:
        """See `delivery.queue.Queue.reschedule`."""
        if self.settle([Settlement(job, record, due_at)]):
            raise LeaseLost(f"job {job.id} is no longer leased to {job.lease_owner!r} under this lease")

    def settle(self, settlements: Sequence[Settlement]) -> list[Job]:
        """See `delivery.queue.Queue.settle`: one transaction, two round trips whatever the group's size.

        The first locks the group's jobs and reads their lease tokens and
        events; the second writes every change (finished jobs deleted
        together, reschedules in one statement, the records in one insert)
        and commits.
        """
        if not settlements:
            return []
        stored = [_outbox_form(s.job, s.record) for s in settlements]
        job_ids = [part.id for s in settlements for part in (s.job, *s.merged)]

        def apply(db: psycopg.Connection[Any]) -> list[Job]:
            with db.pipeline(), db.transaction():
                rows = db.execute(_LOCK_JOBS, (job_ids,)).fetchall()
                tokens = {job_id: token for job_id, token, _, _ in rows}
                lost, kept = _split_lost(settlements, stored, tokens)
                finished = [part.id for s, _ in kept if s.due_at is None for part in (s.job, *s.merged)]
                if finished:
                    _finish(db, finished, rows)
                _reschedule(db, [s for s, _ in kept if s.due_at is not None])
                if kept:
                    db.execute(_ADD_RECORDS, ([text for _, text in kept],))
                if dead := dead_letters.rows(s for s, _ in kept):
                    db.cursor().executemany(_KEEP_DEAD_LETTERS, dead)
            return lost

        return self._run(apply)

    def release(self, owner: str, jobs: Collection[Job] | None = None) -> int:
        """See `delivery.queue.Queue.release`."""
        params: dict[str, Any] = {"owner": owner}
        if jobs is None:
            query = _UNLEASE.format(which=_OWNED_BY)
        else:
            query = _UNLEASE.format(which=_OWNED_LEASES)
            params |= {"ids": [job.id for job in jobs], "tokens": [job.lease_token for job in jobs]}
        return self._run(lambda db: db.execute(query, params).rowcount)

    def recover(self, now: float) -> int:
        """See `delivery.queue.Queue.recover`: frees only leases that lapsed by the database's clock.

        Other engines may be running: a lease that has not lapsed may be
        theirs. A lapsed one is claimable anyway; freeing it puts it back at
        its due time, ahead of newer work. (An engine that is alive but slower
        than its lease loses it here, as it would to the next claim: keep
        `lease_s` well above the request timeout.) Leases of this process's
        own earlier run lapse `lease_s` after it died.
        """
        query = _UNLEASE.format(which=_LAPSED)
        return self._run(lambda db: db.execute(query).rowcount)

    # --- the exporter's side ---

    def outbox_batch(self, limit: int) -> OutboxBatch | None:
        """See `delivery.queue.Queue.outbox_batch`, for exporters sharing the outbox.

        This instance's own open batch (its lease renewed), else a batch whose
        exporter's lease lapsed (taken over): both `resumed`. Else a new
        batch of up to `limit` unbatched records, leased to this instance.
        """
        owner = {"me": self.instance_id, "lease_s": self.outbox_lease_s}

        def take(db: psycopg.Connection[Any]) -> OutboxBatch | None:
            with db.transaction():
                row = db.execute(_TAKE_BATCH, owner).fetchone()
                if row is not None:
                    (lines,) = db.execute(_BATCH_LINES, (row[0],)).fetchone() or (None,)
                    return OutboxBatch(row[0], (lines or "").encode(), resumed=True)
                batch_id = new_id()
                taken = db.execute(_NEW_BATCH, {**owner, "batch_id": batch_id, "limit": limit}).fetchone()
                if taken is None or not taken[0]:
                    return None
                return OutboxBatch(batch_id, taken[1].encode(), resumed=False)

        return self._run(take)

    def outbox_ack(self, batch_id: str) -> int:
        """See `delivery.queue.Queue.outbox_ack`.

        Raises `LeaseLost`, deleting nothing, if another exporter took the
        batch over (this one held it past `outbox_lease_s` without asking).
        """

        def ack(db: psycopg.Connection[Any]) -> int:
            with db.transaction():
                deleted = db.execute(_ACK, {"batch_id": batch_id, "me": self.instance_id}).rowcount
                if deleted:
                    return deleted
                holder = db.execute(_BATCH_OWNER, (batch_id,)).fetchone()
            if holder is not None and holder[0] != self.instance_id:
                raise LeaseLost(f"outbox batch {batch_id} was taken over by another exporter ({holder[0]})")
            return 0

        return self._run(ack)

    # --- dead letters ---

    def replay(
        self, selection: ReplaySelection, replay_id: str, now: float, *, dry_run: bool = False
    ) -> ReplayResult:
        """See `delivery.queue.Queue.replay`: a transaction per `dead_letters.CHUNK` dead letters.

        Each chunk's dead letters are locked, copied into jobs and marked
        together, so replays of the same selection from two engines at once
        replay each dead letter once; a replay cut short has replayed exactly
        what it marked.
        """
        condition, params = dead_letters.where(selection, "postgres")

        def count(db: psycopg.Connection[Any]) -> list[tuple[str, bool, int]]:
            return db.execute(
                f"SELECT destination_id, replay_id IS NOT NULL, count(*) FROM dead_letters WHERE {condition} "
                "GROUP BY 1, 2",
                params,
            ).fetchall()

        counted = dead_letters.tally(self._run(count), selection.again)
        if dry_run:
            return counted
        if not selection.again:
            condition += " AND replay_id IS NULL"
        chunk_sql = _REPLAY_CHUNK.format(condition=condition, limit=dead_letters.CHUNK)
        replayed: Counter[str] = Counter()
        after = 0

        def replay_chunk(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            with db.transaction():
                chunk = db.execute(chunk_sql, params | {"after": after}).fetchall()
                if chunk:
                    self._enqueue_replays(db, chunk, replay_id, now)
            return chunk

        while chunk := self._run(replay_chunk):
            replayed.update(row[2] for row in chunk)
            after = chunk[-1][0]
        return ReplayResult(sum(replayed.values()), dict(replayed), counted.already_replayed)

    def _enqueue_replays(
        self, db: psycopg.Connection[Any], chunk: Sequence[Sequence[Any]], replay_id: str, now: float
    ) -> None:
        """One new job per dead letter of `chunk` (`_REPLAY_CHUNK`'s rows), and the dead letters marked."""
        event_ids = [row[0] for row in db.execute(_EVENT_IDS, (len(chunk),))]
        columns = list(zip(*chunk, strict=True))
        db.execute(_REPLAY_EVENTS, (event_ids, *(list(c) for c in columns[3:])))
        job_ids = new_ids(len(chunk), self._id_rng)
        db.execute(
            _REPLAY_JOBS, (now, now, job_ids, list(columns[2]), event_ids, list(columns[9]), list(columns[1]))
        )
        db.execute("UPDATE dead_letters SET replay_id = %s WHERE id = ANY(%s)", (replay_id, list(columns[0])))

    def expire_dead_letters(self, before: float) -> int:
        """See `delivery.queue.Queue.expire_dead_letters`."""
        expire = "DELETE FROM dead_letters WHERE ended_at < %s"
        return self._run(lambda db: db.execute(expire, (before,)).rowcount)

    # --- visibility ---

    def depth(self) -> QueueDepth:
        """See `delivery.queue.Queue.depth`."""

        def count(db: psycopg.Connection[Any]) -> tuple[list[tuple[str, str, int]], int]:
            with db.pipeline():
                jobs = db.execute("SELECT destination_id, state, count(*) FROM jobs GROUP BY 1, 2")
                outbox = db.execute("SELECT count(*) FROM outbox")
                rows = jobs.fetchall()
                (outbox_rows,) = outbox.fetchone() or (0,)
            return rows, outbox_rows

        counts, outbox_rows = self._run(count)
        by_state: dict[str, int] = {JobState.PENDING: 0, JobState.LEASED: 0}
        by_destination: dict[str, dict[str, int]] = {}
        for destination_id, state, n in counts:
            by_state[state] = by_state.get(state, 0) + n
            by_destination.setdefault(destination_id, {JobState.PENDING: 0, JobState.LEASED: 0})[state] = n
        return QueueDepth(by_state, by_destination, outbox_rows)

    # --- a fleet's destination ownership (`delivery.ownership.OwnershipStore`) ---

    def heartbeat(self, engine: str, lease_s: float) -> list[str]:
        """See `delivery.ownership.OwnershipStore.heartbeat`: alive until the database's now + `lease_s`."""

        def beat(db: psycopg.Connection[Any]) -> list[str]:
            alive = [row[0] for row in db.execute(_HEARTBEAT, {"engine": engine, "lease_s": lease_s})]
            db.execute(_FORGET_ENGINES)
            return alive

        return self._run(beat)

    def acquire(self, engine: str, destinations: Collection[str], lease_s: float) -> set[str]:
        """See `delivery.ownership.OwnershipStore.acquire` (ownership leases by the database's clock)."""
        params = {"engine": engine, "destinations": sorted(destinations), "lease_s": lease_s}
        return self._run(lambda db: {row[0] for row in db.execute(_ACQUIRE, params)})

    def release_destinations(self, engine: str, destinations: Collection[str]) -> None:
        """See `delivery.ownership.OwnershipStore.release`."""
        params = {"engine": engine, "destinations": list(destinations)}
        self._run(lambda db: db.execute(_RELEASE_DESTINATIONS, params))

    def leave(self, engine: str) -> None:
        """See `delivery.ownership.OwnershipStore.leave`."""

        def forget(db: psycopg.Connection[Any]) -> None:
            with db.transaction():
                db.execute("DELETE FROM destination_owners WHERE engine = %s", (engine,))
                db.execute("DELETE FROM fleet_engines WHERE engine = %s", (engine,))

        self._run(forget)

    def owners(self) -> dict[str, str]:
        """Each destination's owner whose lease has not lapsed (for status pages and tests)."""
        return self._run(lambda db: dict(db.execute(_OWNERS).fetchall()))


def _outbox_form(job: Job, record: Mapping[str, Any]) -> str:
    if record.get("job_id") != job.id:
        raise ValueError(f"record is for job {record.get('job_id')!r}, not {job.id!r}")
    return encode_record(record)


def _split_lost(
    settlements: Sequence[Settlement], stored: Sequence[str], tokens: Mapping[str, str]
) -> tuple[list[Job], list[tuple[Settlement, str]]]:
    """(jobs whose lease, or a merged job's, is lost; the settlements to write with their records)."""
    lost: list[Job] = []
    kept: list[tuple[Settlement, str]] = []
    for settlement, text in zip(settlements, stored, strict=True):
        parts = (settlement.job, *settlement.merged)
        if any(part.lease_token is None or tokens.get(part.id) != part.lease_token for part in parts):
            lost.append(settlement.job)
        else:
            kept.append((settlement, text))
    return lost, kept


def _finish(db: psycopg.Connection[Any], finished: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Delete finished jobs, and their events once no other job refers to them.

    `rows`: (job id, token, event id, the event's reference count) of the
    group's locked jobs. An event whose count is all this group's finished
    jobs is deleted outright; one still shared is counted down under a lock.
    """
    gone = set(finished)
    references = Counter(event_id for job_id, _, event_id, _ in rows if job_id in gone)
    counts = {event_id: refs for _, _, event_id, refs in rows}
    released = [event_id for event_id, n in references.items() if counts[event_id] <= n]
    shared = [event_id for event_id, n in references.items() if counts[event_id] > n]
    db.execute(_FINISH_JOBS, (list(finished),))
    if released:
        db.execute(_DELETE_EVENTS, (released,))
    if shared:
        params = {"events": shared, "counts": [references[event_id] for event_id in shared]}
        for statement in _RELEASE_SHARED:
            db.execute(statement, params)


def _reschedule(db: psycopg.Connection[Any], rescheduled: Sequence[Settlement]) -> None:
    """Make the jobs pending again at their due times, each holding its merged jobs' events."""
    merges = [(s.job.id, part.id, rank) for s in rescheduled for rank, part in enumerate(s.merged, 1)]
    if merges:
        targets, parts, ranks = (list(column) for column in zip(*merges, strict=True))
        db.execute(_MERGE, (targets, parts, ranks))
    if rescheduled:
        db.execute(
            _RESCHEDULE,
            (
                [s.job.id for s in rescheduled],
                [s.due_at for s in rescheduled],
                [s.record.get("first_error_class") for s in rescheduled],
                [s.job.received_at if s.merged else None for s in rescheduled],
            ),
        )


def _jobs_from_rows(rows: Sequence[Sequence[Any]], token: str) -> list[Job]:
    """Jobs from `_LEASED`'s rows: one per (job, event), a job's rows together, its events in order."""
    events: dict[str, list[Event]] = defaultdict(list)
    first: dict[str, Sequence[Any]] = {}
    for row in rows:
        first.setdefault(row[0], row)
        events[row[0]].append(Event(*row[_JOB_COLUMNS:]))
    return [
        Job(
            id=job_id,
            destination_id=row[1],
            events=tuple(events[job_id]),
            state=JobState(row[2]),
            attempts=row[3],
            due_at=row[4],
            received_at=row[5],
            first_error_class=row[6],
            lease_owner=row[7],
            lease_expires_at=row[8],
            lease_token=token,
            replay_of=row[9],
        )
        for job_id, row in first.items()
    ]
