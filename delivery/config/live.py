"""Sources and destinations changed while the engines run: patches over the file's tables.

The design is docs/live-config.md. In short: a change is a patch (keys set
over the file's table of that id; `None` removes a key), kept in a
`delivery.config.store`; the effective config is the file's with every patch
laid over its tables and the result checked whole by
`delivery.config.parse.read_entries`, the check of the file itself, so a
change is refused with the messages the file would get. `LiveConfig` is what
the admin API and the commands share: list, get, add, update; and each
engine's loop that reads the store's version every `POLL_S` seconds and
hands each new config to the engine (`on_change`).

Nothing here shows a secret: `view` gives whether each is set, and a URL's
origin only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from delivery.config.model import Config, ConfigError, Destination, Source
from delivery.config.parse import read_entries
from delivery.config.store import Kind, Patches, SettingsError, SettingsStore, Snapshot

log = logging.getLogger(__name__)

#: How often an engine reads the store's version.
POLL_S: Final = 1.0
KINDS: Final[tuple[Kind, ...]] = ("sources", "destinations")
#: Where the problems of a change are said to come from.
ORIGIN: Final = "live configuration"


class NotFound(Exception):
    """No source or destination has this id."""


class Conflict(Exception):
    """An add of an id that exists already."""


def where(kind: Kind, entry_id: str) -> str:
    """How problems name a table: `destinations[acme-hook]`."""
    return f"{kind}[{entry_id}]"


def merged(table: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`table` with `patch`'s keys set over it; a key patched to None is removed."""
    result = dict(table)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def tables(config: Config, patches: Patches, kind: Kind) -> list[tuple[str, dict[str, Any]]]:
    """The effective tables of `kind`: the file's in file order, then those added live, each with `where`."""
    stored = dict(patches.get(kind, {}))
    found: list[tuple[str, dict[str, Any]]] = []
    for index, table in enumerate(config.tables.get(kind, ())):
        entry_id = table.get("id")
        patch = stored.pop(entry_id, None) if isinstance(entry_id, str) else None
        if patch is None:
            found.append((f"{kind}[{index}]", dict(table)))
        else:
            found.append((where(kind, str(entry_id)), merged(table, patch)))
    found += [(where(kind, entry_id), merged({}, patch)) for entry_id, patch in stored.items()]
    return found


def effective(config: Config, patches: Patches) -> Config:
    """`config` (the file's) with `patches` laid over its sources and destinations, checked whole.

    Raises `ConfigError` with every problem, each naming its table.
    """
    problems: list[str] = []
    sources, destinations = read_entries(
        config.engine, tables(config, patches, "sources"), tables(config, patches, "destinations"), problems
    )
    if problems:
        raise ConfigError(ORIGIN, problems)
    return dataclasses.replace(
        config,
        sources=tuple(source for _, source in sources),
        destinations=tuple(destination for _, destination in destinations),
    )


def _ids(config: Config, patches: Patches, kind: Kind) -> set[str]:
    file_ids = {table.get("id") for table in config.tables.get(kind, ())}
    return {entry_id for entry_id in file_ids if isinstance(entry_id, str)} | set(patches.get(kind, {}))


def _json_value(value: Any) -> Any:
    """A TOML value as JSON can hold it: date-times as RFC 3339 text (the file's check reads both)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    return value


def new_patch(
    config: Config, patches: Patches, kind: Kind, entry_id: str, changes: Mapping[str, Any], *, add: bool
) -> dict[str, Any]:
    """The patch to store for `changes` to (kind, id), checked: the effective config it makes is valid.

    `add`: the id must not exist yet (`Conflict`); otherwise it must (`NotFound`). Raises
    `ConfigError` naming every problem the change would make.
    """
    exists = entry_id in _ids(config, patches, kind)
    if add and exists:
        raise Conflict(f"{kind[:-1]} {entry_id!r} exists already; change it with update")
    if not add and not exists:
        raise NotFound(f"no {kind[:-1]} {entry_id!r} is configured")
    if "id" in changes and changes["id"] != entry_id:
        raise ConfigError(ORIGIN, [f"{where(kind, entry_id)}.id: an id cannot be changed"])
    patch = merged(patches.get(kind, {}).get(entry_id, {}), {})
    patch.update({key: _json_value(value) for key, value in changes.items()})
    patch["id"] = entry_id
    effective(config, {**patches, kind: {**patches.get(kind, {}), entry_id: patch}})
    return patch


# -- what may be shown -----------------------------------------------------------------------------


def _set(secret: object) -> str | None:
    return "set" if secret is not None else None


def destination_view(destination: Destination, managed: str) -> dict[str, Any]:
    """A destination as the admin API and the command show it: no secret, the URL's origin only."""
    return {
        "id": destination.id,
        "source": destination.source,
        "integration": destination.integration,
        "url": destination.origin,
        "enabled": destination.enabled,
        "headers": {name: "set" for name in destination.headers},
        "credential": _set(destination.credential),
        "signing_secret": _set(destination.signing_secret),
        "previous_signing_secret": _set(destination.previous_signing_secret),
        "previous_signing_secret_expires_at": (
            destination.previous_signing_secret_expires_at.isoformat()
            if destination.previous_signing_secret_expires_at
            else None
        ),
        "max_batch_events": destination.max_batch_events,
        "max_batch_bytes": destination.max_batch_bytes,
        "rate_limit_per_s": destination.rate_limit_per_s,
        "rate_limit_burst": destination.rate_limit_burst,
        "managed": managed,
    }


