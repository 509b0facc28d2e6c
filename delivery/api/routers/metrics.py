"""`GET /metrics`: the engine's counters in Prometheus text format.

Unauthenticated, as Prometheus scrapes usually are, so what it shows is
held to counts under closed label sets (`delivery.metrics`): no secret, no
workspace, source or destination id.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import PlainTextResponse

from delivery.api import openapi, stats
from delivery.api.dependencies import ContextDep
from delivery.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    # Only the document reads it: the handler builds its own Response.
    response_class=PlainTextResponse,
    responses={
        200: {"description": "The Prometheus text format 0.0.4 (docs/operations.md)."},
        503: openapi.unavailable("The queue could not be counted"),
    },
)
async def metrics(context: ContextDep) -> Response:
    """The exposition; 503 when the queue cannot be counted (the scrape fails, `up` goes to 0)."""
    try:
        depth = await asyncio.to_thread(context.queue.depth)
    except Exception:
        log.exception("/metrics: could not count the queue")
        # `delivery.api.main` answers it as JSON {"code": "service_unavailable", "message": ...}.
        raise HTTPException(503, "the queue could not be counted; try again later") from None
    text = stats.render(context.stats) + context.metrics.render(depth)
    return Response(text, media_type=CONTENT_TYPE)
