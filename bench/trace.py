"""The per-event trace on a big day: the message index's size, and how long a lookup takes.

    .venv/bin/python bench/trace.py index --log /tmp/dd100m --into /tmp/dd100m-trace
    .venv/bin/python bench/trace.py lookup --log /tmp/dd100m-trace [--runs 5] [--day 2026-11-27]

`index` builds the `message_index` rollup of every attempt file of `--log`
into `--into`, a copy of the log made of hard links to its attempt files and
other rollups' files (so a shared log is never written to), and prints the index's
bytes per attempt beside the log's. `lookup` traces message ids drawn from
the day's attempt files (some events of a busy destination, some of a quiet
one, one id that is in no file) with `queries.trace.trace_event`, first in a
fresh AttemptLog and then warm, and times the fan-out completeness figure
of the busiest workspace. Reads the log only. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from pathlib import Path

import pyarrow.parquet as pq

from ingest.files import ATTEMPTS_DIR
from ingest.logstore import LocalStore
from ingest.rollup import ROLLUPS_DIR, build_rollups, rollup_key, rollup_tree, write_options

_INDEX_COLUMNS = ["attempt", "destination_id", "outcome", "events"]


def _tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*.parquet"))


def _mirror(source: Path, target: Path) -> None:
    """`target` as a tree of directories like `source`'s, its files hard links to `source`'s.

    The log's sandboxed connection reads only below the log's own directories
    (`queries.catalog.readable_dirs`) and DuckDB resolves symbolic links, so
    the copy is made of hard links: no byte is copied and the shared log's
    files are left as they are (deleting the copy removes the links alone).
    """
    for path in source.rglob("*.parquet"):
        link = target / path.relative_to(source)
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.link(path.resolve(), link)


def build_index(log: Path, into: Path) -> None:
    """Mirror `log`'s attempts and rollups into `into` and build the message index there."""
    for tree in (ATTEMPTS_DIR, ROLLUPS_DIR):
        if (into / tree).is_symlink():
            (into / tree).unlink()
    _mirror(log / ATTEMPTS_DIR, into / ATTEMPTS_DIR)
    for rollup in sorted(os.listdir(log / ROLLUPS_DIR)):
        if rollup != "message_index":
            if (into / ROLLUPS_DIR / rollup).is_symlink():
                (into / ROLLUPS_DIR / rollup).unlink()
            _mirror(log / ROLLUPS_DIR / rollup, into / ROLLUPS_DIR / rollup)
    store = LocalStore(into)
    files = sorted((log / ATTEMPTS_DIR).rglob("*.parquet"))
    began, attempts = time.perf_counter(), 0
    for count, path in enumerate(files, 1):
        date_part, hour_part = path.parent.parent.name, path.parent.name
        date, hour = date_part.removeprefix("date="), int(hour_part.removeprefix("hour="))
        key = rollup_key("message_index", date, hour, path.name)
        if (into / key).exists():
            attempts += pq.ParquetFile(path).metadata.num_rows
            continue
        table = pq.read_table(path, columns=_INDEX_COLUMNS)
        attempts += table.num_rows
        rows = build_rollups(table, ["message_index"])["message_index"]
        store.publish(key, rows, **write_options("message_index"))
        print(f"{count}/{len(files)} {path.name}: {rows.num_rows:,} index rows", flush=True)
    index_bytes = _tree_bytes(into / rollup_tree("message_index"))
    log_bytes = _tree_bytes(log / ATTEMPTS_DIR)
    print(f"\nbuilt in {time.perf_counter() - began:.0f} s")
    print("| attempts | index bytes | bytes/attempt | log bytes/attempt |")
    print("|---|---|---|---|")
    print(f"| {attempts:,} | {index_bytes:,} | {index_bytes / attempts:.1f} | {log_bytes / attempts:.1f} |")


def _sample_ids(log: Path, day: str) -> list[str]:
    """Message ids to trace: an event of a busy destination's retried job, a quiet one's, and none."""
    import duckdb

    hour = log / ATTEMPTS_DIR / f"date={day}" / "hour=12" / "*.parquet"
    rows = duckdb.sql(
        f"SELECT events[1].message_id AS id, destination_id, attempt FROM read_parquet('{hour}') "
        "USING SAMPLE 20000 ROWS"
    ).pl()
    busiest = rows.group_by("destination_id").len().sort("len", descending=True)
    busy = rows.filter(rows["destination_id"] == busiest.item(0, "destination_id")).item(0, "id")
    quiet = rows.filter(rows["destination_id"] == busiest.item(-1, "destination_id")).item(0, "id")
    retried = rows.filter(rows["attempt"] > 1).item(0, "id")
    return [busy, quiet, retried, "no-such-message-id"]


