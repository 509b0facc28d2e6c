"""Engine benchmark on the PostgreSQL queue (issue 12): beside the SQLite queue, one engine against two.

    .venv/bin/python bench/fleet.py [--runs 3] [--requests 20000] [--duration 20] [--only fleet]

Same machine, processes and sink as `bench/engine.py` (whose pieces it uses),
plus a PostgreSQL 15 server this script starts (`tests/postgres.py`; fsync
and synchronous_commit on), a new database for every run. Each section runs
its sides alternately, one run of each per round:

- INGEST: `/v1/batch` as in `bench/engine.py`, on SQLite, then on PostgreSQL.
- DELIVERY: `--requests` one-event jobs preloaded, then one engine delivers
  them to the sink, on SQLite, then on PostgreSQL. Reported with the engine's
  CPU seconds per 1,000 requests (its user + system time between the sink's
  first and last request), and for PostgreSQL the server's own cost per
  request: commits (`pg_stat_database.xact_commit`) and WAL bytes
  (`pg_current_wal_lsn`), over the whole run, and its processes' CPU.
- FLEET: 8 destinations on PostgreSQL, one engine, then two engine processes
  (each owning its share of the destinations); the jobs are enqueued once
  the engines run (and, for two, once they split the destinations), and the
  rate is the sink's over all of them. CPU seconds per 1,000 requests are the
  engines' summed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/: the repository takes its place (as in bench/queue_backends.py).
sys.path[0] = str(ROOT)

import psycopg  # noqa: E402

from tests.postgres import PostgresServer, start_postgres  # noqa: E402


def _load_engine_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_engine", ROOT / "bench" / "engine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_engine_bench()
TICK = os.sysconf("SC_CLK_TCK")
FLEET_DESTINATIONS = 8


cpu_s = bench.cpu_s


def server_cpu_s(server: PostgresServer) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster and every process it started."""
    postmaster = int((server.directory / "pg" / "postmaster.pid").read_text().split()[0])
    total = cpu_s(postmaster)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def pg_counters(dsn: str) -> tuple[int, int]:
    """Commits in the run's database, and the WAL position in bytes."""
    with psycopg.connect(dsn, autocommit=True) as db:
        row = db.execute(
            "SELECT xact_commit, pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


class Databases:
    """A new database on the server for each run."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.made = 0

    def new(self) -> str:
        self.made += 1
        return self.server.create_database(f"bench_{os.getpid()}_{self.made}")


def queue_table(dsn: str) -> str:
    return f'[queue]\nbackend = "postgres"\ndsn = "{dsn}"\n' if dsn else ""


def ingest_run(
    dsn: str, server: PostgresServer | None, duration_s: float, clients: int, batch: int
) -> dict[str, float]:
    """Events/s acknowledged through `/v1/batch` on the SQLite queue (`dsn` empty) or PostgreSQL.

    On PostgreSQL, also its cost per event acknowledged (the engine delivers meanwhile, as in production).
    """
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        sink, sink_port = bench.start_sink()
        port = bench.free_port()
        engine = bench.start_engine(bench.write_config(Path(tmp), sink_port, queue=queue_table(dsn)), port)
        counters = pg_counters(dsn) if dsn else (0, 0)
        server_cpu = server_cpu_s(server) if server else 0.0
        try:
            accepted, _, elapsed = asyncio.run(bench.ingest(port, duration_s, clients, batch))
            server_used = server_cpu_s(server) - server_cpu if server else 0.0
        finally:
            bench.stop(engine)
            sink.terminate()
            sink.wait()
    result = {"eps": accepted / elapsed}
    if dsn and server:
        commits, wal = pg_counters(dsn)
        result |= {
            "commits_per_event": (commits - counters[0]) / accepted,
            "wal_bytes_per_event": (wal - counters[1]) / accepted,
            "server_cpu_per_1000": server_used / accepted * 1000,
        }
    return result


def _deliver(
    n: int, sink_port: int, pids: list[int], before_first: Callable[[], None] = lambda: None
) -> tuple[float, float]:
    """Wait for n requests at the sink: (its rate first to last, the engines' CPU s per 1,000 meanwhile)."""
    before_first()
    return bench.await_delivery(n, sink_port, pids)


def delivery_run(n: int, dsn: str, server: PostgresServer | None) -> dict[str, float]:
    """One engine delivering n preloaded one-event jobs; PostgreSQL's cost too when `dsn` is set."""
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        sink, sink_port = bench.start_sink()
        try:
            config = bench.write_config(Path(tmp), sink_port, queue=queue_table(dsn))
            bench.preload(Path(tmp) / "data", n, dsn=dsn)
            counters = pg_counters(dsn) if dsn else (0, 0)
            server_cpu = server_cpu_s(server) if server else 0.0
            engine = bench.start_engine(config, bench.free_port())
            try:
                rate, cpu = _deliver(n, sink_port, [engine.pid])
                # Before the engine's connections close: their processes' CPU goes with them.
                server_used = server_cpu_s(server) - server_cpu if server else 0.0
            finally:
                bench.stop(engine)
            result = {"rps": rate, "cpu_per_1000": cpu}
            if dsn and server:
                commits, wal = pg_counters(dsn)
                result |= {
                    "commits_per_request": (commits - counters[0]) / n,
                    "wal_bytes_per_request": (wal - counters[1]) / n,
                    "server_cpu_per_1000": server_used / n * 1000,
                }
        finally:
            sink.terminate()
            sink.wait()
    return result


def _settled_ownership(observer: Any, engines: int) -> None:
    """Wait until `engines` engines own every destination, unchanged over a round of renewals (4 s).

    While a destination changes hands, its old owner gives it back and its new one takes it at its
    next round: up to a third of a lease without an owner. Runs start after that.
    """
    deadline, last = time.monotonic() + 120, None
    while time.monotonic() < deadline:
        owners = observer.owners()
        if len(owners) == FLEET_DESTINATIONS and len(set(owners.values())) == engines and owners == last:
            return
        last = owners
        time.sleep(4.5)
    raise RuntimeError(f"ownership did not settle: {last}")


def fleet_run(n: int, dsn: str, engines: int) -> dict[str, float]:
    """`engines` engine processes on one PostgreSQL queue and FLEET_DESTINATIONS destinations."""
    from delivery.queue.postgres import PostgresQueue

    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        sink, sink_port = bench.start_sink()
        processes = []
        try:
            queue = queue_table(dsn)
            config = bench.write_config(Path(tmp), sink_port, queue=queue, destinations=FLEET_DESTINATIONS)
            text = config.read_text().replace("lease_s = 60", "lease_s = 12")  # ownership moves within 4 s
            config.write_text(text)
            processes = [bench.start_engine(config, bench.free_port()) for _ in range(engines)]
            observer = PostgresQueue(dsn, max_size=1)
            try:
                _settled_ownership(observer, engines)
            finally:
                observer.close()

            def enqueue() -> None:
                bench.preload(Path(tmp) / "data", n, dsn=dsn, destinations=FLEET_DESTINATIONS)

            rate, cpu = _deliver(n, sink_port, [p.pid for p in processes], before_first=enqueue)
        finally:
            for process in processes:
                bench.stop(process)
            sink.terminate()
            sink.wait()
    return {"rps": rate, "cpu_per_1000": cpu}


def report(title: str, sides: dict[str, list[dict[str, float]]], keys: list[tuple[str, str, str]]) -> None:
    """A markdown table: each side's runs and median for each (key, label, format)."""
    print(f"### {title}\n")
    print("| side | " + " | ".join(label for _, label, _ in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for side, runs in sides.items():
        for i, run in enumerate(runs, 1):
            cells = [format(run[key], fmt) if key in run else "" for key, _, fmt in keys]
            print(f"| {side}, run {i} | " + " | ".join(cells) + " |")
        medians = [
            format(statistics.median(r[key] for r in runs), fmt) if key in runs[0] else ""
            for key, _, fmt in keys
        ]
        print(f"| **{side}, median** | " + " | ".join(f"**{m}**" if m else "" for m in medians) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per delivery or fleet run")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of ingest per run")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--only", choices=("ingest", "delivery", "fleet"), default=None)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; engines, sink, PostgreSQL and load generator share them\n")
    server = start_postgres()
    databases = Databases(server)
    try:
        if args.only in (None, "ingest"):
            ingest: dict[str, list[dict[str, float]]] = {"SQLite": [], "PostgreSQL": []}
            for i in range(args.runs):
                for side, dsn, pg in (("SQLite", "", None), ("PostgreSQL", databases.new(), server)):
                    ingest[side].append(ingest_run(dsn, pg, args.duration, args.clients, args.batch))
                    print(f"ingest round {i + 1} {side}: {ingest[side][-1]}", file=sys.stderr)
            report(
                "Ingest through /v1/batch (the engine delivering meanwhile)",
                ingest,
                [
                    ("eps", "events/s", ",.0f"),
                    ("commits_per_event", "commits / event", ".4f"),
                    ("wal_bytes_per_event", "WAL bytes / event", ",.0f"),
                    ("server_cpu_per_1000", "PostgreSQL CPU s / 1,000 events", ".3f"),
                ],
            )
        if args.only in (None, "delivery"):
            delivery: dict[str, list[dict[str, float]]] = {"SQLite": [], "PostgreSQL": []}
            for i in range(args.runs):
                delivery["SQLite"].append(delivery_run(args.requests, "", None))
                delivery["PostgreSQL"].append(delivery_run(args.requests, databases.new(), server))
                print(f"delivery round {i + 1}: {[r[-1] for r in delivery.values()]}", file=sys.stderr)
            report(
                f"Delivery: {args.requests:,} one-event jobs, one engine",
                delivery,
                [
                    ("rps", "requests/s", ",.0f"),
                    ("cpu_per_1000", "engine CPU s / 1,000", ".3f"),
                    ("commits_per_request", "commits / request", ".3f"),
                    ("wal_bytes_per_request", "WAL bytes / request", ",.0f"),
                    ("server_cpu_per_1000", "PostgreSQL CPU s / 1,000", ".3f"),
                ],
            )
        if args.only in (None, "fleet"):
            fleet: dict[str, list[dict[str, float]]] = {"one engine": [], "two engines": []}
            for i in range(args.runs):
                fleet["one engine"].append(fleet_run(args.requests, databases.new(), 1))
                fleet["two engines"].append(fleet_run(args.requests, databases.new(), 2))
                print(f"fleet round {i + 1}: {[r[-1] for r in fleet.values()]}", file=sys.stderr)
            report(
                f"Fleet: {args.requests:,} jobs over {FLEET_DESTINATIONS} destinations on PostgreSQL",
                fleet,
                [("rps", "requests/s", ",.0f"), ("cpu_per_1000", "engines' CPU s / 1,000", ".3f")],
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
