"""Bring the queue's database schema up to date before a roll-out, so engines of the new version find
it ready. For the PostgreSQL queue: applies each pending migration, in order, under an advisory lock
(safe beside running engines, twice, or from several machines at once), and prints the schema
version before and after. Engines apply pending migrations at start anyway; this command lets an
operator do it first, on purpose. For the embedded SQLite queue, opens it (which migrates it) when
no engine holds it."""

from __future__ import annotations

import argparse

from deliverydash import options

NAME = "migrate"
HELP = "apply the queue's pending schema migrations (ahead of a roll-out)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument(
        "--config",
        default="deliverydash.toml",
        help="the engine's TOML config: its [queue] table names the database (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> None:
    """Migrate, and print what was done (a `CommandError` naming the problem otherwise)."""
    from delivery.queue import QueueError

    config = options.engine_config(args.config)
    try:
        if config.queue.backend == "postgres":
            from delivery.queue.postgres import migrate, redact_dsn

            assert config.queue.dsn is not None  # the config checks it
            where = redact_dsn(config.queue.dsn.reveal())
            before, after = migrate(config.queue.dsn.reveal())
        else:
            from delivery.queue.sqlite import MIGRATIONS, SqliteQueue, schema_version

            where = str(config.engine.data_dir)
            before = schema_version(config.engine.data_dir)
            SqliteQueue(config.engine.data_dir).close()
            after = len(MIGRATIONS)
    except QueueError as exc:
        raise options.CommandError(f"the queue was not migrated: {exc}") from None
    if before == after:
        print(f"the queue at {where} is up to date (schema version {after})")
    else:
        print(f"the queue at {where}: schema version {before} -> {after}")
