"""Engine benchmark: ingest through `/v1/batch`, and delivery against a bare aiohttp loop.

    .venv/bin/python bench/engine.py [--runs 3] [--duration 20] [--clients 16] [--requests 20000]

Everything runs on this machine over loopback, in three processes that share
its cores: the engine (`deliverydash serve`, a subprocess), a sink answering
200 (an aiohttp subprocess), and this script (the load generator).

INGEST: N client tasks post 100-event `/v1/batch` bodies (unique messageIds)
for a fixed duration; an event counts once its request was answered 200,
which the API sends only after the commit. The engine's one destination
points at the sink, so the worker delivers while the API ingests, as in
production.

DELIVERY: `--requests` events are put in the queue before the engine starts
(straight into the queue, so ingest does not compete), then the engine
delivers them one request per event; the rate is what the sink saw between
its first and last request, and the engine's CPU seconds (user + system, all
its threads and its exporter's process) over that time per 1,000 requests,
the figure a busy machine disturbs least. Two bare loops then post the same number of bodies of the
same size to the same sink, 64 requests in flight: one aiohttp session (the
ratio's baseline) and the engine's own HTTP/1.1 client
(`delivery.transport.http1`), the engine's rate against its own client.

`--backend postgres` (or `both`, alternating run for run) runs the engine on
a PostgreSQL queue: a PostgreSQL server started for the benchmark (as the
tests start theirs), a new database per run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    import httpx

ROOT = Path(__file__).resolve().parent.parent
WRITE_KEY = "wk_bench_web"
IN_FLIGHT = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the sink (its own process) -------------------------------------------------------------------


def run_sink(port: int) -> None:
    """Answer 200 to every POST; GET /stats gives the count and the first and last arrival times."""
    from aiohttp import web

    stats = {"count": 0, "first": 0.0, "last": 0.0}

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        now = time.time()
        if not stats["count"]:
            stats["first"] = now
        stats["count"] += 1
        stats["last"] = now
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    async def read_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def reset(request: web.Request) -> web.Response:
        stats.update(count=0, first=0.0, last=0.0)
        return web.json_response(stats)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", read_stats)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "_sink", str(port)])
    _wait_http(f"http://127.0.0.1:{port}/stats", process)
    return process, port


@functools.cache
def _control() -> httpx.Client:
    """One client for the sink's `/stats` and `/reset`, kept for the script's life.

    `httpx.get` makes a client per call, TLS context and all: about 28 ms of
    CPU here, which `await_delivery`'s poll every 50 ms took from the engine
    (a third of a core on two), and never from the bare loops it is compared with.
    """
    import httpx

    return httpx.Client()


def sink_stats(port: int) -> dict[str, float]:
    return dict(_control().get(f"http://127.0.0.1:{port}/stats").json())


def sink_reset(port: int) -> None:
    _control().post(f"http://127.0.0.1:{port}/reset")


# --- the engine (its own process) -----------------------------------------------------------------


def write_config(directory: Path, sink_port: int, *, queue: str = "", destinations: int = 1) -> Path:
    """The engine's config: `destinations` webhooks on the sink (`sink`, `sink-1`, ...), `queue` its table."""
    config = directory / "deliverydash.toml"
    hooks = "".join(
        f'''
[[destinations]]
id = "{destination_id(i)}"
source = "web"
integration = "webhook"
url = "http://127.0.0.1:{sink_port}/hook"
'''
        for i in range(destinations)
    )
    config.write_text(
        f"""
[engine]
data_dir = "{directory / "data"}"
allow_private_targets = true
export_interval_s = 1
request_timeout_s = 10
lease_s = 60
shutdown_grace_s = 5
concurrency = {IN_FLIGHT}
per_destination_concurrency = {IN_FLIGHT}
claim_batch_size = 128
{queue}
[[sources]]
id = "web"
workspace = "acme"
write_key = "{WRITE_KEY}"
{hooks}""",
        encoding="utf-8",
    )
    return config


def destination_id(i: int) -> str:
    return "sink" if i == 0 else f"sink-{i}"


