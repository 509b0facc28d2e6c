"""The engine's HTTP app: builds FastAPI around a config and a queue, includes the routers.

Every error is answered as JSON ``{"code": ..., "message": ...}``, never
FastAPI's ``{"detail": ...}``: Segment's and RudderStack's clients read
`code` and `message`, and crash into a retry loop on anything else. Input
problems are 4xx (`delivery.api.segment.TrackingError`); a 5xx means the
server failed (the queue could not commit: 503, retried by clients; a bug:
500 with no traceback in the answer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route
from starlette.types import Lifespan

from delivery.api import openapi
from delivery.api.cors import CorsHeaders
from delivery.api.dependencies import AppContext, get_context
from delivery.api.routers import admin, health, live_config, preflight, replay, source_settings, tracking
from delivery.api.routers import metrics as metrics_router
from delivery.api.segment import TrackingError
from delivery.api.stats import TrackingStats
from delivery.config import Config
from delivery.metrics import Metrics
from delivery.queue import Queue

log = logging.getLogger(__name__)

#: The routers of the app, in the order their routes are matched.
_ROUTERS = (
    health.router,
    tracking.router,
    source_settings.router,
    metrics_router.router,
    admin.router,
    replay.router,
    live_config.router,
    preflight.router,
)


def create_app(
    config: Config,
    queue: Queue,
    *,
    clock: Callable[[], datetime] | None = None,
    lifespan: Lifespan[FastAPI] | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The app serving `config`'s sources into `queue`.

    `clock` (aware UTC, default the system clock) stamps `receivedAt`;
    `lifespan` is where the caller starts and stops long-running loops
    (workers, exporter). Opening and closing the queue is the caller's job.
    `metrics` is the object the caller's worker reports settled attempts to
    (`on_settled=metrics.record`); without one, `/metrics` counts no attempts.
    """
    app = FastAPI(
        title="deliverydash",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # no OAuth2 here
        generate_unique_id_function=openapi.operation_id,
    )
    openapi.install(app)
    app.state.context = AppContext(config, queue, TrackingStats(), clock or _utc_now, metrics or Metrics())
    for router in _ROUTERS:
        app.include_router(router)
    app.add_middleware(CorsHeaders)
    app.exception_handler(TrackingError)(_tracking_error)
    app.exception_handler(HTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(Exception)(_internal_error)
    return app


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one shape of every error answer."""
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _tracking_error(request: Request, exc: TrackingError) -> JSONResponse:
    get_context(request).stats.requests_rejected[exc.code] += 1
    # The route's template, not the path: a path may hold a write key (/v1/projects/{writeKey}/...).
    path = getattr(request.scope.get("route"), "path", request.url.path)
    log.info("%s %s: %d %s: %s", request.method, path, exc.status, exc.code, exc.message)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Routing errors (404, 405) and any `HTTPException` a route raises."""
    status = HTTPStatus(exc.status_code)
    # 400 is the app's `invalid_request` wherever it comes from (FastAPI refuses a body it cannot parse so).
    code = (
        "invalid_request"
        if exc.status_code == 400
        else status.phrase.lower().replace(" ", "_").replace("-", "_")
    )
    if exc.status_code == 404:
        message = f"no such endpoint: {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        # Starlette names the methods of the first route on the path; a path has one route per method.
        return error_response(405, code, message, {"Allow": _allowed_methods(request)})
    else:
        message = exc.detail if isinstance(exc.detail, str) else status.phrase
    return error_response(exc.status_code, code, message, exc.headers)


def _allowed_methods(request: Request) -> str:
    """The methods of every route on the request's path, for a 405's `Allow` header."""
    # The app's own routes (/openapi.json, any added to it) and those of its routers, which
    # FastAPI keeps in the routers rather than copying them into the app's.
    routes = [*request.app.router.routes, *(route for router in _ROUTERS for route in router.routes)]
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods.update(route.methods)
    return ", ".join(sorted(methods))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
    return error_response(400, "invalid_request", message)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette logs the traceback after this answer; the client sees no detail.
    return error_response(500, "internal_error", "internal server error")
