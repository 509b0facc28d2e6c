"""The tracking API over real sockets: uvicorn on loopback, a SQLite queue, the real Segment client."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from segment.analytics.client import Client
from segment.analytics.request import APIError

from delivery.api.http_protocol import JsonErrorHTTPProtocol
from delivery.api.main import create_app
from delivery.api.segment import MAX_BATCH_EVENTS, MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES
from delivery.config import Config, parse_config
from delivery.queue import Event, Job
from delivery.queue.sqlite import SqliteQueue

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # the server's clock in these tests
WEB, IOS, QUIET = "wk_live_acme_web", "wk_live_acme_ios", "wk_live_globex_quiet"
CONFIG = parse_config(
    {
        "sources": [
            {"id": "web", "workspace": "acme", "write_key": WEB},
            {"id": "ios", "workspace": "acme", "write_key": IOS},
            {"id": "quiet", "workspace": "globex", "write_key": QUIET},
        ],
        "destinations": [
            {"id": "hook-a", "source": "web", "integration": "webhook", "url": "https://a.example.com/in"},
            {
                "id": "hook-b",
                "source": "web",
                "integration": "crm-records",
                "url": "https://b.example.com/in",
                "credential": "crm-token",
            },
            {"id": "hook-c", "source": "ios", "integration": "webhook", "url": "https://c.example.com/in"},
            {
                "id": "hook-off",
                "source": "ios",
                "integration": "webhook",
                "url": "https://off.example.com/in",
                "enabled": False,
            },
        ],
    }
)
FANOUT = {"web": {"hook-a", "hook-b"}, "ios": {"hook-c", "hook-off"}, "quiet": set()}


class Switch:
    """An ASGI app that forwards to `app`: one uvicorn per module, a fresh engine app per test."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "no app switched in"
        await self.app(scope, receive, send)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run `app` under uvicorn on an ephemeral loopback port, in a thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=JsonErrorHTTPProtocol, ws="none", lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn")
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Switch]]:
    switch = Switch()
    with serving(switch) as url:
        yield url, switch


@dataclass
class Engine:
    """A running app and what it wrote."""

    url: str
    queue: SqliteQueue
    app: FastAPI

    def jobs(self) -> list[Job]:
        """Every job in the queue (claimed with a zero lease, so they can be read again)."""
        return self.queue.claim(
            "test", NOW.timestamp() + 1, limit=1_000_000, per_destination_limit=1_000_000, lease_s=0
        )

    def events(self) -> dict[str, set[str]]:
        """messageId -> destinations it has a job for."""
        by_message: dict[str, set[str]] = {}
        for job in self.jobs():
            [event] = job.events
            by_message.setdefault(event.message_id, set()).add(job.destination_id)
        return by_message

    def payloads(self) -> dict[str, dict[str, Any]]:
        """messageId -> the stored message."""
        return {event.message_id: json.loads(event.payload) for event in self.stored()}

    def stored(self) -> list[Event]:
        return [job.events[0] for job in self.jobs()]

    @property
    def stats(self) -> Any:
        return self.app.state.context.stats


def make_app(queue: Any, config: Config = CONFIG) -> FastAPI:
    return create_app(config, queue, clock=lambda: NOW)


@pytest.fixture
def engine(server: tuple[str, Switch], tmp_path: Path) -> Iterator[Engine]:
    url, switch = server
    queue = SqliteQueue(tmp_path)
    switch.app = make_app(queue)
    yield Engine(url, queue, switch.app)
    switch.app = None
    queue.close()


