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

#: A response head longer than this is refused (llhttp's default is 80 KiB).
MAX_HEAD_BYTES: Final = 64 * 1024
#: What the Host header and the pool key leave out.
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d)[ \t]+(\d+)(?:[ \t][^\r\n]*)?\r?")
_SMALLINT_MAX = 32767  # the status_code column
# Only digits: int() would also take "+5", "1_0" or, for chunk sizes, "-6" (which loops).
_DIGITS = re.compile(r"[0-9]{1,18}")
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]{1,15}")
#: A chunk's size line, extensions included, is refused beyond this.
_MAX_CHUNK_LINE = 1024


class InterimStatusOnly(Exception):
    """The last status line before the connection failed was an interim (1xx) one.

    Interim statuses (100, 102-199) are read past to a final one; a
    destination that answers only with one of them is recorded with that
    number, like any other nonstandard status.
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
    """What came back is not an HTTP/1.x response (or is one broken beyond reading)."""


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
    """Whether the connection may carry another request (the response was read to its end)."""


def parse_response(buffer: bytes | bytearray, eof: bool, read_limit: int) -> _Parsed | None:
    """The final response in `buffer`, or None when more bytes are needed.

    `eof`: nothing more will arrive. Raises `BadResponse`, `ServerDisconnected`,
    `InterimStatusOnly`, or `ConnectionResetError` for a body cut short.
    """
    start, interim = 0, None
    while True:
        end, separator = _end_of_head(buffer, start)
        if end < 0:
            if len(buffer) - start > MAX_HEAD_BYTES:
                raise BadResponse(f"a response head longer than {MAX_HEAD_BYTES} bytes")
            prefix = bytes(buffer[start : start + 5])
            if prefix and not b"HTTP/".startswith(prefix[: len(b"HTTP/")]):
                if interim is not None:
                    raise InterimStatusOnly(interim)
                raise BadResponse(f"not an HTTP response: {bytes(buffer[start : start + 40])!r}")
            if not eof:
                return None
            if interim is not None:
                raise InterimStatusOnly(interim)
            if start == len(buffer):
                raise ServerDisconnected("Server disconnected without sending a response")
            raise ServerDisconnected("Server disconnected inside the response head")
        if end - start > MAX_HEAD_BYTES:
            raise BadResponse(f"a response head longer than {MAX_HEAD_BYTES} bytes")
        lines = bytes(buffer[start:end]).split(b"\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            if interim is not None:
                raise InterimStatusOnly(interim)
            raise BadResponse(f"not an HTTP status line: {lines[0][:80]!r}")
        status = int(match[3]) if len(match[3]) <= 5 else _SMALLINT_MAX + 1
        if status > _SMALLINT_MAX:
            raise BadResponse(f"a status number out of range: {lines[0][:80]!r}")
        headers = _headers(lines[1:])
        body_start = end + separator
        if 100 <= status < 200 and status != 101:
            interim, start = status, body_start
            continue
        keep_alive = (
            match[1] == b"1" and match[2] == b"1" and "close" not in headers.get("connection", "").lower()
        )
        return _body(buffer, body_start, status, headers, keep_alive, eof, read_limit)


def _end_of_head(buffer: bytes | bytearray, start: int) -> tuple[int, int]:
    """(offset of the blank line ending the head at `start`, its length), or (-1, 0)."""
    crlf = buffer.find(b"\r\n\r\n", start)
    lf = buffer.find(b"\n\n", start)
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, 2
    return (crlf, 4) if crlf >= 0 else (-1, 0)


def _headers(lines: list[bytes]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise BadResponse(f"a malformed header line: {line[:80]!r}")
        key = name.strip().lower().decode("latin-1")
        text = value.strip().decode("latin-1")
        if key not in headers:
            headers[key] = text
        elif key != "retry-after":  # a second Retry-After is ignored, not joined into "120, 120"
            headers[key] = f"{headers[key]}, {text}"
    return headers


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
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _chunked(buffer, start, status, headers, keep_alive, eof, read_limit)
    if "content-length" in headers:
        if not _DIGITS.fullmatch(headers["content-length"]):
            raise BadResponse(f"a Content-Length that is not a number: {headers['content-length']!r}")
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
    while len(body) < read_limit:
        line_end = buffer.find(b"\n", position, position + _MAX_CHUNK_LINE)
        if line_end < 0:
            if len(buffer) - position >= _MAX_CHUNK_LINE:
                raise BadResponse(f"a chunk size line longer than {_MAX_CHUNK_LINE} bytes")
            break
        size_text = bytes(buffer[position:line_end]).split(b";")[0].strip()
        if not _HEX_DIGITS.fullmatch(size_text):
            raise BadResponse(f"a malformed chunk size: {size_text[:20]!r}")
        size = int(size_text, 16)
        data_start = line_end + 1
        if size == 0:
            # The last chunk; a trailer makes the connection not worth reusing.
            reusable = keep_alive and bytes(buffer[data_start:]) == b"\r\n"
            return _Parsed(status, headers, bytes(body), reusable)
        body += buffer[data_start : data_start + size]
        if len(buffer) < data_start + size + 2:
            break
        position = data_start + size + 2
    if len(body) >= read_limit:
        return _Parsed(status, headers, bytes(body[:read_limit]), False)
    if eof:
        raise ConnectionResetError("the connection ended inside the chunked response body")
    return None


class _Connection(asyncio.Protocol):
    """One connection: a request written, its response parsed as its bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._eof = False
        self._lost: BaseException | None = None
        self._waiter: asyncio.Future[_Parsed] | None = None
        self._read_limit = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted again
            return
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

    async def exchange(self, request: bytes, read_limit: int, deadline: float) -> _Parsed:
        """Write `request` and return its final response; TimeoutError at `deadline` (loop time)."""
        assert self.transport is not None and self._waiter is None
        self._buffer.clear()
        self._read_limit = read_limit
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(deadline, self._time_out, waiter)
        try:
            self.transport.write(request)
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

    async def take(self, deadline: float) -> None:
        """Take a slot, waiting until `deadline` (loop time) at most."""
        if self._free and not self._waiters:
            self._free -= 1
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
            if connection.usable and now - connection.idle_since < self._keepalive_s:
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
            target = self._targets[cache_key] = _target(
                url, headers, self._user_agent, absolute=self._proxy is not None
            )
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
    while (head := _end_of_head(buffer, 0))[0] < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise BadResponse(f"an answer to CONNECT with a head longer than {MAX_HEAD_BYTES} bytes")
        data = await loop.sock_recv(sock, 65536)
        if not data:
            raise ServerDisconnected("the egress proxy closed the connection before answering CONNECT")
        buffer += data
    end, separator = head
    match = _STATUS_LINE.fullmatch(bytes(buffer[:end]).split(b"\n", 1)[0])
    if match is None or len(match[3]) != 3 or match[3].startswith(b"1"):
        raise BadResponse(f"not an answer to CONNECT: {bytes(buffer[:80])!r}")
    if match[3].startswith(b"2"):
        # The client speaks first in TLS: anything already here is not the destination's.
        if len(buffer) > end + separator:
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
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
            raise ValueError(f"header {name!r} holds a line break or a colon")
        lowered = name.lower()
        if lowered in ("host", "content-length", "transfer-encoding", "connection"):
            continue  # framing is this client's
        fields[lowered] = (name, value)
    request_target = f"http://{shown_host}{path}" if absolute and scheme == "http" else path
    lines = [f"POST {request_target} HTTP/1.1\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in fields.values()]
    return _Target((scheme, host, port), shown_host, "".join(lines).encode("utf-8"))
