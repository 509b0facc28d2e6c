"""`OPTIONS` on every tracking endpoint: browsers' CORS preflights (`delivery.api.cors`).

One route per path of `delivery.api.routers.tracking`, so the OpenAPI
document lists each, and a `405` names `OPTIONS` among the methods allowed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from delivery.api import cors, openapi
from delivery.api.dependencies import ContextDep
from delivery.api.routers import tracking

router = APIRouter(tags=["tracking"])


async def preflight(request: Request, context: ContextDep) -> Response:
    """A CORS preflight: granted when some source takes events from the page."""
    return cors.preflight(request, context)


for _route in tracking.router.routes:
    assert isinstance(_route, APIRoute)
    router.add_api_route(
        _route.path,
        preflight,
        methods=["OPTIONS"],
        name=f"preflight_{_route.name}",
        summary=f"CORS preflight of {_route.path}",
        status_code=204,
        response_class=Response,
        responses=openapi.PREFLIGHT_RESPONSES,
        openapi_extra=openapi.PREFLIGHT,
    )
