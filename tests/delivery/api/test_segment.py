"""The Segment message rules of `delivery.api.segment`, as tables: input in, message or error code out."""

from __future__ import annotations

import base64
import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from delivery.api.segment import (
    GENERATED_ID_PREFIX,
    MAX_BATCH_EVENTS,
    MAX_MESSAGE_BYTES,
    MAX_REQUEST_BYTES,
    CallType,
    ErrorCode,
    Message,
    TrackingError,
    basic_auth_write_key,
    decode_body,
    encode_json,
    format_timestamp,
    parse_batch,
    parse_call,
    parse_json,
    request_write_key,
    to_event,
)
from delivery.config import Secret, Source

DOC = Path(__file__).resolve().parents[3] / "docs" / "tracking-api.md"
RECEIVED = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
SOURCE = Source(id="web", workspace="acme", write_key=Secret("wk_web"))


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def raises(code: ErrorCode, status: int = 400) -> Any:
    """Context manager: a `TrackingError` with this code and status."""

    class Check:
        def __enter__(self) -> None:
            return None

        def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
            assert isinstance(exc, TrackingError), f"expected TrackingError {code}, got {exc!r}"
            assert (exc.status, exc.code) == (status, code), exc.message
            assert exc.message
            return True

    return Check()


def call(call_type: CallType, **body: Any) -> Message:
    [message] = parse_call(body, call_type, RECEIVED).messages
    return message


# -- write keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (None, None),
        (basic("wk_web:"), "wk_web"),
        ("basic " + base64.b64encode(b"wk_web:").decode(), "wk_web"),
        ("  Basic   " + base64.b64encode(b"wk_web:").decode() + "  ", "wk_web"),
        (basic("wk_web"), "wk_web"),  # no colon: the whole string is the username
        (basic("wk_web:ignored-password"), "wk_web"),
        (basic(":"), None),  # empty username: the body's writeKey decides
        (basic(""), None),
        ("Bearer some.oauth.token", None),  # Bearer comes with writeKey in the body
        ("Digest username=x", None),
    ],
)
def test_basic_auth_write_key(header: str | None, key: str | None) -> None:
    assert basic_auth_write_key(header) == key


@pytest.mark.parametrize(
    "header",
    [
        "Basic not base64!",
        "Basic d2tfd2ViOg",  # missing padding
        "Basic " + base64.b64encode(b"\xff\xfe:").decode(),  # not UTF-8
    ],
)
def test_basic_auth_that_does_not_decode_is_401(header: str) -> None:
    with raises(ErrorCode.INVALID_AUTHORIZATION, 401):
        basic_auth_write_key(header)


@pytest.mark.parametrize(
    ("header_key", "body", "key"),
    [
        ("wk_web", {}, "wk_web"),
        (None, {"writeKey": "wk_web"}, "wk_web"),
        ("wk_web", {"writeKey": "wk_web"}, "wk_web"),
        ("wk_web", {"writeKey": ""}, "wk_web"),
        ("wk_web", {"writeKey": None}, "wk_web"),
    ],
)
def test_request_write_key(header_key: str | None, body: dict[str, Any], key: str) -> None:
    assert request_write_key(header_key, body) == key


@pytest.mark.parametrize(
    ("header_key", "body", "status", "code"),
    [
        (None, {}, 401, ErrorCode.MISSING_WRITE_KEY),
        (None, {"writeKey": ""}, 401, ErrorCode.MISSING_WRITE_KEY),
        ("wk_web", {"writeKey": "wk_ios"}, 401, ErrorCode.WRITE_KEY_MISMATCH),
        (None, {"writeKey": 42}, 400, ErrorCode.INVALID_BODY),
    ],
)
def test_request_write_key_refused(
    header_key: str | None, body: dict[str, Any], status: int, code: ErrorCode
) -> None:
    with raises(code, status):
        request_write_key(header_key, body)


def test_error_messages_never_quote_a_write_key() -> None:
    with pytest.raises(TrackingError) as caught:
        request_write_key("wk_secret_one", {"writeKey": "wk_secret_two"})
    assert "secret" not in caught.value.message


