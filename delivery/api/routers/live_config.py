"""The admin API's sources and destinations, changed while the engines run (docs/live-config.md).

- `GET /admin/destinations`, `GET /admin/destinations/{id}`: the effective destinations, no secret.
- `POST /admin/destinations`: add one (the body: a `[[destinations]]` table as JSON).
- `PATCH /admin/destinations/{id}`: set keys (`null` unsets one).
- `POST /admin/destinations/{id}/disable`: `enabled = false` (`PATCH {"enabled": true}` enables).
- `GET /admin/sources`, `GET /admin/sources/{id}`, `POST /admin/sources`, `PATCH /admin/sources/{id}`,
  `POST /admin/sources/{id}/disable`.

Changes are checked by the file's own check (`delivery.config.live`), stored
beside the queue, and taken up by this engine before the answer, by the
others of a fleet within a second. Bad input is 4xx `{"code", "message"}`
naming each problem: 400 a body that is not a JSON object, 404 an unknown
id, 409 an add of an id that exists, 422 a change the config's check
refuses. 503 when the store cannot be reached, or in an app without an
engine (no store).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from delivery.api import openapi
from delivery.api.dependencies import ContextDep
from delivery.api.routers.admin import require_admin
from delivery.config import ConfigError
from delivery.config.live import Conflict, LiveConfig, NotFound
from delivery.config.store import Kind, SettingsError

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={401: openapi.ADMIN_UNAUTHORIZED},
)

# -- the document ----------------------------------------------------------------------------------

_SET = {"type": ["string", "null"], "enum": ["set", None], "description": "`set`, or null: never the value."}
_DESTINATION_KEYS: dict[str, Any] = {
    "id": {"type": "string", "description": "1-64 letters, digits, `.`, `_` or `-`."},
    "source": {"type": "string", "description": "Id of the source whose events it receives."},
    "integration": {"type": "string", "description": "A name in the catalog (docs/catalog.md)."},
    "url": {"type": "string", "description": "Where requests are POSTed: http(s)."},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Secret."},
    "credential": {"type": "string", "description": "Secret: what the integration's auth sends."},
    "max_batch_events": {"type": "integer"},
    "max_batch_bytes": {"type": "integer"},
    "rate_limit_per_s": {"type": "number"},
    "rate_limit_burst": {"type": "integer"},
    "enabled": {"type": "boolean"},
    "signing_secret": {"type": "string", "description": "Secret: `whsec_...`."},
    "previous_signing_secret": {"type": "string", "description": "Secret."},
    "previous_signing_secret_expires_at": {"type": "string", "format": "date-time"},
}
_SOURCE_KEYS: dict[str, Any] = {
    "id": _DESTINATION_KEYS["id"],
    "workspace": {"type": "string", "description": "The customer that owns the source."},
    "write_key": {"type": "string", "description": "Secret: the key clients send."},
    "allowed_origins": {"type": "array", "items": {"type": "string"}},
    "enabled": {"type": "boolean"},
}
_RULES = "Checked as the file's table is (docs/configuration.md); unknown keys are refused."


def _table(keys: Mapping[str, Any], required: list[str], what: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": dict(keys),
        "description": f"A `[[{what}]]` table as JSON. {_RULES}",
    }


def _patch(keys: Mapping[str, Any]) -> dict[str, Any]:
    nullable = {
        key: {**schema, "type": [schema["type"], "null"]} for key, schema in keys.items() if key != "id"
    }
    return {
        "type": "object",
        "properties": nullable,
        "description": "The keys to set; `null` unsets one (back to the file's value or the default). "
        + _RULES,
    }


def _body(schema: Mapping[str, Any], example: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **openapi.ADMIN,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": dict(schema), "example": dict(example)}},
        },
    }


_MANAGED = {
    "type": "string",
    "enum": ["file", "file+live", "live"],
    "description": "Defined by the file, by the file and changed live, or added live.",
}
_DESTINATION = {
    "type": "object",
    "required": ["id", "source", "integration", "url", "enabled", "managed"],
    "properties": {
        **{key: _DESTINATION_KEYS[key] for key in ("id", "source", "integration", "enabled")},
        "url": {"type": "string", "description": "The URL's origin only: its path may hold a token."},
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string", "enum": ["set"]},
            "description": "Header names; their values are never shown.",
        },
        "credential": _SET,
        "signing_secret": _SET,
        "previous_signing_secret": _SET,
        "previous_signing_secret_expires_at": {"type": ["string", "null"], "format": "date-time"},
        "max_batch_events": {"type": "integer"},
        "max_batch_bytes": {"type": "integer"},
        "rate_limit_per_s": {"type": ["number", "null"]},
        "rate_limit_burst": {"type": ["integer", "null"]},
        "managed": _MANAGED,
    },
    "additionalProperties": False,
    "description": "A destination as the engine uses it; secrets are shown as `set`.",
}
_SOURCE = {
    "type": "object",
    "required": ["id", "workspace", "write_key", "allowed_origins", "enabled", "managed"],
    "properties": {
        "id": _SOURCE_KEYS["id"],
        "workspace": _SOURCE_KEYS["workspace"],
        "write_key": {"type": "string", "enum": ["set"], "description": "Never the key."},
        "allowed_origins": _SOURCE_KEYS["allowed_origins"],
        "enabled": _SOURCE_KEYS["enabled"],
        "managed": _MANAGED,
    },
    "additionalProperties": False,
    "description": "A source as the engine uses it; its write key is shown as `set`.",
}


def _answers(
    kind: Kind, *, listing: bool = False, add: bool = False, change: bool = False
) -> dict[int | str, dict[str, Any]]:
    one = _DESTINATION if kind == "destinations" else _SOURCE
    answers: dict[int | str, dict[str, Any]] = {
        400: openapi.error("The body is not a JSON object, or a parameter is invalid.", ["invalid_request"]),
        503: openapi.unavailable("The stored changes could not be read or written, or no engine runs here"),
    }
    if listing:
        answers[200] = openapi.json_answer(
            f"Every {kind[:-1]}.",
            {"type": "object", "required": [kind], "properties": {kind: {"type": "array", "items": one}}},
        )
        return answers
    answers[201 if add else 200] = openapi.json_answer(f"The {kind[:-1]}, as this engine now uses it.", one)
    if not add:
        answers[404] = openapi.error(f"No {kind[:-1]} has this id.", [f"unknown_{kind[:-1]}", "not_found"])
    if add:
        answers[409] = openapi.error(f"A {kind[:-1]} with this id exists already.", ["conflict"])
    if add or change:
        answers[422] = openapi.error(
            "The change would make the configuration invalid: `message` names each problem as the "
            "file's check does (`destinations[acme-hook].url: must be an http(s) URL, got 'ftp://x'`), "
            "and nothing was stored.",
            ["invalid_config"],
        )
    return answers


_DESTINATION_EXAMPLE = {
    "id": "acme-crm",
    "source": "web",
    "integration": "webhook",
    "url": "https://hooks.acme.example/deliverydash",
    "headers": {"Authorization": "Bearer s3cret"},
}
_SOURCE_EXAMPLE = {"id": "shop", "workspace": "acme", "write_key": "wk_live_acme_shop"}

# -- the answers -----------------------------------------------------------------------------------


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def _live(context: ContextDep) -> LiveConfig | JSONResponse:
    if context.live is None:
        return _error(503, "service_unavailable", "no engine runs in this process: nothing can change live")
    return context.live


async def _table_body(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return _error(400, "invalid_request", "the body must be a JSON object")
    if not isinstance(body, dict):
        return _error(400, "invalid_request", "the body must be a JSON object")
    return body


def _show(live: LiveConfig, kind: Kind, entry_id: str, status: int = 200) -> JSONResponse:
    try:
        return JSONResponse(live.view(kind, entry_id), status_code=status)
    except NotFound as exc:
        return _error(404, f"unknown_{kind[:-1]}", str(exc))


async def _list(context: ContextDep, kind: Kind) -> dict[str, Any] | JSONResponse:
    live = _live(context)
    if isinstance(live, JSONResponse):
        return live
    return {kind: live.views(kind)}


async def _get(context: ContextDep, kind: Kind, entry_id: str) -> JSONResponse:
    live = _live(context)
    return live if isinstance(live, JSONResponse) else _show(live, kind, entry_id)


async def _write(
    context: ContextDep,
    kind: Kind,
    entry_id: str | None,
    body: Mapping[str, Any] | JSONResponse,
    *,
    add: bool,
) -> JSONResponse:
    """Check, store and take up a change; the entry as now used, or the error naming the problems."""
    live = _live(context)
    if isinstance(live, JSONResponse):
        return live
    if isinstance(body, JSONResponse):
        return body
    if entry_id is None:
        entry_id = body.get("id")
        if not isinstance(entry_id, str) or not entry_id:
            return _error(422, "invalid_config", f"{kind}[?].id: required, a string")
    try:
        await live.write(kind, entry_id, body, add=add)
    except ConfigError as exc:
        return _error(422, "invalid_config", "; ".join(exc.problems))
    except NotFound as exc:
        return _error(404, f"unknown_{kind[:-1]}", str(exc))
    except Conflict as exc:
        return _error(409, "conflict", str(exc))
    except SettingsError:
        log.exception("changing %s %r live failed", kind[:-1], entry_id)
        return _error(503, "service_unavailable", "the change could not be stored; try again later")
    return _show(live, kind, entry_id, 201 if add else 200)


# -- the routes ------------------------------------------------------------------------------------


@router.get(
    "/destinations",
    summary="List destinations",
    response_model=None,
    responses=_answers("destinations", listing=True),
    openapi_extra=openapi.ADMIN,
)
async def list_destinations(context: ContextDep) -> dict[str, Any] | JSONResponse:
    """Every destination as the engine uses it (the file's, changed live, and added live); no secret."""
    return await _list(context, "destinations")


@router.post(
    "/destinations",
    summary="Add a destination",
    status_code=201,
    response_model=None,
    responses=_answers("destinations", add=True),
    openapi_extra=_body(
        _table(_DESTINATION_KEYS, ["id", "source", "integration", "url"], "destinations"),
        _DESTINATION_EXAMPLE,
    ),
)
async def add_destination(request: Request, context: ContextDep) -> JSONResponse:
    """Add a destination: checked as the file's are, stored, in effect on every engine within seconds."""
    return await _write(context, "destinations", None, await _table_body(request), add=True)


@router.get(
    "/destinations/{destination_id}",
    summary="Show a destination",
    response_model=None,
    responses=_answers("destinations"),
    openapi_extra=openapi.ADMIN,
)
async def get_destination(destination_id: str, context: ContextDep) -> JSONResponse:
    """One destination as the engine uses it; no secret."""
    return await _get(context, "destinations", destination_id)


@router.patch(
    "/destinations/{destination_id}",
    summary="Change a destination",
    response_model=None,
    responses=_answers("destinations", change=True),
    openapi_extra=_body(_patch(_DESTINATION_KEYS), {"url": "https://hooks.acme.example/v2", "enabled": True}),
)
async def update_destination(destination_id: str, request: Request, context: ContextDep) -> JSONResponse:
    """Set keys of a destination (`null` unsets one): its URL, credential, `enabled`, limits, ..."""
    return await _write(context, "destinations", destination_id, await _table_body(request), add=False)


@router.post(
    "/destinations/{destination_id}/disable",
    summary="Disable a destination",
    response_model=None,
    responses=_answers("destinations", change=True),
    openapi_extra=openapi.ADMIN,
)
async def disable_destination(destination_id: str, context: ContextDep) -> JSONResponse:
    """Stop sending to a destination: its jobs are skipped as `disabled` (docs/live-config.md)."""
    return await _write(context, "destinations", destination_id, {"enabled": False}, add=False)


@router.get(
    "/sources",
    summary="List sources",
    response_model=None,
    responses=_answers("sources", listing=True),
    openapi_extra=openapi.ADMIN,
)
async def list_sources(context: ContextDep) -> dict[str, Any] | JSONResponse:
    """Every source as the engine uses it; write keys are shown as `set`."""
    return await _list(context, "sources")


@router.post(
    "/sources",
    summary="Add a source",
    status_code=201,
    response_model=None,
    responses=_answers("sources", add=True),
    openapi_extra=_body(_table(_SOURCE_KEYS, ["id", "workspace", "write_key"], "sources"), _SOURCE_EXAMPLE),
)
async def add_source(request: Request, context: ContextDep) -> JSONResponse:
    """Add a source: its write key is taken by every engine within seconds."""
    return await _write(context, "sources", None, await _table_body(request), add=True)


@router.post(
    "/sources/{source_id}/disable",
    summary="Disable a source",
    response_model=None,
    responses=_answers("sources", change=True),
    openapi_extra=openapi.ADMIN,
)
async def disable_source(source_id: str, context: ContextDep) -> JSONResponse:
    """Refuse a source's write key from now on (401, as an unknown key); its queued jobs are still sent."""
    return await _write(context, "sources", source_id, {"enabled": False}, add=False)


@router.get(
    "/sources/{source_id}",
    summary="Show a source",
    response_model=None,
    responses=_answers("sources"),
    openapi_extra=openapi.ADMIN,
)
async def get_source(source_id: str, context: ContextDep) -> JSONResponse:
    """One source as the engine uses it; its write key is shown as `set`."""
    return await _get(context, "sources", source_id)


@router.patch(
    "/sources/{source_id}",
    summary="Change a source",
    response_model=None,
    responses=_answers("sources", change=True),
    openapi_extra=_body(_patch(_SOURCE_KEYS), {"allowed_origins": ["https://shop.acme.example"]}),
)
async def update_source(source_id: str, request: Request, context: ContextDep) -> JSONResponse:
    """Set keys of a source (`null` unsets one): its workspace, write key, allowed origins."""
    return await _write(context, "sources", source_id, await _table_body(request), add=False)
