"""The OpenAPI document of the engine's HTTP API: `/openapi.json`, and Swagger UI at `/docs`.

FastAPI writes the document from the routes; this module writes what it
cannot see:

- the tracking routes read their bodies raw (any Content-Type, gzip, integers
  past 64 bits: `delivery.api.routers.tracking`), so each route gives its
  request body here as JSON Schema (`call_body`, `batch_body`): the
  Segment messages as `delivery.api.segment` checks them;
- every error is ``{"code", "message"}`` (`delivery.api.main`): `error` is one
  status with the codes it carries;
- the write key (HTTP Basic) and the admin token (Bearer) are checked by the
  routes' own code, so their security schemes are declared here.

`install` makes FastAPI build the document on its first request and keep
it; nothing here runs per tracking request. The prose for people is
docs/tracking-api.md and docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from delivery.api.segment import MAX_BATCH_EVENTS, MAX_MESSAGE_ID_CHARS, CallType, ErrorCode

#: Security requirement of the tracking endpoints: the write key.
_WRITE_KEY: list[dict[str, list[str]]] = [{"writeKey": []}]

_SCHEMAS = "#/components/schemas/"

_DESCRIPTION = """\
deliverydash takes events the way Segment's HTTP Tracking API does, so
Segment's and RudderStack's libraries work unchanged with their `host`
pointed at the engine, and delivers each event to every destination of its
source.

**Write key.** Send the source's write key as the HTTP Basic username with
an empty password, or as `writeKey` in the JSON body (top level for a
batch), or both when they are the same key.

**Paths.** Each call has a short path as well, the one analytics.js and the
mobile libraries post to: `/v1/i`, `/v1/t`, `/v1/p`, `/v1/s`, `/v1/g`, `/v1/a`,
and `/v1/b` for a batch. `GET /v1/projects/{writeKey}/settings` is the source's
settings document, which the libraries fetch from Segment's CDN before sending:
it points them at this engine.

**Browsers.** Pages a source allows (its `allowed_origins`) may call the API
from a browser: `OPTIONS` answers their CORS preflights, and every answer under
`/v1/` carries `Access-Control-Allow-Origin` for them. A request from any other
page is refused with `403 origin_not_allowed`.

**Bodies.** A JSON object of at most 500 KiB (512,000 bytes), also once
gzip is undone (`Content-Encoding: gzip`); any `Content-Type`, or none
(analytics.js sends `text/plain`). One message is at most 32 KiB of JSON.

**Answers.** Success is exactly `200 {"success": true}`: the events are
stored durably. Every error is JSON `{"code": ..., "message": ...}`; bad
input is always 4xx, and a 5xx is worth retrying.

