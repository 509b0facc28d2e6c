"""A page's working set: the `outcomes` rows of one scope and range, read from the files once.

A page or a report runs several named queries for the same scope and range,
and most of them read the two `outcomes` rollups through the scoped macros
of `queries/_macros.sql`. Each query opened the same day files again (31 of
each view over a month) to find the same few hundred rows of one workspace:
about a tenth of a second a query, where the rows alone take a hundredth.

Within `AttemptLog.snapshot`, the second such query of a narrow scope (a
workspace, a destination, an integration) copies those rows into a
temporary table of its own cursor, named like the view it replaces; that
query and the later ones of the snapshot read the copy. The copy holds every
row the scoped macros can reach for the scope and range (`FOCUS_SQL`: the
scope's rows whose requests started from `$start` to a day past `$end`), so a
query that reads the views only through them gives the same figures from
the copy as from the files (tests/queries/test_focus.py compares them).

A query qualifies (`focusable`) when `outcomes` and `integration_outcomes`
are the only views it reads, it names neither itself, and every macro call
that reaches them passes the query's own `$scope_kind, $scope_value, $start,
$end`. Scope 'all' is never copied: its rows are the whole view.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import cache
from typing import Final

from queries.catalog import VIEWS
from queries.loader import load_query, names_read

#: The views the copy replaces.
FOCUS_VIEWS: Final = frozenset({"outcomes", "integration_outcomes"})

#: The macros that read the views for a scope and range, each called as
#: ``name($scope_kind, $scope_value, $start, $end[, ...])`` by a query that qualifies.
_SCOPED_MACROS: Final = (
    "scoped_outcomes",
    "cohort_outcomes",
    "replay_outcomes",
    "cohort_and_requests",
    "destination_figures",
)
_CALL = re.compile(r"\b(" + "|".join(_SCOPED_MACROS) + r")\s*\(([^)]*)")
_OWN_ARGUMENTS = re.compile(r"^\s*\$scope_kind\s*,\s*\$scope_value\s*,\s*\$start\s*,\s*\$end\s*(,|$)")
_NAMES_A_VIEW = re.compile(r"\b(FROM|JOIN)\s+(" + "|".join(sorted(FOCUS_VIEWS)) + r")\b", re.IGNORECASE)

#: Run in the query's cursor, with the query's scope and range bound: each view's reachable rows
#: copied (what `scoped_outcomes` reads for [$start, $end + 1 day)), then the view's name pointed
#: at the copy. A TEMP object of a view's name is what the macros read when a query runs.
FOCUS_SQL: Final = (
    """CREATE TEMP TABLE focused_outcomes AS
    SELECT * FROM outcomes
    WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
      AND started_in(date, started_hour, $start, $end + INTERVAL 1 DAY)""",
    "CREATE OR REPLACE TEMP VIEW outcomes AS FROM focused_outcomes",
    """CREATE TEMP TABLE focused_integration_outcomes AS
    SELECT * FROM integration_outcomes
    WHERE in_scope($scope_kind, $scope_value, NULL, NULL, integration)
      AND started_in(date, started_hour, $start, $end + INTERVAL 1 DAY)""",
    "CREATE OR REPLACE TEMP VIEW integration_outcomes AS FROM focused_integration_outcomes",
)


@cache
def focusable(name: str) -> bool:
    """Whether the named query may read the copy of its scope's rows instead of the files."""
    return _qualifies(load_query(name), names_read(name, VIEWS))


def _qualifies(text: str, views_read: Collection[str]) -> bool:
    """Whether a query of `text`, which reads `views_read`, reaches them only through the scoped macros."""
    calls = _CALL.findall(text)
    return (
        bool(calls)
        and set(views_read) <= FOCUS_VIEWS
        and _NAMES_A_VIEW.search(text) is None
        and all(_OWN_ARGUMENTS.match(arguments) for _, arguments in calls)
    )
