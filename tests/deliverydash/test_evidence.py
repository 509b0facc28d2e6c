"""An evidence pack of a log a real engine wrote, delivering to a partner that echoes everything it is
sent (headers, path, query, body) in its error answers, with a config full of secrets (in the file, or
added live beside the queue): no file of the pack holds a secret, a workspace or destination id, or the
events' personal data."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import io
import itertools
import json
import secrets
import string
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import plotly.offline
import pytest

from delivery.config import load_config
from deliverydash.cli import main
from deliverydash.demo_harness import EngineThread, hour_floor
from queries import connect

WORKSPACES = ("ws-zq7-northwind", "ws-xk4-contoso")
WRITE_KEYS = (f"wk_live_{secrets.token_hex(8)}", f"wk_live_{secrets.token_hex(8)}")
#: Letters only, echoed unquoted (`X-Api-Key: ...`): what the queries' redaction leaves, the scrub takes.
HEADER_TOKEN = "".join(secrets.choice(string.ascii_letters) for _ in range(24))
API_KEY = "".join(secrets.choice(string.ascii_letters) for _ in range(24))
PATH_TOKEN = f"pathtok{secrets.token_hex(10)}"
QUERY_TOKEN = f"qtok{secrets.token_hex(10)}"
SIGNING_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
ADMIN_TOKEN = secrets.token_urlsafe(33)
DASHBOARD_SECRET = secrets.token_urlsafe(33)
PERSONAL = ("ada.lovelace@example.org", "user-ada-1815", "+44 20 7946 0958")


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers 200, then a 400 quoting the request as JSON, then a 503 quoting it as text, in turn."""

    turns = itertools.count()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode(errors="replace")
        turn = next(self.turns) % 3
        if turn == 0:
            status, answer = 200, '{"ok": true}'
        elif turn == 1:
            status, answer = (
                400,
                json.dumps({"error": "bad", "path": self.path, "headers": dict(self.headers), "body": body}),
            )
        else:
            lines = "\n".join(f"{name}: {value}" for name, value in self.headers.items())
            status, answer = 503, f"unavailable\nPOST {self.path}\n{lines}\n\n{body}"
        data = answer.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if turn < 2 else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def destination_tables(partner: str) -> list[tuple[str, dict[str, str]]]:
    """(id, keys) of each destination: a webhook on `partner` per source, full of secrets."""
    return [
        (
            f"dst-{n}-{workspace}",
            {
                "source": f'"src-{n}"',
                "integration": '"webhook"',
                "url": f'"{partner}/hooks/{PATH_TOKEN}?token={QUERY_TOKEN}"',
                "max_batch_events": "1",
                "signing_secret": f'"{SIGNING_SECRET}"',
                "headers": f'{{ Authorization = "Bearer {HEADER_TOKEN}", X-Api-Key = "{API_KEY}" }}',
            },
        )
        for n, workspace in enumerate(WORKSPACES)
    ]


def write_config(path: Path, data_dir: Path, partner: str, *, live: bool = False) -> None:
    """The engine's config; with `live`, its destinations are added live (`deliverydash destinations add`)."""
    sources = "".join(
        f'[[sources]]\nid = "src-{n}"\nworkspace = "{workspace}"\nwrite_key = "{key}"\n\n'
        for n, (workspace, key) in enumerate(zip(WORKSPACES, WRITE_KEYS, strict=True))
    )
    tables = destination_tables(partner)
    destinations = "".join(
        f'[[destinations]]\nid = "{id_}"\n'
        + "".join(f"{key} = {value}\n" for key, value in keys.items())
        + "\n"
        for id_, keys in tables
    )
    path.write_text(
        f'[engine]\ndata_dir = "{data_dir}"\nallow_private_targets = true\nbackoff_base_s = 0.1\n'
        f"backoff_max_s = 0.2\nmax_attempts = 2\nexport_interval_s = 0.2\nshutdown_grace_s = 1\n"
        f'admin_token = "{ADMIN_TOKEN}"\n\n[dashboard]\nsecret = "{DASHBOARD_SECRET}"\n\n'
        f"{sources}{'' if live else destinations}"
    )
    if live:
        for id_, keys in tables:
            sets = [arg for key, value in keys.items() for arg in ("--set", f"{key}={value}")]
            assert main(["destinations", "add", id_, "--config", str(path), *sets]) in (0, None)


def send(engine: EngineThread, write_key: str, count: int) -> None:
    batch = [
        {
            "type": "track",
            "userId": PERSONAL[1],
            "event": "Order Completed",
            "properties": {"email": PERSONAL[0], "phone": PERSONAL[2], "n": i},
            "context": {"traits": {"email": PERSONAL[0]}},
        }
        for i in range(count)
    ]
    answer = httpx.post(f"{engine.url}/v1/batch", json={"batch": batch}, auth=(write_key, ""), timeout=10)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("live", [False, True], ids=["destinations in the file", "destinations added live"])
def test_a_pack_of_an_engine_s_log_holds_no_secret_id_or_personal_data(
    echo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], live: bool
) -> None:
    config = tmp_path / "deliverydash.toml"
    write_config(config, tmp_path / "data", echo, live=live)
    started = dt.datetime.now(dt.UTC)
    engine = EngineThread(load_config(config))
    engine.start()
    try:
        for key in WRITE_KEYS:
            send(engine, key, 12)
        assert engine.wait_until_settled(24, timeout_s=30) == 0
    finally:
        engine.stop()
    assert engine.error is None
    since, until = hour_floor(started), hour_floor(dt.datetime.now(dt.UTC)) + dt.timedelta(hours=1)

    out = tmp_path / "pack.zip"
    argv = ["evidence", "--partner", "webhook", "--config", str(config), "--out", str(out)]
    assert main([*argv, "--since", f"{since:%Y-%m-%dT%H}", "--until", f"{until:%Y-%m-%dT%H}"]) == 0
    with zipfile.ZipFile(out) as archive:
        files = {name: archive.read(name).decode() for name in archive.namelist()}
    report = next(name for name in files if name.endswith("report.html"))
    assert files[report].count(plotly.offline.get_plotlyjs()) == 1
    files[report] = files[report].replace(plotly.offline.get_plotlyjs(), "")  # a fixed text, no data in it
    templates = next(text for name, text in files.items() if name.endswith("error_templates.csv"))
    assert "400" in templates and "503" in templates  # the echoes are in the pack, redacted

    with connect(tmp_path / "data") as log:
        ids = log.sql("SELECT DISTINCT workspace_id, source_id, destination_id FROM attempts").rows()
    assert {row[0] for row in ids} == set(WORKSPACES)
    secret_values = [
        *WRITE_KEYS,
        HEADER_TOKEN,
        API_KEY,
        PATH_TOKEN,
        QUERY_TOKEN,
        SIGNING_SECRET,
        SIGNING_SECRET.removeprefix("whsec_"),
        ADMIN_TOKEN,
        DASHBOARD_SECRET,
        *PERSONAL,
        *(value for row in ids for value in row),
    ]
    leaks = [(name, value) for name, text in files.items() for value in secret_values if value in text]
    assert not leaks
    assert "unavailable" in io.StringIO(templates).read()
