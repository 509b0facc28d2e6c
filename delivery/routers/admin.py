"""`GET /admin/status`: queue depth by state and destination, tracking counters, uptime.

Behind `Authorization: Bearer <engine.admin_token>`, compared in constant
time. A refusal is 401 `{"code": "unauthorized", "message": ...}` and never
quotes what was presented: a near-miss of the token is still a secret.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from delivery.dependencies import ContextDep

log = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="deliverydash-admin"'}


def require_admin(request: Request, context: ContextDep) -> None:
    """Refuse the request with 401 unless it carries the admin token as a bearer credential."""
    values = request.headers.getlist("authorization")
    if not values:
        raise HTTPException(401, "an admin bearer token is required", headers=_CHALLENGE)
    scheme, _, token = values[0].strip().partition(" ")
    # Every refusal after this point has the same message, so an answer tells nothing about the token.
    matches = context.config.engine.admin_token.matches(token.strip())
    if len(values) > 1 or scheme.lower() != "bearer" or not matches:
        raise HTTPException(401, "invalid admin token", headers=_CHALLENGE)


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("/status")
async def status(context: ContextDep) -> dict[str, Any]:
    """Queue depth (by state and by destination), outbox size, tracking counters, uptime."""
    try:
        depth = await asyncio.to_thread(context.queue.depth)
    except Exception:
        log.exception("/admin/status: could not count the queue")
        raise HTTPException(503, "the queue could not be counted; try again later") from None
    stats = context.stats
    return {
        "uptime_s": round(context.metrics.uptime_s(), 3),
        "queue": {
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
    }