# -- the body ------------------------------------------------------------------------------------

DOCUMENT = b'{"userId": "u1", "event": "Signed Up"}'


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (DOCUMENT, None),
        (DOCUMENT, ""),
        (DOCUMENT, "identity"),
        (gzip.compress(DOCUMENT), "gzip"),
        (gzip.compress(DOCUMENT), "GZIP"),
        (gzip.compress(DOCUMENT), "x-gzip"),
        (gzip.compress(DOCUMENT), "identity, gzip"),
        (gzip.compress(DOCUMENT[:10]) + gzip.compress(DOCUMENT[10:]), "gzip"),  # two members
    ],
)
def test_decode_body(raw: bytes, encoding: str | None) -> None:
    assert decode_body(raw, encoding) == DOCUMENT


@pytest.mark.parametrize(
    ("raw", "encoding", "status", "code"),
    [
        (DOCUMENT, "br", 415, ErrorCode.UNSUPPORTED_ENCODING),
        (DOCUMENT, "deflate", 415, ErrorCode.UNSUPPORTED_ENCODING),
        (gzip.compress(gzip.compress(DOCUMENT)), "gzip, gzip", 415, ErrorCode.UNSUPPORTED_ENCODING),
        (DOCUMENT, "gzip", 400, ErrorCode.INVALID_GZIP),  # not gzip at all
        (b"", "gzip", 400, ErrorCode.INVALID_GZIP),
        (gzip.compress(DOCUMENT)[:-6], "gzip", 400, ErrorCode.INVALID_GZIP),  # truncated
        (gzip.compress(DOCUMENT) + b"garbage", "gzip", 400, ErrorCode.INVALID_GZIP),
        (gzip.compress(DOCUMENT)[:12] + b"\x00" * 20, "gzip", 400, ErrorCode.INVALID_GZIP),  # corrupt
        (b"x" * (MAX_REQUEST_BYTES + 1), None, 413, ErrorCode.REQUEST_TOO_LARGE),
        (gzip.compress(b" " * (MAX_REQUEST_BYTES + 1)), "gzip", 413, ErrorCode.REQUEST_TOO_LARGE),
        (gzip.compress(b" " * 100_000_000), "gzip", 413, ErrorCode.REQUEST_TOO_LARGE),  # a bomb
        (gzip.compress(b" " * 300_000) * 2, "gzip", 413, ErrorCode.REQUEST_TOO_LARGE),  # members add up
    ],
)
def test_decode_body_refused(raw: bytes, encoding: str, status: int, code: ErrorCode) -> None:
    with raises(code, status):
        decode_body(raw, encoding)


def test_decode_body_takes_exactly_the_limit() -> None:
    body = b" " * MAX_REQUEST_BYTES
    assert decode_body(body, None) == body
    assert decode_body(gzip.compress(body), "gzip") == body


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),  # a UTF-8 byte order mark
        ('{"name": "Zoë 東京"}'.encode(), {"name": "Zoë 東京"}),
        (b'{"a": "\\ud800"}', {"a": "\ud800"}),  # a lone surrogate is valid JSON
        # Integers past 64 bits stay exact integers (orjson would make them floats).
        (b'{"a": 123456789012345678901234567890}', {"a": 123456789012345678901234567890}),
        (b'{"a": -9223372036854775809}', {"a": -9223372036854775809}),
        (
            b'{"a": 9223372036854775807, "b": "1234567890123456789"}',
            {"a": 2**63 - 1, "b": "1234567890123456789"},
        ),
        (b'{"a": 1e400}', {"a": float("inf")}),  # json's reading, as before
    ],
)
def test_parse_json(data: bytes, expected: dict[str, Any]) -> None:
    parsed = parse_json(data)
    assert parsed == expected
    assert [type(value) for value in parsed.values()] == [type(value) for value in expected.values()]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.INVALID_JSON),
        (b"{", ErrorCode.INVALID_JSON),
        (b"{'a': 1}", ErrorCode.INVALID_JSON),
        (b'{"a": 1} trailing', ErrorCode.INVALID_JSON),
        (b'{"a": "\xff"}', ErrorCode.INVALID_JSON),  # not UTF-8
        (b'{"a": NaN}', ErrorCode.INVALID_JSON),
        (b'{"a": -Infinity}', ErrorCode.INVALID_JSON),
        (b'{"a": ' + b"1" * 5000 + b"}", ErrorCode.INVALID_JSON),  # past int's digit limit
        (b"[" * 100_000 + b"]" * 100_000, ErrorCode.INVALID_JSON),  # nested past the recursion limit
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", ErrorCode.INVALID_JSON),
        (b"[]", ErrorCode.INVALID_BODY),
        (b'"text"', ErrorCode.INVALID_BODY),
        (b"null", ErrorCode.INVALID_BODY),
        (b"42", ErrorCode.INVALID_BODY),
    ],
)
def test_parse_json_refused(data: bytes, code: ErrorCode) -> None:
    with raises(code):
        parse_json(data)


