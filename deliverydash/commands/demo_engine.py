"""Start three simulated partners on loopback (healthy, flaky: 503 then 200, expired-credentials:
401), run the engine in-process, send events with the real segment-analytics-python client, wait
until every delivery has a final outcome, and print the funnel and the per-destination table from
the real attempt log."""

from __future__ import annotations

import argparse
from pathlib import Path

from deliverydash import options

NAME = "demo-engine"
HELP = "run the engine against local test destinations and print the funnel"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument(
        "--events", type=options.positive_int, default=200, help="events to send (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for every delivery to settle (default: %(default)s)",
    )
    options.add_output_data_dir(parser, "data root the demo's engine writes to")


def run(args: argparse.Namespace) -> None:
    """Run the demo and print the funnel and the destinations."""
    from deliverydash.demo_harness import DemoError
    from deliverydash.engine_demo import render, run_demo

    try:
        result = run_demo(Path(args.data_dir), args.events, timeout_s=args.timeout)
    except DemoError as exc:
        raise options.CommandError(str(exc)) from None
    print(render(result), end="")
    if result.unsettled:
        raise options.CommandError(
            f"{result.unsettled:,} of {result.jobs:,} deliveries "
            f"had no final outcome after {args.timeout:g} s"
        )
