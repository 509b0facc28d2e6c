"""The exporter in a process of its own, so that the delivery process keeps its GIL for delivering.

`[engine] exporter = "process"` (the default): `deliverydash serve` forks
this child before it opens its queue or starts a thread, so the child holds
no lock, socket or thread of the engine's. The child opens a queue
connection of its own (without the data directory's lock, which its parent
takes for both) and runs `delivery.exporter`'s rounds every
`export_interval_s`, as the in-process exporter does; the outbox protocol
(docs/queue.md) makes every record land once whichever process exports it.

The two talk through one pipe and the exit status:

- **Start.** The child makes what needs no queue (its first table, the
  rollups' connection), then waits for one byte, written once the engine
  holds its queue (and so the data directory's lock); an engine that cannot
  open its queue closes the pipe instead, and the child exits having
  exported nothing.
- **Stop.** The engine closes its end of the pipe once its worker has
  settled its last job (`delivery.engine`'s stop order). The child sees the
  pipe end, makes its final pass and exits 0; the engine waits for it.
- **The engine dies** (kill -9): the kernel closes the pipe; the child
  exports what was committed and exits. Whatever batch it left open is
  resumed by the next exporter.
- **The child dies** (a bug, the OOM killer): the engine logs it and exports
  in its own process from then on (`watch`), so nothing waits in the outbox.

The child ignores SIGINT and SIGTERM: a Ctrl-C or a service manager's stop
reaches the whole process group, and the child must still make the final
pass after the engine's worker finished, which the pipe tells it.

Why a process: the exporter took about a quarter of the engine's CPU
at 1 s passes (docs/benchmarks.md, issue 16), its Python parts holding the
GIL the event loop needs for deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from delivery.config import Config
from delivery.exporter import Exporter, export_until, outbox_lease_s, repair_at_start
from delivery.queue import Queue
from ingest.rollup import RollupBuilder
from ingest.schema import rows_to_table

log = logging.getLogger(__name__)

#: How often the engine checks that its exporter's process is alive.
WATCH_INTERVAL_S = 1.0
#: The byte that starts the child.
GO = b"g"


@dataclass
class ExportProcess:
    """The engine's handle on its exporter's process: its pid and the pipe end that keeps it going."""

    pid: int
    pipe: int
    """The write end of the pipe: one byte starts the child, closing it asks for the final pass."""
    status: int | None = None
    """The child's exit status once reaped (`os.waitstatus_to_exitcode`)."""

    def go(self) -> None:
        """Let the child start exporting: the engine holds its queue (and the data directory's lock)."""
        with contextlib.suppress(BrokenPipeError):  # it died already: `watch` sees to it
            os.write(self.pipe, GO)

    def finish(self) -> int:
        """Ask for the final pass and wait for the child to exit (blocks); its exit status."""
        if self.pipe >= 0:
            with contextlib.suppress(OSError):
                os.close(self.pipe)
            self.pipe = -1  # its number may be given to another file from now on
        if self.status is None:
            _, raw = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(raw)
        return self.status

    def exited(self) -> bool:
        """Whether the child has exited (reaping it if so), without waiting."""
        if self.status is None:
            pid, raw = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                return False
            self.status = os.waitstatus_to_exitcode(raw)
        return True


def wanted(config: Config) -> bool:
    """Whether the exporter runs in a child: `[engine] exporter = "process"`, and a log on local disk.

    A log on an object store keeps the exporter in the engine's process: the
    command checked the store before the fork, and the clients that did it
    (Arrow's AWS SDK, obstore's runtime) hold threads a forked child does
    not have.
    """
    if config.engine.exporter != "process":
        return False
    if str(config.log_location).startswith("s3://"):
        log.info("exporter: in the engine's process (a log on an object store is not written from a fork)")
        return False
    return True


def start(config: Config, *, close: Sequence[socket.socket] = ()) -> ExportProcess:
    """Fork the exporter's process for `config`, waiting for `ExportProcess.go`.

    Call it before any thread, lock or socket of the engine's is made; the
    child closes `close` (listening sockets handed over already).
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(write_end)
        status = 1
        try:
            for sock in close:
                sock.close()
            status = _child(config, read_end)
        except BaseException:
            log.exception("the exporter's process failed")
        finally:
            logging.shutdown()
            os._exit(status)
    os.close(read_end)
    log.info("exporter: process %d", pid)
    return ExportProcess(pid, write_end)


async def watch(process: ExportProcess, queue: Queue, config: Config, stop: asyncio.Event) -> None:
    """Until `stop`: check that the exporter's process lives; if it died, export here instead.

    After `stop`: the final pass, by the child (or here, when it failed).
    """
    while not stop.is_set():
        if process.exited():  # a non-blocking waitpid
            log.error(
                "the exporter's process %d exited with status %s; exporting in the engine's own from now on",
                process.pid,
                process.status,
            )
            await export_until(Exporter(queue, config.log_location), config.engine.export_interval_s, stop)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_INTERVAL_S)
    status = await asyncio.to_thread(process.finish)
    if status != 0:
        log.error("the exporter's process ended with status %s; making the final pass here", status)
        await asyncio.to_thread(Exporter(queue, config.log_location).run_once)


def _child(config: Config, pipe: int) -> int:
    """Once the engine says go: the exporter's rounds until the pipe ends, then the final pass.

    Returns the exit status: 0, or 0 at once when the engine never said go
    (it could not open its queue).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The rollups' DuckDB connection is made here, after the fork, and kept: this process never forks.
    rollups = RollupBuilder()
    queue: Queue | None = None
    try:
        # What needs no queue is done while the engine opens its own: the first table (pyarrow
        # imports pandas) and the rollups' connection and first queries, about 0.3 s of CPU that
        # would otherwise compete with the engine's first seconds of delivering.
        try:
            rollups.build(rows_to_table([]))
        except Exception:  # only a head start: the first export meets the same failure and logs it
            log.exception("exporter: preparing the rollups before the engine's go failed")
        if os.read(pipe, 1) != GO:
            return 0
        queue = _open_queue(config)
        exporter = Exporter(queue, config.log_location, rollups=rollups)
        repair_at_start(exporter)
        interval_s = config.engine.export_interval_s
        while True:
            started = time.monotonic()
            try:
                exporter.run_once()
            except Exception:
                log.exception("exporting attempt records failed; retrying in %.1f s", interval_s)
            wait_s = max(0.0, interval_s - (time.monotonic() - started))
            readable, _, _ = select.select([pipe], [], [], wait_s)
            if readable:  # the engine closed its end (stopping, or dead): nothing is ever written
                break
        exporter.run_once()  # the final pass; an error here is the exit status
        return 0
    finally:
        rollups.close()
        if queue is not None:
            queue.close()


def _open_queue(config: Config) -> Queue:
    """A queue connection of the child's own: the outbox's side of the engine's queue."""
    engine = config.engine
    if config.queue.backend == "postgres":
        from delivery.queue.postgres import PostgresQueue

        assert config.queue.dsn is not None  # the config checks it
        return PostgresQueue(config.queue.dsn.reveal(), max_size=2, outbox_lease_s=outbox_lease_s(engine))
    from delivery.queue.sqlite import SqliteQueue

    return SqliteQueue(engine.data_dir, lock=False)
