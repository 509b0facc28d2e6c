"""Transport errors: an exception that stopped a request, as the transport code users know.

Each HTTP client maps its exceptions at its own edge with `transport_error`,
giving its own table entries; Python's own exceptions, which every client
lets through or wraps, are in `PYTHON_TABLE` here. The code (Node's names)
is what `ingest.taxonomy.classify_transport` judges.

The tables, by exception class (a class without an entry takes its nearest
base's; "wrapper" means: the link it wraps says what happened)::

    exception link                           transport code
    ├── (a client's own classes) ........... its module's TABLE:
    │                                        delivery.transport.http1, delivery.transport.aiohttp_client
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

The walk starts at the exception the client caught and stops at the first
link with a code. From a wrapper, or a rule that does not know the errno,
name resolution error or verify code, it follows `__cause__`, else an
unsuppressed `__context__`, or an exception group's members. A link whose
class has no entry, or a chain that ends without a code, is unclassified
(`UnclassifiedError`): unknown failures are never flattened into a guess.
They become a `TransportError` with code `EUNCLASSIFIED`, which the engine
records, retries and logs as an error until a table learns the exception.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Final

from delivery.transport.base import UNCLASSIFIED_CODE, TransportError

#: A rule gives the code for one link, or None when the link only wraps the real error.
Rule = str | Callable[[BaseException], str | None] | None
#: Exception classes -> rules: `PYTHON_TABLE`, or a client's own entries.
Table = Mapping[type[BaseException], Rule]
#: A client without exceptions of its own (Python's are always looked up).
NO_ENTRIES: Final[Table] = MappingProxyType({})
WRAPPER: Final = None
#: Texts shown for exceptions of some classes instead of their own (see `describe_chain`).
Texts = Mapping[type[BaseException], str]
NO_TEXTS: Final[Texts] = MappingProxyType({})


class UnclassifiedError(Exception):
    """An exception no table can map: a table must learn it (never guess)."""

    def __init__(self, error: BaseException, reason: str) -> None:
        super().__init__(f"no transport code for {describe_chain(error)}: {reason}")
        self.error = error
        self.reason = reason


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


def by_errno(error: BaseException) -> str | None:
    """The rule for an OSError (a client's own OSError subclasses use it too): its errno's name."""
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


PYTHON_TABLE: Final[Table] = MappingProxyType(
    {
        TimeoutError: "ETIMEDOUT",
        OSError: by_errno,
        ConnectionRefusedError: "ECONNREFUSED",
        ConnectionResetError: "ECONNRESET",
        ConnectionAbortedError: "ECONNABORTED",
        BrokenPipeError: "EPIPE",
        socket.gaierror: _by_gai_error,
        ssl.SSLError: "EPROTO",
        ssl.SSLEOFError: "ECONNRESET",
        ssl.SSLCertVerificationError: _by_verify_code,
        BaseExceptionGroup: WRAPPER,
    }
)


def transport_error(
    error: BaseException, table: Table = NO_ENTRIES, *, texts: Texts = NO_TEXTS
) -> TransportError:
    """`error` as the seam's `TransportError`: its code by `table` and `PYTHON_TABLE`, along its chain.

    `table` is a client's own entries. An exception no table knows gives
    code `EUNCLASSIFIED`, with the reason in `TransportError.unclassified`.
    The caller raises the result `from error`. `texts` as for `describe_chain`.
    """
    description = describe_chain(error, texts=texts)
    try:
        code = transport_code(error, table)
    except UnclassifiedError as unknown:
        reason = f"no transport code for {description}: {unknown.reason}"
        return TransportError(UNCLASSIFIED_CODE, description, unclassified=reason)
    return TransportError(code, description)


def transport_code(error: BaseException, table: Table = NO_ENTRIES) -> str:
    """The transport code for an exception, by `table` and `PYTHON_TABLE` along its chain.

    Raises `UnclassifiedError` when no link has a code.
    """
    code = _code(error, error, table, set())
    if code is None:
        raise UnclassifiedError(
            error,
            "no link of its chain has a code (an errno, verify code or name "
            "resolution error the table does not know?)",
        )
    return code


def _code(error: BaseException, root: BaseException, table: Table, seen: set[int]) -> str | None:
    if id(error) in seen:
        return None
    seen.add(id(error))
    rule = _rule_for(type(error), root, table)
    code = rule(error) if callable(rule) else rule
    if code is not None:
        return code
    for inner in _wrapped(error):
        if (code := _code(inner, root, table, seen)) is not None:
            return code
    return None


def _rule_for(cls: type[BaseException], root: BaseException, table: Table) -> Rule:
    for klass in cls.__mro__:
        if klass in table:
            return table[klass]
        if klass in PYTHON_TABLE:
            return PYTHON_TABLE[klass]
    raise UnclassifiedError(
        root, f"{cls.__module__}.{cls.__qualname__} is in neither the client's table nor PYTHON_TABLE"
    )


def _wrapped(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return list(error.exceptions)
    inner = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return [inner] if inner is not None else []


def links(error: BaseException) -> Iterator[BaseException]:
    """Every link reachable from `error` (causes, contexts, group members), outermost first."""
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


def describe_chain(error: BaseException, limit: int = 4, *, texts: Texts = NO_TEXTS) -> str:
    """`Type: text <- Type: text ...` for the first links of an exception's chain.

    A link whose text an earlier link already showed (aiohttp re-wraps its
    parser's errors with the same message) is shown by its type alone.
    `texts` gives, by class, a text shown instead of a link's own when that
    is not for a log (a client's exception that quotes the response).
    """
    parts: list[str] = []
    for link in list(links(error))[:limit]:
        text = " ".join(_text_of(link, texts).split())
        shown = text and not any(text in part for part in parts)
        parts.append(f"{type(link).__name__}: {text}" if shown else type(link).__name__)
    return " <- ".join(parts)


def _text_of(error: BaseException, texts: Texts) -> str:
    message = getattr(error, "message", None)
    if isinstance(message, str):
        return message
    for klass in type(error).__mro__:
        if klass in texts:
            return texts[klass]
    return str(error)
