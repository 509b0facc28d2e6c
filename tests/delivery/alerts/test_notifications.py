"""Auth-failure notifications and auto-disable, end to end: a real engine process against the
partner simulator's `expired-credentials` and `forbidden` partners, over loopback sockets.

Thresholds and probe intervals are small; nothing is timed: every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import io
import json
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from delivery.alerts.store import NewNotification, NotificationStore
from delivery.config import AlertsConfig, ConfigError, parse_config
from deliverydash.cli import main
from deliverydash.partner_simulator.config import PartnerSpec
from deliverydash.partner_simulator.profiles import ExpiredCredentials, Forbidden
from deliverydash.partner_simulator.servers import PartnerSet, partners_in_thread
from ingest.notifications import open_notifications, read_notifications
from tests.delivery.config.test_config import doc_table, toml_value
from tests.delivery.engine_process import free_port, serving, start_engine, wait_for

#: Each partner is fed by its own source: destination -> (write key, workspace).
SOURCES = {"expired": ("wk_test_expired", "acme"), "forbidden": ("wk_test_forbidden", "globex")}
ADMIN = "admin-token-for-tests-0123456789-0123456789"
CREDENTIAL = "fresh-token-0123456789"


class Receiver(http.server.ThreadingHTTPServer):
    """The alerts webhook: remembers every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)

    def kinds(self) -> list[str]:
        with self.lock:
            return [body["kind"] for body in self.bodies]


class _ReceiverHandler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.bodies.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class ScriptedReceiver(http.server.ThreadingHTTPServer):
    """An alerts webhook that answers the n-th POST as `answers[n]` says (the last one after that).

    An answer is a status, or "close": read the request and hang up without a response. The n-th
    answer waits until `release(n)` (the first ones given in `released` are not held).
    """

    def __init__(self, answers: list[str], released: int) -> None:
        self.answers = answers
        self.gates = [threading.Event() for _ in answers]
        for gate in self.gates[:released]:
            gate.set()
        self.bodies: list[dict[str, Any]] = []
        self.taken = 0
        """POSTs answered 2xx."""
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)

    def release(self, n: int) -> None:
        self.gates[n].set()

    @property
    def posts(self) -> int:
        with self.lock:
            return len(self.bodies)


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
    server: ScriptedReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            n = len(self.server.bodies)
            self.server.bodies.append(json.loads(body))
        last = len(self.server.answers) - 1
        if n <= last:
            assert self.server.gates[n].wait(timeout=120)
        answer = self.server.answers[min(n, last)]
        if answer == "close":
            self.close_connection = True
            return
        self.send_response(int(answer))
        self.send_header("Content-Length", "0")
        self.end_headers()
        if answer.startswith("2"):
            with self.server.lock:
                self.server.taken += 1

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def partners() -> Iterator[PartnerSet]:
    specs = [
        PartnerSpec("expired", ExpiredCredentials()),
        PartnerSpec("forbidden", Forbidden()),
    ]
    with partners_in_thread(specs, control_port=None) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving(Receiver()) as server:
        yield server


def write_config(tmp_path: Path, partners: PartnerSet, alerts: str) -> Path:
    config = tmp_path / "deliverydash.toml"
    destinations = "".join(
        f"""
[[sources]]
id = "{name}-app"
workspace = "{workspace}"
write_key = "{write_key}"

[[destinations]]
id = "{name}-hook"
source = "{name}-app"
integration = "webhook"
url = "{partners.url(name)}events"
headers = {{ Authorization = "Bearer {CREDENTIAL}" }}
"""
        for name, (write_key, workspace) in SOURCES.items()
    )
    config.write_text(
        f"""
[engine]
data_dir = "data"
allow_private_targets = true
export_interval_s = 0.2
request_timeout_s = 5
lease_s = 10
shutdown_grace_s = 2
admin_token = "{ADMIN}"

[alerts]
{alerts}
{destinations}""",
        encoding="utf-8",
    )
    return config


