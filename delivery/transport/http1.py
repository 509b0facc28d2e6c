"""The engine's own HTTP/1.1 client: POST a body, read the status, the headers and the body's first bytes.

A delivery engine asks one thing of HTTP, many thousand times a second, and
aiohttp's general-purpose request path cost more CPU per request than all
the rest of the engine (docs/benchmarks.md, "Delivery"). This client does
only that one thing, on asyncio protocols, with pooled keep-alive
connections, behind the transport seam (`Client` is a
`delivery.transport.base.Transport`):

- any status line is a response, whatever its number (`HTTP/1.1 42 Weird`
  is status 42); interim ones (100, 102-199) are read past to the final one,
  and a connection that ends after only an interim one is a response with
  that number (the parser raises `InterimStatusOnly`; `Client.post` answers
  with its status);
- at most `read_limit` bytes of a body are read; a longer body still
  arriving (or one whose end only the close marks) costs the connection,
  never a wait;
- framing is exact or refused (RFC 9112): a response is read only when where
  it ends leaves nothing to guess. Exactly one Content-Length of digits, or
  `Transfer-Encoding: chunked` alone in an HTTP/1.1 response, never both;
  chunk size lines, extensions and the CRLF after each chunk's data as the
  grammar writes them, then a trailer of well-formed fields; head lines
  ending in CRLF or LF, without obsolete line folding, whitespace before a
  field's colon or control characters; no line over `MAX_LINE_BYTES`, no
  heads over `MAX_HEAD_BYTES`. Anything else raises `BadResponse` and closes
  the connection: a response read by a guess could be half of one and half
  of the next, and a proxy would put several destinations on one
  connection. `tests/delivery/transport/test_http1_differential.py` holds
  the parser to h11's reading of generated and mutated responses;
- a connection is reused only after a response whose framing was exact and
  that came alone: bytes after it, an answer that began before the request
  was written whole, or the server's end of the connection close it, and
  bytes that arrive while no request is outstanding are never read as the
  next request's answer; a poll of its socket just before reuse catches a
  close the loop has not read yet (`_Connection.has_unread_bytes`);
- redirects are not followed, nothing is decompressed (`Accept-Encoding:
  identity`), no cookies are kept;
- each new connection goes only to addresses the target policy permits
  (`delivery.transport.targets`), judged after this client's own lookup,
  so a name that answers differently to another lookup cannot lead it
  elsewhere; a pooled connection is not judged again;
- with an egress proxy (`delivery.transport.proxy`), `http` requests go to
  it in absolute form and `https` ones through a CONNECT tunnel; a proxy
  that answers CONNECT with anything but 2xx is a response with its status
  (`ProxyAnswered`, which `Client.post` answers with);
- failures are Python's own exceptions (`ConnectionRefusedError`,
  `ConnectionResetError`, `socket.gaierror`, `ssl.SSLCertVerificationError`,
  `TimeoutError`, ...) plus this module's and the target policy's, which
  `TABLE` adds to `delivery.transport.errors.PYTHON_TABLE`; `Client.post`
  raises them as `TransportError`::

    exception link                           transport code
    ├── ServerDisconnected (ConnectionError) ESERVERDISCONNECT
    ├── ConnectTimeout (TimeoutError) ...... ECONNECTTIMEOUT
    ├── BadResponse ........................ EBADRESPONSE
    └── targets.TargetRefused .............. private_target
"""

from __future__ import annotations

import asyncio
import base64
import collections
import ipaddress
import re
import select
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar, cast
from urllib.parse import unquote, urlsplit

from yarl import URL

from delivery.transport.base import Response
from delivery.transport.errors import Table, transport_error
from delivery.transport.proxy import EgressProxy
from delivery.transport.targets import (
    TARGET_REFUSED_CODE,
    Resolve,
    TargetPolicy,
    TargetRefused,
    refuse_special_use,
    system_resolve,
)

