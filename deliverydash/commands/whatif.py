"""Would a longer window or more attempts have saved the day's events, and at what cost in requests?
Replays the day's retried jobs, on paper, against other retry schedules: each job's first request as
it happened, then attempts at the schedule's times, each answered as the destination answered other
requests at that time (from the log). Prints events delivered, requests and delivery-delay
percentiles per schedule next to the actual figures, and the actual schedule's own replay, which
shows how close the model comes. Expected values: the model cannot know how a destination would have
answered more (or fewer) requests than it got, nor Retry-After waits. --schedule takes
base=30s,factor=2,max=1h,attempts=10,window=4h,jitter=0.2 (keys optional: the engine's defaults)."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deliverydash import options

if TYPE_CHECKING:
    from queries.whatif import Schedule

NAME = "whatif"
HELP = "replay the day's retried jobs against other retry schedules"


def schedule(text: str) -> Schedule:
    """An argument that is a schedule (`queries.whatif.Schedule.parse`)."""
    from queries.whatif import Schedule

    try:
        return Schedule.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def duration(text: str) -> float:
    """An argument that is a duration (`60s`, `0.05s`, `2min`)."""
    from queries.whatif import seconds

    try:
        return seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument("--date", type=options.date, help="UTC day (default: the latest day in the log)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--workspace", help="only this workspace")
    scope.add_argument("--destination", help="only this destination")
    scope.add_argument("--integration", help="only this integration")
    parser.add_argument(
        "--schedule",
        type=schedule,
        action="append",
        required=True,
        help="a schedule to try, e.g. 'attempts=15,window=8h' (repeat for several)",
    )
    parser.add_argument(
        "--actual",
        type=schedule,
        default=None,
        help="the schedule the engine used that day (default: the engine's defaults, "
        "base=30s,factor=2,max=1h,attempts=10,window=4h,jitter=0.2)",
    )
    parser.add_argument(
        "--resolution",
        type=duration,
        default=60.0,
        help="how long an observed answer stands for a destination's state (default: 60s; a demo "
        "whose schedule was compressed N times: 60s / N)",
    )
    options.add_data_options(parser, reads_log=True)


def run(args: argparse.Namespace) -> None:
    """Print the table: actual figures, the actual schedule replayed, each schedule asked for."""
    import sys

    from deliverydash.day_report import latest_day
    from queries.log import connect
    from queries.whatif import Schedule, whatif

    location = options.log_location(args)
    actual = args.actual or Schedule()
    with connect(location) as log:
        day = args.date or latest_day(log)
        if day is None:
            raise options.CommandError(f"no attempt records in {location}/attempts yet")
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        end = start + dt.timedelta(days=1)
        scope = options.scope(args)
        rows: list[tuple[str, Mapping[str, Any]]] = []
        for n, wanted in enumerate([actual, *args.schedule], start=1):
            print(f"replaying schedule {n} of {len(args.schedule) + 1}: {wanted.label()}", file=sys.stderr)
            try:
                rows.append(
                    (wanted.label(), whatif(log, scope, start, end, wanted, resolution_s=args.resolution))
                )
            except ValueError as exc:
                raise options.CommandError(str(exc)) from None
    first = rows[0][1]
    if not first["events_received"]:
        raise options.CommandError(f"no events received on {day} in this scope")
    label = scope.kind.value if scope.value is None else f"{scope.kind.value} {scope.value}"
    print(render(day, label, rows), end="")


def render(day: dt.date, label: str, rows: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """The table of `run`: the actual figures, then one line per schedule, then what it cannot know."""
    first = rows[0][1]
    names = [
        "actual (from the log)",
        *(("replayed: " if n == 0 else "") + name for n, (name, _) in enumerate(rows)),
    ]
    width = max(len(name) for name in names)
    lines = [
        f"Retry what-if for {day} ({label}): {first['events_received']:,} events received, "
        f"{first['jobs_replayed']:,} retried jobs replayed on paper",
        "",
        f"{'schedule':<{width}} {'delivered':>12} {'%':>8} {'requests':>12} {'p50':>8} {'p90':>8} {'p99':>8}",
        _line(
            width,
            names[0],
            first["actual_delivered"],
            first["actual_delivered_pct"],
            first["actual_requests"],
            (first["actual_delay_p50_s"], first["actual_delay_p90_s"], first["actual_delay_p99_s"]),
        ),
    ]
    for name, (_, row) in zip(names[1:], rows, strict=True):
        lines.append(
            _line(
                width,
                name,
                row["delivered"],
                row["delivered_pct"],
                row["requests"],
                (row["delay_p50_s"], row["delay_p90_s"], row["delay_p99_s"]),
            )
        )
    guessed = max(row["guessed_pct"] for _, row in rows)
    lines += [
        "",
        "delivered: events (expected values); requests: HTTP requests; p50/p90/p99: delivery delay of "
        "delivered events, from receipt.",
        "The first schedule is the actual one (--actual) replayed: beside the actual figures, it shows "
        "the model's error on this day.",
        "It cannot know how a destination would have answered more or fewer requests than it got "
        "(rate limits react to load), nor Retry-After waits, nor hours without any request to the "
        f"destination: those attempts take its day's average ({guessed:.1f}% of paper attempts at most).",
    ]
    return "\n".join(lines) + "\n"


def _line(
    width: int, name: str, delivered: float, pct: float, requests: float, delays: Sequence[float | None]
) -> str:
    shown = " ".join(f"{_seconds(d):>8}" for d in delays)
    return f"{name:<{width}} {delivered:>12,.0f} {pct:>7.2f}% {requests:>12,.0f} {shown}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{value / 60:.1f}min"
    return f"{value / 3600:.1f}h"
