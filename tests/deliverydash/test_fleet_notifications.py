"""`deliverydash notifications` and `deliverydash dashboard` when the config names a PostgreSQL queue:
the fleet's notifications are read from that database, and its password shows nowhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from delivery.alerts.auth_watch import Phase, WatchState
from delivery.alerts.postgres_store import PostgresNotificationStore
from delivery.alerts.store import NewNotification
from delivery.queue.postgres import migrate
from ingest.ids import new_id
from tests.delivery.engine_process import free_port

PASSWORD = "pw_SECRET_fleet_cli"
DSN_ENV = "DELIVERYDASH_QUEUE_DSN"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deliverydash", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != DSN_ENV}, "DELIVERYDASH_DATA_DIR": "", **env},
        check=False,
    )


def write_config(tmp_path: Path, queue: str) -> Path:
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[engine]\ndata_dir = "{tmp_path / "local"}"\n'
        f'admin_token = "tok-0123456789abcdefghijklmnopqrst"\n{queue}',
        encoding="utf-8",
    )
    return config


@pytest.fixture
def dsn(postgres_dsn: str) -> str:
    """A migrated database holding an open and a resolved notification; its DSN with a password."""
    migrate(postgres_dsn)
    with_password = postgres_dsn.replace("@", f":{PASSWORD}@", 1)
    store = PostgresNotificationStore(with_password)
    now = time.time()

    def note(kind: str, destination: str, resolves: bool = False) -> NewNotification:
        return NewNotification(
            new_id(), kind, "acme", destination, "webhook", now, f"{destination}: {kind}", now - 60, 3, 401,
            '{"error": "token_expired"}', resolves,
        )  # fmt: skip

    store.record("crm", WatchState(Phase.DISABLED, 3, now - 60, now, now + 300), [note("disabled", "crm")])
    store.record("old", WatchState(), [note("enabled", "old", resolves=True)])
    store.close()
    return with_password


def test_notifications_reads_the_fleet_s_database_named_by_the_config(dsn: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, '[queue]\nbackend = "postgres"\n')
    opened = run("notifications", "--config", str(config), **{DSN_ENV: dsn})
    assert opened.returncode == 0, opened.stderr
    assert "crm" in opened.stdout and "disabled" in opened.stdout and "old" not in opened.stdout
    every = run("notifications", "--config", str(config), "--all", **{DSN_ENV: dsn})
    assert "old" in every.stdout and "enabled" in every.stdout
    # The config wins over --data-dir: a fleet's notifications are not in any data directory.
    both = run("notifications", "--config", str(config), "--data-dir", str(tmp_path), **{DSN_ENV: dsn})
    assert both.stdout == opened.stdout
    # --data-dir alone reads only that directory's file.
    local = run("notifications", "--data-dir", str(tmp_path), **{DSN_ENV: dsn})
    assert local.returncode == 0 and f"no open notifications under {tmp_path}" in local.stdout
    for done in (opened, every, both, local):
        assert PASSWORD not in done.stdout + done.stderr


def test_notifications_says_which_database_it_could_not_read(tmp_path: Path) -> None:
    nowhere = f"postgresql://dd:{PASSWORD}@127.0.0.1:{free_port()}/fleet?connect_timeout=2"
    config = write_config(tmp_path, f'[queue]\nbackend = "postgres"\ndsn = "{nowhere}"\n')
    done = run("notifications", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.startswith("deliverydash notifications: cannot read the notifications in PostgreSQL")
    assert "127.0.0.1" in done.stderr and "database fleet user dd" in done.stderr
    assert PASSWORD not in done.stderr and "Traceback" not in done.stderr


def test_the_help_says_a_fleet_s_notifications_need_the_config() -> None:
    done = run("notifications", "--help")
    assert "postgres" in done.stdout and "--data-dir alone" in done.stdout


def dashboard(config: Path, *args: str, **env: str) -> tuple[bytes, dict[str, str], str]:
    """Start `deliverydash dashboard` (with `args`); once it is Streamlit, its command line, environment
    and output."""
    with (config.parent / "dashboard.log").open("w+") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deliverydash",
                "dashboard",
                "--config",
                str(config),
                "--port",
                str(free_port()),
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**{k: v for k, v in os.environ.items() if k != DSN_ENV}, "DELIVERYDASH_SECRET": "", **env},
        )
        try:
            deadline = time.monotonic() + 60
            proc = Path(f"/proc/{process.pid}")
            while b"streamlit" not in (command := (proc / "cmdline").read_bytes()):
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            entries = (proc / "environ").read_bytes().split(b"\0")
            environ = dict(e.decode().partition("=")[::2] for e in entries if e)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        log.seek(0)
        return command, environ, log.read()


def test_the_dashboard_gets_the_dsn_through_its_environment_only(dsn: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, f'[queue]\nbackend = "postgres"\ndsn = "{dsn}"\n')
    command, environ, output = dashboard(config)
    assert PASSWORD not in command.decode() and PASSWORD not in output
    assert environ[DSN_ENV] == dsn
    assert "notifications from PostgreSQL at postgresql://postgres:***@" in output


def test_a_dashboard_over_a_data_directory_does_not_inherit_a_dsn(tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    _, environ, _ = dashboard(config, **{DSN_ENV: f"postgresql://dd:{PASSWORD}@elsewhere/db"})
    assert DSN_ENV not in environ  # the sqlite config's notifications are in its data directory


def test_no_prefetch_reaches_the_dashboard_through_its_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    _, environ, _ = dashboard(config, "--no-prefetch")
    assert environ["DELIVERYDASH_PREFETCH"] == "0"
    _, environ, _ = dashboard(config)
    assert environ.get("DELIVERYDASH_PREFETCH") != "0"
