"""The supervisor of `serve --processes`: engines share one port, one that dies is started again,
a signal stops them all cleanly. Real processes and sockets; the embedded queue with one process
(the several-process runs need PostgreSQL and live with the fleet tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.delivery.engine_process import free_port, wait_for

SUPERVISE = """
import logging, sys
from delivery.config import load_config
from delivery.supervisor import Supervisor, bind
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
with bind("127.0.0.1", int(sys.argv[2])) as sock:
    sys.exit(Supervisor(load_config(sys.argv[1]), sock, 1).run())
"""


def engines(supervisor: int) -> list[int]:
    """The engine processes the supervisor runs now (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    found = []
    for pid in map(int, children):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command and b"resource_tracker" not in command:
            found.append(pid)
    return found


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\ndata_dir = "{tmp_path / "data"}"\n'
        'admin_token = "tok-0123456789abcdefghijklmnopqrst"\nshutdown_grace_s = 1\n'
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, str(config), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: healthy(port) and len(engines(process.pid)) == 1, timeout_s=60)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_an_engine_that_dies_is_started_again_on_the_same_port(
    supervised: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = supervised
    (first,) = engines(process.pid)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: engines(process.pid) not in ([], [first]) and healthy(port), timeout_s=60)
    (second,) = engines(process.pid)
    assert second != first
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"engine-0 (pid {first}) exited with status -9; starting another in 1 s" in output


def test_a_signal_stops_every_engine_cleanly(supervised: tuple[subprocess.Popen[str], int]) -> None:
    process, port = supervised
    (engine,) = engines(process.pid)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "stopped: leases released, attempt log exported" in output
    assert "all engines stopped" in output
    assert not Path(f"/proc/{engine}").exists()
    assert not healthy(port)


def test_engines_do_not_outlive_a_supervisor_killed_with_sigkill(
    supervised: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = supervised
    (engine,) = engines(process.pid)
    process.kill()
    process.communicate(timeout=30)
    # The kernel tells the orphan (SIGTERM), which stops cleanly and lets go of the port.
    wait_for(lambda: not Path(f"/proc/{engine}").exists() or b"\nState:\tZ" in _status(engine), timeout_s=60)
    assert not healthy(port)


def _status(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/status").read_bytes()
    except FileNotFoundError:
        return b"\nState:\tZ"
