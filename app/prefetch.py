"""Reading ahead: the figures of the pages a viewer has not opened yet, for the range on screen.

After each run of a page (app/main.py), the other pages the viewer may open
are read in the background, for the same range and as their first click
would read them (`app.reads`), into the cache every session shares
(`app.data`). The next click on one of them then draws from the cache
instead of waiting for the log: pages are switched more often than the
range is, and a user reads a page for a few seconds before the next click.

It never changes what a page shows, only when the figures are read:
the scope is the viewer's own (a workspace link reads ahead its workspace,
a partner link its integration); an operator's customer and partner pages
read ahead the scope they open on (the busiest workspace and integration of
the range, `app.filters`). Cached results expire after `data.TTL_S`, as
the page's own would.

What it costs: one background thread per dashboard process, one viewer's
pages at a time, and only while the dashboard is otherwise idle: it starts
no query until no page has run for `SETTLE_S` (`foreground`), so that it
starts none while a viewer waits for a page (a query already begun runs
on, unless it is for a range its viewer has left). A viewer who picks
another range replaces the plan for the last one, whose query under way, if
any, is stopped as the page of the new range starts (`showing`; only the
latest range of each session is read ahead), and a range read ahead within
`data.TTL_S` is not read again. A page clicked while its figures are being
read waits for them rather than reading them twice (`st.cache_data`
computes one key once at a time).
`DELIVERYDASH_PREFETCH=0` (`deliverydash dashboard --no-prefetch`) turns it
off, for a dashboard whose cores are better left to the pages being viewed.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import streamlit as st

from app import data, reads
from app.access import Viewer, ViewerKind
from queries import Scope

logger = logging.getLogger(__name__)

#: "0" turns reading ahead off (`deliverydash dashboard --no-prefetch`).
PREFETCH_ENV = "DELIVERYDASH_PREFETCH"
#: How long the dashboard must have run no page before a query is read ahead: a rerun Streamlit
#: queued during a run (a slider dragged) starts within it. Short, so that reading begins while the browser
#: draws the page just run: the next click then finds more of its figures read (a new range's
#: first page no longer waits on the last range's reading, which it stops: `showing`).
SETTLE_S = 0.05
#: Where a session keeps the name its plans go by.
_SESSION_KEY = "_prefetch_session"


def enabled() -> bool:
    """Whether the dashboard reads ahead (on unless `$DELIVERYDASH_PREFETCH` is 0)."""
    return os.environ.get(PREFETCH_ENV, "1") != "0"


@dataclass(frozen=True)
class Plan:
    """The pages to read ahead for one viewer and range, in the order the sidebar lists them."""

    viewer: Viewer
    pages: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime

    @property
    def key(self) -> tuple[object, ...]:
        """What the reads depend on: the same key reads the same figures."""
        return (self.viewer.kind, self.viewer.scope, self.pages, self.start, self.end)


def read(viewer: Viewer, page: str, start: dt.datetime, end: dt.datetime) -> None:
    """Read what the page at URL path `page` reads first (`app.reads`), as `viewer`, for the range."""
    reader = _READERS.get(page)
    if reader is not None:
        with data.log().snapshot():
            reader(viewer, start, end)


@contextlib.contextmanager
def foreground() -> Iterator[None]:
    """A page run: the reading ahead starts no query until it ends (nothing when it is off)."""
    if not enabled():
        yield
        return
    with _reader().foreground():
        yield


def showing(start: dt.datetime, end: dt.datetime) -> None:
    """This session's page reads [start, end): a query read ahead for another range of the session is
    stopped at once, rather than sharing the cores with the page (nothing when reading ahead is off)."""
    if enabled() and (session := st.session_state.get(_SESSION_KEY)) is not None:
        _reader().showing(session, start, end)


def schedule(viewer: Viewer, pages: Sequence[str], start: dt.datetime, end: dt.datetime) -> None:
    """Read `pages` (URL paths: every page the viewer may open, the one on screen included, whose
    figures are then found in the cache) ahead in the background for this session's viewer and
    range."""
    if not enabled():
        return
    wanted = tuple(page for page in pages if page in _READERS)
    if wanted:
        session = st.session_state.setdefault(_SESSION_KEY, uuid.uuid4().hex)
        _reader().submit(session, Plan(viewer, wanted, start, end))


class Reader:
    """One thread that carries out the plans, the latest of each session, oldest session first."""

    def __init__(
        self,
        read_page: Callable[[Viewer, str, dt.datetime, dt.datetime], None] = read,
        *,
        settle_s: float = SETTLE_S,
        interrupt: Callable[[int], object] = lambda thread: data.log().interrupt(thread),
    ) -> None:
        self._read_page = read_page
        self._settle_s = settle_s
        self._interrupt = interrupt
        self._last_run_end = 0.0
        self._pending: dict[str, Plan] = {}
        self._current: Plan | None = None
        self._current_session: str | None = None
        self._stopped = False  # the current plan was stopped for another range (`showing`)
        self._page_runs = 0
        self._done: dict[tuple[object, ...], float] = {}
        self._closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="deliverydash-prefetch", daemon=True)
        self._thread.start()
        # Ended before the interpreter is: a thread left inside DuckDB then aborts the process.
        atexit.register(self.close)

    def submit(self, session: str, plan: Plan) -> None:
        """Read `plan` ahead, in place of any plan of `session` not begun yet; nothing if the same
        figures are being read or were read within `data.TTL_S`."""
        with self._changed:
            # Whatever happens to this plan, the session's older one not begun is not wanted.
            self._pending.pop(session, None)
            self._changed.notify_all()
            done_at = self._done.get(plan.key)
            if done_at is not None and time.monotonic() - done_at < data.TTL_S:
                return
            if self._current is not None and self._current.key == plan.key:
                return
            self._pending[session] = plan  # last: sessions take turns

    @contextlib.contextmanager
    def foreground(self) -> Iterator[None]:
        """A page run in progress: no query is started for reading ahead until it ends."""
        with self._changed:
            self._page_runs += 1
        try:
            yield
        finally:
            with self._changed:
                self._page_runs -= 1
                self._last_run_end = time.monotonic()
                self._changed.notify_all()

    def showing(self, session: str, start: dt.datetime, end: dt.datetime) -> None:
        """`session`'s page reads [start, end): stop the plan being read for another range of it, its
        query under way included (whose figures are for a range the viewer left)."""
        with self._changed:
            plan = self._current
            if plan is None or self._current_session != session or (plan.start, plan.end) == (start, end):
                return
            self._stopped = True
            self._changed.notify_all()
            # Under the lock: the reader thread cannot begin the next plan's query meanwhile.
            self._interrupt(self._thread.ident or 0)

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop after the query being read, if any (waiting up to `timeout_s` for it)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def idle(self, timeout_s: float) -> bool:
        """Wait until every plan submitted is carried out; False if `timeout_s` passed first."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._pending or self._current is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closed:
                    self._changed.wait()
                if self._closed:
                    self._pending.clear()
                    self._changed.notify_all()
                    return
                session = self._current_session = next(iter(self._pending))
                plan = self._current = self._pending.pop(session)
                self._stopped = False
            # Its first figures expire first: a plan counts as read from when it began.
            began = time.monotonic()
            done = False
            try:
                done = self._carry_out(session, plan)
            finally:
                with self._changed:
                    self._current = self._current_session = None
                    if done:
                        self._done[plan.key] = began
                    self._forget_expired()
                    self._changed.notify_all()

    def _carry_out(self, session: str, plan: Plan) -> bool:
        """Read the plan's pages; False if it was left for a newer plan of its session."""
        with data.before_each_query(lambda: self._before_query(session)):
            for page in plan.pages:
                while True:
                    try:
                        self._wait_until_idle(session)
                        self._read_page(plan.viewer, page, plan.start, plan.end)
                    except _PageRan:
                        # Read on from a new listing (a page's snapshot is for the seconds a page
                        # takes); the queries already read are found in the cache.
                        continue
                    except _Superseded:
                        return False
                    except Exception:
                        if self._stopped:
                            return False  # stopped for another range (`showing`)
                        # The page itself will meet the same error when opened, and say what it is.
                        logger.warning("reading the %s page ahead failed", page, exc_info=True)
                    break
        return True

    def _wait_until_idle(self, session: str) -> None:
        """Wait until no page has run for the settling time; raise `_Superseded` when the plan is no
        longer wanted."""
        with self._changed:
            while not self._superseded(session):
                if not (left := self._idle_in()):
                    return
                self._changed.wait(None if left == math.inf else left)
            raise _Superseded

    def _before_query(self, session: str) -> None:
        """Before each query of a page read ahead: on, unless the plan is no longer wanted
        (`_Superseded`) or a page has run since (`_PageRan`: waiting inside the page's snapshot
        would keep its listing past its time)."""
        with self._changed:
            if self._superseded(session):
                raise _Superseded
            if self._idle_in():
                raise _PageRan

    def _idle_in(self) -> float:
        """Seconds until the dashboard counts as idle: 0 when it is, unbounded while a page runs."""
        if self._page_runs:
            return math.inf
        return max(0.0, self._last_run_end + self._settle_s - time.monotonic())

    def _superseded(self, session: str) -> bool:
        # The viewer moved on to another range (read that one instead, once its page has run), or
        # the dashboard is ending.
        return session in self._pending or self._stopped or self._closed

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for key in [key for key, at in self._done.items() if now - at >= data.TTL_S]:
            del self._done[key]


