"""Batching benchmark: events/s delivered to the simulator's `batch` partner, with and without batching.

    .venv/bin/python bench/batching.py [--events 20000] [--batch 100] [--runs 1]

Three processes share this machine's cores: the partner simulator
(`deliverydash partners`, one `batch` partner taking up to 100 events per
request), the engine (`deliverydash serve`) and this script. `--events`
events are put in the queue before the engine starts (straight into
`queue.sqlite3`, so ingest does not compete); the engine then delivers them
to a `webhook` destination (unmetered, so only batching differs) with
`max_batch_events = 1` (each event its own request) or `--batch`. The rate is
events the partner counted between the first poll (every 20 ms) that saw
any and the one that saw them all, so the engine's start-up is left out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import free_port, preload, start_engine, stop  # bench/engine.py
from metering import start_partner_config  # bench/metering.py


def write_config(directory: Path, url: str, batch: int) -> Path:
    config = directory / "deliverydash.toml"
    config.write_text(
        f"""
[engine]
data_dir = "{directory / "data"}"
allow_private_targets = true
export_interval_s = 1

[[sources]]
id = "web"
workspace = "acme"
write_key = "wk_bench_batching"

[[destinations]]
id = "bulk"
source = "web"
integration = "webhook"
url = "{url}"
max_batch_events = {batch}
""",
        encoding="utf-8",
    )
    return config


def run(n: int, batch: int, partner_batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as tmp:
        directory = Path(tmp)
        knobs = f"max_events = {partner_batch}\nmax_bytes = 4000000\n"
        partner, ready = start_partner_config(directory, "batch", knobs)
        try:
            stats_url = ready["control_url"].rstrip("/") + "/_stats/crm"
            config = write_config(directory, ready["partners"][0]["url"], batch)
            preload(directory / "data", n, destination="bulk")
            port = free_port()
            engine = start_engine(config, port)
            try:
                first: tuple[float, int] | None = None
                deadline = time.monotonic() + 900
                while (stats := httpx.get(stats_url).json())["events"] < n and time.monotonic() < deadline:
                    if first is None and stats["events"]:
                        first = (time.monotonic(), stats["events"])
                    time.sleep(0.02)
                ended = time.monotonic()
            finally:
                stop(engine)
        finally:
            partner.terminate()
            partner.wait()
    return {
        "batch": batch,
        "events": stats["events"],
        "requests": stats["requests"],
        "statuses": stats["statuses"],
        # From the first poll that saw events to the one that saw them all (engine start-up left out).
        "events_per_s": (stats["events"] - first[1]) / (ended - first[0]) if first else float("nan"),
        "elapsed_s": ended - first[0] if first else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="events per run (default 20000)")
    parser.add_argument("--batch", type=int, default=100, help="max_batch_events when batching (100)")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores; partner simulator, engine and this script share them")
    results: dict[int, list[dict[str, Any]]] = {1: [], args.batch: []}
    for _ in range(args.runs):
        for batch in results:
            result = run(args.events, batch, max(100, args.batch))
            results[batch].append(result)
            print(f"max_batch_events {batch}: {result}", file=sys.stderr)
    print(f"\n### Batching: {args.events:,} queued events to the `batch` partner, webhook destination\n")
    print("| max_batch_events | requests | events/request | events/s (median) | runs |")
    print("|---|---|---|---|---|")
    for batch, runs in results.items():
        requests = statistics.median(r["requests"] for r in runs)
        rate = statistics.median(r["events_per_s"] for r in runs)
        print(f"| {batch} | {requests:,.0f} | {args.events / requests:,.1f} | {rate:,.0f} | {len(runs)} |")


if __name__ == "__main__":
    main()
