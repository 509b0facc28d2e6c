"""Compact the attempt log: every closed hour's small files (the engine's exporter writes one every few
seconds) merged into one sorted file with its rollups, announced by a manifest so that queries running
meanwhile count every record once; superseded files deleted once their grace period is over. The engine
does this on its own every [log] compact_interval_s (docs/log-store.md). Closed days then get their day
rollups, which ranges of whole days read."""

from __future__ import annotations

import argparse
import sys

from deliverydash import options

NAME = "compact"
HELP = "merge the attempt log's closed hours into few sorted files"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument(
        "--closed-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="an hour is closed this long after its end (default: 3600, or what --config's "
        "[engine] settings need, whichever is longer)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=None,
        metavar="SECONDS",
        help="keep superseded files this long after their compaction, for queries that began "
        "before it (default: 600)",
    )
    options.add_data_options(parser, reads_log=True)


def run(args: argparse.Namespace) -> None:
    """Compact with a progress bar over the log's hours, and say what was done."""
    from tqdm import tqdm

    from ingest.compaction import CLOSE_AFTER_S, GRACE_S, compact, log_hours
    from ingest.day_rollups import build_days
    from ingest.logstore import open_store

    location = options.log_location(args)
    closed_after = args.closed_after
    if closed_after is None:
        closed_after = CLOSE_AFTER_S
        if args.config:
            from delivery.maintenance import close_after_s

            closed_after = close_after_s(options.engine_config(args.config))
    store = open_store(location)
    hours = log_hours(store)
    with tqdm(total=len(hours), desc="hours looked at", unit=" hours", file=sys.stderr) as bar:
        result = compact(
            store,
            hours=hours,
            close_after_s=closed_after,
            grace_s=GRACE_S if args.grace is None else args.grace,
            progress=bar.update,
        )
    dates = sorted({hour.date for hour in hours})
    with tqdm(total=len(dates), desc="days looked at", unit=" days", file=sys.stderr) as bar:
        days = build_days(store, close_after_s=closed_after, progress=bar.update)
    print(
        f"{location}: {result.hours:,} hours compacted ({result.merged:,} files merged into "
        f"{result.written:,}, {result.rows:,} records); {result.deleted:,} superseded files deleted; "
        f"day rollups built for {len(days.built):,} closed days"
    )
    for date in days.unready:
        print(
            f"{date}: no day rollups yet: an attempt file lacks its rollups (run `deliverydash repair`)",
            file=sys.stderr,
        )
    for hour in result.skipped:
        print(
            f"{hour}: left alone (another compactor has it, or this run outlived the grace)", file=sys.stderr
        )
