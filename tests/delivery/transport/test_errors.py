"""`delivery.transport.errors`: Python's own exceptions by table, the chain walk, and unknown exceptions.

The rows are the exceptions the built-in client lets through as they are
(and aiohttp wraps: test_aiohttp_client.py has those), with the chains
Python builds for them.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from typing import TypeVar

import pytest

from delivery.transport import UNCLASSIFIED_CODE
from delivery.transport.errors import (
    PYTHON_TABLE,
    TLS_VERIFY_CODES,
    UnclassifiedError,
    describe_chain,
    links,
    transport_code,
    transport_error,
)
from ingest.taxonomy import TRANSPORT_CODES

E = TypeVar("E", bound=BaseException)


def during(error: E, context: BaseException) -> E:
    """`error` raised while handling `context`."""
    error.__context__ = context
    return error


def caused(error: E, cause: BaseException) -> E:
    """`error` raised `from cause`."""
    error.__cause__ = cause
    return error


def from_none(error: E, context: BaseException) -> E:
    """`raise error from None` while handling `context`."""
    error.__context__ = context
    error.__suppress_context__ = True
    return error


def timeout() -> TimeoutError:
    return during(TimeoutError(), asyncio.CancelledError())


def refused(port: int = 80) -> ConnectionRefusedError:
    return ConnectionRefusedError(errno.ECONNREFUSED, f"Connect call failed ('127.0.0.1', {port})")


def cert_error(verify_code: int, message: str = "certificate verify failed") -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message} (_ssl.c:1006)")
    error.verify_code = verify_code
    error.verify_message = message
    return error


EXCEPTIONS: list[tuple[str, BaseException, str]] = [
    ("refused", refused(), "ECONNREFUSED"),
    ("reset", ConnectionResetError(104, "Connection reset by peer"), "ECONNRESET"),
    ("reset, no errno", ConnectionResetError("the connection ended inside the response body"), "ECONNRESET"),
    ("aborted", ConnectionAbortedError(103, "Software caused connection abort"), "ECONNABORTED"),
    ("broken pipe", BrokenPipeError(32, "Broken pipe"), "EPIPE"),
    ("host unreachable", OSError(113, "No route to host"), "EHOSTUNREACH"),
    ("network unreachable", OSError(101, "Network is unreachable"), "ENETUNREACH"),
    ("connect timed out (kernel)", TimeoutError(110, "Connection timed out"), "ETIMEDOUT"),
    ("timeout", timeout(), "ETIMEDOUT"),
    (
        "several addresses, several errnos",
        OSError(
            "Multiple exceptions: [Errno 111] Connect call failed ('::1', 80, 0, 0), "
            "[Errno 101] Network is unreachable"
        ),
        "ECONNREFUSED",
    ),
    ("dns noname", socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "ENOTFOUND"),
    ("dns nodata", socket.gaierror(-5, "No address associated with hostname"), "ENOTFOUND"),
    ("dns again", socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), "EAI_AGAIN"),
    *[(f"verify code {n}", cert_error(n), code) for n, code in TLS_VERIFY_CODES.items()],
    ("wrong TLS version", ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "EPROTO"),
    ("EOF in the handshake", ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "ECONNRESET"),
    ("a group", ExceptionGroup("attempts", [refused(), refused(81)]), "ECONNREFUSED"),
    ("a group, first without a code", ExceptionGroup("x", [OSError("odd"), timeout()]), "ETIMEDOUT"),
    ("an OSError wrapping", caused(OSError("Connect call failed"), refused()), "ECONNREFUSED"),
    ("an OSError during", during(OSError(None, "failed"), refused()), "ECONNREFUSED"),
]


@pytest.mark.parametrize(
    ("error", "code"), [row[1:] for row in EXCEPTIONS], ids=[row[0] for row in EXCEPTIONS]
)
def test_exception(error: BaseException, code: str) -> None:
    assert transport_code(error) == code
    failure = transport_error(error)
    assert (failure.code, failure.unclassified) == (code, None)
    assert str(failure) == describe_chain(error)


def test_every_code_in_the_table_is_a_transport_code() -> None:
    codes = {rule for rule in PYTHON_TABLE.values() if isinstance(rule, str)}
    codes |= set(TLS_VERIFY_CODES.values())
    assert codes <= set(TRANSPORT_CODES)
    assert UNCLASSIFIED_CODE in TRANSPORT_CODES


class Disconnected(ConnectionError):
    """A client's own exception, as `http1.ServerDisconnected`: an OSError without an errno."""


