"""The named queries: one commented `.sql` file each, shipped as package data.

A `.sql` file whose name starts with `_` is no query: `_macros.sql` holds
the macros the queries share (`load_macros`), defined on every query
connection before any query runs.
"""

from __future__ import annotations

import re
import threading
from functools import cache
from importlib import resources

import duckdb

from ingest.rollup import uncommented
from queries.errors import QueryError

_PACKAGE = "queries"
_SUFFIX = ".sql"
_SHARED = "_"
MACROS = "_macros"
_MACRO = re.compile(r"CREATE\s+OR\s+REPLACE\s+MACRO\s+(\w+)\s*\(", re.IGNORECASE)


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
    text = load_query(name)
    with _PARSER_LOCK:
        statements = _parser().extract_statements(text)
    if len(statements) != 1:
        raise QueryError(f"query {name!r} must hold exactly one statement, has {len(statements)}")
    return frozenset(statements[0].named_parameters)


_PARSER_LOCK = threading.Lock()


@cache
def _parser() -> duckdb.DuckDBPyConnection:
    # One connection parses every query: opening one takes about 40 ms, a parse 1 ms.
    return duckdb.connect(":memory:")


@cache
def names_read(name: str, views: tuple[str, ...]) -> frozenset[str]:
    """Those of `views` that query `name` names, in its statement or in the macros it calls
    (transitively), comments left out. Kept: every query over hours asks."""
    return frozenset(view for view in views if _mentions(name, view))


def _mentions(name: str, word: str) -> bool:
    pattern = re.compile(rf"\b{re.escape(word)}\b")
    return any(pattern.search(text) for text in _texts_read(name))


@cache
def macros_reading(views: frozenset[str]) -> frozenset[str]:
    """The macros of `_macros.sql` that name any of `views`, in their body or in the macros they call.
    Kept: each named query's first run asks (some 30 ms a time, of `report`'s start)."""
    patterns = [re.compile(rf"\b{re.escape(view)}\b") for view in views]
    return frozenset(
        macro
        for macro, body in _macro_bodies().items()
        if any(pattern.search(text) for pattern in patterns for text in _reached(body))
    )


def uncommented_query(name: str) -> str:
    """The SQL of query `name` without its comments."""
    return uncommented(load_query(name))


@cache
def _texts_read(name: str) -> tuple[str, ...]:
    """The text of query `name` and of every macro it calls, directly or through other macros."""
    return _reached(uncommented(load_query(name)))


def _reached(query: str) -> tuple[str, ...]:
    """`query` and the body of every macro it calls, directly or through other macros."""
    bodies = _macro_bodies()
    texts, pending, seen = [query], [query], set()
    while pending:
        text = pending.pop()
        for macro, body in bodies.items():
            if macro not in seen and re.search(rf"\b{macro}\s*\(", text):
                seen.add(macro)
                texts.append(body)
                pending.append(body)
    return tuple(texts)


@cache
def _macro_bodies() -> dict[str, str]:
    """Each macro of `_macros.sql` by name: its statement, up to the next macro's."""
    text = load_macros()
    found = list(_MACRO.finditer(text))
    ends = [match.start() for match in found[1:]] + [len(text)]
    return {
        match.group(1): uncommented(text[match.start() : end]) for match, end in zip(found, ends, strict=True)
    }
