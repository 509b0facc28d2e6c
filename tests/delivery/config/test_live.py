"""Changes made live (`delivery.config.live`, `delivery.config.store`): held to the file's own check, laid
over the file's tables, stored with a version on both backends."""

from __future__ import annotations

import asyncio
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from delivery.config import ConfigError, parse_config
from delivery.config.live import Conflict, LiveConfig, NotFound, effective, new_patch
from delivery.config.store import PostgresSettings, SettingsStore, SqliteSettings

FILE: dict[str, Any] = {
    "engine": {"allow_private_targets": True},
    "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_web"}],
    "destinations": [
        {
            "id": "hook",
            "source": "web",
            "integration": "webhook",
            "url": "http://127.0.0.1:9/in",
            "headers": {"X-Team": "core"},
        }
    ],
}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("url", "ftp://x.example"),
        ("url", "http://user:pw@x.example"),
        ("integration", "crm-record"),
        ("max_batch_events", 5000),
        ("headers", {"Host": "x"}),
        ("signing_secret", "whsec_short"),
        ("rate_limit_burst", 5),
        ("urll", "http://x.example"),
    ],
)
def test_a_change_gets_the_message_the_file_would_get(key: str, value: Any) -> None:
    in_file = {**FILE, "destinations": [{**FILE["destinations"][0], key: value}]}
    with pytest.raises(ConfigError) as from_file:
        parse_config(in_file)
    config = parse_config(FILE)
    with pytest.raises(ConfigError) as live:
        new_patch(config, {}, "destinations", "hook", {key: value}, add=False)
    assert [p.replace("destinations[0]", "destinations[hook]") for p in from_file.value.problems] == list(
        live.value.problems
    )


def test_patches_are_laid_over_the_file_s_tables_and_null_unsets_a_key() -> None:
    config = parse_config(FILE)
    patches = {
        "destinations": {
            "hook": {"headers": None, "enabled": False},
            "new": {"id": "new", "source": "web", "integration": "webhook", "url": "http://127.0.0.1:9/n"},
        }
    }
    result = effective(config, patches)
    assert [(d.id, d.enabled, dict(d.headers)) for d in result.destinations] == [
        ("hook", False, {}),
        ("new", True, {}),
    ]
    assert result.destination("new") is not None and config.destination("new") is None
    assert result.engine == config.engine and result.tables is config.tables


def test_an_add_of_an_existing_id_and_an_update_of_an_unknown_one_are_refused() -> None:
    config = parse_config(FILE)
    with pytest.raises(Conflict):
        new_patch(config, {}, "destinations", "hook", {}, add=True)
    with pytest.raises(NotFound):
        new_patch(config, {}, "sources", "nope", {"workspace": "x"}, add=False)
    with pytest.raises(ConfigError, match="an id cannot be changed"):
        new_patch(config, {}, "sources", "web", {"id": "other"}, add=False)


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], SettingsStore]:
    """Opens the store, each time with a connection of its own (as two engines would)."""
    if request.param == "sqlite":
        return lambda: SqliteSettings(tmp_path)
    dsn: str = request.getfixturevalue("postgres_dsn")
    return lambda: PostgresSettings(dsn)


@pytest.fixture
def store(stores: Callable[[], SettingsStore]) -> SettingsStore:
    stores().close()  # migrating twice is harmless
    return stores()


def test_the_store_keeps_patches_and_counts_changes(store: SettingsStore) -> None:
    live = LiveConfig(parse_config(FILE), store)
    assert live.load().destinations == parse_config(FILE).destinations
    assert store.version() == 0
    live.change("destinations", "hook", {"enabled": False}, add=False)
    live.change("sources", "shop", {"workspace": "acme", "write_key": "wk_shop"}, add=True)
    with pytest.raises(ConfigError):  # refused: nothing stored, the version unchanged
        live.change("sources", "s3", {"workspace": "acme", "write_key": "wk_shop"}, add=True)
    snapshot = store.snapshot()
    assert snapshot.version == store.version() == 2
    assert snapshot.patches["destinations"] == {"hook": {"enabled": False, "id": "hook"}}
    assert list(snapshot.patches["sources"]) == ["shop"]
    store.close()


def test_changes_at_once_are_checked_one_after_the_other(stores: Callable[[], SettingsStore]) -> None:
    # Two sources with one write key, added at once through two connections: one is stored, one refused.
    lives = [LiveConfig(parse_config(FILE), stores()) for _ in range(2)]
    go = threading.Barrier(2)
    results: list[str] = []

    def add(live: LiveConfig, source_id: str) -> None:
        go.wait()
        try:
            live.change("sources", source_id, {"workspace": "acme", "write_key": "wk_same"}, add=True)
            results.append("stored")
        except ConfigError:
            results.append("refused")

    threads = [threading.Thread(target=add, args=(live, f"s{i}")) for i, live in enumerate(lives)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["refused", "stored"]
    for live in lives:
        live.store.close()


def test_the_sqlite_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    SqliteSettings(tmp_path).close()
    assert stat.S_IMODE((tmp_path / "settings.sqlite3").stat().st_mode) == 0o600


def test_stored_changes_the_file_no_longer_fits_are_refused_and_the_last_good_config_kept(
    tmp_path: Path,
) -> None:
    with_mobile = {
        **FILE,
        "sources": [*FILE["sources"], {"id": "mobile", "workspace": "acme", "write_key": "m"}],
    }
    writer = LiveConfig(parse_config(with_mobile), SqliteSettings(tmp_path))
    added = {"source": "mobile", "integration": "webhook", "url": "http://127.0.0.1:9/m"}
    writer.change("destinations", "app", added, add=True)
    # The file loses the source the stored destination names: the engine starts with the file alone.
    reader = LiveConfig(parse_config(FILE), SqliteSettings(tmp_path))
    with pytest.raises(ConfigError, match=r"destinations\[app\]\.source: unknown source 'mobile'"):
        reader.load()
    assert reader.current == parse_config(FILE)

    asyncio.run(reader.refresh())  # logged, and the last good config kept
    assert reader.current.destination("app") is None
    writer.store.close()
    reader.store.close()
