"""What route handlers share, read from `app.state`: config, queue, counters, clock, alerts.

`delivery.api.main.create_app` puts one `AppContext` on `app.state`; handlers
ask for it with `ContextDep`, so tests can build the
app around any queue, config or clock without patching.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from delivery.alerts.auth_alerts import AuthAlerts
from delivery.api.stats import TrackingStats
from delivery.backlog import BacklogSource
from delivery.config import Config
from delivery.config.live import LiveConfig
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
    live: LiveConfig | None = None
    """Sources and destinations changed live (`delivery.config.live`; set by `delivery.engine`): the
    admin API's `/admin/sources` and `/admin/destinations` answer 503 without it."""
    backlog: BacklogSource | None = None
    """The worker's rates and meters (set by `delivery.engine`): `/admin/status`'s `backlog` section is
    null without it (docs/backlog.md)."""


def get_context(request: Request) -> AppContext:
    """The `AppContext` of the app serving `request`."""
    context: AppContext = request.app.state.context
    return context


# The provider is `async def` although it never waits: FastAPI runs a plain
# `def` dependency in a worker thread, a thread hop per request for an
# attribute read (those threads were 6% of the engine's py-spy samples under
# the ingest benchmark of docs/benchmarks.md).


async def context_dependency(request: Request) -> AppContext:
    """The `AppContext` of the app serving `request` (the provider of `ContextDep`)."""
    return get_context(request)


ContextDep = Annotated[AppContext, Depends(context_dependency)]
