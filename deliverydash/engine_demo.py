"""`deliverydash demo-engine`: the engine end to end on one machine, in one process.

Three loopback test destinations answer the way real partners do:

* `healthy` answers 200;
* `flaky` answers 503 to the first request of each event and 200 to the retry;
* `expired-credentials` answers 401 with a JSON error body, every time.

The engine (tracking API, durable queue, worker, exporter; `delivery.engine`)
runs on a free loopback port in a background thread with its own event
loop. The real `segment-analytics-python` client sends events to it from a
few fake users; once every delivery job has reached a final outcome (or the
timeout passed) the engine is stopped the ordinary way, so its exporter
writes the last attempt records, and the funnel and the per-destination
table are read back from the Parquet attempt log.

Everything listens on 127.0.0.1 only, and every thread and server started
here is stopped and joined before `run_demo` returns.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from delivery.config import Config, parse_config

WORKSPACE = "demo"
SOURCE = "demo-web"
WRITE_KEY = "wk_demo_web"
#: (destination id, sink path): the three test destinations, in table order.
DESTINATIONS = (
    ("healthy", "/healthy"),
    ("flaky", "/flaky"),
    ("expired-credentials", "/expired-credentials"),
)
USERS = ("ada", "grace", "alan", "edsger", "barbara", "donald", "margaret", "ken")
_EXPIRED_BODY = b'{"error":"invalid_grant","message":"The access token expired. Reconnect the destination."}'


class DemoError(Exception):
    """The demo could not run to the end; the message says why."""


# --- the test destinations -------------------------------------------------


class Sinks(http.server.ThreadingHTTPServer):
    """One loopback HTTP server playing the three destinations, one per path."""

    daemon_threads = True

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, int] = {path: 0 for _, path in DESTINATIONS}
        self.flaky_seen: set[str] = set()
        super().__init__(("127.0.0.1", 0), _SinkHandler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _SinkHandler(http.server.BaseHTTPRequestHandler):
    server: Sinks
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path = self.path
        with self.server.lock:
            if path in self.server.requests:
                self.server.requests[path] += 1
            first_try = False
            if path == "/flaky":
                key = _event_key(body)
                first_try = key not in self.server.flaky_seen
                self.server.flaky_seen.add(key)
        if path == "/healthy" or (path == "/flaky" and not first_try):
            self._answer(200, b'{"ok":true}')
        elif path == "/flaky":
            self._answer(503, b'{"error":"temporarily unavailable, try again"}')
        elif path == "/expired-credentials":
            self._answer(401, _EXPIRED_BODY)
        else:
            self._answer(404, b'{"error":"no such endpoint"}')

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _event_key(body: bytes) -> str:
    """The message id of the event a request carries (the whole body when it has none)."""
    try:
        event = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
    if isinstance(event, dict) and isinstance(event.get("messageId"), str):
        return event["messageId"]
    return body.decode("utf-8", "replace")


@contextmanager
def running_sinks() -> Iterator[Sinks]:
    """The test destinations, serving from a thread until the block ends."""
    sinks = Sinks()
    thread = threading.Thread(target=sinks.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-sinks")
    thread.start()
    try:
        yield sinks
    finally:
        sinks.shutdown()
        thread.join()
        sinks.server_close()


# --- the engine ------------------------------------------------------------


def demo_config(data_dir: Path, sinks_url: str) -> Config:
    """The engine's config: one source, the three destinations, quick retries."""
    return parse_config(
        {
            "engine": {
                "data_dir": str(data_dir.resolve()),
                "allow_private_targets": True,
                "backoff_base_s": 0.2,
                "backoff_max_s": 1,
                "export_interval_s": 0.5,
                "request_timeout_s": 5,
                "shutdown_grace_s": 2,
            },
            "sources": [{"id": SOURCE, "workspace": WORKSPACE, "write_key": WRITE_KEY}],
            "destinations": [
                {
                    "id": destination_id,
                    "source": SOURCE,
                    "integration": "webhook",
                    "url": sinks_url + path,
                    "headers": {"Authorization": "Bearer demo-token"},
                }
                for destination_id, path in DESTINATIONS
            ],
        },
        "demo-engine config",
    )


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
        self._ready = threading.Event()
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


# --- the client --------------------------------------------------------------


