"""Send again what ended undelivered at a destination: the events of its jobs that ended failed,
dropped or skipped, kept for [engine] dead_letter_days (default 7). Each becomes a new job, delivered
as any other, whose attempt records name the job it replays (replay_of). Filters narrow it down; a
dead letter is replayed once, so running the same replay twice delivers nothing new (--again sends
those replayed before once more). --dry-run only counts. Asks the running engine (POST
/admin/replay) with the admin token of --config; on PostgreSQL any engine of the fleet."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable

from deliverydash import admin_api
from ingest.taxonomy import ErrorClass

NAME = "replay"
HELP = "send again the events that ended failed, dropped or skipped at a destination"
OUTCOMES = ("failed", "dropped", "skipped")
#: `error_class` values a job that ended undelivered may have: the taxonomy's, but `none`.
CLASSES = tuple(str(c) for c in ErrorClass if c is not ErrorClass.NONE)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    admin_api.add_options(parser)
    parser.add_argument("--destination", required=True, help="the destination whose dead letters to replay")
    parser.add_argument("--workspace", help="only the events of this workspace")
    parser.add_argument(
        "--since", type=moment, help="only jobs that ended at or after this time (ISO 8601, UTC unless given)"
    )
    parser.add_argument("--until", type=moment, help="only jobs that ended before this time")
    parser.add_argument(
        "--class",
        dest="classes",
        type=choices(CLASSES),
        help=f"only jobs that ended with these error classes, comma-separated ({', '.join(CLASSES)})",
    )
    parser.add_argument(
        "--outcome",
        dest="outcomes",
        type=choices(OUTCOMES),
        help="only jobs that ended so, comma-separated (default: failed,dropped,skipped)",
    )
    parser.add_argument("--dry-run", action="store_true", help="count what would be replayed; change nothing")
    parser.add_argument(
        "--again", action="store_true", help="replay dead letters an earlier replay took, too"
    )


def moment(text: str) -> dt.datetime:
    """An argument that is a time, ISO 8601 (`2026-12-05`, `2026-12-05T10:30`, `...+01:00`); UTC if bare."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time (ISO 8601, e.g. 2026-12-05T10:30): {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    """An argument that is a comma-separated list of some of `allowed`."""

    def parse(text: str) -> list[str]:
        values = [value.strip() for value in text.split(",") if value.strip()]
        unknown = [value for value in values if value not in allowed]
        if unknown or not values:
            raise argparse.ArgumentTypeError(
                f"{', '.join(unknown) or repr(text)}: not one of {', '.join(allowed)}"
            )
        return values

    return parse


def run(args: argparse.Namespace) -> None:
    """Replay (or count) and say how many jobs, per destination (a `CommandError` when refused)."""
    body = {
        "destination": args.destination,
        "workspace": args.workspace,
        "since": args.since.isoformat() if args.since else None,
        "until": args.until.isoformat() if args.until else None,
        "classes": args.classes,
        "outcomes": args.outcomes,
        "dry_run": args.dry_run,
        "again": args.again,
    }
    answer = admin_api.call(args, "POST", "/admin/replay", {k: v for k, v in body.items() if v is not None})
    jobs, already = answer["jobs"], answer["already_replayed"]
    if args.dry_run:
        print(f"would replay {jobs:,} events to {args.destination} (dry run: nothing enqueued)")
    else:
        print(f"replay {answer['replay_id']}: {jobs:,} events enqueued for {args.destination}")
    if already and not args.again:
        print(
            f"{already:,} selected events were replayed before and are left alone (--again sends them again)"
        )
