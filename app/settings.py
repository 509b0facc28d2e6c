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
    """The `[dashboard]` table of the config at `path`; defaults when `path` is None.

    Problems are worded as the engine words them (`delivery.config`), each
    starting with the file and the key: the dashboard may not import the
    engine, but one file configures both.
    """
    if path is None:
        return DashboardSettings()
    table = _dashboard_table(Path(path))
    unknown = [key for key in table if key not in KNOWN_KEYS]
    if unknown:
        known = ", ".join(repr(key) for key in KNOWN_KEYS)
        raise SettingsError(f"{path}: dashboard.{unknown[0]}: unknown key (known: {known})")
    secret = table.get("secret")
    if secret is not None and not isinstance(secret, str):
        raise SettingsError(f"{path}: dashboard.secret: must be a string, got {_kind(secret)}")
    return DashboardSettings(secret=secret or None)


def _dashboard_table(path: Path) -> dict[str, object]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SettingsError(f"{path}: file not found") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    table = document.get("dashboard", {})
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: dashboard: must be a table ([dashboard]), got {_kind(table)}")
    return table


def _kind(value: object) -> str:
    """The TOML kind of a value, with its article, for messages that must not quote it (a secret)."""
    kinds = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
    )
    return next((name for cls, name in kinds if isinstance(value, cls)), "a table or a date")
