"""Signed webhooks end to end: receivers verify every delivery with the `standardwebhooks` package.

The first tests run `deliverydash serve` as a real process (once per HTTP
client, `[engine] http_client`) and send events with the real Segment
client; a receiver on loopback records each request
and answers as its path says. Its destinations cover what a receiver meets:
a rotation in its overlap (both secrets verify) and one past it (only the
new one does), a batch, retries (one `webhook-id` across them), an unsigned
destination (no signature headers at all), and a careless receiver that
quotes the secrets back in its error body (redacted in the attempt log).
No secret shows in the engine's output, `/admin/status`, `/metrics` or any
row of the attempt log, the file the dashboard reads.

The second test crosses a rotation's expiry while the worker runs: its clock
is moved past the expiry between two deliveries, over real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import http.server
import json
import secrets
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from segment.analytics.client import Client
from standardwebhooks import Webhook, WebhookVerificationError

from delivery.config import parse_config
from delivery.queue.sqlite import SqliteQueue
from delivery.transport import CLIENTS
from delivery.transport.redaction import REDACTED
from ingest.files import attempts_glob
from tests.delivery.engine_process import free_port, serving, start_engine, wait_for
from tests.delivery.test_worker import Reply, Sink, always, enqueue, eventually, running

WRITE_KEY = "wk_test_signed"
ADMIN_TOKEN = "admin-token-for-the-signed-webhooks-run"
EVENTS = 3


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def rfc3339(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Delivery:
    """One request the receiver read."""

    path: str
    headers: dict[str, str]
    """Names lower-cased."""
    body: bytes


class Receiver(http.server.ThreadingHTTPServer):
    """Records every request; answers 200, except `/retried` (503 to the first request of each body)
    and `/careless` (400 quoting the secrets it was given)."""

    def __init__(self, careless_quotes: str) -> None:
        self.deliveries: list[Delivery] = []
        self.careless_quotes = careless_quotes
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def to(self, path: str) -> list[Delivery]:
        with self.lock:
            return [delivery for delivery in self.deliveries if delivery.path == path]


class _ReceiverHandler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        delivery = Delivery(self.path, {name.lower(): value for name, value in self.headers.items()}, body)
        with self.server.lock:
            seen_before = any(d.path == self.path and d.body == body for d in self.server.deliveries)
            self.server.deliveries.append(delivery)
        status, answer = 200, b'{"ok":true}'
        if self.path == "/retried" and not seen_before:
            status, answer = 503, b'{"error":"try again"}'
        elif self.path == "/careless":
            status, answer = 400, f"bad signature; {self.server.careless_quotes}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass(frozen=True)
class Secrets:
    """The secrets of the run, by destination."""

    overlap_new: str
    overlap_old: str
    past_new: str
    past_old: str
    batched: str
    retried: str
    careless: str

    def all(self) -> list[str]:
        """Every secret, whole and as its base64 alone."""
        whole = list(vars(self).values())
        return whole + [secret.removeprefix("whsec_") for secret in whole]


@dataclass
class Run:
    receiver: Receiver
    secrets: Secrets
    output: str
    admin_status: str
    metrics: str
    attempts: list[dict[str, Any]]
    log_text: str
    data_dir: Path


def write_config(tmp_path: Path, receiver: Receiver, keys: Secrets, http_client: str) -> Path:
    now = dt.datetime.now(dt.UTC)
    in_a_day, a_day_ago = rfc3339(now + dt.timedelta(days=1)), rfc3339(now - dt.timedelta(days=1))

    def destination(name: str, signing: str = "", extra: str = "") -> str:
        return (
            f'[[destinations]]\nid = "{name}"\nsource = "web"\nintegration = "webhook"\n'
            f'url = "{receiver.url("/" + name)}"\n{signing}{extra}\n'
        )

    config = tmp_path / "deliverydash.toml"
    config.write_text(
        f"""
[engine]
data_dir = "data"
admin_token = "{ADMIN_TOKEN}"
allow_private_targets = true
export_interval_s = 0.2
request_timeout_s = 5
backoff_base_s = 0.2
backoff_max_s = 0.5
backoff_jitter = 0
max_attempts = 3
lease_s = 10
shutdown_grace_s = 2
http_client = "{http_client}"

[[sources]]
id = "web"
workspace = "acme"
write_key = "{WRITE_KEY}"

