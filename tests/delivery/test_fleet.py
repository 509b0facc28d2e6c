"""Two engine processes on one PostgreSQL queue (issue 12, Done when), over real sockets.

Events go in through the real Segment client to either engine; the partner
simulator answers behind the destinations; the attempt log is read back with
DuckDB. One test kills an engine with SIGKILL mid-delivery; the other runs
one engine, then two, against a rate-limited partner.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg
import pytest
from segment.analytics.client import Client

from delivery.config import load_config
from delivery.config.admin_token import admin_token
from delivery.ownership import preferred_owner
from delivery.queue.postgres import PostgresQueue
from deliverydash.partner_simulator.config import PartnerSpec
from deliverydash.partner_simulator.profiles import Healthy, RateLimited
from deliverydash.partner_simulator.servers import PartnerSet, partners_in_thread
from tests.delivery.engine_process import free_port, start_engine, wait_for
from tests.objectstore import log_connection

WRITE_KEY = "wk_test_fleet"
ADMIN_TOKEN = "tok-fleet-0123456789-0123456789-0123456789"
HOOKS = [f"hook-{i}" for i in range(6)]
PER_DESTINATION_CONCURRENCY = 4
LEASE_S = 4


def write_config(
    path: Path, data_dir: Path, dsn: str, destinations: str, log_url: str = "", **engine: Any
) -> Path:
    settings = {
        "data_dir": f'"{data_dir}"',
        "allow_private_targets": "true",
        "admin_token": f'"{ADMIN_TOKEN}"',
        "export_interval_s": 0.2,
        "request_timeout_s": 2,
        "lease_s": LEASE_S,
        "backoff_base_s": 0.2,
        "backoff_max_s": 1,
        "shutdown_grace_s": 2,
        "per_destination_concurrency": PER_DESTINATION_CONCURRENCY,
        **engine,
    }
    lines = "\n".join(f"{key} = {value}" for key, value in settings.items() if value is not None)
    path.write_text(
        f"""[engine]
{lines}

[queue]
backend = "postgres"
dsn = "{dsn}"

[log]
url = "{log_url}"

[[sources]]
id = "web"
workspace = "acme"
write_key = "{WRITE_KEY}"
{destinations}""",
        encoding="utf-8",
    )
    return path


def destination(name: str, url: str, extra: str = "") -> str:
    return (
        f'\n[[destinations]]\nid = "{name}"\nsource = "web"\nintegration = "webhook"\nurl = "{url}"\n{extra}'
    )


class Fleet:
    """Engine processes on one config file, each on its own port, logging to files."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.engines: dict[str, tuple[subprocess.Popen[str], int, IO[str]]] = {}

    def start(self, name: str) -> int:
        port = free_port()
        log = (self.logs / f"{name}.log").open("w")
        self.engines[name] = (start_engine(self.config, port, log=log), port, log)
        return port

    def port(self, name: str) -> int:
        return self.engines[name][1]

    def pid(self, name: str) -> int:
        return self.engines[name][0].pid

    def kill(self, name: str) -> None:
        process = self.engines[name][0]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self, name: str) -> int:
        process = self.engines[name][0]
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=60)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def close(self) -> None:
        for process, _, log in self.engines.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "logs").mkdir()
    yield tmp_path


def send(port: int, message_ids: list[str]) -> list[Any]:
    """Each id as a track call through the Segment client to the engine on `port`; the errors it saw."""
    errors: list[Any] = []
    client = Client(
        WRITE_KEY,
        host=f"http://127.0.0.1:{port}",
        on_error=lambda error, batch: errors.append(error),
        upload_size=100,
        max_retries=0,
    )
    for message_id in message_ids:
        client.track(user_id="u-1", event="Order Completed", properties={"n": 1}, message_id=message_id)
    client.flush()
    client.join()
    return errors