The operations endpoints (`/healthz`, `/metrics`) and the admin API
(`/admin/*`, with the engine's admin token) are for the people who run the
engine.
"""

_TAGS = [
    {"name": "tracking", "description": "Segment's HTTP Tracking API: the calls that bring events in."},
    {
        "name": "admin",
        "description": "The engine's state, for its operators: `Authorization: Bearer <token>`.",
    },
    {"name": "operations", "description": "Prometheus metrics, unauthenticated."},
    {"name": "health", "description": "Liveness."},
]

_SECURITY_SCHEMES = {
    "writeKey": {
        "type": "http",
        "scheme": "basic",
        "description": "The source's write key as the username, the password empty: "
        '`Authorization: Basic base64("KEY:")`. The key may come as `writeKey` in the JSON body '
        "instead (at the top level of a batch), or both ways when they are the same key. "
        "An unknown key is refused before the body is read.",
    },
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The engine's `[engine] admin_token`, or when none is configured the one it "
        "generated in `<data_dir>/admin_token` (readable by its owner only); compared in constant time.",
    },
}


# -- the messages --------------------------------------------------------------------------------


def _nullable(json_type: str, description: str, **more: Any) -> dict[str, Any]:
    return {"type": [json_type, "null"], "description": description, **more}


#: An id: a string or a number (stored as a string); empty or null counts as absent.
_ID = {"type": ["string", "number", "null"], "description": "A string or a number; stored as a string."}
_ID_NAMES = ("userId", "anonymousId", "groupId", "previousId")
#: An id a call needs: present, and not an empty string.
_PRESENT_ID = {"type": ["string", "number"], "minLength": 1}
_TIME = _nullable(
    "string",
    "An ISO 8601 time, `Z` or an offset, milliseconds or microseconds; without an offset it is UTC.",
    format="date-time",
)
_OBJECT = "A JSON object."

#: What every call may carry; unknown fields (`_metadata`, `channel`, ...) are kept as sent.
_COMMON: dict[str, Any] = {
    "userId": _ID,
    "anonymousId": _ID,
    "messageId": _nullable(
        "string",
        "The de-duplication key: a message whose messageId the same source sent in the last 24 hours "
        "is acknowledged and not stored again. Without one the engine makes one up.",
        minLength=1,
        maxLength=MAX_MESSAGE_ID_CHARS - 1,
    ),
    "timestamp": {
        **_TIME,
        "description": "When the event happened, on the device's clock. " + _TIME["description"],
    },
    "originalTimestamp": {**_TIME, "description": "Read when `timestamp` is absent."},
    "sentAt": {
        **_TIME,
        "description": "When the device sent it; corrects `timestamp` for the device's clock skew.",
    },
    "context": _nullable("object", _OBJECT),
    "integrations": _nullable("object", _OBJECT),
    "properties": _nullable("object", _OBJECT),
    "traits": _nullable("object", _OBJECT),
    "groupId": _ID,
    "previousId": _ID,
}


@dataclass(frozen=True, slots=True)
class _Call:
    """What the document says of one call beyond the common fields."""

    description: str
    fields: dict[str, Any]
    needs: tuple[str, ...]
    example: dict[str, Any]


_SENT = {"timestamp": "2026-11-27T11:59:57.120Z", "sentAt": "2026-11-27T12:00:00.000Z"}

_CALLS: dict[CallType, _Call] = {
    CallType.IDENTIFY: _Call(
        "Who the user is: `traits` about them.",
        {},
        (),
        {
            "userId": "user-42",
            "traits": {"email": "ada@example.com", "plan": "pro"},
            "messageId": "m-1",
            **_SENT,
        },
    ),
    CallType.TRACK: _Call(
        "Something the user did: `event` names it, `properties` describe it.",
        {"event": {"type": "string", "pattern": r"\S", "description": "The event's name, not blank."}},
        ("event",),
        {
            "userId": "user-42",
            "event": "Order Completed",
            "properties": {"revenue": 9.5},
            "messageId": "m-2",
            **_SENT,
        },
    ),
    CallType.PAGE: _Call(
        "A web page the user saw.",
        {"name": {"description": "The page's name."}},
        (),
        {"anonymousId": "anon-7", "name": "Pricing", "properties": {"path": "/pricing"}, "messageId": "m-3"},
    ),
    CallType.SCREEN: _Call(
        "An app screen the user saw.",
        {"name": {"description": "The screen's name."}},
        (),
        {"userId": "user-42", "name": "Checkout", "messageId": "m-4"},
    ),
    CallType.GROUP: _Call(
        "The account or company the user belongs to.",
        {"groupId": {**_ID, "description": "The group: a string or a number."}},
        ("groupId",),
        {"userId": "user-42", "groupId": "acme-inc", "traits": {"employees": 120}, "messageId": "m-5"},
    ),
    CallType.ALIAS: _Call(
        "Two ids of one user: `previousId` becomes `userId`.",
        {"previousId": {**_ID, "description": "The id the user had."}},
        ("previousId", "userId"),
        {"previousId": "anon-7", "userId": "user-42", "messageId": "m-6"},
    ),
}

_WRITE_KEY_FIELD = _nullable("string", "The write key, when not sent as the HTTP Basic username.")


def _schema_name(call: CallType) -> str:
    return call.value.capitalize()


def _message_schema(call: CallType) -> dict[str, Any]:
    spec = _CALLS[call]
    properties = {**_COMMON, **spec.fields, "writeKey": _WRITE_KEY_FIELD}
    for name in spec.needs:
        if name in _ID_NAMES:
            properties[name] = {**properties[name], **_PRESENT_ID}
    schema: dict[str, Any] = {
        "type": "object",
        "description": spec.description,
        "properties": properties,
        "additionalProperties": True,
    }
    if spec.needs:
        schema["required"] = list(spec.needs)
    if call is not CallType.ALIAS:
        # userId or anonymousId, the one sent not empty (the other may come as null).
        schema["anyOf"] = [
            {"required": [name], "properties": {name: _PRESENT_ID}} for name in ("userId", "anonymousId")
        ]
    return schema


def _batch_item(call: CallType) -> dict[str, Any]:
    return {
        "title": f"{_schema_name(call)} in a batch",
        "allOf": [{"$ref": _SCHEMAS + _schema_name(call)}],
        "properties": {"type": {"const": call.value}},
        "required": ["type"],
    }


_BATCH = {
    "type": "object",
    "description": "Many calls at once. An invalid item is rejected alone (counted and logged): the others "
    "are stored and the answer is still `200`. `context` and `integrations` are merged into each "
    "item's, the item's own keys winning; `sentAt` is each item's unless it has its own.",
    "required": ["batch"],
    "properties": {
        "batch": {
            "type": "array",
            "maxItems": MAX_BATCH_EVENTS,
            "items": {"$ref": _SCHEMAS + "BatchItem"},
        },
        "sentAt": _TIME,
        "context": _nullable("object", "Merged into each item's `context`."),
        "integrations": _nullable("object", "Merged into each item's `integrations`."),
        "writeKey": _WRITE_KEY_FIELD,
    },
    "additionalProperties": True,
}


_BATCH_EXAMPLE = {
    "batch": [
        {"type": "track", **_CALLS[CallType.TRACK].example, "messageId": "m-7"},
        {"type": "identify", **_CALLS[CallType.IDENTIFY].example, "messageId": "m-8"},
    ],
    "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
    "sentAt": "2026-11-27T12:00:00.000Z",
}


def short_path(call: CallType | None) -> str:
    """The short path of a call (`/t`), or of a batch for None (`/b`), under the router's `/v1`."""
    return f"/{call.value[0]}" if call is not None else "/b"


def call_body(call: CallType) -> dict[str, Any]:
    """`openapi_extra` of a single-call endpoint: its request body and the write key."""
    description = f"One {call.value} call; the endpoint decides the `type`."
    return _body(_schema_name(call), description, _CALLS[call].example)


def batch_body() -> dict[str, Any]:
    """`openapi_extra` of `/v1/batch` and `/v1/import`: the batch envelope and the write key."""
    return _body("Batch", "A batch of calls, each with its `type`.", _BATCH_EXAMPLE)


def _body(schema: str, description: str, example: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "security": _WRITE_KEY,
        "requestBody": {
            "required": True,
            "description": f"{description} Read as JSON whatever the Content-Type; "
            "`Content-Encoding: gzip` is undone.",
            "content": {
                "application/json": {"schema": {"$ref": _SCHEMAS + schema}, "example": dict(example)}
            },
        },
    }


# -- the answers ---------------------------------------------------------------------------------


def error(description: str, codes: Iterable[str], headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A `responses` entry: an error answer carrying one of `codes`."""
    answer: dict[str, Any] = {
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "enum": sorted(codes)},
                        "message": {"type": "string", "description": "What was wrong, for people."},
                    },
                    "additionalProperties": False,
                }
            }
        },
    }
    if headers:
        answer["headers"] = dict(headers)
    return answer


def json_answer(description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """A `responses` entry: a JSON answer of `schema`."""
    return {"description": description, "content": {"application/json": {"schema": dict(schema)}}}


#: The status each error code of the tracking API is answered with.
TRACKING_STATUS: dict[ErrorCode, int] = {
    ErrorCode.UNSUPPORTED_ENCODING: 415,
    ErrorCode.REQUEST_TOO_LARGE: 413,
    ErrorCode.TOO_MANY_EVENTS: 413,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.MISSING_WRITE_KEY: 401,
    ErrorCode.INVALID_AUTHORIZATION: 401,
    ErrorCode.WRITE_KEY_MISMATCH: 401,
    ErrorCode.INVALID_WRITE_KEY: 401,
    ErrorCode.ORIGIN_NOT_ALLOWED: 403,
    ErrorCode.UNAVAILABLE: 503,
} | {
    code: 400
    for code in (
        ErrorCode.INVALID_GZIP,
        ErrorCode.INVALID_HEADER,
        ErrorCode.INVALID_JSON,
        ErrorCode.INVALID_BODY,
        ErrorCode.INVALID_EVENT,
        ErrorCode.INVALID_TYPE,
        ErrorCode.INVALID_MESSAGE_ID,
        ErrorCode.INVALID_FIELD,
        ErrorCode.MISSING_USER_ID,
        ErrorCode.MISSING_EVENT,
        ErrorCode.MISSING_GROUP_ID,
        ErrorCode.MISSING_PREVIOUS_ID,
        ErrorCode.INVALID_TIMESTAMP,
    )
}

_TRACKING_ERRORS = {
    400: "The request or its message is invalid; `message` names the field or header.",
    401: "No write key, an unknown one, or two different ones.",
    403: "Sent by a browser from a page (`Origin`) the write key's source does not take events from.",
    413: "The body is over 500 KiB (on the wire or unzipped), the message over 32 KiB, or the batch "
    f"over {MAX_BATCH_EVENTS:,} events.",
    415: "A `Content-Encoding` other than gzip or identity.",
    503: "Nothing was stored (the queue failed, or its disk is below its reserve): retry later.",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait, when the engine's disk is below its free-space reserve.",
        "schema": {"type": "integer", "minimum": 0},
    }
}

_SUCCESS = {
    "type": "object",
    "required": ["success"],
    "properties": {"success": {"const": True}},
    "additionalProperties": False,
}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


#: The CORS headers of an answer to a page some source allows (`delivery.api.cors`).
CORS_HEADERS = {
    "Access-Control-Allow-Origin": _header(
        "The page's origin, when some source takes events from it (not sent otherwise)."
    ),
    "Access-Control-Expose-Headers": _header("`Retry-After`: the page may read it."),
    "Vary": _header("`Origin`, among others: the answer depends on the page."),
}


def _tracking_responses() -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {
        200: {
            **json_answer("Stored durably: the events and their jobs are committed.", _SUCCESS),
            "headers": CORS_HEADERS,
        }
    }
    for status, description in _TRACKING_ERRORS.items():
        codes = [code.value for code, code_status in TRACKING_STATUS.items() if code_status == status]
        headers = {**CORS_HEADERS, **(_RETRY_AFTER if status == 503 else {})}
        responses[status] = error(description, codes, headers)
    return responses


#: `responses` of every tracking endpoint.
TRACKING_RESPONSES = _tracking_responses()

# -- CORS preflights -----------------------------------------------------------------------------


#: `openapi_extra` of the OPTIONS of a tracking endpoint: the headers of a CORS preflight.
PREFLIGHT: dict[str, Any] = {
    "parameters": [
        {
            "name": "Origin",
            "in": "header",
            "required": False,
            "description": "The page asking. Without it (or without Access-Control-Request-Method) the "
            "request is a plain OPTIONS and the answer lists the methods.",
            "schema": {"type": "string"},
        },
        {
            "name": "Access-Control-Request-Method",
            "in": "header",
            "required": False,
            "description": "The method the page means to use (`POST`).",
            "schema": {"type": "string"},
        },
        {
            "name": "Access-Control-Request-Headers",
            "in": "header",
            "required": False,
            "description": "The headers the page means to send (analytics.js: `authorization,content-type`); "
            "all are granted, the engine reads those it knows.",
            "schema": {"type": "string"},
        },
    ]
}

#: `responses` of the OPTIONS of a tracking endpoint.
PREFLIGHT_RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {
        "description": "Granted (some source takes events from the page), or the methods of a plain OPTIONS.",
        "headers": {
            "Allow": {"required": True, "schema": {"type": "string", "const": "OPTIONS, POST"}},
            "Access-Control-Allow-Methods": _header("`POST`, to a preflight granted."),
            "Access-Control-Allow-Headers": _header("The headers asked for, to a preflight granted."),
            "Access-Control-Max-Age": _header("Seconds a browser may reuse the grant: 7200."),
            **CORS_HEADERS,
        },
    },
    403: error("No source takes events from the page.", [ErrorCode.ORIGIN_NOT_ALLOWED.value]),
}

#: The answer to a request without the admin token.
ADMIN_UNAUTHORIZED = error(
    "No admin token, another scheme, or a wrong token. The answer never quotes what was presented.",
    ["unauthorized"],
    {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
)


# -- the source settings -------------------------------------------------------------------------

_SOURCE_SETTINGS = {
    "type": "object",
    "description": "What Segment's CDN serves its libraries, pointing them at this engine "
    "(`delivery/api/routers/source_settings.py` says why each key is there).",
    "required": ["integrations", "metrics"],
    "properties": {
        "integrations": {
            "type": "object",
            "required": ["Segment.io"],
            "properties": {
                "Segment.io": {
                    "type": "object",
                    "required": ["apiKey", "apiHost", "protocol"],
                    "properties": {
                        "apiKey": {"type": "string", "description": "The write key."},
                        "apiHost": {
                            "type": "string",
                            "description": "Where events go, without a scheme: the host the request came "
                            "to, then `/v1`.",
                            "examples": ["events.example.com/v1"],
                        },
                        "protocol": {"type": "string", "enum": ["http", "https"]},
                    },
                    "additionalProperties": True,
                }
            },
            "additionalProperties": False,
        },
        "metrics": {
            "type": "object",
            "properties": {"sampleRate": {"const": 0}},
            "description": "No telemetry: the libraries would post it to Segment.",
        },
    },
    "additionalProperties": True,
}

#: `responses` of `GET /v1/projects/{writeKey}/settings`.
SETTINGS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        **json_answer("The source's settings.", {"$ref": _SCHEMAS + "SourceSettings"}),
        "headers": {
            **CORS_HEADERS,
            "Cache-Control": _header("`max-age=300`: a browser may keep it five minutes."),
        },
    },
    400: error(
        "The `Host` header is not `host[:port]`: the document could not name the engine.",
        [ErrorCode.INVALID_HEADER.value],
        CORS_HEADERS,
    ),
    401: error("No source has this write key.", [ErrorCode.INVALID_WRITE_KEY.value], CORS_HEADERS),
    403: error(
        "Asked by a browser from a page (`Origin`) the source does not take events from.",
        [ErrorCode.ORIGIN_NOT_ALLOWED.value],
        CORS_HEADERS,
    ),
}


def unavailable(what: str) -> dict[str, Any]:
    """A `responses` entry: 503 `service_unavailable` because `what` failed."""
    return error(f"{what}: try again later.", ["service_unavailable"])


# -- the admin answers ---------------------------------------------------------------------------


def _counts(description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "additionalProperties": {"type": "integer"}}


def _record(properties: Mapping[str, Any], description: str | None = None) -> dict[str, Any]:
    """An object with exactly these keys."""
    schema: dict[str, Any] = {
        "type": "object",
        "required": list(properties),
        "properties": dict(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


_ADMIN_STATUS = _record(
    {
        "uptime_s": {"type": "number", "minimum": 0, "description": "Seconds since the engine started."},
        "queue": _record(
            {
                "backend": {
                    "type": "string",
                    "enum": ["sqlite", "postgres"],
                    "description": "`[queue] backend`.",
                },
                "location": {
                    "type": "string",
                    "description": "The SQLite file, or the PostgreSQL DSN with its password as `***`.",
                },
                "by_state": _counts("Jobs by state (`pending` and `leased` always shown)."),
                "by_destination": {
                    "type": "object",
                    "description": "Jobs by destination, then by state.",
                    "additionalProperties": _counts("Jobs of one destination by state."),
                },
                "outbox_records": {
                    "type": "integer",
                    "description": "Attempt records committed, not yet exported to the attempt log.",
                },
            }
        ),
        "events": _record(
            {
                "accepted": {"type": "integer", "description": "Events stored since start."},
                "duplicate": {"type": "integer", "description": "Events acknowledged, not stored again."},
                "rejected": _counts("Batch items refused alone, by error code."),
            }
        ),
        "requests_rejected": _counts("Tracking requests answered with an error, by error code."),
        "alerts_webhook": {"$ref": _SCHEMAS + "AlertsWebhook"},
        "backlog": {
            "anyOf": [{"$ref": _SCHEMAS + "Backlog"}, {"type": "null"}],
            "description": "The backlog forecast (docs/backlog.md); null in a process without a worker.",
        },
    },
    "The queue's depth, the tracking API's counters, the uptime, the alerts webhook's deliveries and the "
    "backlog forecast.",
)

_PER_S = "number"
_BACKLOG_ROW = _record(
    {
        "destination": {"type": "string", "description": "The destination's id."},
        "workspace": _nullable("string", "The workspace of its source; null for one no longer configured."),
        "owned_here": {
            "type": "boolean",
            "description": "Whether this engine sends to it (always true with one engine); if not, the "
            "rates and the meter are another engine's, and null here.",
        },
        "waiting": {
            "type": "integer",
            "minimum": 0,
            "description": "Unfinished jobs: pending (due now or scheduled for a retry) plus leased.",
        },
        "pending": {"type": "integer", "minimum": 0, "description": "Jobs waiting to be claimed."},
        "leased": {"type": "integer", "minimum": 0, "description": "Jobs claimed, their request under way."},
        "requests_per_s": _nullable(_PER_S, "Requests made per second over the window.", minimum=0),
        "delivered_per_s": _nullable(_PER_S, "Events delivered per second over the window.", minimum=0),
        "finished_per_s": _nullable(
            _PER_S, "Events whose job ended (delivered, failed, dropped, skipped) per second.", minimum=0
        ),
        "limit_per_s": _nullable(_PER_S, "The configured rate limit, requests/s; null: not limited."),
        "adapted_per_s": _nullable(
            _PER_S, "The meter's rate now (below the limit after 429s); null: not metered here."
        ),
        "held_for_s": _nullable(_PER_S, "Seconds a Retry-After still holds it; null: not metered here."),
        "headroom_pct": _nullable(
            _PER_S, "100 x (1 - requests_per_s / limit_per_s): negative when over; null without a limit."
        ),
        "drain_state": {
            "type": "string",
            "enum": ["empty", "draining", "no_progress", "unknown"],
            "description": "`no_progress`: jobs wait and none ended in the window; `unknown`: another "
            "engine of the fleet sends to it.",
        },
        "drain_s": _nullable(
            _PER_S, "waiting / finished_per_s, when `draining` (0 when `empty`).", minimum=0
        ),
    }
)

_BACKLOG = _record(
    {
        "scope": {
            "type": "string",
            "enum": ["single_engine", "engine"],
            "description": "`single_engine`: the only engine (SQLite). `engine`: one engine of a fleet: the "
            "queue counts are the fleet's, the rates and meters this engine's own destinations'.",
        },
        "engine": {"type": "string", "description": "The engine's owner id."},
        "window_s": {"type": "number", "minimum": 0, "description": "Seconds the rates are measured over."},
        "destinations": {"type": "array", "items": {"$ref": _SCHEMAS + "BacklogDestination"}},
    },
    "Per destination: jobs waiting, rates now against the limit, time to drain at this pace.",
)

_WEBHOOK_FAILURE_FIELDS: dict[str, Any] = {
    "notification_id": {"type": "string"},
    "kind": {"type": "string", "enum": ["auth_failing", "disabled", "recovered", "enabled"]},
    "destination_id": {"type": "string"},
    "attempt": {"type": "integer", "minimum": 1, "description": "1 for the first attempt."},
    "at": {"type": "string", "format": "date-time", "description": "When the attempt ended."},
    "status_code": {"type": ["integer", "null"], "description": "The receiver's status; null: no response."},
    "error_class": {
        "type": "string",
        "description": "The taxonomy's class: `server`, `network`, `timeout`, ...",
    },
    "error_code": {
        "type": "string",
        "description": "The status as text, or the transport code (`ECONNREFUSED`).",
    },
}

_WEBHOOK_FAILURE = _record(_WEBHOOK_FAILURE_FIELDS, "A failed attempt to tell the alerts webhook.")

_WEBHOOK_GIVEN_UP = _record(
    {
        **_WEBHOOK_FAILURE_FIELDS,
        "reason": {
            "type": "string",
            "enum": ["terminal", "max_attempts", "retry_window", "engine_stopped"],
            "description": "Why no attempt follows: an answer retrying cannot change, a bound, or a stop.",
        },
    },
    "The last attempt of a notification the webhook was not told about.",
)

_ALERTS_WEBHOOK = _record(
    {
        "configured": {"type": "boolean", "description": "Whether `[alerts] webhook_url` is set."},
        "pending": {"type": "integer", "description": "Notifications with an attempt in flight or waiting."},
        "delivered": {"type": "integer", "description": "Notifications the webhook took (2xx) since start."},
        "given_up": {"type": "integer", "description": "Notifications given up on since start."},
        "failed_attempts": {"type": "integer", "description": "Failed attempts since start."},
        "last_failure": {"oneOf": [{"$ref": _SCHEMAS + "AlertsWebhookFailure"}, {"type": "null"}]},
        "last_given_up": {"oneOf": [{"$ref": _SCHEMAS + "AlertsWebhookGivenUp"}, {"type": "null"}]},
        "pending_notifications": {
            "type": "array",
            "description": "The oldest 20 pending notifications.",
            "items": _record(
                {
                    "notification_id": {"type": "string"},
                    "kind": {"type": "string", "enum": ["auth_failing", "disabled", "recovered", "enabled"]},
                    "destination_id": {"type": "string"},
                    "attempts": {"type": "integer", "description": "Attempts started so far."},
                    "next_attempt_at": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "When the next attempt is due; null while one is in flight.",
                    },
                    "last_failure": {
                        "oneOf": [{"$ref": _SCHEMAS + "AlertsWebhookFailure"}, {"type": "null"}]
                    },
                }
            ),
        },
    },
    "This engine's alerts webhook (docs/notifications.md): no URL, no secret.",
)

_TIME_TEXT = {"type": "string", "format": "date-time"}
_NULLABLE_TIME_TEXT = {"type": ["string", "null"], "format": "date-time"}

_NOTIFICATION = _record(
    {
        "id": {"type": "string", "description": "A ULID: notifications sort by it as they were raised."},
        "kind": {"type": "string", "enum": ["auth_failing", "disabled", "recovered", "enabled"]},
        "state": {"type": "string", "enum": ["open", "resolved"]},
        "workspace_id": {"type": "string"},
        "destination_id": {"type": "string"},
        "integration": {"type": "string"},
        "created_at": _TIME_TEXT,
        "first_seen_at": _NULLABLE_TIME_TEXT,
        "failures": {"type": "integer", "description": "Consecutive auth failures when it was raised."},
        "status_code": {"type": ["integer", "null"], "description": "The status of the response it quotes."},
        "sample_body": {"type": ["string", "null"], "description": "That response's body, redacted."},
        "message": {"type": "string", "description": "What happened and what to do, for people."},
        "resolved_at": _NULLABLE_TIME_TEXT,
    },
    "A notification about a destination (docs/notifications.md).",
)

_NOTIFICATIONS = _record(
    {"notifications": {"type": "array", "items": {"$ref": _SCHEMAS + "Notification"}}},
    "Notifications, newest first.",
)

_ENABLED = _record(
    {
        "destination": {"type": "string"},
        "changed": {"type": "boolean", "description": "False when the destination was not disabled."},
        "state": {"type": "string", "enum": ["healthy", "failing", "disabled"]},
        "notification": {
            "oneOf": [{"$ref": _SCHEMAS + "Notification"}, {"type": "null"}],
            "description": "The `enabled` notification recorded, if the destination was disabled.",
        },
    },
    "The destination's standing after the change.",
)

_REPLAYED = _record(
    {
        "replay_id": {
            "type": ["string", "null"],
            "description": "The replay's id, on every dead letter it took; null for a dry run.",
        },
        "dry_run": {"type": "boolean"},
        "jobs": {"type": "integer", "minimum": 0, "description": "Jobs enqueued (or that would be)."},
        "by_destination": _counts("The same, per destination."),
        "already_replayed": {
            "type": "integer",
            "minimum": 0,
            "description": "Dead letters selected that an earlier replay took: left alone unless `again`.",
        },
    },
    "What the replay enqueued, or would.",
)

_ADMIN_SCHEMAS = {
    "AdminStatus": _ADMIN_STATUS,
    "Backlog": _BACKLOG,
    "BacklogDestination": _BACKLOG_ROW,
    "AlertsWebhook": _ALERTS_WEBHOOK,
    "AlertsWebhookFailure": _WEBHOOK_FAILURE,
    "AlertsWebhookGivenUp": _WEBHOOK_GIVEN_UP,
    "Notification": _NOTIFICATION,
    "Notifications": _NOTIFICATIONS,
    "Enabled": _ENABLED,
    "Replayed": _REPLAYED,
}

#: `openapi_extra` of every admin endpoint.
ADMIN: dict[str, Any] = {"security": [{"adminToken": []}]}
#: `responses` of `GET /admin/status`, `GET /admin/notifications` and `POST /admin/destinations/{id}/enable`.
STATUS_ANSWER = json_answer("The engine's state.", {"$ref": _SCHEMAS + "AdminStatus"})
NOTIFICATIONS_ANSWER = json_answer("Notifications, newest first.", {"$ref": _SCHEMAS + "Notifications"})
ENABLED_ANSWER = json_answer("Enabled, or left as it was.", {"$ref": _SCHEMAS + "Enabled"})
REPLAYED_ANSWER = json_answer("Replayed, or counted.", {"$ref": _SCHEMAS + "Replayed"})


# -- the document --------------------------------------------------------------------------------


def operation_id(route: APIRoute) -> str:
    """An operation's id in the document: its handler's name (`track`, `enable_destination`)."""
    return route.name.rstrip("_")  # `import_` is `import`


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the document (FastAPI serves it at `app.openapi_url`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


def document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of `app`'s routes, with the schemas and security schemes of this module."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=_DESCRIPTION,
        routes=app.routes,
        tags=_TAGS,
    )
    for path_item in doc["paths"].values():
        for operation in path_item.values():
            # The app answers a parameter FastAPI refuses with 400 `invalid_request`
            # (`delivery.api.main`), never with FastAPI's 422; a route's own 422 stays.
            if "HTTPValidationError" in str(operation["responses"].get("422", "")):
                del operation["responses"]["422"]
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update({_schema_name(call): _message_schema(call) for call in CallType})
    schemas["BatchItem"] = {
        "description": "A call in a batch: its `type` says which.",
        "oneOf": [_batch_item(call) for call in CallType],
    }
    schemas["Batch"] = _BATCH
    schemas["SourceSettings"] = _SOURCE_SETTINGS
    schemas.update(_ADMIN_SCHEMAS)
    components["securitySchemes"] = _SECURITY_SCHEMES
    return doc
