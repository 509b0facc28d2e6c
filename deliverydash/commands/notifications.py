"""`deliverydash notifications`: the notifications raised about destinations, as a table.

Reads `<data_dir>/notifications.sqlite3` read-only, so it works whether or
not the engine runs. Open notifications by default; `--all` adds the
resolved ones. Newest first.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.notifications import Notification

#: Widest a sample body is shown in the table (the whole one is in the admin API).
SAMPLE_WIDTH = 60


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's options to `parser`."""
    parser.description = (
        "List the notifications the engine raised about destinations (auth failures, destinations "
        "disabled by them, recoveries, manual re-enables), newest first. Open ones only unless --all."
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("DELIVERYDASH_DATA_DIR", "data"),
        help="the engine's data_dir (default: %(default)s, or $DELIVERYDASH_DATA_DIR)",
    )
    parser.add_argument("--all", action="store_true", help="resolved notifications too")
    parser.add_argument("--workspace", help="only this workspace's")


def run(args: argparse.Namespace) -> int:
    """Print the table; exit status 0 (2 if the store cannot be read)."""
    import sqlite3

    from ingest.notifications import read_notifications, store_path

    try:
        found = read_notifications(
            args.data_dir, state="all" if args.all else "open", workspace=args.workspace
        )
    except sqlite3.Error as exc:
        print(f"deliverydash notifications: cannot read {store_path(args.data_dir)}: {exc}", file=sys.stderr)
        return 2
    if not found:
        which = "" if args.all else "open "
        print(f"no {which}notifications under {args.data_dir}")
        return 0
    print(render(found), end="")
    return 0


def render(notifications: Sequence[Notification]) -> str:
    """Notifications as a plain-text table, one line each, then each one's message."""
    header = (
        "raised (UTC)",
        "state",
        "kind",
        "workspace",
        "destination",
        "first seen (UTC)",
        "status",
        "sample",
    )
    rows = [
        (
            _time(n.created_at),
            str(n.state),
            n.kind,
            n.workspace_id,
            n.destination_id,
            _time(n.first_seen_at) if n.first_seen_at is not None else "-",
            str(n.status_code) if n.status_code is not None else "-",
            _one_line(n.sample_body),
        )
        for n in notifications
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    lines.append("")
    lines += [f"{_time(n.created_at)}  {n.message}" for n in notifications]
    return "\n".join(lines) + "\n"


def _time(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}"


def _one_line(body: str | None) -> str:
    if not body:
        return "-"
    text = " ".join(body.split())
    return text if len(text) <= SAMPLE_WIDTH else text[: SAMPLE_WIDTH - 1] + "…"
