"""`delivery.sender`: what `Sender.send` makes of what a transport gives it.

A scripted transport stands behind the seam here; test_faults.py sends
through both real clients to real loopback servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from delivery.sender import BODY_READ_LIMIT, Sender, SendResult
from delivery.transport import UNCLASSIFIED_CODE, Response, TransportError
from delivery.transport.redaction import REDACTED
from ingest.schema import RESPONSE_BODY_LIMIT

SECRET = "s3cret-Token-42"
URL = "https://user:pa55word@hooks.example.com/hook"
HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
BODY = b'{"type": "track"}'


@dataclass
class Scripted:
    """A transport that answers every post with `outcome`: a response, or an exception to raise."""

    outcome: Response | BaseException
    posts: list[tuple[str, bytes, Mapping[str, str], float, int]] = field(default_factory=list)
    closed: bool = False

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float, read_limit: int
    ) -> Response:
        self.posts.append((url, body, headers, timeout_s, read_limit))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    async def close(self) -> None:
        self.closed = True


def send(outcome: Response | BaseException) -> tuple[SendResult, Scripted]:
    transport = Scripted(outcome)

    async def scenario() -> SendResult:
        async with Sender(request_timeout_s=7.5, transport=transport) as sender:
            return await sender.send(URL, BODY, HEADERS)

    return asyncio.run(scenario()), transport


def test_a_send_result_holds_a_status_or_an_error() -> None:
    with pytest.raises(ValueError, match="either a status or an error"):
        SendResult(1.0)
    with pytest.raises(ValueError, match="either a status or an error"):
        SendResult(1.0, status=200, error_code="ETIMEDOUT")


def test_a_2xx_keeps_no_body() -> None:
    result, transport = send(Response(201, b"created", "30"))
    assert (result.status, result.body, result.retry_after) == (201, None, "30")
    assert (result.error_code, result.error_message, result.unclassified) == (None, None, None)
    assert result.duration_ms > 0
    assert transport.posts == [(URL, BODY, HEADERS, 7.5, BODY_READ_LIMIT)]
    assert transport.closed


def test_a_body_outside_2xx_is_redacted_then_cut() -> None:
    raw = f"bad token {SECRET}, password pa55word ".encode() + b"e" * (2 * RESPONSE_BODY_LIMIT)
    result, _ = send(Response(401, raw, None))
    assert result.status == 401 and result.retry_after is None
    assert result.body is not None
    assert result.body.startswith(f"bad token {REDACTED}, password {REDACTED} eee")
    assert len(result.body.encode()) == RESPONSE_BODY_LIMIT


def test_a_body_that_is_not_utf8_is_kept_readable() -> None:
    result, _ = send(Response(500, b"caf\xe9 \xff", None))
    assert result.body == "caf\ufffd \ufffd"


def test_a_nonstandard_status_without_a_body() -> None:
    result, _ = send(Response(42, b"", None))
    assert (result.status, result.body) == (42, "")


def failed(code: str, cause: BaseException, *, unclassified: str | None = None) -> TransportError:
    error = TransportError(code, f"{type(cause).__name__}: {cause}", unclassified=unclassified)
    error.__cause__ = cause
    return error


def test_a_transport_error_is_its_code_and_redacted_text() -> None:
    result, _ = send(failed("ECONNREFUSED", ConnectionRefusedError(f"refused for {SECRET}")))
    assert (result.status, result.body, result.retry_after) == (None, None, None)
    assert result.error_code == "ECONNREFUSED"
    assert result.error_message == f"ConnectionRefusedError: refused for {REDACTED}"
    assert result.unclassified is None
    assert result.duration_ms > 0


def test_a_long_error_text_is_cut() -> None:
    result, _ = send(failed("EBADRESPONSE", ValueError("x" * 5000)))
    assert result.error_message is not None
    assert len(result.error_message.encode()) == RESPONSE_BODY_LIMIT


def test_an_unclassified_transport_error_keeps_its_reason_redacted() -> None:
    reason = f"no transport code for LookupError: {SECRET}: LookupError is in no table"
    result, _ = send(failed(UNCLASSIFIED_CODE, LookupError(SECRET), unclassified=reason))
    assert result.error_code == UNCLASSIFIED_CODE
    assert result.error_message == f"LookupError: {REDACTED}"
    assert result.unclassified == f"no transport code for LookupError: {REDACTED}: LookupError is in no table"


def test_an_exception_that_is_not_a_transport_error_is_unclassified_not_raised() -> None:
    result, _ = send(KeyError("x"))  # a transport's bug
    assert result.error_code == UNCLASSIFIED_CODE
    assert result.error_message == "KeyError: 'x'"
    assert result.unclassified is not None and "builtins.KeyError" in result.unclassified


def test_python_s_own_exception_from_a_transport_still_gets_its_code() -> None:
    result, _ = send(TimeoutError("late"))
    assert (result.error_code, result.unclassified) == ("ETIMEDOUT", None)


def test_a_closed_sender_refuses_without_raising_or_posting() -> None:
    transport = Scripted(Response(200, b"", None))

    async def scenario() -> SendResult:
        sender = Sender(request_timeout_s=1.0, transport=transport)
        await sender.close()
        return await sender.send(URL, BODY, HEADERS)

    result = asyncio.run(scenario())
    assert result.error_code == UNCLASSIFIED_CODE
    assert result.error_message == "RuntimeError: the Sender is closed"
    assert transport.closed and transport.posts == []


def test_cancellation_passes_through() -> None:
    with pytest.raises(asyncio.CancelledError):
        send(asyncio.CancelledError())


def test_an_unknown_client_is_refused() -> None:
    with pytest.raises(ValueError, match="http_client must be one of builtin, aiohttp, got 'curl'"):
        Sender(request_timeout_s=1.0, http_client="curl")
