"""aiohttp behind the seam (`delivery.transport.aiohttp_client`): its exceptions, and the statuses it refuses.

The exception rows are built the way aiohttp builds them (observed over real
sockets in test_faults.py): the wrapper it raises, with the original error
as its `__cause__`. Each goes through `outcome_of`, what `Client.post` does
with an exception at its edge.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import socket
import ssl
import zlib
from collections.abc import Iterator
from typing import TypeVar

import aiohttp
import pytest
from aiohttp import http_exceptions
from aiohttp.client_reqrep import ConnectionKey, RequestInfo
from aiohttp.http import HttpVersion11
from aiohttp.http_parser import RawResponseMessage
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from delivery.transport import UNCLASSIFIED_CODE, Response, TransportError
from delivery.transport.aiohttp_client import (
    HANDLED_BY_BASE,
    NOT_RAISED,
    TABLE,
    InterimStatusOnly,
    interim_status,
    outcome_of,
    recovered_status,
)
from ingest.taxonomy import TRANSPORT_CODES, ErrorClass

E = TypeVar("E", bound=BaseException)
KEY = ConnectionKey("hooks.example.com", 443, True, True, None, None, None)
REQUEST = RequestInfo(URL("https://hooks.example.com/hook"), "POST", CIMultiDictProxy(CIMultiDict()))


def caused(error: E, cause: BaseException) -> E:
    """`error` raised `from cause`, as aiohttp's `set_exception(exc, cause)` leaves it."""
    error.__cause__ = cause
    return error


def during(error: E, context: BaseException) -> E:
    """`error` raised while handling `context`."""
    error.__context__ = context
    return error


def connector_error(
    os_error: OSError, cls: type[aiohttp.ClientConnectorError] = aiohttp.ClientConnectorError
) -> aiohttp.ClientConnectorError:
    return caused(cls(KEY, os_error), os_error)


def cert_error(verify_code: int, message: str = "certificate verify failed") -> Exception:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message} (_ssl.c:1006)")
    error.verify_code = verify_code
    error.verify_message = message
    return caused(aiohttp.ClientConnectorCertificateError(KEY, error), error)


def parse_error(underlying: http_exceptions.HttpProcessingError) -> Exception:
    """ClientResponseError <- HttpProcessingError <- the parser's error, as client_proto builds it."""
    copy = caused(
        http_exceptions.HttpProcessingError(code=underlying.code, message=underlying.message), underlying
    )
    return caused(aiohttp.ClientResponseError(REQUEST, (), status=400, message=underlying.message), copy)


def payload_error(underlying: BaseException) -> Exception:
    return caused(
        aiohttp.ClientPayloadError(f"Response payload is not completed: {underlying!r}"), underlying
    )


def llhttp_status_line(line: bytes, reason: str = "Invalid status code") -> http_exceptions.BadStatusLine:
    return http_exceptions.BadStatusLine(error=f"Bad status line:\n  {reason}:\n\n  {line!r}\n    ^")


def from_none(error: E, context: BaseException) -> E:
    """`raise error from None` while handling `context`."""
    error.__context__ = context
    error.__suppress_context__ = True
    return error


def timeout() -> TimeoutError:
    return during(TimeoutError(), asyncio.CancelledError())


def zlib_error() -> zlib.error:
    try:
        zlib.decompress(b"not zlib")
    except zlib.error as error:
        return error
    raise AssertionError("decompressed garbage")


def refused(port: int = 80) -> ConnectionRefusedError:
    return ConnectionRefusedError(errno.ECONNREFUSED, f"Connect call failed ('127.0.0.1', {port})")


