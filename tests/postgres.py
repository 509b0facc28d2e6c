"""A real PostgreSQL server for the tests: started once per session, a fresh database for each test.

Fixtures (registered for every test by ``tests/conftest.py``):

- ``postgres_server`` (session): the running `PostgresServer`, on a free
  loopback port, its data and socket in a temporary directory; stopped and
  removed at the end of the session, whatever the tests did.
- ``postgres_dsn`` (function): the DSN of a new empty database, dropped
  after the test (its connections closed by force if the test left any).

The server binaries (``initdb``, ``pg_ctl``) come from ``PATH``, ``pg_config
--bindir`` or ``/usr/lib/postgresql/<version>/bin``; without them the
fixtures fail saying to run ``.ci/ensure-postgres``. PostgreSQL refuses to
run as root, so as root the server runs as the ``postgres`` user (through
``runuser``), which then owns the temporary directory.

`start_postgres` is usable outside pytest too (``bench/queue_backends.py``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

#: Settings for tests: fsync stays on (durability is what the queue sells);
#: enough connections for several engines' pools at once.
TEST_SETTINGS: Mapping[str, str] = {
    "max_connections": "300",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
}
SERVER_USER = "postgres"
ENSURE = ".ci/ensure-postgres"


def find_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    candidates: list[Path] = []
    if found := shutil.which("initdb"):
        candidates.append(Path(found).resolve().parent)
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        candidates.append(Path(bindir.stdout.strip()))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name))
    candidates.extend(reversed(versions))
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A PostgreSQL server this process started, trusting local connections as ``postgres``."""

    directory: Path
    """Holds the cluster (``pg/``), its log (``pg.log``) and its Unix socket; owned by the server's user."""
    bin_dir: Path
    """Where its binaries are."""
    port: int
    """Its TCP port on 127.0.0.1."""
    host: str = "127.0.0.1"
    user: str = "postgres"
    """The superuser (no password: trust authentication on loopback)."""

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        """A superuser connection to the ``postgres`` database, in autocommit mode."""
        return psycopg.connect(self.dsn(), autocommit=True)

    def create_database(self, name: str) -> str:
        """Create an empty database; its DSN."""
        with self.admin() as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @property
    def log(self) -> Path:
        return self.directory / "pg.log"

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        """Run one of the server's binaries as the server's OS user."""
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        return subprocess.run(_as_server_user(argv), capture_output=True, text=True, check=False)

    def stop(self) -> None:
        """Stop the server (fast shutdown, else immediate) and remove its directory."""
        try:
            data = str(self.directory / "pg")
            if self.run("pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "30", "stop").returncode:
                self.run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


def start_postgres(settings: Mapping[str, str] = TEST_SETTINGS, *, attempts: int = 3) -> PostgresServer:
    """Initialise a cluster in a new temporary directory and start it on a free loopback port.

    Raises RuntimeError with the server's log when it does not start; the
    directory is removed then.
    """
    bin_dir = find_binaries()
    if bin_dir is None:
        raise RuntimeError(f"PostgreSQL server binaries (initdb, pg_ctl) not found: run {ENSURE}")
    # Not under pytest's basetemp: as root that is private to root, and the server runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="deliverydash-pg-"))
    server = PostgresServer(directory, bin_dir, port=0)
    try:
        if os.geteuid() == 0:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(directory, account.pw_uid, account.pw_gid)
        init = server.run(
            "initdb",
            "-D",
            str(directory / "pg"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if init.returncode:
            raise RuntimeError(f"initdb failed:\n{init.stdout}{init.stderr}")
        options = " ".join(f"-c {key}={value}" for key, value in settings.items())
        for _ in range(attempts):  # the port was free when chosen; another process may take it first
            server.port = free_port()
            started = server.run(
                "pg_ctl",
                "-D",
                str(directory / "pg"),
                "-l",
                str(server.log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {server.port} -k {directory} -c listen_addresses=127.0.0.1 {options}",
                "start",
            )
            if started.returncode == 0:
                return server
        log = server.log.read_text(errors="replace") if server.log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start:\n{started.stdout}{started.stderr}{log}")
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session."""
    if find_binaries() is None:
        pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found: run {ENSURE}", pytrace=False)
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """The DSN of a fresh empty database, dropped after the test."""
    name = f"test_{os.getpid()}_{next(_databases)}"
    dsn = postgres_server.create_database(name)
    try:
        yield dsn
    finally:
        postgres_server.drop_database(name)
