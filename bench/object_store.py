"""The attempt log on an S3-compatible store against the same log on local disk: the day report's speed.

    .venv/bin/python -m bench.object_store --data-dir /tmp/dd100m [--runs 3]
    AWS_ENDPOINT_URL=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \\
        .venv/bin/python -m bench.object_store --data-dir D --log s3://bucket/prefix [--upload]

Without AWS_* variables it starts its own SeaweedFS on loopback
(tests/objectstore.py) and uploads the log. `--upload` copies the local
log's attempt files and rollups to `--log` first (with a progress count).
Then it times, on both, the named queries of the day report's page (first
run and median of `--runs`) for the whole day and the busiest workspace.
Figures are machine-dependent; loopback hides the network's latency.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import duckdb

from bench.run import DAY, _median_time, busiest_workspace
from ingest.logstore import LocalStore, open_store
from queries import api
from queries.log import connect
from queries.scope import Scope

QUERIES = ("day_report", "funnel", "by_status_code", "by_destination", "hourly", "error_samples")


def upload(local: LocalStore, url: str) -> int:
    remote = open_store(url)
    keys = [s.key for s in local.list("") if s.key.startswith(("attempts/date=", "rollups/"))]

    def put(key: str) -> None:
        remote.put_bytes(key, local.read_bytes(key))

    with ThreadPoolExecutor(8) as pool:
        for done, _ in enumerate(pool.map(put, keys), 1):
            if done % 100 == 0 or done == len(keys):
                print(f"\r  uploaded {done:,}/{len(keys):,} files", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return len(keys)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--log", help="s3://bucket/prefix (default: a SeaweedFS started here)")
    parser.add_argument("--upload", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, duckdb {duckdb.__version__}")
    server = None
    if "AWS_ENDPOINT_URL" not in os.environ:
        from tests.objectstore import BUCKET, start_s3

        server = start_s3()
        os.environ.update(server.environment())
        args.log, args.upload = f"s3://{BUCKET}/bench", True
    try:
        if args.upload:
            began = time.perf_counter()
            files = upload(LocalStore(args.data_dir), args.log)
            print(f"uploaded {files:,} files in {time.perf_counter() - began:.0f} s")
        start = dt.datetime.combine(DAY, dt.time(), dt.UTC)
        end = start + dt.timedelta(days=1)
        workspace = busiest_workspace(args.data_dir)
        rows = {}
        for label, location in (("local disk", args.data_dir), ("object store", args.log)):
            with connect(location) as log:
                for scope_label, scope in (
                    ("whole day", Scope.all()),
                    ("busiest workspace", Scope.workspace(workspace)),
                ):
                    for name in QUERIES:
                        fn = getattr(api, name)
                        first, median = _median_time(
                            lambda fn=fn, scope=scope, log=log: fn(log, scope, start, end), args.runs
                        )
                        rows[(name, scope_label, label)] = (first, median)
                        timing = f"first {first * 1000:7.0f} ms  median {median * 1000:7.0f} ms"
                        print(f"  {label:12s} {name:16s} {scope_label:18s} {timing}", flush=True)
        print("\n| query | scope | local: first / median | object store: first / median | ratio of medians |")
        print("|---|---|---|---|---|")
        for scope_label in ("whole day", "busiest workspace"):
            for name in QUERIES:
                lf, lm = rows[(name, scope_label, "local disk")]
                sf, sm = rows[(name, scope_label, "object store")]
                local = f"{lf * 1000:.0f} / {lm * 1000:.0f} ms"
                remote = f"{sf * 1000:.0f} / {sm * 1000:.0f} ms"
                print(f"| {name} | {scope_label} | {local} | {remote} | {sm / lm:.1f}x |")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
