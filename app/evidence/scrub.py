"""What a partner's evidence pack must never hold, and the scrubbing that keeps it out (pure).

The queries already hide tenants from a partner's scope (no workspace or
destination ids; bodies through the `redact_body` macro). The pack adds a
second net over every text it writes: each configured secret (write keys,
header values, credentials, signing secrets, tokens, passwords, URLs and
their path segments and query values), its base64 form (an echoed
`Authorization: Basic` header), and every workspace, source and destination
id, is replaced by `REDACTED`. The sources and destinations changed live
(`ingest.live_settings`) count as configured: their secrets and ids are
scrubbed as the file's are.
"""

from __future__ import annotations

import base64
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ingest.live_settings import Patches, read_patches

REDACTED = "<redacted>"
#: Shorter values are not scrubbed: a two-letter id would shred every word it occurs in.
MIN_LENGTH = 3
#: Keys whose string values are secrets wherever they are in the config.
SECRET_KEYS = frozenset(
    {
        "admin_token",
        "credential",
        "dsn",
        "password",
        "previous_signing_secret",
        "secret",
        "signing_secret",
        "token",
        "webhook_url",
        "write_key",
    }
)
#: Tables each of whose string values names a customer or holds one of their secrets, but these keys.
TENANT_TABLES = frozenset({"sources", "destinations"})
PUBLIC_KEYS = frozenset({"integration", "auth", "previous_signing_secret_expires_at"})


def config_secrets(path: str | os.PathLike[str]) -> set[str]:
    """Every secret and customer name in the TOML config at `path`.

    For a `*_env` key, the value of the variable it names.
    """
    with Path(path).open("rb") as file:
        document = tomllib.load(file)
    found: set[str] = set()
    _walk(document, found, tenant=False)
    return {value for value in found if value}


def live_secrets(patches: Patches) -> set[str]:
    """Every secret and customer name in the sources and destinations changed live, ids included."""
    found: set[str] = set()
    for kind, entries in patches.items():
        _walk({kind: list(entries.values())}, found, tenant=False)
        found.update(form for entry_id in entries for form in secret_forms(entry_id))
    return {value for value in found if value}


def _walk(node: Any, found: set[str], *, tenant: bool, key: str = "") -> None:
    if isinstance(node, Mapping):
        for name, value in node.items():
            inside = tenant or name in TENANT_TABLES or name == "headers"
            _walk(value, found, tenant=inside, key=name)
    elif isinstance(node, list):
        for item in node:
            _walk(item, found, tenant=tenant, key=key)
    elif isinstance(node, str):
        if key.endswith("_env"):
            found.add(os.environ.get(node, ""))
        elif key in SECRET_KEYS or (tenant and key not in PUBLIC_KEYS) or key.endswith("url"):
            found.update(secret_forms(node))


def secret_forms(value: str) -> set[str]:
    """`value`, its base64, and for a URL the parts of it that may be a token on their own."""
    forms = {value, base64.b64encode(value.encode()).decode()}
    if "://" in value:
        parts = urlsplit(value)
        forms.update({parts.password or "", parts.username or "", parts.path + _query(parts.query)})
        forms.update(segment for segment in parts.path.split("/") if len(segment) >= 8)
        forms.update(item for _, item in parse_qsl(parts.query) if len(item) >= 8)
        forms.discard("/")
    return {form for form in forms if len(form) >= MIN_LENGTH}


def _query(query: str) -> str:
    return f"?{query}" if query else ""


class Scrubber:
    """Replaces every one of a set of values in a text by `REDACTED`, longest values first."""

    def __init__(self, values: Iterable[str], *, keep: Iterable[str] = ()) -> None:
        kept = set(keep)
        needles = sorted({v for v in values if len(v) >= MIN_LENGTH and v not in kept}, key=len, reverse=True)
        self.values: tuple[str, ...] = tuple(needles)
        self._pattern = re.compile("|".join(map(re.escape, needles))) if needles else None

    def __call__(self, text: str) -> str:
        """`text` with every value replaced."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)


#: Set by `deliverydash dashboard --config F`: the config whose secrets the dashboard's packs keep out.
CONFIG_ENV = "DELIVERYDASH_CONFIG"
#: Secrets `deliverydash dashboard` hands the app through the environment (app.replay, app.data, app.access).
SECRET_ENVS = ("DELIVERYDASH_SECRET", "DELIVERYDASH_ADMIN_TOKEN", "DELIVERYDASH_QUEUE_DSN")


def dashboard_secrets() -> set[str]:
    """What the dashboard's packs keep out: the secrets of `$DELIVERYDASH_CONFIG`, of the sources and
    destinations changed live beside its queue, and of its environment."""
    found = set()
    if os.environ.get(CONFIG_ENV):
        found = config_secrets(os.environ[CONFIG_ENV])
        data_dir = Path(os.environ.get("DELIVERYDASH_DATA_DIR", "data"))
        found |= live_secrets(read_patches(data_dir, os.environ.get("DELIVERYDASH_QUEUE_DSN")))
    for name in SECRET_ENVS:
        found.update(secret_forms(os.environ.get(name, "")))
    return found
