"""Delete the attempt log's days older than the retention ([log] retention_days of --config, or --days),
with their rollups and compaction manifests. --dry-run lists what would go and deletes nothing. The engine
applies [log] retention_days on its own (docs/log-store.md)."""

from __future__ import annotations

import argparse

from deliverydash import options

NAME = "retention"
HELP = "delete the attempt log's days older than the retention (--dry-run lists them)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument(
        "--days",
        type=options.positive_int,
        help="keep this many whole days before today (UTC); default: [log] retention_days of --config",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the days that would go; delete nothing")
    options.add_data_options(parser, reads_log=True)


def run(args: argparse.Namespace) -> None:
    """Delete (or list) the expired days, one line each, then a total."""
    from ingest.compaction import expire
    from ingest.logstore import open_store

    days = args.days
    if days is None and args.config:
        days = options.engine_config(args.config).log.retention_days
    if not days:
        raise options.CommandError(
            "no retention to apply: pass --days N, or --config with [log] retention_days above 0"
        )
    location = options.log_location(args)
    expired = expire(open_store(location), days, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for day in expired:
        print(f"{day.date}: {verb} {day.files:,} files, {day.bytes / 1e6:,.1f} MB")
    total = sum(day.bytes for day in expired) / 1e6
    count = f"{len(expired)} day{'' if len(expired) == 1 else 's'}"
    print(f"{location}: {count} older than {days} days {verb} ({total:,.1f} MB)")
