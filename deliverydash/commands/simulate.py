"""Simulate a day of delivery attempts, calibrated to the seed study, into the partitioned Parquet
attempt log."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from deliverydash import options

NAME = "simulate"
HELP = "write a realistic simulated day of delivery attempts"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument(
        "--attempts", type=options.positive_int, required=True, help="attempt records to write"
    )
    parser.add_argument(
        "--date", type=options.date, default=dt.date(2026, 11, 27), help="UTC day (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="random seed of the simulated world (default: %(default)s)"
    )
    parser.add_argument("--replace", action="store_true", help="overwrite this date's earlier simulation")
    options.add_output_data_dir(parser, "data root the day is written under, in attempts/")


def run(args: argparse.Namespace) -> None:
    """Write the day, with a progress bar."""
    from tqdm import tqdm

    from ingest.day_rollups import build_days
    from ingest.logstore import LocalStore
    from ingest.simulate import simulate_day, simulation_files

    attempts_dir = Path(args.data_dir) / "attempts"
    if simulation_files(args.data_dir, args.date) and not args.replace:
        raise options.CommandError(
            f"{attempts_dir} already holds a simulated {args.date} "
            "(pass --replace to overwrite it, or --date for another day)"
        )
    print(
        f"Simulating {args.attempts:,} delivery attempts on {args.date} (seed {args.seed}) "
        f"into {attempts_dir}",
        file=sys.stderr,
    )
    with tqdm(total=args.attempts, unit=" attempts", unit_scale=True, file=sys.stderr) as bar:
        result = simulate_day(
            args.attempts,
            args.data_dir,
            date=args.date,
            seed=args.seed,
            progress=bar.update,
            replace=args.replace,
        )
    print(
        f"Wrote {result.attempts:,} attempts for {result.jobs:,} jobs carrying {result.events:,} events "
        f"in {len(result.files)} Parquet files.",
        file=sys.stderr,
    )
    # The days written to (the day, and the next one its retries reach) get their day rollups,
    # which ranges of whole days read (docs/log-store.md), and so does the day after them, whose
    # day files carry figures of the last one; a later day's simulation rebuilds them.
    written = {
        dt.date.fromisoformat(part.name.removeprefix("date="))
        for file in result.files
        for part in file.parents
        if part.name.startswith("date=")
    }
    after = {max(written) + dt.timedelta(days=1)} if written else set()
    dates = sorted(day.isoformat() for day in written | after)
    with tqdm(total=len(dates), desc="day rollups", unit=" days", file=sys.stderr) as bar:
        built = build_days(LocalStore(args.data_dir), dates=dates, progress=bar.update)
    print(f"Built the day rollups of {', '.join(built.built) or 'no day'}.", file=sys.stderr)
