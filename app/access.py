"""Who is looking at the dashboard: signed, expiring links and the viewer they grant.

A link carries a token ``v1.<payload>.<signature>``: the payload is base64url
JSON ``{"scope": ..., "value": ..., "exp": <unix seconds>}``, the signature
HMAC-SHA256 over ``v1.<payload>`` with the dashboard secret. Pure functions:
no Streamlit here, so `deliverydash link` and the app share them and tests
call them directly.

    viewer kind   sees
    -----------   ---------------------------------------------------------
    local         everything; only when no secret is configured
    engineer      everything, SQL console included
    workspace     one customer's rows
    partner       one integration's aggregates, bodies redacted, no tenant ids
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from queries.scope import Scope

VERSION: Final = "v1"
SECRET_ENV: Final = "DELIVERYDASH_SECRET"
#: Shorter secrets make forging a signature by brute force thinkable.
MIN_SECRET_LENGTH: Final = 16
_TTL = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ViewerKind(StrEnum):
    """What a link grants; the values are what tokens carry."""

    LOCAL = "local"
    ENGINEER = "engineer"
    WORKSPACE = "workspace"
    PARTNER = "partner"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person behind a request, as far as the dashboard knows."""

    kind: ViewerKind
    value: str | None = None
    """The workspace id or the integration; None for local and engineer."""
    expires_at: int | None = None
    """Unix seconds after which the link stops working; None for a local run."""

    @property
    def scope(self) -> Scope:
        """The rows this viewer may see."""
        if self.kind is ViewerKind.WORKSPACE:
            return Scope.workspace(self.value or "")
        if self.kind is ViewerKind.PARTNER:
            return Scope.integration(self.value or "")
        return Scope.all()

    @property
    def sees_everything(self) -> bool:
        """Operators: the local run and engineers, who may pick any scope."""
        return self.kind in (ViewerKind.LOCAL, ViewerKind.ENGINEER)

    @property
    def label(self) -> str:
        """How the viewer is named on screen."""
        return {
            ViewerKind.LOCAL: "local run (no access control)",
            ViewerKind.ENGINEER: "engineer",
            ViewerKind.WORKSPACE: f"workspace {self.value}",
            ViewerKind.PARTNER: f"partner {self.value}",
        }[self.kind]


LOCAL_VIEWER: Final = Viewer(ViewerKind.LOCAL)


class AccessDenied(Exception):
    """A link that grants nothing; the message is shown to the person holding it."""


def resolve_secret(configured: str | None = None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The dashboard secret: the environment wins over the config; None when neither sets one.

    Raises `ValueError` for a secret too short to be safe.
    """
    secret = environ.get(SECRET_ENV) or configured or None
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"the dashboard secret must be at least {MIN_SECRET_LENGTH} characters long")
    return secret


def parse_ttl(text: str) -> int:
    """Seconds in a duration like `7d`, `12h`, `30m`, `90s` or `2w`; raises `ValueError`."""
    match = _TTL.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"not a duration like 7d, 12h or 30m: {text!r}")
    return int(match.group(1)) * _TTL_UNITS[match.group(2)]


def sign(viewer: Viewer, secret: str) -> str:
    """The token granting `viewer` until its `expires_at`."""
    if viewer.kind is ViewerKind.LOCAL or viewer.expires_at is None:
        raise ValueError("only engineer, workspace and partner viewers with an expiry can be signed")
    if viewer.kind in (ViewerKind.WORKSPACE, ViewerKind.PARTNER) and not viewer.value:
        raise ValueError(f"a {viewer.kind.value} link needs a name")
    claims = {"scope": viewer.kind.value, "value": viewer.value, "exp": viewer.expires_at}
    payload = _b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{VERSION}.{payload}.{_signature(VERSION + '.' + payload, secret)}"


def verify(token: str | None, secret: str, *, now: float | None = None) -> Viewer:
    """The viewer a token grants; raises `AccessDenied` saying what is wrong with it."""
    if not token:
        raise AccessDenied("This dashboard needs a link with an access token. Ask for a link.")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise AccessDenied("This link's access token is malformed. Ask for a new link.")
    version, payload, signature = parts
    if not hmac.compare_digest(signature, _signature(f"{version}.{payload}", secret)):
        raise AccessDenied("This link's access token is not valid: it was changed or not issued here.")
    # The signature matched, so the payload is ours: decoding errors here mean a bug, not an attack.
    try:
        claims = json.loads(_b64decode(payload))
        viewer = Viewer(ViewerKind(claims["scope"]), claims["value"], int(claims["exp"]))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise AccessDenied("This link's access token is malformed. Ask for a new link.") from exc
    if (time.time() if now is None else now) >= viewer.expires_at:  # type: ignore[operator]
        expired = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(viewer.expires_at))
        raise AccessDenied(f"This link expired on {expired}. Ask for a new link.")
    return viewer


def _signature(message: str, secret: str) -> str:
    return _b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest())


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
