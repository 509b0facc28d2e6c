"""Destinations and sources changed through the admin API while engines run (docs/live-config.md).

Real engine processes (`deliverydash serve`) over real sockets, loopback sinks
that record each request's path and credential, events sent to the tracking
API. On one engine (SQLite) and on a fleet of two on PostgreSQL: a destination
added receives events within 5 s, a changed URL and credential are used within
5 s, a disabled destination gets no more requests and its jobs are skipped as
`disabled`; changes are refused with messages naming the problem; secrets are
never in an answer or a log line.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.delivery.engine_process import free_port, serving, start_engine, wait_for
from tests.objectstore import log_connection

ADMIN_TOKEN = "tok-live-0123456789-0123456789-0123456789"
WRITE_KEY = "wk_live_web"
#: Secrets that must never be shown: in an answer of the admin API or in the engine's log.
SECRETS = ("crm-token-first-9f1c2", "crm-token-second-77ab0", "wk_live_shop_secret_31", "hdr-secret-5d0e")
WITHIN_S = 5.0


class Sink(http.server.ThreadingHTTPServer):
    """Answers 200 to every POST and records its path and Authorization header."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def seen(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.requests)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Sink

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.requests.append((self.path, self.headers.get("Authorization", "")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def write_config(path: Path, data_dir: Path, queue: str = "") -> Path:
    path.write_text(
        f"""[engine]
data_dir = "{data_dir}"
allow_private_targets = true
admin_token = "{ADMIN_TOKEN}"
export_interval_s = 0.2
request_timeout_s = 2
lease_s = 3
backoff_base_s = 0.2
backoff_max_s = 1
shutdown_grace_s = 1
{queue}
[[sources]]
id = "web"
workspace = "acme"
write_key = "{WRITE_KEY}"
""",
        encoding="utf-8",
    )
    return path


class Admin:
    """The admin API of the engine on `port`."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def __call__(self, method: str, path: str, body: Any = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else None
        payload = None if isinstance(body, bytes) or body is None else body
        return httpx.request(
            method, self.base + path, json=payload, content=content, headers=self.headers, timeout=10
        )

    def track(self, write_key: str = WRITE_KEY) -> int:
        """One track call; the tracking API's status."""
        body = {"type": "track", "userId": "u-1", "event": "Order_Completed", "messageId": str(uuid.uuid4())}
        return httpx.post(f"{self.base}/v1/track", json=body, auth=(write_key, ""), timeout=10).status_code

    def drained(self) -> bool:
        queue = self("GET", "/admin/status").json()["queue"]
        return sum(queue["by_state"].values()) == 0 and queue["outbox_records"] == 0


def within(condition: Callable[[], bool], send: Callable[[], object]) -> float:
    """Send an event every 0.25 s until `condition` holds; the seconds it took (at most `WITHIN_S`)."""
    started = time.monotonic()
    deadline = started + WITHIN_S
    while time.monotonic() < deadline:
        send()
        time.sleep(0.25)
        if condition():
            return time.monotonic() - started
    raise AssertionError(f"not within {WITHIN_S} s")


def crm(destination_id: str, url: str, token: str) -> dict[str, Any]:
    return {
        "id": destination_id,
        "source": "web",
        "integration": "crm-records",
        "url": url,
        "credential": token,
    }


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def sinks() -> Iterator[tuple[Sink, Sink]]:
    with serving(Sink()) as first, serving(Sink()) as second:
        yield first, second


def test_a_destination_added_changed_and_disabled_live_takes_effect_within_5_s(
    tmp_path: Path, sinks: tuple[Sink, Sink]
) -> None:
    first, second = sinks
    data_dir = tmp_path / "data"
    port = free_port()
    log = (tmp_path / "engine.log").open("w")
    engine = start_engine(write_config(tmp_path / "engine.toml", data_dir), port, log=log)
    admin = Admin(port)
    try:
        # Added: the next events go to it.
        added = admin("POST", "/admin/destinations", crm("crm", f"{first.url}/v1", SECRETS[0]))
        assert added.status_code == 201, added.text
        assert added.json()["credential"] == "set" and added.json()["managed"] == "live"
        within(lambda: ("/v1", f"Bearer {SECRETS[0]}") in first.seen(), admin.track)

        # URL and credential changed: the next requests go to the new sink with the new token.
        changed = admin(
            "PATCH", "/admin/destinations/crm", {"url": f"{second.url}/v2", "credential": SECRETS[1]}
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["url"] == second.url  # the origin only
        within(lambda: ("/v2", f"Bearer {SECRETS[1]}") in second.seen(), admin.track)
        wait_for(admin.drained, timeout_s=10)
        assert all(auth == f"Bearer {SECRETS[1]}" for _, auth in second.seen())
        before = len(first.seen()), len(second.seen())

        # Disabled: no more requests; the jobs are skipped as `disabled`.
        disabled = admin("POST", "/admin/destinations/crm/disable")
        assert (disabled.status_code, disabled.json()["enabled"]) == (200, False)
        for _ in range(3):
            assert admin.track() == 200
        wait_for(admin.drained, timeout_s=10)
        time.sleep(0.5)
        assert (len(first.seen()), len(second.seen())) == before

        # A source added: its write key is taken at once; the file's source is listed, not its key.
        assert admin.track(SECRETS[2]) == 401
        source = admin("POST", "/admin/sources", {"id": "shop", "workspace": "acme", "write_key": SECRETS[2]})
        assert (source.status_code, source.json()["write_key"]) == (201, "set")
        assert admin.track(SECRETS[2]) == 200
        # Disabled: its write key is refused as an unknown one; enabled again, taken again.
        assert admin("POST", "/admin/sources/shop/disable").json()["enabled"] is False
        assert admin.track(SECRETS[2]) == 401
        assert admin("PATCH", "/admin/sources/shop", {"enabled": True}).json()["enabled"] is True
        assert admin.track(SECRETS[2]) == 200

        listed = admin("GET", "/admin/destinations").text + admin("GET", "/admin/sources").text
        listed += admin("GET", "/admin/destinations/crm").text + admin("GET", "/admin/sources/web").text
        assert_no_secret(listed)
        assert WRITE_KEY not in listed
    finally:
        engine.terminate()
        engine.wait(timeout=30)
        log.close()
    assert_no_secret((tmp_path / "engine.log").read_text())
    skipped = (
        log_connection(data_dir)
        .execute(
            "SELECT outcome, error_class, error_code, count(*) FROM attempts "
            "WHERE destination_id = 'crm' AND error_class = 'disabled' GROUP BY ALL"
        )
        .fetchall()
    )
    assert skipped == [("skipped", "disabled", "disabled", 3)]


def test_changes_are_refused_with_the_problem_named_and_nothing_stored(tmp_path: Path) -> None:
    port = free_port()
    engine = start_engine(write_config(tmp_path / "engine.toml", tmp_path / "data"), port)
    admin = Admin(port)
    try:
        cases: list[tuple[str, str, Any, int, str, str]] = [
            (
                "POST",
                "/admin/destinations",
                {**crm("bad", "ftp://x.example/p", "t")},
                422,
                "invalid_config",
                "destinations[bad].url: must be an http(s) URL, got 'ftp://x.example/…'",
            ),
            (
                "POST",
                "/admin/destinations",
                {**crm("bad", "http://x.example", "t"), "source": "wbe"},
                422,
                "invalid_config",
                "destinations[bad].source: unknown source 'wbe' (did you mean 'web'?)",
            ),
            (
                "POST",
                "/admin/destinations",
                {**crm("bad", "http://x.example", "t"), "urll": "x"},
                422,
                "invalid_config",
                "destinations[bad].urll: unknown key (did you mean 'url'?)",
            ),
            (
                "POST",
                "/admin/destinations",
                {"id": "bad", "source": "web", "integration": "crm-records", "url": "http://x.example"},
                422,
                "invalid_config",
                "destinations[bad].credential: required by",
            ),
            (
                "POST",
                "/admin/sources",
                {"id": "web", "workspace": "acme", "write_key": "k2"},
                409,
                "conflict",
                "source 'web' exists already",
            ),
            (
                "POST",
                "/admin/sources",
                {"id": "s2", "workspace": "acme", "write_key": WRITE_KEY},
                422,
                "invalid_config",
                "sources[s2].write_key: same write key as sources[0]",
            ),
            (
                "PATCH",
                "/admin/destinations/nope",
                {"enabled": False},
                404,
                "unknown_destination",
                "no destination 'nope' is configured",
            ),
            (
                "PATCH",
                "/admin/sources/web",
                {"write_key": "a:b"},
                422,
                "invalid_config",
                "sources[web].write_key: must not contain ':'",
            ),
            (
                "POST",
                "/admin/destinations",
                b"not json",
                400,
                "invalid_request",
                "the body must be a JSON object",
            ),
            ("POST", "/admin/destinations", [1], 400, "invalid_request", "the body must be a JSON object"),
        ]
        for method, path, body, status, code, message in cases:
            answer = admin(method, path, body)
            assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
            assert message in answer.json()["message"], answer.text
        assert admin("GET", "/admin/destinations").json() == {"destinations": []}
        assert admin("GET", "/admin/sources/web").json()["write_key"] == "set"
        refused = httpx.get(f"{admin.base}/admin/destinations", timeout=5)
        assert refused.status_code == 401
    finally:
        engine.terminate()
        output, _ = engine.communicate(timeout=30)
    assert "destinations[bad]" not in output or "ftp://x.example/p" not in output


def test_the_endpoints_are_in_the_openapi_document_with_their_bodies(tmp_path: Path) -> None:
    from delivery.api.main import create_app
    from delivery.config import parse_config

    app = create_app(parse_config({"engine": {"admin_token": ADMIN_TOKEN}}), queue=None)  # type: ignore[arg-type]
    paths = app.openapi()["paths"]
    for path, method, statuses in [
        ("/admin/destinations", "get", {"200", "400", "401", "503"}),
        ("/admin/destinations", "post", {"201", "400", "401", "409", "422", "503"}),
        ("/admin/destinations/{destination_id}", "get", {"200", "400", "401", "404", "503"}),
        ("/admin/destinations/{destination_id}", "patch", {"200", "400", "401", "404", "422", "503"}),
        ("/admin/destinations/{destination_id}/disable", "post", {"200", "400", "401", "404", "422", "503"}),
        ("/admin/sources", "get", {"200", "400", "401", "503"}),
        ("/admin/sources", "post", {"201", "400", "401", "409", "422", "503"}),
        ("/admin/sources/{source_id}", "get", {"200", "400", "401", "404", "503"}),
        ("/admin/sources/{source_id}/disable", "post", {"200", "400", "401", "404", "422", "503"}),
        ("/admin/sources/{source_id}", "patch", {"200", "400", "401", "404", "422", "503"}),
    ]:
        operation = paths[path][method]
        assert set(operation["responses"]) == statuses, (path, method)
        assert operation["security"] == [{"adminToken": []}]
        if method in ("post", "patch") and not path.endswith("/disable"):
            assert "schema" in operation["requestBody"]["content"]["application/json"]
        for status, answer in operation["responses"].items():
            if status >= "400":
                schema = answer["content"]["application/json"]["schema"]
                assert schema["required"] == ["code", "message"]
    assert json.dumps(paths).count("invalid_config") == 6


def test_on_a_fleet_both_engines_take_a_change_up_within_5_s(
    tmp_path: Path, sinks: tuple[Sink, Sink], postgres_dsn: str
) -> None:
    first, second = sinks
    data_dir = tmp_path / "data"
    config = write_config(
        tmp_path / "fleet.toml", data_dir, f'[queue]\nbackend = "postgres"\ndsn = "{postgres_dsn}"\n'
    )
    logs = [(tmp_path / f"engine-{name}.log").open("w") for name in "ab"]
    ports = [free_port(), free_port()]
    engines = [start_engine(config, port, log=log) for port, log in zip(ports, logs, strict=True)]
    a, b = Admin(ports[0]), Admin(ports[1])

    def everywhere(path: str, check: Callable[[dict[str, Any]], bool]) -> Callable[[], bool]:
        return lambda: all(
            (answer := admin("GET", path)).status_code == 200 and check(answer.json()) for admin in (a, b)
        )

    try:
        # Added through one engine: both know it, and events sent through the other reach it.
        assert a("POST", "/admin/destinations", crm("crm", f"{first.url}/v1", SECRETS[0])).status_code == 201
        wait_for(everywhere("/admin/destinations/crm", lambda shown: shown["url"] == first.url), WITHIN_S)
        within(lambda: ("/v1", f"Bearer {SECRETS[0]}") in first.seen(), b.track)

        # Changed through the other: events sent through the first go to the new URL with the new token.
        changed = b("PATCH", "/admin/destinations/crm", {"url": f"{second.url}/v2", "credential": SECRETS[1]})
        assert changed.status_code == 200, changed.text
        within(lambda: ("/v2", f"Bearer {SECRETS[1]}") in second.seen(), a.track)
        wait_for(a.drained, timeout_s=10)
        before = len(first.seen()), len(second.seen())

        # Disabled through the first: neither engine sends to it; its jobs are skipped.
        assert a("POST", "/admin/destinations/crm/disable").status_code == 200
        wait_for(everywhere("/admin/destinations/crm", lambda shown: not shown["enabled"]), WITHIN_S)
        for admin in (a, b, a):
            assert admin.track() == 200
        wait_for(a.drained, timeout_s=10)
        time.sleep(0.5)
        assert (len(first.seen()), len(second.seen())) == before
        assert_no_secret(a("GET", "/admin/destinations").text + b("GET", "/admin/destinations").text)
    finally:
        for engine in engines:
            engine.terminate()
        for engine in engines:
            engine.wait(timeout=30)
        for log in logs:
            log.close()
    for name in "ab":
        assert_no_secret((tmp_path / f"engine-{name}.log").read_text())
    skipped = (
        log_connection(data_dir)
        .execute("SELECT count(*) FROM attempts WHERE destination_id = 'crm' AND error_class = 'disabled'")
        .fetchone()
    )
    assert skipped == (3,)
