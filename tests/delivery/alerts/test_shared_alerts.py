"""Alerts shared by a fleet, on a real PostgreSQL server: the store, streaks that outlive their engine,
notifications raised by one engine and listed and cleared through another's admin API.

Engines are `AuthAlerts` objects in this process (each with its own connections, as separate
processes would have) fed attempt records the way the worker feeds them, and admin apps over
`httpx.ASGITransport`; the last test runs two real `deliverydash serve` processes. Nothing is
timed except the one bound the docs promise (an owner takes up a re-enable within `REFRESH_S`);
every other wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from delivery.alerts.auth_alerts import REFRESH_S, AuthAlerts
from delivery.alerts.auth_watch import HEALTHY, Phase, WatchState
from delivery.alerts.postgres_store import PostgresNotificationStore
from delivery.alerts.store import NewNotification, NotificationStore, Standing
from delivery.api.main import create_app
from delivery.config import Config, parse_config
from delivery.ownership import preferred_owner
from delivery.queue.postgres import PostgresQueue, migrate
from deliverydash.partner_simulator.config import PartnerSpec
from deliverydash.partner_simulator.profiles import ExpiredCredentials
from deliverydash.partner_simulator.servers import PartnerSet, partners_in_thread
from ingest.ids import new_id
from ingest.notifications import NotificationsError, Postgres, read_notifications
from tests.delivery.alerts.test_notifications import Receiver
from tests.delivery.engine_process import free_port, serving, start_engine, wait_for

PASSWORD = "pw_SECRET_fleet_alerts"
ADMIN = "admin-token-for-the-fleet-0123456789-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
FAILED = {
    "destination_id": "hook",
    "workspace_id": "acme",
    "error_class": "auth",
    "outcome": "failed",
    "status_code": 401,
    "response_body": '{"error": "token_expired"}',
}
DELIVERED = {"destination_id": "hook", "workspace_id": "acme", "error_class": "none", "outcome": "delivered"}


@pytest.fixture
def dsn(postgres_dsn: str) -> str:
    """The test database, migrated, its DSN with a password (the test server trusts loopback: ignored)."""
    migrate(postgres_dsn)
    return postgres_dsn.replace("@", f":{PASSWORD}@", 1)


def fleet_config(tmp_path: Path, dsn: str, **alerts: Any) -> Config:
    return parse_config(
        {
            "engine": {
                "data_dir": str(tmp_path / "data"),
                "allow_private_targets": True,
                "admin_token": ADMIN,
            },
            "queue": {"backend": "postgres", "dsn": dsn},
            "alerts": {"disable_after_failures": 3, "probe_interval_s": 3600} | alerts,
            "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_test_web"}],
            "destinations": [
                {"id": "hook", "source": "web", "integration": "webhook", "url": "http://127.0.0.1:9/x"}
            ],
        }
    )


@contextlib.asynccontextmanager
async def running(config: Config, **options: Any) -> AsyncIterator[AuthAlerts]:
    """An engine's alerts: started, its writer running; stopped cleanly at the end."""
    alerts = AuthAlerts(config, **options)
    await alerts.start()
    writer = asyncio.create_task(alerts.run())
    try:
        yield alerts
    finally:
        if not writer.done():
            alerts.stop()
            await writer
        await alerts.close()


