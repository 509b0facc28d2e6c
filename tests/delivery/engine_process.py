"""Helpers for tests that run `deliverydash serve` as a real process beside loopback sinks."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

import httpx

Server = TypeVar("Server", bound=http.server.HTTPServer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


class RecordingSink(http.server.ThreadingHTTPServer):
    """Answers 200 (after `delay_s`) and remembers the messageId of every request, in arrival order."""

    daemon_threads = True
    # socketserver's default listen backlog is 5: an engine's 16 connections at once would
    # overflow it, and each dropped SYN costs a 1 s retransmit, which starves a drain.
    request_queue_size = 128

    def __init__(self, delay_s: float = 0.0) -> None:
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.delay_s = delay_s
        super().__init__(("127.0.0.1", 0), _RecordingHandler)


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    server: RecordingSink

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.seen.append(json.loads(body)["messageId"])
        if self.server.delay_s:
            time.sleep(self.server.delay_s)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    """Run a sink on a background thread; shut it down and close it afterwards."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def start_engine(config: Path, port: int, *, log: IO[str] | None = None) -> subprocess.Popen[str]:
    """`deliverydash serve` on `port`, once it answers /healthz.

    Its output goes to a pipe read at the end, or to `log` for an engine that
    may log more than a pipe holds before anyone reads it.
    """
    engine = subprocess.Popen(
        [sys.executable, "-m", "deliverydash", "serve", "--config", str(config), "--port", str(port)],
        stdout=log if log is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            assert engine.poll() is None, engine.communicate()[0] if log is None else "the engine exited"
            return False

    try:
        wait_for(healthy)
    except BaseException:
        # Not left running (nor its pipe left open) for the tests that follow.
        if engine.poll() is None:
            engine.kill()
        with contextlib.suppress(ValueError, OSError, subprocess.TimeoutExpired):
            engine.communicate(timeout=30)
        raise
    return engine
