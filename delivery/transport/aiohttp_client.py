"""aiohttp behind the transport seam (`[engine] http_client = "aiohttp"`).

aiohttp was the engine's client before `delivery.transport.http1`, and
stays as a choice; it costs about three times the built-in client's CPU per
request (docs/benchmarks.md). `Client` is a
`delivery.transport.base.Transport`: one pooled session, redirects not
followed, no cookies, `.invalid` names refused at once (RFC 6761).

The target policy (`delivery.transport.targets`) holds for every new
connection: the resolver leaves the addresses it refuses out of each answer
(`_PolicyResolver`), and the connector judges an IP-literal host, which
aiohttp never gives the resolver, before connecting and the peer of each
new connection once it is open (`_PolicyConnector`). With an egress proxy
(`delivery.transport.proxy`) aiohttp's own proxy support sends the
requests; the proxy's name is the one the resolver does not judge.

Status lines aiohttp refuses but which carry a number become a `Response`
with that number here, never an error, and so does the egress proxy's own
answer to CONNECT (`ClientHttpProxyError`), as its answer to a plain `http`
request is::

    an interim 1xx (100, 102-199) was the .... that number (the request records the
    last status line before the connection    raw head of its response: aiohttp reads
    failed                                    past interim statuses, and loses the
                                              number when no final one follows)
    BadStatusLine "HTTP/1.1 42 Weird" ........ a code that is not three digits
                                              (1-99, 1000-32767): that number

Its exceptions, by `TABLE` on top of `delivery.transport.errors.PYTHON_TABLE`
(a class without an entry takes its nearest base's; "wrapper" means: the
link it wraps says what happened)::

    exception link                           transport code
    ├── aiohttp.ClientError                  wrapper
    │   ├── ClientConnectionError            wrapper
    │   │   ├── ClientOSError                its errno, if a network code; else wrapper
    │   │   │   └── ClientConnectorError     (as ClientOSError)
    │   │   │       ├── ClientConnectorDNSError ..... wrapper (socket.gaierror)
    │   │   │       └── ClientSSLError .............. wrapper (ssl.SSLError)
    │   │   ├── ClientConnectionResetError   ECONNRESET
    │   │   └── ServerConnectionError        wrapper
    │   │       ├── ServerDisconnectedError  ESERVERDISCONNECT
    │   │       └── ServerTimeoutError       ETIMEDOUT
    │   │           ├── ConnectionTimeoutError ...... ECONNECTTIMEOUT
    │   │           └── SocketTimeoutError .......... ESOCKETTIMEDOUT
    │   ├── ClientResponseError              wrapper (HttpProcessingError: the parser's error)
    │   │   └── ClientHttpProxyError ........ a response: the proxy's status (`outcome_of`)
    │   └── ClientPayloadError               wrapper (the parser's error while reading the body)
    └── aiohttp.http_exceptions.HttpProcessingError  wrapper
        └── BadHttpMessage                   EBADRESPONSE (BadStatusLine, InvalidHeader, ...)
            └── PayloadEncodingError         (as BadHttpMessage: ContentEncodingError)
                ├── ContentLengthError       ECONNRESET (the connection ended inside the body)
                └── TransferEncodingError    ECONNRESET (same; aiohttp also uses it for broken
                                             chunk framing: the retryable reading is the safe one)
    targets.TargetRefused .................. private_target

`HANDLED_BY_BASE` lists the classes whose nearest base in `TABLE` says the
right thing, and `NOT_RAISED` the classes this client's settings rule out
(redirects are not followed, no websockets, URLs are checked before
sending); a test fails when aiohttp gains a class that is in none
of the three.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Mapping
from typing import Final

import aiohttp
from aiohttp import http_exceptions
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

from delivery.transport.base import Response, TransportError
from delivery.transport.errors import WRAPPER, Table, Texts, by_errno, links, transport_error
from delivery.transport.proxy import EgressProxy
from delivery.transport.targets import (
    TARGET_REFUSED_CODE,
    Resolve,
    TargetPolicy,
    TargetRefused,
    refuse_special_use,
    system_resolve,
)

TABLE: Final[Table] = {
    aiohttp.ClientError: WRAPPER,
    aiohttp.ClientConnectionError: WRAPPER,
    aiohttp.ClientOSError: by_errno,
    aiohttp.ClientConnectorDNSError: WRAPPER,
    aiohttp.ClientSSLError: WRAPPER,
    aiohttp.ClientConnectionResetError: "ECONNRESET",
    aiohttp.ServerConnectionError: WRAPPER,
    aiohttp.ServerDisconnectedError: "ESERVERDISCONNECT",
    aiohttp.ServerTimeoutError: "ETIMEDOUT",
    aiohttp.ConnectionTimeoutError: "ECONNECTTIMEOUT",
    aiohttp.SocketTimeoutError: "ESOCKETTIMEDOUT",
    aiohttp.ClientResponseError: WRAPPER,
    aiohttp.ClientHttpProxyError: WRAPPER,  # never looked up: `outcome_of` answers with its status
    aiohttp.ClientPayloadError: WRAPPER,
    http_exceptions.HttpProcessingError: WRAPPER,
    http_exceptions.BadHttpMessage: "EBADRESPONSE",
    http_exceptions.ContentLengthError: "ECONNRESET",
    http_exceptions.TransferEncodingError: "ECONNRESET",
    TargetRefused: TARGET_REFUSED_CODE,
}

#: aiohttp classes whose nearest base in `TABLE` says the right thing.
HANDLED_BY_BASE: Final[frozenset[type[BaseException]]] = frozenset(
    {
        aiohttp.ClientConnectorError,  # ClientOSError: errno, else the OSError it wraps
        aiohttp.ClientConnectorSSLError,  # ClientSSLError
        aiohttp.ClientConnectorCertificateError,  # ClientSSLError
        aiohttp.ClientProxyConnectionError,  # ClientOSError
        aiohttp.client_exceptions.UnixClientConnectorError,  # ClientOSError
        http_exceptions.HttpBadRequest,  # BadHttpMessage
        http_exceptions.BadStatusLine,  # BadHttpMessage, once no number could be recovered
        http_exceptions.BadHttpMethod,  # BadHttpMessage
        http_exceptions.InvalidHeader,  # BadHttpMessage
        http_exceptions.LineTooLong,  # BadHttpMessage
        http_exceptions.InvalidURLError,  # BadHttpMessage
        http_exceptions.PayloadEncodingError,  # BadHttpMessage
        http_exceptions.ContentEncodingError,  # BadHttpMessage: a body in a corrupt encoding
        http_exceptions.DecompressSizeError,  # BadHttpMessage
    }
)

#: aiohttp classes `Client.post` cannot meet, and why. Met anyway, they are unclassified.
NOT_RAISED: Final[dict[type[BaseException], str]] = {
    aiohttp.ServerFingerprintMismatch: "no certificate fingerprint is pinned",
    aiohttp.ContentTypeError: "raised by response.json(), which the client does not call",
    aiohttp.WSServerHandshakeError: "no websockets",
    aiohttp.WSMessageTypeError: "no websockets",
    aiohttp.WebSocketError: "no websockets",
    aiohttp.TooManyRedirects: "redirects are not followed",
    aiohttp.RedirectClientError: "redirects are not followed",
    aiohttp.InvalidUrlRedirectClientError: "redirects are not followed",
    aiohttp.NonHttpUrlRedirectClientError: "redirects are not followed",
    aiohttp.InvalidURL: "destination URLs are checked before anything is sent",
    aiohttp.InvalidUrlClientError: "destination URLs are checked before anything is sent",
    aiohttp.NonHttpUrlClientError: "destination URLs are checked before anything is sent",
    aiohttp.UploadAbortedError: "only set on response.upload_complete, which the client does not await",
    aiohttp.EofStream: "internal to aiohttp's stream readers",
    aiohttp.BadContentDispositionHeader: "a multipart warning; the client parses no multipart",
    aiohttp.BadContentDispositionParam: "a multipart warning; the client parses no multipart",
}

# ServerDisconnectedError's message may be the half-parsed response (headers and all): not for the log.
_TEXTS: Final[Texts] = {aiohttp.ServerDisconnectedError: "Server disconnected"}


class Client:
    """POSTs over one pooled aiohttp session, opened on first use inside the running loop.

    New connections go to the addresses `targets` permits among those
    `resolver` gives, or through `egress_proxy` (`http://host:port`).
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        limit: int = 256,
        limit_per_host: int = 32,
        keepalive_s: float = 4.0,
        user_agent: str = "deliverydash",
        targets: TargetPolicy,
        egress_proxy: str | None = None,
        resolver: Resolve = system_resolve,
    ) -> None:
        self._ssl = ssl_context
        self._limit, self._limit_per_host = limit, limit_per_host
        self._keepalive_s = keepalive_s
        self._user_agent = user_agent
        self._policy = targets
        self._proxy = EgressProxy.parse(egress_proxy) if egress_proxy else None
        self._resolve = resolver
        self._timeout = aiohttp.ClientTimeout()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float, read_limit: int
    ) -> Response:
        """POST `body` to `url` once and return the final response; see the module docstring.

        Raises `TransportError` from what stopped the request.
        """
        try:
            session = self._session or self._open()
            if self._timeout.total != timeout_s:
                self._timeout = aiohttp.ClientTimeout(total=timeout_s)
            async with session.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
                proxy=self._proxy.url if self._proxy else None,
            ) as response:
                raw = await _read_up_to(response.content, read_limit)
                if not response.content.at_eof():
                    # Drop the connection rather than drain a body of unknown size.
                    response.close()
                return Response(response.status, raw, response.headers.get("Retry-After"))
        except Exception as error:
            outcome = outcome_of(error)
            if isinstance(outcome, Response):
                return outcome
            raise outcome from error

    async def close(self) -> None:
        """Close the session and its connections; later posts raise `TransportError`."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        connector = _PolicyConnector(
            self._policy,
            limit=self._limit,
            limit_per_host=self._limit_per_host,
            ssl=self._ssl,
            resolver=_PolicyResolver(self._policy, self._resolve, self._proxy.host if self._proxy else None),
            # Each new connection asks the resolver, as the built-in client does: the answer
            # judged is the one connected to, and the system resolver keeps DNS's own TTLs.
            use_dns_cache=False,
            keepalive_timeout=self._keepalive_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": self._user_agent},
            request_class=_RecordingRequest,
            response_class=_InterimAwareResponse,
        )
        return self._session


async def _read_up_to(content: aiohttp.StreamReader, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def outcome_of(error: Exception) -> Response | TransportError:
    """What an exception aiohttp raised is at the seam: a status it refused or the egress proxy's
    answer to CONNECT, else a `TransportError`."""
    for link in links(error):
        if isinstance(link, aiohttp.ClientHttpProxyError):
            retry_after = link.headers.get("Retry-After") if link.headers else None
            return Response(link.status, b"", retry_after)
    status = recovered_status(error)
    if status is not None:
        return Response(status, b"")
    return transport_error(error, TABLE, texts=_TEXTS)


# A status line aiohttp refused for its number: "HTTP/1.1 42 Weird" as llhttp
# (b'HTTP/1.1 42 Weird') or the pure-Python parser ('HTTP/1.1 42 Weird') quotes it.
_QUOTED_STATUS_LINE = re.compile(r"""['"](?:HTTP|RTSP|ICE)/\d+(?:\.\d+)?[ \t]+(\d+)(?![\d.])""")
_SMALLINT_MAX = 32767  # the status_code column


def recovered_status(error: BaseException) -> int | None:
    """The status number the server sent, when aiohttp raised instead of answering.

    Two cases (see the module docstring): a status line whose code is not
    three digits, quoted in the parser's BadStatusLine message, and an
    interim 1xx status that no final one followed. A three-digit code in a
    refused line is not recovered: aiohttp refused something else about it.
    """
    chain = list(links(error))
    for link in chain:
        if isinstance(link, http_exceptions.BadStatusLine):
            match = _QUOTED_STATUS_LINE.search(link.message)
            if match and len(match[1]) != 3 and int(match[1]) <= _SMALLINT_MAX:
                return int(match[1])
    for link in chain:
        if isinstance(link, InterimStatusOnly):
            return link.status
    return None


class InterimStatusOnly(Exception):
    """The last status line before the connection failed was an interim (1xx) one."""

    def __init__(self, status: int) -> None:
        super().__init__(f"only an interim {status} status line arrived before the connection failed")
        self.status = status


class _PolicyResolver(AbstractResolver):
    """`resolve` with the target policy: the addresses it refuses are left out of each answer.

    `.invalid` names fail at once (`refuse_special_use`), and a name whose
    every address is refused raises `TargetRefused`. The egress proxy's
    name (`exempt`) is not judged: the operator named it, and with a proxy
    it is the only name aiohttp looks up.
    """

    def __init__(self, policy: TargetPolicy, resolve: Resolve, exempt: str | None) -> None:
        self._policy = policy
        self._resolve = resolve
        self._exempt = exempt

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.rstrip(".").lower()
        refuse_special_use(name)
        addresses = await self._resolve(host, port)
        if name != self._exempt:
            addresses = self._policy.permitted(name, addresses)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to close: `resolve` holds no resources of its own."""


class _PolicyConnector(aiohttp.TCPConnector):
    """aiohttp's connector, judging each new connection by the target policy.

    An IP-literal host never reaches the resolver, nor does any destination
    when there is a proxy, so the host as written is judged (and `.invalid`
    refused) before connecting. The peer of each new direct connection is
    judged once it is open, so no address reaches a request unjudged.
    Pooled connections are not judged again: `_create_connection` runs for
    new ones only.
    """

    def __init__(self, policy: TargetPolicy, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._policy = policy

    async def _create_connection(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        host = req.url.raw_host or ""
        refuse_special_use(host.rstrip(".").lower())  # through a proxy, no resolver sees the name
        if not self._policy.permits_host(host):
            raise TargetRefused(host)
        protocol = await super()._create_connection(req, traces, timeout)
        peer = protocol.transport.get_extra_info("peername") if protocol.transport else None
        if req.proxy is None and peer and not self._policy.permits(str(peer[0])):
            protocol.close()
            raise TargetRefused(host, [str(peer[0])])
        return protocol


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