def test_json_errors_say_where() -> None:
    with pytest.raises(TrackingError) as caught:
        parse_json(b'{\n  "a": ,\n}')
    assert "line 2, column 8" in caught.value.message


# -- required fields per call --------------------------------------------------------------------

VALID: list[tuple[CallType, dict[str, Any]]] = [
    (CallType.IDENTIFY, {"userId": "u1", "traits": {"email": "a@b.c"}}),
    (CallType.IDENTIFY, {"anonymousId": "anon-1"}),
    (CallType.IDENTIFY, {"userId": None, "anonymousId": "anon-1"}),  # clients send the other as null
    (CallType.TRACK, {"userId": "u1", "event": "Order Completed", "properties": {"revenue": 9.5}}),
    (CallType.TRACK, {"anonymousId": "anon-1", "event": "Clicked"}),
    (CallType.PAGE, {"userId": "u1", "name": "Docs", "category": "Help"}),
    (CallType.PAGE, {"anonymousId": "anon-1"}),  # name is optional
    (CallType.SCREEN, {"userId": "u1", "name": "Home"}),
    (CallType.GROUP, {"userId": "u1", "groupId": "g1", "traits": {"plan": "pro"}}),
    (CallType.GROUP, {"anonymousId": "anon-1", "groupId": 17}),
    (CallType.ALIAS, {"previousId": "anon-1", "userId": "u1"}),
]


@pytest.mark.parametrize(("call_type", "body"), VALID)
def test_valid_calls(call_type: CallType, body: dict[str, Any]) -> None:
    message = call(call_type, **body)
    assert message.type is call_type
    assert message.body["type"] == call_type
    assert message.name == (body["event"] if call_type is CallType.TRACK else None)
    for key, value in body.items():
        if key not in ("userId", "anonymousId", "groupId", "previousId"):
            assert message.body[key] == value


