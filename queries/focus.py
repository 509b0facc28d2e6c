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
Over a range read from day files alone, the copy is shared instead
(`SharedCopies`): a table of the catalog, kept for the next snapshots too,
made from those files by the first query that needs it.
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

import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass, field
from functools import cache, partial
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


def copy_sql(view: str, table: str | None = None) -> tuple[str, str]:
    """Run in a cursor with the query's scope and range bound: `view`'s reachable rows copied (what
    `scoped_outcomes` reads for [$start, $end + 1 day)) into the cursor's TEMP table, or into
    `table` of the catalog (`SharedCopies`), then the view's name pointed at the copy. A TEMP
    object of a view's name is what the macros read when a query runs."""
    workspace, destination = ("workspace_id", "destination_id") if view == "outcomes" else ("NULL", "NULL")
    target = f"TEMP TABLE focused_{view}" if table is None else f"TABLE {table}"
    return (
        f"""CREATE {target} AS
        SELECT * FROM {view}
        WHERE in_scope($scope_kind, $scope_value, {workspace}, {destination}, integration)
          AND started_in(date, started_hour, $start, $end + INTERVAL 1 DAY)""",
        f"CREATE OR REPLACE TEMP VIEW {view} AS FROM {table or f'focused_{view}'}",
    )


class Copies:
    """The copies of one scope and range, in a cursor of their own (closed with the snapshot).

    A view whose rows for the range are fixed (`shared`: the day files of built days) is read
    from a copy every cursor of the catalog shares (`SharedCopies`); any other, from a TEMP copy
    of this cursor's own.
    """

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        bound: Mapping[str, object],
        copies: SharedCopies | None = None,
        shared: Mapping[str, tuple[Hashable, str]] | None = None,
    ) -> None:
        """`cursor` has the views the copies are read from; `bound` is the scope and range;
        `shared`, per view copied into `copies`, its key there and the statement defining the view
        over the files the key names (a TEMP view, run before the copy is made)."""
        self.cursor = cursor
        self._bound = dict(bound)
        self._copies = copies
        self._shared = dict(shared or {}) if copies is not None else {}
        self._copied: set[str] = set()
        self._leased: list[Hashable] = []

    def holding(self, views: Collection[str]) -> duckdb.DuckDBPyConnection:
        """The cursor, once each of `views` has its copy."""
        for view in sorted(set(views) - self._copied):
            if self._copies is not None and view in self._shared:
                key, source = self._shared[view]
                table = self._copies.lease(key, partial(self._make, view, source=source))
                self._leased.append(key)
                self.cursor.execute(copy_sql(view, table)[1])
            else:
                self._make(view, None)
            self._copied.add(view)
        return self.cursor

    def _make(self, view: str, table: str | None, *, source: str | None = None) -> int:
        """Copy `view`'s rows into `table` (or this cursor's own TEMP table); how many. With
        `source`, from the view it defines: a shared copy holds the rows of the files its key
        names, whatever listing another thread has defined the catalog's view from since."""
        if source is not None:
            self.cursor.execute(source)
        create, point = copy_sql(view, table)
        rows = self.cursor.execute(create, self._bound).fetchone()
        if table is None:
            self.cursor.execute(point)
        return int(rows[0]) if rows else 0

    def close(self) -> None:
        # The cursor's views of the shared copies go first: a copy no cursor reads may be dropped.
        self.cursor.close()
        if self._copies is not None:
            for key in self._leased:
                self._copies.release(key)
        self._leased.clear()


@dataclass(eq=False)
class _Shared:
    table: str
    made: threading.Event = field(default_factory=threading.Event)
    failed: bool = False
    users: int = 0
    rows: int = 0


class SharedCopies:
    """Copies of a scope's rows that every cursor of one catalog reads, kept after their snapshot.

    The dashboard reads a page's figures ahead in one thread (`app.prefetch`) and
    the page in another, each in a snapshot of its own: each made the same copy,
    the second while its viewer waited (about 0.12 s of a customer page's cold
    click over a month). A copy made from day files alone holds the same rows as
    long as its key (the files, the scope, the range) is what a listing finds, so
    a later snapshot that finds it uses it, from its first query. The first of
    several threads asking for a key makes its copy while the others wait for
    it (`AttemptLog.interrupt` does not reach a thread waiting here, whose query
    runs once the copy is made; DuckDB stops only a query under way). At most `max_copies` are
    kept, of `max_rows` rows in all (a workspace's month is some ten thousand
    rows; a million `outcomes` rows take some 170 MB), the least recently
    leased dropped first, never one a cursor reads (`users`).
    """

    def __init__(
        self, drop: Callable[[str], object], max_copies: int = 16, max_rows: int = 1_000_000
    ) -> None:
        """`drop(table)` drops a copy's table from the catalog."""
        self._drop = drop
        self._max_copies = max_copies
        self._max_rows = max_rows
        self._lock = threading.Lock()
        self._copies: OrderedDict[Hashable, _Shared] = OrderedDict()
        self._names = itertools.count()

    def lease(self, key: Hashable, make: Callable[[str], int]) -> str:
        """The table holding the copy for `key`, made by `make(table)` (which says how many rows it
        copied) if no thread has made it; the caller reads it until `release(key)`. A failure of
        `make` is raised to its caller, and a thread waiting for it makes the copy itself."""
        while True:
            with self._lock:
                shared = self._copies.get(key)
                maker = shared is None
                if shared is None:
                    shared = self._copies[key] = _Shared(f"focus_copy_{next(self._names)}")
                self._copies.move_to_end(key)
                shared.users += 1
            if maker:
                try:
                    shared.rows = make(shared.table)
                except BaseException:
                    with self._lock:
                        shared.failed = True
                        shared.users -= 1
                        if self._copies.get(key) is shared:
                            del self._copies[key]
                    shared.made.set()
                    raise
                shared.made.set()
                self._evict()
                return shared.table
            shared.made.wait()
            if not shared.failed:
                return shared.table
            with self._lock:
                shared.users -= 1

    def release(self, key: Hashable) -> None:
        """A cursor no longer reads the copy it leased for `key`."""
        with self._lock:
            shared = self._copies.get(key)
            if shared is not None:
                shared.users -= 1
        self._evict()

    def tables(self) -> list[str]:
        """The copies kept, least recently leased first."""
        with self._lock:
            return [shared.table for shared in self._copies.values() if shared.made.is_set()]

    def _evict(self) -> None:
        gone = []
        with self._lock:
            rows = sum(shared.rows for shared in self._copies.values())
            for key, shared in list(self._copies.items()):
                if len(self._copies) <= self._max_copies and rows <= self._max_rows:
                    break
                if not shared.users and shared.made.is_set():
                    gone.append(self._copies.pop(key))
                    rows -= shared.rows
        for shared in gone:
            self._drop(shared.table)
