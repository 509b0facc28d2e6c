"""One engine: the tracking API, the delivery worker and the exporter.

`serve(config, host, port)` runs all three on the configured queue until
SIGTERM or SIGINT; the exporter in a child process of its own by default
(`delivery.export_process`, `[engine] exporter`), the others in this one.
The order of a stop matters, and uvicorn's lifespan gives it: the server
stops accepting requests first, then the worker claims nothing new, lets
requests in flight finish up to `shutdown_grace_s`, settles them and
releases its leases, and only then does the exporter make its final pass,
so the last records reach the Parquet log before exit.

Auth-failure alerts (`delivery.alerts.auth_alerts`) ride on the worker's two hooks: its
pre-send checks ask `AuthAlerts.admit` whether a destination may be sent to,
and each committed record reaches `AuthAlerts.on_settled` after the metrics.
Their writer stops after the worker, so every change the last records cause
is stored.

Sources and destinations changed live (`delivery.config.live`, docs/live-config.md)
are read from their store every second; a new config is swapped into the API's
context, the worker, the ownership shares and the alerts in one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Final

import uvicorn
from fastapi import FastAPI

from delivery import export_process
from delivery.alerts.auth_alerts import AuthAlerts, chain
from delivery.api.http_protocol import JsonErrorHTTPProtocol
from delivery.api.main import create_app
from delivery.backlog import BacklogSource, Throughput
from delivery.config import Config, ConfigError, EngineConfig
from delivery.config.admin_token import ensure_admin_token
from delivery.config.live import LiveConfig
from delivery.config.store import open_settings
from delivery.export_process import ExportProcess
from delivery.exporter import Exporter, export_until, outbox_lease_s
from delivery.maintenance import Upkeep
from delivery.metrics import Metrics
from delivery.ownership import Everything, Shares
from delivery.precheck import Prechecks
from delivery.queue import Queue
from delivery.queue.postgres import PostgresQueue
from delivery.queue.sqlite import SqliteQueue
from delivery.sender import Sender
from delivery.worker import Worker
from ingest.ids import new_id
from ingest.logstore import open_store

log = logging.getLogger(__name__)

#: Net new container objects (allocated less freed) between two collections of the youngest
#: generation, against Python's 700. The requests in flight and the settlements waiting for
#: their group hold a few thousand, so at 700 the collector ran about 50 times a second while
#: delivering and scanned them each time; cyclic garbage still starts a collection once it
#: reaches this many objects.
GC_YOUNG_THRESHOLD: Final = 10_000
#: Connections an engine holds to a PostgreSQL queue at most: the tracking API's threads (each
#: `enqueue` call is one), the worker's claims and settlements, the exporter, ownership.
POSTGRES_CONNECTIONS = 16


@dataclass
class _Loops:
    """The long-running tasks started in the lifespan, by name, and the events that stop them."""

    worker_stop: asyncio.Event = field(default_factory=asyncio.Event)
    export_stop: asyncio.Event = field(default_factory=asyncio.Event)
    ownership_stop: asyncio.Event = field(default_factory=asyncio.Event)
    live_stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def start(self, name: str, loop: Coroutine[Any, Any, None]) -> None:
        self.tasks[name] = asyncio.create_task(loop, name=name)

    async def join(self, name: str) -> None:
        await self.tasks[name]


def build_app(config: Config, queue: Queue, export: ExportProcess | None = None) -> FastAPI:
    """The app with a lifespan that runs the worker and the exporter beside the API.

    On a shared queue (PostgreSQL) the worker sends only to the destinations
    this engine owns (`delivery.ownership`), kept up by a task of its own.
    The exporter runs in `export`, its own process, when given; else here.
    """
    engine = config.engine
    metrics = Metrics()
    alerts = AuthAlerts(config, on_notification=metrics.record_notification)
    metrics.disabled_destinations = alerts.disabled_count
    throughput = Throughput(time.monotonic())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loops = _Loops()
        sender = _sender(engine)
        owner = f"{socket.gethostname()}-{os.getpid()}-{new_id()}"
        live = await _open_live(config)
        current = live.current
        alerts.reconfigure(current)
        await alerts.start()
        ownership: Everything | Shares = Everything()
        worker = Worker(
            current,
            queue,
            sender,
            owner=owner,
            prechecks=Prechecks(engine, admit=alerts.admit),
            on_settled=chain(
                metrics.record, alerts.on_settled, lambda record: throughput.record(record, time.monotonic())
            ),
            on_fixed=metrics.record_fixes,
            not_owned=lambda: ownership.excluded(),
            known_now=live.knows,
        )
        ownership = await _ownership(queue, owner, current, worker)
        app.state.ownership = ownership
        backlog = BacklogSource(
            engine=owner,
            fleet=isinstance(ownership, Shares),
            throughput=throughput,
            meters=worker.meters,
            owned=lambda: ownership.owned if isinstance(ownership, Shares) else None,
            monotonic=time.monotonic,
            wall=time.time,
        )

        live.on_change = _taking_up(app, worker, alerts, ownership, live)
        app.state.context = dataclasses.replace(app.state.context, config=current, live=live, backlog=backlog)
        store = open_store(config.log_location)
        upkeep = Upkeep(store, queue, config)
        loops.start("alerts", alerts.run())
        loops.start("ownership", ownership.run(loops.ownership_stop))
        loops.start("live configuration", live.run(loops.live_stop))
        async with sender:
            loops.start("worker", worker.run(loops.worker_stop))
            if export is None:
                exporter = Exporter(queue, store)
                loops.start("exporter", export_until(exporter, engine.export_interval_s, loops.export_stop))
            else:
                loops.start("exporter", export_process.watch(export, queue, config, loops.export_stop))
            loops.start("log upkeep", upkeep.run(loops.export_stop))
            log.info("delivering as %s; attempt log at %s", owner, store.location)
            try:
                yield
            finally:
                await _stop_in_order(loops, ownership, alerts, upkeep, live)

    app = create_app(config, queue, lifespan=lifespan, metrics=metrics)
    # The admin routes re-enable destinations through it (`POST /admin/destinations/{id}/enable`).
    app.state.context = dataclasses.replace(app.state.context, alerts=alerts)
    return app


def _sender(engine: EngineConfig) -> Sender:
    """The HTTP sender with the engine's client, TLS, target policy and egress proxy."""
    return Sender(
        request_timeout_s=engine.request_timeout_s,
        ca_bundle=engine.ca_bundle,
        # A pool smaller than the worker's bounds would queue requests the
        # worker counts as in flight.
        limit=max(256, engine.concurrency),
        limit_per_host=max(32, engine.per_destination_concurrency),
        http_client=engine.http_client,
        targets=engine.target_policy,
        egress_proxy=engine.egress_proxy,
    )


