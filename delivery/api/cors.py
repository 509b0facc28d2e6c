"""CORS for the tracking API: browsers on the pages a source allows may send to `/v1/...` and read the answer.

A browser sends `Origin: <page>` with every cross-origin request, and for a
request a page could not make with a plain form (analytics.js sends
`Authorization`) first asks with an `OPTIONS` preflight carrying no body and
no credentials. So the rules are two, judged by `Config` (`allowed_origins`
of each source, `delivery.config.origins`):

- **a preflight** (`preflight`, answered by the OPTIONS routes) is granted
  when *some* source takes the page's events: it carries no write key, so its
  source is not known yet; otherwise it is `403 origin_not_allowed`;
- **the request itself** names its source (the write key); the tracking
  routes refuse it with `403 origin_not_allowed` when that source does not
  take the page's events, before anything is stored. A form-like request
  (`text/plain`, no `Authorization`: `navigator.sendBeacon`) gets no
  preflight, so this check is the one that holds.

`CorsHeaders` adds `Access-Control-Allow-Origin` (the page's own origin,
never `*`, with `Vary: Origin`) to every answer under `/v1/` whose page some
source allows, errors included, so a page can read why it was refused.
Requests without `Origin` (servers, the mobile libraries) pass untouched,
and nothing outside `/v1/` (the admin API, `/metrics`) is ever CORS-enabled.
Credentials (cookies) are not allowed: the API reads none.
"""

from __future__ import annotations

import re

from fastapi import Request, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from delivery.api.dependencies import AppContext
from delivery.api.segment import ErrorCode, TrackingError
from delivery.config import Config

#: Where CORS applies: the tracking API and the source settings.
PREFIX = "/v1/"
#: How long a browser may reuse a granted preflight (Chromium caps it at 2 hours, Firefox at 24).
MAX_AGE_S = 7_200
#: Answer headers a page may read besides the CORS-safelisted ones (a 503's Retry-After).
EXPOSED = "Retry-After"
#: What the tracking endpoints answer to, in an `Allow` header.
ALLOW = "OPTIONS, POST"
#: `Access-Control-Request-Headers` as browsers send it: lower-case field names, comma-separated.
_HEADER_LIST = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")


def origin_not_allowed(origin: str, *, by_source: bool) -> TrackingError:
    """The 403 of a page (`origin`) that no source allows, or (`by_source`) the request's source does not."""
    refusal = (
        "this write key's source does not take events from pages at"
        if by_source
        else "no source takes events from pages at"
    )
    return TrackingError(
        403, ErrorCode.ORIGIN_NOT_ALLOWED, f"{refusal} {origin} (a source's allowed_origins lists its pages)"
    )


def preflight(request: Request, context: AppContext) -> Response:
    """The answer to `OPTIONS` on a tracking endpoint: a CORS preflight, or a plain question of methods."""
    origin = request.headers.get("origin")
    method = request.headers.get("access-control-request-method")
    if origin is None or method is None:
        return Response(status_code=204, headers={"Allow": ALLOW})
    if not context.config.any_source_allows_origin(origin):
        raise origin_not_allowed(origin, by_source=False)
    headers = {
        "Allow": ALLOW,
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Max-Age": str(MAX_AGE_S),
        "Vary": "Access-Control-Request-Method, Access-Control-Request-Headers",
    }
    # Any header may come (analytics.js lets pages add their own): the engine reads the
    # ones it knows and ignores the rest, so granting what is asked costs nothing.
    requested = request.headers.get("access-control-request-headers", "").strip()
    if requested and _HEADER_LIST.fullmatch(requested):
        headers["Access-Control-Allow-Headers"] = requested
    return Response(status_code=204, headers=headers)


class CorsHeaders:
    """ASGI middleware: the CORS answer headers on `/v1/...` for pages some source allows."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        origin = _origin(scope)
        if origin is None:  # not a browser: servers' libraries, the bulk of the traffic
            await self.app(scope, receive, send)
            return
        # The config is read per request: the app holds it (`AppContext`), not this middleware.
        config: Config = scope["app"].state.context.config
        if not config.any_source_allows_origin(origin):
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Access-Control-Allow-Origin"] = origin
                headers["Access-Control-Expose-Headers"] = EXPOSED
                _vary_on_origin(headers)
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _vary_on_origin(headers: MutableHeaders) -> None:
    vary = headers.get("vary")
    if vary is None:
        headers["Vary"] = "Origin"
    elif "origin" not in (name.strip().lower() for name in vary.split(",")):
        headers["Vary"] = f"{vary}, Origin"


def _origin(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"origin":
            return str(value.decode("latin-1"))
    return None
