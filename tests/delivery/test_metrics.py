"""`/metrics` and `/admin/status`: the pure exposition, then over the app, then wired to a real worker."""

from __future__ import annotations

import asyncio
import base64
import http.server
import re
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from delivery.api import stats as tracking_stats
from delivery.api.main import create_app
from delivery.api.stats import TrackingStats
from delivery.config import Config, parse_config
from delivery.engine import build_app
from delivery.metrics import LATENCY_BUCKETS_S, Metrics, escape_label_value
from delivery.queue import QueueDepth
from delivery.queue.postgres import PostgresQueue
from delivery.queue.sqlite import SqliteQueue

WRITE_KEY = "wk_live_acme_web_secret"
ADMIN_TOKEN = "adm-7f3c9e1b-token-0123456789-0123456789"
EMPTY = QueueDepth({"pending": 0, "leased": 0}, {}, 0)

#: One sample line of the text format: name, optional labels, a number.
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_]+="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$')


def config_for(url: str = "https://hook.example.com/in", data_dir: Path | None = None) -> Config:
    """The engine's config; `data_dir` for tests that run the exporter (the default is the repo's data/)."""
    engine: dict[str, Any] = {
        "admin_token": ADMIN_TOKEN,
        "allow_private_targets": True,
        "request_timeout_s": 2,
    }
    if data_dir is not None:
        engine["data_dir"] = str(data_dir)
    return parse_config(
        {
            "engine": engine,
            "sources": [{"id": "web-src", "workspace": "acme-workspace", "write_key": WRITE_KEY}],
            "destinations": [
                {"id": "dest-ok", "source": "web-src", "integration": "webhook", "url": f"{url}/ok"},
                {"id": "dest-auth", "source": "web-src", "integration": "webhook", "url": f"{url}/auth"},
            ],
        }
    )


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, after checking every line is well formed and every family typed."""
    assert text.endswith("\n")
    typed: dict[str, str] = {}
    helped: set[str] = set()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            typed[name] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"malformed sample line: {line!r}"
            family = re.sub(r"_(bucket|sum|count)$", "", match[1]) if match[1] not in typed else match[1]
            assert family in typed and family in helped, f"no HELP/TYPE before {line!r}"
            key = line.rsplit(" ", 1)[0]
            assert key not in values, f"duplicate series {key}"
            values[key] = float(match[4])
    return values


def attempt(error_class: str, outcome: str, duration_ms: float | None) -> dict[str, Any]:
    return {
        "error_class": error_class,
        "outcome": outcome,
        "duration_ms": duration_ms,
        "destination_id": "dest-ok",
        "workspace_id": "acme-workspace",
    }


# -- the pure exposition -------------------------------------------------------------------------


def test_an_idle_engine_shows_every_family_at_zero() -> None:
    values = samples(tracking_stats.render(TrackingStats()) + Metrics().render(EMPTY))
    assert values["deliverydash_events_accepted_total"] == 0
    assert values['deliverydash_queue_jobs{state="pending"}'] == 0
    assert values['deliverydash_queue_jobs{state="leased"}'] == 0
    assert values["deliverydash_outbox_records"] == 0
    assert values['deliverydash_request_duration_seconds_bucket{le="+Inf"}'] == 0
    assert values["deliverydash_request_duration_seconds_count"] == 0
    assert not any(key.startswith("deliverydash_attempts_total{") for key in values)


def test_attempts_are_counted_by_class_and_outcome_and_timed_in_cumulative_buckets() -> None:
    metrics = Metrics()
    for record in [
        attempt("none", "delivered", 3),
        attempt("none", "delivered", 5),  # on a bound: counted in le="0.005"
        attempt("server", "retry", 120),
        attempt("timeout", "retry", 70_000),  # beyond the last bound: only +Inf
        attempt("disabled", "skipped", None),  # no request, no duration
    ]:
        metrics.record(record)
    values = samples(metrics.render(EMPTY))
    assert values['deliverydash_attempts_total{error_class="none",outcome="delivered"}'] == 2
    assert values['deliverydash_attempts_total{error_class="server",outcome="retry"}'] == 1
    assert values['deliverydash_attempts_total{error_class="timeout",outcome="retry"}'] == 1
    assert values['deliverydash_attempts_total{error_class="disabled",outcome="skipped"}'] == 1
    bucket = 'deliverydash_request_duration_seconds_bucket{{le="{}"}}'.format
    assert values[bucket("0.005")] == 2
    assert values[bucket("0.1")] == 2
    assert values[bucket("0.25")] == 3
    assert values[bucket("60")] == 3
    assert values[bucket("+Inf")] == 4
    assert len([k for k in values if "_bucket" in k]) == len(LATENCY_BUCKETS_S) + 1
    assert values["deliverydash_request_duration_seconds_count"] == 4
    assert values["deliverydash_request_duration_seconds_sum"] == pytest.approx(70.128)


def test_tracking_counters_and_queue_depth_are_shown() -> None:
    stats = TrackingStats(events_accepted=7, events_duplicate=2)
    stats.events_rejected.update({"missing_event": 3})
    stats.requests_rejected.update({"invalid_write_key": 4})
    depth = QueueDepth({"pending": 5, "leased": 1}, {"dest-ok": {"pending": 5, "leased": 1}}, 9)
    values = samples(tracking_stats.render(stats) + Metrics().render(depth))
    assert values["deliverydash_events_accepted_total"] == 7
    assert values["deliverydash_events_duplicate_total"] == 2
    assert values['deliverydash_events_rejected_total{code="missing_event"}'] == 3
    assert values['deliverydash_requests_rejected_total{code="invalid_write_key"}'] == 4
    assert values['deliverydash_queue_jobs{state="pending"}'] == 5
    assert values['deliverydash_queue_jobs{state="leased"}'] == 1
    assert values["deliverydash_outbox_records"] == 9


def test_label_values_stay_in_closed_sets_and_name_no_tenant() -> None:
    metrics = Metrics()
    metrics.record(attempt("acme-workspace", "dest-ok", 10))
    stats = TrackingStats()
    stats.events_rejected.update({"acme-workspace": 1, "missing_event": 1})
    depth = QueueDepth({"pending": 1, "dest-ok": 2}, {"dest-ok": {"pending": 1}}, 0)
    text = tracking_stats.render(stats) + metrics.render(depth)
    values = samples(text)
    assert values['deliverydash_attempts_total{error_class="other",outcome="other"}'] == 1
    assert values['deliverydash_events_rejected_total{code="other"}'] == 1
    assert values['deliverydash_queue_jobs{state="other"}'] == 2
    assert "acme" not in text and "dest-ok" not in text


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("plain", "plain"), ('say "hi"', 'say \\"hi\\"'), ("a\\b", "a\\\\b"), ("two\nlines", "two\\nlines")],
)
def test_label_values_are_escaped(raw: str, escaped: str) -> None:
    assert escape_label_value(raw) == escaped


def test_uptime_counts_from_creation() -> None:
    now = [100.0]
    metrics = Metrics(monotonic=lambda: now[0])
    now[0] = 142.5
    assert metrics.uptime_s() == 42.5
    assert samples(metrics.render(EMPTY))["deliverydash_uptime_seconds"] == 42.5


# -- over the app --------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteQueue]:
    queue = SqliteQueue(tmp_path)
    yield queue
    queue.close()


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine.test")


@pytest.fixture
async def client(queue: SqliteQueue) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(config_for(), queue)) as client:
        yield client


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def send_batch(client: httpx.AsyncClient) -> None:
    body = {
        "batch": [
            {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "m1"},
            {"type": "track", "userId": "u1", "messageId": "m2"},  # no event: rejected alone
        ]
    }
    response = await client.post("/v1/batch", json=body, headers=basic(WRITE_KEY))
    assert response.status_code == 200, response.text


@pytest.mark.anyio
async def test_metrics_endpoint_serves_the_text_format_without_secrets_or_ids(
    client: httpx.AsyncClient,
) -> None:
    await send_batch(client)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    values = samples(response.text)
    assert values["deliverydash_events_accepted_total"] == 1
    assert values['deliverydash_events_rejected_total{code="missing_event"}'] == 1
    assert values['deliverydash_queue_jobs{state="pending"}'] == 2  # one job per destination
    for leak in (WRITE_KEY, ADMIN_TOKEN, "acme-workspace", "web-src", "dest-ok", "dest-auth"):
        assert leak not in response.text


@pytest.mark.anyio
async def test_admin_status_shows_depth_by_destination_to_the_admin(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await send_batch(client)
    response = await client.get("/admin/status", headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 200, response.text
    status = response.json()
    assert status["queue"] == {
        "backend": "sqlite",
        "location": str(tmp_path / "queue.sqlite3"),
        "by_state": {"pending": 2, "leased": 0},
        "by_destination": {"dest-auth": {"pending": 1, "leased": 0}, "dest-ok": {"pending": 1, "leased": 0}},
        "outbox_records": 0,
    }
    assert status["events"] == {"accepted": 1, "duplicate": 0, "rejected": {"missing_event": 1}}
    assert status["uptime_s"] >= 0
    assert ADMIN_TOKEN not in response.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-token"),
        bearer(ADMIN_TOKEN[:-1]),
        bearer(""),
        basic(ADMIN_TOKEN),
        {"Authorization": ADMIN_TOKEN},
        bearer(WRITE_KEY),
    ],
    ids=["missing", "wrong", "near-miss", "empty", "basic-scheme", "no-scheme", "write-key"],
)
async def test_admin_status_refuses_anything_but_the_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/admin/status", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == "unauthorized"
    for secret in (ADMIN_TOKEN, ADMIN_TOKEN[:-1], "wrong-token", WRITE_KEY):
        assert secret not in response.text


@pytest.mark.anyio
async def test_two_authorization_headers_are_refused(client: httpx.AsyncClient) -> None:
    headers = [("Authorization", f"Bearer {ADMIN_TOKEN}"), ("Authorization", "Bearer other")]
    response = await client.get("/admin/status", headers=headers)
    assert response.status_code == 401


class _BrokenQueue:
    def depth(self) -> QueueDepth:
        raise OSError("disk I/O error")


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/metrics", "/admin/status"])
async def test_a_queue_that_cannot_be_counted_is_a_json_503(path: str) -> None:
    app = create_app(config_for(), _BrokenQueue())  # type: ignore[arg-type]
    async with client_for(app) as client:
        response = await client.get(path, headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"


# -- wired to the engine's worker ----------------------------------------------------------------


class _Sink(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SinkHandler)


class _SinkHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200 if self.path == "/ok" else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def sink_url() -> Iterator[str]:
    sink = _Sink()
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sink.server_address[1]}"
    sink.shutdown()
    sink.server_close()


@pytest.mark.anyio
async def test_the_engine_worker_reports_each_settled_attempt(tmp_path: Path, sink_url: str) -> None:
    queue = SqliteQueue(tmp_path)
    app = build_app(config_for(sink_url, tmp_path), queue)
    try:
        async with app.router.lifespan_context(app), client_for(app) as client:
            await send_batch(client)
            expected = {
                'deliverydash_attempts_total{error_class="none",outcome="delivered"}': 1.0,
                'deliverydash_attempts_total{error_class="auth",outcome="failed"}': 1.0,
                "deliverydash_request_duration_seconds_count": 2.0,
            }
            for _ in range(200):
                values = samples((await client.get("/metrics")).text)
                if all(values.get(key) == n for key, n in expected.items()):
                    break
                await asyncio.sleep(0.05)
            assert {key: values.get(key) for key in expected} == expected
            assert values['deliverydash_queue_jobs{state="pending"}'] == 0
    finally:
        queue.close()
    assert (tmp_path / "attempts").is_dir()  # the exporter wrote here, not into the repository's data/


@pytest.mark.anyio
async def test_admin_status_names_a_postgres_queue_without_its_password(postgres_dsn: str) -> None:
    # The test server trusts loopback, so a password in the DSN is sent and ignored.
    with_password = postgres_dsn.replace("@", ":pw_SECRET_status@", 1)
    queue = PostgresQueue(with_password)
    try:
        async with client_for(create_app(config_for(), queue)) as client:
            response = await client.get("/admin/status", headers=bearer(ADMIN_TOKEN))
    finally:
        queue.close()
    assert response.status_code == 200, response.text
    assert response.json()["queue"]["location"] == with_password.replace("pw_SECRET_status", "***")
    assert "SECRET" not in response.text
