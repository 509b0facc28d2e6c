"""The shared queue, what only it does: migrations, several engines at once, the database's clock,
the shared outbox, disk full, and a DSN's password kept out of every message.

Every case runs on a real PostgreSQL server (tests/postgres.py). "Several
engines" are several `PostgresQueue` objects, each with its own connections,
driven from threads at once: the database sees them as it would see processes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from delivery.queue import LeaseLost, QueueError, Settlement, StorageFull
from delivery.queue.postgres import _TAKE_BATCH, MIGRATIONS, PostgresQueue, migrate, redact_dsn
from tests.delivery.queue.helpers import FANOUT, event, record_for
from tests.postgres import SERVER_USER, PostgresServer

LONG_LEASE_S = 30.0
SHORT_LEASE_S = 0.3


@pytest.fixture
def queue(postgres_dsn: str) -> Iterator[PostgresQueue]:
    q = PostgresQueue(postgres_dsn)
    yield q
    q.close()


@pytest.fixture
def engines(postgres_dsn: str) -> Iterator[list[PostgresQueue]]:
    """Four queue objects on one database, as four engines would hold."""
    opened = [PostgresQueue(postgres_dsn, max_size=4) for _ in range(4)]
    yield opened
    for q in opened:
        q.close()


def query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as db:
        cursor = db.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def claim(queue: PostgresQueue, owner: str = "w1", now: float | None = None, **options: Any) -> list[Any]:
    options = {"limit": 100, "per_destination_limit": 100, "lease_s": LONG_LEASE_S, **options}
    return queue.claim(owner, time.time() if now is None else now, **options)


def at_once(workers: list[Callable[[], None]]) -> None:
    """Run every worker on its own thread, started together; re-raise the first failure."""
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        barrier.wait()
        try:
            work()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# --- migrations ---


def test_migrations_are_recorded_and_applied_once(postgres_dsn: str) -> None:
    assert migrate(postgres_dsn) == (0, len(MIGRATIONS))
    versions = [row[0] for row in query(postgres_dsn, "SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert migrate(postgres_dsn) == (len(MIGRATIONS), len(MIGRATIONS))  # nothing left to do
    PostgresQueue(postgres_dsn).close()
    assert query(postgres_dsn, "SELECT count(*) FROM schema_migrations") == [(len(MIGRATIONS),)]


def test_a_database_from_newer_code_is_refused(postgres_dsn: str) -> None:
    migrate(postgres_dsn)
    query(postgres_dsn, "INSERT INTO schema_migrations (version) VALUES (%s)", (len(MIGRATIONS) + 1,))
    newer = f"has schema version {len(MIGRATIONS) + 1}, newer than this code's {len(MIGRATIONS)}"
    with pytest.raises(QueueError, match=newer):
        PostgresQueue(postgres_dsn)
    with pytest.raises(QueueError, match=newer):
        PostgresQueue(postgres_dsn, migrate=False)
    with pytest.raises(QueueError, match=newer):
        migrate(postgres_dsn)


def test_without_migrate_a_database_behind_the_code_is_refused_until_migrated(postgres_dsn: str) -> None:
    with pytest.raises(QueueError, match=r"schema version 0, this code needs .*deliverydash migrate"):
        PostgresQueue(postgres_dsn, migrate=False)
    assert query(postgres_dsn, "SELECT to_regclass('jobs')") == [(None,)]  # nothing was created
    migrate(postgres_dsn)
    queue = PostgresQueue(postgres_dsn, migrate=False)
    assert queue.depth().by_state == {"pending": 0, "leased": 0}
    queue.close()


def test_engines_starting_together_migrate_once(postgres_dsn: str) -> None:
    opened: list[PostgresQueue] = []
    at_once([lambda: opened.append(PostgresQueue(postgres_dsn, min_size=1, max_size=1)) for _ in range(6)])
    for q in opened:
        q.close()
    assert len(opened) == 6
    assert query(postgres_dsn, "SELECT version, count(*) FROM schema_migrations GROUP BY 1 ORDER BY 1") == [
        (version, 1) for version in range(1, len(MIGRATIONS) + 1)
    ]


def test_an_engine_role_without_create_rights_runs_on_a_migrated_database(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    # The operator migrates as the owner; engines connect as a role that may only read and write rows.
    migrate(postgres_dsn)
    role = f"engine_{os.getpid()}"
    query(postgres_dsn, f"CREATE ROLE {role} LOGIN")
    try:
        query(postgres_dsn, f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        query(postgres_dsn, f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
        engine_dsn = postgres_dsn.replace("postgres@", f"{role}@")
        assert query(engine_dsn, "SELECT has_schema_privilege('public', 'CREATE')") == [(False,)]
        queue = PostgresQueue(engine_dsn)  # migrate=True, and nothing to migrate: nothing to create
        try:
            queue.enqueue([event("m1", time.time() - 1)], {"web": ["hook-a"]})
            (job,) = claim(queue)
            queue.complete(job, record_for(job), time.time())
            assert queue.depth().outbox_rows == 1
        finally:
            queue.close()
    finally:
        query(postgres_dsn, f"DROP OWNED BY {role}")
        query(postgres_dsn, f"DROP ROLE {role}")


# --- several engines on one database ---


def test_deduplication_is_exact_across_engines_inserting_at_once(engines: list[PostgresQueue]) -> None:
    # Every engine sends every id, in overlapping batches and different orders, at the same moments.
    now = time.time()
    accepted: list[str] = []
    lock = threading.Lock()

    def send(queue: PostgresQueue, seed: int) -> Callable[[], None]:
        def work() -> None:
            for call in range(30):
                ids = [f"m{(seed * 37 + call * 11 + k * 13) % 200}" for k in range(20)]
                got = queue.enqueue([event(i, now) for i in ids], FANOUT)
                with lock:
                    accepted.extend(got)

        return work

    at_once([send(queue, seed) for seed, queue in enumerate(engines * 2)])
    assert len(accepted) == len(set(accepted)) == 200
    depth = engines[0].depth()
    assert depth.by_state == {"pending": 400, "leased": 0}


def test_engines_claiming_at_once_never_lease_a_job_twice(engines: list[PostgresQueue]) -> None:
    engines[0].enqueue([event(f"m{i}", time.time() - 10) for i in range(400)], FANOUT)
    taken: list[str] = []
    lock = threading.Lock()

    def drain(queue: PostgresQueue, owner: str) -> Callable[[], None]:
        def work() -> None:
            while jobs := claim(queue, owner, limit=9, per_destination_limit=5):
                assert queue.settle([Settlement(job, record_for(job)) for job in jobs]) == []
                with lock:
                    taken.extend(job.id for job in jobs)

        return work

    at_once([drain(queue, f"engine-{n}-{k}") for n, queue in enumerate(engines) for k in range(2)])
    assert len(taken) == len(set(taken)) == 800
    assert engines[0].depth().by_state == {"pending": 0, "leased": 0}
    assert engines[0].depth().outbox_rows == 800


def test_settle_groups_sharing_events_at_once_release_each_event_once(
    engines: list[PostgresQueue], postgres_dsn: str
) -> None:
    # Each event fans out to two destinations; two engines finish the two halves at once, in
    # opposite orders: the events' reference counts must end at zero, the payloads deleted.
    engines[0].enqueue([event(f"m{i}", time.time() - 10) for i in range(200)], {"web": ["a", "b"]})
    a = claim(engines[0], "one", exclude=["b"], limit=200, per_destination_limit=200)
    b = claim(engines[1], "two", exclude=["a"], limit=200, per_destination_limit=200)
    forward = [a[start : start + 10] for start in range(0, len(a), 10)]
    backward = [b[::-1][start : start + 10] for start in range(0, len(b), 10)]
    at_once(
        [
            lambda: [engines[0].settle([Settlement(j, record_for(j)) for j in group]) for group in forward],
            lambda: [engines[1].settle([Settlement(j, record_for(j)) for j in group]) for group in backward],
        ]
    )
    assert query(postgres_dsn, "SELECT count(*) FROM events") == [(0,)]
    assert engines[0].depth().outbox_rows == 400


# --- the database's clock ---


def test_a_claimer_whose_clock_is_far_ahead_cannot_take_a_live_lease(queue: PostgresQueue) -> None:
    queue.enqueue([event("m1", time.time() - 1)], {"web": ["hook-a"]})
    (job,) = claim(queue, "w1", lease_s=LONG_LEASE_S)
    assert claim(queue, "w2", now=time.time() + 24 * 3600) == []
    queue.complete(job, record_for(job), time.time())


def test_leases_expire_by_the_databases_clock_whatever_the_caller_says(queue: PostgresQueue) -> None:
    queue.enqueue([event("m1", time.time() - 1)], {"web": ["hook-a"]})
    before = time.time()
    (job,) = claim(queue, "w1", now=0.0, lease_s=LONG_LEASE_S)  # a caller's clock stuck in 1970
    after = time.time()
    assert job.lease_expires_at is not None
    assert before + LONG_LEASE_S - 1e-3 <= job.lease_expires_at <= after + LONG_LEASE_S + 1e-3


def test_jobs_are_due_by_the_databases_clock(queue: PostgresQueue) -> None:
    # An API machine whose clock runs an hour ahead stores events "received" then: they wait.
    queue.enqueue([event("ahead", time.time() + 3600)], {"web": ["hook-a"]})
    assert claim(queue, "w1", now=time.time() + 7200) == []


def test_recover_frees_only_the_leases_that_lapsed(queue: PostgresQueue) -> None:
    queue.enqueue([event("live", time.time() - 2), event("dead", time.time() - 1)], {"web": ["hook-a"]})
    (live,) = claim(queue, "running-engine", limit=1, lease_s=LONG_LEASE_S)
    (dead,) = claim(queue, "dead-engine", limit=1, lease_s=SHORT_LEASE_S)
    time.sleep(SHORT_LEASE_S)
    assert queue.recover(time.time()) == 1
    assert queue.depth().by_state == {"pending": 1, "leased": 1}
    queue.complete(live, record_for(live), time.time())  # the running engine's lease held
    with pytest.raises(LeaseLost):
        queue.complete(dead, record_for(dead), time.time())


# --- the shared outbox ---


def settled_records(queue: PostgresQueue, n: int) -> list[dict[str, Any]]:
    queue.enqueue([event(f"m{i}", time.time() - 10) for i in range(n)], {"web": ["hook-a"]})
    jobs = claim(queue, limit=n, per_destination_limit=n)
    records = [record_for(job) for job in jobs]
    assert queue.settle([Settlement(job, r) for job, r in zip(jobs, records, strict=True)]) == []
    return records


def test_two_exporters_never_get_the_same_batch(engines: list[PostgresQueue]) -> None:
    records = settled_records(engines[0], 300)
    first = engines[0].outbox_batch(100)
    second = engines[1].outbox_batch(100)
    assert first is not None and second is not None
    assert first.batch_id != second.batch_id
    assert not first.resumed and not second.resumed
    assert {r["attempt_id"] for r in first.rows}.isdisjoint(r["attempt_id"] for r in second.rows)
    again = engines[0].outbox_batch(100)  # its own open batch, not the other's
    assert again is not None and (again.batch_id, again.resumed) == (first.batch_id, True)
    with pytest.raises(LeaseLost):
        engines[0].outbox_ack(second.batch_id)  # not its batch: nothing deleted
    assert engines[1].outbox_ack(second.batch_id) == 100
    assert engines[0].outbox_ack(first.batch_id) == 100
    assert engines[0].depth().outbox_rows == len(records) - 200


def test_exporters_draining_at_once_export_each_record_once(engines: list[PostgresQueue]) -> None:
    records = settled_records(engines[0], 600)
    exported: dict[str, list[str]] = {}
    lock = threading.Lock()

    def export(queue: PostgresQueue) -> Callable[[], None]:
        def work() -> None:
            while (batch := queue.outbox_batch(37)) is not None:
                with lock:
                    assert batch.batch_id not in exported
                    exported[batch.batch_id] = [r["attempt_id"] for r in batch.rows]
                assert queue.outbox_ack(batch.batch_id) == len(batch)

        return work

    at_once([export(queue) for queue in engines])
    ids = [attempt_id for batch in exported.values() for attempt_id in batch]
    assert sorted(ids) == sorted(r["attempt_id"] for r in records)


def test_a_dead_exporters_batch_is_taken_over_once_its_lease_lapsed(postgres_dsn: str) -> None:
    # Longer than SHORT_LEASE_S: under a parallel suite, 0.3 s lapsed between the two takes below.
    lease_s = 2.0
    dead = PostgresQueue(postgres_dsn, outbox_lease_s=lease_s)
    alive = PostgresQueue(postgres_dsn)
    try:
        settled_records(dead, 10)
        taken = dead.outbox_batch(100)
        assert taken is not None and len(taken) == 10
        assert alive.outbox_batch(100) is None  # held, and nothing else to take
        time.sleep(lease_s)
        resumed = alive.outbox_batch(100)
        assert resumed is not None
        assert (resumed.batch_id, resumed.rows, resumed.resumed) == (taken.batch_id, taken.rows, True)
        with pytest.raises(LeaseLost, match="taken over by another exporter"):
            dead.outbox_ack(taken.batch_id)  # woke up too late: the records stay for the new owner
        assert alive.depth().outbox_rows == 10
        assert alive.outbox_ack(resumed.batch_id) == 10
        assert alive.outbox_batch(100) is None
    finally:
        dead.close()
        alive.close()


# --- connections ---


def test_connections_the_server_dropped_are_replaced(queue: PostgresQueue, postgres_dsn: str) -> None:
    assert queue.depth().by_state == {"pending": 0, "leased": 0}
    dropped = query(
        postgres_dsn,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    assert dropped[0][0] >= 1
    assert queue.enqueue([event("m1", time.time())], FANOUT) == ["m1"]
    assert queue.depth().by_state == {"pending": 2, "leased": 0}


def test_the_queues_statements_are_never_jit_compiled(queue: PostgresQueue) -> None:
    """With sequential scans priced out, a scan of a small table cost enough to be compiled on every call."""
    owner = {"me": queue.instance_id, "lease_s": 60.0}
    with queue._pool.connection() as db:
        row = db.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + _TAKE_BATCH, owner).fetchone()
        settings = db.execute("SELECT current_setting('jit'), current_setting('enable_seqscan')").fetchone()
    assert row is not None
    assert "JIT" not in row[0][0]
    assert settings == ("off", "off")


# --- the DSN's password ---


@pytest.mark.parametrize(
    ("dsn", "redacted"),
    [
        ("postgresql://bob:s3cret@db.example:5432/queue", "postgresql://bob:***@db.example:5432/queue"),
        ("postgres://bob@db.example/queue", "postgres://bob@db.example/queue"),
        ("postgresql://db.example:5432/queue", "postgresql://db.example:5432/queue"),
        ("postgresql://bob:p%40ss@h/q?sslmode=require", "postgresql://bob:***@h/q?sslmode=require"),
        ("postgresql://bob:p@ss/w@h/q", "postgresql://bob:***@h/q"),  # unescaped: hidden whole
        (
            "postgresql://h/q?user=bob&password=s3cret&sslmode=require",
            "postgresql://h/q?user=bob&password=***&sslmode=require",
        ),
        ("postgresql://bob@h/q?sslpassword=k3y", "postgresql://bob@h/q?sslpassword=***"),
        (
            "host=h port=5432 user=bob password=s3cret dbname=q",
            "host=h port=5432 user=bob password=*** dbname=q",
        ),
        ("host=h password = 's3 c\\'ret' dbname=q", "host=h password = *** dbname=q"),
        ("host=h sslpassword=k3y passfile=/p", "host=h sslpassword=*** passfile=/p"),
        ("host=h password='never closed dbname=q", "host=h password=***"),
        ("host=h dbname=q", "host=h dbname=q"),
    ],
)
def test_redact_dsn_hides_every_password(dsn: str, redacted: str) -> None:
    assert redact_dsn(dsn) == redacted


def assert_hidden(error: BaseException, password: str, caplog: pytest.LogCaptureFixture) -> str:
    message = str(error)
    assert password not in message
    assert error.__cause__ is None and error.__suppress_context__  # the driver's text is not chained
    assert all(password not in record.getMessage() for record in caplog.records)
    return message


def test_a_connection_failure_names_the_server_but_never_the_password(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    closed_port = postgres_server.port + 1 if postgres_server.port < 65535 else postgres_server.port - 1
    dsn = f"postgresql://engine:Sup3r-s3cret@127.0.0.1:{closed_port}/deliveries"
    with pytest.raises(QueueError) as refused:
        PostgresQueue(dsn, connect_timeout_s=2)
    message = assert_hidden(refused.value, "Sup3r-s3cret", caplog)
    assert f"host 127.0.0.1 port {closed_port} database deliveries user engine" in message
    assert "Connection refused" in message
    with pytest.raises(QueueError) as refused:
        migrate(dsn, connect_timeout_s=2)
    assert_hidden(refused.value, "Sup3r-s3cret", caplog)


def test_a_server_refusal_names_the_user_but_never_the_password(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = f"host=127.0.0.1 port={postgres_server.port} user=nobody password='Sup3r s3cret' dbname=postgres"
    with pytest.raises(QueueError) as refused:
        PostgresQueue(dsn)
    message = assert_hidden(refused.value, "Sup3r s3cret", caplog)
    assert f"port {postgres_server.port} database postgres user nobody" in message
    assert 'role "nobody" does not exist' in message


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://bob:Sup3r-s3cret@[::1:5432/q",  # libpq quotes this malformed URL whole
        "host=127.0.0.1 password=Sup3r-s3cret dbname=q junk",
        "postgresql://bob:Sup3r-s3cret@127.0.0.1:notaport/q",
    ],
)
def test_a_malformed_dsn_is_refused_without_its_password(dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(QueueError, match="cannot connect to PostgreSQL") as refused:
        PostgresQueue(dsn)
    assert_hidden(refused.value, "Sup3r-s3cret", caplog)


def test_the_queue_shows_its_dsn_without_the_password(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    dsn = postgres_dsn.replace("postgres@", "postgres:unused-s3cret@")  # trust: the password is ignored
    queue = PostgresQueue(dsn)
    try:
        assert queue.target == redact_dsn(dsn) and "unused-s3cret" not in queue.target
        assert "unused-s3cret" not in repr(queue)
    finally:
        queue.close()


# --- disk full ---


@pytest.fixture
def small_tablespace(postgres_server: PostgresServer) -> Iterator[str]:
    """A tablespace on an 8 MiB tmpfs (root only: it mounts one); its name."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for a full disk needs root")
    mountpoint = postgres_server.directory / "small"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)], check=True)
    try:
        subprocess.run(["chown", f"{SERVER_USER}:", str(mountpoint)], check=True)
        with postgres_server.admin() as db:
            db.execute(f"CREATE TABLESPACE small LOCATION '{mountpoint}'")
        try:
            yield "small"
        finally:
            with postgres_server.admin() as db:
                db.execute("DROP TABLESPACE small")
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)
        Path(mountpoint).rmdir()


def test_a_full_disk_is_storage_full_and_stores_nothing_of_the_call(
    postgres_server: PostgresServer, small_tablespace: str
) -> None:
    dsn = postgres_server.create_database("full_disk")
    try:
        # The queue's tables and indexes go to the small tablespace; the catalog and WAL do not.
        queue = PostgresQueue(f"{dsn}?options=-c%20default_tablespace%3D{small_tablespace}")
        try:
            sent = 0
            with pytest.raises(StorageFull, match="PostgreSQL's disk is full") as full:
                for call in range(1000):
                    batch = [
                        event(f"m{call}-{k}", time.time(), payload=os.urandom(100_000)) for k in range(10)
                    ]
                    assert queue.enqueue(batch, FANOUT) == [e.message_id for e in batch]
                    sent += len(batch)
            assert sent > 0  # it filled up after storing some
            assert full.value.__cause__ is not None  # the driver's error (53100), for the log
            stored = query(dsn, "SELECT count(*), count(DISTINCT message_id) FROM events")
            seen = query(dsn, "SELECT count(*) FROM dedup")
            assert stored == [(sent, sent)] and seen == [(sent,)]  # nothing of the refused call
        finally:
            queue.close()
    finally:
        postgres_server.drop_database("full_disk")
