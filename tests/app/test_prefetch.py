"""Reading ahead (app/prefetch.py): a page read ahead opens without reading the log itself."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import data, prefetch
from app.access import Viewer, ViewerKind
from queries import QueryError, Scope, api, connect

from .conftest import END, START, OpenApp, SimulatedDay, token

#: Each page by URL path (app/main.py) and file.
FILES = {
    "day": "views/day.py",
    "customer": "views/customer.py",
    "partner": "views/partner.py",
    "retries": "views/retries.py",
    "explorer": "views/explorer.py",
}


@pytest.fixture
def queries_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Scope]]]:
    """Each named query run from now on, with its scope (`queries.api`, which every cached figure
    of `app.data` calls with the log, then the scope; None for a query of the whole log)."""
    calls: list[tuple[str, Scope]] = []
    for name in dir(api):
        function = getattr(api, name)
        if callable(function) and getattr(function, "__module__", None) == api.__name__ and name[0] != "_":

            def counted(*args, _name=name, _function=function, **kwargs):  # type: ignore[no-untyped-def]
                calls.append((_name, args[1] if len(args) > 1 else None))  # type: ignore[arg-type]
                return _function(*args, **kwargs)

            monkeypatch.setattr(api, name, counted)
    yield calls


def page_queries(queries_run: list[tuple[str, Scope]]) -> list[str]:
    """The queries a page ran: not the entry file's list of days for the sidebar, cached on its own
    for 30 s (which a slow machine may outlast within a test)."""
    return [name for name, _ in queries_run if name != "received_days"]


def viewer_of(kind: ViewerKind, simulated_day: SimulatedDay) -> Viewer:
    value = {
        ViewerKind.WORKSPACE: simulated_day.workspaces[1],
        ViewerKind.PARTNER: simulated_day.integrations[1],
    }.get(kind)
    return Viewer(kind, value, int(dt.datetime.now(dt.UTC).timestamp()) + 3600)


PAGES = (
    [(ViewerKind.ENGINEER, page) for page in FILES]
    + [(ViewerKind.WORKSPACE, page) for page in ("day", "retries", "explorer")]
    + [(ViewerKind.PARTNER, page) for page in ("day", "retries")]
)


@pytest.mark.parametrize(("kind", "page"), PAGES)
def test_a_page_read_ahead_opens_without_a_query_of_its_own(
    open_app: OpenApp,
    simulated_day: SimulatedDay,
    queries_run: list[tuple[str, Scope]],
    kind: ViewerKind,
    page: str,
) -> None:
    viewer = viewer_of(kind, simulated_day)
    at = open_app(token(kind, viewer.value))  # the viewer's home page: the sidebar's figures cached
    data._named.clear()
    prefetch.read(viewer, page, START, END)
    assert queries_run, "reading ahead read nothing"
    queries_run.clear()
    at.switch_page(FILES[page]).run()
    assert not at.exception
    assert page_queries(queries_run) == []


def test_after_a_page_the_dashboard_reads_the_others_ahead(
    open_app: OpenApp, simulated_day: SimulatedDay, queries_run: list[tuple[str, Scope]]
) -> None:
    at = open_app(token(ViewerKind.ENGINEER), read_ahead=True)
    reader = prefetch._reader()
    assert reader.idle(timeout_s=120)
    data._named.clear()
    reader._done.clear()
    at.run()  # the day page, then its siblings in the background
    assert reader.idle(timeout_s=120)
    queries_run.clear()
    for page in ("customer", "partner", "retries", "explorer"):
        at.switch_page(FILES[page]).run()
        assert not at.exception
    assert page_queries(queries_run) == []


def test_with_reading_ahead_off_each_page_reads_when_opened(
    open_app: OpenApp, simulated_day: SimulatedDay, queries_run: list[tuple[str, Scope]]
) -> None:
    at = open_app(token(ViewerKind.ENGINEER))
    data._named.clear()
    at.run()
    assert prefetch._reader().idle(timeout_s=120)
    queries_run.clear()
    at.switch_page(FILES["retries"]).run()
    assert "retries" in [name for name, _ in queries_run]


class Recorded:
    """A stand-in for `prefetch.read` that records each page and can hold the reader on one."""

    def __init__(self) -> None:
        self.read: list[tuple[str, dt.datetime]] = []
        self.hold = threading.Event()
        self.held = threading.Event()
        self.hold.set()
        self.fail_on: str | None = None

    def __call__(self, viewer: Viewer, page: str, start: dt.datetime, end: dt.datetime) -> None:
        data._run_hook()  # as a named query would, first
        self.read.append((page, start))
        self.held.set()
        self.hold.wait(30)
        if page == self.fail_on:
            raise RuntimeError("the log is unreadable")


ENGINEER = Viewer(ViewerKind.ENGINEER, None, 2**40)
LATER = START + dt.timedelta(hours=1)


def test_a_session_s_new_range_replaces_the_one_not_begun() -> None:
    recorded = Recorded()
    reader = prefetch.Reader(recorded, settle_s=0)
    recorded.hold.clear()
    reader.submit("s1", prefetch.Plan(ENGINEER, ("day", "retries"), START, END))
    assert recorded.held.wait(30)  # reading the first page of the first range
    reader.submit("s1", prefetch.Plan(ENGINEER, ("day",), LATER, END))
    reader.submit("s1", prefetch.Plan(ENGINEER, ("retries",), LATER, END))
    recorded.hold.set()
    assert reader.idle(timeout_s=30)
    # The first range stopped after its page in progress; of the two later plans, the latest.
    assert recorded.read == [("day", START), ("retries", LATER)]
    # Left unfinished, the first range is read again when asked again.
    reader.submit("s1", prefetch.Plan(ENGINEER, ("day", "retries"), START, END))
    assert reader.idle(timeout_s=30)
    assert recorded.read[2:] == [("day", START), ("retries", START)]


def test_a_range_read_ahead_is_not_read_again_within_the_cache_s_lifetime() -> None:
    recorded = Recorded()
    reader = prefetch.Reader(recorded, settle_s=0)
    plan = prefetch.Plan(ENGINEER, ("day",), START, END)
    reader.submit("s1", plan)
    assert reader.idle(timeout_s=30)
    reader.submit("s2", plan)
    assert reader.idle(timeout_s=30)
    assert recorded.read == [("day", START)]


def test_a_page_that_fails_to_read_ahead_is_logged_and_the_next_is_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorded = Recorded()
    recorded.fail_on = "day"
    reader = prefetch.Reader(recorded, settle_s=0)
    reader.submit("s1", prefetch.Plan(ENGINEER, ("day", "retries"), START, END))
    assert reader.idle(timeout_s=30)
    assert [page for page, _ in recorded.read] == ["day", "retries"]
    assert "reading the day page ahead failed" in caplog.text


def test_nothing_is_read_ahead_while_a_page_runs() -> None:
    recorded = Recorded()
    reader = prefetch.Reader(recorded, settle_s=0)
    with reader.foreground():
        reader.submit("s1", prefetch.Plan(ENGINEER, ("day", "retries"), START, END))
        assert not reader.idle(timeout_s=0.5)
        assert recorded.read == []
    assert reader.idle(timeout_s=30)
    assert [page for page, _ in recorded.read] == ["day", "retries"]


def test_a_plan_waiting_for_a_page_gives_way_to_the_session_s_next() -> None:
    recorded = Recorded()
    reader = prefetch.Reader(recorded, settle_s=0)
    with reader.foreground():
        reader.submit("s1", prefetch.Plan(ENGINEER, ("day", "retries"), START, END))
        assert not reader.idle(timeout_s=0.5)  # begun, waiting before its first query
        reader.submit("s1", prefetch.Plan(ENGINEER, ("day",), LATER, END))
    assert reader.idle(timeout_s=30)
    assert recorded.read == [("day", LATER)]


def test_reading_ahead_waits_for_the_dashboard_to_settle_after_a_page() -> None:
    recorded = Recorded()
    reader = prefetch.Reader(recorded, settle_s=60)
    with reader.foreground():
        pass
    reader.submit("s1", prefetch.Plan(ENGINEER, ("day",), START, END))
    assert not reader.idle(timeout_s=0.5)
    assert recorded.read == []
    reader.close()


@pytest.mark.parametrize("kind", [ViewerKind.WORKSPACE, ViewerKind.PARTNER])
def test_a_link_s_reading_ahead_reads_its_own_scope_only(
    open_app: OpenApp, simulated_day: SimulatedDay, queries_run: list[tuple[str, Scope]], kind: ViewerKind
) -> None:
    viewer = viewer_of(kind, simulated_day)
    open_app(token(kind, viewer.value))
    data._named.clear()
    queries_run.clear()
    for page in FILES:  # every page, the link's or not: none reads beyond the link's scope
        prefetch.read(viewer, page, START, END)
    assert queries_run
    assert {scope for _, scope in queries_run} == {viewer.scope}


def test_back_to_the_range_being_read_the_session_s_plan_in_between_is_dropped() -> None:
    recorded = Recorded()
    reader = prefetch.Reader(recorded, settle_s=0)
    recorded.hold.clear()
    first = prefetch.Plan(ENGINEER, ("day", "retries"), START, END)
    reader.submit("s1", first)
    assert recorded.held.wait(30)
    reader.submit("s1", prefetch.Plan(ENGINEER, ("day",), LATER, END))
    reader.submit("s1", first)  # back: the range being read
    recorded.hold.set()
    assert reader.idle(timeout_s=30)
    assert recorded.read == [("day", START), ("retries", START)]


def test_a_page_of_another_range_stops_the_query_read_ahead_for_the_last(tmp_path: Path) -> None:
    # A real log's query, stopped by DuckDB's interrupt: the reader's thread must come back from it.
    with connect(tmp_path) as log:
        pages: list[tuple[str, dt.datetime]] = []
        outcomes: list[str] = []

        def read_page(viewer: Viewer, page: str, start: dt.datetime, end: dt.datetime) -> None:
            pages.append((page, start))
            try:
                log.trusted_sql("SELECT count(*) FROM range(10_000_000_000_000) WHERE range % 7 = 3")
            except QueryError:
                outcomes.append("stopped")
                raise
            outcomes.append("finished")

        reader = prefetch.Reader(read_page, settle_s=0, interrupt=log.interrupt)
        reader.submit("s1", prefetch.Plan(ENGINEER, ("day", "retries"), START, END))
        deadline = time.monotonic() + 60
        while not pages and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pages
        reader.showing("s2", LATER, END)  # another session: its plan is not this one's to stop
        reader.showing("s1", START, END)  # the same range: its figures are wanted
        assert not reader.idle(timeout_s=0.5)
        assert outcomes == []
        deadline = time.monotonic() + 60
        # Again until stopped: an interrupt that comes before DuckDB begins the query is lost.
        while not reader.idle(timeout_s=0.05) and time.monotonic() < deadline:
            reader.showing("s1", LATER, END)
        assert reader.idle(timeout_s=0)
        # Stopped, and the plan with it: not the next page, and not counted as read.
        assert outcomes == ["stopped"]
        assert pages == [("day", START)]
        reader.close()


def test_stopped_for_another_range_the_plan_is_read_again_when_asked_again() -> None:
    recorded = Recorded()
    reader = prefetch.Reader(recorded, settle_s=0, interrupt=lambda thread: recorded.hold.set())
    recorded.hold.clear()
    reader.submit("s1", prefetch.Plan(ENGINEER, ("day", "retries"), START, END))
    assert recorded.held.wait(30)
    reader.showing("s1", LATER, END)  # releases the page being read, as an interrupt would
    assert reader.idle(timeout_s=30)
    assert recorded.read == [("day", START)]
    reader.submit("s1", prefetch.Plan(ENGINEER, ("day", "retries"), START, END))
    assert reader.idle(timeout_s=30)
    assert recorded.read[1:] == [("day", START), ("retries", START)]
