"""What both demos run the engine with: a thread of its own, and a wait for every delivery to settle.

`EngineThread` runs `delivery.engine`'s app (tracking API, SQLite queue,
worker, exporter) on a free loopback port, in a background thread with its
own event loop, and stops it the ordinary way so the exporter writes the
last attempt records. `bench/prechecks.py` uses it too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import sys
import threading
import time
from typing import Any

from delivery.config import Config


class DemoError(Exception):
    """The demo could not run to the end; the message says why."""


class EngineThread:
    """`delivery.engine`'s app on a loopback socket, in a thread with its own event loop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = int(self.socket.getsockname()[1])
        self.queue: Any = None
        self.error: BaseException | None = None
        self._server: Any = None
        self._thread = threading.Thread(target=self._run, name="demo-engine")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._server is not None and self._server.started:
                return
            if not self._thread.is_alive():
                break
            time.sleep(0.02)
        self.stop()
        raise DemoError(f"the engine did not start: {self.error or 'timed out'}")

    def unfinished_jobs(self) -> int:
        """Jobs not yet at a final outcome (pending or leased)."""
        depth = self.queue.depth()
        return int(sum(depth.by_state.values()))

    def wait_until_settled(self, jobs: int, timeout_s: float, poll_s: float = 0.1) -> int:
        """Show a progress bar until every job has a final outcome or `timeout_s` passed; jobs left."""
        from tqdm import tqdm

        deadline = time.monotonic() + timeout_s
        with tqdm(total=jobs, desc="deliveries settled", unit=" jobs", file=sys.stderr) as bar:
            while True:
                if not self._thread.is_alive():
                    raise DemoError(f"the engine stopped unexpectedly: {self.error}")
                unsettled = self.unfinished_jobs()
                bar.update(max(0, jobs - unsettled) - bar.n)
                if unsettled == 0 or time.monotonic() >= deadline:
                    return unsettled
                time.sleep(poll_s)

    def stop(self) -> None:
        """Stop the server; the lifespan stops the worker and makes the exporter's last pass."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join()
        self.socket.close()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()/run_demo
            self.error = exc

    async def _serve(self) -> None:
        from delivery.engine import engine_server, open_queue

        queue = open_queue(self.config)
        self.queue = queue
        try:
            server = engine_server(self.config, queue, log_level="warning")
            self._server = server
            await server.serve(sockets=[self.socket])
        finally:
            queue.close()


def hour_floor(moment: dt.datetime) -> dt.datetime:
    """The start of `moment`'s hour: the queries read whole hours."""
    return moment.replace(minute=0, second=0, microsecond=0)
