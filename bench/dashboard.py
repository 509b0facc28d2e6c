"""How long each dashboard page takes to render, over a simulated day (default: 100 million attempts).

    .venv/bin/python bench/dashboard.py --data-dir /tmp/dd100m [--runs 5] [--day D --days N]

Runs the real entry file with Streamlit's AppTest, in this process, as a
viewer of each kind (engineer, the busiest workspace, the busiest
integration), and times every page it may open:

* first: the first render after start, Streamlit's caches empty and DuckDB's
  Parquet footers unread: what the first visitor after a restart waits;
* uncached: Streamlit's query cache cleared before each run, DuckDB warm:
  what a visitor waits once the 30 s cache has expired (the median of --runs);
* cached: rendered again within the cache's lifetime (the median of --runs).

`--days N` opens every page on the range of N whole days ending with
`--day` (default: the busiest day). Prints a Markdown table for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import polars as pl
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "app" / "main.py")
SECRET = "bench-dashboard-secret-0123456789"
PAGES = {
    "engineer": ("day", "customer", "partner", "retries", "explorer", "sql_console"),
    "workspace": ("customer", "day", "retries", "explorer"),
    "partner": ("partner", "day", "retries"),
}


def busiest(data_dir: Path) -> tuple[str, str, dt.date]:
    """The busiest workspace and integration, and the day with the most events received."""
    from queries import Scope, api, connect

    with connect(data_dir) as log:
        day = log.sql(
            "SELECT timezone('UTC', received_hour)::DATE AS day, sum(events) AS events FROM outcomes "
            "WHERE attempt <= 1 GROUP BY ALL ORDER BY events DESC LIMIT 1"
        ).item(0, "day")
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        end = start + dt.timedelta(days=1)
        destinations = api.by_destination(log, Scope.all(), start, end)
        integrations = api.by_integration(log, Scope.all(), start, end)
    workspace = (
        destinations.group_by("workspace_id")
        .agg(pl.col("requests").sum())
        .sort("requests", descending=True)
        .item(0, "workspace_id")
    )
    integration = integrations.sort("requests", descending=True).item(0, "integration")
    return workspace, integration, day


def render(at: AppTest, page: str) -> float:
    started = time.perf_counter()
    at.switch_page(f"views/{page}.py").run()
    elapsed = time.perf_counter() - started
    if at.exception:
        raise SystemExit(f"{page}: {at.exception[0].value}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default="data", help="a data directory with a simulated day")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per page (default: %(default)s)")
    parser.add_argument("--day", type=dt.date.fromisoformat, help="last day shown (default: the busiest)")
    parser.add_argument("--days", type=int, default=1, help="whole days shown (default: %(default)s)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ["DELIVERYDASH_DATA_DIR"] = str(Path(args.data_dir).resolve())
    os.environ["DELIVERYDASH_SECRET"] = SECRET

    from app.access import Viewer, ViewerKind, sign

    workspace, integration, day = busiest(Path(args.data_dir))
    day = args.day or day
    expires = int(time.time()) + 3600
    viewers = {
        "engineer": Viewer(ViewerKind.ENGINEER, None, expires),
        "workspace": Viewer(ViewerKind.WORKSPACE, workspace, expires),
        "partner": Viewer(ViewerKind.PARTNER, integration, expires),
    }
    print(
        f"{args.days} day(s) to {day}, busiest workspace {workspace}, busiest integration {integration}",
        file=sys.stderr,
    )
    rows = []
    for kind, viewer in viewers.items():
        at = AppTest.from_file(MAIN, default_timeout=300)
        at.query_params["token"] = sign(viewer, SECRET)
        at.query_params["day"] = day.isoformat()
        at.query_params["days"] = str(args.days)
        for page in PAGES[kind]:
            st.cache_data.clear()
            first = render(at, page)
            uncached = []
            for _ in range(args.runs):
                st.cache_data.clear()
                uncached.append(render(at, page))
            cached = [render(at, page) for _ in range(args.runs)]
            rows.append((kind, page, first, statistics.median(uncached), statistics.median(cached)))
            print(
                f"{kind:<10} {page:<12} first {first:6.3f} s  uncached {rows[-1][3]:6.3f} s", file=sys.stderr
            )
    print("| viewer | page | first render (s) | uncached, median (s) | cached, median (s) |")
    print("|---|---|---:|---:|---:|")
    for kind, page, first, uncached_s, cached_s in rows:
        print(f"| {kind} | {page} | {first:.3f} | {uncached_s:.3f} | {cached_s:.3f} |")


if __name__ == "__main__":
    main()
