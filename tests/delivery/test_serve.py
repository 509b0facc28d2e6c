"""`deliverydash serve` end to end: a real engine process, real sinks, the real Segment client."""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from segment.analytics.client import Client

from deliverydash.cli import main
from tests.delivery.engine_process import free_port, serving, start_engine, wait_for

WRITE_KEY = "wk_test_web"
SECRET = "s3cret-token-value"


class Sink(http.server.ThreadingHTTPServer):
    """Answers 200 on /ok and 401 on /auth, and remembers every connection and request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.connections = 0
        self.lock = threading.Lock()
        super().__init__((host, 0), _SinkHandler)

    def verify_request(self, request: object, client_address: object) -> bool:
        with self.lock:
            self.connections += 1
        return True


class _SinkHandler(http.server.BaseHTTPRequestHandler):
    server: Sink

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.requests.append((self.path, dict(self.headers), body))
        status = 200 if self.path == "/ok" else 401
        answer = (
            b'{"ok":true}'
            if status == 200
            else b'{"error":"invalid_token","token":"' + SECRET.encode() + b'"}'
        )
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def sink() -> Iterator[Sink]:
    with serving(Sink()) as server:
        yield server


def write_config(tmp_path: Path, sink: Sink) -> Path:
    port = sink.server_address[1]
    config = tmp_path / "deliverydash.toml"
    config.write_text(
        f"""
[engine]
data_dir = "data"
allow_private_targets = true
export_interval_s = 0.2
request_timeout_s = 5
backoff_base_s = 0.2
backoff_max_s = 1
lease_s = 10
shutdown_grace_s = 2

[[sources]]
id = "web"
workspace = "acme"
write_key = "{WRITE_KEY}"

[[destinations]]
id = "ok-hook"
source = "web"
integration = "webhook"
url = "http://127.0.0.1:{port}/ok"
headers = {{ Authorization = "Bearer {SECRET}" }}

[[destinations]]
id = "auth-hook"
source = "web"
integration = "webhook"
url = "http://127.0.0.1:{port}/auth"
headers = {{ Authorization = "Bearer {SECRET}" }}
""",
        encoding="utf-8",
    )
    return config


def test_events_sent_with_the_segment_client_reach_every_destination(tmp_path: Path, sink: Sink) -> None:
    port = free_port()
    engine = start_engine(write_config(tmp_path, sink), port)
    try:
        client = Client(WRITE_KEY, host=f"http://127.0.0.1:{port}", sync_mode=True)
        for i in range(5):
            client.track(user_id=f"user-{i}", event="Order Completed", properties={"order": i})
        client.identify(user_id="user-0", traits={"plan": "pro"})
        wait_for(lambda: len(sink.requests) >= 12)
    finally:
        engine.send_signal(signal.SIGTERM)
        output = engine.communicate(timeout=30)[0]
    assert engine.returncode == 0, output

    paths = sorted(path for path, _, _ in sink.requests)
    assert paths == ["/auth"] * 6 + ["/ok"] * 6
    assert all(headers["Authorization"] == f"Bearer {SECRET}" for _, headers, _ in sink.requests)
    delivered = [json.loads(body) for path, _, body in sink.requests if path == "/ok"]
    assert sorted(e["type"] for e in delivered) == ["identify"] + ["track"] * 5

    glob = str(tmp_path / "data" / "attempts" / "date=*" / "hour=*" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT destination_id, attempt, status_code, error_class, error_code, retryable, outcome, "
        f"event_count, events[1].message_id AS message_id FROM read_parquet('{glob}')"
    ).fetchall()
    assert len(rows) == 12  # one record per request, no more
    ok = [r for r in rows if r[0] == "ok-hook"]
    auth = [r for r in rows if r[0] == "auth-hook"]
    assert {r[1:7] for r in ok} == {(1, 200, "none", "200", False, "delivered")}
    assert {r[1:7] for r in auth} == {(1, 401, "auth", "401", False, "failed")}
    assert {r[8] for r in ok} == {r[8] for r in auth}  # the same six events went to both
    everything = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*.parquet"))
    assert SECRET.encode() not in everything


def test_a_bad_config_names_the_key_and_the_engine_does_not_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[engine]\nmax_attempts = "ten"\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "deliverydash", "serve", "--config", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
        check=False,
    )
    assert done.returncode == 2
    assert "engine.max_attempts" in done.stderr
    assert "did not start" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_name_that_resolves_to_a_private_address_is_refused_when_the_engine_connects(
    tmp_path: Path,
) -> None:
    # This machine's own name, looked up by the system resolver: it resolves to a loopback or
    # private address on most hosts (skipped where it does not). The config cannot judge a name;
    # the engine's client must, on the address it is about to connect to.
    name = socket.gethostname()
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, None, socket.AF_INET)}
    except OSError:
        pytest.skip("this host's name does not resolve")
    private = sorted(a for a in addresses if not ipaddress.ip_address(a).is_global)
    if not private or len(private) != len(addresses):
        pytest.skip(f"{name} does not resolve to private addresses only")
    with serving(Sink(private[0])) as sink:
        config = tmp_path / "deliverydash.toml"
        config.write_text(
            f"""