class Engine:
    """A running `deliverydash serve` and the calls the tests make to it."""

    def __init__(self, config: Path, partner: str) -> None:
        self.write_key = SOURCES[partner][0]
        self.port = free_port()
        self.process = start_engine(config, self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def send(self, n: int = 1) -> None:
        batch = [
            {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": str(uuid.uuid4())}
            for _ in range(n)
        ]
        response = httpx.post(
            f"{self.url}/v1/batch", json={"batch": batch}, auth=(self.write_key, ""), timeout=10
        )
        assert response.status_code == 200, response.text

    def notifications(self, state: str = "all") -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.url}/admin/notifications",
            params={"state": state},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        notes: list[dict[str, Any]] = response.json()["notifications"]
        return notes

    def kinds(self, destination: str, state: str = "all") -> list[str]:
        return [n["kind"] for n in self.notifications(state) if n["destination_id"] == destination]

    def idle(self, destination: str) -> bool:
        """Whether the queue holds no job of `destination` (every event sent so far is settled)."""
        response = httpx.get(
            f"{self.url}/admin/status", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
        )
        return not any(response.json()["queue"]["by_destination"].get(destination, {}).values())

    def status(self) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/admin/status", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def webhook(self) -> dict[str, Any]:
        """The `alerts_webhook` section of `/admin/status`."""
        section: dict[str, Any] = self.status()["alerts_webhook"]
        return section

    def enable(self, destination: str, token: str | None = ADMIN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.post(f"{self.url}/admin/destinations/{destination}/enable", headers=headers, timeout=10)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        output = self.process.communicate(timeout=30)[0]
        assert self.process.returncode == 0, output
        return output

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=30)


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    started: list[Engine] = []
    yield started
    for engine in started:
        engine.kill()


def attempts(data_dir: Path, destination: str) -> list[tuple[Any, ...]]:
    glob = data_dir / "attempts" / "date=*" / "hour=*" / "*.parquet"
    if not list(data_dir.glob("attempts/date=*/hour=*/*.parquet")):
        return []
    with duckdb.connect() as db:
        return db.execute(
            "SELECT attempt, status_code, error_class, error_code, outcome FROM read_parquet($glob) "
            "WHERE destination_id = $destination",
            {"glob": str(glob), "destination": destination},
        ).fetchall()


def send_until(engine: Engine, done: Any, timeout_s: float = 30.0) -> None:
    """Send one event at a time until `done()` holds (each may be a probe)."""

    def step() -> bool:
        if done():
            return True
        engine.send()
        return False

    wait_for(step, timeout_s)


def test_auth_failures_notify_disable_probe_and_recover(
    tmp_path: Path, partners: PartnerSet, receiver: Receiver, engines: list[Engine]
) -> None:
    alerts = f"""
webhook_url = "http://127.0.0.1:{receiver.server_address[1]}/alerts?token=webhook-secret"
disable_after_failures = 3
probe_interval_s = 0.5
"""
    engine = Engine(write_config(tmp_path, partners, alerts), "expired")
    engines.append(engine)
    hook = "expired-hook"

    # The first 401 raises an open notification naming workspace, destination, first-seen time and body.
    engine.send()
    wait_for(lambda: engine.kinds(hook) == ["auth_failing"])
    [note] = engine.notifications("open")
    assert note["workspace_id"] == "acme" and note["destination_id"] == hook
    assert note["integration"] == "webhook" and note["state"] == "open"
    assert note["status_code"] == 401 and note["first_seen_at"]
    assert "token_expired" in note["sample_body"]
    assert CREDENTIAL not in json.dumps(note)

    # At the threshold the destination is disabled; later jobs are skipped without a request.
    send_until(engine, lambda: "disabled" in engine.kinds(hook))
    engine.send(6)
    wait_for(lambda: sum(r[3] == "auto_disabled" for r in attempts(tmp_path / "data", hook)) >= 5)
    skipped = [r for r in attempts(tmp_path / "data", hook) if r[3] == "auto_disabled"]
    assert {r for r in skipped} == {(0, None, "disabled", "auto_disabled", "skipped")}
    assert engine.kinds(hook, "open") == ["disabled", "auth_failing"]  # newest first

    # The partner accepts the credential again: the next probe delivers and re-enables the destination.
    profile = partners.servers["expired"].spec.profile
    assert isinstance(profile, ExpiredCredentials)
    profile.valid_token = CREDENTIAL
    send_until(engine, lambda: "recovered" in engine.kinds(hook))
    assert engine.kinds(hook, "open") == []
    recovered = engine.notifications()[0]
    assert recovered["kind"] == "recovered" and recovered["state"] == "resolved"
    assert recovered["first_seen_at"] == note["first_seen_at"]
    delivered_before = partners.stats("expired").statuses[200]
    engine.send(3)
    wait_for(lambda: partners.stats("expired").statuses[200] >= delivered_before + 3)

    # The webhook heard every notification, in order, as JSON; never the credential.
    wait_for(lambda: receiver.kinds() == ["auth_failing", "disabled", "recovered"])
    assert receiver.bodies[0]["sample_body"] == note["sample_body"]
    assert CREDENTIAL not in json.dumps(receiver.bodies)

    # Broken again and disabled again: the admin API re-enables it by hand, with the admin token only.
    profile.valid_token = ""
    send_until(engine, lambda: engine.kinds(hook, "open")[:1] == ["disabled"])
    wait_for(lambda: engine.idle(hook))
    assert engine.enable(hook, token=None).status_code == 401
    assert engine.enable(hook, token="wrong").status_code == 401
    assert engine.enable("no-such-hook").status_code == 404
    answer = engine.enable(hook)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["changed"] is True and body["state"] == "healthy"
    assert body["notification"]["kind"] == "enabled" and body["notification"]["state"] == "resolved"
    assert engine.kinds(hook, "open") == []
    assert engine.enable(hook).json()["changed"] is False
    wait_for(lambda: receiver.kinds()[-1:] == ["enabled"])

    output = engine.stop()
    assert CREDENTIAL not in output


def test_disabled_survives_a_restart_and_the_store_reads_without_the_engine(
    tmp_path: Path, partners: PartnerSet, engines: list[Engine]
) -> None:
    alerts = "disable_after_failures = 2\nprobe_interval_s = 3600\n"
    config = write_config(tmp_path, partners, alerts)
    data_dir = tmp_path / "data"
    hook = "forbidden-hook"
    engine = Engine(config, "forbidden")
    engines.append(engine)
    send_until(engine, lambda: "disabled" in engine.kinds(hook))
    wait_for(lambda: engine.idle(hook))
    note = next(
        n for n in engine.notifications() if n["destination_id"] == hook and n["kind"] == "auth_failing"
    )
    assert note["status_code"] == 403 and "events:write" in note["sample_body"]
    engine.stop()

    # The engine is down: the dashboard's read function and the CLI read the file read-only.
    opened = open_notifications(data_dir, workspace="globex")
    assert [(n.destination_id, n.kind) for n in opened] == [(hook, "disabled"), (hook, "auth_failing")]
    assert all(n.workspace_id == "globex" and n.state == "open" for n in opened)
    assert open_notifications(data_dir, workspace="acme") == []
    assert open_notifications(tmp_path / "nowhere") == []
    table = run_cli(data_dir)
    assert hook in table and "auth_failing" in table and "403" in table
    assert '"code": "forbidden"' in table  # the sample body, cut to one line

    # After a restart the destination is still disabled: a new job is skipped, no request is made.
    requests_before = partners.stats("forbidden").requests
    skipped_before = sum(r[3] == "auto_disabled" for r in attempts(data_dir, hook))
    engine = Engine(config, "forbidden")
    engines.append(engine)
    engine.send()
    wait_for(lambda: sum(r[3] == "auto_disabled" for r in attempts(data_dir, hook)) > skipped_before)
    assert partners.stats("forbidden").requests == requests_before
    assert engine.enable(hook).json()["changed"] is True
    engine.send()
    wait_for(lambda: partners.stats("forbidden").requests > requests_before)
    wait_for(lambda: len(open_notifications(data_dir)) == 1)
    engine.stop()
    # Enabled by hand with the credential still refused: the old notifications are resolved and
    # the next 403 opens a new one.
    [reopened] = open_notifications(data_dir)
    assert reopened.kind == "auth_failing" and reopened.id > note["id"]
    resolved = read_notifications(data_dir, state="resolved")
    assert [n.kind for n in resolved] == ["enabled", "disabled", "auth_failing"]
    assert "enabled" in run_cli(data_dir, every=True)


def run_cli(data_dir: Path, *, every: bool = False) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["notifications", "--data-dir", str(data_dir), *(["--all"] if every else [])]) == 0
    return out.getvalue()


