"""The `deliverydash` command: one entry point, a subcommand per job.

Each subcommand is one module of `deliverydash.commands` with `NAME`,
`HELP`, `configure(parser)` and `run(args)`. Those modules import what
their job needs inside `run`, so `--help` is instant and a subcommand never
pays for another's dependencies.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from deliverydash.commands import (
    compact,
    dashboard,
    demo,
    demo_engine,
    destinations,
    evidence,
    link,
    migrate,
    notifications,
    partners,
    repair,
    replay,
    report,
    retention,
    serve,
    simulate,
    sources,
    sql,
    status,
    trace,
    whatif,
)
from deliverydash.options import CommandError
from ingest.errors import LogStoreError

#: The subcommands, in the order `--help` lists them.
COMMANDS: tuple[ModuleType, ...] = (
    serve,
    migrate,
    status,
    destinations,
    sources,
    demo,
    demo_engine,
    simulate,
    report,
    partners,
    notifications,
    dashboard,
    link,
    sql,
    repair,
    compact,
    retention,
    replay,
    whatif,
    evidence,
    trace,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="deliverydash",
        description="Deliver events to HTTP destinations reliably, and see how delivery went.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        subparser = sub.add_parser(command.NAME, help=command.HELP, description=command.__doc__)
        command.configure(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand `argv` names; its exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int | None = args.run(args)
    except (CommandError, LogStoreError) as exc:
        print(f"deliverydash {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`deliverydash sql ... | head`): stop quietly, as Unix tools do.
        # Python would otherwise report the pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return status or 0


if __name__ == "__main__":
    raise SystemExit(main())