#: The heads of one response, interim ones and blank lines included, are refused beyond this
#: (llhttp's default is 80 KiB).
MAX_HEAD_BYTES: Final = 64 * 1024
#: A status, header or trailer line, its line end included, is refused beyond this (aiohttp
#: refuses a header line over 8190 bytes: both clients draw the line at the same place).
MAX_LINE_BYTES: Final = 8 * 1024
#: A chunk's size line, extensions and CRLF included, is refused beyond this.
MAX_CHUNK_LINE: Final = 1024
#: Request heads kept for reuse, at most (see `Client._target`).
TARGETS_KEPT: Final = 1024
#: What the Host header and the pool key leave out.
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_SMALLINT_MAX = 32767  # the status_code column
# RFC 9112's grammar (RFC 9110 5.5 for field values) as regular expressions over bytes: one
# match checks a whole head, so parsing costs no Python loop per byte.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
# SP, HTAB, visible characters and obs-text: never a control character (NUL, a bare CR, ...).
_TEXT = rb"[\t \x21-\x7e\x80-\xff]"
# Put before a line: that line, its LF included, is at most MAX_LINE_BYTES long.
_SHORT_LINE = rb"(?=[^\n]{0,%d}\n)" % (MAX_LINE_BYTES - 1)
# A status is a number from 1 as written: no leading zero (h11 refuses "042" too).
_STATUS_LINE = rb"HTTP/([0-9])\.([0-9]) ([1-9][0-9]*)(?: " + _TEXT + rb"*)?"
_FIELD_LINE = _TOKEN + rb":" + _TEXT + rb"*"
# A head's lines end in CRLF or a bare LF (RFC 9112 2.2 allows both), never in a bare CR. A
# line starting with whitespace (obsolete line folding), or a field name followed by
# whitespace before its colon, does not match.
_HEAD = re.compile(_SHORT_LINE + _STATUS_LINE + rb"\r?\n((?:" + _SHORT_LINE + _FIELD_LINE + rb"\r?\n)*)")
# The same for a head shorter than MAX_LINE_BYTES, whose lines cannot be too long: the
# look-ahead before each line would only scan it twice.
_SHORT_HEAD = re.compile(_STATUS_LINE + rb"\r?\n((?:" + _FIELD_LINE + rb"\r?\n)*)")
_FIELD = re.compile(rb"(" + _TOKEN + rb"):[\t ]*(" + _TEXT + rb"*)\r?\n")
# Chunked framing takes CRLF only, as RFC 9112 7.1 writes it (trailer fields included).
_TRAILER = re.compile(rb"(?:" + _SHORT_LINE + _FIELD_LINE + rb"\r\n)*")
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,15})(?:;[\t ]*"
    + _TOKEN
    + rb"(?:[\t ]*=[\t ]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?[\t ]*)*\r\n"
)
# Only digits: int() would also take "+5", "1_0" or " 5".
_DIGITS = re.compile(r"[0-9]{1,18}")
# For the messages of refused heads only.
_STATUS_LINE_ALONE = re.compile(_STATUS_LINE)
_FIELD_LINE_ALONE = re.compile(_FIELD_LINE)
_NAME_THEN_SPACE = re.compile(_TOKEN + rb"[\t ]+:")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class InterimStatusOnly(Exception):
    """The last status line before the connection failed was an interim (1xx) one.

    Interim statuses (100, 102-199) are read past to a final one; a
    destination that answers only with one of them (the connection ends,
    or what follows is not an HTTP status line at all) is recorded with
    that number, like any other nonstandard status.
    """

    def __init__(self, status: int) -> None:
        super().__init__(f"only an interim {status} status line arrived before the connection failed")
        self.status = status


class ServerDisconnected(ConnectionError):
    """The server closed the connection before a response head arrived.

    The request may have been processed: the verdict is retryable, and the
    request is in the log like any other.
    """


class ConnectTimeout(TimeoutError):
    """No connection (or no free slot for one) before the request's deadline."""


class BadResponse(Exception):
    """What came back is not an HTTP/1.x response this client fully understands; the connection is closed.

    Raised for bytes that are not HTTP, and for every framing RFC 9112 does
    not allow or this client does not take (see the module docstring): a
    response read by a guess could be half of one and half of the next.
    """


class ProxyAnswered(Exception):
    """The egress proxy answered CONNECT with its own response (a refusal, a 502, ...): no tunnel.

    Never crosses the seam: `Client.post` answers with `response`, as the
    proxy's answer to an `http` request (absolute form) is answered too.
    """

    def __init__(self, response: Response) -> None:
        super().__init__(f"the egress proxy answered CONNECT with {response.status}")
        self.response = response


#: This module's exceptions and the target policy's, for `transport_error` (the rest are Python's own).
TABLE: Final[Table] = {
    ServerDisconnected: "ESERVERDISCONNECT",
    ConnectTimeout: "ECONNECTTIMEOUT",
    BadResponse: "EBADRESPONSE",
    TargetRefused: TARGET_REFUSED_CODE,
}


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A final response: its status, headers (names lower-case) and up to `read_limit` body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    reusable: bool
    """Whether the connection may carry another request (the response ended exactly at the buffer's end)."""


