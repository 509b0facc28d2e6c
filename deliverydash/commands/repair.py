"""Bring the attempt log's hourly rollups in step with its files: build the rollups an attempt file
lacks (a writer stopped between the file and its rollups, or the log was written before a rollup
existed) and remove rollups whose attempt file is gone. Queries never repair: they read only."""

from __future__ import annotations

import argparse
import sys

from deliverydash import options

NAME = "repair"
HELP = "build missing rollups of the attempt log and remove orphaned ones"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    options.add_data_options(parser)


def run(args: argparse.Namespace) -> None:
    """Repair, and say what was done."""
    from ingest.rollup import reconcile
    from ingest.writer import attempts_root

    data_dir = options.data_dir(args)
    built, removed = reconcile(data_dir, attempts_root(data_dir))
    print(f"rollups under {data_dir}: {built} built, {removed} removed", file=sys.stderr)
