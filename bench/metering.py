"""Metering benchmark: a partner limited to 10 requests/s, offered 100 events/s, metering on and off.

    .venv/bin/python bench/metering.py [--duration 120] [--offered 100] [--partner-rate 10]

Three processes share this machine's cores: the partner simulator
(`deliverydash partners`, one `rate-limited` partner), the engine
(`deliverydash serve`) and this script, which sends `--offered` events/s
through the tracking API (`/v1/batch`, 10 events a request) for
`--duration` seconds, waits until the engine's queue is empty (or
`--drain-timeout`), stops the engine and reads its attempt log.

The destination is a `crm-records` integration (documented limit 10/s,
burst 10, the rate metering starts at) set to one event per request
(`max_batch_events = 1`), so the offered load is ten times what the partner
takes: metering's job is to send at the partner's pace instead of learning
it from 429s. The retry schedule is compressed (backoff 1 s doubling to
30 s, at most 10 attempts, a 30-minute window, Retry-After honoured up to
60 s) so that a run ends in minutes; with metering on, the backlog waits in
the queue, where no window runs, so every event is delivered however long
the drain takes (about `duration x offered / partner rate`).

Reported per mode: requests the partner received and the share answered
429 (the partner's own counts), events accepted, delivered and lost
(dropped or failed), and the delivery delay of delivered events (end of
the delivering request minus receipt, p50/p95/max).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from delivery.config import load_config
from delivery.config.admin_token import admin_token

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import ROOT, free_port, start_engine, stop  # bench/engine.py

WRITE_KEY = "wk_bench_metering"
PER_REQUEST = 10


def start_partner(directory: Path, rate: float, burst: int) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """The partner simulator with one `rate-limited` partner called `crm`."""
    return start_partner_config(directory, "rate-limited", f"rate = {rate}\nburst = {burst}\n")


def start_partner_config(
    directory: Path, profile: str, knobs: str, name: str = "crm"
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """`deliverydash partners` with one partner of `profile` (TOML `knobs`); its ready file."""
    config = directory / "partners.toml"
    config.write_text(
        f'control_port = 0\n\n[[partners]]\nname = "{name}"\nprofile = "{profile}"\nport = 0\n{knobs}',
        encoding="utf-8",
    )
    ready = directory / "partners.json"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "deliverydash", "partners", "--config", str(config), "--any-port"),
            *("--ready-file", str(ready), "--ca-file", str(directory / "ca.pem")),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the partner simulator did not start")
        time.sleep(0.05)
    return process, json.loads(ready.read_text())


def write_config(directory: Path, url: str, metering: bool, burst: int) -> Path:
    config = directory / "deliverydash.toml"
    config.write_text(
        f"""
[engine]
data_dir = "{directory / "data"}"
allow_private_targets = true
export_interval_s = 1
metering = {"true" if metering else "false"}
backoff_base_s = 1
backoff_max_s = 30
max_attempts = 10
retry_window_s = 1800
retry_after_max_s = 60

[[sources]]
id = "web"
workspace = "acme"
write_key = "{WRITE_KEY}"

