"""Segment's HTTP Tracking API: `POST /v1/{identify,track,page,screen,group,alias,batch,import}`.

The short paths `/v1/{i,t,p,s,g,a}` (a call's first letter) and `/v1/b` (a
batch) are what analytics.js and the mobile libraries post to; they are the
same endpoints.

Each request: authenticate a Basic-auth write key before reading the body,
read the raw body under a size cap (raw, so that no Content-Type is
required: analytics.js sends `text/plain`, which alone needs no preflight, with the key
inside the body), undo gzip, parse and validate (`delivery.api.segment`),
check that a browser's page is one the source allows (`delivery.api.cors`),
then commit the events and one job per destination of their source, and only
then answer ``200 {"success": true}``. Refusals are `TrackingError`s, which
`delivery.api.main` turns into ``{"code", "message"}`` answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, Request, Response
from starlette.requests import ClientDisconnect

from delivery.api import openapi
from delivery.api.cors import origin_not_allowed
from delivery.api.dependencies import AppContext, ContextDep
from delivery.api.segment import (
    MAX_REQUEST_BYTES,
    CallType,
    ErrorCode,
    Parsed,
    TrackingError,
    basic_auth_write_key,
    decode_body,
    parse_batch,
    parse_call,
    parse_json,
    request_too_large,
    request_write_key,
    to_event,
)
from delivery.config import Config, Source
from delivery.queue import Event, StorageFull

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["tracking"], responses=openapi.TRACKING_RESPONSES)

#: The one success answer Segment clients accept (some retry any other 2xx).
_SUCCESS = b'{"success":true}'
#: Rejected batch items quoted in one log line; the rest are counted.
_LOGGED_REJECTIONS = 5
#: Seconds a client is asked to wait while the engine's disk is below its reserve.
STORAGE_FULL_RETRY_AFTER_S = 30


@router.post("/identify", openapi_extra=openapi.call_body(CallType.IDENTIFY))
async def identify(request: Request, context: ContextDep) -> Response:
    """Who the user is."""
    return await _accept(request, context, CallType.IDENTIFY)


@router.post("/track", openapi_extra=openapi.call_body(CallType.TRACK))
async def track(request: Request, context: ContextDep) -> Response:
    """Something the user did."""
    return await _accept(request, context, CallType.TRACK)


@router.post("/page", openapi_extra=openapi.call_body(CallType.PAGE))
async def page(request: Request, context: ContextDep) -> Response:
    """A web page the user saw."""
    return await _accept(request, context, CallType.PAGE)


@router.post("/screen", openapi_extra=openapi.call_body(CallType.SCREEN))
async def screen(request: Request, context: ContextDep) -> Response:
    """An app screen the user saw."""
    return await _accept(request, context, CallType.SCREEN)


@router.post("/group", openapi_extra=openapi.call_body(CallType.GROUP))
async def group(request: Request, context: ContextDep) -> Response:
    """The account or company the user belongs to."""
    return await _accept(request, context, CallType.GROUP)


@router.post("/alias", openapi_extra=openapi.call_body(CallType.ALIAS))
async def alias(request: Request, context: ContextDep) -> Response:
    """Two ids of one user."""
    return await _accept(request, context, CallType.ALIAS)


@router.post("/batch", openapi_extra=openapi.batch_body())
async def batch(request: Request, context: ContextDep) -> Response:
    """Many calls at once; an invalid one is rejected alone."""
    return await _accept(request, context, None)


@router.post("/import", summary="Import", openapi_extra=openapi.batch_body())
async def import_(request: Request, context: ContextDep) -> Response:
    """Segment's older name for `/v1/batch`."""
    return await _accept(request, context, None)


def _short_path(call_type: CallType | None) -> Callable[[Request, AppContext], Awaitable[Response]]:
    async def short_path(request: Request, context: ContextDep) -> Response:
        return await _accept(request, context, call_type)

    return short_path


# The short paths come after the long ones: servers' libraries, the bulk of the traffic,
# post to the long ones, which the router then matches first.
for _call in CallType:
    router.add_api_route(
        openapi.short_path(_call),
        _short_path(_call),
        methods=["POST"],
        name=f"{_call}_short",
        summary=f"{_call.value.capitalize()} (short path)",
        description=f"`/v1/{_call}` as analytics.js and the mobile libraries send it.",
        openapi_extra=openapi.call_body(_call),
    )
