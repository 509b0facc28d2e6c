"""The HTTP call: one aiohttp session, one POST per `Sender.send`, never an exception out.

`send` returns a `SendResult`: a response (status, the start of its body
with secrets redacted, the raw Retry-After) or the exception that stopped
the request, with the request's duration either way. `delivery.classify`
judges it; nothing here decides about retries.

The requests go out through `delivery.transport.http1`, the engine's own HTTP/1.1
client (`http_client = "builtin"`, the default), or through aiohttp
(`"aiohttp"`), which was the engine's client before and stays as a choice:
the built-in one costs about a third of aiohttp's CPU per request
(docs/benchmarks.md), and aiohttp about a third of httpx's
(docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection

from delivery.classify import describe_chain, recovered_status
from delivery.transport import CLIENTS, http1
from delivery.transport.http1 import InterimStatusOnly
from delivery.transport.redaction import keep, secrets_of
from delivery.transport.targets import refuse_special_use
from ingest.schema import RESPONSE_BODY_LIMIT

#: Bytes of a response body read: twice what is kept, so that a secret across
#: the cut at RESPONSE_BODY_LIMIT is still seen whole when it is redacted.
BODY_READ_LIMIT: Final = 2 * RESPONSE_BODY_LIMIT


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one request produced: a status, or the exception that stopped it."""

    duration_ms: float
    """From just before the request to the end of reading the response, in milliseconds."""
    status: int | None = None
    """The status the server sent, nonstandard numbers included; None without a response."""
    body: str | None = None
    """For a status outside 2xx: the body's first `RESPONSE_BODY_LIMIT` bytes, secrets
    redacted ("" when there was none, or aiohttp could not parse it); None otherwise."""
    retry_after: str | None = None
    """The raw Retry-After header, if the response had one."""
    error: Exception | None = None
    """The exception, when there was no response."""
    error_message: str | None = None
    """The exception's chain as text, secrets redacted, when there was no response."""

    def __post_init__(self) -> None:
        if (self.status is None) == (self.error is None):
            raise ValueError("a SendResult holds either a status or an error")


class Sender:
    """POSTs bodies to destinations over one pooled aiohttp session.

    Use as `async with Sender(...) as sender:`, or call `close()` when done.
    The session opens on first use, inside the running event loop.
    """

    def __init__(
        self,
        *,
        request_timeout_s: float,
        limit: int = 256,
        limit_per_host: int = 32,
        ca_bundle: str | os.PathLike[str] | None = None,
        keepalive_timeout_s: float = 4.0,
        user_agent: str = "deliverydash/0.1",
        http_client: str = "builtin",
    ) -> None:
        """Configure the session; nothing is opened yet.

        `ca_bundle` is a PEM file of CAs trusted in addition to the system's.
        `keepalive_timeout_s` stays under the 5 s idle timeout of common
        servers (Node, Apache), so a pooled connection is not reused just as
        the server closes it, which would fail a POST that cannot be retried
        transparently.
        """
        if http_client not in CLIENTS:
            raise ValueError(f"http_client must be one of {', '.join(CLIENTS)}, got {http_client!r}")
        self._ssl = ssl.create_default_context()
        if ca_bundle:
            self._ssl.load_verify_locations(cafile=os.fspath(ca_bundle))
        self._timeout_s = request_timeout_s
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._limit, self._limit_per_host = limit, limit_per_host
        self._keepalive_timeout_s = keepalive_timeout_s
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._client = (
            http1.Client(
                ssl_context=self._ssl,
                limit_per_host=limit_per_host,
                keepalive_s=keepalive_timeout_s,
                user_agent=user_agent,
            )
            if http_client == "builtin"
            else None
        )
        self._closed = False

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its connections; later sends fail (as results)."""
        self._closed = True
        if self._client is not None:
            await self._client.close()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """POST `body` to `url` once; every failure comes back as a result.

        Redirects are not followed, cookies are not kept. Only cancellation
        (a BaseException) passes through, so shutdown still works.
        """
        started = time.perf_counter()
        if self._client is not None:
            return await self._send_builtin(self._client, url, body, headers, started)
        try:
            session = self._session or self._open()
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                return await _read_response(response, started, url, headers)
        except Exception as error:
            return _failed(error, started, url, headers)

    async def _send_builtin(
        self, client: http1.Client, url: str, body: bytes, headers: Mapping[str, str], started: float
    ) -> SendResult:
        try:
            if self._closed:
                raise RuntimeError("the Sender is closed")
            response = await client.post(
                url, body, headers, timeout_s=self._timeout_s, read_limit=BODY_READ_LIMIT
            )
        except Exception as error:
            return _failed(error, started, url, headers)
        return _answered(
            response.status, response.body, response.headers.get("retry-after"), started, url, headers
        )

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the Sender is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                ssl=self._ssl,
                resolver=_SpecialUseResolver(),
                keepalive_timeout=self._keepalive_timeout_s,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": self._user_agent},
                request_class=_RecordingRequest,
                response_class=_InterimAwareResponse,
            )
        return self._session


async def _read_response(
    response: aiohttp.ClientResponse, started: float, url: str, headers: Mapping[str, str]
) -> SendResult:
    status = response.status
    raw = await _read_up_to(response.content, BODY_READ_LIMIT)
    if not response.content.at_eof():
        # Drop the connection rather than drain a body of unknown size.
        response.close()
    return _answered(status, raw, response.headers.get("Retry-After"), started, url, headers)


def _answered(
    status: int, raw: bytes, retry_after: str | None, started: float, url: str, headers: Mapping[str, str]
) -> SendResult:
    """The result of a request that got a response; a body is kept (redacted) outside 2xx only."""
    duration_ms = _ms_since(started)
    body = None
    if not 200 <= status < 300:
        body = keep(raw.decode("utf-8", errors="replace"), secrets_of(headers, url), RESPONSE_BODY_LIMIT)
    return SendResult(duration_ms, status=status, body=body, retry_after=retry_after)


async def _read_up_to(content: aiohttp.StreamReader, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _failed(error: Exception, started: float, url: str, headers: Mapping[str, str]) -> SendResult:
    """The result of a request that raised: a status recovered from the error, else the error."""
    duration_ms = _ms_since(started)
    status = recovered_status(error)
    if status is not None:
        return SendResult(duration_ms, status=status, body="")
    message = keep(describe_chain(error), secrets_of(headers, url), RESPONSE_BODY_LIMIT)
    return SendResult(duration_ms, error=error, error_message=message)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class _SpecialUseResolver(AbstractResolver):
    """aiohttp's default resolver, except that `.invalid` names fail at once (`refuse_special_use`)."""

    def __init__(self) -> None:
        self._resolver = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        refuse_special_use(host.rstrip(".").lower())
        return await self._resolver.resolve(host, port, family)

    async def close(self) -> None:
        await self._resolver.close()


