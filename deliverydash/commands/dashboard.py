"""Start the Streamlit dashboard: a day of HTTP responses, customer and partner pages, retries, an
error explorer and a SQL console. With a secret set (DELIVERYDASH_SECRET or [dashboard] secret in the
config), pages need a link from `deliverydash link`. When --config names [queue] backend = "postgres",
the notifications shown are the fleet's, read from that database."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from deliverydash import options

NAME = "dashboard"
HELP = "open the delivery dashboard (Streamlit) over the attempt log"
#: Where the dashboard's process finds the fleet's database (`app.data.QUEUE_DSN_ENV`).
QUEUE_DSN_ENV = "DELIVERYDASH_QUEUE_DSN"
#: Where the dashboard's process finds the engine and its admin token, for replays (`app.replay`).
ENGINE_URL_ENV = "DELIVERYDASH_ENGINE_URL"
ADMIN_TOKEN_ENV = "DELIVERYDASH_ADMIN_TOKEN"
#: The config's path, whose secrets the partner page's evidence packs keep out (`app.evidence.scrub`).
CONFIG_ENV = "DELIVERYDASH_CONFIG"
#: "0" turns off reading the other pages ahead (`app.prefetch.PREFETCH_ENV`).
PREFETCH_ENV = "DELIVERYDASH_PREFETCH"
DEFAULT_ENGINE_URL = "http://127.0.0.1:8000"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument("--port", type=int, default=8501, help="port to listen on (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--no-prefetch",
        action="store_true",
        help="do not read the other pages' figures ahead after each page (docs/dashboard.md): "
        "for a dashboard whose cores are better left to the pages being viewed",
    )
    parser.add_argument(
        "--engine-url",
        help="where the engine's admin API is, for replays from the customer page (with --config, "
        "whose admin token is used; default with --config: http://127.0.0.1:8000)",
    )
    options.add_data_options(
        parser,
        reads_log=True,
        config_help="TOML config: the secret of its [dashboard] table, [engine] data_dir, and with "
        '[queue] backend = "postgres" the database holding the notifications (docs/cli.md)',
    )


def run(args: argparse.Namespace) -> None:
    """Hand the process over to Streamlit, serving `app/main.py` over the data root."""
    import app
    from ingest.logstore import LogStoreError, open_store

    data_dir = options.data_dir(args).resolve()
    location = options.log_location(args)
    secret = options.dashboard_secret(args.config)
    dsn = _notifications_dsn(args.config)
    engine = _engine_access(args)
    try:
        has_log = open_store(location).has_files("attempts/date=")
    except LogStoreError as exc:
        raise options.CommandError(str(exc)) from None
    if not has_log:
        print(
            f"deliverydash dashboard: no attempt log in {location} yet; the dashboard will say so "
            "until `deliverydash simulate` or the engine writes one",
            file=sys.stderr,
        )
    env = _environment(data_dir, location, secret, args.config, engine, dsn)
    if args.no_prefetch:
        env[PREFETCH_ENV] = "0"
    notifications = ""
    if dsn is not None:
        from ingest.dsn import redact_dsn

        notifications = f", notifications from PostgreSQL at {redact_dsn(dsn)}"
    access = (
        "links from `deliverydash link` required" if secret else "no secret: open to anyone who reaches it"
    )
    if engine is not None:
        access += f"; replays through the engine at {engine[0]}"
    print(
        f"Dashboard on http://{args.host}:{args.port}/ over {location}{notifications} ({access}). "
        "Ctrl-C stops it.",
        file=sys.stderr,
    )
    entry = Path(app.__file__).parent / "main.py"
    command = [
        sys.executable, "-m", "streamlit", "run", str(entry),
        "--server.port", str(args.port),
        "--server.address", args.host,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        # Streamlit runs a full garbage collection after every script run by default: 0.1 s of
        # CPU in this process (plotly, pandas, polars, DuckDB), 28 % of its CPU over 100 clicks
        # for the same memory (docs/benchmarks.md). Python's own collections still run.
        "--runner.postScriptGC", "false",
    ]  # fmt: skip
    sys.stdout.flush()
    sys.stderr.flush()
    # Streamlit owns the process from here: its own Ctrl-C handling and exit status.
    os.execve(sys.executable, command, env)


def _environment(
    data_dir: Path,
    location: str,
    secret: str | None,
    config: str | None,
    engine: tuple[str, str] | None,
    dsn: str | None,
) -> dict[str, str]:
    """The Streamlit process's environment: what its pages read, and nothing it should not have."""
    env = dict(os.environ, DELIVERYDASH_DATA_DIR=str(data_dir), DELIVERYDASH_LOG=location)
    if secret is not None:
        env["DELIVERYDASH_SECRET"] = secret
    # Through the environment, never the command line (which `ps` shows to every user of the machine);
    # and only when the config says so: a DSN exported for an engine elsewhere is not the dashboard's.
    env.pop(QUEUE_DSN_ENV, None)
    env.pop(ENGINE_URL_ENV, None)
    env.pop(ADMIN_TOKEN_ENV, None)
    env.pop(CONFIG_ENV, None)
    if config:  # the partner page's evidence packs keep its secrets out (docs/evidence.md)
        env[CONFIG_ENV] = str(Path(config).resolve())
    if engine is not None:
        env[ENGINE_URL_ENV], env[ADMIN_TOKEN_ENV] = engine
    if dsn is not None:
        env[QUEUE_DSN_ENV] = dsn
    return env


def _engine_access(args: argparse.Namespace) -> tuple[str, str] | None:
    """(the engine's URL, its admin token) for replays, when the config names the engine."""
    if not args.config:
        if args.engine_url:
            raise options.CommandError("--engine-url needs --config, for the engine's admin token")
        return None
    from delivery.config import ConfigError
    from delivery.config.admin_token import admin_token

    try:
        token = admin_token(options.engine_config(args.config))
    except ConfigError:
        return None  # no engine has run with this config yet: no replays, the rest works
    return (args.engine_url or DEFAULT_ENGINE_URL).rstrip("/"), token.reveal()


def _notifications_dsn(config_path: str | None) -> str | None:
    """The queue's DSN when the config names a PostgreSQL queue (the fleet's notifications are there)."""
    if not config_path:
        return None
    return options.engine_config(config_path).queue.postgres_dsn()
