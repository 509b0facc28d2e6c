"""Classification of one request: what `Sender.send` returned, judged by the taxonomy.

`classify` is the one pure function the worker calls. A response's status,
nonstandard numbers included, goes to `ingest.taxonomy.classify_status`. An
exception is first searched for a status line aiohttp refused (below), then
mapped to the transport code users know (Node's names) through `TABLE`,
walked along the exception's chain; `ingest.taxonomy.classify_transport`
gives the verdict for that code.

Status lines aiohttp refuses but which carry a number::

    InterimStatusOnly(status) ................ an interim 1xx (100, 102-199) was the
                                               last status line before the connection
                                               failed: that number
    BadStatusLine "HTTP/1.1 42 Weird" ........ a code that is not three digits
                                               (1-99, 1000-32767): that number

The table, by exception class (a class without an entry takes its nearest
base's; "wrapper" means: the link it wraps says what happened)::

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
    │   └── ClientPayloadError               wrapper (the parser's error while reading the body)
    ├── aiohttp.http_exceptions.HttpProcessingError  wrapper
    │   └── BadHttpMessage                   EBADRESPONSE (BadStatusLine, InvalidHeader, ...)
    │       └── PayloadEncodingError         (as BadHttpMessage: ContentEncodingError)
    │           ├── ContentLengthError       ECONNRESET (the connection ended inside the body)
    │           └── TransferEncodingError    ECONNRESET (same; aiohttp also uses it for broken
    │                                        chunk framing: the retryable reading is the safe one)
    ├── TimeoutError (= asyncio.TimeoutError) ETIMEDOUT
    ├── OSError                              its errno, if a network code; else wrapper
    │   ├── ConnectionRefusedError           ECONNREFUSED
    │   ├── ConnectionResetError             ECONNRESET
    │   ├── ConnectionAbortedError           ECONNABORTED
    │   ├── BrokenPipeError                  EPIPE
    │   ├── socket.gaierror                  EAI_NONAME, EAI_NODATA -> ENOTFOUND; EAI_AGAIN
    │   └── ssl.SSLError                     EPROTO (handshake failures, wrong version, ...)
    │       ├── ssl.SSLEOFError              ECONNRESET (closed during the handshake)
    │       └── ssl.SSLCertVerificationError its verify_code: 9 CERT_NOT_YET_VALID,
    │                                        10 CERT_HAS_EXPIRED, 18 DEPTH_ZERO_SELF_SIGNED_CERT,
    │                                        19 SELF_SIGNED_CERT_IN_CHAIN,
    │                                        20 UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
    │                                        21 UNABLE_TO_VERIFY_LEAF_SIGNATURE,
    │                                        62, 64 ERR_TLS_CERT_ALTNAME_INVALID
    └── BaseExceptionGroup                   wrapper (its members, in order)

The walk starts at the exception `send` returned and stops at the first link
with a code. From a wrapper, or a rule that does not know the errno, name
resolution error or verify code, it follows `__cause__`, else an unsuppressed
`__context__`, or an exception group's members. A link whose class has no
entry, or a chain that ends without a code, raises `UnclassifiedError`:
unknown failures are never flattened into a guess. `NOT_RAISED` lists the
aiohttp classes the sender's settings rule out (redirects are not followed,
no proxy, no websockets, URLs are checked before sending); a test fails when
aiohttp gains a class that is in none of `TABLE`, `HANDLED_BY_BASE` and
`NOT_RAISED`.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp import http_exceptions

from delivery.transport.http1 import BadResponse, ConnectTimeout, InterimStatusOnly, ServerDisconnected
from ingest.taxonomy import Classification, classify_status, classify_transport

if TYPE_CHECKING:
    from delivery.sender import SendResult

#: A rule gives the code for one link, or None when the link only wraps the real error.
Rule = str | Callable[[BaseException], str | None] | None
WRAPPER: Final = None


class UnclassifiedError(Exception):
    """An exception the table cannot map: the table must learn it (never guess)."""

    def __init__(self, error: BaseException, reason: str) -> None:
        super().__init__(f"no transport code for {describe_chain(error)}: {reason}")
        self.error = error


#: errno names that are transport codes of their own.
_ERRNO_CODES: Final = frozenset(
    {"ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EHOSTUNREACH", "ENETUNREACH", "EPIPE", "ETIMEDOUT"}
)
_GAI_CODES: Final = {
    socket.EAI_NONAME: "ENOTFOUND",
    getattr(socket, "EAI_NODATA", socket.EAI_NONAME): "ENOTFOUND",
    socket.EAI_AGAIN: "EAI_AGAIN",
}
#: OpenSSL X509_V_ERR_* numbers -> the names Node reports.
TLS_VERIFY_CODES: Final = {
    9: "CERT_NOT_YET_VALID",
    10: "CERT_HAS_EXPIRED",
    18: "DEPTH_ZERO_SELF_SIGNED_CERT",
    19: "SELF_SIGNED_CERT_IN_CHAIN",
    20: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    21: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    62: "ERR_TLS_CERT_ALTNAME_INVALID",  # host name mismatch
    64: "ERR_TLS_CERT_ALTNAME_INVALID",  # IP address mismatch (measured here for https://127.0.0.1)
}
# aiohappyeyeballs joins the errors of several addresses into one OSError
# without an errno when their errnos differ.
_JOINED_ERRNOS = re.compile(r"\[Errno (\d+)\]")


def _by_errno(error: BaseException) -> str | None:
    assert isinstance(error, OSError)
    if error.errno is None and str(error).startswith("Multiple exceptions"):
        for number in _JOINED_ERRNOS.findall(str(error)):
            if (name := errno.errorcode.get(int(number))) in _ERRNO_CODES:
                return name
        return None
    name = errno.errorcode.get(error.errno) if isinstance(error.errno, int) else None
    return name if name in _ERRNO_CODES else None


def _by_gai_error(error: BaseException) -> str | None:
    assert isinstance(error, socket.gaierror)
    return _GAI_CODES.get(error.errno)


def _by_verify_code(error: BaseException) -> str | None:
    assert isinstance(error, ssl.SSLCertVerificationError)
    return TLS_VERIFY_CODES.get(error.verify_code)


TABLE: Final[dict[type[BaseException], Rule]] = {
    aiohttp.ClientError: WRAPPER,
    aiohttp.ClientConnectionError: WRAPPER,
    aiohttp.ClientOSError: _by_errno,
    aiohttp.ClientConnectorDNSError: WRAPPER,
    aiohttp.ClientSSLError: WRAPPER,
    aiohttp.ClientConnectionResetError: "ECONNRESET",
    aiohttp.ServerConnectionError: WRAPPER,
    aiohttp.ServerDisconnectedError: "ESERVERDISCONNECT",
    aiohttp.ServerTimeoutError: "ETIMEDOUT",
    aiohttp.ConnectionTimeoutError: "ECONNECTTIMEOUT",
    aiohttp.SocketTimeoutError: "ESOCKETTIMEDOUT",
    aiohttp.ClientResponseError: WRAPPER,
    aiohttp.ClientPayloadError: WRAPPER,
    http_exceptions.HttpProcessingError: WRAPPER,
    http_exceptions.BadHttpMessage: "EBADRESPONSE",
    http_exceptions.ContentLengthError: "ECONNRESET",
    http_exceptions.TransferEncodingError: "ECONNRESET",
    TimeoutError: "ETIMEDOUT",
    OSError: _by_errno,
    ConnectionRefusedError: "ECONNREFUSED",
    ConnectionResetError: "ECONNRESET",
    ConnectionAbortedError: "ECONNABORTED",
    BrokenPipeError: "EPIPE",
    socket.gaierror: _by_gai_error,
    ssl.SSLError: "EPROTO",
    ssl.SSLEOFError: "ECONNRESET",
    ssl.SSLCertVerificationError: _by_verify_code,
    BaseExceptionGroup: WRAPPER,
    # delivery.transport.http1's own
    ServerDisconnected: "ESERVERDISCONNECT",
    BadResponse: "EBADRESPONSE",
    ConnectTimeout: "ECONNECTTIMEOUT",
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

#: aiohttp classes `Sender.send` cannot meet, and why. Met anyway, they are unclassified.
NOT_RAISED: Final[dict[type[BaseException], str]] = {
    aiohttp.ServerFingerprintMismatch: "no certificate fingerprint is pinned",
    aiohttp.ContentTypeError: "raised by response.json(), which the sender does not call",
    aiohttp.WSServerHandshakeError: "no websockets",
    aiohttp.WSMessageTypeError: "no websockets",
    aiohttp.WebSocketError: "no websockets",
    aiohttp.ClientHttpProxyError: "no proxy",
    aiohttp.TooManyRedirects: "redirects are not followed",
    aiohttp.RedirectClientError: "redirects are not followed",
    aiohttp.InvalidUrlRedirectClientError: "redirects are not followed",
    aiohttp.NonHttpUrlRedirectClientError: "redirects are not followed",
    aiohttp.InvalidURL: "destination URLs are checked before anything is sent",
    aiohttp.InvalidUrlClientError: "destination URLs are checked before anything is sent",
    aiohttp.NonHttpUrlClientError: "destination URLs are checked before anything is sent",
    aiohttp.UploadAbortedError: "only set on response.upload_complete, which the sender does not await",
    aiohttp.EofStream: "internal to aiohttp's stream readers",
    aiohttp.BadContentDispositionHeader: "a multipart warning; the sender parses no multipart",
    aiohttp.BadContentDispositionParam: "a multipart warning; the sender parses no multipart",
}


def classify(outcome: SendResult | BaseException) -> Classification:
    """The taxonomy's verdict on one request: class, code and retryability.

    `outcome` is what `Sender.send` returned, or a bare exception. Raises
    `UnclassifiedError` for an exception the table does not know.
    """
    if not isinstance(outcome, BaseException):
        if outcome.status is not None:
            return classify_status(outcome.status)
        if outcome.error is None:
            raise ValueError("a SendResult holds a status or an error")
        outcome = outcome.error
    status = recovered_status(outcome)
    if status is not None:
        return classify_status(status)
    return classify_transport(transport_code(outcome))


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
    links = list(_chain(error))
    for link in links:
        if isinstance(link, http_exceptions.BadStatusLine):
            match = _QUOTED_STATUS_LINE.search(link.message)
            if match and len(match[1]) != 3 and int(match[1]) <= _SMALLINT_MAX:
                return int(match[1])
    for link in links:
        if isinstance(link, InterimStatusOnly):
            return link.status
    return None


def transport_code(error: BaseException) -> str:
    """The transport code for an exception, by `TABLE` along its chain."""
    code = _code(error, error, set())
    if code is None:
        raise UnclassifiedError(
            error,
            "no link of its chain has a code (an errno, verify code or name "
            "resolution error the table does not know?)",
        )
    return code


def _code(error: BaseException, root: BaseException, seen: set[int]) -> str | None:
    if id(error) in seen:
        return None
    seen.add(id(error))
    rule = _rule_for(type(error), root)
    code = rule(error) if callable(rule) else rule
    if code is not None:
        return code
    for inner in _wrapped(error):
        if (code := _code(inner, root, seen)) is not None:
            return code
    return None


def _rule_for(cls: type[BaseException], root: BaseException) -> Rule:
    for klass in cls.__mro__:
        if klass in TABLE:
            return TABLE[klass]
    raise UnclassifiedError(root, f"{cls.__module__}.{cls.__qualname__} is not in delivery.classify.TABLE")


def _wrapped(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return list(error.exceptions)
    inner = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return [inner] if inner is not None else []


def _chain(error: BaseException) -> Iterator[BaseException]:
    """Every link reachable from `error`, outermost first."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        link = stack.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        inner = list(link.exceptions) if isinstance(link, BaseExceptionGroup) else []
        inner += [e for e in (link.__cause__, link.__context__) if e is not None]
        stack.extend(reversed(inner))


def describe_chain(error: BaseException, limit: int = 4) -> str:
    """`Type: text <- Type: text ...` for the first links of an exception's chain.

    A link whose text an earlier link already showed (aiohttp re-wraps its
    parser's errors with the same message) is shown by its type alone.
    """
    parts: list[str] = []
    for link in list(_chain(error))[:limit]:
        text = " ".join(_text_of(link).split())
        shown = text and not any(text in part for part in parts)
        parts.append(f"{type(link).__name__}: {text}" if shown else type(link).__name__)
    return " <- ".join(parts)


def _text_of(error: BaseException) -> str:
    message = getattr(error, "message", None)
    if isinstance(message, str):
        return message
    if isinstance(error, aiohttp.ServerDisconnectedError):
        # Its message may be the half-parsed response (headers and all): not for the log.
        return "Server disconnected"
    return str(error)
