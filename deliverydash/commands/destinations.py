"""List, add, change, disable and enable destinations while the engines run (docs/live-config.md).
A change is checked as the config file's [[destinations]] tables are, stored beside the queue
(<data_dir>/settings.sqlite3, or the fleet's PostgreSQL database), and taken up by every running engine
within a second; it needs no running engine. Credentials, header values and signing secrets are
write-only: the list shows whether each is set, never its value. Set a secret with --set-from-env
KEY=VAR to keep it out of the shell's history and the process list."""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deliverydash import options

if TYPE_CHECKING:
    from delivery.config.live import LiveConfig
    from delivery.config.store import Kind

NAME = "destinations"
HELP = "list, add, change, disable or enable destinations while the engines run"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's actions and options to `parser`."""
    configure_kind(parser, "destinations")


def run(args: argparse.Namespace) -> None:
    """Do the action (a `CommandError` naming each problem otherwise)."""
    run_kind(args, "destinations")


# -- shared with `deliverydash sources` ------------------------------------------------------------


def configure_kind(parser: argparse.ArgumentParser, kind: Kind) -> None:
    """The actions of `deliverydash destinations` or `sources`: list, add, update, disable, enable."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    one = kind[:-1]
    listing = actions.add_parser("list", help=f"every {one}, secrets shown as set")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    for action, what in [("add", f"add a {one}"), ("update", f"change keys of a {one}")]:
        sub = actions.add_parser(action, help=what)
        sub.add_argument("id", help=f"the {one}'s id")
        sub.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help='set a key; VALUE is read as TOML (10, true, ["a"], { X = "y" }), else as a string',
        )
        sub.add_argument(
            "--set-from-env",
            action="append",
            default=[],
            metavar="KEY=VAR",
            help="set a key to the environment variable VAR's value (for secrets)",
        )
        if action == "update":
            sub.add_argument(
                "--unset",
                action="append",
                default=[],
                metavar="KEY",
                help="back to the config file's value, or the default",
            )
    stops = "its jobs are skipped" if kind == "destinations" else "its write key is refused"
    actions.add_parser("disable", help=f"disable a {one}: {stops}").add_argument("id")
    actions.add_parser("enable", help=f"enable a {one} again").add_argument("id")
    for sub in actions.choices.values():
        sub.add_argument(
            "--config",
            default="deliverydash.toml",
            help="the engine's TOML config: its tables, [engine] settings and where the store is "
            "(default: %(default)s)",
        )


def changes(args: argparse.Namespace) -> dict[str, Any]:
    """The keys `--set`, `--set-from-env` and `--unset` name, with their values (None: unset)."""
    found: dict[str, Any] = {}
    for item in args.set:
        key, value = _pair(item, "--set", "KEY=VALUE")
        found[key] = _value(value)
    for item in args.set_from_env:
        key, variable = _pair(item, "--set-from-env", "KEY=VAR")
        if variable not in os.environ:
            raise options.CommandError(f"--set-from-env {key}: ${variable} is not set")
        found[key] = os.environ[variable]
    for key in getattr(args, "unset", []):
        found[key] = None
    if not found and args.action == "update":
        raise options.CommandError("nothing to change: give --set, --set-from-env or --unset")
    return found


def _pair(item: str, option: str, form: str) -> tuple[str, str]:
    key, equals, value = item.partition("=")
    if not equals or not key.strip():
        raise options.CommandError(f"{option}: expected {form}, got {item.split('=')[0]!r}...")
    return key.strip(), value


def _value(text: str) -> Any:
    """A TOML value (`10`, `true`, `["a"]`, `{ X = "y" }`), else the text itself (a URL, an id)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def open_live(config_path: str) -> LiveConfig:
    """The config file's and the store's effective config, as an engine would build it."""
    from delivery.config import ConfigError
    from delivery.config.live import LiveConfig
    from delivery.config.store import SettingsError, open_settings

    config = options.engine_config(config_path)
    dsn = config.queue.dsn.reveal() if config.queue.dsn is not None else None
    try:
        live = LiveConfig(config, open_settings(config.queue.backend, config.engine.data_dir, dsn))
        live.load()
    except SettingsError as exc:
        raise options.CommandError(f"the live configuration could not be read: {exc}") from None
    except ConfigError as exc:
        raise options.CommandError(
            f"stored changes do not fit {config_path}: {'; '.join(exc.problems)}"
        ) from None
    return live


def run_kind(args: argparse.Namespace, kind: Kind) -> None:
    """List, or change and show what changed; every refusal as one line."""
    from delivery.config import ConfigError
    from delivery.config.live import Conflict, NotFound
    from delivery.config.store import SettingsError

    live = open_live(args.config)
    try:
        if args.action == "list":
            shown = live.views(kind)
            print(json.dumps({kind: shown}, indent=2) if args.json else render(kind, shown), end="")
            return
        add = args.action == "add"
        if args.action in ("disable", "enable"):
            wanted: dict[str, Any] = {"enabled": args.action == "enable"}
        else:
            wanted = changes(args)
        live.change(kind, args.id, wanted, add=add)
        done = {"add": "added", "update": "changed", "disable": "disabled", "enable": "enabled"}[args.action]
        print(f"{kind[:-1]} {args.id!r} {done}; running engines take it up within a second")
        print(render(kind, [live.view(kind, args.id)]), end="")
    except ConfigError as exc:
        raise options.CommandError("; ".join(exc.problems)) from None
    except (Conflict, NotFound) as exc:
        raise options.CommandError(str(exc)) from None
    except SettingsError as exc:
        raise options.CommandError(f"the change was not stored: {exc}") from None
    finally:
        live.store.close()


_COLUMNS: Mapping[str, Sequence[str]] = {
    "destinations": ("id", "source", "integration", "url", "enabled", "secrets", "managed"),
    "sources": ("id", "workspace", "write_key", "allowed_origins", "enabled", "managed"),
}


def _cell(shown: Mapping[str, Any], column: str) -> str:
    if column == "secrets":
        names = [f"header {name}" for name in shown["headers"]]
        names += [key for key in ("credential", "signing_secret", "previous_signing_secret") if shown[key]]
        return ", ".join(f"{name}: set" for name in names) or "-"
    value = shown[column]
    if isinstance(value, list):
        return ", ".join(value) or "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render(kind: Kind, shown: Sequence[Mapping[str, Any]]) -> str:
    """A table of entries as shown (no secret)."""
    if not shown:
        return f"no {kind}\n"
    columns = _COLUMNS[kind]
    rows = [list(columns), *([_cell(entry, column) for column in columns] for entry in shown)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )
