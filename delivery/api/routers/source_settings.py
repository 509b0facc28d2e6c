"""A source's settings, `GET /v1/projects/{writeKey}/settings`: what Segment's CDN serves its libraries.

analytics.js fetches `{cdn}/v1/projects/{writeKey}/settings` before it sends
anything (`cdn` is `https://cdn.segment.com` unless the page sets
`analytics._cdn`, or `cdnURL` with the npm package), and so do the mobile
libraries (`cdnHost`). Its `integrations["Segment.io"]` says where events go.
Served by the engine and pointing at the host the request came to, it makes
the engine's address the only thing a page needs:

    window.analytics._cdn = "https://events.example.com"   // before the script loads

The document is the least the libraries need, and says nothing that would
make them load more code or talk to Segment:

- `integrations` holds `Segment.io` alone: more entries would make
  analytics.js fetch their device-mode code from the CDN;
- `apiHost` is `host[:port]/v1` without a scheme (the mobile libraries put
  `https://` before it, analytics.js takes `protocol`): the `Host` the request
  came to, and the scheme it came with (uvicorn reads `X-Forwarded-Proto` from
  a trusted proxy);
- `metrics.sampleRate` is 0: analytics.js and analytics-kotlin otherwise post
  their own telemetry to Segment's `api.segment.io/v1/m`;
- `remotePlugins`, `enabledMiddleware`, `middlewareSettings`: empty, nothing
  to fetch; `legacyVideoPluginsEnabled`: false.

An unknown write key is `401 invalid_write_key`, as on the tracking
endpoints, and a page a source does not allow is `403 origin_not_allowed`.
The key is in the path, so it is never logged (errors log the route's
template, `delivery.api.main`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from delivery.api import openapi
from delivery.api.dependencies import ContextDep
from delivery.api.routers.tracking import authorized_source
from delivery.api.segment import ErrorCode, TrackingError

router = APIRouter(prefix="/v1", tags=["tracking"])

#: How long a browser may keep the document: a page load within it skips the request.
MAX_AGE_S = 300
#: A `Host` header: a name or an IPv4 address, or an IPv6 address in brackets, and a port.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?")


@router.get(
    "/projects/{writeKey}/settings",
    summary="Source settings",
    responses=openapi.SETTINGS_RESPONSES,
    response_class=JSONResponse,
)
async def source_settings(
    request: Request,
    context: ContextDep,
    write_key: Annotated[str, Path(alias="writeKey", description="The source's write key.")],
) -> JSONResponse:
    """The settings document Segment's libraries load before sending, pointing them at this engine."""
    authorized_source(context.config, write_key, request.headers.get("origin"))
    host = request.headers.get("host", "")
    if not _HOST.fullmatch(host):
        raise TrackingError(
            400, ErrorCode.INVALID_HEADER, "the Host header must be host[:port], the engine's address"
        )
    return JSONResponse(
        settings_document(write_key, f"{host}/v1", request.url.scheme),
        headers={"Cache-Control": f"max-age={MAX_AGE_S}", "Vary": "Origin"},
    )


def settings_document(write_key: str, api_host: str, protocol: str) -> dict[str, Any]:
    """The settings of the source `write_key`, sending to `protocol://api_host/{t,p,i,...}`."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "metrics": {"sampleRate": 0},
        "remotePlugins": [],
        "enabledMiddleware": {},
        "middlewareSettings": {},
        "legacyVideoPluginsEnabled": False,
        "edgeFunction": {},
    }
