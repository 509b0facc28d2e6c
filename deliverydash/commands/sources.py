"""List, add, change, disable and enable sources while the engines run (docs/live-config.md). A change
is checked as the config file's [[sources]] tables are (unique ids and write keys), stored beside the
queue, and taken up by every running engine within a second: a new write key is accepted from then on,
a disabled source's is refused. Write keys are
write-only: the list shows that one is set, never the key. Set one with --set-from-env write_key=VAR to
keep it out of the shell's history and the process list."""

from __future__ import annotations

import argparse

from deliverydash.commands.destinations import configure_kind, run_kind

NAME = "sources"
HELP = "list, add, change, disable or enable sources while the engines run"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's actions and options to `parser`."""
    configure_kind(parser, "sources")


def run(args: argparse.Namespace) -> None:
    """Do the action (a `CommandError` naming each problem otherwise)."""
    run_kind(args, "sources")
