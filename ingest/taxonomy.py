"""The delivery taxonomy: what every attempt record says about its request.

The classes follow the seed study of a day of HTTP responses. Every attempt
lands on exactly one leaf of this tree::

    attempt
    ├── response received (status_code is set)
    │   ├── 2xx ................................ none         delivered
    │   ├── 3xx ................................ redirect     terminal (never followed)
    │   ├── 401, 403 ........................... auth         terminal
    │   ├── 400, 422 ........................... validation   terminal
    │   ├── 408 ................................ timeout      retryable
    │   ├── 429 ................................ rate_limit   retryable
    │   ├── 418, < 200, >= 600 ................. nonstandard  terminal ("WTF webhooks")
    │   ├── other 4xx .......................... client       terminal
    │   ├── 501, 505 ........................... server       terminal (the seed's 501)
    │   └── other 5xx .......................... server       retryable
    ├── no response (status_code is NULL)
    │   ├── client-side timeout (ETIMEDOUT, ...) timeout      retryable
    │   ├── ENOTFOUND, ECONNREFUSED, ECONNRESET,
    │   │   ECONNABORTED, EHOSTUNREACH, EAI_AGAIN network     retryable
    │   ├── an exception the table does not know
    │   │   (EUNCLASSIFIED) .................... network      retryable
    │   ├── an answer that is not HTTP
    │   │   (EBADRESPONSE) ..................... nonstandard  terminal
    │   ├── every address of the host refused by
    │   │   the target policy at connect time
    │   │   (private_target) ................... precheck     terminal
    │   └── CERT_HAS_EXPIRED, ... .............. tls          terminal
    └── no request made (attempt = 0)
        ├── failed a pre-send check ............ precheck     terminal
        └── destination disabled ............... disabled     terminal

The enum values are literal strings because Parquet files and users' SQL
depend on them; never change a value once written.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorClass(StrEnum):
    """Why an attempt did or did not deliver (column `error_class`)."""

    NONE = "none"
    AUTH = "auth"
    VALIDATION = "validation"
    CLIENT = "client"
    RATE_LIMIT = "rate_limit"
    SERVER = "server"
    TIMEOUT = "timeout"
    NETWORK = "network"
    TLS = "tls"
    NONSTANDARD = "nonstandard"
    REDIRECT = "redirect"
    PRECHECK = "precheck"
    DISABLED = "disabled"


class Outcome(StrEnum):
    """What happened to the job after this attempt (column `outcome`)."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    DROPPED = "dropped"
    SKIPPED = "skipped"


#: Outcomes that end a job: every job has exactly one record with one of these.
FINAL_OUTCOMES = frozenset({Outcome.DELIVERED, Outcome.FAILED, Outcome.DROPPED, Outcome.SKIPPED})


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one attempt."""

    error_class: ErrorClass
    """Taxonomy leaf, see the module docstring."""
    error_code: str
    """Most specific code: the status number as text, or a transport code."""
    retryable: bool
    """Whether another attempt may succeed without anyone changing anything."""


#: Transport failures without a response, keyed by the code users know (Node's names).
TRANSPORT_CODES: dict[str, tuple[ErrorClass, bool]] = {
    "ETIMEDOUT": (ErrorClass.TIMEOUT, True),
    "ESOCKETTIMEDOUT": (ErrorClass.TIMEOUT, True),
    "ECONNECTTIMEOUT": (ErrorClass.TIMEOUT, True),
    "ENOTFOUND": (ErrorClass.NETWORK, True),
    "EAI_AGAIN": (ErrorClass.NETWORK, True),
    "ECONNREFUSED": (ErrorClass.NETWORK, True),
    "ECONNRESET": (ErrorClass.NETWORK, True),
    "ECONNABORTED": (ErrorClass.NETWORK, True),
    "EHOSTUNREACH": (ErrorClass.NETWORK, True),
    "ENETUNREACH": (ErrorClass.NETWORK, True),
    "EPIPE": (ErrorClass.NETWORK, True),
    # The server closed before answering: it may have processed the request,
    # but it did not say so, and retrying is what every client does.
    "ESERVERDISCONNECT": (ErrorClass.NETWORK, True),
    # The server answered with bytes that are not an HTTP response (a status line
    # without a usable number, a broken header, a body in a corrupt encoding):
    # a "WTF webhook" whose status cannot be read. Node reports these as
    # HPE_* parse errors and Segment does not retry them; neither do we.
    "EBADRESPONSE": (ErrorClass.NONSTANDARD, False),
    # The target policy refused every address the host resolved to when the
    # client connected (delivery.transport.targets): nothing reached the host.
    # The pre-send check's class and code, so one code counts every refused
    # target, found before the request or at its connect; someone has to
    # change the destination or the policy, so it is not retried.
    "private_target": (ErrorClass.PRECHECK, False),
    # An exception the classifier's table does not know yet (the engine logs it
    # as an error and keeps its text in error_message). Retried: it says nothing
    # about the destination, and it stays visible under its own code rather
    # than being passed off as a known one.
    "EUNCLASSIFIED": (ErrorClass.NETWORK, True),
    "CERT_HAS_EXPIRED": (ErrorClass.TLS, False),
    "CERT_NOT_YET_VALID": (ErrorClass.TLS, False),
    "DEPTH_ZERO_SELF_SIGNED_CERT": (ErrorClass.TLS, False),
    "SELF_SIGNED_CERT_IN_CHAIN": (ErrorClass.TLS, False),
    "UNABLE_TO_GET_ISSUER_CERT_LOCALLY": (ErrorClass.TLS, False),
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE": (ErrorClass.TLS, False),
    "ERR_TLS_CERT_ALTNAME_INVALID": (ErrorClass.TLS, False),
    "EPROTO": (ErrorClass.TLS, False),
}

_TERMINAL_5XX = frozenset({501, 505})


def classify_status(status_code: int) -> Classification:
    """Classify a final HTTP status, nonstandard numbers included."""
    code = str(status_code)
    if 200 <= status_code < 300:
        return Classification(ErrorClass.NONE, code, False)
    if status_code < 200 or status_code >= 600 or status_code == 418:
        return Classification(ErrorClass.NONSTANDARD, code, False)
    if status_code < 400:
        return Classification(ErrorClass.REDIRECT, code, False)
    if status_code in (401, 403):
        return Classification(ErrorClass.AUTH, code, False)
    if status_code in (400, 422):
        return Classification(ErrorClass.VALIDATION, code, False)
    if status_code == 408:
        return Classification(ErrorClass.TIMEOUT, code, True)
    if status_code == 429:
        return Classification(ErrorClass.RATE_LIMIT, code, True)
    if status_code < 500:
        return Classification(ErrorClass.CLIENT, code, False)
    return Classification(ErrorClass.SERVER, code, status_code not in _TERMINAL_5XX)


def classify_transport(error_code: str) -> Classification:
    """Classify a failure without a response by its transport code.

    An unknown code raises instead of being flattened into a guess: the
    mapping table must learn it.
    """
    try:
        error_class, retryable = TRANSPORT_CODES[error_code]
    except KeyError:
        raise ValueError(f"unknown transport error code {error_code!r}") from None
    return Classification(error_class, error_code, retryable)
