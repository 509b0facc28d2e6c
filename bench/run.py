"""Benchmarks of the foundation: simulate throughput, bytes per attempt, query latency.

    .venv/bin/python bench/run.py [--attempts 100000000] [--runs 3] [--data-dir /path] [--skip-simulate]

Simulates N attempts (each run into a fresh directory; the last one is kept
for the query benchmarks), reports the median attempts/s, the bytes per
attempt on disk against the floor the unique ids impose, and the median
latency of every query in `queries/api.py` for the whole day and for one
workspace (the busiest, a worst case). Prints a Markdown table for
docs/benchmarks.md. Figures are machine-dependent: record the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import duckdb

from ingest.files import attempts_glob
from ingest.simulate import simulate_day
from queries import api
from queries.log import connect
from queries.scope import Scope

DAY = dt.date(2026, 11, 27)

#: Random bits in each id: a ULID's 80 (attempt_id, job_id); a uuid4's 122 (message ids).
ULID_RANDOM_BYTES = 80 / 8
UUID4_RANDOM_BYTES = 122 / 8


def _median_time(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """(first run, median of the following `runs`) in seconds."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def bench_simulate(attempts: int, runs: int, root: Path) -> tuple[float, Path]:
    rates = []
    target = root / "run0"
    for run in range(runs):
        target = root / f"run{run}"
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        simulate_day(attempts, target, date=DAY)
        seconds = time.perf_counter() - start
        rates.append(attempts / seconds)
        print(f"  simulate run {run + 1}: {seconds:.1f} s, {attempts / seconds:,.0f} attempts/s", flush=True)
        if run < runs - 1:
            shutil.rmtree(target)
    return statistics.median(rates), target


def storage(data_dir: Path) -> dict[str, float]:
    files = [
        Path(p)
        for p in duckdb.sql(f"SELECT file FROM glob('{attempts_glob(data_dir)}')").fetchall()
        for p in p
    ]
    total = sum(f.stat().st_size for f in files)
    rows, events = duckdb.sql(
        f"SELECT count(*), sum(event_count) FROM read_parquet('{attempts_glob(data_dir)}')"
    ).fetchall()[0]
    id_columns = duckdb.sql(
        f"""SELECT sum(total_compressed_size) FROM parquet_metadata('{attempts_glob(data_dir)}')
            WHERE path_in_schema IN ('attempt_id', 'job_id')
               OR path_in_schema LIKE 'events%message_id'"""
    ).fetchall()[0][0]
    floor = 2 * ULID_RANDOM_BYTES + UUID4_RANDOM_BYTES * events / rows
    return {
        "rows": rows,
        "files": len(files),
        "bytes_per_row": total / rows,
        "id_bytes_per_row": id_columns / rows,
        "floor": floor,
        "events_per_row": events / rows,
    }


def busiest_workspace(data_dir: Path) -> str:
    return duckdb.sql(
        f"SELECT workspace_id FROM read_parquet('{attempts_glob(data_dir)}') "
        "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).fetchall()[0][0]


def bench_queries(data_dir: Path, runs: int) -> list[tuple[str, str, float, float]]:
    start = dt.datetime.combine(DAY, dt.time(), dt.UTC)
    end = start + dt.timedelta(days=1)
    workspace = busiest_workspace(data_dir)
    results = []
    with connect(data_dir) as log:
        for scope_label, scope in (
            ("whole day", Scope.all()),
            (f"workspace {workspace}", Scope.workspace(workspace)),
        ):
            for name in (
                "day_report",
                "funnel",
                "by_status_code",
                "by_error",
                "by_destination",
                "by_integration",
                "hourly",
                "latency",
                "error_samples",
                "retries",
                "retry_recovery",
                "delivery_delay",
                "delivery_delay_histogram",
                "destination_failures",
                "explorer_hours",
                "explorer_samples",
            ):
                fn = getattr(api, name)
                first, median = _median_time(lambda fn=fn, scope=scope: fn(log, scope, start, end), runs)
                results.append((name, scope_label, first, median))
                _print_timing(name, scope_label, first, median)
            # One job retried several times: its records span hours.
            job_id = log.sql(
                f"SELECT job_id FROM attempts WHERE date = DATE '{DAY}' AND hour = 12 AND attempt = 3 "
                + ("" if scope.value is None else f"AND workspace_id = '{scope.value}' ")
                + "ORDER BY job_id LIMIT 1"
            ).item()
            first, median = _median_time(partial(api.job_history, log, scope, job_id), runs)
            results.append(("job_history", scope_label, first, median))
            _print_timing("job_history", scope_label, first, median)
    return results


def _print_timing(name: str, scope_label: str, first: float, median: float) -> None:
    print(
        f"  {name:24s} {scope_label:22s} first {first * 1000:8.0f} ms  median {median * 1000:8.0f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--attempts", type=int, default=100_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path("bench/.data"))
    parser.add_argument(
        "--skip-simulate", action="store_true", help="reuse --data-dir/run* from an earlier run"
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, duckdb {duckdb.__version__}"
    )
    if args.skip_simulate:
        data_dir = sorted(args.data_dir.glob("run*"))[-1]
    else:
        print(f"simulate {args.attempts:,} attempts x {args.runs}")
        rate, data_dir = bench_simulate(args.attempts, args.runs, args.data_dir)
        print(f"simulate: median {rate:,.0f} attempts/s ({args.attempts / rate:.1f} s for {args.attempts:,})")
    s = storage(data_dir)
    print(
        f"storage: {s['rows']:,} rows in {s['files']} files, {s['bytes_per_row']:.1f} bytes/attempt "
        f"(ids alone {s['id_bytes_per_row']:.1f}); "
        f"floor of the ids' random bits {s['floor']:.1f} bytes/attempt "
        f"({s['events_per_row']:.3f} events/attempt); ratio {s['bytes_per_row'] / s['floor']:.2f}"
    )
    print("queries (first run, median of the next runs):")
    bench_queries(data_dir, args.runs)


if __name__ == "__main__":
    main()
