"""The classification table end to end: the real engine process, a real fault server per case.

`test_faults.py` checks the classifier over the real sender; this module
checks what reaches the attempt log when `deliverydash serve` delivers
events sent with `segment-analytics-python` to one destination per fault
of docs/classification.md. The whole run happens once (the module-scoped
`run` fixture); each test reads one property of its result: every record's
classification, the retry schedule each verdict implies, one record per
request the server saw, one final record per job, no credential in the log.

The expected verdicts of status lines come from `test_faults.py`'s own
tables (`STATUS_FAULTS`, `ODD_STATUS_LINES`), so the two cannot drift; the
other cases repeat the verdicts its single-case tests assert.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import secrets
import signal
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import trustme
from segment.analytics.client import Client

from delivery.transport.redaction import REDACTED
from ingest.taxonomy import Classification, ErrorClass

from .engine_process import free_port, start_engine, wait_for
from .faults import (
    LOOPBACK,
    Exchange,
    FaultServer,
    Handler,
    HandshakeCounter,
    answer_at_once,
    close_without_answer,
    closed_port,
    http_response,
    never_answer,
    reset_mid_response,
    respond,
    running_in_thread,
    self_signed_context,
    server_context,
)
from .test_faults import ODD_STATUS_LINES, STATUS_FAULTS

WRITE_KEY = "wk_test_faults"
ADMIN_TOKEN = "admin-token-for-the-fault-run-0123456789"
SECRET = f"s3cret-{secrets.token_hex(12)}"
URL_SECRET = f"k_{secrets.token_hex(8)}"  # an api_key in one destination's URL, which redaction must hide
MAX_ATTEMPTS = 3
RETRY_AFTER_S = 1
EVENTS = [
    ("track", {"user_id": "user-1", "event": "Order Completed", "properties": {"order": 1}}),
    ("identify", {"user_id": "user-2", "traits": {"plan": "pro"}}),
]

NONE, VALIDATION, RATE_LIMIT = ErrorClass.NONE, ErrorClass.VALIDATION, ErrorClass.RATE_LIMIT
TIMEOUT, NETWORK, TLS = ErrorClass.TIMEOUT, ErrorClass.NETWORK, ErrorClass.TLS
NONSTANDARD, REDIRECT = ErrorClass.NONSTANDARD, ErrorClass.REDIRECT


# -- the targets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where one destination points, and how its side counts the requests it was sent."""

    server: FaultServer | None = None
    fixed_url: str | None = None
    """The URL when no server listens (a closed port, a name that does not resolve)."""
    path: str = "/hook"
    https_to_plain: bool = False
    """Point an https:// URL at this plain-HTTP server."""
    handshakes: HandshakeCounter | None = None
    """For a TLS server whose handshakes fail: each request is one ClientHello."""
    by_connection: bool = False
    """For a handler that answers without reading a request: each request is one connection."""
    untouched: FaultServer | None = None
    """A server that must see no request at all (where a redirect points)."""

    def url(self) -> str:
        if self.server is None:
            assert self.fixed_url is not None
            return self.fixed_url
        url = self.server.url(self.path)
        return url.replace("http://", "https://") if self.https_to_plain else url

    def requests_seen(self) -> int | None:
        """Requests the target saw; None where nothing can count them (no server listens)."""
        if self.handshakes is not None:
            return self.handshakes.count
        if self.server is None:
            return None
        return self.server.connections if self.by_connection else self.server.requests


@dataclass
class Setup:
    """What building the targets needs: the CA the engine trusts, a folder, and the servers to run."""

    ca: trustme.CA
    folder: Path
    stack: contextlib.ExitStack
    servers: list[FaultServer]

    def server(self, handler: Handler, tls: ssl.SSLContext | None = None) -> FaultServer:
        server = FaultServer(handler, tls=tls)
        self.servers.append(server)
        return server

    def serve(self, handler: Handler, **options: Any) -> Target:
        return Target(server=self.server(handler), **options)

    def serve_tls(self, tls: ssl.SSLContext, handler: Handler = never_answer) -> Target:
        return Target(server=self.server(handler, tls))

    def serve_failing_tls(self, tls: ssl.SSLContext) -> Target:
        counter = HandshakeCounter(tls)
        return Target(server=self.server(never_answer, tls), handshakes=counter)


@dataclass(frozen=True)
class Fault:
    """One destination of the run: its target and what the contract says every request to it records."""

    id: str
    target: Callable[[Setup], Target]
    verdict: Classification
    status: int | None
    """`status_code` of every record; None where there is no response."""


