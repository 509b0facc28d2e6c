"""The attempt log opened for queries: an in-memory DuckDB with seven views, and a sandbox for people's SQL.

`connect(data_dir)` opens in-memory connections that define the views
over the log and its rollups (`queries.catalog`: `attempts`, `outcomes`,
`latency_histogram`, `destination_latency_histogram`, `error_templates`,
`delay_histogram`, `destination_delay_histogram`) and the macros the named
queries share. Every query checks for files first and switches a view
between its files and an empty selection when its first file appears
(and back, should every file be removed).

Two catalogs (docs/log-store.md, "Ranges of whole days"): a named query
over whole days runs where the rollup views read the day rollups
(`reads_days`); any other runs on the hourly one, with views of its own
over the partitions of the dates it may read.

Reading never writes. Should a writer have crashed between an attempt file
and its rollups, or the data directory predate a rollup, the rollups and
the log disagree until a writer or `deliverydash repair` runs
`ingest.rollup.repair`; `AttemptLog.rollups_out_of_step` counts the files
concerned, so that whoever shows figures can say they are incomplete.

Only the program's SQL runs on that connection: the named queries (`run`,
`plan`) and `trusted_sql`. SQL written by a person (`AttemptLog.sql`) runs
in the SQL sandbox (`queries.sandbox`), in a worker process with a
catalog of its own, so it can neither change the views the named queries
read nor take the memory they need. The connection is locked down all the
same (`queries.catalog.lock_down`): it reads only the log's directories,
spills to a private temporary directory removed at `close`, runs in UTC,
and its configuration is locked.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar, cast

import duckdb
import polars as pl

from ingest.logstore import LogStore, open_store
from ingest.manifests import ManifestCache
from ingest.rollup import connect_macros, out_of_step
from queries.catalog import (
    QUERY_VIEWS,
    ROLLUP_VIEWS,
    SUMMARY_VIEW,
    VIEWS,
    DayCatalog,
    DaySource,
    ViewSource,
    anchor_sql,
    day_view_sources,
    day_view_sql,
    define_macros,
    define_view,
    empty_view_sql,
    is_schema_mismatch,
    lock_down,
    range_view_sql,
    readable_dirs,
    view_sources,
)
from queries.errors import QueryError
from queries.focus import FOCUS_VIEWS, Copies, SharedCopies, focusable, views_read
from queries.limits import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, Limits
from queries.loader import load_query, names_read, parameter_names
from queries.sandbox import SqlSandbox
from queries.scope import Scope, query_parameters

_T = TypeVar("_T")
logger = logging.getLogger(__name__)
#: A snapshot's state for one scope and range (`AttemptLog._focused`): None once one query read it,
#: its copies once a second one did (or the first, for copies shared: `_shared_sources`), False once
#: making them failed.
_Focus = Copies | None | Literal[False]


class AttemptLog:
    """Read access to one attempt log and its rollups. Safe to share between threads.

    Each query runs on its own cursor, and results are fetched in full, so
    concurrent callers never see each other's pending results.
    """

    def __init__(
        self,
        log: str | os.PathLike[str] | LogStore,
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
        sandbox: SqlSandbox | None = None,
    ) -> None:
        """`log` is a data directory, an ``s3://`` URL or a `LogStore` (`ingest.logstore.open_store`).

        `memory_limit` and `threads` are the named queries' connection's; `sandbox` runs `sql`.

        Without a `sandbox`, the first `sql` call starts one of its own
        (default limits, one worker), closed with the log.
        """
        self.store = open_store(log)
        self._manifests = ManifestCache(self.store)
        self._view_lock = threading.RLock()
        self._sources: dict[str, ViewSource] = {}
        self._padded: dict[str, bool | None] = {}
        self._day_sources: dict[str, DaySource] = {}
        self._local = threading.local()  # `snapshot`'s listings, per thread
        # DuckDB lets a query read its temp directory: this one is private, and removed at close.
        self._temp_dir = tempfile.mkdtemp(prefix="deliverydash-duckdb-")
        self._remove_temp_dir = weakref.finalize(self, shutil.rmtree, self._temp_dir, ignore_errors=True)
        self._sandbox = sandbox
        self._own_sandbox = sandbox is None
        self._sandbox_lock = threading.Lock()
        # Two catalogs of the same views and macros: the hourly rollups, and the
        # day rollups that ranges of whole days read (`reads_days`). Each is opened, and
        # defines its views, on its first query: binding a view over a month of hourly files
        # takes seconds, which a report over whole days never needs (nor its connection).
        self._settings = (memory_limit, threads)
        self._catalogs: dict[bool, duckdb.DuckDBPyConnection] = {}
        self._closed = False
        # Range views' anchor files (`queries.catalog.anchor_sql`), written on first use, and the
        # dates read without them since a file there lacked a column.
        self._anchors: dict[str, str] | None = None
        self._by_name_dates: set[str] = set()
        # A `key=value` folder above the log's trees or in the temporary directory adds a Hive column
        # the anchors' path lacks, which DuckDB refuses: such a log reads by name throughout.
        self._may_anchor = "=" not in self.store.path("") and "=" not in self._temp_dir
        # The cursor each thread runs a query on, for `interrupt`.
        self._running: dict[int, duckdb.DuckDBPyConnection] = {}
        self._running_lock = threading.Lock()
        self._with_macros: set[int] = set()
        # Copies of a scope's rows over built days, which every snapshot may read (`_shared_sources`).
        self._shared_copies = SharedCopies(self._drop_copy)
        # One listing now, so that a store that cannot be read says so here (`LogStoreError`).
        self._manifests.hours()

    def _catalog(self, by_day: bool) -> duckdb.DuckDBPyConnection:
        """The connection of the day catalog (`by_day`) or the hourly one, opened on first use."""
        with self._view_lock:
            if self._closed:
                raise duckdb.ConnectionException("the attempt log is closed")
            if by_day not in self._catalogs:
                self._catalogs[by_day] = self._open(*self._settings)
            return self._catalogs[by_day]

    def _open(self, memory_limit: str | None, threads: int | None) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        connect_macros(con)
        self.store.register(con)
        lock_down(
            con,
            readable_dirs(self.store),
            temp_directory=self._temp_dir,
            memory_limit=memory_limit,
            threads=threads,
        )
        return con

    def run(self, name: str, scope: Scope, start: datetime, end: datetime, **params: object) -> pl.DataFrame:
        """Run the named query (`queries/<name>.sql`) for `scope` over [start, end).

        `params` are the query's own extra parameters (e.g. `limit`); a name
        the query does not use raises `QueryError`, so a typo cannot pass
        silently. So does a query DuckDB refuses to run.
        """
        bound = _bind(name, scope, start, end, params)
        try:
            return self._fetch_named(name, "", bound, start, end)
        except duckdb.Error as exc:
            raise QueryError(f"query {name!r} failed: {exc}") from exc

    def lookup(
        self, name: str, scope: Scope, start: datetime, end: datetime, **params: object
    ) -> pl.DataFrame:
        """`run` on the hourly views over every partition, for point lookups (docs/trace.md).

        A lookup's filters prune by Parquet statistics, so it reads a row group or
        two per file whatever the range; the per-query views of `run` re-list and
        re-bind the range's partitions each time, which cost more than the lookup.
        """
        bound = _bind(name, scope, start, end, params)
        try:
            return self._fetch(load_query(name), bound)
        except duckdb.Error as exc:
            raise QueryError(f"query {name!r} failed: {exc}") from exc

    def plan(
        self,
        name: str,
        scope: Scope,
        start: datetime,
        end: datetime,
        *,
        analyze: bool = False,
        **params: object,
    ) -> str:
        """DuckDB's EXPLAIN of the named query: how it would run, and how many files it would read.

        With `analyze`, EXPLAIN ANALYZE: the query runs, and each scan also
        shows the rows it produced and the names of (the first few of) the
        files it read.
        """
        bound = _bind(name, scope, start, end, params)
        explain = "EXPLAIN ANALYZE " if analyze else "EXPLAIN "
        plan = self._fetch_named(name, explain, bound, start, end)
        return "\n".join(plan.get_column("explain_value"))

    def sql(self, text: str, *, timeout_s: float | None = None, max_rows: int | None = None) -> pl.DataFrame:
        """Run one read-only statement written by a person against the views, in the SQL sandbox.

        The views are `attempts` and the rollups `outcomes`,
        `latency_histogram`, `destination_latency_histogram`,
        `error_templates`, `delay_histogram` and
        `destination_delay_histogram` (docs/sql.md). Accepts what
        `queries.readonly` accepts (SELECT, WITH, DESCRIBE, SUMMARIZE, SHOW,
        EXPLAIN [ANALYZE] of those); anything else, a parse error, a failing
        query, and a query stopped at a limit of `queries.limits` raise
        `QueryError`. The time limit is `timeout_s` (default 30 s). With
        `max_rows`, the first `max_rows` rows come back and the rest are
        never fetched; without it, a result of more than 10,000 rows is an
        error (so that nothing is cut unseen).
        """
        limits = Limits(
            timeout_s=timeout_s or DEFAULT_TIMEOUT_S,
            max_rows=max_rows or DEFAULT_MAX_ROWS,
        )
        result = self.sandbox().run(text, limits)
        if result.truncated and max_rows is None:
            raise QueryError(
                f"the result has more than {DEFAULT_MAX_ROWS:,} rows: add a LIMIT, "
                "or pass max_rows to take the first rows"
            )
        return result.frame

    def trusted_sql(self, sql: str, *, by_day: bool = False, views: Collection[str] = VIEWS) -> pl.DataFrame:
        """Run SQL written in this program (never a person's) on the views' connection, in full.

        For the few figures that are no named query (`app.data.days`); a
        person's SQL goes to `sql`, whose sandbox this skips. With `by_day`,
        on the day rollups' catalog (a row per day: `reads_days`), where only
        the `views` it reads need to be current.
        """
        try:
            return self._fetch(sql, None, by_day=by_day, views=views)
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Within the block, this thread's queries share the listing of the log their first one made.

        A report or a page runs several queries, and each would list the log
        again: a month's attempt files, its manifests and day files, about
        20 ms a query. Here they list it once. What a listing decides holds for
        the whole block: which partitions exist, which days their day files
        cover, what the manifests hide. Files published since into a partition
        it named may still be read (views glob a partition's files), as a
        query without a snapshot would; their rows count once either way.
        Superseded files stay for the compaction grace
        (`ingest.compaction.GRACE_S`, minutes), far longer than the seconds a
        page takes. Nested blocks share the outer one's listing.
        """
        if getattr(self._local, "listings", None) is not None:
            yield
            return
        self._local.listings = {}
        self._local.focuses = {}
        try:
            yield
        finally:
            focuses: dict[tuple[object, ...], _Focus] = self._local.focuses
            self._local.listings = self._local.focuses = None
            for copies in focuses.values():
                if copies:
                    copies.close()

    def focused_catalogs(self) -> set[str]:
        """The catalogs ('days', 'hours') in which this thread's snapshot copied a scope's rows so far."""
        focuses: dict[tuple[object, ...], _Focus] = getattr(self._local, "focuses", None) or {}
        return {"days" if key[0] else "hours" for key, copies in focuses.items() if copies}

    def shared_copies(self) -> list[str]:
        """The tables of the copies kept for every snapshot (`_shared_sources`), least recently read first."""
        return self._shared_copies.tables()

    def _focused(
        self, name: str, params: dict[str, object], *, by_day: bool, dates: Sequence[str]
    ) -> duckdb.DuckDBPyConnection | None:
        """A cursor where the views `name` reads hold only the scope's rows (`queries.focus`), or None.

        None outside a snapshot, for scope 'all', for the first query of a scope and range (a copy
        pays off from the second query that reads it, which makes it) unless the copy is one every
        snapshot shares (`_shared_sources`: another may have made it, or will read it), and once
        making one failed. A query stopped (`interrupt`) while its copy is made raises.
        """
        focuses: dict[tuple[object, ...], _Focus] | None = getattr(self._local, "focuses", None)
        if focuses is None or params["scope_kind"] == "all":
            return None
        key = (by_day, params["scope_kind"], params["scope_value"], params["start"], params["end"])
        copies = focuses.get(key)
        if copies is False:
            return None
        try:
            if copies is None:
                shared = self._shared_sources(params, by_day=by_day)
                if shared is None and key not in focuses:
                    focuses[key] = None  # a copy of its own pays off from the second query reading it
                    return None
                copies = focuses[key] = self._copies(params, by_day=by_day, dates=dates, shared=shared)
            with self._running_on(copies.cursor):
                return copies.holding(views_read(name, str(params["scope_kind"])))
        except duckdb.Error as exc:
            if copies:
                copies.close()
            focuses[key] = False
            if isinstance(exc, duckdb.InterruptException):
                raise  # stopped (`interrupt`): not to be read from the files instead
            if not by_day and is_schema_mismatch(exc):
                self._read_by_name(dates)  # this snapshot's queries of the scope read the files
                return None
            # The files still hold every row: the snapshot's queries of this scope read them.
            logger.warning("reading the log's files for %s %s: copying its rows failed: %s", *key[1:3], exc)
            return None

    def _copies(
        self,
        params: dict[str, object],
        *,
        by_day: bool,
        dates: Sequence[str],
        shared: dict[str, tuple[Hashable, str]] | None,
    ) -> Copies:
        """A cursor of the catalog with the range's views, for the copies of a scope and range (those
        of the views in `shared` shared: `_shared_sources`)."""
        cursor = self._cursor(by_day=by_day, dates=dates, views=FOCUS_VIEWS)
        bound = {name: params[name] for name in ("scope_kind", "scope_value", "start", "end")}
        return Copies(cursor, bound, self._shared_copies if shared else None, shared)

    def _shared_sources(
        self, params: dict[str, object], *, by_day: bool
    ) -> dict[str, tuple[Hashable, str]] | None:
        """Per view to copy, for a scope and range read from day files alone: the key of its copy
        (`queries.focus.SharedCopies`: the scope, the range and the files, which fix its rows) and
        the view over those files alone, which the copy is made from. None when a date the copy
        reads is read from hourly files (or the range from the hourly catalog): their partitions
        gain files."""
        if not by_day:
            return None
        start, end = cast(datetime, params["start"]), cast(datetime, params["end"])
        # The partitions `copy_sql` reads rows from: requests started from start to a day past end.
        wanted = set(_dates(start, end - timedelta(microseconds=1)))
        catalog = self._day_catalog_now().sources
        shared: dict[str, tuple[Hashable, str]] = {}
        for view in sorted(FOCUS_VIEWS):
            files = catalog[view].day_files_of(wanted)
            if files is None:
                return None
            key = (view, params["scope_kind"], params["scope_value"], start, end, files)
            shared[view] = (key, day_view_sql(view, DaySource(files, ()), temp=True))
        return shared

    def _drop_copy(self, table: str) -> None:
        """Drop a shared copy's table from the day catalog (nothing once the log is closed)."""
        try:
            with self._catalog(True).cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
        except duckdb.Error as exc:
            if not self._closed:
                logger.warning("a copy of a scope's rows could not be dropped (%s): %s", table, exc)

    def _listing(self, key: tuple[object, ...], list_now: Callable[[], _T]) -> _T:
        """`list_now()`, or within a `snapshot` the result it gave there for `key`."""
        listings: dict[tuple[object, ...], object] | None = getattr(self._local, "listings", None)
        if listings is None:
            return list_now()
        if key not in listings:
            listings[key] = list_now()
        return listings[key]  # type: ignore[return-value]

    def sandbox(self) -> SqlSandbox:
        """The SQL sandbox `sql` runs in (started on first use when the log has none of its own)."""
        with self._sandbox_lock:
            if self._sandbox is None:
                self._sandbox = SqlSandbox(self.store.location)
            return self._sandbox

    def rollups_out_of_step(self, start: datetime | None = None, end: datetime | None = None) -> int:
        """Attempt files lacking rollups plus rollup files without an attempt file; 0 when in step.

        Figures from the rollups leave out the former and count the latter
        until `deliverydash repair` (`ingest.rollup.repair`) mends them.
        Lists directories only; an attempt file younger than
        `ingest.rollup.GRACE_S` is its writer's to finish and not counted.

        With a range [start, end), only the files the named queries over it
        read: the partitions of its dates (to a day past `end`), less, over
        the ranges read by day (`reads_days`), the dates read from their day
        files. A day file is built only once every attempt file of its day has
        its rollups, and from those alone, so such a day lacks nothing and
        counts no orphan: a report over a month of built days lists nothing
        (listing the month took 0.13-0.18 s beside its queries).
        """
        if start is None or end is None:
            return out_of_step(self.store).files
        dates = set(_dates(start, end))
        # From two whole days on, every named query reads by day, the hourly chart too.
        if reads_days("hourly", start, end):
            dates -= self._day_catalog_now().covered
        return out_of_step(self.store, dates=dates).files if dates else 0

    def close(self) -> None:
        """Close the connection, remove its temporary directory, stop its own sandbox; later queries raise."""
        with self._view_lock:
            self._closed = True
            for con in self._catalogs.values():
                con.close()
        self._remove_temp_dir()
        with self._sandbox_lock:
            if self._sandbox is not None and self._own_sandbox:
                self._sandbox.close()

    def __enter__(self) -> AttemptLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _fetch_named(
        self, name: str, prefix: str, params: dict[str, object], start: datetime, end: datetime
    ) -> pl.DataFrame:
        """The named query, after `prefix` (an EXPLAIN), on the catalog and views its range needs."""
        by_day, dates = reads_days(name, start, end), _dates(start, end)
        if not prefix and focusable(name):
            focused = self._focused(name, params, by_day=by_day, dates=dates)
            if focused is not None:
                with self._running_on(focused):
                    result: pl.DataFrame = focused.sql(load_query(name), params=params).pl()
                return result
        return self._fetch(
            prefix + load_query(name), params, by_day=by_day, dates=dates, views=names_read(name, QUERY_VIEWS)
        )

    def _fetch(
        self,
        sql: str,
        params: dict[str, object] | None,
        *,
        by_day: bool = False,
        dates: Sequence[str] | None = None,
        views: Collection[str] = VIEWS,
    ) -> pl.DataFrame:
        """Run `sql` on the day rollups' catalog (`by_day`), or the hourly one: over the partitions of
        `dates` alone when given (TEMP views of the query's own cursor, those of `views`), else over
        every partition."""
        anchored = not by_day and dates is not None and self._anchored(dates)
        try:
            with self._cursor(by_day=by_day, dates=dates, views=views) as cur, self._running_on(cur):
                result: pl.DataFrame = cur.sql(sql, params=params).pl()
        except duckdb.Error as exc:
            if not (anchored and is_schema_mismatch(exc)):
                raise
            self._read_by_name(dates or ())
            return self._fetch(sql, params, by_day=by_day, dates=dates, views=views)
        return result

    def interrupt(self, thread: int) -> bool:
        """Stop the query the thread of ident `thread` runs on this log, if any: it raises `QueryError`
        at once (what it read is lost). The dashboard stops so its reading ahead for a range no longer
        on screen (`app.prefetch`). True if the thread had a query under way; an interrupt that comes
        before DuckDB begins it is lost (the query then runs to its end)."""
        with self._running_lock:
            cursor = self._running.get(thread)
            if cursor is not None:
                cursor.interrupt()
        return cursor is not None

    @contextmanager
    def _running_on(self, cursor: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """Within the block, this thread's query runs on `cursor` (`interrupt`)."""
        thread = threading.get_ident()
        with self._running_lock:
            self._running[thread] = cursor
        try:
            yield
        finally:
            with self._running_lock:
                del self._running[thread]

    def _cursor(
        self, *, by_day: bool, dates: Sequence[str] | None, views: Collection[str]
    ) -> duckdb.DuckDBPyConnection:
        """A new cursor of the catalog `_fetch` describes, its views up to date; the caller closes it."""
        if by_day:
            self._sync_day_views(views)
        elif dates is None:
            self._sync_views()
        else:
            self._define_macros_once(self._catalog(False))
        cursor = self._catalog(by_day).cursor()
        if by_day:
            return cursor
        try:
            if SUMMARY_VIEW in views:
                # Days only: here, empty for the query's own cursor (the catalog stays the sandbox's).
                cursor.execute(empty_view_sql(SUMMARY_VIEW, temp=True))
            if dates is None:
                return cursor
            anchors = self._anchor_files() if self._anchored(dates) else None
            for statement in self._listing(
                ("range", tuple(dates), frozenset(views), anchors is not None),
                lambda: range_view_sql(self.store, self._manifests, dates, views, anchors),
            ):
                cursor.execute(statement)
        except BaseException:
            cursor.close()
            raise
        return cursor

    def _anchored(self, dates: Sequence[str]) -> bool:
        """Whether the range views over `dates` read their files through anchors
        (`queries.catalog.range_view_sql`): not under a `key=value` folder (`_may_anchor`), nor over
        dates where a file lacked a column (`_read_by_name`)."""
        return self._may_anchor and self._by_name_dates.isdisjoint(dates)

    def _read_by_name(self, dates: Sequence[str]) -> None:
        """A file of these dates lacks a column a query read, or holds a value its type cannot take:
        match their files' columns by name from now on, for as long as the log is open (some 3 ms a
        mention of a view over 100 files, the price of old files)."""
        self._by_name_dates.update(dates)

    def _anchor_files(self) -> dict[str, str]:
        """Each view's anchor file (`queries.catalog.anchor_sql`) in the private temporary directory,
        which the query connections may read; written on first use."""
        with self._view_lock:
            if self._anchors is None:
                anchors = {}
                with duckdb.connect(":memory:") as writer:
                    for view in VIEWS:
                        # Partitioned like the log's files, so that the views' Hive columns bind.
                        directory = Path(self._temp_dir, "anchors", view, "date=1970-01-01", "hour=0")
                        directory.mkdir(parents=True, exist_ok=True)
                        anchors[view] = str(directory / "anchor.parquet")
                        writer.execute(anchor_sql(view, anchors[view]))
                self._anchors = anchors
            return self._anchors

    def _day_catalog_now(self) -> DayCatalog:
        """What the by-day views read now (`day_view_sources`), listed once per snapshot."""
        return self._listing(("days",), lambda: day_view_sources(self.store, self._manifests))

    def _sync_day_views(self, views: Collection[str]) -> None:
        """Bring those of `views` in the day catalog up to date with the log. Only those: defining
        one reads the footers of all its day files (a month of them, of each rollup, took a third
        of `report --days 31`)."""
        sources = self._day_catalog_now().sources
        with self._view_lock:
            self._define_macros_once(self._catalog(True))
            for view, source in sources.items():
                if view not in views or source == self._day_sources.get(view):
                    continue
                with self._catalog(True).cursor() as cur:
                    cur.execute(day_view_sql(view, source))
                self._day_sources[view] = source

    def _sync_views(self) -> None:
        sources = self._listing(("views",), lambda: view_sources(self.store, self._manifests))
        with self._view_lock:
            for view, source in sources.items():
                last = self._sources.get(view)
                if source != last:
                    # Once a view has files, whether it needs padding is known: compaction and new
                    # files only add files with every column.
                    known = self._padded.get(view) if last is not None and last.backed else None
                    with self._catalog(False).cursor() as cur:
                        self._padded[view] = define_view(cur, view, source, known)
                    self._sources[view] = source
            self._define_macros_once(self._catalog(False))

    def _define_macros_once(self, con: duckdb.DuckDBPyConnection) -> None:
        """The macros, once views of their names exist (DuckDB binds a macro when it is created; a
        query's TEMP views of the same names are what it reads when it runs)."""
        with self._view_lock:  # reentrant: the syncs call this holding it
            if id(con) in self._with_macros:
                return
            if con is self._catalogs.get(True):
                # typed, empty: `_sync_day_views` defines them when read
                for view in (*ROLLUP_VIEWS, SUMMARY_VIEW):
                    con.execute(empty_view_sql(view))
            elif not self._sources:
                for view in VIEWS:  # typed, empty: the query's own views replace them
                    con.execute(empty_view_sql(view))
            define_macros(con)
            self._with_macros.add(id(con))


#: Named queries whose rows are hours: over one day they read the hourly rollups.
HOURLY_QUERIES = frozenset({"hourly", "explorer_hours", "destination_hours"})


#: Queries of the raw log, and of the message index (which has no day files: docs/trace.md).
_READS_RAW = re.compile(r"\bFROM\s+(attempts|message_index)\b", re.IGNORECASE)


def reads_days(name: str, start: datetime, end: datetime) -> bool:
    """Whether the named query runs on the day rollups: a range of whole UTC days, two or more for
    the queries per hour (over one day, they show its hours), and never a query of the raw log."""
    if _READS_RAW.search(load_query(name)):
        return False
    whole = all(t.timestamp() % 86_400 == 0 for t in (start, end))
    days = (end - start).total_seconds() / 86_400
    return whole and (days >= 2 or (days >= 1 and name not in HOURLY_QUERIES))


def _dates(start: datetime, end: datetime) -> list[str]:
    """The UTC dates whose partitions a named query over [start, end) may read: through a day past
    `end`, where its cohort's last retries start."""
    first, last = start.astimezone(UTC).date(), (end + timedelta(days=1)).astimezone(UTC).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _bind(
    name: str, scope: Scope, start: datetime, end: datetime, params: dict[str, object]
) -> dict[str, object]:
    wanted = parameter_names(name)
    unknown = params.keys() - wanted
    if unknown:
        raise QueryError(f"query {name!r} has no parameter(s) {', '.join(sorted(unknown))}")
    offered = query_parameters(scope, start, end) | params
    missing = wanted - offered.keys()
    if missing:
        raise QueryError(f"query {name!r} needs parameter(s) {', '.join(sorted(missing))}")
    return {key: offered[key] for key in wanted}


def connect(
    log: str | os.PathLike[str] | LogStore,
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    sandbox: SqlSandbox | None = None,
) -> AttemptLog:
    """Open the attempt log at `log` (a directory or ``s3://`` URL) for queries, an empty one too."""
    return AttemptLog(log, memory_limit=memory_limit, threads=threads, sandbox=sandbox)