EXCEPTIONS: list[tuple[str, Exception, str]] = [
    ("refused", connector_error(refused()), "ECONNREFUSED"),
    ("refused, bare", refused(), "ECONNREFUSED"),
    (
        "dns noname",
        connector_error(socket.gaierror(-2, "Name or service not known"), aiohttp.ClientConnectorDNSError),
        "ENOTFOUND",
    ),
    (
        "dns nodata",
        connector_error(
            socket.gaierror(-5, "No address associated with hostname"), aiohttp.ClientConnectorDNSError
        ),
        "ENOTFOUND",
    ),
    (
        "dns again",
        connector_error(
            socket.gaierror(-3, "Temporary failure in name resolution"), aiohttp.ClientConnectorDNSError
        ),
        "EAI_AGAIN",
    ),
    (
        "reset before the response",
        caused(aiohttp.ClientOSError(104, "Connection reset by peer"), ConnectionResetError(104, "reset")),
        "ECONNRESET",
    ),
    (
        "reset while writing",
        aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
        "ECONNRESET",
    ),
    ("reset during the TLS handshake", connector_error(ConnectionResetError(104, "reset")), "ECONNRESET"),
    (
        "aborted",
        connector_error(ConnectionAbortedError(103, "Software caused connection abort")),
        "ECONNABORTED",
    ),
    ("host unreachable", connector_error(OSError(113, "No route to host")), "EHOSTUNREACH"),
    ("network unreachable", connector_error(OSError(101, "Network is unreachable")), "ENETUNREACH"),
    ("connect timed out (kernel)", connector_error(TimeoutError(110, "Connection timed out")), "ETIMEDOUT"),
    (
        "broken pipe writing the body",
        caused(aiohttp.ClientOSError(32, "Can not write request body"), BrokenPipeError(32, "Broken pipe")),
        "EPIPE",
    ),
    (
        "several addresses, several errnos",
        connector_error(
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 80, 0, 0), "
                "[Errno 101] Network is unreachable"
            )
        ),
        "ECONNREFUSED",
    ),
    (
        "several addresses, one errno",
        connector_error(OSError(111, "Multiple exceptions: ...")),
        "ECONNREFUSED",
    ),
    ("total timeout", timeout(), "ETIMEDOUT"),
    ("server timeout", aiohttp.ServerTimeoutError("Timeout on reading data from socket"), "ETIMEDOUT"),
    (
        "connect timeout",
        caused(aiohttp.ConnectionTimeoutError("Connection timeout"), timeout()),
        "ECONNECTTIMEOUT",
    ),
    ("socket read timeout", aiohttp.SocketTimeoutError("Timeout on reading data"), "ESOCKETTIMEDOUT"),
    ("closed without answering", aiohttp.ServerDisconnectedError(), "ESERVERDISCONNECT"),
    ("closed inside the head", aiohttp.ServerDisconnectedError("Server disconnected"), "ESERVERDISCONNECT"),
    (
        "closed inside a sized body",
        payload_error(
            http_exceptions.ContentLengthError("Not enough data to satisfy content length header.")
        ),
        "ECONNRESET",
    ),
    (
        "closed inside a chunked body",
        payload_error(
            http_exceptions.TransferEncodingError("Not enough data to satisfy transfer length header.")
        ),
        "ECONNRESET",
    ),
    (
        "corrupt gzip body",
        caused(
            aiohttp.ClientPayloadError("400, message:\n  Can not decode content-encoding: gzip"),
            during(
                http_exceptions.ContentEncodingError("Can not decode content-encoding: gzip"), zlib_error()
            ),
        ),
        "EBADRESPONSE",
    ),
    (
        "not HTTP",
        parse_error(llhttp_status_line(b"SSH-2.0-OpenSSH_9", "Expected HTTP/, RTSP/ or ICE/")),
        "EBADRESPONSE",
    ),
    (
        "three digits, bad version",
        parse_error(llhttp_status_line(b"HTTP/9.9 200 OK", "Invalid HTTP version")),
        "EBADRESPONSE",
    ),
    (
        "bad header",
        parse_error(http_exceptions.BadHttpMessage("Invalid header token:\n\n  b'Bad Header'\n       ^")),
        "EBADRESPONSE",
    ),
    (
        "bad header (pure-Python parser)",
        parse_error(during(http_exceptions.InvalidHeader(b"Bad Header"), ValueError("not enough values"))),
        "EBADRESPONSE",
    ),
    ("header too long", parse_error(http_exceptions.LineTooLong(b"X-Big: ...", 8190)), "EBADRESPONSE"),
    ("expired", cert_error(10, "certificate has expired"), "CERT_HAS_EXPIRED"),
    ("not yet valid", cert_error(9, "certificate is not yet valid"), "CERT_NOT_YET_VALID"),
    ("self-signed", cert_error(18, "self-signed certificate"), "DEPTH_ZERO_SELF_SIGNED_CERT"),
    (
        "self-signed in chain",
        cert_error(19, "self-signed certificate in certificate chain"),
        "SELF_SIGNED_CERT_IN_CHAIN",
    ),
    (
        "unknown issuer",
        cert_error(20, "unable to get local issuer certificate"),
        "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    ),
    (
        "leaf signature",
        cert_error(21, "unable to verify the first certificate"),
        "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    ),
    ("host name mismatch", cert_error(62, "Hostname mismatch"), "ERR_TLS_CERT_ALTNAME_INVALID"),
    ("IP address mismatch", cert_error(64, "IP address mismatch"), "ERR_TLS_CERT_ALTNAME_INVALID"),
    (
        "wrong TLS version",
        connector_error(
            ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
            aiohttp.ClientConnectorSSLError,
        ),
        "EPROTO",
    ),
    (
        "EOF in the handshake",
        connector_error(
            ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), aiohttp.ClientConnectorSSLError
        ),
        "ECONNRESET",
    ),
    ("a group", ExceptionGroup("attempts", [refused(), refused(81)]), "ECONNREFUSED"),
    (
        "a group under a wrapper",
        caused(aiohttp.ClientConnectionError("Failed to send bytes"), ExceptionGroup("x", [timeout()])),
        "ETIMEDOUT",
    ),
]

