"""How long a partner's evidence pack takes to build, over a simulated day.

    .venv/bin/python bench/evidence.py --data-dir /tmp/ev2m [--runs 3] [--day 2026-11-27] [--partner I]

Builds the pack of the busiest integration (or --partner) over the whole
day with `app.evidence.build_pack`, the one implementation behind
`deliverydash evidence` and the partner page's download, and times:

* first: in a fresh AttemptLog (DuckDB's Parquet footers unread), as the
  command runs it;
* warm: again on the same log (the median of --runs), as a dashboard that
  has been showing pages builds it;

each split by step (figures, scrub, charts and HTML, zip), with the pack's
size. Reads the log only. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

import polars as pl


def busiest_integration(data_dir: str, start: dt.datetime, end: dt.datetime) -> str:
    from queries import Scope, api, connect

    with connect(data_dir) as log:
        frame = api.by_integration(log, Scope.all(), start, end)
    name: str = frame.sort("requests", descending=True).item(0, "integration")
    return name


def timed_build(
    log: object, integration: str, start: dt.datetime, end: dt.datetime
) -> tuple[dict[str, float], int]:
    """Seconds per step, and the zip's size in bytes."""
    from app.evidence import build_pack

    marks: list[tuple[str, float]] = []
    began = time.perf_counter()
    zipped = build_pack(
        log, integration, start, end, progress=lambda step: marks.append((step, time.perf_counter()))
    )  # type: ignore[arg-type]
    done = time.perf_counter()
    names = ["figures", "tenant ids", "charts + HTML", "scrub + zip"]
    times = [at for _, at in marks] + [done]
    steps = {name: times[i + 1] - times[i] for i, name in enumerate(names)}
    steps["total"] = done - began
    return steps, len(zipped)


def main() -> None:
    from queries import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--day", type=dt.date.fromisoformat, default=dt.date(2026, 11, 27))
    parser.add_argument("--partner")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    start = dt.datetime.combine(args.day, dt.time(), dt.UTC)
    end = start + dt.timedelta(days=1)
    integration = args.partner or busiest_integration(args.data_dir, start, end)
    with connect(args.data_dir) as log:
        requests = int(log.sql("SELECT sum(records) FROM outcomes WHERE attempt >= 1").item(0, 0))
        first, size = timed_build(log, integration, start, end)
        warm = [timed_build(log, integration, start, end)[0] for _ in range(args.runs)]
    median = {name: statistics.median(run[name] for run in warm) for name in first}
    print(
        f"{Path(args.data_dir).name}: {requests:,} requests in the log; pack of {integration} "
        f"({args.day}), {size / 1e6:.1f} MB\n"
    )
    table = pl.DataFrame(
        {
            "step": list(first),
            "first (s)": list(first.values()),
            f"warm, median of {args.runs} (s)": list(median.values()),
        }
    )
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for row in table.iter_rows():
        print(f"| {row[0]} | {row[1]:.2f} | {row[2]:.2f} |")


if __name__ == "__main__":
    main()