async def _ownership(queue: Queue, owner: str, config: Config, worker: Worker) -> Everything | Shares:
    """Every destination on the embedded queue; on a shared one, this engine's share, known now."""
    if not isinstance(queue, PostgresQueue):
        return Everything()
    shares = Shares(
        queue,
        owner,
        [d.id for d in config.destinations],
        lease_s=config.engine.lease_s,
        busy=worker.holding,
    )
    await asyncio.to_thread(shares.refresh)  # the first claim knows its share
    return shares


def _taking_up(
    app: FastAPI, worker: Worker, alerts: AuthAlerts, ownership: Everything | Shares, live: LiveConfig
) -> Callable[[Config], None]:
    """What swaps a config changed live in, in one step on the event loop (docs/live-config.md)."""

    def take_up(new: Config) -> None:
        app.state.context = dataclasses.replace(app.state.context, config=new)
        worker.reconfigure(new)
        alerts.reconfigure(new)
        if isinstance(ownership, Shares):
            ownership.reconfigure([d.id for d in new.destinations])
        log.info(
            "live configuration %d taken up: %d sources, %d destinations",
            live.version,
            len(new.sources),
            len(new.destinations),
        )

    return take_up


async def _stop_in_order(
    loops: _Loops, ownership: Everything | Shares, alerts: AuthAlerts, upkeep: Upkeep, live: LiveConfig
) -> None:
    """Stop the lifespan's loops in the order that loses nothing (see the module's docstring)."""
    # Never cancel the worker: a cancelled request would be sent
    # again with no record of the first time.
    loops.live_stop.set()
    await loops.join("live configuration")
    loops.worker_stop.set()
    await loops.join("worker")
    loops.ownership_stop.set()
    await loops.join("ownership")
    await ownership.leave()  # after the last settlement: the others take over at once
    alerts.stop()
    await loops.join("alerts")
    await alerts.close()
    loops.export_stop.set()
    upkeep.stop()
    await loops.join("exporter")
    await loops.join("log upkeep")
    await asyncio.to_thread(live.store.close)
    log.info("stopped: leases released, attempt log exported")


async def _open_live(config: Config) -> LiveConfig:
    """The store of changes made live, beside the queue, and the config they make with the file's.

    Stored changes that no longer fit the file are logged, and the engine starts with the file's.
    """
    dsn = config.queue.dsn.reveal() if config.queue.dsn is not None else None
    store = await asyncio.to_thread(open_settings, config.queue.backend, config.engine.data_dir, dsn)
    live = LiveConfig(config, store)
    try:
        await asyncio.to_thread(live.load)
    except ConfigError as exc:
        log.error("stored changes do not fit the config file; starting with the file's alone: %s", exc)
    return live


