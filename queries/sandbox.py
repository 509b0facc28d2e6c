"""People's SQL, run where it can harm nothing: worker processes with a catalog of their own.

    with SqlSandbox("data") as sandbox:
        result = sandbox.run("SELECT count(*) FROM attempts", Limits(timeout_s=20))
        result.frame, result.truncated

Every SQL surface (`deliverydash sql`, its prompt, the dashboard's SQL
console, `AttemptLog.sql`) runs a person's SQL here, never on the
connection the named queries and the dashboard's pages use. A query runs
in a worker process (`queries.sandbox_worker`) that holds its own DuckDB:
nothing it does can reach the pages' views, the memory it may take is
capped for the process, not just for DuckDB, and a query that will not
stop is stopped by killing the worker. Workers are kept between queries
(starting one costs half a second: the interpreter, DuckDB, the catalog)
and started again after one is killed; up to `workers` run at once, and
more queries wait for one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from ingest.logstore import open_store
from queries.catalog import lock_down
from queries.errors import QueryError
from queries.limits import (
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_THREADS,
    HEADROOM,
    Limits,
    parse_memory_limit,
    timed_out,
)
from queries.readonly import read_only_statement
from queries.wire import Timeout, read_frame, read_message, write_message

#: How long past its time limit a query's worker has to answer before it is killed:
#: DuckDB checks for an interrupt between vectors, not inside a function call.
KILL_GRACE_S = 2.0
#: How long a worker may take to start: the interpreter, DuckDB, and the views over every file's footer.
START_TIMEOUT_S = 120.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class SqlResult:
    """What a query returned."""

    frame: pl.DataFrame
    """The rows, at most `Limits.max_rows` of them."""
    truncated: bool
    """Whether the query had more rows than `frame` holds."""


class SqlSandbox:
    """Runs people's SQL over one data directory's log in worker processes. Safe to share between threads."""

    def __init__(
        self,
        log: str | os.PathLike[str],
        *,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
        threads: int = DEFAULT_THREADS,
        workers: int = 1,
    ) -> None:
        """`memory_limit` is DuckDB's, per worker (`512MB`, `1GiB`); a `ValueError` if it is no size."""
        self.memory_limit = parse_memory_limit(memory_limit)
        self._config = {
            "log": open_store(log).location,
            "memory_limit": self.memory_limit,
            "process_limit": self.memory_limit + HEADROOM,
            "threads": threads,
        }
        self._max_workers = workers
        # The guard runs here first, so that a refusal costs no worker; the
        # worker judges again, and runs only what it judged itself.
        self._judge = duckdb.connect(":memory:")
        lock_down(self._judge, [], temp_directory="")
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._starting = 0
        self._closed = False
        self._changed = threading.Condition()
        # Workers end with their stdin; this ends them with the program, whoever forgot close().
        self._finalizer = weakref.finalize(self, _stop_all, self._idle, self._busy)

    def start(self) -> None:
        """Start a worker now, if the sandbox has none (idle, busy or starting), so that the first
        query does not wait for one. A second one starts only when two queries want one at once:
        opening a worker takes seconds of CPU over a month of files."""
        with self._changed:
            if self._running() or self._closed:
                return
            self._starting += 1
        self._spawn(busy=False)

    def run(self, text: str, limits: Limits | None = None) -> SqlResult:
        """Run `text`, one statement that only reads (`queries.readonly`), within `limits`.

        Raises `QueryError` for a refused statement, a failing query, and a
        query stopped at a limit, with a message saying which.
        """
        limits = limits or Limits()
        if self._closed:
            raise QueryError("the SQL sandbox is closed")
        with self._judge.cursor() as cur:
            read_only_statement(cur, text)
        worker = self._acquire()
        healthy = False
        try:
            reply, payload = worker.ask(
                {
                    "sql": text,
                    "timeout_s": limits.timeout_s,
                    "max_rows": limits.max_rows,
                    "max_bytes": limits.max_bytes,
                },
                allowed_s=limits.timeout_s + KILL_GRACE_S,
            )
            healthy = not reply.get("retire")
        except Timeout:
            raise timed_out(limits.timeout_s) from None
        finally:
            self._release(worker, healthy)
        if "error" in reply:
            raise QueryError(reply["error"])
        return SqlResult(_frame(payload), bool(reply["truncated"]))

    def close(self) -> None:
        """Stop every worker; later queries raise `QueryError`."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._finalizer()
        self._judge.close()

    def __enter__(self) -> SqlSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _running(self) -> int:
        return len(self._idle) + len(self._busy) + self._starting

    def _acquire(self) -> _Worker:
        dead: list[_Worker] = []
        try:
            with self._changed:
                while True:
                    if self._closed:
                        raise QueryError("the SQL sandbox is closed")
                    if self._idle:
                        worker = self._idle.pop()
                        if not worker.alive():  # killed while idle (the OOM killer, a person)
                            dead.append(worker)
                            continue
                        self._busy.add(worker)
                        return worker
                    if self._running() < self._max_workers:
                        self._starting += 1
                        break
                    self._changed.wait()
        finally:
            for worker in dead:
                worker.stop()
        return self._spawn(busy=True)

    def _spawn(self, *, busy: bool) -> _Worker:
        """A new worker, counted as starting until it joins the busy or the idle ones."""
        worker = None
        try:
            worker = _Worker(self._config)
        finally:
            with self._changed:
                self._starting -= 1
                closed = self._closed
                if worker is not None and not closed:
                    if busy:
                        self._busy.add(worker)
                    else:
                        self._idle.append(worker)
                self._changed.notify()
        if closed:
            worker.stop()
            raise QueryError("the SQL sandbox is closed")
        return worker

    def _release(self, worker: _Worker, healthy: bool) -> None:
        with self._changed:
            self._busy.discard(worker)
            keep = healthy and not self._closed
            if keep:
                self._idle.append(worker)
            self._changed.notify()
        if not keep:
            worker.stop()


class _Worker:
    """One worker process, and the pipes to it."""

    def __init__(self, config: dict[str, Any]) -> None:
        env = dict(os.environ)
        # The worker imports the same `queries` as this process, installed or not.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        # pyarrow's default pool (mimalloc) reserves 1 GiB of address space at
        # its first allocation, which the worker's data limit would count.
        env["ARROW_DEFAULT_MEMORY_POOL"] = "system"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "queries.sandbox_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            # Its own session: Ctrl-C at a terminal reaches the parent, which decides.
            start_new_session=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._to, self._from = self._process.stdin.fileno(), self._process.stdout.fileno()
        self._ready = False
        write_message(self._to, config)

    def ask(self, request: dict[str, Any], allowed_s: float) -> tuple[dict[str, Any], bytes]:
        """Send a request; its reply and the result's Arrow bytes (empty after an error).

        `Timeout` if the answer is not complete `allowed_s` after the request
        is sent (a worker still starting has `START_TIMEOUT_S` more).
        """
        if not self._ready:
            try:
                ready = self._read(time.monotonic() + START_TIMEOUT_S)
            except Timeout:
                raise QueryError(f"the SQL worker did not start within {START_TIMEOUT_S:g} s") from None
            if "error" in ready:
                raise QueryError(ready["error"])
            self._ready = True
        try:
            write_message(self._to, request)
        except BrokenPipeError:
            raise _died() from None
        deadline = time.monotonic() + allowed_s
        reply = self._read(deadline)
        if "error" in reply:
            return reply, b""
        payload = read_frame(self._from, deadline)
        if payload is None:
            raise _died()
        return reply, payload

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self._process.poll() is None

    def stop(self) -> None:
        """Kill the process (whatever it is doing) and close the pipes."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()

    def _read(self, deadline: float) -> dict[str, Any]:
        try:
            message = read_message(self._from, deadline)
        except EOFError:
            message = None
        if message is None:
            raise _died()
        return message


def _died() -> QueryError:
    return QueryError(
        "the SQL worker stopped while running the query (the process ran out of memory or was killed); "
        "the next query starts a new one"
    )


def _frame(payload: bytes) -> pl.DataFrame:
    table = pa.ipc.open_stream(payload).read_all()
    try:
        frame = pl.from_arrow(table)
    except (pl.exceptions.PolarsError, pa.ArrowException) as exc:
        raise QueryError(f"the result has a column that cannot be shown ({exc}): cast it to VARCHAR") from exc
    assert isinstance(frame, pl.DataFrame)
    return frame


def _stop_all(idle: list[_Worker], busy: set[_Worker]) -> None:
    for worker in [*idle, *busy]:
        worker.stop()
    idle.clear()
    busy.clear()
