"""A page's working set: the `outcomes` rows of one scope and range, read from the files once.

A page or a report runs several named queries for the same scope and range,
and most of them read the two `outcomes` rollups through the scoped macros
of `queries/_macros.sql`. Each query opened the same day files again (31 of
each view over a month) to find the same few hundred rows of one workspace:
about a tenth of a second a query, where the rows alone take a hundredth.

Within `AttemptLog.snapshot`, the second such query of a narrow scope (a
workspace, a destination, an integration) copies the rows of the views it
reads (`views_read`) into temporary tables of a cursor the snapshot keeps,
each under its view's name; that query and the later ones of the snapshot
read the copies, and a view not copied yet is still read from its files.
A copy holds every row the scoped macros can reach for the scope and range
(`copy_sql`: the scope's rows whose requests started from `$start` to a day
past `$end`), so a query that reads the views only through them gives the
same figures from the copy as from the files (tests/queries/test_focus.py
compares them).

A query qualifies (`focusable`) when `outcomes` and `integration_outcomes`
are the only views it reads, its own SQL never names them, and each macro it
calls that reads them is one of `SCOPED_MACROS`, called with the query's own
`$scope_kind, $scope_value, $start, $end`. Scope 'all' is never copied: its
rows are the whole view.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from functools import cache
from typing import Final

import duckdb

from queries.catalog import VIEWS
from queries.loader import macros_reading, names_read, uncommented_query

#: The views a copy may replace.
FOCUS_VIEWS: Final = frozenset({"outcomes", "integration_outcomes"})
#: The macros through which a query that qualifies reads them: each reads the rows of the scope
#: whose requests started in [range_start, range_end + 1 day), or fewer (tests/queries/test_focus.py
#: checks that no other macro reads the views).
SCOPED_MACROS: Final = frozenset(
    {"scoped_outcomes", "cohort_outcomes", "replay_outcomes", "cohort_and_requests", "destination_figures"}
)

#: A call: its name, and its arguments up to the first parenthesis closed (a lookahead, so that a
#: call inside another's arguments is found too).
_CALL = re.compile(r"\b(\w+)\s*\((?=([^)]*))")
_OWN_ARGUMENTS = re.compile(r"^\s*\$scope_kind\s*,\s*\$scope_value\s*,\s*\$start\s*,\s*\$end\s*(,|$)")
_A_VIEW = re.compile(r"\b(" + "|".join(sorted(FOCUS_VIEWS)) + r")\b")
_PER_DESTINATION = re.compile(r"\bper_destination\s*:=\s*true\b|\bdestination_figures\s*\(", re.IGNORECASE)


@cache
def focusable(name: str) -> bool:
    """Whether the named query may read the copy of its scope's rows instead of the files."""
    return _qualifies(uncommented_query(name), names_read(name, VIEWS))


def _qualifies(text: str, views_read: Collection[str]) -> bool:
    """Whether a query of `text` (without comments), which reads `views_read`, reaches them only
    through `SCOPED_MACROS` called with its own scope and range."""
    reading = macros_reading(FOCUS_VIEWS)
    calls = [(macro, arguments) for macro, arguments in _CALL.findall(text) if macro in reading]
    return (
        bool(calls)
        and set(views_read) <= FOCUS_VIEWS
        and _A_VIEW.search(text) is None
        and all(macro in SCOPED_MACROS and _OWN_ARGUMENTS.match(arguments) for macro, arguments in calls)
    )


def views_read(name: str, scope_kind: str) -> frozenset[str]:
    """The views the focusable query `name` reads for a scope of `scope_kind`.

    `scoped_outcomes` reads `outcomes` for a workspace or a destination, and for an integration
    `integration_outcomes`, with `outcomes` too where a figure is per destination. A view left out
    here would only be read from its files.
    """
    if scope_kind != "integration":
        return frozenset({"outcomes"})
    if _PER_DESTINATION.search(uncommented_query(name)):
        return FOCUS_VIEWS
    return frozenset({"integration_outcomes"})


def copy_sql(view: str) -> tuple[str, str]:
    """Run in a cursor with the query's scope and range bound: `view`'s reachable rows copied (what
    `scoped_outcomes` reads for [$start, $end + 1 day)), then the view's name pointed at the copy. A
    TEMP object of a view's name is what the macros read when a query runs."""
    workspace, destination = ("workspace_id", "destination_id") if view == "outcomes" else ("NULL", "NULL")
    return (
        f"""CREATE TEMP TABLE focused_{view} AS
        SELECT * FROM {view}
        WHERE in_scope($scope_kind, $scope_value, {workspace}, {destination}, integration)
          AND started_in(date, started_hour, $start, $end + INTERVAL 1 DAY)""",
        f"CREATE OR REPLACE TEMP VIEW {view} AS FROM focused_{view}",
    )


class Copies:
    """The copies of one scope and range, in a cursor of their own (closed with the snapshot)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, bound: Mapping[str, object]) -> None:
        """`cursor` has the views the copies are read from; `bound` is the scope and range."""
        self.cursor = cursor
        self._bound = dict(bound)
        self._copied: set[str] = set()

    def holding(self, views: Collection[str]) -> duckdb.DuckDBPyConnection:
        """The cursor, once each of `views` has its copy."""
        for view in sorted(set(views) - self._copied):
            create, point = copy_sql(view)
            self.cursor.execute(create, self._bound)
            self.cursor.execute(point)
            self._copied.add(view)
        return self.cursor

    def close(self) -> None:
        self.cursor.close()
