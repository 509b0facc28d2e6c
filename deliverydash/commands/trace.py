"""Did an event reach every destination of its source? Looks a Segment messageId up in the log's
message index and prints its fate at each destination (delivered, failed, dropped, skipped, still
retrying, or no job, with why) and every attempt of its jobs (docs/trace.md)."""

from __future__ import annotations

import argparse
import datetime as dt

from deliverydash import options

NAME = "trace"
HELP = "trace one event (messageId) to every destination of its source"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument("message_id", help="the event's Segment messageId")
    parser.add_argument(
        "--date",
        type=options.date,
        help="UTC day it was sent (default: the latest day); requests are read to a day after",
    )
    parser.add_argument(
        "--days", type=options.positive_int, default=1, help="days back from --date to search (default: 1)"
    )
    parser.add_argument("--workspace", help="only this workspace's events")
    options.add_data_options(parser, reads_log=True)


def run(args: argparse.Namespace) -> None:
    """Print the trace of `args.message_id`."""
    import polars as pl

    from deliverydash.day_report import latest_day
    from queries.log import connect
    from queries.scope import Scope
    from queries.trace import REQUEST_COLUMNS, trace_event

    location = options.log_location(args)
    scope = Scope.workspace(args.workspace) if args.workspace else Scope.all()
    with connect(location) as log:
        day = args.date or latest_day(log)
        if day is None:
            raise options.CommandError(f"no attempt records in {location}/attempts yet")
        start = dt.datetime.combine(day, dt.time(), dt.UTC) - dt.timedelta(days=args.days - 1)
        # Requests of the range's events: their retries run into the next day (JOB_SEARCH_AFTER).
        end = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=2)
        try:
            trace = trace_event(log, scope, args.message_id, start, end)
        except ValueError as exc:  # no message id
            raise options.CommandError(str(exc)) from exc
    if not trace.found:
        raise options.CommandError(f"message {args.message_id!r} is in no attempt record of this range")
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        fmt_str_lengths=90,
        tbl_width_chars=240,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_hide_dtype_separator=True,
    ):
        print(
            f"Message {args.message_id}: fate per destination of source {trace.attempts.item(0, 'source_id')}"
        )
        print(trace.destinations.select("destination_id", "integration", "fate", "jobs", "attempts", "why"))
        print("\nEvery attempt:")
        print(trace.attempts.select(REQUEST_COLUMNS))