@pytest.fixture
def http(engine: Engine) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=engine.url, timeout=10) as client:
        yield client


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def post(
    http: httpx.Client,
    path: str,
    body: Any,
    headers: Mapping[str, str] | None = None,
    *,
    gzipped: bool = False,
) -> httpx.Response:
    """POST `body` (JSON-encoded unless bytes), with no Content-Type unless given."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = dict(headers or {})
    if gzipped:
        content = gzip.compress(content)
        headers["Content-Encoding"] = "gzip"
    return http.post(path, content=content, headers=headers)


def assert_success(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    assert response.headers["content-type"] == "application/json"


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]


# -- (a) the real client -------------------------------------------------------------------------


def test_segment_client_calls_arrive_with_one_job_per_destination(engine: Engine) -> None:
    client = Client(WEB, host=engine.url, sync_mode=True)  # each call one POST /v1/batch; errors raise
    sent = [
        client.identify("u1", {"email": "ada@example.com"}, anonymous_id="anon-1")[1],
        client.track("u1", "Order Completed", {"revenue": 9.5, "currency": "EUR"})[1],
        client.page("u1", "Docs", "Getting started", {"path": "/docs"})[1],
        client.screen("u1", "Onboarding", "Welcome", {"step": 1})[1],
        client.group("u1", "g-17", {"plan": "enterprise"})[1],
        client.alias("anon-1", "u1")[1],
    ]
    assert engine.events() == {msg["messageId"]: FANOUT["web"] for msg in sent}

    payloads = engine.payloads()
    for msg in sent:
        stored = payloads[msg["messageId"]]
        for key in ("type", "userId", "traits", "properties", "event", "name", "category", "groupId"):
            assert stored.get(key) == msg.get(key), key
        assert stored["context"]["library"]["name"] == "analytics-python"
        assert stored["originalTimestamp"] == msg["timestamp"]
        assert stored["receivedAt"] == "2026-11-27T12:00:00.000Z"
        assert stored["sentAt"]
        assert "writeKey" not in stored
    assert payloads[sent[5]["messageId"]]["previousId"] == "anon-1"

    by_type = {event.type: event for event in engine.stored()}
    assert set(by_type) == {"identify", "track", "page", "screen", "group", "alias"}
    assert by_type["track"].name == "Order Completed"
    assert {event.workspace_id for event in by_type.values()} == {"acme"}
    assert engine.stats.events_accepted == 6


def test_segment_client_batch_and_gzip(engine: Engine) -> None:
    errors: list[Exception] = []
    batching = Client(
        IOS,
        host=engine.url,
        upload_size=100,
        upload_interval=0.2,
        max_retries=0,  # an error fails the test at once instead of backing off
        on_error=lambda e, _: errors.append(e),
    )
    sent = [batching.track(f"user-{n}", "Signed Up", {"n": n})[1] for n in range(25)]
    batching.flush()
    batching.join()
    zipped = Client(WEB, host=engine.url, sync_mode=True, gzip=True)
    sent_zipped = zipped.track("u1", "Zipped", {"big": "x" * 20_000})[1]
    assert errors == []
    expected = {msg["messageId"]: FANOUT["ios"] for msg in sent}
    expected[sent_zipped["messageId"]] = FANOUT["web"]
    assert engine.events() == expected
    assert engine.payloads()[sent_zipped["messageId"]]["properties"]["big"] == "x" * 20_000


def test_segment_client_reads_our_errors(engine: Engine) -> None:
    client = Client("wk_not_configured", host=engine.url, sync_mode=True)
    with pytest.raises(APIError) as caught:
        client.track("u1", "Order Completed")
    # The client parsed {"code", "message"}: an answer it cannot read comes out as code "unknown".
    assert (caught.value.status, caught.value.code) == (401, "invalid_write_key")
    assert caught.value.message == "unknown write key"
    assert engine.jobs() == []


# -- (b) raw requests ----------------------------------------------------------------------------

CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/identify", {"userId": "u1", "traits": {"name": "Ada"}}, "identify"),
    ("/v1/track", {"userId": "u1", "event": "Order Completed", "properties": {"revenue": 1}}, "track"),
    ("/v1/page", {"anonymousId": "anon-1", "name": "Home"}, "page"),
    ("/v1/screen", {"userId": "u1", "name": "Home"}, "screen"),
    ("/v1/group", {"userId": "u1", "groupId": "g1"}, "group"),
    ("/v1/alias", {"userId": "u1", "previousId": "anon-1"}, "alias"),
    ("/v1/batch", {"batch": [{"type": "track", "userId": "u1", "event": "E"}]}, "track"),
    ("/v1/import", {"batch": [{"type": "identify", "userId": "u1"}]}, "identify"),
]


@pytest.mark.parametrize(("path", "body", "call_type"), CALLS)
@pytest.mark.parametrize("auth", ["basic", "body", "both", "bearer+body"])
def test_every_endpoint_and_write_key_form(
    engine: Engine, http: httpx.Client, path: str, body: dict[str, Any], call_type: str, auth: str
) -> None:
    headers = basic(WEB) if auth in ("basic", "both") else {}
    if auth == "bearer+body":
        headers = {"Authorization": "Bearer an.oauth.token"}
    if auth != "basic":
        body = {**body, "writeKey": WEB}
    assert_success(post(http, path, body, headers))
    [destinations] = engine.events().values()
    assert destinations == FANOUT["web"]
    events = engine.stored()
    assert len(events) == 2  # one event, a job for each destination
    assert {(event.type, event.source_id, event.workspace_id) for event in events} == {
        (call_type, "web", "acme")
    }


@pytest.mark.parametrize(("path", "body", "call_type"), [CALLS[1], CALLS[6]])
def test_gzip_bodies(
    engine: Engine, http: httpx.Client, path: str, body: dict[str, Any], call_type: str
) -> None:
    assert_success(post(http, path, body, basic(WEB), gzipped=True))
    assert [event.type for event in engine.stored()] == [call_type, call_type]


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "text/plain", "application/x-www-form-urlencoded"]
)
def test_any_content_type(engine: Engine, http: httpx.Client, content_type: str | None) -> None:
    headers = basic(WEB) | ({"Content-Type": content_type} if content_type else {})
    assert_success(post(http, "/v1/track", {"userId": "u1", "event": "E"}, headers))
    assert len(engine.events()) == 1


def test_chunked_body(engine: Engine, http: httpx.Client) -> None:
    chunks = iter([b'{"userId": "u1", ', b'"event": "Chunked"}'])
    response = http.post("/v1/track", content=chunks, headers=basic(WEB))
    assert_success(response)
    assert [e.name for e in engine.stored()] == ["Chunked", "Chunked"]


def test_a_message_id_sent_twice_is_stored_once(engine: Engine, http: httpx.Client) -> None:
    body = {"userId": "u1", "event": "Order Completed", "messageId": "m-dup"}
    assert_success(post(http, "/v1/track", body, basic(WEB)))
    assert_success(post(http, "/v1/track", body, basic(WEB)))  # a client retry: acknowledged
    assert_success(post(http, "/v1/batch", {"batch": [{**body, "type": "track"}] * 3}, basic(WEB)))
    assert engine.events() == {"m-dup": FANOUT["web"]}
    assert len(engine.jobs()) == 2
    assert (engine.stats.events_accepted, engine.stats.events_duplicate) == (1, 4)
    # De-duplication is per source: the same id from another source is another event.
    assert_success(post(http, "/v1/track", body, basic(IOS)))
    assert len(engine.jobs()) == 4


def test_a_source_without_destinations_accepts_and_stores_nothing(engine: Engine, http: httpx.Client) -> None:
    assert_success(post(http, "/v1/track", {"userId": "u1", "event": "E", "messageId": "m1"}, basic(QUIET)))
    assert engine.jobs() == []
    assert engine.stats.events_accepted == 1


def test_clock_skew_is_corrected_with_the_servers_clock(engine: Engine, http: httpx.Client) -> None:
    # The device's clock is two hours slow; the event happened 3 s before it was sent.
    body = {
        "batch": [{"type": "track", "userId": "u1", "event": "E", "timestamp": "2026-11-27T09:59:57.000Z"}],
        "sentAt": "2026-11-27T10:00:00.000Z",
    }
    assert_success(post(http, "/v1/batch", body, basic(WEB)))
    [stored] = engine.payloads().values()
    assert stored["timestamp"] == "2026-11-27T11:59:57.000Z"
    assert stored["originalTimestamp"] == "2026-11-27T09:59:57.000Z"
    assert stored["receivedAt"] == "2026-11-27T12:00:00.000Z"


def test_a_missing_message_id_gets_one(engine: Engine, http: httpx.Client) -> None:
    assert_success(post(http, "/v1/track", {"userId": "u1", "event": "E"}, basic(WEB)))
    assert_success(post(http, "/v1/track", {"userId": "u1", "event": "E"}, basic(WEB)))
    ids = set(engine.events())
    assert len(ids) == 2 and all(message_id.startswith("api-") for message_id in ids)


def gzip_bomb() -> bytes:
    return gzip.compress(b" " * 50_000_000)


BAD_REQUESTS: list[tuple[str, str, Any, dict[str, str], int, str]] = [
    # (name, path, body, headers, status, code)
    ("invalid JSON", "/v1/track", b'{"userId": "u1",', basic(WEB), 400, "invalid_json"),
    ("not UTF-8", "/v1/track", b'{"userId": "\xff"}', basic(WEB), 400, "invalid_json"),
    ("NaN", "/v1/track", b'{"userId": "u1", "event": "E", "v": NaN}', basic(WEB), 400, "invalid_json"),
    ("nested too deep", "/v1/track", b"[" * 200_000 + b"]" * 200_000, basic(WEB), 400, "invalid_json"),
    ("empty body", "/v1/track", b"", basic(WEB), 400, "invalid_json"),
    ("a JSON array", "/v1/track", b"[]", basic(WEB), 400, "invalid_body"),
    ("corrupt gzip", "/v1/track", b"\x1f\x8b\x08\x00garbage", basic(WEB) | {"Content-Encoding": "gzip"},
     400, "invalid_gzip"),
    ("gzip bomb", "/v1/batch", gzip_bomb(), basic(WEB) | {"Content-Encoding": "gzip"},
     413, "request_too_large"),
    ("oversized body", "/v1/batch", b" " * (MAX_REQUEST_BYTES + 1), basic(WEB), 413, "request_too_large"),
    ("very oversized body", "/v1/batch", b" " * 5_000_000, basic(WEB), 413, "request_too_large"),
    ("brotli", "/v1/track", b"{}", basic(WEB) | {"Content-Encoding": "br"}, 415, "unsupported_encoding"),
    ("no userId or anonymousId", "/v1/identify", {"traits": {}}, basic(WEB), 400, "missing_user_id"),
    ("null ids", "/v1/page", {"userId": None, "anonymousId": None}, basic(WEB), 400, "missing_user_id"),
    ("track without event", "/v1/track", {"userId": "u1"}, basic(WEB), 400, "missing_event"),
    ("group without groupId", "/v1/group", {"userId": "u1"}, basic(WEB), 400, "missing_group_id"),
    ("alias without previousId", "/v1/alias", {"userId": "u1"}, basic(WEB), 400, "missing_previous_id"),
    ("alias without userId", "/v1/alias", {"previousId": "a"}, basic(WEB), 400, "missing_user_id"),
    ("long messageId", "/v1/track", {"userId": "u", "event": "E", "messageId": "m" * 100}, basic(WEB),
     400, "invalid_message_id"),
    ("messageId with a lone surrogate", "/v1/track", b'{"userId": "u", "event": "E", "messageId": "\\ud800"}',
     basic(WEB), 400, "invalid_message_id"),
    ("event with a lone surrogate", "/v1/track", b'{"userId": "u", "event": "E \\udfff"}', basic(WEB),
     400, "invalid_field"),
    ("bad timestamp", "/v1/track", {"userId": "u", "event": "E", "timestamp": "noon"}, basic(WEB),
     400, "invalid_timestamp"),
    ("properties not an object", "/v1/track", {"userId": "u", "event": "E", "properties": [1]}, basic(WEB),
     400, "invalid_field"),
    ("message over 32 KiB", "/v1/track", {"userId": "u", "event": "E", "p": "x" * MAX_MESSAGE_BYTES},
     basic(WEB), 413, "message_too_large"),
    ("batch not an array", "/v1/batch", {"batch": {"type": "track"}}, basic(WEB), 400, "invalid_body"),
    ("bad batch sentAt", "/v1/batch", {"batch": [], "sentAt": "now"}, basic(WEB), 400, "invalid_timestamp"),
    ("too many events", "/v1/batch", {"batch": [{"type": "track"}] * (MAX_BATCH_EVENTS + 1)}, basic(WEB),
     413, "too_many_events"),
    ("batch context too deep", "/v1/batch",
     b'{"batch": [{"type": "track", "userId": "u", "event": "E"}], "context": '
     + b'{"a": ' * 1_000 + b"1" + b"}" * 1_000 + b"}", basic(WEB), 400, "invalid_body"),
    ("batch context over 32 KiB", "/v1/batch",
     {"batch": [{"type": "track", "userId": "u", "event": "E"}], "context": {"p": "x" * MAX_MESSAGE_BYTES}},
     basic(WEB), 413, "message_too_large"),
    ("unknown write key", "/v1/track", {"userId": "u", "event": "E"}, basic("wk_nope"),
     401, "invalid_write_key"),
    ("unknown body writeKey", "/v1/track", {"userId": "u", "event": "E", "writeKey": "wk_nope"}, {},
     401, "invalid_write_key"),
    ("no write key", "/v1/track", {"userId": "u", "event": "E"}, {}, 401, "missing_write_key"),
    ("Bearer without writeKey", "/v1/track", {"userId": "u", "event": "E"}, {"Authorization": "Bearer t"},
     401, "missing_write_key"),
    ("two different keys", "/v1/track", {"userId": "u", "event": "E", "writeKey": IOS}, basic(WEB),
     401, "write_key_mismatch"),
    ("Basic not base64", "/v1/track", {"userId": "u", "event": "E"}, {"Authorization": "Basic %%%"},
     401, "invalid_authorization"),
    ("writeKey not a string", "/v1/track", {"userId": "u", "event": "E", "writeKey": 7}, {},
     400, "invalid_body"),
    ("unknown endpoint", "/v1/purchase", {"userId": "u"}, basic(WEB), 404, "not_found"),
    ("unknown prefix", "/v2/track", {"userId": "u"}, basic(WEB), 404, "not_found"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_gets_a_json_error_and_loses_nothing(
    engine: Engine,
    http: httpx.Client,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    accepted = {"userId": "u0", "event": "Accepted First", "messageId": "m-first"}
    assert_success(post(http, "/v1/track", accepted, basic(WEB)))
    assert_error(post(http, path, body, headers), status, code)
    assert engine.events() == {"m-first": FANOUT["web"]}
    # Routing errors (404) are not the tracking API's rejections.
    assert engine.stats.requests_rejected == (Counter() if status == 404 else Counter({code: 1}))
    # The server is still up and accepting.
    assert_success(post(http, "/v1/track", {**accepted, "messageId": "m-after"}, basic(WEB)))


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/v1/track", "/v1/t"])
def test_wrong_method(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "OPTIONS, POST"  # OPTIONS: browsers' CORS preflights


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("POST", "/healthz", "GET"), ("POST", "/openapi.json", "GET, HEAD"), ("DELETE", "/admin/status", "GET")],
)
def test_a_405_names_the_methods_of_the_path(http: httpx.Client, method: str, path: str, allow: str) -> None:
    response = http.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow


def test_repeated_authorization_headers(engine: Engine, http: httpx.Client) -> None:
    headers = [("Authorization", basic(WEB)["Authorization"]), ("Authorization", basic(IOS)["Authorization"])]
    response = http.post("/v1/track", content=b'{"userId": "u", "event": "E"}', headers=headers)
    assert_error(response, 400, "invalid_header")
    assert engine.jobs() == []


def test_an_absurd_authorization_header(engine: Engine, http: httpx.Client) -> None:
    headers = {"Authorization": "Basic " + "A" * 30_001}  # 30 KB, and not base64 of anything
    assert_error(
        post(http, "/v1/track", {"userId": "u", "event": "E"}, headers), 401, "invalid_authorization"
    )
    assert engine.jobs() == []


def test_stacked_content_encodings(http: httpx.Client) -> None:
    body = gzip.compress(gzip.compress(b'{"userId": "u", "event": "E"}'))
    headers = [*basic(WEB).items(), ("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")]
    assert_error(http.post("/v1/track", content=body, headers=headers), 415, "unsupported_encoding")


def raw_request(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes that no HTTP client would send; return status, headers and body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize(
    "head",
    [
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nThis is not a header\r\n\r\n",
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
    ids=["length-word", "length-negative", "length-twice", "no-colon", "space-in-name", "bad-chunk", "junk"],
)
def test_malformed_http_gets_a_json_400(engine: Engine, head: bytes) -> None:
    status, headers, body = raw_request(engine.url, head)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "invalid_http"
    assert engine.jobs() == []


def test_a_declared_length_over_the_cap_is_refused_before_the_body(engine: Engine) -> None:
    head = b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\nConnection: close\r\n" + (
        b"Authorization: " + basic(WEB)["Authorization"].encode() + b"\r\n\r\n"
    )
    status, _, body = raw_request(engine.url, head)
    assert (status, json.loads(body)["code"]) == (413, "request_too_large")


def test_an_unknown_basic_key_is_refused_before_the_body(engine: Engine) -> None:
    # No body follows the headers: the answer comes without waiting for it.
    head = b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n"
    head += b"Authorization: " + basic("wk_nope")["Authorization"].encode() + b"\r\n\r\n"
    status, _, body = raw_request(engine.url, head)
    assert (status, json.loads(body)["code"]) == (401, "invalid_write_key")


class BrokenQueue:
    """A queue whose disk is full."""

    def enqueue(self, events: Sequence[Event], fanout: Mapping[str, Sequence[str]]) -> list[str]:
        raise OSError(28, "No space left on device")


def test_a_queue_failure_is_503_so_clients_retry(
    server: tuple[str, Switch], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="delivery")
    url, switch = server
    switch.app = make_app(BrokenQueue())
    try:
        with httpx.Client(base_url=url) as http:
            response = post(http, "/v1/track", {"userId": "u", "event": "E"}, basic(WEB))
    finally:
        switch.app = None
    assert_error(response, 503, "unavailable")
    assert "No space left" not in response.text
    assert "could not store 1 events" in caplog.text


def test_a_bug_is_a_json_500_without_detail(engine: Engine, http: httpx.Client) -> None:
    async def broken() -> None:
        raise RuntimeError("secret internals")

    engine.app.add_api_route("/v1/broken", broken, methods=["POST"])
    response = http.post("/v1/broken")
    assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "Traceback" not in response.text


def test_write_keys_are_never_logged(
    engine: Engine, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wk_live_almost_" + WEB
    post(http, "/v1/track", {"userId": "u", "event": "E"}, basic(WEB))
    post(http, "/v1/track", {"userId": "u", "event": "E"}, basic(secret))
    post(http, "/v1/track", {"userId": "u", "event": "E", "writeKey": secret}, {})
    post(http, "/v1/track", {"userId": "u", "writeKey": WEB}, basic(WEB))
    post(http, "/v1/batch", {"batch": [{"type": "track"}], "writeKey": WEB}, {})
    responses = [post(http, "/v1/track", {"event": "E", "writeKey": secret}, basic(WEB))]
    assert caplog.records
    assert WEB not in caplog.text and "almost" not in caplog.text
    assert all(WEB not in response.text for response in responses)
    assert all(WEB.encode() not in event.payload for event in engine.stored())


def test_healthz(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


# -- (c) one bad event in a batch ----------------------------------------------------------------


def test_one_invalid_event_in_a_batch_is_rejected_alone(
    engine: Engine, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="delivery")
    body = {
        "batch": [
            {"type": "track", "userId": "u1", "event": "First", "messageId": "m1"},
            {"type": "track", "userId": "u1", "messageId": "m2"},  # no event
            {"type": "identify", "anonymousId": "anon-3", "messageId": "m3"},
        ],
        "writeKey": WEB,
    }
    assert_success(post(http, "/v1/batch", body))
    assert engine.events() == {"m1": FANOUT["web"], "m3": FANOUT["web"]}
    assert engine.stats.events_rejected == Counter({"missing_event": 1})
    assert engine.stats.events_accepted == 2
    assert "rejected 1 of 3 events: batch[1] missing_event" in caplog.text


def test_a_lone_surrogate_in_a_batch_item_rejects_that_item_alone(engine: Engine, http: httpx.Client) -> None:
    # It was a 503 for the whole batch, retried forever by every client.
    body = (
        b'{"batch": [{"type": "track", "userId": "u1", "event": "E", "messageId": "\\ud800"},'
        b' {"type": "track", "userId": "u1", "event": "E", "messageId": "m2"}]}'
    )
    assert_success(post(http, "/v1/batch", body, basic(WEB)))
    assert engine.events() == {"m2": FANOUT["web"]}
    assert engine.stats.events_rejected == Counter({"invalid_message_id": 1})


def test_a_batch_context_is_merged_within_the_message_limit(engine: Engine, http: httpx.Client) -> None:
    context = {"p": "x" * 20_000}
    batch = [
        {"type": "track", "userId": "u1", "event": "E", "messageId": "m1"},
        {"type": "track", "userId": "u1", "event": "E", "messageId": "m2", "properties": {"q": "y" * 15_000}},
    ]
    assert_success(post(http, "/v1/batch", {"batch": batch, "context": context}, basic(WEB)))
    assert engine.events() == {"m1": FANOUT["web"]}
    assert engine.payloads()["m1"]["context"] == context
    assert engine.stats.events_rejected == Counter({"message_too_large": 1})


def test_a_batch_of_only_invalid_events_is_still_200(engine: Engine, http: httpx.Client) -> None:
    assert_success(post(http, "/v1/batch", {"batch": [{"type": "track"}] * 10}, basic(WEB)))
    assert engine.jobs() == []
    assert engine.stats.events_rejected == Counter({"missing_user_id": 10})


def test_a_full_batch_at_the_limits(engine: Engine, http: httpx.Client) -> None:
    # 2,500 events in just under 500 KiB: accepted, one commit.
    pad = "x" * ((MAX_REQUEST_BYTES - 20_000) // MAX_BATCH_EVENTS - 80)
    batch = [
        {"type": "track", "userId": f"u{n}", "event": "E", "messageId": f"m{n}", "p": pad}
        for n in range(2500)
    ]
    content = json.dumps({"batch": batch}).encode()
    assert MAX_REQUEST_BYTES - 30_000 < len(content) <= MAX_REQUEST_BYTES
    assert_success(post(http, "/v1/batch", content, basic(IOS)))
    assert len(engine.jobs()) == 2 * MAX_BATCH_EVENTS
