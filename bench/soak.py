"""Soak: the engine's memory over a long run under a steady load.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 1000]

Starts the engine and a loopback sink as in bench/engine.py, posts `--rate`
events per second (100-event batches, paced) for `--minutes`, and samples the
engine's resident memory (/proc/<pid>/status VmRSS) every 15 s, with the
queue depth from /metrics. Prints the samples and the growth over the second
half (after warm-up). Bounded: it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
from engine import WRITE_KEY, batch_body, free_port, sink_stats, start_engine, start_sink, stop, write_config

SAMPLE_S = 15.0


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


def queued(port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(int(float(v)) for v in re.findall(r"^deliverydash_queue_jobs\{[^}]*\} (\S+)$", text, re.M))


async def load(
    port: int, rate: float, seconds: float, samples: list[tuple[float, float, int]], pid: int
) -> int:
    url = f"http://127.0.0.1:{port}/v1/batch"
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    counter, accepted = [0], 0
    interval = 100 / rate
    started = time.monotonic()
    next_sample = started
    async with aiohttp.ClientSession() as session:
        while (now := time.monotonic()) - started < seconds:
            if now >= next_sample:
                samples.append((now - started, rss_mib(pid), await asyncio.to_thread(queued, port)))
                at, rss, jobs = samples[-1]
                print(f"  {at:6.0f} s  RSS {rss:7.1f} MiB  queued jobs {jobs:,}", flush=True)
                next_sample += SAMPLE_S
            async with session.post(url, data=batch_body(100, counter), headers=headers) as response:
                await response.read()
                accepted += 100 if response.status == 200 else 0
            await asyncio.sleep(max(0.0, started + (accepted / 100) * interval - time.monotonic()))
    return accepted


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    args = parser.parse_args()
    samples: list[tuple[float, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        sink, sink_port = start_sink()
        port = free_port()
        engine = start_engine(write_config(Path(tmp), sink_port), port)
        try:
            accepted = asyncio.run(load(port, args.rate, args.minutes * 60, samples, engine.pid))
            delivered = sink_stats(sink_port)["count"]
        finally:
            stop(engine)
            sink.terminate()
            sink.wait()
    half = [s for s in samples if s[0] >= args.minutes * 30]
    growth = half[-1][1] - half[0][1] if len(half) > 1 else float("nan")
    print(f"accepted {accepted:,} events, delivered {delivered:,.0f} requests in {args.minutes:g} min")
    peak = max(s[1] for s in samples)
    print(
        f"RSS first {samples[0][1]:.1f} MiB, max {peak:.1f} MiB, last {samples[-1][1]:.1f} MiB; "
        f"over the second half {growth:+.1f} MiB"
    )


if __name__ == "__main__":
    main()
