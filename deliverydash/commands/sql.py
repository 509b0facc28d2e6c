"""Run read-only DuckDB SQL against the view `attempts` and the rollups (docs/sql.md): one query
given as an argument, or an interactive prompt without one. Each query runs in a sandboxed
worker process, within a time limit, a memory limit and a cap on the rows and bytes fetched."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from deliverydash import options

if TYPE_CHECKING:
    from queries.limits import Limits
    from queries.sandbox import SqlResult, SqlSandbox

NAME = "sql"
HELP = "query the attempt log with DuckDB SQL (view `attempts`)"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_ROWS = 50
DEFAULT_MEMORY_LIMIT = "1GiB"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument("query", nargs="?", help="one statement that reads (SELECT ...); omit for a prompt")
    parser.add_argument(
        "--timeout",
        type=options.positive_float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="stop a query running longer (default: %(default)g)",
    )
    parser.add_argument(
        "--max-rows",
        type=options.positive_int,
        default=DEFAULT_MAX_ROWS,
        help="rows fetched and printed; the rest are never read (default: %(default)s)",
    )
    parser.add_argument(
        "--memory-limit",
        default=DEFAULT_MEMORY_LIMIT,
        metavar="SIZE",
        help="memory a query may use, e.g. 512MB or 2GiB (default: %(default)s); "
        "its process may hold 768 MiB more",
    )
    options.add_data_options(parser, reads_log=True)


def run(args: argparse.Namespace) -> None:
    """Print the query's result, or read queries at a prompt until Ctrl-D."""
    import polars as pl

    from queries.errors import QueryError
    from queries.limits import Limits
    from queries.sandbox import SqlSandbox

    try:
        sandbox = SqlSandbox(options.log_location(args), memory_limit=args.memory_limit)
    except ValueError as exc:
        raise options.CommandError(f"--memory-limit: {exc}") from None
    limits = Limits(timeout_s=args.timeout, max_rows=args.max_rows)
    with (
        sandbox,
        pl.Config(tbl_rows=args.max_rows, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=200),
    ):
        if not args.query:
            _prompt(sandbox, limits)
            return
        try:
            _print(sandbox.run(args.query, limits), limits)
        except QueryError as exc:
            raise options.CommandError(str(exc)) from None


def _print(result: SqlResult, limits: Limits) -> None:
    print(result.frame)
    if result.truncated:
        print(
            f"(more than {limits.max_rows:,} rows: the first {limits.max_rows:,} shown; see --max-rows)",
            file=sys.stderr,
        )


def _prompt(sandbox: SqlSandbox, limits: Limits) -> None:
    from queries.errors import QueryError

    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    print(
        "Query the attempt log: the view is `attempts` (docs/sql.md). End a query with ';'. "
        "Ctrl-C stops a query; Ctrl-D quits.",
        file=sys.stderr,
    )
    sandbox.start()  # while the first query is typed
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
            _print(sandbox.run(text, limits), limits)
        except QueryError as exc:
            print(f"error: {exc}", file=sys.stderr)
        except KeyboardInterrupt:
            # The worker running it was killed; the next query starts another.
            print("query stopped", file=sys.stderr)