class _Superseded(Exception):
    """The plan being read is no longer wanted."""


class _PageRan(Exception):
    """A page ran while one was being read ahead: it is read again once the dashboard is idle."""


@st.cache_resource(show_spinner=False)
def _reader() -> Reader:
    return Reader()


def _day(viewer: Viewer, start: dt.datetime, end: dt.datetime) -> None:
    reads.day(viewer.scope, start, end)


def _customer(viewer: Viewer, start: dt.datetime, end: dt.datetime) -> None:
    scope = _opened_on(viewer, ViewerKind.WORKSPACE, lambda: data.workspaces(start, end), Scope.workspace)
    if scope is not None:
        reads.customer(scope, start, end)


def _partner(viewer: Viewer, start: dt.datetime, end: dt.datetime) -> None:
    scope = _opened_on(viewer, ViewerKind.PARTNER, lambda: data.integrations(start, end), Scope.integration)
    if scope is not None:
        reads.partner(scope, start, end)


def _opened_on(
    viewer: Viewer, own: ViewerKind, busiest: Callable[[], list[str]], scope_of: Callable[[str], Scope]
) -> Scope | None:
    """The scope the customer or partner page opens on (`filters.workspace_scope`,
    `filters.integration_scope`): the link's own, else the range's busiest."""
    if viewer.kind is own:
        return viewer.scope
    if not viewer.sees_everything:
        return None  # never reached (the page is not the viewer's): a link's reading stays in its scope
    options = busiest()
    return scope_of(options[0]) if options else None


def _retries(viewer: Viewer, start: dt.datetime, end: dt.datetime) -> None:
    reads.retries(viewer.scope, start, end)


def _explorer(viewer: Viewer, start: dt.datetime, end: dt.datetime) -> None:
    # The explorer opens with no filter set.
    data.destinations(viewer.scope, start, end)
    reads.explorer_samples(viewer.scope, start, end)


#: What each page reads first, by URL path (app/main.py). The SQL console reads nothing ahead.
_READERS: dict[str, Callable[[Viewer, dt.datetime, dt.datetime], None]] = {
    "day": _day,
    "customer": _customer,
    "partner": _partner,
    "retries": _retries,
    "explorer": _explorer,
}
