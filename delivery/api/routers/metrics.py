"""`GET /metrics`: the engine's counters in Prometheus text format.

Unauthenticated, as Prometheus scrapes usually are, so what it shows is
held to counts under closed label sets (`delivery.metrics`): no secret, no
workspace, source or destination id.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Response

from delivery.api import stats
from delivery.api.dependencies import ContextDep
from delivery.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/metrics")
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
