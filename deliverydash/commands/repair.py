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
    options.add_data_options(parser, reads_log=True)


def run(args: argparse.Namespace) -> None:
    """Repair with a progress bar, and say what was done."""
    from tqdm import tqdm

    from ingest.rollup import out_of_step, repair

    location = options.log_location(args)
    work = out_of_step(location).files
    if not work:
        print(f"the rollups in {location} are in step with the attempt log: nothing to repair")
        return
    with tqdm(total=work, desc="attempt files mended", unit=" files", file=sys.stderr) as bar:
        result = repair(location, bar.update)
    print(f"rollups in {location}: {result.built:,} built, {result.removed:,} orphaned ones removed")