def parse_response(buffer: bytes | bytearray, eof: bool, read_limit: int) -> _Parsed | None:
    """The final response in `buffer`, or None when more bytes are needed.

    `eof`: nothing more will arrive. Raises `BadResponse`, `ServerDisconnected`,
    `InterimStatusOnly`, or `ConnectionResetError` for a body cut short.
    """
    start, interim = 0, None
    while True:
        if not buffer.startswith(b"HTTP/", start):
            prefix = bytes(buffer[start : start + 5])
            if prefix and not b"HTTP/".startswith(prefix):
                if interim is not None:
                    raise InterimStatusOnly(interim)
                raise BadResponse(f"not an HTTP response: {bytes(buffer[start : start + 40])!r}")
        fields_end, body_start = _end_of_head(buffer, start, MAX_HEAD_BYTES)
        if fields_end < 0:
            _check_unfinished_head(buffer, start)
            if not eof:
                return None
            if interim is not None:
                raise InterimStatusOnly(interim)
            if start == len(buffer):
                raise ServerDisconnected("Server disconnected without sending a response")
            raise ServerDisconnected("Server disconnected inside the response head")
        pattern = _SHORT_HEAD if fields_end - start < MAX_LINE_BYTES else _HEAD
        match = pattern.fullmatch(buffer, start, fields_end)
        if match is None:
            raise BadResponse(_malformed(bytes(buffer[start:fields_end])))
        status = int(match[3]) if len(match[3]) <= 5 else _SMALLINT_MAX + 1
        if status > _SMALLINT_MAX:
            raise BadResponse(f"a status number out of range: {match[3][:20]!r}")
        headers = _headers(match[4])
        http11 = match[1] == b"1" and match[2] == b"1"
        _check_framing(headers, http11)
        if 100 <= status < 200 and status != 101:
            interim, start = status, body_start
            continue
        keep_alive = http11 and "close" not in headers.get("connection", "").lower()
        return _body(buffer, body_start, status, headers, keep_alive, eof, read_limit)


def _end_of_head(buffer: bytes | bytearray, start: int, stop: int) -> tuple[int, int]:
    """(end of the last field line, start of what follows the blank line) for the head at `start`.

    The blank line ends before `stop`; (-1, -1) when there is none.
    """
    crlf = buffer.find(b"\n\r\n", start, stop)
    lf = buffer.find(b"\n\n", start, crlf + 1 if crlf >= 0 else stop)  # not through the body
    if lf >= 0:
        return lf + 1, lf + 2
    return (crlf + 1, crlf + 3) if crlf >= 0 else (-1, -1)


def _check_unfinished_head(buffer: bytes | bytearray, start: int) -> None:
    """Refuse a head that has not ended and cannot end within the limits."""
    if len(buffer) >= MAX_HEAD_BYTES:
        raise BadResponse(f"a response head longer than {MAX_HEAD_BYTES} bytes")
    line_start = buffer.rfind(b"\n", start) + 1 or start
    if len(buffer) - line_start >= MAX_LINE_BYTES:
        raise BadResponse(f"a response head line longer than {MAX_LINE_BYTES} bytes")


def _malformed(head: bytes) -> str:
    """Why `head` (status line and field lines, with their line ends) is refused: its first fault."""
    for number, line in enumerate(head.split(b"\n")[:-1]):
        shown = line[:80]
        if len(line) >= MAX_LINE_BYTES:
            return f"a response head line longer than {MAX_LINE_BYTES} bytes: {shown!r}"
        line = line.removesuffix(b"\r")
        if number == 0:
            if _STATUS_LINE_ALONE.fullmatch(line):
                continue
            if _CONTROL.search(line) or b"\r" in line:
                return f"a control character in the status line: {shown!r}"
            return f"not an HTTP status line: {shown!r}"
        if line[:1] in (b" ", b"\t"):
            return f"obsolete line folding (a field line starting with whitespace): {shown!r}"
        if _NAME_THEN_SPACE.match(line):
            return f"whitespace between a field name and its colon: {shown!r}"
        if b"\r" in line:
            return f"a bare CR in a field line: {shown!r}"
        if _CONTROL.search(line):
            return f"a control character in a field line: {shown!r}"
        if not _FIELD_LINE_ALONE.fullmatch(line):
            return f"a malformed field line: {shown!r}"
    return f"a malformed response head: {head[:80]!r}"


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in _FIELD.findall(block):
        key = name.lower().decode("latin-1")
        text = value.rstrip(b"\t ").decode("latin-1")
        if key not in headers:
            headers[key] = text
        elif key != "retry-after":  # a second Retry-After is ignored, not joined into "120, 120"
            headers[key] = f"{headers[key]}, {text}"
    return headers


