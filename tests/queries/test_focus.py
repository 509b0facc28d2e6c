"""A snapshot's copy of a scope's `outcomes` rows (`queries.focus`) gives the figures the files give."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import duckdb
import polars as pl
import pytest

from ingest.day_rollups import build_days
from ingest.logstore import LocalStore
from queries import AttemptLog, Scope, api, connect
from queries.errors import QueryError
from queries.focus import FOCUS_VIEWS, SCOPED_MACROS, Copies, SharedCopies, _qualifies, focusable, views_read
from queries.loader import macros_reading, query_names
from queries.log import reads_days

from .conftest import D0, D1, D2, at, copy_log, job, ok, publish

FOCUSED = sorted(name for name in query_names() if focusable(name))
#: What explorer_hours needs beside the scope and range: no filter.
EXTRA = {
    "explorer_hours": dict.fromkeys(
        ("destination_id", "error_class", "error_code", "integration", "status_code")
    )
}
RANGES = {
    "three whole days": (D0, D2 + timedelta(days=1)),  # the day files
    "one whole day": (D1, D2),  # the day files, and the hourly ones for the queries per hour
    "hours of a day": (D1 + timedelta(hours=9), D1 + timedelta(hours=13)),  # the hourly files
}


#: The fixture log's three dates.
DAYS = ("2026-03-09", "2026-03-10", "2026-03-11")


def built_copy(fixture_dir: Path, data_dir: Path, dates: tuple[str, ...] = DAYS) -> LocalStore:
    """A copy of the fixture log in `data_dir`, with `dates` built into day files."""
    store = LocalStore(copy_log(fixture_dir, data_dir))
    assert build_days(store, dates=dates).built == list(dates)
    return store


@pytest.fixture(scope="module")
def days_log(fixture_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttemptLog]:
    """The fixture log with its three days built into day files, so whole days read them."""
    data_dir = built_copy(fixture_dir, tmp_path_factory.mktemp("focus")).root
    with connect(data_dir) as log:
        yield log


def narrow_scopes(log: AttemptLog) -> list[Scope]:
    """Every workspace, destination and integration of the log."""
    rows = api.destinations(log, Scope.all(), D0, D2 + timedelta(days=1))
    return [
        *(Scope.workspace(w) for w in sorted(set(rows.get_column("workspace_id")))),
        *(Scope.destination(d) for d in sorted(set(rows.get_column("destination_id")))),
        *(Scope.integration(i) for i in sorted(set(rows.get_column("integration")))),
    ]


def run_all(log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> dict[str, pl.DataFrame]:
    return {name: log.run(name, scope, start, end, **EXTRA.get(name, {})) for name in FOCUSED}


def test_the_pages_queries_of_the_outcomes_rollups_qualify() -> None:
    for name in (
        "day_report",
        "by_destination",
        "destination_failures",
        "by_error",
        "hourly",
        "funnel",
        "daily",
    ):
        assert focusable(name), name
    assert not focusable("trace_destinations")  # reads `outcomes` itself, by message
    assert not focusable("error_samples")  # another rollup
    assert not focusable("retries")  # the raw log too


def test_no_macro_but_the_scoped_ones_reads_the_outcomes_rollups() -> None:
    # A new macro reading them could reach rows outside the copy: it must be checked, and added here.
    assert macros_reading(FOCUS_VIEWS) == SCOPED_MACROS


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM scoped_outcomes($scope_kind, $scope_value, $start - INTERVAL 1 DAY, $end)",
        "SELECT * FROM cohort_outcomes('all', NULL, $start, $end)",
        "SELECT * FROM cohort_outcomes($scope_kind, $scope_value, $start, $end) "
        "JOIN outcomes USING (workspace_id)",
        "SELECT * FROM cohort_outcomes($scope_kind, $scope_value, $start, $end) c, outcomes o",
        'SELECT * FROM cohort_outcomes($scope_kind, $scope_value, $start, $end) JOIN "outcomes" USING (j)',
        "SELECT * FROM cohort_outcomes($scope_kind, $scope_value, $start, $end), query_table('outcomes')",
        "SELECT count(*) FROM outcomes",
        "SELECT * FROM cohort_outcomes($scope_kind, $scope_value, $start, $end) WHERE job_id IN "
        "(SELECT job_id FROM scoped_outcomes($scope_kind, $scope_value, $start - INTERVAL 1 DAY, $end))",
    ],
)
def test_a_query_that_reaches_other_rows_does_not_qualify(text: str) -> None:
    assert not _qualifies(text, FOCUS_VIEWS)


def test_a_query_through_the_macros_with_its_own_range_qualifies() -> None:
    text = "SELECT * FROM cohort_outcomes($scope_kind, $scope_value, $start, $end, per_destination := true)"
    assert _qualifies(text, FOCUS_VIEWS)
    assert not _qualifies(text, FOCUS_VIEWS | {"attempts"})


def test_an_integration_copies_outcomes_only_for_figures_per_destination() -> None:
    assert views_read("by_destination", "integration") == FOCUS_VIEWS
    assert views_read("day_report", "integration") == {"integration_outcomes"}
    assert views_read("day_report", "workspace") == {"outcomes"}


@pytest.mark.parametrize("range_name", list(RANGES))
def test_every_qualifying_query_gives_the_files_figures_from_the_copy(
    days_log: AttemptLog, range_name: str
) -> None:
    start, end = RANGES[range_name]
    scopes = narrow_scopes(days_log)
    assert len({scope.kind for scope in scopes}) == 3
    for scope in scopes:
        from_files = run_all(days_log, scope, start, end)  # no snapshot: never a copy
        with days_log.snapshot():
            run_all(days_log, scope, start, end)  # over hours, the first query reads the files
            from_copy = run_all(days_log, scope, start, end)
            # The copy was made (for each catalog the range reads), so the figures above came from it.
            catalogs = {"days" if reads_days(name, start, end) else "hours" for name in FOCUSED}
            assert days_log.focused_catalogs() == catalogs
        for name in FOCUSED:
            assert from_copy[name].equals(from_files[name]), (scope, name)
        assert days_log.focused_catalogs() == set()  # closed with the snapshot


def test_scope_all_and_a_single_query_over_hours_make_no_copy(days_log: AttemptLog) -> None:
    with days_log.snapshot():
        run_all(days_log, Scope.all(), *RANGES["three whole days"])
        api.day_report(days_log, Scope.workspace("acme"), *RANGES["hours of a day"])
        assert days_log.focused_catalogs() == set()


def test_a_copy_over_built_days_is_made_at_once_and_read_by_the_next_snapshot(
    fixture_dir: Path, tmp_path: Path
) -> None:
    data_dir = built_copy(fixture_dir, tmp_path).root
    start, end = RANGES["three whole days"]
    scope = Scope.workspace("acme")
    with connect(data_dir) as log:
        from_files = run_all(log, scope, start, end)
        with log.snapshot():
            api.day_report(log, scope, start, end)
            assert log.focused_catalogs() == {"days"}  # from the first query: no other snapshot had it
        kept = log.shared_copies()
        assert len(kept) == 1  # kept after its snapshot
        # Another thread's snapshot reads the same copy (nothing new is made), with the same figures.
        results: dict[str, pl.DataFrame] = {}

        def in_a_snapshot() -> None:
            with log.snapshot():
                results.update(run_all(log, scope, start, end))

        thread = threading.Thread(target=in_a_snapshot)
        thread.start()
        thread.join()
        assert log.shared_copies() == kept
        for name in FOCUSED:
            assert results[name].equals(from_files[name]), name


def test_a_day_rebuilt_or_reopened_is_never_read_from_an_older_copy(
    fixture_dir: Path, tmp_path: Path
) -> None:
    store = built_copy(fixture_dir, tmp_path)
    data_dir = store.root
    start, end = RANGES["three whole days"]
    scope = Scope.workspace("acme")
    with connect(data_dir) as log:

        def requests() -> int:
            with log.snapshot():
                return int(api.day_report(log, scope, start, end).item(0, "requests"))

        before = requests()
        first_copy = log.shared_copies()
        # A late file for D1: the day is read from its hourly files, and no copy of it is shared.
        publish(job("J13", "dst_acme_hook", at(D1, "10:14"), [ok(at(D1, "10:15"))]), data_dir)
        assert requests() == before + 1
        assert log.shared_copies() == first_copy
        # Built again (another digest): a new copy, of the new day file.
        assert "2026-03-10" in build_days(store, dates=DAYS).built
        assert requests() == before + 1
        assert len(log.shared_copies()) == 2


def test_copies_kept_are_bounded_and_one_being_read_is_never_dropped() -> None:
    made: list[str] = []
    dropped: list[str] = []

    def make(table: str, rows: int = 10) -> int:
        made.append(table)
        return rows

    copies = SharedCopies(dropped.append, max_copies=2, max_rows=100)
    assert copies.lease("a", make) == made[0]
    for key in ("b", "c", "d"):
        copies.lease(key, make)
        copies.release(key)
    # "a" is still leased, so the least recent copies idle went: "b", then "c".
    assert dropped == made[1:3]
    assert copies.tables() == [made[0], made[3]]
    copies.release("a")
    copies.lease("e", make)
    assert dropped == [*made[1:3], made[0]]
    # Past the rows kept, the least recent idle copies go too, the new one last.
    copies.release("e")
    copies.lease("f", partial(make, rows=95))
    assert copies.tables() == [made[5]]
    copies.release("f")
    copies.lease("g", partial(make, rows=200))
    copies.release("g")
    assert copies.tables() == []


def test_threads_asking_for_one_copy_wait_for_its_maker_and_make_it_if_that_failed() -> None:
    copies = SharedCopies(lambda table: None)
    made: list[str] = []
    started, go = threading.Event(), threading.Event()

    def failing(table: str) -> None:
        started.set()
        go.wait()
        raise duckdb.InterruptException("stopped")

    def first() -> None:
        with pytest.raises(duckdb.InterruptException):
            copies.lease("k", failing)

    failer = threading.Thread(target=first)
    failer.start()
    started.wait()
    waiter = threading.Thread(target=lambda: made.append(copies.lease("k", lambda table: 1)))
    waiter.start()
    deadline = time.monotonic() + 10
    while copies._copies["k"].users < 2:  # the waiter waits for the copy being made
        assert time.monotonic() < deadline, "the second thread never asked for the copy"
        time.sleep(0.001)
    go.set()
    failer.join()
    waiter.join()
    assert made and copies.tables() == made  # the waiter made it once the first maker failed


def test_a_copy_that_cannot_be_made_leaves_the_queries_on_the_files(
    days_log: AttemptLog, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    start, end = RANGES["three whole days"]
    scope = Scope.workspace("acme")
    from_files = run_all(days_log, scope, start, end)
    monkeypatch.setattr(
        "queries.focus.copy_sql", lambda view, table=None: ("SELECT no_such_column FROM outcomes", "SELECT 1")
    )
    with days_log.snapshot():
        run_all(days_log, scope, start, end)
        again = run_all(days_log, scope, start, end)
        assert days_log.focused_catalogs() == set()
    assert "copying its rows failed" in caplog.text
    for name in FOCUSED:
        assert again[name].equals(from_files[name]), name


def test_a_copy_stopped_by_an_interrupt_stops_its_query(
    fixture_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = built_copy(fixture_dir, tmp_path).root
    start, end = RANGES["three whole days"]
    scope = Scope.workspace("acme")

    def interrupted(self: Copies, views: object) -> None:
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    with connect(data_dir) as log:
        expected = api.day_report(log, scope, start, end)
        with monkeypatch.context() as patched:
            patched.setattr(Copies, "holding", interrupted)
            with log.snapshot(), pytest.raises(QueryError, match="Interrupted"):
                api.day_report(log, scope, start, end)  # not read from the files instead
        assert "copying its rows failed" not in caplog.text
        with log.snapshot():
            assert api.day_report(log, scope, start, end).equals(expected)


def test_a_range_with_a_day_not_built_copies_per_snapshot_with_the_files_figures(
    fixture_dir: Path, tmp_path: Path
) -> None:
    # D2 keeps its hourly files only: a late file could still join it.
    data_dir = built_copy(fixture_dir, tmp_path, DAYS[:2]).root
    start, end = RANGES["three whole days"]
    with connect(data_dir) as log:
        for scope in narrow_scopes(log):
            from_files = run_all(log, scope, start, end)
            with log.snapshot():
                run_all(log, scope, start, end)
                from_copy = run_all(log, scope, start, end)
                assert log.focused_catalogs() == {"days"}
            for name in FOCUSED:
                assert from_copy[name].equals(from_files[name]), (scope, name)
        assert log.shared_copies() == []


def test_a_shared_copy_holds_the_rows_of_its_own_listing_whatever_another_snapshot_defined(
    fixture_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = built_copy(fixture_dir, tmp_path)
    data_dir = store.root
    start, end = RANGES["three whole days"]
    scope = Scope.workspace("acme")
    listed, go, synced = threading.Event(), threading.Event(), threading.Event()
    with connect(data_dir) as log:
        before = int(api.day_report(log, scope, start, end).item(0, "requests"))

        def an_older_listing() -> None:
            # A snapshot that listed the log before D1 was built again, and defines the day views
            # from its listing each time it runs a query.
            with log.snapshot():
                api.destinations(log, Scope.all(), start, end)
                listed.set()
                go.wait()
                api.destinations(log, Scope.all(), start, end)
                synced.set()

        older = threading.Thread(target=an_older_listing)
        older.start()
        listed.wait()
        publish(job("J13", "dst_acme_hook", at(D1, "10:14"), [ok(at(D1, "10:15"))]), data_dir)
        assert "2026-03-10" in build_days(store, dates=DAYS).built
        holding = Copies.holding

        def after_the_older_snapshot_ran(self: Copies, views: Collection[str]) -> duckdb.DuckDBPyConnection:
            go.set()
            synced.wait()  # the catalog's views are the older listing's again
            return holding(self, views)

        monkeypatch.setattr(Copies, "holding", after_the_older_snapshot_ran)
        with log.snapshot():
            requests = int(api.day_report(log, scope, start, end).item(0, "requests"))
        older.join()
        assert requests == before + 1  # from D1's new day file, as this snapshot listed it
