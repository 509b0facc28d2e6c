"""The named queries: one commented `.sql` file each, shipped as package data.

A `.sql` file whose name starts with `_` is no query: `_macros.sql` holds
the macros the queries share (`load_macros`), defined on every query
connection before any query runs.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import duckdb

from queries.errors import QueryError

_PACKAGE = "queries"
_SUFFIX = ".sql"
_SHARED = "_"
MACROS = "_macros"


def query_names() -> list[str]:
    """Names of every query's `.sql` file in the package, without the suffix, sorted."""
    files = resources.files(_PACKAGE).iterdir()
    return sorted(
        f.name.removesuffix(_SUFFIX)
        for f in files
        if f.name.endswith(_SUFFIX) and not f.name.startswith(_SHARED)
    )


@cache
def load_query(name: str) -> str:
    """The text of query `name` (`queries/<name>.sql`)."""
    if name not in query_names():
        raise QueryError(f"no query named {name!r}; known: {', '.join(query_names())}")
    return _read(name)


@cache
def load_macros() -> str:
    """The statements of `queries/_macros.sql`: the macros every query may call."""
    return _read(MACROS)


def _read(name: str) -> str:
    return resources.files(_PACKAGE).joinpath(name + _SUFFIX).read_text(encoding="utf-8")


@cache
def parameter_names(name: str) -> frozenset[str]:
    """The `$name` parameters query `name` binds, as DuckDB's parser sees them."""
    with duckdb.connect(":memory:") as con:
        statements = con.extract_statements(load_query(name))
    if len(statements) != 1:
        raise QueryError(f"query {name!r} must hold exactly one statement, has {len(statements)}")
    return frozenset(statements[0].named_parameters)