@pytest.mark.parametrize(
    ("call_type", "body", "code"),
    [
        (CallType.IDENTIFY, {}, ErrorCode.MISSING_USER_ID),
        (CallType.IDENTIFY, {"userId": None, "anonymousId": None}, ErrorCode.MISSING_USER_ID),
        (CallType.IDENTIFY, {"userId": "", "anonymousId": ""}, ErrorCode.MISSING_USER_ID),
        (CallType.PAGE, {"name": "Home"}, ErrorCode.MISSING_USER_ID),
        (CallType.SCREEN, {"name": "Home"}, ErrorCode.MISSING_USER_ID),
        (CallType.TRACK, {"event": "Clicked"}, ErrorCode.MISSING_USER_ID),
        (CallType.TRACK, {"userId": "u1"}, ErrorCode.MISSING_EVENT),
        (CallType.TRACK, {"userId": "u1", "event": None}, ErrorCode.MISSING_EVENT),
        (CallType.TRACK, {"userId": "u1", "event": ""}, ErrorCode.MISSING_EVENT),
        (CallType.TRACK, {"userId": "u1", "event": "   "}, ErrorCode.MISSING_EVENT),
        (CallType.TRACK, {"userId": "u1", "event": 42}, ErrorCode.MISSING_EVENT),
        (CallType.TRACK, {"userId": "u1", "event": "Clicked \ud83d"}, ErrorCode.INVALID_FIELD),
        (CallType.GROUP, {"userId": "u1"}, ErrorCode.MISSING_GROUP_ID),
        (CallType.GROUP, {"userId": "u1", "groupId": ""}, ErrorCode.MISSING_GROUP_ID),
        (CallType.GROUP, {"groupId": "g1"}, ErrorCode.MISSING_USER_ID),
        (CallType.ALIAS, {"userId": "u1"}, ErrorCode.MISSING_PREVIOUS_ID),
        (CallType.ALIAS, {"previousId": "anon-1"}, ErrorCode.MISSING_USER_ID),
        (CallType.ALIAS, {"previousId": "anon-1", "anonymousId": "anon-1"}, ErrorCode.MISSING_USER_ID),
        (CallType.IDENTIFY, {"userId": True}, ErrorCode.INVALID_FIELD),
        (CallType.IDENTIFY, {"userId": {"id": 1}}, ErrorCode.INVALID_FIELD),
        (CallType.IDENTIFY, {"userId": ["u1"]}, ErrorCode.INVALID_FIELD),
        (CallType.IDENTIFY, {"userId": "u1", "traits": ["a"]}, ErrorCode.INVALID_FIELD),
        (CallType.TRACK, {"userId": "u1", "event": "E", "properties": "x"}, ErrorCode.INVALID_FIELD),
        (CallType.TRACK, {"userId": "u1", "event": "E", "context": 1}, ErrorCode.INVALID_FIELD),
        (CallType.TRACK, {"userId": "u1", "event": "E", "integrations": []}, ErrorCode.INVALID_FIELD),
    ],
)
def test_invalid_calls(call_type: CallType, body: dict[str, Any], code: ErrorCode) -> None:
    with raises(code):
        call(call_type, **body)


@pytest.mark.parametrize(
    ("value", "stored"),
    [("u1", "u1"), (42, "42"), (4.5, "4.5"), (0, "0")],
)
def test_numeric_ids_are_stored_as_strings(value: Any, stored: str) -> None:
    message = call(CallType.GROUP, userId=value, groupId=value)
    assert (message.body["userId"], message.body["groupId"]) == (stored, stored)


def test_the_endpoint_decides_the_type() -> None:
    assert call(CallType.PAGE, userId="u1", type="track").body["type"] == "page"


def test_ids_absent_stay_absent_and_nulls_stay_null() -> None:
    body = call(CallType.TRACK, userId="u1", anonymousId=None, event="E").body
    assert body["anonymousId"] is None
    assert "groupId" not in body and "previousId" not in body


def test_unknown_fields_pass_through_and_the_write_key_does_not() -> None:
    extra = {"_metadata": {"bundled": ["x"]}, "channel": "server", "version": 2, "options": {"a": [1]}}
    message = call(CallType.TRACK, userId="u1", event="E", writeKey="wk_web", **extra)
    for key, value in extra.items():
        assert message.body[key] == value
    assert "writeKey" not in message.body


# -- messageId -----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"messageId": None}])
def test_a_missing_message_id_is_generated(body: dict[str, Any]) -> None:
    first = call(CallType.TRACK, userId="u1", event="E", **body)
    second = call(CallType.TRACK, userId="u1", event="E", **body)
    assert first.message_id.startswith(GENERATED_ID_PREFIX)
    assert first.message_id != second.message_id
    assert first.body["messageId"] == first.message_id
    assert len(first.message_id) < 100


@pytest.mark.parametrize("message_id", ["m", "ajs-8f1c", "x" * 99, "日本" * 49])
def test_message_id_kept(message_id: str) -> None:
    assert call(CallType.TRACK, userId="u1", event="E", messageId=message_id).message_id == message_id


