"""Several engine processes on one machine behind one port: `deliverydash serve --processes N`.

One engine process uses about one core (the event loop and its GIL); a
machine with more cores runs several. The supervisor binds the port once
and starts N engine processes that all accept on that socket, so the kernel
spreads connections among them. Each process is a whole engine (tracking
API, worker, exporter) with its own owner id; they share work only through
the queue, so this needs a queue several processes may use (PostgreSQL):
docs/fleet.md.

The supervisor forwards SIGTERM and SIGINT to its engines once, waits for
each to stop cleanly (leases released, records exported), and exits with
status 0 if they all did; a second signal kills the engines still running.
An engine whose supervisor dies (even by SIGKILL) gets a SIGTERM from the
kernel (Linux), so none is left holding the port. An engine that dies on its own is started again,
after a pause that doubles while it keeps dying (up to `MAX_RESTART_DELAY_S`).
Its jobs are not lost meanwhile: their leases lapse and any engine takes them.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from delivery.config import Config

log = logging.getLogger(__name__)

#: The pause before an engine that died is started again, doubling up to `MAX_RESTART_DELAY_S`.
FIRST_RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 30.0
#: An engine that ran this long before dying is restarted after `FIRST_RESTART_DELAY_S` again.
STABLE_AFTER_S = 60.0
#: Pending connections the shared socket holds (uvicorn's default backlog).
BACKLOG = 2048
#: prctl(2): the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` that child processes inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    """Have the kernel SIGTERM this process when its supervisor dies (Linux), so none is orphaned.

    An engine left behind by a supervisor killed with SIGKILL would go on
    holding the port. Elsewhere this does nothing.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return


def _engine_process(config: Config, sock: socket.socket, index: int) -> None:
    """One engine, in a child process, accepting on the supervisor's socket."""
    # Its own process group: a Ctrl-C in the terminal reaches the supervisor
    # alone, which passes one SIGTERM on (a second signal would make uvicorn
    # skip the graceful stop).
    os.setpgrp()
    _die_with_parent()
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s engine-{index} %(name)s: %(message)s"
    )
    from delivery.engine import run

    run(config, sockets=[sock])


@dataclass
class _Slot:
    """One of the N engines: its current process, and how its restarts are paced."""

    index: int
    process: BaseProcess
    started_at: float
    restart_delay_s: float = FIRST_RESTART_DELAY_S
    restart_at: float | None = None
    signalled: bool = False


class Supervisor:
    """Runs `processes` engines on `sock` until a signal; see the module's docstring."""

    def __init__(self, config: Config, sock: socket.socket, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.config = config
        self.sock = sock
        self.processes = processes
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self._slots: list[_Slot] = []

    def _start(self, index: int) -> BaseProcess:
        process = self._context.Process(
            target=_engine_process, args=(self.config, self.sock, index), name=f"engine-{index}"
        )
        process.start()
        log.info("engine-%d started (pid %s)", index, process.pid)
        return process

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:  # a second signal: the operator will not wait for a graceful stop
            log.warning("%s again: killing the engines still running", signal.Signals(signum).name)
            for slot in self._slots:
                if slot.process.is_alive() and slot.process.pid is not None:
                    os.kill(slot.process.pid, signal.SIGKILL)
            return
        self._stopping = True
        log.info("%s: stopping the engines", signal.Signals(signum).name)
        self._stop_all()

    def _stop_all(self) -> None:
        """One SIGTERM to each engine running (a second would make uvicorn skip the graceful stop)."""
        for slot in self._slots:
            if not slot.signalled and slot.process.is_alive() and slot.process.pid is not None:
                slot.signalled = True
                os.kill(slot.process.pid, signal.SIGTERM)

    def run(self) -> int:
        """Start the engines, keep them running until SIGTERM or SIGINT; the exit status."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.processes):
                self._slots.append(_Slot(index, self._start(index), time.monotonic()))
            while not self._stopping:
                self._watch()
            self._stop_all()  # those started after the signal arrived
            return self._wait_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> None:
        """Wait a little for an engine to end; restart the ones that died when their pause is over."""
        alive = [slot.process.sentinel for slot in self._slots if slot.restart_at is None]
        wait(alive, timeout=0.5)
        now = time.monotonic()
        for slot in self._slots:
            if self._stopping:
                return
            if slot.restart_at is None and not slot.process.is_alive():
                if now - slot.started_at >= STABLE_AFTER_S:
                    slot.restart_delay_s = FIRST_RESTART_DELAY_S
                log.error(
                    "engine-%d (pid %s) exited with status %s; starting another in %.0f s",
                    slot.index,
                    slot.process.pid,
                    slot.process.exitcode,
                    slot.restart_delay_s,
                )
                slot.restart_at = now + slot.restart_delay_s
                slot.restart_delay_s = min(slot.restart_delay_s * 2, MAX_RESTART_DELAY_S)
            elif slot.restart_at is not None and now >= slot.restart_at:
                slot.process, slot.started_at, slot.restart_at = self._start(slot.index), now, None

    def _wait_all(self) -> int:
        """Wait for every engine to stop; 0 if each stopped cleanly."""
        status = 0
        for slot in self._slots:
            if slot.restart_at is not None:
                continue  # it had died already, and was not started again
            slot.process.join()
            if slot.process.exitcode != 0:
                log.error("engine-%d stopped with status %s", slot.index, slot.process.exitcode)
                status = 1
        log.info("all engines stopped")
        return status