[engine]
data_dir = "data"
allow_private_targets = false
export_interval_s = 0.2
lease_s = 20

[[sources]]
id = "web"
workspace = "acme"
write_key = "{WRITE_KEY}"

[[destinations]]
id = "rebound-hook"
source = "web"
integration = "webhook"
url = "http://{name}:{sink.server_address[1]}/ok"
""",
            encoding="utf-8",
        )
        port = free_port()
        engine = start_engine(config, port)
        glob = str(tmp_path / "data" / "attempts" / "date=*" / "hour=*" / "*.parquet")

        def recorded() -> list[tuple[object, ...]]:
            if not list((tmp_path / "data" / "attempts").rglob("*.parquet")):
                return []
            return duckdb.sql(
                f"SELECT attempt, status_code, error_class, error_code, retryable, outcome, error_message "
                f"FROM read_parquet('{glob}')"
            ).fetchall()

        try:
            Client(WRITE_KEY, host=f"http://127.0.0.1:{port}", sync_mode=True).track(
                user_id="user-1", event="Order Completed"
            )
            wait_for(lambda: bool(recorded()))
        finally:
            engine.send_signal(signal.SIGTERM)
            output = engine.communicate(timeout=30)[0]
    assert engine.returncode == 0, output
    [(attempt, status, error_class, code, retryable, outcome, message)] = recorded()
    assert (attempt, status, error_class, code, retryable, outcome) == (
        1,
        None,
        "precheck",
        "private_target",
        False,
        "failed",
    )
    assert name in message and private[0] in message
    assert sink.connections == 0


# -- the admin token -------------------------------------------------------------------------------


def admin_status(port: int, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"http://127.0.0.1:{port}/admin/status", headers=headers, timeout=10).status_code


def stop(engine: subprocess.Popen[str]) -> str:
    engine.send_signal(signal.SIGTERM)
    output = engine.communicate(timeout=30)[0]
    assert engine.returncode == 0, output
    return output


def test_without_a_configured_token_the_engine_generates_one_keeps_it_private_and_reuses_it(
    tmp_path: Path, sink: Sink, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, sink)  # no admin_token
    token_file = tmp_path / "data" / "admin_token"
    port = free_port()
    engine = start_engine(config, port)
    try:
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert admin_status(port, token) == 200
        for other in (None, token[:-1], token + "x", token.swapcase(), "change-me"):
            assert admin_status(port, other) == 401, other
        # `deliverydash status` finds the token in the same file through the config.
        assert main(["status", "--config", str(config), "--url", f"http://127.0.0.1:{port}"]) == 0
        assert f"engine at http://127.0.0.1:{port}, up" in capsys.readouterr().out
    finally:
        first_run = stop(engine)
    assert f"admin API token: in {token_file} (readable by its owner only)" in first_run
    assert token not in first_run

    # The next start reads the same file: the same token, the file not written again.
    inode = token_file.stat().st_ino
    engine = start_engine(config, port)
    try:
        assert admin_status(port, token) == 200
        assert token_file.stat().st_ino == inode and token_file.read_text().strip() == token
    finally:
        second_run = stop(engine)
    assert f"admin API token: in {token_file}" in second_run
    assert token not in second_run
    assert not list((tmp_path / "data" / "_tmp").glob("*"))  # no temporary file left behind


def serve_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deliverydash", "serve", "--config", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_short_admin_token_is_refused_and_never_shown(tmp_path: Path, sink: Sink) -> None:
    config = write_config(tmp_path, sink)
    short = "short-but-secret-0123456789"
    config.write_text(config.read_text().replace("[engine]\n", f'[engine]\nadmin_token = "{short}"\n'))
    done = serve_once(config)
    assert done.returncode == 2
    assert "the engine did not start" in done.stderr
    assert "engine.admin_token: must be at least 32 characters" in done.stderr
    assert short not in done.stderr + done.stdout
    assert not (tmp_path / "data" / "admin_token").exists()


def test_a_token_file_others_may_read_stops_the_engine(tmp_path: Path, sink: Sink) -> None:
    config = write_config(tmp_path, sink)
    token_file = tmp_path / "data" / "admin_token"
    token_file.parent.mkdir()
    token_file.write_text("t" * 43 + "\n")
    token_file.chmod(0o644)
    done = serve_once(config)
    assert done.returncode == 2
    assert f"{token_file}: holds the admin token but others may read or change it (mode 0644)" in done.stderr
    assert "t" * 43 not in done.stderr + done.stdout
