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
    parser.add_argument(
        "--processes",
        type=options.positive_int,
        default=1,
        metavar="N",
        help="engine processes accepting on the one port, to use N cores; more than 1 needs "
        '[queue] backend = "postgres" (default: %(default)s; docs/fleet.md)',
    )


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
    if args.processes > 1 and not config.queue.shared:
        raise options.CommandError(
            f"--processes {args.processes} needs a queue several processes can share: the SQLite queue "
            'serves one engine process; set [queue] backend = "postgres" (docs/fleet.md)'
        )
    _check_log(config.log_location)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from delivery.engine import with_admin_token
    from delivery.queue import QueueError

    try:
        # Once, before any engine process starts: `--processes N` engines all get this token.
        config = with_admin_token(config)
    except ConfigError as exc:
        raise options.CommandError(f"the engine did not start: {exc}") from None

    if args.processes == 1:
        try:
            run_engine(config, args.host, args.port)
        except QueueError as error:  # unreachable database, a data directory another engine holds, ...
            raise options.CommandError(f"the engine did not start: {error}") from None
        return
    from delivery.engine import open_queue
    from delivery.supervisor import Supervisor, bind

    try:
        # Once here, so that a queue the engines cannot use is one clear message, not N engines
        # failing and being restarted; it also applies pending migrations before they start.
        open_queue(config).close()
        sock = bind(args.host, args.port)
    except QueueError as error:
        raise options.CommandError(f"the engine did not start: {error}") from None
    except OSError as error:
        raise options.CommandError(f"the engine did not start: {error.strerror}") from None
    with sock:
        status = Supervisor(config, sock, args.processes).run()
    if status:
        raise SystemExit(status)


def _check_log(location: str) -> None:
    """Refuse to start when the attempt log's store is misconfigured or unreachable: one clear line.

    An engine that started anyway would keep every record in its outbox and
    retry each export, so nothing would be lost; but the operator would only
    learn of it from the logs.
    """
    from ingest.logstore import LogStoreError, open_store

    try:
        open_store(location).has_files("attempts/")
    except LogStoreError as exc:
        raise options.CommandError(f"the engine did not start: the attempt log: {exc}") from None
