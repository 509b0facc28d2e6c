"""What the subcommands share: argument types, the `--data-dir`/`--config` pair, and `CommandError`.

Every command that reads the engine's data takes both `--data-dir DIR` and
`--config FILE`. Where they point, in this order (docs/cli.md):

1. `--data-dir`, when given;
2. else `[engine] data_dir` of `--config` (relative to the file's folder), the
   file checked whole as `deliverydash serve` checks it;
3. else `$DELIVERYDASH_DATA_DIR`, else `data`.

Those that read the attempt log also take `--log URL` (a directory or
``s3://bucket/prefix``, docs/log-store.md): `--log`, else `--data-dir`,
else `[log] url` of `--config` (its data root when empty), else
`$DELIVERYDASH_LOG`, else the data root above.

Nothing heavy is imported here: `deliverydash --help` builds every parser.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from delivery.config import Config
    from queries.scope import Scope

DATA_DIR_ENV = "DELIVERYDASH_DATA_DIR"
LOG_ENV = "DELIVERYDASH_LOG"


class CommandError(Exception):
    """A user-facing error: printed as one line after the command's name, exit status 2."""


def date(text: str) -> dt.date:
    """An argument that is a calendar day, YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def positive_int(text: str) -> int:
    """An argument that is a whole number of at least 1 (`2_000_000` and `2,000,000` read too)."""
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argument that is a number greater than 0 (`0.5`, `60`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def default_data_dir() -> str:
    """`$DELIVERYDASH_DATA_DIR` when set and not empty, else `data`."""
    return os.environ.get(DATA_DIR_ENV) or "data"


def add_output_data_dir(parser: argparse.ArgumentParser, description: str) -> None:
    """Add `--data-dir` to a command that writes data of its own, described by `description`."""
    parser.add_argument(
        "--data-dir",
        default=default_data_dir(),
        help=f"{description} (default: %(default)s, or ${DATA_DIR_ENV})",
    )


def add_data_options(
    parser: argparse.ArgumentParser, *, config_help: str | None = None, reads_log: bool = False
) -> None:
    """Add `--data-dir` and `--config` to a command reading the engine's data; `--log` if it reads the log."""
    parser.add_argument(
        "--data-dir",
        help="data root holding attempts/ and the engine's state (default: [engine] data_dir of "
        f"--config, else ${DATA_DIR_ENV}, else data)",
    )
    if reads_log:
        parser.add_argument(
            "--log",
            metavar="URL",
            help="where the attempt log is: a directory or s3://bucket/prefix, with the endpoint and "
            f"credentials in AWS_* variables (default: [log] url of --config, else ${LOG_ENV}, "
            "else the data root)",
        )
    parser.add_argument(
        "--config",
        help=config_help or "the engine's TOML config: its [engine] data_dir is read (see docs/cli.md)",
    )


def engine_config(path: str | os.PathLike[str]) -> Config:
    """The engine's config at `path`, checked whole; a `CommandError` naming every problem otherwise."""
    from delivery.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def data_dir(args: argparse.Namespace) -> Path:
    """The data root a reading command works on (see the module docstring)."""
    if args.data_dir:
        return Path(args.data_dir)
    if args.config:
        return engine_config(args.config).engine.data_dir
    return Path(default_data_dir())


def log_location(args: argparse.Namespace) -> str:
    """Where the attempt log a reading command reads is (see the module docstring); checked, not opened."""
    from ingest.logstore import LogStoreError, open_store

    if args.log:
        location = args.log
    elif args.data_dir:
        location = args.data_dir
    elif args.config:
        location = engine_config(args.config).log_location
    else:
        location = os.environ.get(LOG_ENV) or default_data_dir()
    try:
        return open_store(location).location
    except LogStoreError as exc:
        raise CommandError(f"--log: {exc}") from None


def dashboard_secret(config_path: str | os.PathLike[str] | None) -> str | None:
    """The secret signing dashboard links: `$DELIVERYDASH_SECRET`, else `[dashboard] secret` of the config."""
    from app.access import resolve_secret
    from app.settings import SettingsError, dashboard_settings

    try:
        return resolve_secret(dashboard_settings(config_path).secret)
    except (SettingsError, ValueError) as exc:
        raise CommandError(str(exc)) from None


def scope(args: argparse.Namespace) -> Scope:
    """The scope of `--workspace`, `--destination` or `--integration` (one at most), else everything."""
    from queries.scope import Scope

    if args.workspace:
        return Scope.workspace(args.workspace)
    if args.destination:
        return Scope.destination(args.destination)
    if args.integration:
        return Scope.integration(args.integration)
    return Scope.all()
