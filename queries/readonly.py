"""The guard in front of user-written SQL: one read-only statement, or a `QueryError`.

The connection is sandboxed too (see `queries.log`), but the sandbox still
lets `COPY ... TO` write into the data directory, so statement types are
checked here as well. DuckDB parses DESCRIBE, SUMMARIZE and SHOW into SELECT
statements; `EXPLAIN ANALYZE` runs the statement it explains, so the
explained statement must itself be a SELECT.
"""

from __future__ import annotations

import re

import duckdb

from queries.errors import QueryError

ALLOWED = "SELECT, WITH, EXPLAIN, DESCRIBE, SUMMARIZE, SHOW"

_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.DOTALL)
_EXPLAIN_PREFIX = re.compile(r"\Aexplain\s+(?:analyze\s+)?(?:\([^)]*\)\s*)?", re.IGNORECASE)


def read_only_statement(con: duckdb.DuckDBPyConnection, text: str) -> str:
    """Return `text` if it is exactly one read-only statement; raise `QueryError` otherwise."""
    statement = _single_statement(con, text)
    if statement.type == duckdb.StatementType.EXPLAIN:
        explained = _EXPLAIN_PREFIX.sub("", _LEADING_COMMENTS.sub("", statement.query), count=1)
        inner = _single_statement(con, explained)
        if inner.type != duckdb.StatementType.SELECT:
            raise QueryError(f"EXPLAIN runs here only for SELECT queries, not {inner.type.name}")
    elif statement.type != duckdb.StatementType.SELECT:
        raise QueryError(
            f"only read-only statements run here ({ALLOWED}); this is a {statement.type.name} statement"
        )
    return text


def _single_statement(con: duckdb.DuckDBPyConnection, text: str) -> duckdb.Statement:
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as exc:
        raise QueryError(f"the SQL does not parse: {exc}") from exc
    if not statements:
        raise QueryError("no SQL statement given")
    if len(statements) > 1:
        raise QueryError(f"one statement at a time: got {len(statements)} statements")
    return statements[0]
