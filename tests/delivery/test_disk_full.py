"""A full disk, for real: the engine's data directory on a small tmpfs that a filler file fills.

Below `[engine] min_free_bytes` the tracking API answers 503 with Retry-After
before the disk is full; with the disk full to the last byte the worker's
settlements and the exporter's files fail and are retried; once the filler
is removed everything resumes by itself. Afterwards: every event the API
acknowledged was delivered and is in the Parquet log exactly once, the queue
passes SQLite's integrity check, and every Parquet file reads whole.

Mounting needs root (as CI and the sessions here run); elsewhere the test is
skipped and says why.
"""

from __future__ import annotations

import base64
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from delivery.queue import Event, StorageFull
from delivery.queue.sqlite import SqliteQueue
from tests.delivery.engine_process import RecordingSink, free_port, serving, start_engine, wait_for

WRITE_KEY = "wk_test_disk"
DISK_BYTES = 48 * 2**20
RESERVE_BYTES = 8 * 2**20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem of DISK_BYTES (tmpfs), mounted for the test and removed after it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave_bytes: int) -> Path:
    """Write a filler file until `leave_bytes` (or less) are free on `disk`."""
    filler = disk / f"filler-{uuid.uuid4().hex}"
    with filler.open("wb") as handle:
        chunk = b"\0" * 2**20
        while (free := shutil.disk_usage(disk).free) > leave_bytes:
            try:
                handle.write(chunk[: min(len(chunk), free - leave_bytes)])
                handle.flush()
            except OSError as error:
                assert error.errno == errno.ENOSPC
                break
    return filler


class Client:
    """Posts 10-event batches to the tracking API; remembers what was acknowledged."""

    def __init__(self, port: int) -> None:
        auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": auth})
        self.acknowledged: set[str] = set()

    def post(self) -> httpx.Response:
        ids = [str(uuid.uuid4()) for _ in range(10)]
        batch = [{"type": "track", "event": "Order Completed", "userId": "u", "messageId": m} for m in ids]
        response = self.http.post("/v1/batch", json={"batch": batch}, timeout=10)
        if response.status_code == 200:
            self.acknowledged.update(ids)
        return response


def write_config(path: Path, data_dir: Path, sink: RecordingSink) -> Path:
    path.write_text(
        f"""
[engine]
data_dir = "{data_dir}"
allow_private_targets = true
min_free_bytes = {RESERVE_BYTES}
export_interval_s = 0.2
request_timeout_s = 5
backoff_base_s = 0.2
backoff_max_s = 1
lease_s = 10
shutdown_grace_s = 2

[[sources]]
id = "web"
workspace = "acme"
write_key = "{WRITE_KEY}"

[[destinations]]
id = "hook"
source = "web"
integration = "webhook"
url = "http://127.0.0.1:{sink.server_address[1]}/hook"
""",
        encoding="utf-8",
    )
    return path


def logged_message_ids(data_dir: Path) -> list[str]:
    """The message id of every record in the attempt log (one event a request here)."""
    if not list((data_dir / "attempts").glob("date=*/hour=*/*.parquet")):
        return []
    glob = str(data_dir / "attempts" / "date=*" / "hour=*" / "*.parquet")
    return [
        row[0]
        for row in duckdb.execute(f"SELECT events[1].message_id FROM read_parquet('{glob}')").fetchall()
    ]


def test_a_full_disk_refuses_new_events_loses_none_and_recovers_by_itself(
    small_disk: Path, tmp_path: Path
) -> None:
    data_dir = small_disk / "data"
    with serving(RecordingSink()) as sink, (tmp_path / "engine.log").open("w") as log:
        config = write_config(tmp_path / "deliverydash.toml", data_dir, sink)
        port = free_port()
        engine = start_engine(config, port, log=log)
        client = Client(port)
        fillers: list[Path] = []
        try:
            for _ in range(5):
                assert client.post().status_code == 200
            # Below the reserve, not yet full: refused with a pause to wait, nothing stored.
            fillers.append(fill(small_disk, leave_bytes=RESERVE_BYTES // 2))
            refused = client.post()
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "30"
            assert refused.json()["code"] == "unavailable"
            assert "disk is nearly full" in refused.json()["message"]

            # Full to the last byte while deliveries and exports are under way.
            fillers.pop().unlink()
            for _ in range(5):
                assert client.post().status_code == 200
            fillers.append(fill(small_disk, leave_bytes=0))
            assert shutil.disk_usage(small_disk).free < RESERVE_BYTES
            assert client.post().status_code == 503
            time.sleep(1)  # the worker and the exporter meet the full disk
            assert engine.poll() is None, "the engine died of a full disk"

            # Space returns: new events are accepted, and everything held back goes through.
            for filler in fillers:
                filler.unlink()
            for _ in range(5):
                assert client.post().status_code == 200
            wait_for(lambda: client.acknowledged <= set(sink.seen), timeout_s=30)
            wait_for(lambda: client.acknowledged <= set(logged_message_ids(data_dir)), timeout_s=30)
        finally:
            client.http.close()
            engine.send_signal(signal.SIGTERM)
            engine.wait(timeout=30)
    assert engine.returncode == 0, (tmp_path / "engine.log").read_text()[-3000:]

    logged = logged_message_ids(data_dir)
    assert client.acknowledged <= set(logged)
    assert len(logged) == len(set(logged))  # one record a request, none written twice
    with sqlite3.connect(data_dir / "queue.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


def test_the_queue_refuses_events_below_its_reserve_and_takes_them_when_space_returns(tmp_path: Path) -> None:
    events = [Event("m-1", "acme", "web", "track", "Tick", b"{}", 1_790_000_000.0)]
    free = shutil.disk_usage(tmp_path).free
    queue = SqliteQueue(tmp_path, min_free_bytes=free * 2)
    try:
        with pytest.raises(StorageFull, match=r"MiB free on the queue's disk, under the reserve"):
            queue.enqueue(events, {"web": ["hook"]})
        assert sum(queue.depth().by_state.values()) == 0
        queue.min_free_bytes = 0
        assert queue.enqueue(events, {"web": ["hook"]}) == ["m-1"]
    finally:
        queue.close()
