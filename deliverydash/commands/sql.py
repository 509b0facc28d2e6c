"""Run read-only DuckDB SQL against the view `attempts` and the rollups (docs/sql.md): one query
given as an argument, or an interactive prompt without one."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from deliverydash import options

if TYPE_CHECKING:
    from queries.log import AttemptLog

NAME = "sql"
HELP = "query the attempt log with DuckDB SQL (view `attempts`)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument("query", nargs="?", help="one SELECT statement; omit for a prompt")
    parser.add_argument("--max-rows", type=int, default=50, help="rows to print (default: %(default)s)")
    options.add_data_options(parser)


def run(args: argparse.Namespace) -> None:
    """Print the query's result, or read queries at a prompt until Ctrl-D."""
    import polars as pl

    from queries.errors import QueryError
    from queries.log import connect

    with (
        connect(options.data_dir(args)) as log,
        pl.Config(tbl_rows=args.max_rows, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=200),
    ):
        if not args.query:
            _prompt(log)
            return
        try:
            print(log.sql(args.query))
        except QueryError as exc:
            raise options.CommandError(str(exc)) from None


def _prompt(log: AttemptLog) -> None:
    from queries.errors import QueryError

    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    print(
        "Query the attempt log: the view is `attempts` (docs/sql.md). End a query with ';'. Ctrl-D quits.",
        file=sys.stderr,
    )
    buffer: list[str] = []
    while True:
        try:
            line = input("deliverydash> " if not buffer else "          ...> ")
        except EOFError:
            print(file=sys.stderr)
            return
        except KeyboardInterrupt:
            buffer.clear()
            print(file=sys.stderr)
            continue
        buffer.append(line)
        text = "\n".join(buffer).strip()
        if not text.endswith(";"):
            continue
        buffer.clear()
        try:
            print(log.sql(text.rstrip(";")))
        except QueryError as exc:
            print(f"error: {exc}", file=sys.stderr)
