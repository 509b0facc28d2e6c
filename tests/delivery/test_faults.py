"""Classification over real faults: a real `Sender`, real loopback sockets, real TLS.

Every test sends one request to a server from `faults.py` and checks the
verdict the contract (docs/attempt-log.md) gives that fault, and that the
sender returned instead of raising.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from delivery.classify import classify
from delivery.sender import Sender, SendResult
from delivery.transport import CLIENTS, UNCLASSIFIED_CODE
from delivery.transport.redaction import REDACTED
from ingest.schema import RESPONSE_BODY_LIMIT
from ingest.taxonomy import Classification, ErrorClass

from .faults import (
    FaultServer,
    Handler,
    answer_at_once,
    close_without_answer,
    closed_port,
    endless_body,
    http_response,
    keep_alive,
    never_answer,
    reset_mid_response,
    respond,
    self_signed_context,
    server_context,
)

SECRET = "s3cret-Token-42"
HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
PAYLOAD = b'{"type": "track", "event": "Signed Up"}'

NONE, AUTH, VALIDATION, CLIENT = ErrorClass.NONE, ErrorClass.AUTH, ErrorClass.VALIDATION, ErrorClass.CLIENT
RATE_LIMIT, SERVER, TIMEOUT, NETWORK = (
    ErrorClass.RATE_LIMIT,
    ErrorClass.SERVER,
    ErrorClass.TIMEOUT,
    ErrorClass.NETWORK,
)
TLS, NONSTANDARD, REDIRECT = ErrorClass.TLS, ErrorClass.NONSTANDARD, ErrorClass.REDIRECT


#: The HTTP client every test here runs through (`Sender(http_client=...)`): each test runs with each.
HTTP_CLIENT = "builtin"


@pytest.fixture(autouse=True, params=CLIENTS)
def http_client(request: pytest.FixtureRequest) -> Iterator[str]:
    global HTTP_CLIENT
    HTTP_CLIENT, before = request.param, HTTP_CLIENT
    yield HTTP_CLIENT
    HTTP_CLIENT = before


def make_sender(timeout_s: float = 2.0, ca_bundle: Path | None = None) -> Sender:
    return Sender(request_timeout_s=timeout_s, ca_bundle=ca_bundle, http_client=HTTP_CLIENT)


def send_to(
    handler: Handler,
    *,
    tls: ssl.SSLContext | None = None,
    ca_bundle: Path | None = None,
    timeout_s: float = 2.0,
    path: str = "/hook",
) -> SendResult:
    """One request from a fresh Sender to a fresh fault server."""

    async def scenario() -> SendResult:
        async with (
            FaultServer(handler, tls=tls) as server,
            make_sender(timeout_s, ca_bundle) as sender,
        ):
            return await sender.send(server.url(path), PAYLOAD, HEADERS)

    return asyncio.run(scenario())


def send_to_url(url: str, *, timeout_s: float = 2.0) -> SendResult:
    async def scenario() -> SendResult:
        async with make_sender(timeout_s) as sender:
            return await sender.send(url, PAYLOAD, HEADERS)

    return asyncio.run(scenario())


def assert_response(result: SendResult, status: int, verdict: Classification) -> None:
    assert isinstance(result, SendResult)
    assert result.error_code is None and result.error_message is None and result.unclassified is None
    assert result.status == status
    assert classify(result) == verdict
    assert result.duration_ms > 0
    if 200 <= status < 300:
        assert result.body is None
    else:
        assert result.body is not None
        assert len(result.body.encode()) <= RESPONSE_BODY_LIMIT
        assert SECRET not in result.body


def assert_transport(result: SendResult, verdict: Classification) -> None:
    assert isinstance(result, SendResult)
    assert result.status is None and result.body is None and result.retry_after is None
    assert result.error_code is not None and result.unclassified is None
    assert classify(result) == verdict
    assert result.error_message and SECRET not in result.error_message
    assert result.duration_ms > 0


# -- responses -----------------------------------------------------------------------------------

STATUS_FAULTS = [
    (200, "OK", NONE, False),
    (401, "Unauthorized", AUTH, False),
    (403, "Forbidden", AUTH, False),
    (404, "Not Found", CLIENT, False),
    (418, "I'm a teapot", NONSTANDARD, False),
    (500, "Internal Server Error", SERVER, True),
    (501, "Not Implemented", SERVER, False),
    (502, "Bad Gateway", SERVER, True),
    (503, "Service Unavailable", SERVER, True),
    (504, "Gateway Timeout", SERVER, True),
]


@pytest.mark.parametrize(("status", "reason", "error_class", "retryable"), STATUS_FAULTS)
def test_status(status: int, reason: str, error_class: ErrorClass, retryable: bool) -> None:
    result = send_to(respond(http_response(status, reason, b'{"error": "as told"}')))
    assert_response(result, status, Classification(error_class, str(status), retryable))
    if status != 200:
        assert result.body == '{"error": "as told"}'


def test_400_keeps_the_json_body_with_secrets_redacted() -> None:
    body = json.dumps(
        {
            "code": "invalid_payload",
            "message": f"bad event; you sent Authorization: Bearer {SECRET}",
            "api_key": "k_9f8e7d6c5b4a",
            "hint": "use sk_live_51Habcdef0123456789 for live mode",
        }
    ).encode()
    result = send_to(respond(http_response(400, "Bad Request", body, Content_Type="application/json")))
    assert_response(result, 400, Classification(VALIDATION, "400", False))
    assert result.body is not None
    kept = json.loads(result.body)
    assert kept["code"] == "invalid_payload"
    assert kept["message"] == f"bad event; you sent Authorization: {REDACTED}"  # the configured value, whole
    assert kept["api_key"] == REDACTED
    assert kept["hint"] == f"use {REDACTED} for live mode"


def test_long_body_is_cut_at_the_limit_after_redaction() -> None:
    # The secret straddles the 2 KiB cut: it is redacted before the cut, not cut in half.
    body = b"e" * (RESPONSE_BODY_LIMIT - 5) + SECRET.encode() + "é".encode() * 5000
    result = send_to(respond(http_response(422, "Unprocessable", body)))
    assert_response(result, 422, Classification(VALIDATION, "422", False))
    assert result.body is not None
    assert result.body == "e" * (RESPONSE_BODY_LIMIT - 5) + "[REDA"
    assert SECRET[:5] not in result.body


def test_an_endless_body_is_not_read_to_the_end() -> None:
    started = time.perf_counter()
    result = send_to(endless_body, timeout_s=5.0)
    assert time.perf_counter() - started < 2.0
    assert_response(result, 500, Classification(SERVER, "500", True))
    assert result.body == "e" * RESPONSE_BODY_LIMIT


def test_429_keeps_retry_after() -> None:
    result = send_to(respond(http_response(429, "Too Many Requests", b"slow down", Retry_After="120")))
    assert_response(result, 429, Classification(RATE_LIMIT, "429", True))
    assert result.retry_after == "120"
    assert result.body == "slow down"


def test_retry_after_as_http_date_is_kept_raw() -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    result = send_to(respond(http_response(503, "Busy", Retry_After=date)))
    assert_response(result, 503, Classification(SERVER, "503", True))
    assert result.retry_after == date


# Status lines aiohttp refuses (1-99, 1000+) or reads past (100, 102-199): recorded with their number.
ODD_STATUS_LINES = [
    (1, b"HTTP/1.1 1 One\r\n\r\n"),
    (42, b"HTTP/1.1 42 Weird\r\nContent-Length: 2\r\n\r\nok"),
    (99, b"HTTP/1.1 99 X\r\n\r\n"),
    (100, b"HTTP/1.1 100 Continue\r\n\r\n"),
    # llhttp parses the 100, then fails on "ok" as the next status line, in the same read.
    (100, b"HTTP/1.1 100 Continue\r\nContent-Length: 2\r\n\r\nok"),
    (101, b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
    (102, b"HTTP/1.1 102 Processing\r\n\r\n"),
    (199, b"HTTP/1.1 199 Whatever\r\nX-A: b\r\n\r\n"),
    # An interim status, then a final one aiohttp refuses: the final one counts.
    (42, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 42 Weird\r\n\r\n"),
    (1000, b"HTTP/1.1 1000 Big\r\n\r\n"),
]


@pytest.mark.parametrize(("status", "raw"), ODD_STATUS_LINES, ids=[repr(r[1][:24]) for r in ODD_STATUS_LINES])
def test_odd_status_line_is_recorded_with_its_number(status: int, raw: bytes) -> None:
    result = send_to(respond(raw))
    assert_response(result, status, Classification(NONSTANDARD, str(status), False))
    # aiohttp refuses the line, so the body is lost with it; the built-in client reads it.
    announced = status == 42 and b"Content-Length: 2" in raw and HTTP_CLIENT == "builtin"
    assert result.body == ("ok" if announced else "")


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_not_followed(status: int) -> None:
    async def scenario() -> tuple[SendResult, int]:
        async with FaultServer(respond(http_response(200, "OK"))) as target:
            moved = respond(http_response(status, "Moved", b"moved", Location=target.url("/new")))
            async with FaultServer(moved) as server, make_sender() as sender:
                result = await sender.send(server.url(), PAYLOAD, HEADERS)
            return result, target.requests

    result, target_requests = asyncio.run(scenario())
    assert_response(result, status, Classification(REDIRECT, str(status), False))
    assert target_requests == 0


def test_an_answer_that_is_not_http() -> None:
    result = send_to(respond(b"SSH-2.0-OpenSSH_9.6\r\n"), path="/hook?api_key=abcdef123456")
    assert_transport(result, Classification(NONSTANDARD, "EBADRESPONSE", False))
    assert result.error_message is not None
    assert "abcdef123456" not in result.error_message


def test_connections_are_reused() -> None:
    async def scenario() -> tuple[list[SendResult], int]:
        async with FaultServer(keep_alive) as server, make_sender() as sender:
            results = [await sender.send(server.url(), PAYLOAD, HEADERS) for _ in range(3)]
            return results, server.connections

    results, connections = asyncio.run(scenario())
    assert [r.status for r in results] == [200, 200, 200]
    assert connections == 1


# -- no response ---------------------------------------------------------------------------------


def test_connection_refused() -> None:
    with closed_port() as port:
        result = send_to_url(f"http://127.0.0.1:{port}/hook")
    assert_transport(result, Classification(NETWORK, "ECONNREFUSED", True))


def test_connection_reset_in_the_middle_of_a_response() -> None:
    result = send_to(reset_mid_response)
    assert_transport(result, Classification(NETWORK, "ECONNRESET", True))


def test_server_closes_without_answering() -> None:
    result = send_to(close_without_answer)
    assert_transport(result, Classification(NETWORK, "ESERVERDISCONNECT", True))


def test_read_timeout() -> None:
    result = send_to(never_answer, timeout_s=0.3)
    assert_transport(result, Classification(TIMEOUT, "ETIMEDOUT", True))
    if HTTP_CLIENT == "builtin":
        assert result.error_message == "TimeoutError: no complete response within the request timeout"
    assert 300 <= result.duration_ms < 1500


def test_a_host_that_does_not_resolve() -> None:
    started = time.perf_counter()
    result = send_to_url("http://something.invalid/hook", timeout_s=1.0)
    assert time.perf_counter() - started < 0.5  # answered locally (RFC 6761), not by a DNS timeout
    assert_transport(result, Classification(NETWORK, "ENOTFOUND", True))


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_bundle(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "extra-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def days(n: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=n)


def test_tls_with_a_trusted_certificate_works(ca: trustme.CA, ca_bundle: Path) -> None:
    tls = server_context(ca.issue_cert("127.0.0.1"))
    result = send_to(respond(http_response(200, "OK")), tls=tls, ca_bundle=ca_bundle)
    assert_response(result, 200, Classification(NONE, "200", False))


def test_tls_expired_certificate(ca: trustme.CA, ca_bundle: Path) -> None:
    # Its issuer is trusted through the sender's extra CA bundle, so OpenSSL gets as far as the dates.
    tls = server_context(ca.issue_cert("127.0.0.1", not_before=days(-10), not_after=days(-1)))
    result = send_to(never_answer, tls=tls, ca_bundle=ca_bundle)
    assert_transport(result, Classification(TLS, "CERT_HAS_EXPIRED", False))


def test_tls_certificate_not_yet_valid(ca: trustme.CA, ca_bundle: Path) -> None:
    tls = server_context(ca.issue_cert("127.0.0.1", not_before=days(1), not_after=days(10)))
    result = send_to(never_answer, tls=tls, ca_bundle=ca_bundle)
    assert_transport(result, Classification(TLS, "CERT_NOT_YET_VALID", False))


def test_tls_self_signed_certificate(tmp_path: Path) -> None:
    result = send_to(never_answer, tls=self_signed_context(tmp_path))
    assert_transport(result, Classification(TLS, "DEPTH_ZERO_SELF_SIGNED_CERT", False))


def test_tls_certificate_from_an_unknown_authority() -> None:
    tls = server_context(trustme.CA().issue_cert("127.0.0.1"))
    result = send_to(never_answer, tls=tls)
    assert_transport(result, Classification(TLS, "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", False))


def test_tls_untrusted_root_sent_in_the_chain() -> None:
    unknown = trustme.CA()
    tls = server_context(unknown.issue_cert("127.0.0.1"), with_root=unknown)
    result = send_to(never_answer, tls=tls)
    assert_transport(result, Classification(TLS, "SELF_SIGNED_CERT_IN_CHAIN", False))


def test_tls_certificate_for_another_name(ca: trustme.CA, ca_bundle: Path) -> None:
    tls = server_context(ca.issue_cert("hooks.example.com"))
    result = send_to(never_answer, tls=tls, ca_bundle=ca_bundle)
    assert_transport(result, Classification(TLS, "ERR_TLS_CERT_ALTNAME_INVALID", False))


def test_tls_to_a_plain_http_server() -> None:
    async def scenario() -> SendResult:
        async with FaultServer(answer_at_once) as server, make_sender() as sender:
            return await sender.send(server.url().replace("http://", "https://"), PAYLOAD, HEADERS)

    # OpenSSL reads the plain-text answer as a TLS record: "wrong version number".
    assert_transport(asyncio.run(scenario()), Classification(TLS, "EPROTO", False))


def test_a_closed_sender_refuses_without_raising() -> None:
    async def scenario() -> SendResult:
        closed = make_sender(1.0)
        await closed.close()
        return await closed.send("http://127.0.0.1:9/hook", PAYLOAD, HEADERS)

    result = asyncio.run(scenario())
    assert result.error_code == UNCLASSIFIED_CODE
    assert result.error_message == "RuntimeError: the Sender is closed"
