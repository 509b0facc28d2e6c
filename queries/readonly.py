"""The guard in front of people's SQL: one statement that only reads, judged by DuckDB's parser.

`read_only_statement(con, text)` returns the SQL to run, or raises a
`QueryError` naming what it refused. The rules, each judged on what
DuckDB's own parser makes of the text (never on the text's spelling):

1. Exactly one statement (`extract_statements`); comments and empty
   statements between semicolons are no statements.
2. It is a SELECT statement. DuckDB parses WITH, VALUES, FROM-first
   queries, PIVOT with an IN list, DESCRIBE, SUMMARIZE and SHOW into
   SELECT statements; everything else (CREATE, DROP, ALTER, INSERT, COPY,
   EXPORT, IMPORT, ATTACH, DETACH, USE, SET, RESET, PRAGMA, CALL,
   CHECKPOINT, VACUUM, INSTALL, LOAD, PREPARE, EXECUTE, DEALLOCATE,
   transactions, PIVOT without an IN list, which creates a type first) is
   refused, named by its statement type.
3. Or it is an EXPLAIN whose explained statement passes rule 2, taken
   from DuckDB's tokens (which tell comments, strings and keywords apart):
   `EXPLAIN query` or `EXPLAIN ANALYZE query`. The statement run is then
   built here from those parts, not the text given, so whatever an option
   list or a comment might hide never runs. An option list
   (`EXPLAIN (...)`) is refused, since it cannot be told from a
   parenthesized query by tokens alone, and `(ANALYZE false)` analyzes.
4. The parsed tree (`json_serialize_sql`, which serializes SELECT trees
   only) calls none of `REFUSED_FUNCTIONS`: functions that run SQL given
   as a string, which this guard would never see, or that change the
   database instead of reading it.

What a SELECT may read is the sandbox's business (`queries.catalog.lock_down`):
`read_csv`, `read_text`, `glob` and the other file readers reach the
attempt log's directories and nothing else.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from queries.errors import QueryError

ALLOWED = "SELECT, WITH, DESCRIBE, SUMMARIZE, SHOW, and EXPLAIN [ANALYZE] of those"

#: Functions a read has no use for. The first three run SQL held in a string,
#: out of the guard's sight; the others change the database or its settings
#: (most also fail on the locked configuration: refused here all the same).
REFUSED_FUNCTIONS = frozenset(
    {
        "query",
        "query_table",
        "json_execute_serialized_sql",
        "checkpoint",
        "force_checkpoint",
        "enable_logging",
        "disable_logging",
        "truncate_duckdb_logs",
        "write_log",
        "enable_profiling",
        "disable_profiling",
        "add_grammar_extension",
        "remove_grammar_extension",
        "create_external_resource",
        "destroy_external_resource",
        "register_external_resource",
        "deregister_external_resource",
        "register_external_resource_type",
    }
)

_ANALYZE = frozenset({"ANALYZE", "ANALYSE"})


def read_only_statement(con: duckdb.DuckDBPyConnection, text: str) -> str:
    """The statement to run for `text`, if it is exactly one read; raise `QueryError` otherwise."""
    statement = _single_statement(con, text)
    if _type(statement) == duckdb.StatementType.EXPLAIN:
        analyze, explained = _explained(statement.query)
        inner = _single_statement(con, explained)
        if _type(inner) != duckdb.StatementType.SELECT:
            raise QueryError(
                f"EXPLAIN runs here only for SELECT queries (reads), not {_type_name(inner)} statements"
            )
        _check_functions(con, inner.query)
        built = ("EXPLAIN ANALYZE " if analyze else "EXPLAIN ") + inner.query
        if _type(_single_statement(con, built)) != duckdb.StatementType.EXPLAIN:
            raise QueryError("EXPLAIN could not be rebuilt from the query it explains")
        return built
    if _type(statement) != duckdb.StatementType.SELECT:
        raise QueryError(
            f"only read-only statements run here ({ALLOWED}); this is a {_type_name(statement)} statement"
        )
    _check_functions(con, statement.query)
    return statement.query


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


def _type(statement: duckdb.Statement) -> duckdb.StatementType:
    try:
        return statement.type
    except ValueError as exc:
        # The parser knows statement types the Python enum does not (UPDATE EXTENSIONS, in 2.0).
        raise QueryError(
            f"only read-only statements run here ({ALLOWED}); this is none of them ({exc})"
        ) from exc


def _type_name(statement: duckdb.Statement) -> str:
    return _type(statement).name.replace("_", " ")


def _explained(query: str) -> tuple[bool, str]:
    """(ANALYZE or not, the text of the explained statement) of an EXPLAIN statement's text."""
    every = duckdb.tokenize(query)
    ends = [start for start, _ in every[1:]] + [len(query)]
    # A comment is no part of the statement: the words are the other tokens, each up to the next token.
    tokens = [
        (start, query[start:end].strip().upper())
        for (start, kind), end in zip(every, ends, strict=True)
        if kind != duckdb.token_type.comment
    ]
    words = [word for _, word in tokens]
    if not words or words[0] != "EXPLAIN":
        raise QueryError("EXPLAIN must come first in an EXPLAIN statement")
    analyze = len(words) > 1 and words[1] in _ANALYZE
    rest = 2 if analyze else 1
    if len(words) <= rest:
        raise QueryError("EXPLAIN of what? Write EXPLAIN or EXPLAIN ANALYZE before a SELECT query")
    if words[rest].startswith("(") and not analyze:
        raise QueryError(
            "EXPLAIN takes no option list here: write EXPLAIN or EXPLAIN ANALYZE before the query, "
            "without parentheses around it"
        )
    return analyze, query[tokens[rest][0] :]


def _check_functions(con: duckdb.DuckDBPyConnection, query: str) -> None:
    rows = con.execute("SELECT json_serialize_sql($query)", {"query": query}).fetchall()
    tree = json.loads(rows[0][0])
    if tree.get("error") or len(tree.get("statements", [])) != 1:
        raise QueryError(f"DuckDB cannot check this query: {tree.get('error_message', 'not one SELECT')}")
    called = sorted(_function_names(tree) & REFUSED_FUNCTIONS)
    if called:
        raise QueryError(
            f"{called[0]}() is not allowed here: it runs SQL held in a string or changes the database, "
            "and only reads of the log run here"
        )


def _function_names(node: Any) -> set[str]:
    """Every function name in a `json_serialize_sql` tree: scalar, aggregate, window and table functions."""
    names: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("function_name")
            if isinstance(name, str):
                names.add(name.lower())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return names