@pytest.mark.parametrize(
    "message_id",
    # A lone surrogate (JSON "\ud800") cannot be stored as text: it was a 503, retried forever.
    ["", "x" * 100, "x" * 1000, 42, ["m"], {"id": "m"}, True, "\ud800", "m-\udfff-1"],
)
def test_message_id_refused(message_id: Any) -> None:
    with raises(ErrorCode.INVALID_MESSAGE_ID):
        call(CallType.TRACK, userId="u1", event="E", messageId=message_id)


# -- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "timestamp"),
    [
        # No client time: the event happened when it was received.
        ({}, "2026-11-27T12:00:00.000Z"),
        # No sentAt: nothing to correct with, the client's time is kept.
        ({"timestamp": "2026-11-27T11:00:00.000Z"}, "2026-11-27T11:00:00.000Z"),
        # Device clock 1 h slow, event 5 s before sending: receivedAt - 5 s.
        (
            {"timestamp": "2026-11-27T10:59:55.000Z", "sentAt": "2026-11-27T11:00:00.000Z"},
            "2026-11-27T11:59:55.000Z",
        ),
        # Device clock 2 days fast, +00:00 and microseconds.
        (
            {"timestamp": "2026-11-29T12:00:00.250000+00:00", "sentAt": "2026-11-29T12:00:01.000000+00:00"},
            "2026-11-27T11:59:59.250Z",
        ),
        (
            {"timestamp": "2026-11-27T12:00:00.000001Z", "sentAt": "2026-11-27T12:00:00.000002Z"},
            "2026-11-27T11:59:59.999999Z",
        ),
        # Offsets other than UTC are converted.
        (
            {"timestamp": "2026-11-27T13:00:00+01:00", "sentAt": "2026-11-27T12:00:10Z"},
            "2026-11-27T11:59:50.000Z",
        ),
        # Nanoseconds are truncated to microseconds.
        (
            {"timestamp": "2026-11-27T11:00:00.123456789Z", "sentAt": "2026-11-27T11:00:01Z"},
            "2026-11-27T11:59:59.123456Z",
        ),
        # Without an offset, UTC.
        ({"timestamp": "2026-11-27T08:00:00"}, "2026-11-27T08:00:00.000Z"),
        # An old event sent late (replayed from a device's disk) stays old.
        (
            {"timestamp": "2026-11-20T12:00:00Z", "sentAt": "2026-11-27T12:00:00Z"},
            "2026-11-20T12:00:00.000Z",
        ),
        # originalTimestamp stands in for timestamp.
        (
            {"originalTimestamp": "2026-11-27T10:59:55Z", "sentAt": "2026-11-27T11:00:00Z"},
            "2026-11-27T11:59:55.000Z",
        ),
    ],
)
def test_clock_skew_correction(fields: dict[str, Any], timestamp: str) -> None:
    body = call(CallType.TRACK, userId="u1", event="E", **fields).body
    assert body["timestamp"] == timestamp
    assert body["receivedAt"] == "2026-11-27T12:00:00.000Z"
    original = fields.get("timestamp", fields.get("originalTimestamp"))
    assert body.get("originalTimestamp") == original
    assert body.get("sentAt") == fields.get("sentAt")


@pytest.mark.parametrize(
    "fields",
    [
        {"timestamp": "yesterday"},
        {"timestamp": 1764244800},
        {"timestamp": "2026-13-01T00:00:00Z"},
        {"timestamp": "2026-11-27T12:00:00Z", "sentAt": "soon"},
        {"sentAt": 5},
        {"timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T23:59:59Z"},  # corrected out of range
        {"timestamp": "0001-01-01T00:00:00+01:00"},  # out of range once in UTC
    ],
)
def test_timestamps_refused(fields: dict[str, Any]) -> None:
    with raises(ErrorCode.INVALID_TIMESTAMP):
        call(CallType.TRACK, userId="u1", event="E", **fields)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 120_000, tzinfo=UTC), "2026-01-02T03:04:05.120Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 120_001, tzinfo=UTC), "2026-01-02T03:04:05.120001Z"),
        (datetime.fromisoformat("2026-01-02T04:04:05+01:00"), "2026-01-02T03:04:05.000Z"),
    ],
)
def test_format_timestamp(moment: datetime, text: str) -> None:
    assert format_timestamp(moment) == text