async def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> float:
    """Poll `check` until it holds; the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, "timed out waiting"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def note(kind: str, at: float, *, body: str | None = None, resolves: bool = False) -> NewNotification:
    return NewNotification(
        new_id(), kind, "acme", "hook", "webhook", at, f"{kind} at {at}", 10.0, 3, 401, body, resolves
    )


# -- the store ------------------------------------------------------------------------------------


def test_the_store_round_trips_standing_versions_and_notifications(dsn: str) -> None:
    store = PostgresNotificationStore(dsn)
    assert store.standings() == {} and store.watch_states() == {}
    failing = WatchState(Phase.FAILING, 1, 10.0)
    assert store.record("hook", failing, [note("auth_failing", 10, body='{"e": "bad\x00"}')], expected=0) == 1
    # Written over a version that is no longer there: nothing is written, not even the notification.
    assert (
        store.record("hook", WatchState(Phase.FAILING, 9, 10.0), [note("disabled", 11)], expected=0) is None
    )
    assert store.record("hook", WatchState(Phase.FAILING, 2, 10.0), expected=1) == 2  # the streak's count
    disabled = WatchState(Phase.DISABLED, 3, 10.0, 20.0, 30.0)
    assert store.record("hook", disabled, [note("disabled", 20)], expected=2) == 3
    assert store.standing("hook") == Standing(disabled, 3)
    assert store.watch_states() == {"hook": disabled}
    opened = read_notifications(Postgres(dsn), state="open")
    assert [n.kind for n in opened] == ["disabled", "auth_failing"]
    assert opened[1].sample_body == '{"e": "bad\ufffd"}'  # PostgreSQL's text holds no NUL

    seen: list[WatchState] = []

    def enabled(before: WatchState) -> NewNotification:
        seen.append(before)
        return note("enabled", 40, resolves=True)

    made, standing = store.enable("hook", enabled)
    assert made is not None and made.kind == "enabled" and seen == [disabled]
    assert standing == Standing(HEALTHY, 4) == store.standing("hook")  # healthy keeps its row and version
    assert store.enable("hook", enabled) == (None, Standing(HEALTHY, 4)) and len(seen) == 1
    assert store.watch_states() == {}
    assert read_notifications(Postgres(dsn), state="open") == []
    every = read_notifications(Postgres(dsn))
    assert [(n.kind, str(n.state)) for n in every] == [
        ("enabled", "resolved"),
        ("disabled", "resolved"),
        ("auth_failing", "resolved"),
    ]
    assert every[1].resolved_at is not None and every[1].resolved_at.timestamp() == 40
    assert store.standing("other") == Standing() and store.record("other", failing) == 1  # unconditional
    store.close()


def test_both_stores_read_back_alike(dsn: str, tmp_path: Path) -> None:
    """The same writes through the SQLite file and the PostgreSQL tables read back the same."""
    notes = [
        note("auth_failing", 10, body="refused"),
        note("disabled", 20),
        note("recovered", 30, resolves=True),
    ]
    sqlite, postgres = NotificationStore(tmp_path), PostgresNotificationStore(dsn)
    for store in (sqlite, postgres):
        store.record("hook", WatchState(Phase.DISABLED, 3, 10.0, 20.0, 30.0), notes[:2])
        store.record("hook", HEALTHY, notes[2:])
        store.close()
    for options in ({}, {"state": "resolved", "limit": 2}, {"workspace": "acme"}, {"workspace": "globex"}):
        assert read_notifications(Postgres(dsn), **options) == read_notifications(tmp_path, **options)
    assert len(read_notifications(tmp_path)) == 3


def test_the_reader_names_the_server_never_the_password(postgres_dsn: str) -> None:
    unmigrated = postgres_dsn.replace("@", f":{PASSWORD}@", 1)
    assert read_notifications(Postgres(unmigrated)) == []  # no tables yet: nothing was raised
    assert PASSWORD not in repr(Postgres(unmigrated)) + str(Postgres(unmigrated))
    nowhere = f"postgresql://dd:{PASSWORD}@127.0.0.1:{free_port()}/fleet?connect_timeout=2"
    with pytest.raises(NotificationsError) as error:
        read_notifications(Postgres(nowhere))
    assert "127.0.0.1" in str(error.value) and PASSWORD not in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__
    with pytest.raises(NotificationsError, match="no notification tables") as refused:
        PostgresNotificationStore(unmigrated)
    assert PASSWORD not in str(refused.value)


# -- engines sharing the store --------------------------------------------------------------------


def test_a_new_owner_continues_the_streak_of_one_that_died(dsn: str, tmp_path: Path) -> None:
    config = fleet_config(tmp_path, dsn, disable_after_failures=5)
    store = PostgresNotificationStore(dsn)

    async def scenario() -> None:
        async with running(config) as survivor:  # runs all along, owning other destinations
            first = AuthAlerts(config)
            await first.start()
            writer = asyncio.create_task(first.run())
            for _ in range(3):
                first.on_settled(FAILED)
            # Each failure is stored, not only the first one (the transition).
            await eventually(lambda: store.standing("hook").state.failures == 3)
            began = first.state("hook").first_failure_at
            writer.cancel()  # the first engine dies; its ownership of the hook passes to the survivor
            await first.close()
            await eventually(lambda: survivor.state("hook").failures == 3, timeout_s=REFRESH_S + 5)
            assert survivor.state("hook").first_failure_at == began
            survivor.on_settled(FAILED)
            assert survivor.state("hook").phase is Phase.FAILING
            survivor.on_settled(FAILED)  # the fifth of the streak: 3 seen by the dead engine, 2 here
            assert survivor.state("hook").phase is Phase.DISABLED
            assert not survivor.admit("hook")
            await eventually(lambda: store.standing("hook").state.phase is Phase.DISABLED)
        # An engine that starts later takes the standing up at its start.
        async with running(config) as later:
            assert later.state("hook") == store.standing("hook").state
            assert later.disabled_count() == 1

    asyncio.run(scenario())
    [disabled, failing] = read_notifications(Postgres(dsn), state="open")
    assert (disabled.kind, disabled.failures, failing.kind) == ("disabled", 5, "auth_failing")
    assert disabled.first_seen_at == failing.first_seen_at  # one streak across the two engines
    store.close()


def admin_app(config: Config, dsn: str, alerts: AuthAlerts) -> tuple[Any, PostgresQueue]:
    """One engine's HTTP app (its admin routes) without the worker: the alerts are driven by the test."""
    queue = PostgresQueue(dsn, max_size=2)
    app = create_app(config, queue)
    app.state.context = dataclasses.replace(app.state.context, alerts=alerts)
    return app, queue