def bench_lookup(log: Path, day: str, runs: int) -> None:
    """Time `trace_event` over the whole day, first in a fresh log and warm, and `fanout`."""

    from queries import Scope, connect
    from queries.trace import fanout, trace_event

    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    print("| message | first (s) | warm median (s) | destinations | records |")
    print("|---|---|---|---|---|")
    for message_id in _sample_ids(log, day):
        with connect(log) as fresh:
            began = time.perf_counter()
            trace = trace_event(fresh, Scope.all(), message_id, start, end)
            first = time.perf_counter() - began
            warm = []
            for _ in range(runs):
                began = time.perf_counter()
                trace_event(fresh, Scope.all(), message_id, start, end)
                warm.append(time.perf_counter() - began)
        print(
            f"| `{message_id[:12]}` | {first:.2f} | {statistics.median(warm):.2f} "
            f"| {trace.destinations.height} | {trace.attempts.height} |"
        )
    _steps(log, message_id=_sample_ids(log, day)[2], start=start, end=end, runs=runs)
    # The customer page's figure: one workspace's sources (the busy event's). Over every workspace
    # of a 100M day the aggregate holds ~100M events; the memory limit makes DuckDB spill, not swap.
    workspace = trace_event_workspace(log, start, end)
    with connect(log, memory_limit="4GiB") as fresh:
        began = time.perf_counter()
        sources = fanout(fresh, Scope.workspace(workspace), start, end)
        took = time.perf_counter() - began
    print(f"\nfanout of workspace {workspace}: {took:.1f} s, {sources.height:,} sources")


def _steps(log: Path, *, message_id: str, start: dt.datetime, end: dt.datetime, runs: int) -> None:
    """Warm medians of the lookup's three queries, for the retried event."""
    from queries import Scope, connect

    timings: dict[str, list[float]] = {"trace_index": [], "trace_attempts": [], "trace_destinations": []}
    with connect(log) as fresh:
        for _ in range(runs + 1):  # the first run warms the footers
            began = time.perf_counter()
            places = fresh.lookup("trace_index", Scope.all(), start, end, message_id=message_id)
            timings["trace_index"].append(time.perf_counter() - began)
            began = time.perf_counter()
            records = fresh.lookup(
                "trace_attempts",
                Scope.all(),
                start,
                end,
                message_id=message_id,
                destinations=places["destination_id"].unique().to_list(),
                dates=places["date"].unique().to_list(),
                hours=places["hour"].unique().to_list(),
            )
            timings["trace_attempts"].append(time.perf_counter() - began)
            began = time.perf_counter()
            first = records.row(0, named=True)
            fresh.lookup(
                "trace_destinations",
                Scope.all(),
                start,
                end,
                workspace_id=first["workspace_id"],
                source_id=first["source_id"],
            )
            timings["trace_destinations"].append(time.perf_counter() - began)
    print("\n| query (warm median) | s |\n|---|---|")
    for name, taken in timings.items():
        print(f"| {name} | {statistics.median(taken[1:]):.2f} |")


def trace_event_workspace(log: Path, start: object, end: object) -> str:
    """The busiest workspace of the day's hour 12 (what `_sample_ids` draws from)."""
    import duckdb

    hour = log / ATTEMPTS_DIR / f"date={str(start)[:10]}" / "hour=12" / "*.parquet"
    rows = duckdb.sql(
        f"SELECT workspace_id FROM read_parquet('{hour}') GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).fetchall()
    return str(rows[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    index = commands.add_parser("index")
    index.add_argument("--log", type=Path, required=True)
    index.add_argument("--into", type=Path, required=True)
    lookup = commands.add_parser("lookup")
    lookup.add_argument("--log", type=Path, required=True)
    lookup.add_argument("--day", default="2026-11-27")
    lookup.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.command == "index":
        build_index(args.log, args.into)
    else:
        bench_lookup(args.log, args.day, args.runs)


if __name__ == "__main__":
    main()
