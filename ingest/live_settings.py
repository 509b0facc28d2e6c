"""The read side of the changes made live to sources and destinations (docs/live-config.md).

The engine keeps them (`delivery.config.store`): one JSON *patch* per
source or destination, in ``<data_dir>/settings.sqlite3`` beside the
embedded queue, or in the `live_settings` table of a fleet's PostgreSQL
database. The table's name, its columns and the patches' form are defined
here, so that a reader that must not import the engine (the dashboard's
evidence packs, which keep every configured secret out) reads them too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

#: Stored patches by kind ("sources", "destinations"), then id, in the order they were first stored.
Patches = Mapping[str, Mapping[str, Mapping[str, Any]]]

SQLITE_FILE: Final = "settings.sqlite3"
SELECT_PATCHES: Final = "SELECT kind, id, patch FROM live_settings ORDER BY seq"


def patches_of(rows: list[tuple[str, str, str]]) -> Patches:
    """The patches of `SELECT_PATCHES`'s rows."""
    found: dict[str, dict[str, Mapping[str, Any]]] = {"sources": {}, "destinations": {}}
    for kind, entry_id, patch in rows:
        found.setdefault(kind, {})[entry_id] = json.loads(patch)
    return found


def read_patches(data_dir: Path, dsn: str | None = None) -> Patches:
    """Every stored patch, read only: from the fleet's database at `dsn`, else from `data_dir`.

    None stored yet (no file, no table) is no patch. Raises `OSError` when
    the store is there but cannot be read; its text never holds the DSN.
    """
    if dsn:
        return _from_postgres(dsn)
    path = data_dir / SQLITE_FILE
    if not path.exists():
        return patches_of([])
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            return patches_of(db.execute(SELECT_PATCHES).fetchall())
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return patches_of([])
        raise OSError(f"{path}: {exc}") from None


def _from_postgres(dsn: str) -> Patches:
    import psycopg
    import psycopg.errors

    try:
        with psycopg.connect(dsn, connect_timeout=10) as db:
            db.read_only = True
            return patches_of(db.execute(SELECT_PATCHES).fetchall())
    except psycopg.errors.UndefinedTable:
        return patches_of([])
    except psycopg.Error as exc:
        raise OSError(f"the live settings' database: {type(exc).__name__}") from None