# -- sizes ---------------------------------------------------------------------------------------


def sized(size: int, **fields: Any) -> dict[str, Any]:
    """A track message whose compact JSON is exactly `size` bytes."""
    body: dict[str, Any] = {"userId": "u1", "event": "E", "properties": {"p": ""}, **fields}
    body["properties"]["p"] = "x" * (size - len(encode_json(body)))
    assert len(encode_json(body)) == size
    return body


def test_a_message_of_exactly_32_kib_is_accepted() -> None:
    assert call(CallType.TRACK, **sized(MAX_MESSAGE_BYTES)).message_id


def test_a_message_over_32_kib_is_413() -> None:
    with raises(ErrorCode.MESSAGE_TOO_LARGE, 413):
        call(CallType.TRACK, **sized(MAX_MESSAGE_BYTES + 1))


def test_the_write_key_does_not_count_toward_the_message_size() -> None:
    assert call(CallType.TRACK, writeKey="wk_" + "k" * 100, **sized(MAX_MESSAGE_BYTES)).message_id


def test_message_size_counts_utf8_bytes() -> None:
    body = sized(MAX_MESSAGE_BYTES - 1)
    body["properties"]["p"] = body["properties"]["p"][:-1] + "é"  # one more byte
    assert call(CallType.TRACK, **body).message_id
    body["properties"]["p"] = body["properties"]["p"][:-1] + "東"  # two more
    with raises(ErrorCode.MESSAGE_TOO_LARGE, 413):
        call(CallType.TRACK, **body)


# -- batches -------------------------------------------------------------------------------------