"""
        + destination(
            "overlap",
            f'signing_secret = "{keys.overlap_new}"\nprevious_signing_secret = "{keys.overlap_old}"\n'
            f"previous_signing_secret_expires_at = {in_a_day}\n",
        )
        + destination(
            "past",
            f'signing_secret = "{keys.past_new}"\nprevious_signing_secret = "{keys.past_old}"\n'
            f'previous_signing_secret_expires_at = "{a_day_ago}"\n',
        )
        + destination("batched", f'signing_secret = "{keys.batched}"\n', "max_batch_events = 10\n")
        + destination("retried", f'signing_secret = "{keys.retried}"\n')
        + destination("careless", f'signing_secret = "{keys.careless}"\n')
        + destination("unsigned", extra='headers = { "X-Tenant" = "acme" }\n'),
        encoding="utf-8",
    )
    return config


def expected_requests(receiver: Receiver) -> bool:
    per_event = {"/overlap": 1, "/past": 1, "/retried": 2, "/careless": 1, "/unsigned": 1}
    batched = sum(len(json.loads(d.body).get("batch", [0])) for d in receiver.to("/batched"))
    return batched == EVENTS and all(len(receiver.to(p)) == n * EVENTS for p, n in per_event.items())


@pytest.fixture(scope="module", params=CLIENTS)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The whole run, once per HTTP client: what is signed is the body each client sends."""
    tmp_path = tmp_path_factory.mktemp(f"signed-{request.param}")
    keys = Secrets(*(whsec() for _ in range(7)))
    careless = keys.careless
    quotes = f"I hold {careless} ({careless.removeprefix('whsec_')})"
    with serving(Receiver(quotes)) as receiver:
        port = free_port()
        engine = start_engine(write_config(tmp_path, receiver, keys, request.param), port)
        try:
            client = Client(WRITE_KEY, host=f"http://127.0.0.1:{port}", sync_mode=True)
            for i in range(EVENTS):
                client.track(user_id=f"user-{i}", event="Order Completed", properties={"order": i})
            wait_for(lambda: expected_requests(receiver))
            bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            glob = attempts_glob(tmp_path / "data")
            wait_for(lambda: logged(glob) == len(receiver.deliveries))  # one record per request
            admin_status = httpx.get(f"http://127.0.0.1:{port}/admin/status", headers=bearer, timeout=5).text
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        finally:
            engine.send_signal(signal.SIGTERM)
            output = engine.communicate(timeout=30)[0]
        assert engine.returncode == 0, output
        with duckdb.connect() as db:
            cursor = db.execute("SELECT * FROM read_parquet($glob)", {"glob": glob})
            names = [column[0] for column in cursor.description]
            attempts = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        yield Run(receiver, keys, output, admin_status, metrics, attempts, repr(attempts), tmp_path / "data")


def logged(glob: str) -> int:
    """Records in the attempt log so far."""
    with duckdb.connect() as db:
        try:
            ((counted,),) = db.execute("SELECT count(*) FROM read_parquet($glob)", {"glob": glob}).fetchall()
        except duckdb.IOException:  # no file yet
            return 0
    return int(counted)


def attempts_of(run: Run, destination: str) -> list[dict[str, Any]]:
    return sorted(
        (a for a in run.attempts if a["destination_id"] == destination), key=lambda a: a["started_at"]
    )


def verify(secret: str, delivery: Delivery) -> Any:
    return Webhook(secret).verify(delivery.body, delivery.headers)


def test_during_the_overlap_the_old_and_the_new_secret_both_verify(run: Run) -> None:
    deliveries = run.receiver.to("/overlap")
    assert len(deliveries) == EVENTS
    for delivery in deliveries:
        assert len(delivery.headers["webhook-signature"].split(" ")) == 2
        assert verify(run.secrets.overlap_new, delivery) == json.loads(delivery.body)
        assert verify(run.secrets.overlap_old, delivery) == json.loads(delivery.body)


def test_after_the_overlap_only_the_new_secret_verifies(run: Run) -> None:
    deliveries = run.receiver.to("/past")
    assert len(deliveries) == EVENTS
    for delivery in deliveries:
        assert len(delivery.headers["webhook-signature"].split(" ")) == 1
        verify(run.secrets.past_new, delivery)
        with pytest.raises(WebhookVerificationError, match="No matching signature"):
            verify(run.secrets.past_old, delivery)


def test_a_batch_is_signed_over_the_exact_body_sent(run: Run) -> None:
    deliveries = run.receiver.to("/batched")
    events: list[dict[str, Any]] = []
    for delivery in deliveries:
        parsed = verify(run.secrets.batched, delivery)
        events += parsed.get("batch", [parsed])
    assert sorted(event["properties"]["order"] for event in events) == list(range(EVENTS))


def test_a_tampered_body_fails_verification(run: Run) -> None:
    delivery = run.receiver.to("/overlap")[0]
    tampered = delivery.body.replace(b"Order Completed", b"Order Cancelled")
    assert tampered != delivery.body
    for secret in (run.secrets.overlap_new, run.secrets.overlap_old):
        with pytest.raises(WebhookVerificationError, match="No matching signature"):
            Webhook(secret).verify(tampered, delivery.headers)