CODE_VERDICTS = {code: verdict for code, verdict in TRANSPORT_CODES.items()}


def failure(error: Exception) -> TransportError:
    outcome = outcome_of(error)
    assert isinstance(outcome, TransportError), outcome
    return outcome


@pytest.mark.parametrize(
    ("error", "code"), [row[1:] for row in EXCEPTIONS], ids=[row[0] for row in EXCEPTIONS]
)
def test_exception(error: Exception, code: str) -> None:
    mapped = failure(error)
    assert mapped.code == code
    assert mapped.unclassified is None


def test_the_exception_rows_reach_every_transport_class() -> None:
    classes = {CODE_VERDICTS[code][0] for _, _, code in EXCEPTIONS}
    assert classes == {ErrorClass.NETWORK, ErrorClass.TIMEOUT, ErrorClass.TLS, ErrorClass.NONSTANDARD}


# Status lines aiohttp refuses, as each of its parsers words the error.
RECOVERED = [
    ("llhttp 42", parse_error(llhttp_status_line(b"HTTP/1.1 42 Weird")), 42),
    ("llhttp 1", parse_error(llhttp_status_line(b"HTTP/1.1 1")), 1),
    ("llhttp 99", parse_error(llhttp_status_line(b"HTTP/1.0 99 X")), 99),
    ("llhttp 1000", parse_error(llhttp_status_line(b"HTTP/1.1 1000 X", "Invalid response status")), 1000),
    ("python 42", parse_error(http_exceptions.BadStatusLine("HTTP/1.1 42 Weird")), 42),
    ("python 7", parse_error(http_exceptions.BadStatusLine("HTTP/1.1 7 X")), 7),
    ("interim only", caused(InterimStatusOnly(100), aiohttp.ServerDisconnectedError()), 100),
    ("interim, then garbage", caused(InterimStatusOnly(102), parse_error(llhttp_status_line(b"ok"))), 102),
    (
        "interim, then a refused final line",
        caused(InterimStatusOnly(100), parse_error(llhttp_status_line(b"HTTP/1.1 42 Weird"))),
        42,
    ),
]


@pytest.mark.parametrize(
    ("error", "status"), [row[1:] for row in RECOVERED], ids=[row[0] for row in RECOVERED]
)
def test_a_refused_status_line_is_a_response_with_its_number(error: Exception, status: int) -> None:
    assert recovered_status(error) == status
    assert outcome_of(error) == Response(status, b"")


@pytest.mark.parametrize(
    "line",
    [b"HTTP/1.1 200 OK", b"HTTP/1.1 abc X", b"HTTP/1.1 99999 X", b"SSH-2.0 42"],
    ids=["three digits", "no digits", "beyond SMALLINT", "not HTTP"],
)
def test_no_number_is_recovered_from_a_line_that_is_not_a_nonstandard_status(line: bytes) -> None:
    error = parse_error(llhttp_status_line(line))
    assert recovered_status(error) is None
    assert failure(error).code == "EBADRESPONSE"


