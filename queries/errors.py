"""The one exception the query layer raises for a query it will not or cannot run."""

from __future__ import annotations


class QueryError(Exception):
    """A query was refused (not read-only, several statements, ...) or failed.

    The message is meant for the person who wrote the SQL: it names the problem.
    """
