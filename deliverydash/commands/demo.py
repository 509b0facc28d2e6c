"""Start simulated partners (healthy, rate-limited, flaky, outage, expired credentials, batch, WTF
codes, expired TLS, never answering), run the engine with the seed's retry schedule compressed
--time-scale times, send a stream of events to three workspaces with the real
segment-analytics-python client, wait until every delivery has a final outcome, and print the
seed-style report, the funnel and the notifications, all from the real attempt log under --data-dir."""

from __future__ import annotations

import argparse
from pathlib import Path

from deliverydash import options

NAME = "demo"
HELP = "the live demo: partner simulator, engine, a stream of events, then the report"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument(
        "--events", type=options.positive_int, default=600, help="events to send (default: %(default)s)"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=120.0,
        help="how many times faster than the seed's schedule retries run: 120 puts 4 h of retries "
        "in 2 minutes (default: %(default)s)",
    )
    parser.add_argument(
        "--send-seconds",
        type=float,
        default=30.0,
        help="spread the events over this many seconds (default: %(default)s)",
    )
    options.add_output_data_dir(parser, "data root the demo's engine writes to")


def run(args: argparse.Namespace) -> None:
    """Run the demo and print what it measured."""
    from deliverydash.demo_harness import DemoError
    from deliverydash.live_demo import render, run_live_demo

    try:
        result = run_live_demo(
            Path(args.data_dir), args.events, time_scale=args.time_scale, send_s=args.send_seconds
        )
    except DemoError as exc:
        raise options.CommandError(str(exc)) from None
    print(render(result), end="")
    if result.unsettled:
        raise options.CommandError(
            f"{result.unsettled:,} of {result.jobs:,} deliveries had no final outcome in time"
        )
