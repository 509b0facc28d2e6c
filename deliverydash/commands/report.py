"""The seed-style day report computed from the attempt log: the fate of the day's events and the
shares of the day's requests, next to the study's figures, then the events that never arrived by
error class."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from deliverydash import options

NAME = "report"
#: The longest range of days a report covers (the dashboard's too).
MAX_DAYS = 31
HELP = "print the day report (events and requests) in the terminal"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument("--date", type=options.date, help="UTC day (default: the latest day in the log)")
    parser.add_argument(
        "--days",
        type=options.positive_int,
        default=1,
        help=f"whole days ending with --date, at most {MAX_DAYS}; more than one adds a daily trend "
        "(default: %(default)s)",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--workspace", help="only this workspace")
    scope.add_argument("--destination", help="only this destination")
    scope.add_argument("--integration", help="only this integration")
    options.add_data_options(parser, reads_log=True)


def run(args: argparse.Namespace) -> None:
    """Print the report of one day and scope."""
    from deliverydash.day_report import latest_day, render_daily, render_failures, render_report
    from deliverydash.double_delivery_report import render_double_deliveries
    from queries import api
    from queries.log import connect

    location = options.log_location(args)
    # One listing of the log for every figure: the report's sections agree with each other.
    with connect(location) as log, log.snapshot():
        day = args.date or latest_day(log)
        if day is None:
            raise options.CommandError(
                f"no attempt records in {location}/attempts yet: run "
                "`deliverydash simulate --attempts 2000000` or start the engine first"
            )
        if args.days > MAX_DAYS:
            raise options.CommandError(f"--days {args.days}: a report covers at most {MAX_DAYS} days")
        first = day - dt.timedelta(days=args.days - 1)
        start = dt.datetime.combine(first, dt.time(), dt.UTC)
        end = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=1)
        scope = options.scope(args)
        row = api.day_report(log, scope, start, end).row(0, named=True)
        failures = api.failures_by_class(log, scope, start, end)
        twice = api.double_deliveries(log, scope, start, end)
        trend = api.daily(log, scope, start, end) if args.days > 1 else None
        out_of_step = log.rollups_out_of_step(start, end)
    if out_of_step:
        print(
            f"deliverydash report: warning: {out_of_step:,} attempt files are out of step with their "
            "rollups, so these figures may be short: run `deliverydash repair`",
            file=sys.stderr,
        )
    label = scope.kind.value if scope.value is None else f"{scope.kind.value} {scope.value}"
    daily = "\n" + render_daily(trend) if trend is not None else ""
    report = render_report(row, first, label, day) + daily
    received = row["events_received"]
    print(report + render_failures(failures, received) + render_double_deliveries(twice, received), end="")