def test_retries_keep_the_webhook_id_and_sign_each_attempt_at_its_own_time(run: Run) -> None:
    by_id: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in run.receiver.to("/retried"):
        verify(run.secrets.retried, delivery)
        by_id[delivery.headers["webhook-id"]].append(delivery)
    assert len(by_id) == EVENTS
    assert all(len(tries) == 2 and tries[0].body == tries[1].body for tries in by_id.values())
    # The webhook-id is the job's id, and each timestamp the second its attempt started.
    records = attempts_of(run, "retried")
    assert {(r["job_id"], r["attempt"], r["status_code"]) for r in records} == {
        (job_id, attempt, status) for job_id in by_id for attempt, status in ((1, 503), (2, 200))
    }
    for record in records:
        tries = by_id[record["job_id"]]
        sent = tries[record["attempt"] - 1].headers["webhook-timestamp"]
        assert int(sent) == int(record["started_at"].timestamp())


def test_every_signed_delivery_is_identified_by_its_job(run: Run) -> None:
    for destination in ("overlap", "past", "batched", "careless"):
        ids = {d.headers["webhook-id"] for d in run.receiver.to(f"/{destination}")}
        assert ids == {r["job_id"] for r in attempts_of(run, destination)}, destination


def test_an_unsigned_destination_sends_no_signature_headers(run: Run) -> None:
    deliveries = run.receiver.to("/unsigned")
    assert len(deliveries) == EVENTS
    for delivery in deliveries:
        assert delivery.headers["x-tenant"] == "acme"
        assert not [name for name in delivery.headers if name.startswith("webhook-")]


def test_a_secret_quoted_back_by_the_receiver_is_redacted_in_the_log(run: Run) -> None:
    records = attempts_of(run, "careless")
    assert [(r["status_code"], r["outcome"]) for r in records] == [(400, "failed")] * EVENTS
    assert {r["response_body"] for r in records} == {f"bad signature; I hold {REDACTED} ({REDACTED})"}


@pytest.mark.parametrize("where", ["output", "admin_status", "metrics", "log_text"])
def test_no_secret_shows_anywhere(run: Run, where: str) -> None:
    text = getattr(run, where)
    assert text
    assert [secret for secret in run.secrets.all() if secret in text] == []


def test_no_secret_is_in_the_log_files(run: Run) -> None:
    files = list(run.data_dir.rglob("*.parquet"))
    assert files
    everything = b"".join(path.read_bytes() for path in files)
    assert [secret for secret in run.secrets.all() if secret.encode() in everything] == []


# -- a rotation's expiry crossed while the worker runs ----------------------------------------------


def test_the_previous_secret_stops_signing_at_its_expiry(tmp_path: Path) -> None:
    new, old = whsec(), whsec()
    expires_at = time.time() + 100
    shift = [0.0]  # moved past the expiry between the two halves; the receiver's library allows 5 min

    async def scenario(queue: SqliteQueue) -> Sink:
        async with Sink(always(Reply())) as sink:
            config = parse_config(
                {
                    "engine": {
                        "data_dir": str(tmp_path),
                        "allow_private_targets": True,
                        "request_timeout_s": 5,
                        "lease_s": 10,
                    },
                    "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_test_web"}],
                    "destinations": [
                        {
                            "id": "hook",
                            "source": "web",
                            "integration": "webhook",
                            "url": sink.url,
                            "signing_secret": new,
                            "previous_signing_secret": old,
                            "previous_signing_secret_expires_at": rfc3339(
                                dt.datetime.fromtimestamp(expires_at, dt.UTC)
                            ),
                        }
                    ],
                }
            )
            async with running(config, queue, clock=lambda: time.time() + shift[0]) as engine:
                enqueue(queue, "hook", 2)
                engine.worker.notify()
                await eventually(lambda: len(sink.requests) == 2)
                shift[0] = 200.0
                enqueue(queue, "hook", 2)
                engine.worker.notify()
                await eventually(lambda: len(sink.requests) == 4)
        return sink

    queue = SqliteQueue(tmp_path)
    try:
        sink = asyncio.run(scenario(queue))
    finally:
        queue.close()
    before, after = sink.requests[:2], sink.requests[2:]
    for request in before:
        assert int(request.headers["webhook-timestamp"]) < expires_at
        for secret in (new, old):
            Webhook(secret).verify(request.body, request.headers)
    for request in after:
        assert int(request.headers["webhook-timestamp"]) >= expires_at
        Webhook(new).verify(request.body, request.headers)
        with pytest.raises(WebhookVerificationError, match="No matching signature"):
            Webhook(old).verify(request.body, request.headers)
