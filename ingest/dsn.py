"""A PostgreSQL connection string (DSN), shown without its password.

The engine's queue (`delivery.queue.postgres`, which re-exports `redact_dsn`)
and the notifications' reader (`ingest.notifications`) both connect with a
DSN that may hold a password, and both must name the server in logs, error
messages and pages without it:

- `redact_dsn(dsn)`: the DSN with ``***`` for every password;
- `describe(dsn)`: ``host H port P database D user U``, libpq's defaults
  filled in;
- `scrub(message, dsn)`: a driver's message with the DSN and every password
  in it replaced (libpq quotes a malformed DSN whole, password included).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

_URL = re.compile(r"^(?P<scheme>postgres(?:ql)?://)(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)
_URL_PARAMETER = re.compile(r"(?P<key>[?&](?:ssl)?password=)(?P<value>[^&#]*)", re.IGNORECASE)
_PAIR_PASSWORD = re.compile(
    r"(?P<key>(?<![\w.])(?:ssl)?password\s*=\s*)(?P<value>'(?:\\.|[^'\\])*(?:'|$)|(?:\\.|[^\s\\])*)",
    re.IGNORECASE | re.DOTALL,
)


def _secret_spans(dsn: str) -> list[tuple[int, int]]:
    """Where the passwords are in `dsn` (URL or key=value form), as (start, end) offsets.

    When in doubt it takes more: in a URL with ``user:`` before its first
    ``@``, everything from that ``:`` to the last ``@`` (a password with an
    unescaped ``@`` or ``/``, which libpq would misread and then quote in
    its error, is still hidden whole).
    """
    spans: list[tuple[int, int]] = []
    if url := _URL.match(dsn):
        start = url.start("rest")
        first_at, last_at = dsn.find("@", start), dsn.rfind("@", start)
        colon = dsn.find(":", start, first_at) if first_at >= 0 else -1
        if colon >= 0:
            spans.append((colon + 1, last_at))
        spans += [m.span("value") for m in _URL_PARAMETER.finditer(dsn, start)]
    else:
        spans += [m.span("value") for m in _PAIR_PASSWORD.finditer(dsn)]
    return [(start, end) for start, end in spans if end > start]


def redact_dsn(dsn: str) -> str:
    """`dsn` with every password (``password``, ``sslpassword``, a URL's ``user:password@``) as ``***``.

    For logs, error messages and status pages. Works on the URL form
    (``postgresql://user:secret@host/db?...``) and the key=value form
    (``host=... password='se cret'``), malformed ones included.
    """
    redacted, last = [], 0
    for start, end in sorted(_secret_spans(dsn)):
        redacted += [dsn[last:start], "***"]
        last = end
    return "".join([*redacted, dsn[last:]])


def _passwords(dsn: str) -> set[str]:
    """The passwords in `dsn` as written, unquoted and percent-decoded: the texts never to show."""
    found: set[str] = set()
    for start, end in _secret_spans(dsn):
        text = dsn[start:end]
        found |= {text, unquote(text), text.strip("'").replace("\\'", "'").replace("\\\\", "\\")}
    return {text for text in found if text}


def scrub(message: str, dsn: str) -> str:
    """`message` with the DSN and its passwords replaced (libpq quotes a malformed DSN whole)."""
    message = message.replace(dsn, redact_dsn(dsn))
    for password in sorted(_passwords(dsn), key=len, reverse=True):
        message = message.replace(password, "***")
    return message.strip()


def describe(dsn: str) -> str:
    """``host H port P database D user U`` of `dsn`, libpq's defaults filled in; never the password."""
    try:
        given = conninfo_to_dict(dsn)
    except psycopg.Error:
        return redact_dsn(dsn)
    user = given.get("user") or os.environ.get("PGUSER") or _os_user()
    parts = {
        "host": given.get("host") or given.get("hostaddr") or os.environ.get("PGHOST") or "(local socket)",
        "port": given.get("port") or os.environ.get("PGPORT") or "5432",
        "database": given.get("dbname") or os.environ.get("PGDATABASE") or user,
        "user": user,
    }
    return " ".join(f"{key} {value}" for key, value in parts.items())


def _os_user() -> str:
    """libpq's default user: this process's."""
    with contextlib.suppress(OSError, KeyError):
        return getpass.getuser()
    return "(unknown)"


def connect_timeout(dsn: str, seconds: float) -> Any:
    """The DSN's ``connect_timeout``, else `seconds` (libpq counts whole seconds, at least 2)."""
    return conninfo_to_dict(dsn).get("connect_timeout", max(2, round(seconds)))