def source_view(source: Source, managed: str) -> dict[str, Any]:
    """A source as the admin API and the command show it: whether its write key is set, not the key."""
    return {
        "id": source.id,
        "workspace": source.workspace,
        "write_key": "set",
        "allowed_origins": list(source.allowed_origins),
        "enabled": source.enabled,
        "managed": managed,
    }


def _managed(config: Config, patches: Patches, kind: Kind, entry_id: str) -> str:
    """Where an entry comes from: `file`, `file+live` (the file's, changed live), or `live`."""
    in_file = any(table.get("id") == entry_id for table in config.tables.get(kind, ()))
    changed = entry_id in patches.get(kind, {})
    return "file+live" if in_file and changed else "file" if in_file else "live"


def views(base: Config, current: Config, patches: Patches, kind: Kind) -> list[dict[str, Any]]:
    """Every entry of `kind` of the effective config `current`, as shown."""
    if kind == "sources":
        return [source_view(s, _managed(base, patches, kind, s.id)) for s in current.sources]
    return [destination_view(d, _managed(base, patches, kind, d.id)) for d in current.destinations]


# -- the shared object -----------------------------------------------------------------------------

#: Hears each new effective config, on the event loop.
OnChange = Callable[[Config], Awaitable[None] | None]


class LiveConfig:
    """The file's config, the store, and the effective config built from both; see the module docstring.

    The blocking methods (`load`, `change`) are for the commands and for threads; the engine calls
    `write`, `refresh` and `knows` from its event loop and runs `run` as a task.
    """

    def __init__(self, base: Config, store: SettingsStore, on_change: OnChange | None = None) -> None:
        """`base`: the config as the file gives it (the tables changes are laid over)."""
        self.base = base
        self.store = store
        self.on_change = on_change
        self.current = base
        """The effective config: the last one built without a problem."""
        self.patches: Patches = {}
        self.version = -1
        self._refreshing = asyncio.Lock()

    def load(self) -> Config:
        """Read the store and build the effective config (blocking). Raises `ConfigError`, `SettingsError`."""
        snapshot = self.store.snapshot()
        self.current = effective(self.base, snapshot.patches)
        self.patches, self.version = snapshot.patches, snapshot.version
        return self.current

    def views(self, kind: Kind) -> list[dict[str, Any]]:
        """Every effective entry of `kind`, as shown (no secret)."""
        return views(self.base, self.current, self.patches, kind)

    def view(self, kind: Kind, entry_id: str) -> dict[str, Any]:
        """One effective entry, as shown; `NotFound` when there is none."""
        for shown in self.views(kind):
            if shown["id"] == entry_id:
                return shown
        raise NotFound(f"no {kind[:-1]} {entry_id!r} is configured")

    def change(self, kind: Kind, entry_id: str, changes: Mapping[str, Any], *, add: bool) -> Config:
        """Check and store a change (blocking); the effective config after it.

        Raises `Conflict`, `NotFound`, `ConfigError` (nothing stored), or `SettingsError`.
        """

        def check(patches: Patches) -> Mapping[str, Any]:
            return new_patch(self.base, patches, kind, entry_id, changes, add=add)

        snapshot = self.store.change(kind, entry_id, check, time.time())
        self._take(snapshot)
        log.info(
            "%s %r %s live: %s",
            kind[:-1],
            entry_id,
            "added" if add else "changed",
            ", ".join(sorted(changes)),
        )
        return self.current

    def _take(self, snapshot: Snapshot) -> bool:
        """Build the config of `snapshot`; whether it is new. A problem is logged and the last kept."""
        if snapshot.version == self.version:
            return False
        try:
            config = effective(self.base, snapshot.patches)
        except ConfigError as exc:
            log.error("stored changes do not fit the config file; keeping the last good one: %s", exc)
            self.version = snapshot.version
            return False
        self.current, self.patches, self.version = config, snapshot.patches, snapshot.version
        return True

    async def apply(self) -> None:
        """Hand the current config to `on_change` (the engine swaps it in)."""
        if self.on_change is not None:
            result = self.on_change(self.current)
            if result is not None:
                await result

    async def refresh(self, *, force: bool = False) -> None:
        """Read the store if its version moved (`force`: read it anyway) and apply a new config."""
        async with self._refreshing:
            if not force and await asyncio.to_thread(self.store.version) == self.version:
                return
            if self._take(await asyncio.to_thread(self.store.snapshot)):
                await self.apply()

    async def knows(self, destination_id: str) -> bool:
        """Whether the store, read again now, has a destination the config did not know."""
        try:
            await self.refresh(force=True)
        except SettingsError:
            return False
        return self.current.destination(destination_id) is not None

    async def write(self, kind: Kind, entry_id: str, changes: Mapping[str, Any], *, add: bool) -> None:
        """`change` from the event loop, then the new config applied here before returning."""
        async with self._refreshing:
            before = self.version
            await asyncio.to_thread(self.change, kind, entry_id, changes, add=add)
            if self.version != before:
                await self.apply()

    async def run(self, stop: asyncio.Event) -> None:
        """Read the store's version every `POLL_S` until `stop`; a failed read is logged once per outage."""
        failing = False
        while not stop.is_set():
            try:
                await self.refresh()
                failing = False
            except SettingsError as exc:
                if not failing:
                    log.warning("could not read the live configuration (%s); trying again", exc)
                failing = True
            except Exception:
                log.exception("taking up the live configuration failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