class EngineServer(uvicorn.Server):
    """uvicorn's server, except that a stop by SIGTERM or SIGINT ends with exit status 0.

    uvicorn re-raises the signal it handled once it has shut down, so the
    process dies of it (status -15). For the engine a signal is the ordinary
    way to stop, and every step of the stop has run by then.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def open_queue(config: Config) -> Queue:
    """The configured queue, with the jobs an earlier run left in flight made claimable again.

    The embedded SQLite queue, or the PostgreSQL one a fleet shares (whose
    `recover` frees only leases that lapsed: the others may be live engines').
    """
    queue: Queue
    if config.queue.backend == "postgres":
        assert config.queue.dsn is not None  # the config checks it
        engine = config.engine
        queue = PostgresQueue(
            config.queue.dsn.reveal(),
            max_size=POSTGRES_CONNECTIONS,
            outbox_lease_s=outbox_lease_s(engine),
        )
        log.info("queue: PostgreSQL at %s", queue.location)
    else:
        queue = SqliteQueue(config.engine.data_dir, min_free_bytes=config.engine.min_free_bytes)
    recovered = queue.recover(time.time())
    if recovered:
        log.info("recovered %d jobs left in flight by an earlier run", recovered)
    return queue


def with_admin_token(config: Config) -> Config:
    """`config` with the admin token its engines answer to: configured, or kept in `data_dir`.

    Logs where a token kept in `data_dir` is, never the token. Raises
    `ConfigError` when that file cannot be used (`ensure_admin_token`).
    """
    config, token_file = ensure_admin_token(config)
    if token_file is not None:
        log.info("admin API token: in %s (readable by its owner only)", token_file)
    return config


def engine_server(
    config: Config,
    queue: Queue,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    export: ExportProcess | None = None,
) -> EngineServer:
    """The HTTP server running the app, the worker and the exporter over `queue`.

    With no `[engine] admin_token`, the admin API answers to the token kept
    in `data_dir`, generated now if there is none yet (`with_admin_token`).
    """
    config = with_admin_token(config)
    return EngineServer(
        uvicorn.Config(
            build_app(config, queue, export),
            host=host,
            port=port,
            http=JsonErrorHTTPProtocol,
            log_level=log_level,
            access_log=False,
            # Requests still open after this are cut; the worker has its own grace.
            timeout_graceful_shutdown=max(1, int(config.engine.shutdown_grace_s)),
        )
    )


def run(
    config: Config, host: str = "127.0.0.1", port: int = 8000, *, sockets: list[socket.socket] | None = None
) -> None:
    """Run `serve` on uvloop's event loop where it is installed (Linux, macOS), else on asyncio's.

    uvloop's loop takes less CPU per request than asyncio's (docs/benchmarks.md, "Delivery").
    """
    try:
        import uvloop
    except ImportError:  # Windows: uvloop does not exist there
        asyncio.run(serve(config, host, port, sockets=sockets))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(config, host, port, sockets=sockets))


async def serve(
    config: Config, host: str = "127.0.0.1", port: int = 8000, *, sockets: list[socket.socket] | None = None
) -> None:
    """Run the engine until SIGTERM or SIGINT (uvicorn installs the handlers).

    It listens on `host:port`, or accepts on `sockets` already listening
    (`delivery.supervisor` shares one among several engine processes).
    """
    # Before the queue, a thread or the server's socket: the child must hold none of them.
    export = export_process.start(config, close=sockets or ()) if export_process.wanted(config) else None
    try:
        queue = open_queue(config)
    except BaseException:
        if export is not None:
            export.finish()
        raise
    if export is not None:
        export.go()
    try:
        server = engine_server(config, queue, host=host, port=port, export=export)
        _tune_gc()
        await server.serve(sockets=sockets)
    finally:
        if export is not None:  # done by the lifespan's stop, unless the server never started
            await asyncio.to_thread(export.finish)
        queue.close()


def _tune_gc() -> None:
    """Fit the cyclic GC to a delivering engine (docs/benchmarks.md, issue 16).

    What the engine built at start (modules, the app, the config) is left out of
    its scans: each full collection scanned them all, about 100,000 objects that
    live as long as the process, and ran every few seconds while delivering, 25-55 ms
    of the event loop each time. Garbage found now is collected first, so nothing
    unreachable is kept for good.

    The youngest generation is collected after `GC_YOUNG_THRESHOLD` net new objects
    instead of Python's 700 (see there).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
