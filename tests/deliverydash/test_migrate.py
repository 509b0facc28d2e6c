"""`deliverydash migrate`: the queue's schema brought up to date ahead of a roll-out, on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from delivery.queue import postgres, sqlite
from tests.delivery.engine_process import free_port


def migrate(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deliverydash", "migrate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def write_config(tmp_path: Path, queue: str = "") -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(
        f'[engine]\ndata_dir = "{tmp_path / "data"}"\n'
        f'admin_token = "tok-0123456789abcdefghijklmnopqrst"\n{queue}'
    )
    return path


def test_migrate_brings_a_new_postgres_database_up_to_date_then_finds_nothing_to_do(
    tmp_path: Path, postgres_dsn: str
) -> None:
    config = write_config(tmp_path, '[queue]\nbackend = "postgres"\n')
    # The password comes from the environment and never shows (the test server ignores it).
    dsn = postgres_dsn.replace("@", ":pw_SECRET_migrate@", 1)
    first = migrate(config, DELIVERYDASH_QUEUE_DSN=dsn)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith(f"schema version 0 -> {len(postgres.MIGRATIONS)}")
    assert "***" in first.stdout and "SECRET" not in first.stdout + first.stderr
    again = migrate(config, DELIVERYDASH_QUEUE_DSN=dsn)
    assert again.returncode == 0, again.stderr
    assert f"is up to date (schema version {len(postgres.MIGRATIONS)})" in again.stdout
    # Engines that do not migrate (a role without CREATE rights) now find it ready.
    postgres.PostgresQueue(postgres_dsn, migrate=False).close()


def test_migrate_names_an_unreachable_database_without_its_password(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[queue]\nbackend = "postgres"\n')
    dsn = f"postgresql://dd:pw_SECRET_migrate@127.0.0.1:{free_port()}/deliverydash?connect_timeout=2"
    done = migrate(config, DELIVERYDASH_QUEUE_DSN=dsn)
    assert done.returncode == 2
    assert done.stderr.startswith("deliverydash migrate: the queue was not migrated: ")
    assert "127.0.0.1" in done.stderr and "SECRET" not in done.stderr and "Traceback" not in done.stderr


def test_migrate_creates_or_upgrades_the_embedded_queue(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = migrate(config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"schema version 0 -> {len(sqlite.MIGRATIONS)}")
    assert sqlite.schema_version(tmp_path / "data") == len(sqlite.MIGRATIONS)
    again = migrate(config)
    assert "is up to date" in again.stdout


def test_migrate_refuses_an_embedded_queue_an_engine_holds(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    held = sqlite.SqliteQueue(tmp_path / "data")
    try:
        done = migrate(config)
    finally:
        held.close()
    assert done.returncode == 2
    assert "the queue was not migrated" in done.stderr and "Traceback" not in done.stderr
