"""The exporter in its own process (`delivery.export_process`), under a real `deliverydash serve`.

- It is a child of the engine, and every record reaches the log through it.
- Killed, the engine exports in its own process from then on: nothing waits in the outbox.
- The engine killed: the child makes its final pass and exits, and a restarted
  engine on the same data directory starts at once (the child holds no lock).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.delivery.engine_process import RecordingSink, free_port, serving, start_engine, wait_for

WRITE_KEY = "wk_test_export_process"


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    with serving(RecordingSink()) as server:
        yield server


def write_config(
    tmp_path: Path, sink: RecordingSink, exporter: str = "process", interval_s: float = 0.2
) -> Path:
    config = tmp_path / "deliverydash.toml"
    config.write_text(
        f'[engine]\ndata_dir = "{tmp_path / "data"}"\nallow_private_targets = true\n'
        f'export_interval_s = {interval_s}\nshutdown_grace_s = 1\nexporter = "{exporter}"\n\n'
        f'[[sources]]\nid = "web"\nworkspace = "acme"\nwrite_key = "{WRITE_KEY}"\n\n'
        f'[[destinations]]\nid = "hook"\nsource = "web"\nintegration = "webhook"\n'
        f'url = "http://127.0.0.1:{sink.server_address[1]}/hook"\n'
    )
    return config


def send(port: int, first: int, count: int) -> list[str]:
    ids = [f"m-{i}" for i in range(first, first + count)]
    batch = [{"type": "track", "event": "Signed Up", "userId": "u", "messageId": i} for i in ids]
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
    assert answer.status_code == 200, answer.text
    return ids


def logged(data_dir: Path) -> list[str]:
    """The message ids of the attempt records in the log (one per record)."""
    if not any((data_dir / "attempts").rglob("*.parquet")):
        return []
    pattern = str(data_dir / "attempts" / "**" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT unnest(events).message_id FROM read_parquet('{pattern}', hive_partitioning = false)"
    ).fetchall()
    return [row[0] for row in rows]


def outbox(data_dir: Path) -> int:
    db = sqlite3.connect(f"file:{data_dir / 'queue.sqlite3'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    finally:
        db.close()


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def stop(engine: subprocess.Popen[str]) -> str:
    engine.send_signal(signal.SIGTERM)
    out, _ = engine.communicate(timeout=60)
    return out


def test_the_exporter_runs_in_a_child_and_every_record_reaches_the_log(
    tmp_path: Path, sink: RecordingSink
) -> None:
    port = free_port()
    engine = start_engine(write_config(tmp_path, sink), port)
    try:
        (exporter,) = children(engine.pid)
        sent = send(port, 0, 50)
        wait_for(lambda: sorted(logged(tmp_path / "data")) == sorted(sent))
        assert children(engine.pid) == [exporter]
    finally:
        out = stop(engine)
    assert engine.returncode == 0, out
    assert sorted(logged(tmp_path / "data")) == sorted(sent)
    assert outbox(tmp_path / "data") == 0
    assert f"exporter: process {exporter}" in out
    assert not Path(f"/proc/{exporter}").exists()  # reaped, not left behind


def test_the_child_makes_the_final_pass_when_the_engine_stops(tmp_path: Path, sink: RecordingSink) -> None:
    """An hour between rounds: what the child's first round did not find waits for the final pass."""
    port = free_port()
    engine = start_engine(write_config(tmp_path, sink, interval_s=3600), port)
    try:
        sent = send(port, 0, 60)
        wait_for(lambda: outbox(tmp_path / "data") + len(logged(tmp_path / "data")) >= len(sent))
    finally:
        out = stop(engine)
    assert engine.returncode == 0, out
    assert sorted(logged(tmp_path / "data")) == sorted(sent)
    assert outbox(tmp_path / "data") == 0


def test_a_killed_exporter_is_replaced_by_exporting_in_the_engine(
    tmp_path: Path, sink: RecordingSink
) -> None:
    port = free_port()
    engine = start_engine(write_config(tmp_path, sink), port)
    try:
        (exporter,) = children(engine.pid)
        os.kill(exporter, signal.SIGKILL)
        sent = send(port, 0, 40)
        wait_for(lambda: sorted(logged(tmp_path / "data")) == sorted(sent))  # by the engine itself
        assert children(engine.pid) == []
    finally:
        out = stop(engine)
    assert engine.returncode == 0, out
    assert f"the exporter's process {exporter} exited with status -9" in out
    assert sorted(logged(tmp_path / "data")) == sorted(sent) and outbox(tmp_path / "data") == 0


def test_a_killed_engine_s_exporter_exports_what_was_committed_and_frees_the_data_dir(
    tmp_path: Path, sink: RecordingSink
) -> None:
    config = write_config(tmp_path, sink)
    port = free_port()
    engine = start_engine(config, port)
    (exporter,) = children(engine.pid)
    sent = send(port, 0, 30)
    # Every job settled (its record in the outbox or the log): nothing in flight dies with the engine.
    wait_for(lambda: outbox(tmp_path / "data") + len(logged(tmp_path / "data")) >= len(sent))
    engine.kill()
    engine.communicate(timeout=30)
    wait_for(lambda: not Path(f"/proc/{exporter}").exists() or _zombie(exporter))
    # The next engine on the same directory starts (no lock left held) and the log holds each record once.
    again = start_engine(config, port)
    try:
        wait_for(lambda: sorted(logged(tmp_path / "data")) == sorted(sent))
    finally:
        out = stop(again)
    assert again.returncode == 0, out
    assert sorted(logged(tmp_path / "data")) == sorted(sent)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_with_exporter_thread_there_is_no_child(tmp_path: Path, sink: RecordingSink) -> None:
    port = free_port()
    engine = start_engine(write_config(tmp_path, sink, exporter="thread"), port)
    try:
        assert children(engine.pid) == []
        sent = send(port, 0, 20)
        wait_for(lambda: sorted(logged(tmp_path / "data")) == sorted(sent))
    finally:
        out = stop(engine)
    assert engine.returncode == 0, out