def test_the_store_resolves_open_notifications_and_reads_while_written(tmp_path: Path) -> None:
    from delivery.alerts.auth_watch import HEALTHY, Phase, WatchState

    store = NotificationStore(tmp_path)
    disabled = WatchState(Phase.DISABLED, 3, 10.0, 20.0, 30.0)

    def note(kind: str, at: float, resolves: bool = False) -> NewNotification:
        return NewNotification(
            f"0{at:025.0f}", kind, "acme", "hook", "webhook", at, kind, 10.0, resolves=resolves
        )

    store.record("hook", disabled, [note("auth_failing", 10), note("disabled", 20)])
    assert store.watch_states() == {"hook": disabled}
    assert [n.kind for n in open_notifications(tmp_path)] == ["disabled", "auth_failing"]
    store.record("hook", HEALTHY, [note("recovered", 40, resolves=True)])
    assert store.watch_states() == {}
    assert open_notifications(tmp_path) == []
    every = read_notifications(tmp_path, limit=2)
    assert [(n.kind, str(n.state)) for n in every] == [("recovered", "resolved"), ("disabled", "resolved")]
    assert every[1].resolved_at is not None and every[1].resolved_at.timestamp() == 40
    store.close()


# -- the [alerts] table ---------------------------------------------------------------------------