def _check_framing(headers: dict[str, str], http11: bool) -> None:
    """Refuse framing headers that are not exactly one length or exactly `chunked` (RFC 9112 6)."""
    coding = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if coding is not None:
        if length is not None:
            raise BadResponse("both Transfer-Encoding and Content-Length")
        if coding.lower() != "chunked":
            raise BadResponse(f"a transfer coding other than chunked alone: {coding[:40]!r}")
        if not http11:
            raise BadResponse("Transfer-Encoding in a response that is not HTTP/1.1")
    elif length is not None and not _DIGITS.fullmatch(length):
        # Two Content-Length fields are joined into "5, 5" here, and refused with the rest.
        raise BadResponse(f"a Content-Length that is not one number: {length[:40]!r}")


def _body(
    buffer: bytes | bytearray,
    start: int,
    status: int,
    headers: dict[str, str],
    keep_alive: bool,
    eof: bool,
    read_limit: int,
) -> _Parsed | None:
    available = len(buffer) - start
    if status in (101, 204, 304):
        # No body whatever the headers say (RFC 9112 6.3); after a 101 the
        # connection speaks another protocol, so it is never reused.
        return _Parsed(status, headers, b"", keep_alive and status != 101 and available == 0)
    if "transfer-encoding" in headers:
        return _chunked(buffer, start, status, headers, keep_alive, eof, read_limit)
    if "content-length" in headers:
        length = int(headers["content-length"])
        if available >= length:
            body = bytes(buffer[start : start + min(length, read_limit)])
            return _Parsed(status, headers, body, keep_alive and available == length)
        if available >= read_limit:
            return _Parsed(status, headers, bytes(buffer[start : start + read_limit]), False)
        if eof:
            raise ConnectionResetError("the connection ended inside the response body")
        return None
    if status < 200:
        # A nonstandard status (1-99) with no length announced: no body.
        return _Parsed(status, headers, b"", keep_alive and available == 0)
    # The close marks the end of the body.
    if available >= read_limit or eof:
        return _Parsed(status, headers, bytes(buffer[start : start + read_limit]), False)
    return None


def _chunked(
    buffer: bytes | bytearray,
    position: int,
    status: int,
    headers: dict[str, str],
    keep_alive: bool,
    eof: bool,
    read_limit: int,
) -> _Parsed | None:
    body = bytearray()
    while True:
        match = _CHUNK_LINE.match(buffer, position, position + MAX_CHUNK_LINE)
        if match is None:
            _check_unfinished_chunk_line(buffer, position)
            break
        size = int(match[1], 16)
        data_start = match.end()
        if size == 0:
            end = _trailer_end(buffer, data_start)
            if end < 0:
                break
            return _Parsed(status, headers, bytes(body), keep_alive and end == len(buffer))
        data_end = data_start + size
        body += buffer[data_start : min(data_end, data_start + read_limit - len(body), len(buffer))]
        if len(body) >= read_limit:
            # Enough is read: what follows is not waited for, and costs the connection.
            return _Parsed(status, headers, bytes(body), False)
        terminator = bytes(buffer[data_end : data_end + 2])
        if not b"\r\n".startswith(terminator):
            raise BadResponse(f"a chunk's data not followed by CRLF: {terminator!r}")
        if len(terminator) < 2:
            break
        position = data_end + 2
    if eof:
        raise ConnectionResetError("the connection ended inside the chunked response body")
    return None


def _check_unfinished_chunk_line(buffer: bytes | bytearray, position: int) -> None:
    """Refuse a chunk size line that is complete yet malformed, or too long to ever be one."""
    line_end = buffer.find(b"\n", position, position + MAX_CHUNK_LINE)
    if line_end >= 0:
        raise BadResponse(f"a malformed chunk size line: {bytes(buffer[position : line_end + 1])[:40]!r}")
    if len(buffer) - position >= MAX_CHUNK_LINE:
        raise BadResponse(f"a chunk size line longer than {MAX_CHUNK_LINE} bytes")