# A status line at the start of a message in the raw bytes of a response.
_MESSAGE_STATUS = re.compile(rb"(?:\A|\r?\n\r?\n)HTTP/\d(?:\.\d)?[ \t]+(\d+)")
#: Bytes of each response's raw head kept to find its status lines.
HEAD_RECORD_LIMIT: Final = 1024


def interim_status(head: bytes) -> int | None:
    """The interim status (100, 102-199) of the last message starting in `head`, if it is one."""
    codes = _MESSAGE_STATUS.findall(head)
    if not codes:
        return None
    last = int(codes[-1])
    return last if 100 <= last < 200 and last != 101 else None


class _HeadRecorder:
    """Keeps the first bytes a connection receives until the response's status is read.

    Shadows the connection protocol's `data_received` (the asyncio Protocol
    method the transport calls) on that one protocol object.
    """

    __slots__ = ("_data_received", "_protocol", "head")

    def __init__(self, protocol: ResponseHandler) -> None:
        self.head = bytearray()
        self._protocol = protocol
        self._data_received = protocol.data_received
        protocol.data_received = self._record  # type: ignore[method-assign]

    def _record(self, data: bytes) -> None:
        if len(self.head) < HEAD_RECORD_LIMIT:
            self.head += data[: HEAD_RECORD_LIMIT - len(self.head)]
        self._data_received(data)

    def stop(self) -> None:
        vars(self._protocol).pop("data_received", None)


class _RecordingRequest(aiohttp.ClientRequest):
    """A request that records the raw head of its response (see `_InterimAwareResponse`)."""

    async def send(self, conn: Connection) -> aiohttp.ClientResponse:
        if conn.protocol is None:
            return await super().send(conn)
        # Installed before the request is written, so no byte of the response is missed.
        recorder = _HeadRecorder(conn.protocol)
        try:
            response = await super().send(conn)
        except BaseException:
            recorder.stop()
            raise
        if isinstance(response, _InterimAwareResponse):
            response.recorder = recorder
        else:
            recorder.stop()
        return response


class _InterimAwareResponse(aiohttp.ClientResponse):
    """A response that reports an interim (1xx) status when no final one follows.

    aiohttp reads past 100 and 102-199 to the final status. A destination
    that answers only `HTTP/1.1 100 X` would surface as a bare disconnect,
    or, when a body follows the interim head in the same read, as llhttp's
    "Expected HTTP/" about the body: either way the number would be lost. The
    raw head the request recorded still has it.
    """

    recorder: _HeadRecorder | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        try:
            return await super().start(connection)
        except Exception as error:
            status = interim_status(bytes(self.recorder.head)) if self.recorder else None
            # A timeout after an interim status stays a timeout: the server may still be working.
            if status is not None and not isinstance(error, asyncio.TimeoutError):
                raise InterimStatusOnly(status) from error
            raise
        finally:
            if self.recorder is not None:
                self.recorder.stop()
                self.recorder = None