UNCLASSIFIED = [
    ("a bug", RuntimeError("boom")),
    ("a bug inside a wrapper", caused(aiohttp.ClientConnectionError("Failed to send bytes"), KeyError("x"))),
    ("a wrapper with nothing inside", aiohttp.ClientConnectionError("Connector is closed")),
    ("unknown DNS failure", connector_error(socket.gaierror(-4, "Non-recoverable failure"))),
    ("unknown verify code", cert_error(23, "certificate revoked")),
    ("unknown errno", connector_error(OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"))),
    ("errno-less OSError", connector_error(OSError("Multiple exceptions: something odd"))),
    ("invalid URL", aiohttp.InvalidUrlClientError("http://")),
    ("a suppressed context", from_none(aiohttp.ClientError("wrapped"), refused())),
    ("a group with a bug", ExceptionGroup("x", [RuntimeError("boom"), refused()])),
]


@pytest.mark.parametrize("error", [row[1] for row in UNCLASSIFIED], ids=[row[0] for row in UNCLASSIFIED])
def test_an_unknown_exception_is_never_flattened(error: Exception) -> None:
    mapped = failure(error)
    assert mapped.code == UNCLASSIFIED_CODE
    assert mapped.unclassified is not None
    assert mapped.unclassified.startswith(f"no transport code for {mapped}: ")


def test_describe_chain_shows_each_message_once() -> None:
    error = parse_error(llhttp_status_line(b"SSH-2.0", "Expected HTTP/, RTSP/ or ICE/"))
    assert str(failure(error)) == (
        "ClientResponseError: Bad status line: Expected HTTP/, RTSP/ or ICE/: b'SSH-2.0' ^ "
        "<- HttpProcessingError <- BadStatusLine"
    )


def test_a_disconnect_that_quotes_the_half_read_response_is_not_quoted() -> None:
    headers = CIMultiDict({"Set-Cookie": "session=s3cret"})
    half_read = RawResponseMessage(
        HttpVersion11, 200, "OK", CIMultiDictProxy(headers), (), False, None, False, False
    )
    error = aiohttp.ServerDisconnectedError(half_read)
    assert str(failure(error)) == "ServerDisconnectedError: Server disconnected"
    assert str(failure(aiohttp.ServerDisconnectedError("closed early"))) == (
        "ServerDisconnectedError: closed early"
    )


# -- the guard: every exception class aiohttp has is known ---------------------------------------


def aiohttp_exception_classes() -> set[type[BaseException]]:
    """Exception classes defined by aiohttp: its public names, its exception modules, their subclasses."""
    found: set[type[BaseException]] = set()
    for module in (aiohttp, aiohttp.client_exceptions, http_exceptions):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("aiohttp"):
                found.add(obj)

    def subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("aiohttp"):
                yield sub
            yield from subclasses(sub)

    for cls in list(found):
        found.update(subclasses(cls))
    return found


def test_every_aiohttp_exception_class_is_covered() -> None:
    classes = aiohttp_exception_classes()
    assert len(classes) > 40  # the walk found aiohttp's exceptions at all
    covered = set(TABLE) | HANDLED_BY_BASE | set(NOT_RAISED)
    missing = sorted(f"{c.__module__}.{c.__qualname__}" for c in classes - covered)
    assert not missing, (
        f"add to delivery.transport.aiohttp_client.TABLE, HANDLED_BY_BASE or NOT_RAISED: {missing}"
    )


def qualname(cls: type) -> str:
    return cls.__qualname__


def test_coverage_lists_do_not_overlap() -> None:
    assert not set(TABLE) & HANDLED_BY_BASE
    assert not set(TABLE) & set(NOT_RAISED)
    assert not HANDLED_BY_BASE & set(NOT_RAISED)


@pytest.mark.parametrize("cls", sorted(HANDLED_BY_BASE, key=str), ids=qualname)
def test_handled_by_base_has_a_base_in_the_table(cls: type[BaseException]) -> None:
    assert any(base in TABLE for base in cls.__mro__[1:])


def test_every_code_in_the_table_is_a_transport_code() -> None:
    codes = {rule for rule in TABLE.values() if isinstance(rule, str)}
    assert codes <= set(TRANSPORT_CODES)


# -- raw heads -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"HTTP/1.1 100 Continue\r\n\r\n", 100),
        (b"HTTP/1.1 100 Continue\r\nContent-Length: 2\r\n\r\nok", 100),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n", 102),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", None),
        (b"HTTP/1.1 101 Switching\r\n\r\n", None),
        (b"HTTP/1.1 200 OK\r\n\r\n", None),
        (b"SSH-2.0\r\n", None),
        (b"", None),
    ],
)
def test_interim_status(head: bytes, status: int | None) -> None:
    assert interim_status(head) == status