def _trailer_end(buffer: bytes | bytearray, start: int) -> int:
    """Where the trailer section at `start` (after the last chunk) and its final CRLF end; -1 if not yet."""
    if buffer.startswith(b"\r\n", start):
        return start + 2  # no trailer fields, the usual case
    # The last chunk's line ended in LF at start - 1: an empty trailer section makes "\n\r\n".
    fields_end, end = _end_of_head(buffer, start - 1, start + MAX_HEAD_BYTES)
    if fields_end < 0:
        if len(buffer) - start >= MAX_HEAD_BYTES:
            raise BadResponse(f"a trailer section longer than {MAX_HEAD_BYTES} bytes")
        return -1
    if end - fields_end != 2 or not _TRAILER.fullmatch(buffer, start, fields_end):
        raise BadResponse(f"a malformed trailer section: {bytes(buffer[start:end])[:80]!r}")
    return end


class _Connection(asyncio.Protocol):
    """One connection: a request written, its response parsed as its bytes arrive.

    It is reused only after a response whose framing was exact: the bytes
    received were that response and nothing more, they began arriving after
    the request was handed to the kernel whole, and the server did not end
    the connection. Bytes arriving while no request is outstanding close it.
    """

    def __init__(self) -> None:
        # Made by the loop it runs on: asking for the running loop per request costs a getpid().
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._eof = False
        self._lost: BaseException | None = None
        self._waiter: asyncio.Future[_Parsed] | None = None
        self._read_limit = 0
        self._early = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted again
            return
        if not self._buffer and self.transport is not None and self.transport.get_write_buffer_size():
            # The answer began before the whole request left: the server may not have read it
            # all, and what it does with the rest is unknown. The answer counts; the connection not.
            self._early = True
        self._buffer += data
        self._advance()

    def eof_received(self) -> bool:
        self._eof = True
        self._advance()
        return False  # let the transport close

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._eof = True
        self._lost = exc
        self._advance()

    @property
    def usable(self) -> bool:
        """Idle, open, and with nothing unasked for received meanwhile."""
        return not self.closed and not self._eof and not self._buffer and self.transport is not None

    def has_unread_bytes(self) -> bool:
        """Whether the kernel holds bytes, or the server's end of the connection, that the loop has
        not read yet (True too for a transport closing or gone: no connection to reuse).

        A server may close the connection right after a response that did not say so: the loop
        learns of it on its next read, and a request written before then meets the server's reset
        (ECONNRESET, a request the server never read; seen once in a fault run). Checked before a
        pooled connection is used again, as urllib3 and httpcore check theirs: one poll, no wait
        (0.6 µs, 2026-12-07, against some hundreds a request for the rest of the engine). It
        catches a close that has reached this machine; one still on its way can meet the request
        as before.
        """
        try:
            if self.transport is None or self.transport.is_closing():
                return True
            sock = self.transport.get_extra_info("socket")
            if sock is None:
                return True
            if not hasattr(select, "poll"):  # Windows
                return bool(select.select([sock], [], [], 0)[0])
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True  # no longer a socket to poll: not one to use either

    async def exchange(self, request: bytes, read_limit: int, deadline: float) -> _Parsed:
        """Write `request` and return its final response; TimeoutError at `deadline` (loop time)."""
        assert self.transport is not None and self._waiter is None
        self._buffer.clear()
        self._read_limit = read_limit
        self._early = False
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_at(deadline, self._time_out, waiter)
        try:
            self.transport.write(request)
            if self._eof:
                self._advance()  # a connection that died while idle fails now
            return await waiter
        finally:
            timer.cancel()

    def _time_out(self, waiter: asyncio.Future[_Parsed]) -> None:
        if not waiter.done():
            self._waiter = None
            waiter.set_exception(TimeoutError("no complete response within the request timeout"))

    def _advance(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = parse_response(self._buffer, self._eof and self._lost is None, self._read_limit)
            if parsed is None and self._lost is not None:
                raise self._lost  # the kernel's reason (a reset) says more than "it ended"
        except Exception as error:
            self._waiter = None
            waiter.set_exception(error)
            return
        if parsed is not None:
            self._waiter = None
            self._buffer.clear()  # a reusable connection's buffer held exactly this response
            if parsed.reusable and (self._early or self._eof):
                parsed = _Parsed(parsed.status, parsed.headers, parsed.body, False)
            waiter.set_result(parsed)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.closed = True


class _Slots:
    """A semaphore for one host, cheaper than asyncio's where it is never contended."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take_free(self) -> bool:
        """Take a slot if one is free and nobody waits for one; else False (then `take` waits).

        Not a coroutine: a slot is free for nearly every request, and a coroutine made
        and run for each of them cost more than the check.
        """
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self, deadline: float) -> None:
        """Take a slot, waiting until `deadline` (loop time) at most."""
        if self.take_free():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot just as the wait ended: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Hand the slot to the longest waiter, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


#: (scheme, host, port)
_Key = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class _UrlPart:
    """What a URL alone gives a request, whatever its headers."""

    key: _Key
    shown: str
    """host:port, for messages."""
    request_line: str
    fields: Mapping[str, tuple[str, str]]
    """Default fields by lower-case name: (name as sent, value), in the order they are sent."""


@dataclass(frozen=True, slots=True)
class _Target:
    key: _Key
    shown: str
    """host:port, for messages."""
    head: bytes
    """The request head up to the Content-Length line, which each request adds."""


class Client:
    """POSTs over pooled keep-alive connections; see the module docstring.

    At most `limit_per_host` requests run at once per (scheme, host, port);
    a connection idle for `keepalive_s` is closed rather than reused. New
    connections go to the addresses `targets` permits among those `resolver`
    gives, or through `egress_proxy` (`http://host:port`) when one is set.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        limit_per_host: int = 32,
        keepalive_s: float = 4.0,
        user_agent: str = "deliverydash",
        targets: TargetPolicy,
        egress_proxy: str | None = None,
        resolver: Resolve = system_resolve,
    ) -> None:
        self._ssl = ssl_context
        self._limit_per_host = limit_per_host
        self._keepalive_s = keepalive_s
        self._user_agent = user_agent
        self._policy = targets
        self._proxy = EgressProxy.parse(egress_proxy) if egress_proxy else None
        self._resolve = resolver
        self._idle: dict[_Key, list[_Connection]] = {}
        self._slots: dict[_Key, _Slots] = {}
        self._targets: dict[tuple[str, tuple[tuple[str, str], ...]], _Target] = {}
        """Request heads by URL and headers: an unsigned destination's are the same on every request."""
        self._urls: dict[str, _UrlPart] = {}
        """What each URL gives a request (one per destination URL): a signed request's head starts here."""
        self._swept_at = time.monotonic()
        self._closed = False

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float, read_limit: int
    ) -> Response:
        """POST `body` to `url` once and return the final response; see the module docstring.

        Raises `TransportError` from what stopped the request (a closed
        client or a URL that is not http(s) included: those are unclassified).
        """
        # One try around the whole request: free while nothing raises, and the
        # only place this client's exceptions cross the seam.
        try:
            if self._closed:
                raise RuntimeError("the HTTP client is closed")
            target = self._target(url, headers)
            request = b"%sContent-Length: %d\r\n\r\n%s" % (target.head, len(body), body)
            loop = asyncio.get_running_loop()
            # One deadline for the whole request. The timers are the loop's own
            # (`timeout_at` only where something may wait), not an asyncio.timeout
            # per request: that cost 7% of the engine's CPU.
            deadline = loop.time() + timeout_s
            slots = self._slots.get(target.key)
            if slots is None:
                slots = self._slots[target.key] = _Slots(self._limit_per_host)
            if not slots.take_free():
                try:
                    await slots.take(deadline)
                except TimeoutError:
                    raise ConnectTimeout(f"no free connection to {target.shown} within the timeout") from None
            try:
                connection = self._pooled(target.key)
                if connection is None:
                    connection = await self._connect(target, deadline, read_limit)
                try:
                    parsed = await connection.exchange(request, read_limit, deadline)
                except BaseException:
                    connection.abort()
                    raise
            finally:
                slots.give()
            now = time.monotonic()
            if parsed.reusable and not self._closed:
                connection.idle_since = now
                self._idle.setdefault(target.key, []).append(connection)
            else:
                connection.abort()  # what was needed is read; a TLS goodbye could hang on
            if now - self._swept_at > self._keepalive_s:
                self._sweep(now)
            return Response(parsed.status, parsed.body, parsed.headers.get("retry-after"))
        except InterimStatusOnly as interim:
            return Response(interim.status, b"")
        except ProxyAnswered as answer:
            return answer.response
        except Exception as error:
            raise transport_error(error, TABLE) from error

    def _sweep(self, now: float) -> None:
        """Close the connections idle past `keepalive_s`, of every host (some are never asked again)."""
        self._swept_at = now
        for key, idle in list(self._idle.items()):
            fresh = [c for c in idle if c.usable and now - c.idle_since < self._keepalive_s]
            for connection in idle:
                if connection not in fresh:
                    connection.abort()
            if fresh:
                self._idle[key] = fresh
            else:
                del self._idle[key]

    async def close(self) -> None:
        """Close every idle connection; later posts raise `TransportError`."""
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.abort()
        self._idle.clear()

    def _pooled(self, key: _Key) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to have timed out
            if (
                connection.usable
                and now - connection.idle_since < self._keepalive_s
                and not connection.has_unread_bytes()
            ):
                return connection
            connection.abort()
        return None

    async def _connect(self, target: _Target, deadline: float, read_limit: int) -> _Connection:
        """A new connection: to the host's permitted addresses in turn, or through the egress proxy.

        Raises `TargetRefused` when the policy permits none of the host's
        addresses, `ConnectTimeout` when the deadline passes, and
        `ProxyAnswered` when the proxy refuses a tunnel (with at most
        `read_limit` bytes of its answer's body).
        """
        scheme, host, port = target.key
        refuse_special_use(host)
        # An IP literal or localhost is judged as written, with or without a proxy (which resolves names).
        if not self._policy.permits_host(host):
            raise TargetRefused(host)
        tls = self._ssl if scheme == "https" else None
        if self._proxy is not None:
            return await self._through_proxy(self._proxy, target, tls, deadline, read_limit)
        # Judged on this lookup's answer, the one connected to: another lookup may answer otherwise.
        addresses = self._policy.permitted(host, await self._lookup(host, port, deadline))
        loop = asyncio.get_running_loop()

        async def dial(address: str) -> _Connection:
            _, connection = await loop.create_connection(
                _Connection,
                host=address,
                port=port,
                family=_family(address),
                ssl=tls,
                server_hostname=host if tls else None,
            )
            return connection

        return await _first_of(addresses, deadline, target.shown, dial)

    async def _through_proxy(
        self,
        proxy: EgressProxy,
        target: _Target,
        tls: ssl.SSLContext | None,
        deadline: float,
        read_limit: int,
    ) -> _Connection:
        """A connection to the proxy: as it is for `http` (absolute-form requests), tunnelled for `https`."""
        _, host, port = target.key
        shown = f"the egress proxy {proxy.url.removeprefix('http://')}"
        # The proxy is exempt from the target policy: the operator named it, often on a private address.
        addresses = await self._lookup(proxy.host, proxy.port, deadline)
        loop = asyncio.get_running_loop()
        if tls is None:

            async def dial(address: str) -> _Connection:
                _, connection = await loop.create_connection(
                    _Connection, host=address, port=proxy.port, family=_family(address)
                )
                return connection

            return await _first_of(addresses, deadline, shown, dial)
        sock = await _first_of(addresses, deadline, shown, lambda address: _socket_to(address, proxy.port))
        try:
            async with asyncio.timeout_at(deadline):
                await _tunnel(sock, host, port, read_limit)
                _, connection = await loop.create_connection(
                    _Connection, sock=sock, ssl=tls, server_hostname=host
                )
        except TimeoutError:
            sock.close()
            raise ConnectTimeout(f"no tunnel to {target.shown} through {shown} within the timeout") from None
        except BaseException:
            sock.close()
            raise
        return connection

    async def _lookup(self, host: str, port: int, deadline: float) -> list[str]:
        """The addresses to try for `host`: itself when it is an IP address, else the resolver's answer."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        try:
            async with asyncio.timeout_at(deadline):
                return await self._resolve(host, port)
        except TimeoutError:
            raise ConnectTimeout(f"resolving {host} took longer than the timeout") from None

    def _target(self, url: str, headers: Mapping[str, str]) -> _Target:
        cache_key = (url, tuple(headers.items()))
        target = self._targets.get(cache_key)
        if target is None:
            if len(self._targets) >= TARGETS_KEPT:
                # A signed destination's headers differ on every request (webhook-id, signature):
                # its heads are never asked for again, and must not pile up.
                self._targets.clear()
            part = self._urls.get(url)
            if part is None:
                part = self._urls[url] = _url_part(url, self._user_agent, absolute=self._proxy is not None)
            target = self._targets[cache_key] = _with_headers(part, headers)
        return target


_T = TypeVar("_T")


async def _first_of(
    addresses: Sequence[str], deadline: float, shown: str, dial: Callable[[str], Awaitable[_T]]
) -> _T:
    """`dial` the addresses in turn, each given its share of the time left, until one connects.

    A share, not all of it: an address that drops packets (a broken IPv6
    route, say) would otherwise use up the deadline before the next one is
    tried. Raises the first failure (`ConnectTimeout` for a timeout), at once
    for a TLS error: the server answered, and another address would not make
    its certificate valid.
    """
    loop = asyncio.get_running_loop()
    first_error: OSError | None = None
    for left, address in zip(range(len(addresses), 0, -1), addresses, strict=True):
        share = loop.time() + (deadline - loop.time()) / left
        try:
            async with asyncio.timeout_at(share):
                return await dial(address)
        except TimeoutError:
            first_error = first_error or ConnectTimeout(f"connecting to {shown} timed out")
        except OSError as error:  # ssl.SSLError is one too
            first_error = first_error or error
            if isinstance(error, ssl.SSLError):
                raise
    raise first_error or OSError(f"no address for {shown}")


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


async def _socket_to(address: str, port: int) -> socket.socket:
    """A non-blocking TCP socket connected to `address`, for a tunnel (TLS starts once it is open)."""
    sock = socket.socket(_family(address), socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _tunnel(sock: socket.socket, host: str, port: int, read_limit: int) -> None:
    """Ask the proxy on `sock` for a tunnel to `host:port`; `ProxyAnswered` unless it answers 2xx."""
    loop = asyncio.get_running_loop()
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    await loop.sock_sendall(sock, f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    buffer = bytearray()
    while (head := _end_of_head(buffer, 0, MAX_HEAD_BYTES))[0] < 0:
        _check_unfinished_head(buffer, 0)
        data = await loop.sock_recv(sock, 65536)
        if not data:
            raise ServerDisconnected("the egress proxy closed the connection before answering CONNECT")
        buffer += data
    fields_end, body_start = head
    pattern = _SHORT_HEAD if fields_end < MAX_LINE_BYTES else _HEAD
    match = pattern.fullmatch(buffer, 0, fields_end)
    if match is None or len(match[3]) != 3 or match[3].startswith(b"1"):
        raise BadResponse(f"not an answer to CONNECT: {bytes(buffer[:80])!r}")
    if match[3].startswith(b"2"):
        # The client speaks first in TLS: anything already here is not the destination's.
        if len(buffer) > body_start:
            raise BadResponse("bytes from the egress proxy after its answer to CONNECT")
        return
    # The proxy's own response (a refusal; no way to the destination): read as any response is.
    eof = False
    while (parsed := parse_response(buffer, eof, read_limit)) is None:
        data = await loop.sock_recv(sock, 65536)
        eof = not data
        buffer += data
    raise ProxyAnswered(Response(parsed.status, parsed.body, parsed.headers.get("retry-after")))


def _target(url: str, headers: Mapping[str, str], user_agent: str, *, absolute: bool = False) -> _Target:
    """The pool key and request head of `url`; `absolute`: an `http` URL's request line in absolute
    form (`POST http://host/path`), as a proxy takes it."""
    return _with_headers(_url_part(url, user_agent, absolute=absolute), headers)


def _url_part(url: str, user_agent: str, *, absolute: bool = False) -> _UrlPart:
    """What `url` alone gives a request: its pool key, its request line and its default fields."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    # As on the wire: an international name in IDNA (xn--), no trailing dot; the path percent-encoded.
    wire = URL(url)
    host = (wire.raw_host or parts.hostname).rstrip(".").lower()
    port = parts.port or _DEFAULT_PORTS[scheme]
    shown_host = f"[{host}]" if ":" in host else host
    if port != _DEFAULT_PORTS[scheme]:
        shown_host = f"{shown_host}:{port}"
    path = wire.raw_path_qs or "/"
    fields = {
        "host": ("Host", shown_host),
        "user-agent": ("User-Agent", user_agent),
        "accept": ("Accept", "*/*"),
        "accept-encoding": ("Accept-Encoding", "identity"),
    }
    if parts.username is not None or parts.password is not None:
        credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        fields["authorization"] = (
            "Authorization",
            "Basic " + base64.b64encode(credentials.encode()).decode(),
        )
    request_target = f"http://{shown_host}{path}" if absolute and scheme == "http" else path
    return _UrlPart((scheme, host, port), shown_host, f"POST {request_target} HTTP/1.1\r\n", fields)


def _with_headers(part: _UrlPart, headers: Mapping[str, str]) -> _Target:
    """The target of `part` with the caller's `headers` (each replaces a default field of its name)."""
    fields = dict(part.fields)
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
            raise ValueError(f"header {name!r} holds a line break or a colon")
        lowered = name.lower()
        if lowered in ("host", "content-length", "transfer-encoding", "connection"):
            continue  # framing is this client's
        fields[lowered] = (name, value)
    lines = [part.request_line]
    lines += [f"{name}: {value}\r\n" for name, value in fields.values()]
    return _Target(part.key, part.shown, "".join(lines).encode("utf-8"))
