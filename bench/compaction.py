"""The log the engine writes, before and after compaction, against the simulator's day of the same size.

    .venv/bin/python bench/compaction.py [--attempts 2000000] [--export-interval 5] [--runs 3]

1. Simulates a day (one sorted file per hour, as `deliverydash simulate` writes it).
2. Writes the same records again as the engine's exporter would over that
   day: one file per `--export-interval` seconds of requests (17,280 files
   at the default 5 s), each with its six rollups, in 2 processes.
3. Times every named query (whole day and the busiest workspace, first run
   and median of `--runs`) on the simulated day, on the exporter's day,
   and on it once compacted (`ingest.compaction.compact`, the superseded
   files swept), with the ratio of compacted to simulated per query.
4. Bytes per attempt of each layout against the floor of the ids' random bits.

Prints Markdown for docs/benchmarks.md. Figures are machine-dependent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from bench.run import DAY, bench_queries, storage
from ingest.compaction import compact
from ingest.logstore import LocalStore
from ingest.simulate import simulate_day
from ingest.writer import publish_hours


def export_like_the_engine(simulated: Path, target: Path, interval_s: int, workers: int = 2) -> int:
    """The simulated day's records as exporter files, one per `interval_s` of started_at; how many."""
    hours: dict[str, list[str]] = {}
    for stored in LocalStore(simulated).list("attempts/date="):
        hours.setdefault(stored.key.rsplit("/", 1)[0], []).append(stored.key)
    with ProcessPoolExecutor(workers) as pool:
        tasks = [(simulated, target, keys, interval_s) for keys in hours.values()]
        return sum(pool.map(_export_hour, tasks))


def _export_hour(task: tuple[Path, Path, list[str], int]) -> int:
    """One hour's files (the simulator writes a few) cut into one file per export interval."""
    simulated, target, keys, interval_s = task
    table = pa.concat_tables(LocalStore(simulated).read_table(key) for key in keys)
    micros = pc.cast(pc.cast(table["started_at"], pa.timestamp("us", "UTC")), pa.int64())
    slot = pc.divide(micros, interval_s * 1_000_000)
    table = table.append_column("_slot", slot).sort_by("_slot")
    slots = table["_slot"].to_numpy()
    store = LocalStore(target)
    files = 0
    start = 0
    while start < len(slots):
        end = int(slots.searchsorted(slots[start], side="right"))
        publish_hours(table.slice(start, end - start).drop_columns("_slot"), store, prefix="outbox-")
        files += 1
        start = end
    return files


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--attempts", type=int, default=2_000_000)
    parser.add_argument("--export-interval", type=int, default=5, help="seconds per exporter file")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path("bench/.data/compaction"))
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, duckdb {duckdb.__version__}"
    )
    shutil.rmtree(args.data_dir, ignore_errors=True)
    simulated, exported = args.data_dir / "simulated", args.data_dir / "exported"
    began = time.perf_counter()
    simulate_day(args.attempts, simulated, date=DAY)
    print(f"simulated {args.attempts:,} attempts in {time.perf_counter() - began:.0f} s")
    began = time.perf_counter()
    files = export_like_the_engine(simulated, exported, args.export_interval)
    print(f"exported as the engine would: {files:,} attempt files in {time.perf_counter() - began:.0f} s")
    layouts: dict[str, dict[str, tuple[float, float]]] = {}
    sizes = {}
    for label, data_dir in (("simulated", simulated), ("exported", exported)):
        sizes[label] = storage(data_dir)
        print(f"queries on the {label} day ({sizes[label]['files']:,} attempt files):", flush=True)
        layouts[label] = {f"{n} / {s}": (f, m) for n, s, f, m in bench_queries(data_dir, args.runs)}
    store = LocalStore(exported)
    later = dt.datetime.combine(DAY, dt.time(), dt.UTC).timestamp() + 3 * 86_400
    began = time.perf_counter()
    result = compact(store, clock=lambda: later)
    compacted_s = time.perf_counter() - began
    swept = compact(store, clock=lambda: later + 3_600)
    print(
        f"compacted {result.hours} hours ({result.merged:,} files into {result.written}, "
        f"{result.rows:,} records) in {compacted_s:.0f} s; {swept.deleted:,} superseded files swept"
    )
    sizes["compacted"] = storage(exported)
    print(f"queries on the compacted day ({sizes['compacted']['files']:,} attempt files):", flush=True)
    layouts["compacted"] = {f"{n} / {s}": (f, m) for n, s, f, m in bench_queries(exported, args.runs)}

    print("\n| query / scope | simulated | exporter's files | compacted | compacted / simulated |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for key, (_, simulated_ms) in layouts["simulated"].items():
        exported_ms = layouts["exported"][key][1]
        compacted_ms = layouts["compacted"][key][1]
        ratio = compacted_ms / simulated_ms
        worst = max(worst, ratio)
        print(
            f"| {key} | {simulated_ms * 1000:.0f} ms | {exported_ms * 1000:.0f} ms | "
            f"{compacted_ms * 1000:.0f} ms | {ratio:.2f}x |"
        )
    print(f"\nworst ratio compacted / simulated: {worst:.2f}x")
    print("\n| layout | attempt files | bytes/attempt | floor | ratio |")
    print("|---|---|---|---|---|")
    for label, s in sizes.items():
        print(
            f"| {label} | {s['files']:,} | {s['bytes_per_row']:.1f} | {s['floor']:.1f} | "
            f"{s['bytes_per_row'] / s['floor']:.2f}x |"
        )


if __name__ == "__main__":
    main()
