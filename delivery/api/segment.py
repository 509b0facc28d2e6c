"""Segment tracking calls, from request bytes to queue events: pure functions, no I/O, no clock.

The HTTP side (`delivery.api.routers.tracking`) reads the body, calls these in
order and enqueues the result; everything a client can get wrong is decided
here and raised as a `TrackingError` with an HTTP status and a stable `code`::

    request
    ├── Content-Encoding gzip/identity, else ....... 415 unsupported_encoding
    ├── gzip body decodes, else .................... 400 invalid_gzip
    ├── body <= 500 KiB (on the wire and unzipped) . 413 request_too_large
    ├── JSON object, else .......................... 400 invalid_json / invalid_body
    ├── write key (Basic username and/or writeKey) . 401 missing_write_key / invalid_authorization
    │                                                    / write_key_mismatch (/ invalid_write_key: router)
    │   (router: a browser's page its source allows, 403 origin_not_allowed: `delivery.api.cors`)
    ├── batch: an array of <= 2,500 events, else ... 400 invalid_body / 413 too_many_events
    ├── batch context/integrations: objects <= 32 KiB 400 invalid_body / 413 message_too_large
    └── each message (in a batch: rejected alone, the rest accepted)
        ├── a JSON object, <= 32 KiB ............... invalid_event / message_too_large (413)
        │   (in a batch, also with the batch's context/integrations merged in)
        ├── type (batch items) ..................... invalid_type
        ├── messageId: text, 1-99 chars ............ invalid_message_id (absent: generated)
        ├── context/integrations/properties/traits . invalid_field (objects or null)
        ├── userId or anonymousId .................. missing_user_id
        ├── track: event ........................... missing_event / invalid_field (not text)
        ├── group: groupId ......................... missing_group_id
        ├── alias: previousId and userId ........... missing_previous_id / missing_user_id
        └── timestamp, sentAt: ISO 8601 ............ invalid_timestamp

A message that passes comes out normalised: `type` set from the endpoint,
the batch's `context`/`integrations` merged under its own, `writeKey`
removed (it must not reach destinations), numeric ids as strings, and
Segment's timestamps: `receivedAt` (the server clock), `originalTimestamp`
(what the client said), and `timestamp` corrected for the device's clock
skew as ``receivedAt - (sentAt - originalTimestamp)``. Unknown fields
(`_metadata`, `channel`, ...) pass through untouched.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from delivery.config import Source
from delivery.queue import Event

#: Largest request body, on the wire and after gunzip (Segment: 500 KB per batch request).
MAX_REQUEST_BYTES = 500 * 1024
#: Largest single message, as compact JSON (Segment: 32 KB per call).
MAX_MESSAGE_BYTES = 32 * 1024
#: Most events in one batch request.
MAX_BATCH_EVENTS = 2_500
#: A messageId must be shorter than this.
MAX_MESSAGE_ID_CHARS = 100
#: Prefix of the messageIds the server makes up for messages that came without one.
GENERATED_ID_PREFIX = "api-"

#: orjson reads an integer past 64 bits as a float, losing digits, so a body
#: with a run of 19 digits (the shortest such integer) is left to `json`. The
#: run is found by mapping digits to "0" and the rest to "." (10 µs for a
#: 17 kB body, where a regular expression takes 130 µs).
_DIGITS_AS_ZEROS = bytes(ord("0") if ord("0") <= byte <= ord("9") else ord(".") for byte in range(256))
_LONG_DIGITS = b"0" * 19


class CallType(StrEnum):
    """The six Segment calls (the queue's `Event.type`)."""

    IDENTIFY = "identify"
    TRACK = "track"
    PAGE = "page"
    SCREEN = "screen"
    GROUP = "group"
    ALIAS = "alias"


class ErrorCode(StrEnum):
    """The `code` of every error the tracking API answers or counts (docs/tracking-api.md)."""

    # The request as a whole.
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    INVALID_GZIP = "invalid_gzip"
    REQUEST_TOO_LARGE = "request_too_large"
    INVALID_HEADER = "invalid_header"
    INVALID_JSON = "invalid_json"
    INVALID_BODY = "invalid_body"
    TOO_MANY_EVENTS = "too_many_events"
    MISSING_WRITE_KEY = "missing_write_key"
    INVALID_AUTHORIZATION = "invalid_authorization"
    WRITE_KEY_MISMATCH = "write_key_mismatch"
    INVALID_WRITE_KEY = "invalid_write_key"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    UNAVAILABLE = "unavailable"
    # One message (the whole request for the single-call endpoints).
    INVALID_EVENT = "invalid_event"
    MESSAGE_TOO_LARGE = "message_too_large"
    INVALID_TYPE = "invalid_type"
    INVALID_MESSAGE_ID = "invalid_message_id"
    INVALID_FIELD = "invalid_field"
    MISSING_USER_ID = "missing_user_id"
    MISSING_EVENT = "missing_event"
    MISSING_GROUP_ID = "missing_group_id"
    MISSING_PREVIOUS_ID = "missing_previous_id"
    INVALID_TIMESTAMP = "invalid_timestamp"


class TrackingError(Exception):
    """Input the tracking API refuses: answered as ``status`` with ``{"code", "message"}``."""

    def __init__(
        self, status: int, code: ErrorCode, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        """HTTP status of the answer (4xx for anything the client sent)."""
        self.code = code
        """Stable machine-readable reason."""
        self.message = message
        """Human-readable reason naming the field or header; never quotes a write key."""
        self.headers = headers
        """Headers of the answer (a 503's Retry-After), if any."""


def _bad(code: ErrorCode, message: str, status: int = 400) -> TrackingError:
    return TrackingError(status, code, message)


@dataclass(frozen=True, slots=True)
class Message:
    """One accepted call, normalised."""

    message_id: str
    """The client's messageId, or one generated here (prefix `api-`)."""
    type: CallType
    """The call."""
    name: str | None
    """The `event` of a track call; None for the other calls."""
    body: dict[str, Any]
    """The normalised message, as it is stored and sent to destinations."""
    payload: bytes
    """`body` as compact UTF-8 JSON (`encode_json`), encoded while the message can still be refused."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """One message of a batch refused alone."""

    index: int
    """Its position in `batch`."""
    code: ErrorCode
    """Why."""
    message: str
    """Why, in words."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """The messages of one request: the accepted ones and the rejected ones."""

    messages: list[Message]
    """Accepted messages, in request order."""
    rejections: list[Rejection] = field(default_factory=list)
    """Batch items refused alone (always empty for the single-call endpoints, which raise instead)."""


# -- the request ---------------------------------------------------------------------------------


def decode_body(raw: bytes, content_encoding: str | None, *, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """The body with its Content-Encoding undone; at most `limit` bytes are ever inflated.

    `gzip` (or `x-gzip`) and `identity` are understood, several gzip members
    in a row too; anything else is 415. A corrupt or truncated gzip stream
    is 400 `invalid_gzip`; more than `limit` bytes, packed or not, is 413.
    """
    if len(raw) > limit:
        raise request_too_large(limit)
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c not in ("", "identity")]
    if not codings:
        return raw
    if codings not in (["gzip"], ["x-gzip"]):
        raise _bad(
            ErrorCode.UNSUPPORTED_ENCODING,
            "Content-Encoding must be gzip or identity",
            415,
        )
    return _gunzip(raw, limit)


def _gunzip(raw: bytes, limit: int) -> bytes:
    if not raw:
        raise _bad(ErrorCode.INVALID_GZIP, "Content-Encoding is gzip but the body is empty")
    out = bytearray()
    rest = raw
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise _bad(ErrorCode.INVALID_GZIP, f"the gzip body is corrupt ({exc})") from None
        if len(out) > limit:
            raise request_too_large(limit, "once decompressed")
        if not inflater.eof:
            raise _bad(ErrorCode.INVALID_GZIP, "the gzip body is truncated")
        rest = inflater.unused_data  # a further gzip member, as `cat a.gz b.gz` makes
    return bytes(out)


def request_too_large(limit: int = MAX_REQUEST_BYTES, how: str = "") -> TrackingError:
    """The 413 of a body over `limit` bytes; `how` qualifies it ("once decompressed")."""
    where = f" {how}" if how else ""
    return _bad(
        ErrorCode.REQUEST_TOO_LARGE,
        f"the request body is larger than {limit:,} bytes{where}",
        413,
    )


def parse_json(data: bytes) -> dict[str, Any]:
    """The body as a JSON object (UTF-8, a BOM tolerated); 400 naming the problem otherwise.

    orjson reads the common body (a 100-event batch in 31 µs, `json` in 70);
    whatever it refuses or might read differently (a BOM, lone surrogates,
    integers past 64 bits, 1e400, invalid JSON) is left to `json`, so what is
    accepted, and the words of every refusal, are `json`'s.
    """
    if _LONG_DIGITS not in data.translate(_DIGITS_AS_ZEROS):
        try:
            fast = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            if not isinstance(fast, dict):
                raise _bad(ErrorCode.INVALID_BODY, f"the body must be a JSON object, got {_kind(fast)}")
            return fast
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _bad(ErrorCode.INVALID_JSON, f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise _bad(
            ErrorCode.INVALID_JSON, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise _bad(ErrorCode.INVALID_JSON, "invalid JSON: nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, integers of more than 4,300 digits
        raise _bad(ErrorCode.INVALID_JSON, f"invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _bad(ErrorCode.INVALID_BODY, f"the body must be a JSON object, got {_kind(document)}")
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def basic_auth_write_key(authorization: str | None) -> str | None:
    """The write key in an ``Authorization: Basic base64("KEY:")`` header, or None.

    None when there is no header, an empty username, or another scheme
    (`Bearer` comes with `writeKey` in the body, which is what authenticates).
    Basic credentials that do not decode are 401 `invalid_authorization`.
    """
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _bad(
            ErrorCode.INVALID_AUTHORIZATION,
            "Authorization: Basic credentials must be base64 of 'writeKey:'",
            401,
        ) from None
    username = decoded.partition(":")[0]
    return username or None


def request_write_key(header_key: str | None, body: Mapping[str, Any]) -> str:
    """The request's write key: the Basic username, the body's `writeKey`, or both when they agree."""
    body_key = body.get("writeKey")
    if body_key is not None and not isinstance(body_key, str):
        raise _bad(ErrorCode.INVALID_BODY, f"writeKey must be a string, got {_kind(body_key)}")
    body_key = body_key or None
    if header_key is not None and body_key is not None and header_key != body_key:
        raise _bad(
            ErrorCode.WRITE_KEY_MISMATCH,
            "the Basic-auth username and the body's writeKey are different keys",
            401,
        )
    key = header_key or body_key
    if key is None:
        raise _bad(
            ErrorCode.MISSING_WRITE_KEY,
            "no write key: send it as the Basic-auth username or as writeKey in the body",
            401,
        )
    return key


# -- the messages --------------------------------------------------------------------------------


def parse_call(body: Mapping[str, Any], call_type: CallType, received_at: datetime) -> Parsed:
    """The message of a single-call endpoint (`/v1/track`, ...); raises `TrackingError` if invalid."""
    return Parsed([_message(body, call_type, _Envelope(received_at, format_timestamp(received_at)))])


def parse_batch(body: Mapping[str, Any], received_at: datetime) -> Parsed:
    """The messages of `/v1/batch` (or `/v1/import`): each invalid item is rejected alone.

    The envelope (`batch`, `context`, `integrations`, `sentAt`) must be
    sound, else the whole request is refused.
    """
    items = body.get("batch")
    if not isinstance(items, list):
        raise _bad(ErrorCode.INVALID_BODY, f"batch must be a JSON array, got {_kind(items)}")
    if len(items) > MAX_BATCH_EVENTS:
        raise _bad(
            ErrorCode.TOO_MANY_EVENTS,
            f"a batch holds at most {MAX_BATCH_EVENTS:,} events, got {len(items):,}",
            413,
        )
    context = _object_or_none(body, "context", ErrorCode.INVALID_BODY)
    integrations = _object_or_none(body, "integrations", ErrorCode.INVALID_BODY)
    envelope = _Envelope(
        received_at,
        format_timestamp(received_at),
        context=context,
        integrations=integrations,
        sent_at=body.get("sentAt"),
        merged_bytes=_merged_bytes(context=context, integrations=integrations),
    )
    if envelope.sent_at is not None:
        _timestamp(envelope.sent_at, "sentAt")  # a bad envelope fails the request, not each item
    parsed = Parsed([])
    for index, item in enumerate(items):
        try:
            parsed.messages.append(_message(item, None, envelope))
        except TrackingError as exc:
            parsed.rejections.append(Rejection(index, exc.code, exc.message))
    return parsed


def to_event(message: Message, source: Source, received_at: datetime) -> Event:
    """The queue's form of an accepted message from `source`."""
    return Event(
        message_id=message.message_id,
        workspace_id=source.workspace,
        source_id=source.id,
        type=message.type,
        name=message.name,
        payload=message.payload,
        received_at=received_at.timestamp(),
    )


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON; ASCII escapes when the text holds lone surrogates (valid JSON input).

    orjson writes it (0.2 µs for a benchmark event, `json` 2.8 µs; byte for
    byte the same for parsed input but for the spelling of some floats, `1e-7`
    for `1e-07`, and an overflowed float such as 1e400, null instead of the
    non-JSON `Infinity`); what it refuses (lone surrogates, integers past 64
    bits, nesting past 254 levels) is written by `json` as before.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        pass
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True, slots=True)
class _Envelope:
    """What the request contributes to each of its messages."""

    received_at: datetime
    received_text: str
    context: Mapping[str, Any] | None = None
    integrations: Mapping[str, Any] | None = None
    sent_at: Any = None
    merged_bytes: int = 0
    """At most how many bytes merging `context` and `integrations` adds to a message."""


#: Fields that must be JSON objects when present (null counts as absent).
_OBJECT_FIELDS = ("context", "integrations", "properties", "traits")


def _merged_bytes(**objects: Mapping[str, Any] | None) -> int:
    """At most how many bytes merging a batch's `objects` adds to a message (the key, a colon, a comma).

    A batch whose object is too deep to encode, or larger than a message may
    be, is refused whole: not one of its messages could hold it.
    """
    total = 0
    for key, value in objects.items():
        if not value:
            continue
        try:
            size = len(encode_json(value))
        except (RecursionError, ValueError):
            raise _bad(ErrorCode.INVALID_BODY, f"the batch's {key} is nested too deeply") from None
        if size > MAX_MESSAGE_BYTES:
            raise _bad(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"the batch's {key} is {size:,} bytes of JSON; a message is at most {MAX_MESSAGE_BYTES:,}",
                413,
            )
        total += size + len(key) + 4
    return total


def _message(item: Any, call_type: CallType | None, envelope: _Envelope) -> Message:
    if not isinstance(item, dict):
        raise _bad(ErrorCode.INVALID_EVENT, f"each message must be a JSON object, got {_kind(item)}")
    body = dict(item)
    body.pop("writeKey", None)
    size = _check_size(body)
    call = call_type or _call_type(body.get("type"))
    body["type"] = _CALL_TEXT[call]
    message_id = _message_id(body.get("messageId"))
    body["messageId"] = message_id
    for name in _OBJECT_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise _bad(ErrorCode.INVALID_FIELD, f"{name} must be a JSON object, got {_kind(value)}")
    _check_ids(body, call)
    for key, merged in (("context", envelope.context), ("integrations", envelope.integrations)):
        if merged:
            body[key] = {**merged, **(body.get(key) or {})}
    if size + envelope.merged_bytes > MAX_MESSAGE_BYTES:
        # The limit holds for the message with the batch's objects merged in, else one
        # batch-wide context would be copied, whatever its size, into 2,500 messages.
        _check_size(body)
    own_sent_at = body.get("sentAt")
    _set_timestamps(body, envelope, envelope.sent_at if own_sent_at is None else own_sent_at)
    event_name = body["event"] if call is CallType.TRACK else None
    return Message(message_id, call, event_name, body, _encode(body))


def _check_size(body: Mapping[str, Any]) -> int:
    """The message's size as compact JSON; refused when over the limit or too deep to encode."""
    size = len(_encode(body))
    if size > MAX_MESSAGE_BYTES:
        raise _bad(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"a message is at most {MAX_MESSAGE_BYTES:,} bytes of JSON, got {size:,}",
            413,
        )
    return size


def _encode(body: Mapping[str, Any]) -> bytes:
    """`encode_json(body)`, refused when too deep to encode; orjson first, without a call between."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        pass
    try:
        return encode_json(body)
    except (RecursionError, ValueError):
        raise _bad(ErrorCode.INVALID_EVENT, "the message is nested too deeply") from None


#: Call types by value: a dict lookup, where `CallType(value)` costs a call into `enum`.
_CALL_TYPES: dict[Any, CallType] = {call.value: call for call in CallType}
#: The plain string of each call type, as stored (`.value` is a slower property).
_CALL_TEXT: dict[CallType, str] = {call: call.value for call in CallType}


def _call_type(value: Any) -> CallType:
    try:
        return _CALL_TYPES[value]
    except (KeyError, TypeError):  # TypeError: an array or an object
        known = ", ".join(CallType)
        raise _bad(ErrorCode.INVALID_TYPE, f"type must be one of {known}, got {_describe(value)}") from None


def _message_id(value: Any) -> str:
    if value is None:
        # Segment's libraries always send one; raw HTTP callers may not. The
        # generated id is unique, so such a message is never de-duplicated.
        return f"{GENERATED_ID_PREFIX}{uuid.uuid4()}"
    if not isinstance(value, str) or not value:
        raise _bad(ErrorCode.INVALID_MESSAGE_ID, f"messageId must be a non-empty string, got {_kind(value)}")
    if len(value) >= MAX_MESSAGE_ID_CHARS:
        raise _bad(
            ErrorCode.INVALID_MESSAGE_ID,
            f"messageId must be shorter than {MAX_MESSAGE_ID_CHARS} characters, got {len(value)}",
        )
    if not value.isascii() and not _is_text(value):
        raise _bad(ErrorCode.INVALID_MESSAGE_ID, f"messageId {_LONE_SURROGATE}")
    return value


#: Why a string that JSON allows cannot be stored: a `\ud800` escape without its pair.
_LONE_SURROGATE = (
    "must be Unicode text, but it holds a lone surrogate (a \\ud800-\\udfff escape without its pair)"
)


def _is_text(value: str) -> bool:
    """Whether `value` can be UTF-8, as the queue's and the attempt log's text columns must be."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_ids(body: dict[str, Any], call: CallType) -> None:
    """Required ids per call; numeric ids become strings (as Segment stores them)."""
    ids: dict[str, str | None] = dict.fromkeys(_ID_FIELDS)
    for key in _ID_FIELDS:
        if key in body:  # absent stays absent; clients send the unused one as null
            body[key] = ids[key] = _id(body[key], key)
    if call is CallType.ALIAS:
        if ids["previousId"] is None:
            raise _bad(ErrorCode.MISSING_PREVIOUS_ID, "alias needs previousId")
        if ids["userId"] is None:
            raise _bad(ErrorCode.MISSING_USER_ID, "alias needs userId")
    elif ids["userId"] is None and ids["anonymousId"] is None:
        raise _bad(ErrorCode.MISSING_USER_ID, f"{call} needs userId or anonymousId")
    if call is CallType.GROUP and ids["groupId"] is None:
        raise _bad(ErrorCode.MISSING_GROUP_ID, "group needs groupId")
    if call is CallType.TRACK:
        event = body.get("event")
        if not isinstance(event, str) or not event.strip():
            raise _bad(ErrorCode.MISSING_EVENT, f"track needs event, a non-empty string, got {_kind(event)}")
        if not event.isascii() and not _is_text(event):
            raise _bad(ErrorCode.INVALID_FIELD, f"event {_LONE_SURROGATE}")


#: The ids a message may carry, checked in this order.
_ID_FIELDS = ("userId", "anonymousId", "groupId", "previousId")


def _id(value: Any, key: str) -> str | None:
    if isinstance(value, str):
        return value or None
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _bad(ErrorCode.INVALID_FIELD, f"{key} must be a string or a number, got {_kind(value)}")


def _set_timestamps(body: dict[str, Any], envelope: _Envelope, sent_at: Any) -> None:
    received_at = envelope.received_at
    original = body.get("timestamp")
    if original is None:
        original = body.get("originalTimestamp")
    sent = None if sent_at is None else _timestamp(sent_at, "sentAt")
    try:
        if original is None:
            body["timestamp"] = envelope.received_text  # formatted once per request, not per message
        else:
            client_time = _timestamp(original, "timestamp")
            # The device clock may be off: only the interval it measured is trusted.
            timestamp = client_time if sent is None else received_at - (sent - client_time)
            body["originalTimestamp"] = original
            body["timestamp"] = format_timestamp(timestamp)
    except OverflowError:
        raise _bad(ErrorCode.INVALID_TIMESTAMP, "timestamp (corrected by sentAt) is out of range") from None
    if sent_at is not None:
        body["sentAt"] = sent_at
    body["receivedAt"] = envelope.received_text


def _timestamp(value: Any, key: str) -> datetime:
    """An ISO 8601 time; without an offset it is taken as UTC."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise _bad(
        ErrorCode.INVALID_TIMESTAMP,
        f"{key} must be an ISO 8601 time such as 2026-01-31T12:00:00.000Z, got {_describe(value)}",
    )


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, milliseconds (microseconds when there are any)."""
    moment = moment.astimezone(UTC)
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _object_or_none(body: Mapping[str, Any], key: str, code: ErrorCode) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise _bad(code, f"{key} must be a JSON object, got {_kind(value)}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _describe(value: Any) -> str:
    """A short quote of a client's value for an error message (never a secret: keys are not quoted)."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    return _kind(value)
