"""Build a partner's evidence pack: what their API did to the data sent to it.

A zip holding an HTML report (status codes over time, 429 and 5xx rates,
latency, retry outcomes, the status-code advice, the most frequent error
answers with redacted samples) and the CSV behind every chart: the partner
page's figures for one integration and range (docs/evidence.md). Nothing in
it names a customer: no workspace, source or destination ids, and, with
--config, none of the config's secrets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from deliverydash import options

NAME = "evidence"
HELP = "write a partner's evidence pack (HTML report and CSVs, zipped)"


def moment(text: str) -> dt.datetime:
    """An argument that is a UTC day (YYYY-MM-DD) or hour (YYYY-MM-DDTHH, or with :00 minutes)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a day or an hour (YYYY-MM-DD or YYYY-MM-DDTHH:00): {text!r}"
        ) from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument("--partner", required=True, metavar="INTEGRATION", help="the partner's integration")
    parser.add_argument(
        "--since", type=moment, help="start, UTC, included (default: the latest day received in the log)"
    )
    parser.add_argument(
        "--until", type=moment, help="end, UTC, excluded (default: the midnight after --since)"
    )
    parser.add_argument("--out", required=True, type=Path, help="the zip to write")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    options.add_data_options(
        parser,
        reads_log=True,
        config_help="the engine's TOML config: its data_dir is read, and every secret and customer name "
        "in it is kept out of the pack",
    )


def run(args: argparse.Namespace) -> None:
    """Check the arguments, build the pack with a line per step, publish the zip whole."""
    from app.evidence import EvidenceError, build_pack
    from deliverydash.day_report import latest_day
    from ingest.files import publish_bytes
    from queries.log import connect

    if args.out.exists() and not args.force:
        raise options.CommandError(f"{args.out} exists (pass --force to replace it)")
    location = options.log_location(args)
    secrets = _configured_secrets(args.config) if args.config else set()
    began = time.monotonic()

    def progress(step: str) -> None:
        print(f"[{time.monotonic() - began:5.1f} s] {step}", file=sys.stderr)

    with connect(location) as log:
        start, end = _range(args, latest_day(log) if args.since is None else None, location)
        print(
            f"Evidence pack of {args.partner}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
            file=sys.stderr,
        )
        try:
            zipped = build_pack(log, args.partner, start, end, secrets=secrets, progress=progress)
        except (EvidenceError, ValueError) as exc:
            raise options.CommandError(str(exc)) from None
    publish_bytes(zipped, args.out.resolve())
    progress(f"wrote {args.out} ({len(zipped) / 1e6:.1f} MB)")


def _configured_secrets(config_path: str) -> set[str]:
    """The secrets and customer names of the config file and of what was changed live beside its queue."""
    from app.evidence import config_secrets, live_secrets
    from ingest.live_settings import read_patches

    config = options.engine_config(config_path)
    try:
        patches = read_patches(config.engine.data_dir, config.queue.postgres_dsn())
    except OSError as exc:
        raise options.CommandError(
            f"{exc}: no pack is made without every configured secret to keep out"
        ) from None
    return config_secrets(config_path) | live_secrets(patches)


def _range(
    args: argparse.Namespace, latest: dt.date | None, location: str
) -> tuple[dt.datetime, dt.datetime]:
    start = args.since
    if start is None:
        if latest is None:
            raise options.CommandError(
                f"no attempt records in {location}/attempts yet: "
                "run `deliverydash simulate` or the engine first"
            )
        start = dt.datetime.combine(latest, dt.time(), dt.UTC)
    end = args.until or dt.datetime.combine(start.date(), dt.time(), dt.UTC) + dt.timedelta(days=1)
    if end <= start:
        raise options.CommandError(
            f"--since {start:%Y-%m-%dT%H:%M} must be before --until {end:%Y-%m-%dT%H:%M}"
        )
    for name, value in (("--since", start), ("--until", end)):
        if (value.minute, value.second, value.microsecond) != (0, 0, 0):
            raise options.CommandError(f"{name} {value:%Y-%m-%dT%H:%M}: ranges are whole UTC hours")
    return start, end