def send_events(host: str, count: int, progress: Callable[[int], object], senders: int = 4) -> None:
    """`count` track/identify/page calls from a few fake users, with the real Segment client.

    `senders` threads share the calls, each with its own client in sync mode,
    so every call has been accepted (and enqueued durably) when this returns.
    """
    from concurrent.futures import ThreadPoolExecutor

    def send(first: int) -> None:
        from segment.analytics.client import Client

        client = Client(WRITE_KEY, host=host, sync_mode=True, max_retries=3, timeout=10)
        for i in range(first, count, senders):
            user = USERS[i % len(USERS)]
            if i % 10 == 0:
                client.identify(
                    user_id=user, traits={"name": user.title(), "plan": "pro" if i % 20 else "free"}
                )
            elif i % 10 in (3, 7):
                client.page(
                    user_id=user, category="Docs", name="Quickstart", properties={"path": "/docs/start"}
                )
            else:
                client.track(
                    user_id=user,
                    event="Order Completed" if i % 3 else "Product Viewed",
                    properties={"order_id": f"o-{i}", "revenue": round(9.99 + i % 7, 2)},
                )
            progress(1)

    with ThreadPoolExecutor(max_workers=senders, thread_name_prefix="demo-client") as pool:
        for future in [pool.submit(send, first) for first in range(senders)]:
            future.result()


# --- the run -------------------------------------------------------------------


@dataclass(frozen=True)
class DemoResult:
    events: int
    jobs: int
    unsettled: int
    start: dt.datetime
    end: dt.datetime
    funnel: pl.DataFrame
    destinations: pl.DataFrame


def _hour_floor(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def run_demo(data_dir: Path, events: int, timeout_s: float = 60) -> DemoResult:
    """Run the whole demo; every server and thread is stopped before this returns."""
    from tqdm import tqdm

    from queries import api
    from queries.log import connect
    from queries.scope import Scope

    jobs = events * len(DESTINATIONS)
    started = dt.datetime.now(dt.UTC)
    unsettled = jobs
    with running_sinks() as sinks:
        engine = EngineThread(demo_config(data_dir, sinks.base_url))
        print(
            f"Engine on {engine.url}, test destinations on {sinks.base_url} "
            f"({', '.join(d for d, _ in DESTINATIONS)}); attempt log under {Path(data_dir) / 'attempts'}",
            file=sys.stderr,
        )
        engine.start()
        try:
            with tqdm(total=events, desc="events sent", unit=" events", file=sys.stderr) as bar:
                send_events(engine.url, events, bar.update)
            unsettled = engine.wait_until_settled(jobs, timeout_s)
        finally:
            engine.stop()
    if engine.error is not None:
        raise DemoError(f"the engine failed: {engine.error!r}")

    start = _hour_floor(started)
    end = _hour_floor(dt.datetime.now(dt.UTC)) + dt.timedelta(hours=1)
    with connect(data_dir) as log:
        scope = Scope.workspace(WORKSPACE)
        funnel = api.funnel(log, scope, start, end)
        destinations = api.by_destination(log, scope, start, end)
    return DemoResult(events, jobs, unsettled, start, end, funnel, destinations)


def render(result: DemoResult) -> str:
    """The funnel and the per-destination table, as terminal text."""
    lines = [
        f"Delivery funnel from real attempts: workspace {WORKSPACE}, "
        f"{result.start:%Y-%m-%d %H:%M} to {result.end:%H:%M} UTC",
        f"({result.events:,} events sent x {len(DESTINATIONS)} destinations = {result.jobs:,} deliveries)",
        "",
        f"{'stage':<32}{'events':>12}{'share':>10}",
    ]
    for row in result.funnel.iter_rows(named=True):
        lines.append(f"{row['stage']:<32}{int(row['events']):>12,}{row['pct']:>9.2f}%")
    received = int(result.funnel.filter(pl.col("kind") == "received")["events"].sum())
    if received > result.jobs:
        lines.append(f"(these hours also hold {received - result.jobs:,} deliveries of earlier demo runs)")
    lines += [
        "",
        f"{'destination':<22}{'requests':>10}{'received':>10}{'1st try':>10}{'eventually':>12}"
        f"{'failed':>8}{'dropped':>9}{'retrying':>10}{'1st try %':>11}{'eventually %':>14}",
    ]
    for row in result.destinations.iter_rows(named=True):
        lines.append(
            f"{row['destination_id']:<22}{row['requests']:>10,}{row['events_received']:>10,}"
            f"{row['delivered_first_attempt']:>10,}{row['delivered_eventually']:>12,}{row['failed']:>8,}"
            f"{row['dropped']:>9,}{row['still_retrying']:>10,}{row['first_attempt_pct']:>10.2f}%"
            f"{row['eventually_pct']:>13.2f}%"
        )
    return "\n".join(lines) + "\n"