def answering(raw: bytes) -> Callable[[Setup], Target]:
    return lambda setup: setup.serve(respond(raw))


async def bad_request_quoting_the_credential(exchange: Exchange) -> None:
    """400 with a JSON body that quotes the Authorization header back, as careless partners do."""
    request = await exchange.read_request()
    auth = next(line for line in request.decode().split("\r\n") if line.lower().startswith("authorization:"))
    body = json.dumps({"code": "invalid_payload", "message": f"bad event; you sent {auth}"}).encode()
    await exchange.send(http_response(400, "Bad Request", body, Content_Type="application/json"))
    await exchange.close()


def redirecting(status: int) -> Callable[[Setup], Target]:
    def target(setup: Setup) -> Target:
        moved_to = setup.server(respond(http_response(200, "OK")))

        async def handler(exchange: Exchange) -> None:
            await exchange.read_request()
            moved = http_response(status, "Moved", b"moved", Location=moved_to.url("/moved"))
            await exchange.send(moved)
            await exchange.close()

        return setup.serve(handler, untouched=moved_to)

    return target


def refused(setup: Setup) -> Target:
    port = setup.stack.enter_context(closed_port())
    return Target(fixed_url=f"http://{LOOPBACK}:{port}/hook")


def days(n: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=n)


def _status_faults() -> list[Fault]:
    faults = [
        Fault(
            f"status-{status}",
            answering(http_response(status, reason, b'{"error": "as told"}')),
            Classification(error_class, str(status), retryable),
            status,
        )
        for status, reason, error_class, retryable in STATUS_FAULTS
    ]
    faults += [
        Fault(
            f"odd-status-{i}-{status}",
            answering(raw),
            Classification(NONSTANDARD, str(status), False),
            status,
        )
        for i, (status, raw) in enumerate(ODD_STATUS_LINES)
    ]
    faults += [
        Fault(f"redirect-{status}", redirecting(status), Classification(REDIRECT, str(status), False), status)
        for status in (301, 302, 307, 308)
    ]
    return faults


FAULTS = [
    *_status_faults(),
    Fault(
        "status-400-json",
        lambda setup: setup.serve(bad_request_quoting_the_credential),
        Classification(VALIDATION, "400", False),
        400,
    ),
    Fault(
        "status-429-retry-after",
        answering(http_response(429, "Too Many Requests", b"slow down", Retry_After=str(RETRY_AFTER_S))),
        Classification(RATE_LIMIT, "429", True),
        429,
    ),
    Fault(
        "not-http",
        lambda setup: setup.serve(respond(b"SSH-2.0-OpenSSH_9.6\r\n"), path=f"/hook?api_key={URL_SECRET}"),
        Classification(NONSTANDARD, "EBADRESPONSE", False),
        None,
    ),
    Fault("refused", refused, Classification(NETWORK, "ECONNREFUSED", True), None),
    Fault(
        "reset-mid-response",
        lambda setup: setup.serve(reset_mid_response),
        Classification(NETWORK, "ECONNRESET", True),
        None,
    ),
    Fault(
        "close-without-answer",
        lambda setup: setup.serve(close_without_answer),
        Classification(NETWORK, "ESERVERDISCONNECT", True),
        None,
    ),
    Fault(
        "read-timeout",
        lambda setup: setup.serve(never_answer),
        Classification(TIMEOUT, "ETIMEDOUT", True),
        None,
    ),
    Fault(
        "unresolvable",
        lambda setup: Target(fixed_url="http://deliverydash-faults.invalid/hook"),
        Classification(NETWORK, "ENOTFOUND", True),
        None,
    ),
    Fault(
        "tls-trusted",
        lambda setup: setup.serve_tls(
            server_context(setup.ca.issue_cert(LOOPBACK)), respond(http_response(200, "OK"))
        ),
        Classification(NONE, "200", False),
        200,
    ),
    Fault(
        "tls-expired",
        lambda setup: setup.serve_failing_tls(
            server_context(setup.ca.issue_cert(LOOPBACK, not_before=days(-10), not_after=days(-1)))
        ),
        Classification(TLS, "CERT_HAS_EXPIRED", False),
        None,
    ),
    Fault(
        "tls-not-yet-valid",
        lambda setup: setup.serve_failing_tls(
            server_context(setup.ca.issue_cert(LOOPBACK, not_before=days(1), not_after=days(10)))
        ),
        Classification(TLS, "CERT_NOT_YET_VALID", False),
        None,
    ),
    Fault(
        "tls-self-signed",
        lambda setup: setup.serve_failing_tls(self_signed_context(setup.folder)),
        Classification(TLS, "DEPTH_ZERO_SELF_SIGNED_CERT", False),
        None,
    ),
    Fault(
        "tls-unknown-authority",
        lambda setup: setup.serve_failing_tls(server_context(trustme.CA().issue_cert(LOOPBACK))),
        Classification(TLS, "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", False),
        None,
    ),
    Fault(
        "tls-another-name",
        lambda setup: setup.serve_failing_tls(server_context(setup.ca.issue_cert("hooks.example.com"))),
        Classification(TLS, "ERR_TLS_CERT_ALTNAME_INVALID", False),
        None,
    ),
    Fault(
        "tls-to-plain-http",
        lambda setup: setup.serve(answer_at_once, https_to_plain=True, by_connection=True),
        Classification(TLS, "EPROTO", False),
        None,
    ),
]