def track(n: int, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": f"u{n}", "event": "E", "messageId": f"m{n}", **fields}


def test_batch_rejects_each_invalid_item_alone() -> None:
    items: list[Any] = [
        track(0),
        {"type": "track", "userId": "u1"},  # no event
        track(2),
        "not an object",
        {"userId": "u4", "event": "E"},  # no type
        {"type": "purchase", "userId": "u5"},
        track(6, messageId="x" * 100),
        track(7, timestamp="noon"),
        track(8, properties={"p": "x" * MAX_MESSAGE_BYTES}),
        {"type": "alias", "userId": "u9"},
        {"type": "group", "userId": "u10"},
        {"type": "identify"},
        None,
        track(13),
    ]
    parsed = parse_batch({"batch": items}, RECEIVED)
    assert [m.message_id for m in parsed.messages] == ["m0", "m2", "m13"]
    assert [(r.index, r.code) for r in parsed.rejections] == [
        (1, ErrorCode.MISSING_EVENT),
        (3, ErrorCode.INVALID_EVENT),
        (4, ErrorCode.INVALID_TYPE),
        (5, ErrorCode.INVALID_TYPE),
        (6, ErrorCode.INVALID_MESSAGE_ID),
        (7, ErrorCode.INVALID_TIMESTAMP),
        (8, ErrorCode.MESSAGE_TOO_LARGE),
        (9, ErrorCode.MISSING_PREVIOUS_ID),
        (10, ErrorCode.MISSING_GROUP_ID),
        (11, ErrorCode.MISSING_USER_ID),
        (12, ErrorCode.INVALID_EVENT),
    ]
    assert all(r.message for r in parsed.rejections)


@pytest.mark.parametrize("call_type", list(CallType))
def test_batch_takes_every_call_type(call_type: CallType) -> None:
    body = dict(next(body for kind, body in VALID if kind is call_type), type=str(call_type))
    [message] = parse_batch({"batch": [body]}, RECEIVED).messages
    assert message.type is call_type


def test_batch_context_and_integrations_merge_under_the_items_own() -> None:
    body = {
        "batch": [
            track(0),
            track(1, context={"ip": "10.0.0.1", "library": {"name": "mine"}}, integrations={"All": True}),
            track(2, context=None),
        ],
        "context": {"library": {"name": "analytics-python"}, "locale": "fr-FR"},
        "integrations": {"All": False, "Mixpanel": True},
    }
    first, second, third = parse_batch(body, RECEIVED).messages
    assert first.body["context"] == {"library": {"name": "analytics-python"}, "locale": "fr-FR"}
    assert first.body["integrations"] == {"All": False, "Mixpanel": True}
    assert second.body["context"] == {"library": {"name": "mine"}, "locale": "fr-FR", "ip": "10.0.0.1"}
    assert second.body["integrations"] == {"All": True, "Mixpanel": True}
    assert third.body["context"] == body["context"]


def test_batch_rejects_a_lone_surrogate_in_a_stored_text_alone() -> None:
    body = {"batch": [track(0, messageId="\ud800"), track(1, event="E \udfff"), track(2, userId="\ud800")]}
    parsed = parse_batch(body, RECEIVED)
    assert [(r.index, r.code) for r in parsed.rejections] == [
        (0, ErrorCode.INVALID_MESSAGE_ID),
        (1, ErrorCode.INVALID_FIELD),
    ]
    # Elsewhere in a message it is kept: the payload escapes it.
    assert [m.message_id for m in parsed.messages] == ["m2"]
    assert parsed.messages[0].payload.startswith(b'{"type":"track","userId":"\\ud800"')


def deep(levels: int) -> dict[str, Any]:
    """An object nested `levels` deep: orjson reads 1,000 levels, and nothing encodes them."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value  # type: ignore[no-any-return]


@pytest.mark.parametrize("key", ["context", "integrations"])
def test_batch_object_too_deep_to_encode_refuses_the_batch(key: str) -> None:
    # It would be merged into every message: none could be stored (it was a 500).
    with raises(ErrorCode.INVALID_BODY):
        parse_batch({"batch": [track(0)], key: deep(1_000)}, RECEIVED)


@pytest.mark.parametrize("key", ["context", "integrations"])
def test_batch_object_over_32_kib_refuses_the_batch(key: str) -> None:
    with raises(ErrorCode.MESSAGE_TOO_LARGE, 413):
        parse_batch({"batch": [track(0)], key: {"p": "x" * MAX_MESSAGE_BYTES}}, RECEIVED)


def test_batch_messages_are_held_to_32_kib_with_the_batch_context_merged_in() -> None:
    # Else a 30 KiB context in a 500 KiB request would be stored 2,500 times over (75 MB).
    context = {"p": "x" * 20_000}
    body = {"batch": [track(0), track(1, properties={"q": "y" * 15_000}), track(2)], "context": context}
    parsed = parse_batch(body, RECEIVED)
    assert [m.message_id for m in parsed.messages] == ["m0", "m2"]
    assert [(r.index, r.code) for r in parsed.rejections] == [(1, ErrorCode.MESSAGE_TOO_LARGE)]
    assert all(m.body["context"] == context for m in parsed.messages)
    # On its own, that message is within the limit.
    assert parse_batch({"batch": [track(1, properties={"q": "y" * 15_000})]}, RECEIVED).messages


def test_batch_without_context_adds_none() -> None:
    [message] = parse_batch({"batch": [track(0)]}, RECEIVED).messages
    assert "context" not in message.body and "integrations" not in message.body


def test_batch_sent_at_corrects_every_item_unless_the_item_has_its_own() -> None:
    body = {
        "sentAt": "2026-11-27T11:00:00Z",
        "batch": [
            track(0, timestamp="2026-11-27T10:59:00Z"),
            track(1, timestamp="2026-11-27T10:59:00Z", sentAt="2026-11-27T10:59:30Z"),
            track(2),
        ],
    }
    first, second, third = parse_batch(body, RECEIVED).messages
    assert first.body["timestamp"] == "2026-11-27T11:59:00.000Z"
    assert first.body["sentAt"] == "2026-11-27T11:00:00Z"
    assert second.body["timestamp"] == "2026-11-27T11:59:30.000Z"
    assert second.body["sentAt"] == "2026-11-27T10:59:30Z"
    assert third.body["timestamp"] == "2026-11-27T12:00:00.000Z"


def test_batch_items_lose_their_write_keys() -> None:
    [message] = parse_batch({"batch": [track(0, writeKey="wk_web")], "writeKey": "wk_web"}, RECEIVED).messages
    assert "writeKey" not in message.body


@pytest.mark.parametrize("size", [0, 1, MAX_BATCH_EVENTS])
def test_batch_sizes_accepted(size: int) -> None:
    assert len(parse_batch({"batch": [track(n) for n in range(size)]}, RECEIVED).messages) == size


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, ErrorCode.INVALID_BODY),
        ({"batch": None}, 400, ErrorCode.INVALID_BODY),
        ({"batch": {"0": track(0)}}, 400, ErrorCode.INVALID_BODY),
        ({"batch": [], "context": "web"}, 400, ErrorCode.INVALID_BODY),
        ({"batch": [], "integrations": ["All"]}, 400, ErrorCode.INVALID_BODY),
        ({"batch": [], "sentAt": "later"}, 400, ErrorCode.INVALID_TIMESTAMP),
        ({"batch": [track(0)] * (MAX_BATCH_EVENTS + 1)}, 413, ErrorCode.TOO_MANY_EVENTS),
    ],
)
def test_batch_envelope_refused(body: dict[str, Any], status: int, code: ErrorCode) -> None:
    with raises(code, status):
        parse_batch(body, RECEIVED)


# -- into the queue ------------------------------------------------------------------------------


def test_to_event() -> None:
    message = call(CallType.TRACK, userId="u1", event="Order Completed", messageId="m1")
    event = to_event(message, SOURCE, RECEIVED)
    assert event.payload == message.payload == encode_json(message.body)
    assert (event.message_id, event.workspace_id, event.source_id) == ("m1", "acme", "web")
    assert (event.type, event.name) == ("track", "Order Completed")
    assert event.received_at == RECEIVED.timestamp()
    assert json.loads(event.payload) == message.body


@pytest.mark.parametrize("call_type", [c for c in CallType if c is not CallType.TRACK])
def test_only_track_events_have_a_name(call_type: CallType) -> None:
    body = dict(next(body for kind, body in VALID if kind is call_type), name="Home", event="E")
    assert to_event(call(call_type, **body), SOURCE, RECEIVED).name is None


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ({"a": "é"}, '{"a":"é"}'.encode()),
        ({"a": "\ud800"}, b'{"a":"\\ud800"}'),  # a lone surrogate cannot be UTF-8: escaped
        ({"a": 2**70, "b": -(2**70)}, b'{"a":1180591620717411303424,"b":-1180591620717411303424}'),
        (
            {"a": '\x00\x1f\u2028"\\/', "b": [1.5, True, None]},
            b'{"a":"\\u0000\\u001f\xe2\x80\xa8\\"\\\\/","b":[1.5,true,null]}',
        ),
    ],
)
def test_encode_json(value: dict[str, Any], encoded: bytes) -> None:
    assert encode_json(value) == encoded


def test_encode_json_writes_deep_nesting() -> None:
    value: Any = []
    for _ in range(500):  # past orjson's 254 levels
        value = [value]
    assert json.loads(encode_json({"a": value})) == {"a": value}


def test_received_at_is_the_servers_clock_not_the_clients() -> None:
    later = RECEIVED + timedelta(hours=3)
    body = parse_call(
        {"userId": "u1", "event": "E", "receivedAt": "2000-01-01T00:00:00Z"}, CallType.TRACK, later
    )
    assert body.messages[0].body["receivedAt"] == "2026-11-27T15:00:00.000Z"


def test_the_docs_list_every_error_code() -> None:
    match = re.search(r"<!-- test: error-codes -->\n((?:\|.*\n)+)", DOC.read_text())
    assert match, "docs/tracking-api.md lost its error-code table"
    documented = re.findall(r"^\| \d{3} \| `(\w+)` \|", match[1], re.MULTILINE)
    assert sorted(documented) == sorted(ErrorCode)