[[destinations]]
id = "crm"
source = "web"
integration = "crm-records"
url = "{url}"
credential = "bench-token"
max_batch_events = 1
rate_limit_burst = {burst}
""",
        encoding="utf-8",
    )
    return config


async def offer(port: int, duration_s: float, per_s: float) -> int:
    """Send `per_s` events/s for `duration_s` through /v1/batch; the events acknowledged."""
    url = f"http://127.0.0.1:{port}/v1/batch"
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    interval = PER_REQUEST / per_s
    accepted = 0
    async with httpx.AsyncClient(headers={"Authorization": auth}, timeout=30) as client:
        started = time.monotonic()
        n = 0
        while (due := started + n * interval) < started + duration_s:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            event = {"type": "track", "event": "Order Completed", "userId": f"user-{n}"}
            batch = [{**event, "messageId": str(uuid.uuid4())} for _ in range(PER_REQUEST)]
            response = await client.post(url, json={"batch": batch})
            if response.status_code == 200:
                accepted += PER_REQUEST
            n += 1
    return accepted


def unfinished(port: int, token: str) -> int:
    status = httpx.get(
        f"http://127.0.0.1:{port}/admin/status", headers={"Authorization": f"Bearer {token}"}
    ).json()
    return int(sum(status["queue"]["by_state"].values()))


def read_log(data_dir: Path) -> dict[str, Any]:
    import duckdb

    glob = str(data_dir / "attempts" / "**" / "*.parquet")
    db = duckdb.connect()
    finals = db.execute(
        f"""
        SELECT outcome, sum(event_count) FROM read_parquet('{glob}', hive_partitioning = false)
        WHERE outcome <> 'retry' GROUP BY outcome
        """
    ).fetchall()
    delays = db.execute(
        f"""
        SELECT quantile_cont(d, 0.5), quantile_cont(d, 0.95), max(d) FROM (
            SELECT epoch(started_at - received_at) + duration_ms / 1000 AS d
            FROM read_parquet('{glob}', hive_partitioning = false) WHERE outcome = 'delivered'
        )
        """
    ).fetchone()
    retried = db.execute(
        f"SELECT count(DISTINCT job_id) FROM read_parquet('{glob}', hive_partitioning = false) "
        "WHERE attempt > 1"
    ).fetchone()
    return {"finals": dict(finals), "delay": delays, "retried_jobs": retried[0] if retried else 0}


def run(args: argparse.Namespace, metering: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-metering-") as tmp:
        directory = Path(tmp)
        partner, ready = start_partner(directory, args.partner_rate, args.partner_burst)
        try:
            url = ready["partners"][0]["url"]
            config = write_config(directory, url, metering, args.partner_burst)
            port = free_port()
            engine = start_engine(config, port)
            try:
                # No admin_token in the config: the engine generated one in its data_dir; read it there.
                token = admin_token(load_config(config)).reveal()
                started = time.monotonic()
                accepted = asyncio.run(offer(port, args.duration, args.offered))
                deadline = time.monotonic() + args.drain_timeout
                while (left := unfinished(port, token)) and time.monotonic() < deadline:
                    time.sleep(1)
                elapsed = time.monotonic() - started
            finally:
                stop(engine)
            stats = httpx.get(ready["control_url"].rstrip("/") + "/_stats/crm").json()
        finally:
            partner.terminate()
            partner.wait()
        log = read_log(directory / "data")
    statuses = {int(k): v for k, v in stats["statuses"].items()}
    delivered = log["finals"].get("delivered", 0)
    return {
        "metering": metering,
        "requests": stats["requests"],
        "share_429": statuses.get(429, 0) / max(1, stats["requests"]),
        "accepted": accepted,
        "delivered": delivered,
        "lost": sum(v for k, v in log["finals"].items() if k in ("dropped", "failed")),
        "unfinished": left,
        "retried_jobs": log["retried_jobs"],
        "delay": log["delay"],
        "elapsed_s": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of offered load (default 120)")
    parser.add_argument("--offered", type=float, default=100.0, help="events/s sent (default 100)")
    parser.add_argument("--partner-rate", type=float, default=10.0, help="the partner's requests/s (10)")
    parser.add_argument("--partner-burst", type=int, default=10, help="the partner's burst (10)")
    parser.add_argument("--drain-timeout", type=float, default=3600.0, help="longest wait for an empty queue")
    parser.add_argument("--only", choices=("on", "off"), default=None, help="run one mode")
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores; partner simulator, engine and load generator share them")
    modes = [m for m in (True, False) if args.only is None or args.only == ("on" if m else "off")]
    results = []
    for metering in modes:
        result = run(args, metering)
        results.append(result)
        print(f"metering {'on' if metering else 'off'}: {result}", file=sys.stderr)
    print(
        f"\n### Metering: {args.offered:g} events/s for {args.duration:g} s, one event per request, "
        f"to a partner taking {args.partner_rate:g} requests/s (burst {args.partner_burst})\n"
    )
    print(
        "| metering | requests | answered 429 | events accepted | delivered | lost | still queued "
        "| jobs retried | delay p50 | delay p95 | delay max | run (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        p50, p95, worst = (f"{d:,.1f} s" if d is not None else "-" for d in r["delay"])
        print(
            f"| {'on' if r['metering'] else 'off'} | {r['requests']:,} | {100 * r['share_429']:.1f} % "
            f"| {r['accepted']:,} | {r['delivered']:,} | {r['lost']:,} | {r['unfinished']:,} "
            f"| {r['retried_jobs']:,} | {p50} | {p95} | {worst} | {r['elapsed_s']:,.0f} |"
        )
    if len(results) == 2 and results[0]["share_429"]:
        print(f"\n429 share cut {results[1]['share_429'] / results[0]['share_429']:,.0f}x by metering")


if __name__ == "__main__":
    main()