def test_the_alerts_table_is_read_and_checked() -> None:
    config = parse_config(
        {
            "alerts": {
                "webhook_url": "https://alerts.internal.example/hook/t0ken",
                "disable_after_failures": 5,
                "disable_after_s": 90,
                "probe_interval_s": 2.5,
                "auto_disable": False,
                "webhook_timeout_s": 1,
                "webhook_max_attempts": 4,
                "webhook_backoff_base_s": 0.5,
                "webhook_backoff_max_s": 60,
                "webhook_retry_window_s": 600,
            }
        }
    )
    assert config.alerts.webhook_url is not None
    assert config.alerts.webhook_url.reveal() == "https://alerts.internal.example/hook/t0ken"
    assert "t0ken" not in repr(config.alerts)
    assert config.alerts == AlertsConfig(
        config.alerts.webhook_url, 1.0, 4, 0.5, 60.0, 600.0, False, 5, 90.0, 2.5
    )
    assert parse_config({}).alerts == AlertsConfig()
    with pytest.raises(ConfigError) as error:
        bad = {
            "webhook_url": "ftp://x/y",
            "probe_intervl_s": 1,
            "disable_after_failures": 0,
            "webhook_backoff_base_s": 10,
            "webhook_backoff_max_s": 5,
            "webhook_max_attempts": 0,
        }
        parse_config({"alerts": bad})
    assert error.value.problems == (
        "alerts.probe_intervl_s: unknown key (did you mean 'probe_interval_s'?)",
        "alerts.webhook_url: must be an http(s) URL, got 'ftp://x/…'",
        "alerts.webhook_backoff_base_s: must not exceed alerts.webhook_backoff_max_s (5), got 10",
        "alerts.webhook_max_attempts: must be at least 1, got 0",
        "alerts.disable_after_failures: must be at least 1, got 0",
    )


def test_the_docs_list_every_alerts_key_with_its_default() -> None:
    table = doc_table("[alerts]")
    assert list(table) == [f.name for f in dataclasses.fields(AlertsConfig)]
    for f in dataclasses.fields(AlertsConfig):
        assert toml_value(table[f.name]) == ("" if f.name == "webhook_url" else f.default), f.name


WEBHOOK_TOKEN = "webhook-secret-0123456789"
#: The alerts webhook's schedule made short: retries 50 ms apart at most; one auth failure raises
#: one notification (the threshold is out of reach).
QUICK_WEBHOOK = """
webhook_backoff_base_s = 0.05
webhook_backoff_max_s = 0.2
webhook_timeout_s = 120
disable_after_failures = 1000
"""


def status_text(config: Path, engine: Engine) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["status", "--config", str(config), "--url", engine.url]) == 0
    return out.getvalue()


