"""Redaction: what is kept of a response body or an error text never holds a secret.

`redact(text, secrets)` replaces a destination's configured secrets
(`secrets_of` its headers and URL) and anything shaped like a credential.
`keep` redacts, then cuts to a byte limit on a character boundary: in that
order, so a secret across the cut is still seen whole. The sender keeps
bodies and error texts this way, and the attempt record redacts them again
with the destination's configuration (`delivery.records`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from yarl import URL

#: What replaces a secret in kept text.
REDACTED: Final = "[REDACTED]"
#: Configured header values shorter than this are not treated as secrets:
#: redacting "1" or "v2" everywhere would destroy the body and hide nothing.
MIN_SECRET_LENGTH: Final = 4
#: Headers whose values are not credentials: redacting them would hide, say, the
#: `webhook-id` a receiver quotes when it refuses a duplicate (a Standard Webhooks
#: id and timestamp are public; the signature is redacted, harmlessly).
PUBLIC_HEADERS: Final = frozenset(
    {
        "accept",
        "accept-encoding",
        "content-encoding",
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
    }
)


def secrets_of(headers: Mapping[str, str], url: str = "") -> list[str]:
    """The values to redact for one destination: its header values and URL password.

    An `Authorization: Bearer x` value contributes both itself and `x`.
    """
    secrets = []
    for name, value in headers.items():
        if name.lower() in PUBLIC_HEADERS:
            continue
        secrets.append(value)
        scheme_and_credential = value.split(None, 1)
        if len(scheme_and_credential) == 2:
            secrets.append(scheme_and_credential[1])
    password = URL(url).password if url else None
    if password:
        secrets.append(password)
    return secrets


_TOKEN_CHARS = r"[A-Za-z0-9._~+/=-]"
_REDACTIONS: Final = (
    # "Bearer <token>": a credential of 8 characters or more with one besides lower-case
    # letters, or of 20 or more (so "Basic authentication failed" keeps its words).
    (
        re.compile(
            rf"\b((?i:Bearer|Basic|Token|Digest))(\s+)"
            rf"(?:(?=[a-z]*[A-Z0-9._~+/=-]){_TOKEN_CHARS}{{8,}}|{_TOKEN_CHARS}{{20,}})"
        ),
        rf"\1\2{REDACTED}",
    ),
    # Keys with a recognisable shape: sk_live_..., pk_test_..., whsec_..., GitHub,
    # Slack, AWS and Google keys, and JWTs.
    (
        re.compile(
            r"\b(?:[A-Za-z]{2,5}_(?:live|test|prod)_[A-Za-z0-9_]{4,}|whsec_[A-Za-z0-9+/=]{8,}"
            r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}"
            r"|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)"
        ),
        REDACTED,
    ),
    # Credentials in URLs: scheme://user:password@host
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), rf"\1{REDACTED}@"),
)
# api_key=..., "password": "...", token: ... (quoted values up to the closing quote).
_KEY_VALUE: Final = re.compile(
    r"""(?P<key>\b[\w-]*?(?:api[_-]?key|apikey|access[_-]?key|secret|token|password|passwd|pwd"""
    r"""|write[_-]?key|private[_-]?key|authorization|signature)["']?\s*[:=]\s*"""
    r"""(?:(?:Bearer|Basic|Token)\s+)?)"""
    r"""(?:(?P<quote>["'])(?P<quoted>(?:\\.|(?!(?P=quote)).)*)(?P=quote)"""
    r"""|(?!\[REDACTED\]|(?:Bearer|Basic|Token)\s)(?P<bare>[^\s"'&,;<>}\]]+))""",
    re.I,
)


def _redact_value(match: re.Match[str]) -> str:
    if match["quote"] and match["quoted"].endswith(REDACTED):
        return match[0]
    quote = match["quote"] or ""
    return f"{match['key']}{quote}{REDACTED}{quote}"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with secrets replaced by `[REDACTED]`.

    Replaces every occurrence of each given secret (values shorter than
    `MIN_SECRET_LENGTH` excepted), then anything shaped like a credential:
    `Bearer <token>`, well-known API key formats (`sk_live_...`), passwords
    in URLs and the values of `api_key=`, `"token": "..."` and the like.
    """
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return _KEY_VALUE.sub(_redact_value, text)


def keep(text: str, secrets: Iterable[str], limit: int) -> str:
    """`text` redacted, then cut to `limit` bytes of UTF-8 on a character boundary."""
    kept = redact(text, secrets).encode("utf-8")[:limit]
    return kept.decode("utf-8", errors="ignore")
