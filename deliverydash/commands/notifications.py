"""List the notifications the engine raised about destinations (auth failures, destinations disabled
by them, recoveries, manual re-enables), newest first. Open ones only unless --all. Reads them where
the engine keeps them: <data_dir>/notifications.sqlite3, or, when --config names [queue] backend =
"postgres", the fleet's in that database. Read-only, so it works whether or not an engine runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from deliverydash import options

if TYPE_CHECKING:
    from ingest.notifications import Notification, Where

NAME = "notifications"
HELP = "list notifications about destinations (auth failures, auto-disable, recoveries)"
#: Widest a sample body is shown in the table (the whole one is in the admin API).
SAMPLE_WIDTH = 60


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument("--all", action="store_true", help="resolved notifications too")
    parser.add_argument("--workspace", help="only this workspace's")
    options.add_data_options(
        parser,
        config_help="the engine's TOML config: its [engine] data_dir, or, with [queue] backend = "
        '"postgres", the queue\'s database, where a fleet keeps its notifications (--data-dir alone '
        "reads only a data directory's file: pass --config to read a fleet's)",
    )


def run(args: argparse.Namespace) -> None:
    """Print the table (a `CommandError` if the store cannot be read)."""
    import sqlite3

    from ingest.notifications import NotificationsError, Postgres, read_notifications, store_path

    where = _where(args)
    try:
        found = read_notifications(where, state="all" if args.all else "open", workspace=args.workspace)
    except sqlite3.Error as exc:
        assert not isinstance(where, Postgres)
        raise options.CommandError(f"cannot read {store_path(where)}: {exc}") from None
    except NotificationsError as exc:  # its message names the server, never the password
        raise options.CommandError(str(exc)) from None
    if not found:
        which = "" if args.all else "open "
        place = f"in {where}" if isinstance(where, Postgres) else f"under {where}"
        print(f"no {which}notifications {place}")
        return
    print(render(found), end="")


def _where(args: argparse.Namespace) -> Where:
    """The fleet's database when --config names a PostgreSQL queue, else the data directory."""
    if args.config:
        from delivery.alerts.store import notifications_source

        config = options.engine_config(args.config)
        if config.queue.backend == "postgres":
            return notifications_source(config)
    return options.data_dir(args)


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