def status(port: int, token: str = ADMIN_TOKEN) -> dict[str, Any]:
    response = httpx.get(
        f"http://127.0.0.1:{port}/admin/status", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def drained(port: int) -> bool:
    queue = status(port)["queue"]
    return sum(queue["by_state"].values()) == 0 and queue["outbox_records"] == 0


def settled_shares(dsn: str, observer: PostgresQueue, engines: int) -> bool:
    """Whether `engines` engines are alive and every destination is owned by its preferred engine."""
    with psycopg.connect(dsn) as db:
        alive = [
            row[0]
            for row in db.execute(
                "SELECT engine FROM fleet_engines WHERE alive_until >= extract(epoch FROM clock_timestamp())"
            )
        ]
    owners = observer.owners()
    return (
        len(alive) == engines
        and set(owners) == set(HOOKS)
        and all(owners[name] == preferred_owner(name, alive) for name in HOOKS)
    )


@pytest.mark.parametrize("where", ["shared data_dir", "object store"])
def test_kill_9_of_one_engine_loses_nothing_and_the_survivor_settles_its_jobs(
    fleet_dir: Path, postgres_dsn: str, where: str, request: pytest.FixtureRequest
) -> None:
    data_dir = fleet_dir / "data"
    log_url = request.getfixturevalue("s3_log") if where == "object store" else ""
    sent = [str(uuid.uuid4()) for _ in range(1200)]
    with partners_in_thread([PartnerSpec("hooks", Healthy(), latency_s=0.02)], control_port=None) as partners:
        hooks = "".join(destination(name, f"{partners.url('hooks')}/{name}") for name in HOOKS)
        fleet = Fleet(
            write_config(fleet_dir / "fleet.toml", data_dir, postgres_dsn, hooks, log_url), fleet_dir / "logs"
        )
        observer = PostgresQueue(postgres_dsn, max_size=2)
        try:
            fleet.start("a")
            fleet.start("b")
            # Both engines have joined and the destinations are shared out as rendezvous hashing
            # says, before events arrive. Hashing may give one engine all six (1 run in 32), so
            # the engine to kill is the owner of the first destination, not a fixed one.
            wait_for(lambda: settled_shares(postgres_dsn, observer, 2), timeout_s=30)
            owner = observer.owners()[HOOKS[0]]
            victim, survivor = ("a", "b") if f"-{fleet.pid('a')}-" in owner else ("b", "a")
            assert send(fleet.port("a"), sent[:600]) == []
            assert send(fleet.port("b"), sent[600:]) == []
            # Mid-delivery: a fifth of the requests have reached the partner.
            wait_for(lambda: partners.stats("hooks").requests >= len(sent) * len(HOOKS) // 5, timeout_s=60)
            fleet.kill(victim)
            # What it had in flight: jobs leased to it and not settled (sent, or answered and
            # waiting for their settlement group). Read before their leases lapse.
            with psycopg.connect(postgres_dsn) as db:
                row = db.execute(
                    "SELECT count(*) FROM jobs WHERE lease_owner LIKE %s", (f"%-{fleet.pid(victim)}-%",)
                ).fetchone()
            in_flight = row[0] if row else 0
            assert in_flight > 0  # killed mid-delivery
            # The survivor takes the dead engine's destinations once their leases lapse, and settles all.
            wait_for(lambda: drained(fleet.port(survivor)), timeout_s=120)
            now = observer.owners()
            assert set(now) == set(HOOKS)
            assert all(f"-{fleet.pid(survivor)}-" in engine for engine in now.values()), now
            assert fleet.stop(survivor) == 0, fleet.log(survivor)
            received = partners.stats("hooks").requests
        finally:
            observer.close()
            fleet.close()
    db = log_connection(log_url or data_dir)
    if log_url:  # the engines wrote no attempt file to their data_dir
        assert not list(data_dir.glob("attempts/date=*"))
    # No accepted event lost: every one delivered to every destination.
    delivered = db.execute(
        "SELECT destination_id, count(DISTINCT e.message_id) FROM attempts, unnest(events) AS u(e) "
        "WHERE outcome = 'delivered' GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert delivered == [(name, len(sent)) for name in HOOKS]
    # One record per request: no request recorded twice, none delivered twice in the log.
    records, unique_ids = (
        db.execute("SELECT count(*), count(DISTINCT attempt_id) FROM attempts").fetchone() or ()
    )
    assert records == unique_ids
    twice = db.execute(
        "SELECT count(*) FROM (SELECT destination_id, e.message_id FROM attempts, unnest(events) AS u(e) "
        "WHERE outcome = 'delivered' GROUP BY ALL HAVING count(*) > 1)"
    ).fetchone()
    assert twice == (0,)
    # The partner received every recorded request, plus some of those in flight at the kill (their
    # records died with the engine; each was sent again by the survivor): never more than those.
    assert records <= received <= records + in_flight, (records, received, in_flight)
    duplicates = received - len(sent) * len(HOOKS)
    assert 0 <= duplicates <= in_flight


def rate_limited_run(fleet_dir: Path, dsn: str, partners: PartnerSet, engines: list[str], tag: str) -> float:
    """Events through `engines` to the rate-limited partner until delivered: the share of 429 answers."""
    crm = destination("crm", partners.url("crm"), "rate_limit_per_s = 20\nrate_limit_burst = 20\n")
    run_dir = fleet_dir / tag
    (run_dir / "logs").mkdir(parents=True)
    fleet = Fleet(write_config(run_dir / "fleet.toml", run_dir / "data", dsn, crm), run_dir / "logs")
    observer = PostgresQueue(dsn, max_size=2)
    try:
        for name in engines:
            fleet.start(name)
        wait_for(lambda: len(observer.owners()) == 1, timeout_s=30)
        ids = [str(uuid.uuid4()) for _ in range(120)]
        share = len(ids) // len(engines)
        for index, name in enumerate(engines):
            assert send(fleet.port(name), ids[index * share : (index + 1) * share]) == []
        wait_for(lambda: all(drained(fleet.port(name)) for name in engines), timeout_s=120)
        for name in engines:
            assert fleet.stop(name) == 0, fleet.log(name)
    finally:
        observer.close()
        fleet.close()
    stats = partners.stats("crm")
    refused = stats.statuses[429] / stats.requests
    stats.clear()
    return refused


def test_a_destinations_rate_limit_holds_across_the_fleet(fleet_dir: Path, postgres_server: Any) -> None:
    spec = PartnerSpec("crm", RateLimited(rate=20, burst=20))
    databases = [f"fleet_rate_{uuid.uuid4().hex[:8]}_{run}" for run in ("alone", "fleet")]
    try:
        with partners_in_thread([spec], control_port=None) as partners:
            alone_dsn, fleet_dsn = (postgres_server.create_database(name) for name in databases)
            alone = rate_limited_run(fleet_dir, alone_dsn, partners, ["a"], "alone")
            time.sleep(2)  # the partner's bucket refills between the runs
            fleet = rate_limited_run(fleet_dir, fleet_dsn, partners, ["a", "b"], "fleet")
    finally:
        for name in databases:
            postgres_server.drop_database(name)
    assert fleet <= alone + 0.02, (alone, fleet)
    assert fleet < 0.05


def test_serve_processes_runs_engines_that_share_the_destinations(fleet_dir: Path, postgres_dsn: str) -> None:
    with partners_in_thread([PartnerSpec("hooks", Healthy())], control_port=None) as partners:
        hooks = "".join(destination(name, f"{partners.url('hooks')}/{name}") for name in HOOKS)
        # No admin token configured: `serve` generates one before its engines start, and both answer to it.
        config = write_config(
            fleet_dir / "fleet.toml", fleet_dir / "data", postgres_dsn, hooks, admin_token=None
        )
        port = free_port()
        log = (fleet_dir / "logs" / "serve.log").open("w")
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deliverydash",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--processes",
                "2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        observer = PostgresQueue(postgres_dsn, max_size=2)
        try:
            # Two engine processes behind the one port have joined the fleet and the destinations
            # are shared out as rendezvous hashing says (which may give one of them all six).
            wait_for(lambda: settled_shares(postgres_dsn, observer, 2), timeout_s=60)
            token = admin_token(load_config(config)).reveal()
            # Each request on a new connection: the kernel hands them to either engine.
            assert {status(port, token)["queue"]["backend"] for _ in range(20)} == {"postgres"}
            sent = [str(uuid.uuid4()) for _ in range(300)]
            assert send(port, sent) == []
            wait_for(lambda: partners.stats("hooks").requests >= len(sent) * len(HOOKS), timeout_s=60)
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=60) == 0
        finally:
            observer.close()
            if serve.poll() is None:
                serve.kill()
                serve.wait()
            log.close()
    output = (fleet_dir / "logs" / "serve.log").read_text()
    assert output.count("stopped: leases released, attempt log exported") == 2, output
    assert output.count(f"admin API token: in {fleet_dir / 'data' / 'admin_token'}") == 1, output
    assert token not in output
    assert observer_owners_after_stop(postgres_dsn) == {}


def observer_owners_after_stop(dsn: str) -> dict[str, str]:
    """Who owns what once every engine stopped cleanly: nobody (they gave everything back)."""
    queue = PostgresQueue(dsn, max_size=1)
    try:
        return queue.owners()
    finally:
        queue.close()