def test_a_client_s_entries_come_before_python_s() -> None:
    error = Disconnected("closed before answering")
    assert transport_code(error, {Disconnected: "ESERVERDISCONNECT"}) == "ESERVERDISCONNECT"
    with pytest.raises(UnclassifiedError, match="no link of its chain has a code"):
        transport_code(error)  # by Python's table alone, an OSError without an errno


UNCLASSIFIED: list[tuple[str, BaseException, str]] = [
    ("a bug", RuntimeError("boom"), "builtins.RuntimeError is in neither"),
    ("unknown DNS failure", socket.gaierror(-4, "Non-recoverable failure"), "no link"),
    ("unknown verify code", cert_error(23, "certificate revoked"), "no link"),
    ("unknown errno", OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), "no link"),
    ("errno-less OSError", OSError("Multiple exceptions: something odd"), "no link"),
    ("a suppressed context", from_none(OSError("wrapped"), refused()), "no link"),
    (
        "a group with a bug",
        ExceptionGroup("x", [RuntimeError("boom"), refused()]),
        "RuntimeError is in neither",
    ),
]


@pytest.mark.parametrize(
    ("error", "reason"), [row[1:] for row in UNCLASSIFIED], ids=[row[0] for row in UNCLASSIFIED]
)
def test_an_unknown_exception_is_never_flattened(error: BaseException, reason: str) -> None:
    with pytest.raises(UnclassifiedError, match="no transport code for") as raised:
        transport_code(error)
    assert raised.value.error is error
    assert reason in raised.value.reason
    failure = transport_error(error)
    assert failure.code == UNCLASSIFIED_CODE
    assert str(failure) == describe_chain(error)
    assert failure.unclassified == f"no transport code for {failure}: {raised.value.reason}"


def test_describe_chain() -> None:
    assert describe_chain(timeout()) == "TimeoutError <- CancelledError"
    assert describe_chain(caused(OSError("failed"), refused(81))) == (
        "OSError: failed <- ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 81)"
    )
    # A text an earlier link showed is not repeated.
    assert (
        describe_chain(caused(OSError("same text"), OSError("same text"))) == "OSError: same text <- OSError"
    )


def test_describe_chain_shows_the_first_links_only() -> None:
    error: BaseException = refused()
    for n in range(6):
        error = caused(RuntimeError(f"wrapper {n}"), error)
    assert describe_chain(error) == (
        "RuntimeError: wrapper 5 <- RuntimeError: wrapper 4 "
        "<- RuntimeError: wrapper 3 <- RuntimeError: wrapper 2"
    )


def test_describe_chain_shows_a_class_s_text_instead_of_its_own() -> None:
    error = Disconnected("HTTP/1.1 200 OK\r\nSet-Cookie: session=s3cret")
    assert describe_chain(error, texts={ConnectionError: "Server disconnected"}) == (
        "Disconnected: Server disconnected"
    )


def test_links_are_outermost_first_members_before_causes_and_cycles_end() -> None:
    inner, other = refused(), timeout()
    group = caused(ExceptionGroup("attempts", [inner, other]), OSError("cause"))
    outer = caused(RuntimeError("outer"), group)
    assert [type(link).__name__ for link in links(outer)] == [
        "RuntimeError",
        "ExceptionGroup",
        "ConnectionRefusedError",
        "TimeoutError",
        "CancelledError",
        "OSError",
    ]
    first, second = OSError("a"), OSError("b")
    first.__context__, second.__context__ = second, first
    assert list(links(first)) == [first, second]
    with pytest.raises(UnclassifiedError):
        transport_code(first)
