"""The partner profiles' decisions: pure, with exact clocks and seeded randomness."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from deliverydash.partner_simulator.profiles import (
    OK,
    SEED_EVENT_PATTERN,
    Answer,
    Batch,
    ExpiredCredentials,
    Flaky,
    Forbidden,
    Hang,
    Healthy,
    Outage,
    RateLimited,
    Reply,
    Request,
    Reset,
    ResetProfile,
    Strict,
    Timeout,
    Wtf,
    parse_events,
)

EVENT = {
    "type": "track",
    "event": "Signed Up",
    "messageId": "m-1",
    "timestamp": "2026-11-27T10:00:00Z",
    "userId": "ada",
    "properties": {"plan": "pro"},
}


def post(body: Any = EVENT, **headers: str) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Request("POST", "/hook", headers, raw)


def answer(reply: Reply) -> Answer:
    assert isinstance(reply, Answer)
    return reply


def document(reply: Reply) -> Any:
    return json.loads(answer(reply).body)


def test_events_are_counted_from_single_and_batch_bodies() -> None:
    assert parse_events(b'{"type": "track"}') == [{"type": "track"}]
    assert parse_events(b'{"batch": [{"a": 1}, {"b": 2}]}') == [{"a": 1}, {"b": 2}]
    assert parse_events(b"[1, 2]") is None
    assert parse_events(b"not json") is None
    assert parse_events(b"\xff") is None


def test_healthy_answers_200() -> None:
    assert Healthy().decide(post(), 0.0) == OK
    assert document(OK) == {"success": True}


def test_rate_limited_token_bucket() -> None:
    profile = RateLimited(rate=2, burst=3)
    statuses = [answer(profile.decide(post(), 0.0)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = answer(profile.decide(post(), 0.0))
    # Empty bucket at 2 tokens/s: one token in 0.5 s, announced as whole seconds, at least 1.
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert document(limited)["errors"][0]["code"] == "rate_limit_exceeded"
    assert answer(profile.decide(post(), 0.5)).status == 200  # one token refilled
    assert answer(profile.decide(post(), 0.5)).status == 429
    assert [answer(profile.decide(post(), 100.0)).status for _ in range(4)] == [200, 200, 200, 429]


def test_rate_limited_retry_after_rounds_up_the_wait() -> None:
    profile = RateLimited(rate=0.25, burst=1)
    assert answer(profile.decide(post(), 0.0)).status == 200
    assert answer(profile.decide(post(), 1.0)).headers["Retry-After"] == "3"  # 0.25 token: 3 s more


def test_flaky_draws_from_its_own_generator() -> None:
    profile = Flaky(error_rate=0.5, rng=random.Random(7))
    again = Flaky(error_rate=0.5, rng=random.Random(7))
    statuses = [answer(profile.decide(post(), 0.0)).status for _ in range(200)]
    assert statuses == [answer(again.decide(post(), 0.0)).status for _ in range(200)]
    assert set(statuses) == {200, 500, 502, 503, 504}
    assert 60 < statuses.count(200) < 140


def test_flaky_fails_each_event_s_first_tries() -> None:
    profile = Flaky(error_rate=0, statuses=[503], fail_first=2)
    first, second = ({"type": "track", "messageId": m} for m in ("m-1", "m-2"))
    statuses = [
        answer(profile.decide(post(body), 0)).status for body in (first, first, second, first, second, second)
    ]
    assert statuses == [503, 503, 503, 200, 503, 200]
    # A batch fails while one of its events still has first tries left.
    once = Flaky(error_rate=0, statuses=[503], fail_first=1)
    assert answer(once.decide(post(first), 0)).status == 503
    batch = {"batch": [first, {"messageId": "m-3"}]}
    assert [answer(once.decide(post(batch), 0)).status for _ in range(2)] == [503, 200]


def test_flaky_bodies_look_like_app_and_proxy_errors() -> None:
    assert document(Flaky(error_rate=1, statuses=[500]).decide(post(), 0))["error"] == "internal_error"
    gateway = answer(Flaky(error_rate=1, statuses=[502]).decide(post(), 0))
    assert gateway.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in gateway.body
    assert Flaky(error_rate=0).decide(post(), 0) == OK


def test_outage_windows() -> None:
    profile = Outage(period_s=60, down_s=15, status=503)
    assert profile.decide(post(), 0.0) == OK
    assert profile.decide(post(), 44.9) == OK
    down = answer(profile.decide(post(), 50.0))
    assert (down.status, down.headers["Retry-After"]) == (503, "10")
    assert profile.decide(post(), 60.0) == OK  # the next cycle starts up
    assert answer(profile.decide(post(), 119.5)).headers["Retry-After"] == "1"
    assert [profile.next_change(t) for t in (0.0, 45.0, 50.0, 61.0)] == [45.0, 60.0, 60.0, 105.0]


@pytest.mark.parametrize("mode", ["reset", "refuse"])
def test_outage_without_status_resets(mode: str) -> None:
    profile = Outage(period_s=10, down_s=5, mode=mode)
    assert profile.decide(post(), 1.0) == OK
    assert profile.decide(post(), 6.0) == Reset()


def test_expired_credentials_and_forbidden() -> None:
    expired = answer(ExpiredCredentials().decide(post(), 0))
    assert expired.status == 401
    assert json.loads(expired.body)["error"]["code"] == "token_expired"
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    forbidden = answer(Forbidden().decide(post(), 0))
    assert forbidden.status == 403
    assert json.loads(forbidden.body)["errors"][0]["code"] == "forbidden"


@pytest.mark.parametrize(
    "profile", [ExpiredCredentials(valid_token="fresh-token"), Forbidden(valid_token="fresh-token")]
)
def test_a_valid_token_is_accepted(profile: ExpiredCredentials | Forbidden) -> None:
    assert profile.decide(post(Authorization="Bearer fresh-token"), 0) == OK
    assert answer(profile.decide(post(Authorization="Bearer stale-token"), 0)).status in (401, 403)


def strict_message(body: Any, profile: Strict | None = None) -> str | None:
    reply = answer((profile or Strict()).decide(post(body), 0))
    if reply.status == 200:
        return None
    assert reply.status == 400
    error = json.loads(reply.body)["error"]
    assert error["code"] == 100
    assert error["message"].startswith("(#100) ")
    return str(error["message"]).removeprefix("(#100) ")


def test_strict_accepts_good_events() -> None:
    assert strict_message(EVENT) is None
    assert strict_message({"batch": [EVENT, {**EVENT, "type": "identify", "event": None}]}) is None


def test_strict_event_name_like_the_seed() -> None:
    message = strict_message({**EVENT, "event": "Signed Up!"})
    assert (
        message
        == f"Value of param custom_events[0][_eventName] must match regex pattern: /{SEED_EVENT_PATTERN}/"
    )


def test_strict_reports_the_first_broken_rule_of_the_first_bad_event() -> None:
    batch = {"batch": [EVENT, {**EVENT, "messageId": ""}, {**EVENT, "event": "!"}]}
    assert strict_message(batch) == "The parameter custom_events[1][messageId] is required"


def test_strict_identity_and_string_length() -> None:
    anonymous = {key: value for key, value in EVENT.items() if key != "userId"}
    assert strict_message(anonymous) == (
        "One of the parameters custom_events[0][userId] or custom_events[0][anonymousId] is required"
    )
    assert strict_message({**anonymous, "anonymousId": "a-1"}) is None
    assert strict_message(anonymous, Strict(require_identity=False)) is None
    long = {**EVENT, "properties": {"items": [{"sku": "x" * 11}]}}
    assert strict_message(long, Strict(max_string_length=10)) == (
        "Value of param custom_events[0][properties][items][0][sku] must be at most 10 characters long"
    )


def test_strict_rejects_a_body_that_is_not_json() -> None:
    assert strict_message(b"<xml/>") == "Request body is not a valid JSON object"


def test_batch_limits() -> None:
    profile = Batch(max_events=3, max_bytes=2000)
    assert document(profile.decide(post({"batch": [EVENT] * 3}), 0)) == {"success": True, "accepted": 3}
    assert document(profile.decide(post(EVENT), 0))["accepted"] == 1
    too_many = answer(profile.decide(post({"batch": [EVENT] * 4}), 0))
    assert too_many.status == 400
    assert json.loads(too_many.body)["error"]["code"] == "batch_too_large"
    too_big = answer(profile.decide(post({"batch": [{"x": "y" * 3000}]}), 0))
    assert too_big.status == 413


def test_wtf_cycles_through_418_and_1_to_101() -> None:
    profile = Wtf()
    replies = [answer(profile.decide(post(), 0)) for _ in range(103)]
    assert [r.status for r in replies] == [418, *range(1, 102), 418]
    assert all(r.close for r in replies)
    assert replies[0].body == b"I'm a teapot"


def test_wtf_at_random() -> None:
    profile = Wtf(statuses=[7, 42], order="random", rng=random.Random(3))
    assert {answer(profile.decide(post(), 0)).status for _ in range(50)} == {7, 42}


def test_reset_and_timeout() -> None:
    assert ResetProfile().decide(post(), 0) == Reset(mid_response=True)
    assert ResetProfile(when="before-response").decide(post(), 0) == Reset(mid_response=False)
    assert Timeout().decide(post(), 0) == Hang()
    slow = answer(Timeout(answer_after_s=2.5).decide(post(), 0))
    assert (slow.status, slow.delay_s) == (200, 2.5)


@pytest.mark.parametrize(
    ("profile", "knobs"),
    [
        (RateLimited(rate=0, burst=0), ["rate", "burst"]),
        (Flaky(error_rate=1.5, statuses=[404]), ["error_rate", "statuses"]),
        (Flaky(fail_first=-1), ["fail_first"]),
        (Outage(period_s=10, down_s=20, mode="sleep", status=42), ["down_s", "mode", "status"]),
        (Strict(event_pattern="(", max_string_length=0), ["event_pattern", "max_string_length"]),
        (Batch(max_events=0, max_bytes=0), ["max_events", "max_bytes"]),
        (Wtf(statuses=[], order="shuffle"), ["statuses", "order"]),
        (ResetProfile(when="later"), ["when"]),
        (Timeout(answer_after_s=-1), ["answer_after_s"]),
    ],
)
def test_bad_knobs_are_named(profile: Any, knobs: list[str]) -> None:
    assert [knob for knob, _ in profile.check()] == knobs
