"""The SQL sandbox's worker: a process that runs people's SQL, one query at a time.

`queries.sandbox.SqlSandbox` starts it as ``python -m queries.sandbox_worker``
and talks to it over its stdin and stdout (`queries.wire`): first a
configuration message, answered by ``{"ready": true}``; then one request
per query, each answered by an error or by a result. It ends at the end of
its stdin. What keeps a query from harming anything, from the outside in:

* The process: its data segment is capped (`RLIMIT_DATA`: DuckDB's memory
  limit plus `queries.limits.HEADROOM`), so an allocation DuckDB does not
  count against its limit fails with an out-of-memory error instead of
  growing the process; the parent kills it if a query outlives its time.
* The catalog: the views and macros are written to a database file that
  is then opened read-only and deleted, so no statement can create,
  replace or drop anything in it, and there is no file left to read. Each
  query runs on a cursor of its own: temporary objects, were any made,
  die with it.
* The machine: it runs `NICENESS` lower than its parent, so that the
  dashboard's pages come first when both want the cores.
* The sandbox (`queries.catalog.lock_down`): only the log's directories
  are readable, no temp directory (nothing spills, nothing to list), no
  extensions, the configuration locked.
* The guard (`queries.readonly`): one statement that only reads.
* Fetching: Arrow batches, stopped after `max_rows` rows or `max_bytes`.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ingest.logstore import LogStore, LogStoreError, open_store
from ingest.manifests import ManifestCache
from queries.catalog import define_catalog, lock_down, readable_dirs, view_sources
from queries.errors import QueryError
from queries.limits import Limits, out_of_memory, timed_out, too_large
from queries.readonly import read_only_statement
from queries.wire import read_message, write_frame, write_message

#: Rows per Arrow batch fetched: the grain at which the row and byte caps are checked.
BATCH_ROWS = 2048
#: How much lower than the program that started it a worker runs: a person's query, or a worker
#: opening a month's catalog (15 s of CPU), yields the cores to the pages every viewer reads.
NICENESS = 10


class Catalog:
    """The views and macros of one data directory, on a connection no statement can change."""

    def __init__(self, store: LogStore, *, memory_limit: int, threads: int) -> None:
        self._store = store
        self._manifests = ManifestCache(store)
        self._memory_limit = memory_limit
        self._threads = threads
        self._sources = view_sources(store, self._manifests)
        self._con = self._open()

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The connection to run on, rebuilt when a view gained its first file or lost its last."""
        sources = view_sources(self._store, self._manifests)
        if sources != self._sources:
            self._con.close()
            self._sources = sources
            self._con = self._open()
        return self._con

    def _open(self) -> duckdb.DuckDBPyConnection:
        folder = Path(tempfile.mkdtemp(prefix="deliverydash-sql-"))
        path = str(folder / "catalog.duckdb")
        try:
            with duckdb.connect(path) as con:
                self._store.register(con)
                define_catalog(con, self._sources)
            # temp_directory '' from the start: the read-only database never makes one.
            con = duckdb.connect(path, read_only=True, config={"temp_directory": ""})
        finally:
            # DuckDB keeps the file open; once deleted, no query can name it.
            shutil.rmtree(folder, ignore_errors=True)
        self._store.register(con)
        lock_down(
            con,
            readable_dirs(self._store),
            temp_directory="",
            memory_limit=f"{self._memory_limit // 1024}KiB",
            threads=self._threads,
        )
        return con


def run(
    catalog: Catalog, request: dict[str, Any], memory_limit: int
) -> tuple[dict[str, Any], pa.Table | None]:
    """Run one request: the reply message, and the result's table when there is one."""
    limits = Limits(request["timeout_s"], request["max_rows"], request["max_bytes"])
    try:
        with catalog.connection().cursor() as cur:
            statement = read_only_statement(cur, request["sql"])
            # DuckDB has no per-query timeout to set once the configuration is
            # locked: a timer interrupts the cursor instead.
            timer = threading.Timer(limits.timeout_s, cur.interrupt)
            timer.start()
            try:
                table, truncated = _fetch(cur, statement, limits)
            finally:
                timer.cancel()
    except QueryError as exc:
        return {"error": str(exc)}, None
    except duckdb.InterruptException:
        return {"error": str(timed_out(limits.timeout_s))}, None
    except (duckdb.OutOfMemoryException, MemoryError):
        return {"error": str(out_of_memory(memory_limit))}, None
    except duckdb.Error as exc:
        return {"error": str(exc)}, None
    except OSError as exc:
        # DuckDB's errors reach the Arrow stream reader as pyarrow's OSError: only the text is left.
        if "Out of Memory" in str(exc):
            return {"error": str(out_of_memory(memory_limit))}, None
        return {"error": str(exc)}, None
    return {"rows": table.num_rows, "truncated": truncated}, table


def data_size() -> int:
    """Bytes of this process's data segment (VmData): what RLIMIT_DATA counts."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _fetch(cur: duckdb.DuckDBPyConnection, statement: str, limits: Limits) -> tuple[pa.Table, bool]:
    """The first `max_rows` rows, and whether there were more; `QueryError` past `max_bytes`."""
    reader = cur.sql(statement).to_arrow_reader(BATCH_ROWS)
    batches: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in reader:
        size += batch.nbytes
        if size > limits.max_bytes:
            raise too_large(limits.max_bytes, rows)
        batches.append(batch)
        rows += batch.num_rows
        if rows > limits.max_rows:
            break  # the cursor's close stops the query
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return table.slice(0, limits.max_rows), rows > limits.max_rows


def _ipc(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def main() -> None:
    """Serve requests from stdin until it ends."""
    # Ctrl-C at a terminal is the parent's to handle (it kills this process if it must).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(NICENESS)
    # Frames go to the real stdout alone: anything printed lands on stderr.
    out = os.dup(1)
    os.dup2(2, 1)
    config = read_message(0)
    if config is None:
        return
    cap = config["process_limit"]
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    try:
        catalog = Catalog(
            open_store(config["log"]), memory_limit=config["memory_limit"], threads=config["threads"]
        )
    except (duckdb.Error, OSError, MemoryError, LogStoreError) as exc:
        write_message(out, {"error": f"the SQL sandbox could not open the log: {exc}"})
        return
    write_message(out, {"ready": True})
    # The allocators keep the address space a large query took (RLIMIT_DATA
    # counts it, used or not), so a later query would meet the limit early:
    # past this, the worker answers and retires, and the next query gets a new one.
    retire_above = data_size() + config["memory_limit"] // 2
    while (request := read_message(0)) is not None:
        reply, table = run(catalog, request, config["memory_limit"])
        payload = None
        if table is not None:
            try:
                payload = _ipc(table)
            except MemoryError:
                reply = {"error": str(out_of_memory(config["memory_limit"]))}
            del table
        retire = data_size() > retire_above
        write_message(out, reply | {"retire": retire})
        if payload is not None and "error" not in reply:
            write_frame(out, memoryview(payload))
        if retire:
            return


if __name__ == "__main__":
    main()