router.add_api_route(
    openapi.short_path(None),
    _short_path(None),
    methods=["POST"],
    name="batch_short",
    summary="Batch (short path)",
    description="`/v1/batch` as analytics.js (batching) and the mobile libraries send it.",
    openapi_extra=openapi.batch_body(),
)


async def _accept(request: Request, context: AppContext, call_type: CallType | None) -> Response:
    received_at = context.clock()
    origin = request.headers.get("origin")  # None unless a browser sent it
    header_key = basic_auth_write_key(_one_header(request, "authorization"))
    if header_key is not None:
        # An unknown key, or a page its source refuses, is refused before the body is read.
        authorized_source(context.config, header_key, origin)
    raw = await _read_body(request)
    encoding = ", ".join(request.headers.getlist("content-encoding")) or None
    body = parse_json(decode_body(raw, encoding))
    source = authorized_source(context.config, request_write_key(header_key, body), origin)
    parsed = parse_batch(body, received_at) if call_type is None else parse_call(body, call_type, received_at)
    if parsed.rejections:
        _count_rejections(context, source, parsed)
    events = [to_event(message, source, received_at) for message in parsed.messages]
    await _enqueue(context, source, events)
    return Response(_SUCCESS, media_type="application/json")


def _one_header(request: Request, name: str) -> str | None:
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise TrackingError(400, ErrorCode.INVALID_HEADER, f"more than one {name} header")
    return values[0] if values else None


def authorized_source(config: Config, write_key: str, origin: str | None) -> Source:
    """The source of `write_key`, when a browser's page (`origin`) is one it takes events from."""
    source = config.source_for_write_key(write_key)
    if source is None:
        # The key is not quoted: a near-miss of a real key is still a secret.
        raise TrackingError(401, ErrorCode.INVALID_WRITE_KEY, "unknown write key")
    if origin is not None and not source.allows_origin(origin):
        raise origin_not_allowed(origin, by_source=True)
    return source


async def _read_body(request: Request) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed the cap."""
    length = _one_header(request, "content-length")
    if length is not None:
        # The HTTP server has already refused a malformed value; this guards the cap.
        if not length.isdigit():
            raise TrackingError(400, ErrorCode.INVALID_HEADER, "Content-Length must be a number of bytes")
        if int(length) > MAX_REQUEST_BYTES:
            raise request_too_large()
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                raise request_too_large()
    except ClientDisconnect:
        raise TrackingError(
            400, ErrorCode.INVALID_BODY, "the client went away before sending the whole body"
        ) from None
    return bytes(body)


def _count_rejections(context: AppContext, source: Source, parsed: Parsed) -> None:
    rejections = parsed.rejections
    context.stats.events_rejected.update(rejection.code for rejection in rejections)
    shown = "; ".join(f"batch[{r.index}] {r.code}: {r.message}" for r in rejections[:_LOGGED_REJECTIONS])
    unshown = len(rejections) - _LOGGED_REJECTIONS
    more = f"; and {unshown} more" if unshown > 0 else ""
    total = len(rejections) + len(parsed.messages)
    log.warning("source %s: rejected %d of %d events: %s%s", source.id, len(rejections), total, shown, more)


async def _enqueue(context: AppContext, source: Source, events: Sequence[Event]) -> None:
    """Commit `events` with one job per destination of `source`; returns after the commit."""
    if not events:
        return
    # Disabled destinations get their jobs too: the worker records each as
    # skipped (`disabled`), as docs/configuration.md promises.
    fanout = {source.id: [destination.id for destination in context.config.destinations_for(source.id)]}
    try:
        accepted = await asyncio.to_thread(context.queue.enqueue, events, fanout)
    except StorageFull as full:
        # Refused before the disk fills (or because it did): clients retry after the pause.
        log.error("source %s: refused %d events: %s", source.id, len(events), full)
        raise TrackingError(
            503,
            ErrorCode.UNAVAILABLE,
            "the engine's disk is nearly full, so new events are not stored; try again later",
            {"Retry-After": str(STORAGE_FULL_RETRY_AFTER_S)},
        ) from None
    except Exception:
        # Whatever the backend raised, nothing of this request is committed:
        # 503 makes Segment clients retry, which the messageId de-dup makes safe.
        log.exception("source %s: could not store %d events", source.id, len(events))
        raise TrackingError(
            503, ErrorCode.UNAVAILABLE, "the events could not be stored; try again later"
        ) from None
    context.stats.events_accepted += len(accepted)
    context.stats.events_duplicate += len(events) - len(accepted)