def test_raised_by_one_engine_listed_and_re_enabled_through_another(
    dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = fleet_config(tmp_path, dsn)

    async def scenario() -> None:
        async with running(config) as owner, running(config) as other:
            owner_app, owner_queue = admin_app(config, dsn, owner)
            other_app, other_queue = admin_app(config, dsn, other)
            try:
                async with (
                    httpx.AsyncClient(transport=httpx.ASGITransport(owner_app), base_url="http://a") as a,
                    httpx.AsyncClient(transport=httpx.ASGITransport(other_app), base_url="http://b") as b,
                ):
                    await across_engines(owner, a, b)
            finally:
                owner_queue.close()
                other_queue.close()

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert PASSWORD not in caplog.text


async def listed(client: httpx.AsyncClient, state: str = "all") -> list[str]:
    answer = await client.get("/admin/notifications", params={"state": state}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert PASSWORD not in answer.text
    return [n["kind"] for n in answer.json()["notifications"]]


async def across_engines(owner: AuthAlerts, a: httpx.AsyncClient, b: httpx.AsyncClient) -> None:
    """The owner (`a`'s engine) disables the hook; `b`, which does not own it, lists and re-enables it."""
    for _ in range(3):
        owner.on_settled(FAILED)
    assert owner.state("hook").phase is Phase.DISABLED and not owner.admit("hook")
    kinds: list[str] = []

    async def refresh() -> None:
        kinds[:] = await listed(b, "open")

    deadline = time.monotonic() + 10
    while kinds != ["disabled", "auth_failing"]:
        assert time.monotonic() < deadline, kinds
        await refresh()
        await asyncio.sleep(0.05)

    answer = await b.post("/admin/destinations/hook/enable", headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["changed"], body["state"]) == (True, "healthy")
    assert body["notification"]["kind"] == "enabled" and body["notification"]["state"] == "resolved"
    assert body["notification"]["failures"] == 3
    assert await listed(a, "open") == [] and await listed(a) == ["enabled", "disabled", "auth_failing"]

    # The owner sends to it again within the documented time, without a probe (those are an hour apart).
    took = await eventually(lambda: owner.admit("hook"), timeout_s=REFRESH_S + 5)
    assert took <= REFRESH_S + 0.5, took
    assert owner.state("hook") == HEALTHY

    # Not disabled any more: answered as on one engine.
    again = await b.post("/admin/destinations/hook/enable", headers=AUTH)
    assert again.json() == {"destination": "hook", "changed": False, "state": "healthy", "notification": None}
    # The owner's stale copy did not overwrite the re-enable: the next 401 starts a new streak.
    owner.on_settled(FAILED)
    assert owner.state("hook").phase is Phase.FAILING and owner.state("hook").failures == 1
    deadline = time.monotonic() + 10
    while await listed(b, "open") != ["auth_failing"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    owner.on_settled(DELIVERED)
    assert owner.state("hook") == HEALTHY


def test_an_owner_s_stale_write_loses_to_a_re_enable_made_elsewhere(
    dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = fleet_config(tmp_path, dsn)
    store = PostgresNotificationStore(dsn)

    async def scenario() -> None:
        # No refresh during the test: the owner learns of the re-enable from its refused write alone.
        async with running(config, refresh_s=3600) as owner, running(config, refresh_s=3600) as other:
            for _ in range(3):
                owner.on_settled(FAILED)
            await eventually(lambda: store.standing("hook").state.phase is Phase.DISABLED)
            enabled = await other.enable("hook")
            assert enabled is not None and enabled.kind == "enabled"
            assert other.state("hook") == HEALTHY
            after_enable = store.standing("hook")
            assert owner.state("hook").phase is Phase.DISABLED  # not told yet
            owner.on_settled(FAILED)  # a failed probe, counted over the version the owner knew
            await eventually(lambda: owner.state("hook") == HEALTHY)
            assert store.standing("hook") == after_enable == Standing(HEALTHY, after_enable.version)
            assert owner.admit("hook")
            assert await owner.enable("hook") is None  # not disabled: nothing to do, from the owner too

    with caplog.at_level(logging.INFO, logger="delivery.alerts"):
        asyncio.run(scenario())
    assert "not stored (another engine changed its standing meanwhile)" in caplog.text
    assert "hook: disabled -> healthy, as the fleet's store has it" in caplog.text
    assert [n.kind for n in read_notifications(Postgres(dsn), state="open")] == []
    store.close()


# -- two real engine processes --------------------------------------------------------------------

CREDENTIAL = "fresh-token-0123456789"


@pytest.fixture
def partner() -> Iterator[PartnerSet]:
    with partners_in_thread([PartnerSpec("expired", ExpiredCredentials())], control_port=None) as running:
        yield running


class Engine:
    """A running `deliverydash serve` on the shared queue."""

    def __init__(self, config: Path) -> None:
        self.port = free_port()
        self.process = start_engine(config, self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def send(self, n: int = 1) -> None:
        batch = [
            {"type": "track", "event": "Signed Up", "userId": "u1", "messageId": str(uuid.uuid4())}
            for _ in range(n)
        ]
        answer = httpx.post(
            f"{self.url}/v1/batch", json={"batch": batch}, auth=("wk_test_web", ""), timeout=10
        )
        assert answer.status_code == 200, answer.text

    def kinds(self, state: str = "all") -> list[str]:
        answer = httpx.get(
            f"{self.url}/admin/notifications", params={"state": state}, headers=AUTH, timeout=10
        )
        assert answer.status_code == 200, answer.text
        return [n["kind"] for n in answer.json()["notifications"]]

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        output = self.process.communicate(timeout=60)[0]
        assert self.process.returncode == 0, output
        return output


def write_config(tmp_path: Path, name: str, dsn: str, partner: PartnerSet, webhook_url: str = "") -> Path:
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f"""
[engine]
data_dir = "{tmp_path / name}"
allow_private_targets = true
export_interval_s = 0.5
request_timeout_s = 2
lease_s = 3
shutdown_grace_s = 2
admin_token = "{ADMIN}"

[queue]
backend = "postgres"
dsn = "{dsn}"

[alerts]
disable_after_failures = 3
probe_interval_s = 3600
webhook_url = "{webhook_url}"

[[sources]]
id = "web"
workspace = "acme"
write_key = "wk_test_web"

[[destinations]]
id = "expired-hook"
source = "web"
integration = "webhook"
url = "{partner.url("expired")}events"
headers = {{ Authorization = "Bearer {CREDENTIAL}" }}
""",
        encoding="utf-8",
    )
    return config


def test_two_engine_processes_share_notifications_and_re_enables(
    dsn: str, tmp_path: Path, partner: PartnerSet
) -> None:
    receiver = Receiver()
    with serving(receiver):
        alerts_url = f"http://127.0.0.1:{receiver.server_address[1]}/alerts"
        engines = [Engine(write_config(tmp_path, name, dsn, partner, alerts_url)) for name in ("one", "two")]
        outputs = _share_notifications_and_re_enables(engines, dsn, partner)
    assert all(PASSWORD not in output for output in outputs)
    # Each notification reached the alerts webhook once, from the engine that raised it, not from
    # every engine of the fleet (both engines have stopped: nothing more can come).
    stored = read_notifications(Postgres(dsn), state="all")
    assert sorted(body["id"] for body in receiver.bodies) == sorted(n.id for n in stored)
    assert sorted(receiver.kinds()) == ["auth_failing", "disabled", "enabled"]


def _share_notifications_and_re_enables(engines: list[Engine], dsn: str, partner: PartnerSet) -> list[str]:
    """The fleet's part of the test above: the engines' outputs once they stopped."""
    try:
        owner, other = settled_owner(dsn, engines, "expired-hook")
        # Events come in through the engine that does not own the destination; its owner sends them.
        send_until(other, lambda: "disabled" in other.kinds("open"))
        assert owner.kinds() == other.kinds() == ["disabled", "auth_failing"]
        profile = partner.servers["expired"].spec.profile
        assert isinstance(profile, ExpiredCredentials)
        profile.valid_token = CREDENTIAL  # the customer fixed the credential, and re-enables by hand
        answer = httpx.post(f"{other.url}/admin/destinations/expired-hook/enable", headers=AUTH, timeout=10)
        assert answer.status_code == 200 and answer.json()["changed"] is True, answer.text
        assert owner.kinds("open") == []
        # The owner takes the re-enable up within REFRESH_S (jobs it claims before then are skipped).
        delivered = partner.stats("expired").statuses[200]
        send_until(other, lambda: partner.stats("expired").statuses[200] >= delivered + 3)
        assert owner.kinds()[0] == "enabled"  # delivered by hand-enabling, not by a probe
    finally:
        outputs = [engine.stop() for engine in engines if engine.process.poll() is None]
    return outputs


def send_until(engine: Engine, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Send one event at a time until `done()` holds."""

    def step() -> bool:
        if done():
            return True
        engine.send()
        time.sleep(0.1)
        return False

    wait_for(step, timeout_s)


def settled_owner(dsn: str, engines: list[Engine], destination: str) -> tuple[Engine, Engine]:
    """(the engine that owns `destination` once ownership settled between the two, the other)."""
    plain = dsn.replace(f":{PASSWORD}@", "@", 1)
    found: list[Engine] = []

    def settled() -> bool:
        with psycopg.connect(plain, autocommit=True) as db:
            alive = [row[0] for row in db.execute("SELECT engine FROM fleet_engines")]
            held = db.execute(
                "SELECT engine FROM destination_owners WHERE destination_id = %s", (destination,)
            ).fetchone()
        pids = {engine.process.pid for engine in engines}
        if len(alive) != 2 or held is None or held[0] != preferred_owner(destination, alive):
            return False
        if {int(name.split("-")[-2]) for name in alive} != pids:
            return False
        found[:] = [e for e in engines if f"-{e.process.pid}-" in held[0]]
        return True

    wait_for(settled, timeout_s=30)
    [owner] = found
    return owner, next(engine for engine in engines if engine is not owner)
