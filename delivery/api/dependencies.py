"""What route handlers share, read from `app.state`: config, queue, counters, clock, alerts.

`delivery.api.main.create_app` puts one `AppContext` on `app.state`; handlers
ask for its parts with the `Annotated` aliases below, so tests can build the
app around any queue, config or clock without patching.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from delivery.alerts.auth_alerts import AuthAlerts
from delivery.api.segment import TrackingStats
from delivery.config import Config
from delivery.metrics import Metrics
from delivery.queue import Queue


@dataclass(frozen=True, slots=True)
class AppContext:
    """The engine objects one app serves."""

    config: Config
    """Sources (write keys) and their destinations."""
    queue: Queue
    """Where accepted events and their fan-out jobs are committed."""
    stats: TrackingStats
    """Counters of the tracking API, for `/metrics`."""
    clock: Callable[[], datetime]
    """The server's clock (aware UTC): `receivedAt` of each request."""
    metrics: Metrics
    """Attempt counters and latency histogram (fed by the worker), and the uptime."""
    alerts: AuthAlerts | None = None
    """Auth-failure alerts of the engine's worker (set by `delivery.engine`); None without a worker."""


def get_context(request: Request) -> AppContext:
    """The `AppContext` of the app serving `request`."""
    context: AppContext = request.app.state.context
    return context


# The providers below are `async def` although they never wait: FastAPI runs a
# plain `def` dependency in a worker thread, a thread hop per request for an
# attribute read (those threads were 6% of the engine's py-spy samples under
# the ingest benchmark of docs/benchmarks.md).


async def context_dependency(request: Request) -> AppContext:
    """The `AppContext` of the app serving `request` (the provider of `ContextDep`)."""
    return get_context(request)


async def get_config(request: Request) -> Config:
    """The engine configuration."""
    return get_context(request).config


async def get_queue(request: Request) -> Queue:
    """The durable queue."""
    return get_context(request).queue


async def get_stats(request: Request) -> TrackingStats:
    """The tracking API's counters."""
    return get_context(request).stats


async def get_metrics(request: Request) -> Metrics:
    """The delivery metrics."""
    return get_context(request).metrics


async def get_clock(request: Request) -> Callable[[], datetime]:
    """The server clock."""
    return get_context(request).clock


ConfigDep = Annotated[Config, Depends(get_config)]
QueueDep = Annotated[Queue, Depends(get_queue)]
StatsDep = Annotated[TrackingStats, Depends(get_stats)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ClockDep = Annotated[Callable[[], datetime], Depends(get_clock)]
ContextDep = Annotated[AppContext, Depends(context_dependency)]
