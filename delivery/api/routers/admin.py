"""The admin API: status, notifications, and re-enabling a destination.

- `GET /admin/status`: queue depth by state and destination, tracking counters, uptime, the
  alerts webhook's deliveries and failures (this engine's), and the backlog forecast (per destination:
  waiting, rates now against the limit, time to drain; the rates are this engine's, docs/backlog.md).
- `GET /admin/notifications?state=open|resolved|all&workspace=W&limit=N`: notifications, newest first.
- `POST /admin/destinations/{id}/enable`: re-enable a destination disabled by auth failures.

On the PostgreSQL backend both act on the whole fleet's notifications and standing.

Behind `Authorization: Bearer <engine.admin_token>`, compared in constant
time: the configured token, or the one the engine generated in
`<data_dir>/admin_token` (`delivery.config.admin_token`); an app whose
config holds neither refuses everything. A refusal is 401
`{"code": "unauthorized", "message": ...}` and never quotes what was
presented: a near-miss of the token is still a secret.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from delivery.alerts.store import notifications_source
from delivery.alerts.webhook import idle_report
from delivery.api import openapi
from delivery.api.dependencies import ContextDep
from ingest.notifications import read_notifications

log = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="deliverydash-admin"'}


def require_admin(request: Request, context: ContextDep) -> None:
    """Refuse the request with 401 unless it carries the admin token as a bearer credential."""
    values = request.headers.getlist("authorization")
    if not values:
        raise HTTPException(401, "an admin bearer token is required", headers=_CHALLENGE)
    scheme, _, token = values[0].strip().partition(" ")
    # Every refusal after this point has the same message, so an answer tells nothing about the token.
    expected = context.config.engine.admin_token
    matches = expected is not None and expected.matches(token.strip())
    if len(values) > 1 or scheme.lower() != "bearer" or not matches:
        raise HTTPException(401, "invalid admin token", headers=_CHALLENGE)


router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={401: openapi.ADMIN_UNAUTHORIZED},
)


# `response_model=None`: each handler's dict is sent as it is; `responses` describes it to the document.


@router.get(
    "/status",
    summary="The engine's state",
    response_model=None,
    responses={200: openapi.STATUS_ANSWER, 503: openapi.unavailable("The queue could not be counted")},
    openapi_extra=openapi.ADMIN,
)
async def status(context: ContextDep) -> dict[str, Any]:
    """Queue depth (by state and by destination), outbox size, tracking counters, uptime, alerts webhook,
    and the backlog forecast."""
    try:
        depth = await asyncio.to_thread(context.queue.depth)
    except Exception:
        log.exception("/admin/status: could not count the queue")
        raise HTTPException(503, "the queue could not be counted; try again later") from None
    stats = context.stats
    return {
        "uptime_s": round(context.metrics.uptime_s(), 3),
        "queue": {
            "backend": context.config.queue.backend,
            "location": context.queue.location,
            "by_state": dict(depth.by_state),
            "by_destination": {dest: dict(counts) for dest, counts in sorted(depth.by_destination.items())},
            "outbox_records": depth.outbox_rows,
        },
        "events": {
            "accepted": stats.events_accepted,
            "duplicate": stats.events_duplicate,
            "rejected": dict(stats.events_rejected),
        },
        "requests_rejected": dict(stats.requests_rejected),
        "alerts_webhook": (
            context.alerts.webhook_report()
            if context.alerts is not None
            else idle_report(context.config.alerts.webhook_url is not None)
        ),
        "backlog": context.backlog.section(context.config, depth) if context.backlog is not None else None,
    }


@router.get(
    "/notifications",
    summary="Notifications about destinations",
    response_model=None,
    responses={
        200: openapi.NOTIFICATIONS_ANSWER,
        400: openapi.error("A query parameter is invalid; `message` names it.", ["invalid_request"]),
        503: openapi.unavailable("The notifications could not be read"),
    },
    openapi_extra=openapi.ADMIN,
)
async def notifications(
    context: ContextDep,
    state: Literal["open", "resolved", "all"] = "all",
    workspace: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Notifications raised about destinations, newest first (docs/notifications.md).

    On the PostgreSQL backend, the whole fleet's: every engine lists what any of them raised.
    """
    where = notifications_source(context.config)
    try:
        found = await asyncio.to_thread(
            read_notifications, where, state=state, workspace=workspace, limit=limit
        )
    except Exception:
        log.exception("/admin/notifications: could not read the notifications")
        raise HTTPException(503, "the notifications could not be read; try again later") from None
    return {"notifications": [n.as_json() for n in found]}


@router.post(
    "/destinations/{destination_id}/enable",
    summary="Re-enable a destination",
    response_model=None,
    responses={
        200: openapi.ENABLED_ANSWER,
        404: openapi.error(
            "No destination has this id; an id with a `/` in it is no endpoint at all (`not_found`).",
            ["unknown_destination", "not_found"],
        ),
        409: openapi.error("The destination is disabled in the configuration file.", ["conflict"]),
        503: openapi.unavailable("No delivery worker runs in this process, or the change was not stored"),
    },
    openapi_extra=openapi.ADMIN,
)
async def enable_destination(destination_id: str, context: ContextDep) -> dict[str, Any] | JSONResponse:
    """Re-enable a destination that auth failures disabled; recorded as an `enabled` notification.

    404 for an unknown destination, 409 for one disabled in the configuration
    (only the file can enable it), 503 when no worker runs in this process.
    A destination that was not disabled is left as it is (`"changed": false`).
    On the PostgreSQL backend any engine of the fleet answers, whichever owns
    the destination: the change is stored in the database, and the owner
    takes it up within a few seconds (docs/fleet.md, "Shared alert state").
    """
    destination = context.config.destination(destination_id)
    if destination is None:
        # Not an HTTPException: the app words every 404 as "no such endpoint".
        return JSONResponse(
            {"code": "unknown_destination", "message": f"no destination {destination_id!r} is configured"},
            status_code=404,
        )
    if not destination.enabled:
        raise HTTPException(
            409,
            f"destination {destination_id!r} is disabled in the configuration; enable it with "
            f'PATCH /admin/destinations/{destination_id} {{"enabled": true}} (docs/live-config.md)',
        )
    alerts = context.alerts
    if alerts is None or not alerts.started:
        raise HTTPException(503, "no delivery worker runs in this process")
    try:
        notification = await alerts.enable(destination_id)
    except Exception:
        log.exception("enabling %s failed", destination_id)
        raise HTTPException(503, "the change could not be stored; try again later") from None
    return {
        "destination": destination_id,
        "changed": notification is not None,
        "state": str(alerts.state(destination_id).phase),
        "notification": notification.as_json() if notification is not None else None,
    }
