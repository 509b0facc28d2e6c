"""Accept events over Segment's HTTP tracking API and deliver them to every destination of their
source, retrying for hours, with one attempt record per request in the Parquet log. Stops cleanly on
SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import sys

from deliverydash import options

NAME = "serve"
HELP = "run the engine: Segment tracking API, durable queue, delivery workers"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument(
        "--config",
        default="deliverydash.toml",
        help="TOML config (default: %(default)s; see deliverydash.example.toml and docs/configuration.md)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    """Run the engine until SIGTERM or Ctrl-C."""
    import logging

    from delivery.config import ConfigError, load_config
    from delivery.engine import run as run_engine

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise options.CommandError(f"the engine did not start: {exc}") from None
    for warning in config.warnings:
        print(f"deliverydash serve: warning: {warning}", file=sys.stderr)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_engine(config, args.host, args.port)