# -- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One engine run over every fault, and what it left behind."""

    targets: dict[str, Target]
    message_ids: list[str]
    records: list[dict[str, Any]]
    """Every attempt record, by destination, job and attempt; timestamps as epoch microseconds."""
    data_dir: Path
    returncode: int
    output: str

    def of(self, destination: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["destination_id"] == destination]


def write_config(folder: Path, targets: dict[str, Target]) -> Path:
    engine = f"""
[engine]
data_dir = "data"
ca_bundle = "ca.pem"
admin_token = "{ADMIN_TOKEN}"
allow_private_targets = true
request_timeout_s = 1
backoff_base_s = 0.05
backoff_max_s = 0.2
max_attempts = {MAX_ATTEMPTS}
retry_window_s = 30
export_interval_s = 0.2
shutdown_grace_s = 2

[[sources]]
id = "web"
workspace = "acme"
write_key = "{WRITE_KEY}"
"""
    destinations = [
        f"""
[[destinations]]
id = "{destination}"
source = "web"
integration = "webhook"
url = {json.dumps(target.url())}
headers = {{ Authorization = "Bearer {SECRET}" }}
"""
        for destination, target in targets.items()
    ]
    config = folder / "deliverydash.toml"
    config.write_text(engine + "".join(destinations), encoding="utf-8")
    return config


def send_events(port: int) -> list[str]:
    """EVENTS through the real Segment client, one /v1/batch call each; their messageIds."""
    errors: list[Exception] = []
    client = Client(
        WRITE_KEY,
        host=f"http://{LOOPBACK}:{port}",
        sync_mode=True,
        max_retries=0,
        on_error=lambda error, batch: errors.append(error),
    )
    message_ids = []
    for i, (call, fields) in enumerate(EVENTS):
        message_id = f"fault-run-{i}-{secrets.token_hex(4)}"
        getattr(client, call)(message_id=message_id, **fields)
        message_ids.append(message_id)
    assert errors == []
    return message_ids


def unfinished_jobs(port: int) -> int:
    answer = httpx.get(
        f"http://{LOOPBACK}:{port}/admin/status",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=5,
    )
    answer.raise_for_status()
    return sum(answer.json()["queue"]["by_state"].values())


def read_records(data_dir: Path) -> list[dict[str, Any]]:
    cursor = duckdb.connect().execute(
        """
        SELECT * EXCLUDE (received_at, started_at, next_attempt_at),
            epoch_us(received_at) AS received_at,
            epoch_us(started_at) AS started_at,
            epoch_us(next_attempt_at) AS next_attempt_at
        FROM read_parquet($glob)
        ORDER BY destination_id, job_id, attempt
        """,
        {"glob": str(data_dir / "attempts" / "date=*" / "hour=*" / "*.parquet")},
    )
    columns = [column[0] for column in cursor.description or ()]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("fault-run")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    with contextlib.ExitStack() as stack:
        setup = Setup(ca, folder, stack, servers=[])
        targets = {fault.id: fault.target(setup) for fault in FAULTS}
        stack.enter_context(running_in_thread(setup.servers))
        port = free_port()
        engine = start_engine(write_config(folder, targets), port)
        try:
            message_ids = send_events(port)
            wait_for(lambda: unfinished_jobs(port) == 0, timeout_s=45)
        finally:
            engine.send_signal(signal.SIGTERM)
            output = engine.communicate(timeout=60)[0]
    data_dir = folder / "data"
    return Run(targets, message_ids, read_records(data_dir), data_dir, engine.returncode, output)