def start_engine(config: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "deliverydash", "serve", "--config", str(config), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_http(f"http://127.0.0.1:{port}/healthz", process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout_s} s")


# --- ingest ---------------------------------------------------------------------------------------

_EVENT = (
    '{"type":"track","event":"Order Completed","userId":"user-%d","messageId":"%s",'
    '"properties":{"order":%d,"revenue":42.5,"currency":"EUR"}}'
)


def batch_body(batch_size: int, counter: list[int]) -> bytes:
    base = counter[0]
    counter[0] += batch_size
    prefix = uuid.uuid4().hex
    events = ",".join(_EVENT % (i % 1000, f"{prefix}-{i}", i) for i in range(base, base + batch_size))
    return ('{"batch":[' + events + "]}").encode()


async def ingest(port: int, duration_s: float, clients: int, batch_size: int) -> tuple[int, int, float]:
    """(events acknowledged with 200, requests answered otherwise, seconds)."""
    url = f"http://127.0.0.1:{port}/v1/batch"
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    counter = [0]
    accepted = refused = 0
    deadline = time.monotonic() + duration_s

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal accepted, refused
        while time.monotonic() < deadline:
            body = batch_body(batch_size, counter)
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    accepted += batch_size
                else:
                    refused += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.monotonic() - started
    return accepted, refused, elapsed


def ingest_run(duration_s: float, clients: int, batch_size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        sink, sink_port = start_sink()
        port = free_port()
        engine = start_engine(write_config(Path(tmp), sink_port), port)
        try:
            accepted, refused, elapsed = asyncio.run(ingest(port, duration_s, clients, batch_size))
            delivered = sink_stats(sink_port)["count"]
        finally:
            stop(engine)
            sink.terminate()
            sink.wait()
    return {
        "events_per_s": accepted / elapsed,
        "accepted": accepted,
        "refused": refused,
        "delivered_meanwhile": delivered,
    }


# --- delivery -------------------------------------------------------------------------------------


TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) and of its live children so far.

    The children count: the engine's exporter runs in one (`delivery.export_process`).
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / TICK
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(cpu_s(int(child)) for child in children)


def await_delivery(n: int, sink_port: int, pids: list[int]) -> tuple[float, float]:
    """Wait for n requests at the sink: (its rate first to last, the processes' CPU s per 1,000 meanwhile)."""
    deadline = time.monotonic() + 300
    start_cpu: float | None = None
    while (stats := sink_stats(sink_port))["count"] < n:
        if start_cpu is None and stats["count"] > 0:
            start_cpu = sum(cpu_s(pid) for pid in pids)
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {stats['count']} of {n} delivered")
        time.sleep(0.05)
    used = sum(cpu_s(pid) for pid in pids) - (start_cpu or 0.0)
    rate = (stats["count"] - 1) / (stats["last"] - stats["first"])
    return rate, used / n * 1000


def preload(
    data_dir: Path, n: int, destination: str = "sink", *, dsn: str = "", destinations: int = 1
) -> int:
    """Put n one-event jobs straight into the queue (SQLite under `data_dir`, or PostgreSQL at `dsn`).

    One destination (`destination`), or spread over `destinations` of `write_config`'s. The payload's size.
    """
    sys.path.insert(0, str(ROOT))
    from delivery.queue import Event, Queue
    from delivery.queue.postgres import PostgresQueue
    from delivery.queue.sqlite import SqliteQueue

    queue: Queue = PostgresQueue(dsn) if dsn else SqliteQueue(data_dir)
    spread = [destination] if destinations == 1 else [destination_id(i) for i in range(destinations)]
    now = time.time()
    size = 0
    try:
        for start in range(0, n, 1000):
            events = []
            for i in range(start, min(n, start + 1000)):
                message_id = str(uuid.uuid4())
                payload = json.dumps(
                    {
                        "type": "track",
                        "event": "Order Completed",
                        "userId": f"user-{i % 1000}",
                        "messageId": message_id,
                        "properties": {"order": i, "revenue": 42.5, "currency": "EUR"},
                    }
                ).encode()
                size = len(payload)
                events.append(Event(message_id, "acme", "web", "track", "Order Completed", payload, now))
            for index, hook in enumerate(spread):
                queue.enqueue(events[index :: len(spread)], {"web": [hook]})
    finally:
        queue.close()
    return size


async def bare_loop(sink_port: int, n: int, size: int) -> float:
    """Requests per second of one aiohttp session posting n bodies, IN_FLIGHT at a time."""
    url = f"http://127.0.0.1:{sink_port}/hook"
    body = b"x" * size
    remaining = n

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                assert r.status == 200

    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(IN_FLIGHT)))
        return n / (time.monotonic() - started)


async def bare_builtin_loop(sink_port: int, n: int, size: int) -> float:
    """Requests per second of the engine's own HTTP/1.1 client posting n bodies, IN_FLIGHT at a time."""
    sys.path.insert(0, str(ROOT))
    from delivery.transport import open_transport

    url = f"http://127.0.0.1:{sink_port}/hook"
    body = b"x" * size
    headers = {"Content-Type": "application/json"}
    remaining = n
    client = open_transport("builtin", limit=IN_FLIGHT, limit_per_host=IN_FLIGHT)

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            response = await client.post(url, body, headers, timeout_s=10, read_limit=65_536)
            assert response.status == 200

    try:
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return n / (time.monotonic() - started)
    finally:
        await client.close()