def test_the_alerts_webhook_is_retried_and_its_failures_show_on_admin_status(
    tmp_path: Path, partners: PartnerSet, engines: list[Engine]
) -> None:
    """503, then a connection closed without an answer, then 204: told once; each failure shown meanwhile."""
    receiver = ScriptedReceiver(["503", "close", "204"], released=1)
    with serving(receiver):
        alerts = f'webhook_url = "http://127.0.0.1:{receiver.server_address[1]}/alerts?token={WEBHOOK_TOKEN}"'
        config = write_config(tmp_path, partners, alerts + QUICK_WEBHOOK)
        engine = Engine(config, "expired")
        engines.append(engine)
        engine.send()

        # The first POST was answered 503; the second is held by the receiver, so the engine shows
        # the notification pending, its one failure, and the attempt in flight.
        wait_for(lambda: receiver.posts == 2)
        shown = engine.webhook()
        [note] = engine.notifications()
        assert (shown["pending"], shown["delivered"], shown["failed_attempts"], shown["given_up"]) == (
            1,
            0,
            1,
            0,
        )
        failure = shown["last_failure"]
        assert (failure["status_code"], failure["error_class"], failure["error_code"]) == (
            503,
            "server",
            "503",
        )
        assert (failure["notification_id"], failure["kind"], failure["attempt"]) == (
            note["id"],
            "auth_failing",
            1,
        )
        [pending] = shown["pending_notifications"]
        assert (pending["notification_id"], pending["attempts"], pending["next_attempt_at"]) == (
            note["id"],
            2,
            None,
        )
        text = status_text(config, engine)
        assert "alerts webhook: 1 pending, 0 delivered, 0 given up, 1 failed attempts" in text
        assert f"attempt 1 for auth_failing of expired-hook ({note['id']}): 503 (server)" in text

        # The receiver hangs up on the second: two failures, the third attempt held in turn.
        receiver.release(1)
        wait_for(lambda: receiver.posts == 3)
        shown = engine.webhook()
        assert (shown["pending"], shown["delivered"], shown["failed_attempts"]) == (1, 0, 2)
        failure = shown["last_failure"]
        assert (failure["status_code"], failure["error_class"], failure["error_code"]) == (
            None,
            "network",
            "ESERVERDISCONNECT",
        )
        assert failure["attempt"] == 2
        assert "ESERVERDISCONNECT (network)" in status_text(config, engine)

        # The third is taken: delivered once, nothing pending.
        receiver.release(2)
        wait_for(lambda: engine.webhook()["delivered"] == 1)
        shown = engine.webhook()
        assert (shown["pending"], shown["failed_attempts"], shown["given_up"]) == (0, 2, 0)
        output = engine.stop()
    # Told exactly once: three POSTs of the same notification, one of them taken, none after.
    assert receiver.taken == 1
    assert [body["id"] for body in receiver.bodies] == [note["id"]] * 3
    assert WEBHOOK_TOKEN not in output and CREDENTIAL not in output
    assert f"notification {note['id']} delivered at attempt 3" in output


def test_an_alerts_webhook_that_never_takes_it_is_given_up_after_its_bound_and_reported(
    tmp_path: Path, partners: PartnerSet, engines: list[Engine]
) -> None:
    receiver = ScriptedReceiver(["503"], released=1)
    with serving(receiver):
        url = f"http://127.0.0.1:{receiver.server_address[1]}/alerts?token={WEBHOOK_TOKEN}"
        alerts = f'webhook_url = "{url}"\nwebhook_max_attempts = 3' + QUICK_WEBHOOK
        config = write_config(tmp_path, partners, alerts)
        engine = Engine(config, "expired")
        engines.append(engine)
        engine.send()
        wait_for(lambda: engine.webhook()["given_up"] == 1)
        shown = engine.webhook()
        [note] = engine.notifications()
        assert (shown["pending"], shown["delivered"], shown["failed_attempts"]) == (0, 0, 3)
        gave_up = shown["last_given_up"]
        assert (
            gave_up["notification_id"],
            gave_up["reason"],
            gave_up["attempt"],
            gave_up["status_code"],
        ) == (
            note["id"],
            "max_attempts",
            3,
            503,
        )
        text = status_text(config, engine)
        assert "alerts webhook: 0 pending, 0 delivered, 1 given up, 3 failed attempts" in text
        assert f"last given up (max_attempts) {gave_up['at']}: attempt 3 for auth_failing" in text
        assert WEBHOOK_TOKEN not in text
        output = engine.stop()
    assert receiver.posts == 3 and receiver.taken == 0  # nothing after the bound, the stop included
    assert f"gave up on notification {note['id']} after 3 attempts (max_attempts)" in output
    assert WEBHOOK_TOKEN not in output
    # The notification itself is kept: the store is the record.
    assert [n.kind for n in open_notifications(tmp_path / "data")] == ["auth_failing"]