def test_the_engine_stops_cleanly(run: Run) -> None:
    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output, run.output


def test_every_event_reached_every_destination(run: Run) -> None:
    assert {r["destination_id"] for r in run.records} == {fault.id for fault in FAULTS}
    for fault in FAULTS:
        firsts = [r for r in run.of(fault.id) if r["attempt"] == 1]
        assert sorted(r["events"][0]["message_id"] for r in firsts) == sorted(run.message_ids), fault.id
        assert all(r["event_count"] == 1 and len(r["events"]) == 1 for r in run.of(fault.id)), fault.id


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.id for fault in FAULTS])
def test_every_record_has_the_contracts_classification(run: Run, fault: Fault) -> None:
    records = run.of(fault.id)
    assert records
    seen = Counter((r["status_code"], r["error_class"], r["error_code"], r["retryable"]) for r in records)
    verdict = fault.verdict
    assert seen == {(fault.status, verdict.error_class, verdict.error_code, verdict.retryable): len(records)}
    for record in records:
        if fault.status is None:
            assert record["response_body"] is None and record["error_message"], record
        else:
            assert record["error_message"] is None, record
            assert (record["response_body"] is None) == (200 <= fault.status < 300), record


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.id for fault in FAULTS])
def test_the_verdict_decides_the_retries(run: Run, fault: Fault) -> None:
    verdict = fault.verdict
    if verdict.error_class is NONE:
        expected = ["delivered"]
    elif verdict.retryable:
        expected = ["retry"] * (MAX_ATTEMPTS - 1) + ["dropped"]
    else:
        expected = ["failed"]
    jobs: dict[str, list[dict[str, Any]]] = {}
    for record in run.of(fault.id):
        jobs.setdefault(record["job_id"], []).append(record)
    assert len(jobs) == len(EVENTS)
    for records in jobs.values():
        assert [r["attempt"] for r in records] == list(range(1, len(expected) + 1))
        assert [r["outcome"] for r in records] == expected
        for record, following in itertools.pairwise(records):
            assert record["next_attempt_at"] is not None, record
            assert following["started_at"] >= record["next_attempt_at"]
            if fault.status == 429:
                assert record["retry_after_s"] == RETRY_AFTER_S
                assert record["next_attempt_at"] - record["started_at"] >= RETRY_AFTER_S * 1_000_000
        assert records[-1]["next_attempt_at"] is None


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.id for fault in FAULTS])
def test_one_record_per_request_the_server_saw(run: Run, fault: Fault) -> None:
    target = run.targets[fault.id]
    requests = [r for r in run.of(fault.id) if r["attempt"] >= 1]
    seen = target.requests_seen()
    if seen is not None:
        assert seen == len(requests)
    if target.server is not None and target.server.received:
        # Each request the server read is one record's: the same events, and the configured header.
        sent = Counter(
            json.loads(raw.partition(b"\r\n\r\n")[2])["messageId"] for raw in target.server.received
        )
        assert sent == Counter(r["events"][0]["message_id"] for r in requests)
        assert all(f"Bearer {SECRET}".encode() in raw for raw in target.server.received)
    if target.untouched is not None:
        assert (target.untouched.connections, target.untouched.requests) == (0, 0)


def test_every_job_has_exactly_one_final_record(run: Run) -> None:
    finals = Counter(r["job_id"] for r in run.records if r["outcome"] != "retry")
    jobs = {r["job_id"] for r in run.records}
    assert len(jobs) == len(FAULTS) * len(EVENTS)
    assert finals == dict.fromkeys(jobs, 1)
    assert all(r["outcome"] == "retry" or r["next_attempt_at"] is None for r in run.records)


def test_no_credential_reaches_the_log(run: Run) -> None:
    files = sorted(run.data_dir.rglob("*.parquet"))
    assert any("rollups" in path.parts for path in files)
    for path in files:
        rows = duckdb.connect().execute("SELECT * FROM read_parquet($path)", {"path": str(path)}).fetchall()
        text = repr(rows)  # every column, the events' structs included
        assert SECRET not in text, path
        assert URL_SECRET not in text, path
    # Where a partner quoted the credential back, the kept body shows it redacted.
    (body,) = {r["response_body"] for r in run.of("status-400-json")}
    assert json.loads(body)["message"] == f"bad event; you sent Authorization: {REDACTED}"
    assert SECRET not in run.output and URL_SECRET not in run.output