def delivery_run(n: int, dsn: str = "") -> dict[str, float]:
    """The engine delivering n preloaded jobs (SQLite queue, or PostgreSQL at `dsn`), then the bare loops."""
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        sink, sink_port = start_sink()
        try:
            queue = f'[queue]\nbackend = "postgres"\ndsn = "{dsn}"\n' if dsn else ""
            config = write_config(Path(tmp), sink_port, queue=queue)
            size = preload(Path(tmp) / "data", n, dsn=dsn)
            engine = start_engine(config, free_port())
            try:
                engine_rate, cpu_per_1000 = await_delivery(n, sink_port, [engine.pid])
            finally:
                stop(engine)
            sink_reset(sink_port)
            bare_rate = asyncio.run(bare_loop(sink_port, n, size))
            sink_reset(sink_port)
            builtin_rate = asyncio.run(bare_builtin_loop(sink_port, n, size))
        finally:
            sink.terminate()
            sink.wait()
    return {
        "engine_rps": engine_rate,
        "cpu_per_1000": cpu_per_1000,
        "bare_rps": bare_rate,
        "ratio": engine_rate / bare_rate,
        "builtin_rps": builtin_rate,
        "builtin_ratio": engine_rate / builtin_rate,
    }


# --- report ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of ingest per run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent ingest requests")
    parser.add_argument("--batch", type=int, default=100, help="events per /v1/batch request")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per delivery run")
    parser.add_argument("--only", choices=("ingest", "delivery"), default=None)
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres", "both"), default="sqlite", help="the queue, for delivery"
    )
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores; engine, sink and load generator share them\n")
    if args.only != "delivery":
        runs = []
        for i in range(args.runs):
            run = ingest_run(args.duration, args.clients, args.batch)
            runs.append(run)
            print(f"ingest run {i + 1}: {run}", file=sys.stderr)
        print(
            f"### Ingest: /v1/batch, {args.batch} events a request, "
            f"{args.clients} clients, {args.duration:g} s\n"
        )
        print("| run | events acknowledged (200) | events/s | non-200 requests | delivered meanwhile |")
        print("|---|---|---|---|---|")
        for i, run in enumerate(runs, 1):
            print(
                f"| {i} | {run['accepted']:,.0f} | {run['events_per_s']:,.0f} | {run['refused']:.0f} "
                f"| {run['delivered_meanwhile']:,.0f} |"
            )
        median = statistics.median(r["events_per_s"] for r in runs)
        print(f"| **median** | | **{median:,.0f}** | | |\n")
    if args.only != "ingest":
        backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
        server = _postgres() if "postgres" in backends else None
        try:
            by_backend: dict[str, list[dict[str, float]]] = {backend: [] for backend in backends}
            for i in range(args.runs):
                for backend in backends:
                    dsn = ""
                    if server is not None and backend == "postgres":
                        dsn = server.create_database(f"bench_engine_{os.getpid()}_{i}")
                    run = delivery_run(args.requests, dsn)
                    by_backend[backend].append(run)
                    print(f"delivery run {i + 1} ({backend}): {run}", file=sys.stderr)
        finally:
            if server is not None:
                server.stop()
        for backend, runs in by_backend.items():
            print_delivery(backend, runs, args.requests)


def _postgres() -> Any:
    """A PostgreSQL server for the runs, started as the tests start theirs (`tests.postgres`)."""
    sys.path.insert(0, str(ROOT))
    from tests.postgres import start_postgres

    return start_postgres()


def print_delivery(backend: str, runs: list[dict[str, float]], requests: int) -> None:
    print(
        f"### Delivery ({backend} queue): {requests:,} one-event requests to a loopback sink, "
        f"{IN_FLIGHT} in flight\n"
    )
    print(
        "| run | engine requests/s | engine CPU s / 1,000 requests | bare aiohttp requests/s | ratio "
        "| bare built-in client requests/s | ratio to it |"
    )
    print("|---|---|---|---|---|---|---|")
    keys = ("engine_rps", "cpu_per_1000", "bare_rps", "ratio", "builtin_rps", "builtin_ratio")
    formats = ("{:,.0f}", "{:.3f}", "{:,.0f}", "{:.2f}", "{:,.0f}", "{:.2f}")

    def row(label: str, values: list[float], bold: bool = False) -> str:
        cells = [f.format(v) for f, v in zip(formats, values, strict=True)]
        return f"| {label} | " + " | ".join(f"**{c}**" if bold else c for c in cells) + " |"

    for i, run in enumerate(runs, 1):
        print(row(str(i), [run[k] for k in keys]))
    print(row("**median**", [statistics.median(r[k] for r in runs) for k in keys], bold=True) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_sink":
        run_sink(int(sys.argv[2]))
    else:
        main()
