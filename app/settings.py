"""The dashboard's settings from the `[dashboard]` table of the TOML config.

    [dashboard]
    secret = "…"     # signs dashboard links; DELIVERYDASH_SECRET overrides it

Only this table is read, so the dashboard and `deliverydash link` work with
the engine's config file or a file of their own.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

KNOWN_KEYS = ("secret",)


class SettingsError(Exception):
    """The config cannot be used; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    """What `[dashboard]` says."""

    secret: str | None = None
    """Key that signs dashboard links; None leaves the dashboard open (local runs)."""


def dashboard_settings(path: str | os.PathLike[str] | None) -> DashboardSettings:
    """The `[dashboard]` table of the config at `path`; defaults when `path` is None."""
    if path is None:
        return DashboardSettings()
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read the config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    table = raw.get("dashboard", {})
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: [dashboard] must be a table")
    unknown = sorted(set(table) - set(KNOWN_KEYS))
    if unknown:
        raise SettingsError(f"{path}: dashboard.{unknown[0]}: unknown key (known: {', '.join(KNOWN_KEYS)})")
    secret = table.get("secret")
    if secret is not None and not isinstance(secret, str):
        raise SettingsError(f"{path}: dashboard.secret must be a string")
    return DashboardSettings(secret=secret or None)
