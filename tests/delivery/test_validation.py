"""Pre-validation against the integration's rules: the pure table, the config, and the worker end to end."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from delivery.catalog import (
    EventNameRule,
    RequiredField,
    Rules,
    StringLengthRule,
    catalog,
)
from delivery.config import ConfigError, Destination, parse_config
from delivery.metrics import Metrics
from delivery.payload import body, headers
from delivery.precheck import Checked, CheckedJob, Fix, Rejection, check_event, check_job
from delivery.queue import Event, QueueDepth
from delivery.queue.sqlite import SqliteQueue
from delivery.sender import Sender
from delivery.worker import Worker
from ingest.taxonomy import ErrorClass
from tests.delivery.engine_process import serving

# -- the rules, one pure function --------------------------------------------------------------------

STRICT = Rules(
    types=frozenset({"identify", "track"}),
    required=(
        RequiredField("missing_user_id", ("userId",), "a userId"),
        RequiredField(
            "missing_email", ("traits.email", "context.traits.email"), "an email", frozenset({"identify"})
        ),
    ),
    event_name=EventNameRule(max_length=10, allowed="A-Za-z0-9_", fix=True),
    string_max_length=StringLengthRule(max_length=5, fix=True),
    max_event_bytes=400,
)
REFUSING = Rules(
    event_name=EventNameRule(max_length=10, allowed="A-Za-z0-9_", fix=False),
    string_max_length=StringLengthRule(max_length=5, fix=False),
)
LOWER = Rules(event_name=EventNameRule(max_length=20, allowed="a-z0-9_", lowercase=True, fix=True))


def track(name: str = "Signup", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": "m-1", "userId": "u-1", "event": name, **fields}


@pytest.mark.parametrize(
    ("rules", "event", "fixed", "fixes"),
    [
        pytest.param(STRICT, track(), {}, [], id="a good event is untouched"),
        pytest.param(
            STRICT,
            track("Order Done!"),
            {"event": "Order_Done"},
            [("event_name_pattern", "event")],
            id="name",
        ),
        pytest.param(
            STRICT,
            track("Very Long Event Name"),
            {"event": "Very_Long_"},
            [("event_name_pattern", "event")],
            id="name rewritten then cut",
        ),
        pytest.param(
            STRICT,
            track(properties={"plan": "enterprise", "n": 123456789, "ok": "short"}),
            {"properties": {"plan": "enter", "n": 123456789, "ok": "short"}},
            [("string_too_long", "properties.plan")],
            id="long property cut, numbers untouched",
        ),
        pytest.param(
            STRICT,
            track(properties={"items": [{"sku": "abcdefgh"}, "xyzxyzxyz"]}),
            {"properties": {"items": [{"sku": "abcde"}, "xyzxy"]}},
            [("string_too_long", "properties.items[0].sku"), ("string_too_long", "properties.items[1]")],
            id="nested strings cut",
        ),
        pytest.param(
            STRICT,
            {
                "type": "identify",
                "userId": "u",
                "traits": {"email": "a@b.example", "bio": "long text"},
                "context": {"ip": "0123456789", "traits": {"email": "c@d.example"}},
            },
            {
                "traits": {"email": "a@b.e", "bio": "long "},
                "context": {"ip": "0123456789", "traits": {"email": "c@d.e"}},
            },
            [
                ("string_too_long", "traits.email"),
                ("string_too_long", "traits.bio"),
                ("string_too_long", "context.traits.email"),
            ],
            id="traits cut, context outside traits untouched",
        ),
        pytest.param(
            STRICT,
            track(userId="a-user-id-longer-than-five"),
            {},
            [],
            id="ids are never cut",
        ),
        pytest.param(
            LOWER,
            track("Order Completed"),
            {"event": "order_completed"},
            [("event_name_pattern", "event")],
            id="lower",
        ),
        pytest.param(LOWER, track("order_completed"), {}, [], id="already lower"),
        pytest.param(
            STRICT, {"type": "identify", "userId": "u", "traits": {"email": "x@y"}}, {}, [], id="identify"
        ),
        pytest.param(
            Rules(event_name=EventNameRule(max_length=3)),
            track("ab cd!"),
            {"event": "ab "},
            [("event_name_pattern", "event")],
            id="any character, only cut",
        ),
        pytest.param(Rules(), track("Anything at all " * 10), {}, [], id="no rules"),
    ],
)
def test_fixable_events(
    rules: Rules, event: dict[str, Any], fixed: dict[str, Any], fixes: list[tuple[str, str]]
) -> None:
    original = json.loads(json.dumps(event))
    checked = check_event(event, rules)
    assert isinstance(checked, Checked)
    assert checked.event == {**event, **fixed}
    assert [(fix.rule, fix.path) for fix in checked.fixes] == fixes
    assert event == original  # never changed in place
    if not fixes:
        assert checked.event is event


@pytest.mark.parametrize(
    ("rules", "event", "code", "message"),
    [
        pytest.param(
            STRICT, {"type": "page", "userId": "u"}, "unsupported_type", "page calls are not", id="type"
        ),
        pytest.param(
            STRICT,
            {"type": "track", "anonymousId": "a", "event": "E"},
            "missing_user_id",
            "no value at userId: the integration needs a userId",
            id="no userId",
        ),
        pytest.param(STRICT, track(userId=""), "missing_user_id", "no value at userId", id="empty userId"),
        pytest.param(STRICT, track(userId=None), "missing_user_id", "no value at userId", id="null userId"),
        pytest.param(
            STRICT,
            {"type": "identify", "userId": "u", "traits": {"name": "n"}},
            "missing_email",
            "no value at traits.email or context.traits.email",
            id="identify without email",
        ),
        pytest.param(
            STRICT,
            {"type": "track", "userId": "u", "event": ""},
            "event_name_pattern",
            "the track call has no event name",
            id="empty name (even where names are fixed)",
        ),
        pytest.param(
            STRICT,
            {"type": "track", "userId": "u"},
            "event_name_pattern",
            "the track call has no event name",
            id="no name",
        ),
        pytest.param(
            REFUSING,
            track("Order Done!"),
            "event_name_pattern",
            "event name 'Order Done!' does not match ^[A-Za-z0-9_]{1,10}$; rename the event",
            id="name not fixed",
        ),
        pytest.param(
            REFUSING,
            track(properties={"secret_note": "a private long value"}),
            "string_too_long",
            "properties.secret_note is longer than the 5 characters",
            id="string not fixed",
        ),
        pytest.param(
            STRICT,
            track(properties={f"k{i}": i for i in range(60)}),
            "event_too_large",
            "more than the 400 the integration accepts",
            id="too large",
        ),
    ],
)
def test_unfixable_events(rules: Rules, event: dict[str, Any], code: str, message: str) -> None:
    rejection = check_event(event, rules)
    assert isinstance(rejection, Rejection)
    assert rejection.rule == code
    assert message in rejection.message
    assert rejection.verdict.error_class is ErrorClass.PRECHECK
    assert rejection.verdict.error_code == code and not rejection.verdict.retryable
    assert "a private long value" not in rejection.message  # values are never quoted


def test_the_first_rule_broken_decides() -> None:
    rejection = check_event({"type": "page", "event": "bad name!!!!!!!!"}, STRICT)
    assert isinstance(rejection, Rejection) and rejection.rule == "unsupported_type"


def test_size_is_measured_after_the_fixes() -> None:
    rules = Rules(string_max_length=StringLengthRule(max_length=5), max_event_bytes=100)
    assert isinstance(check_event(track(properties={"text": "x" * 200}), rules), Checked)
    assert isinstance(
        check_event(track(properties={"text": "x" * 200}), Rules(max_event_bytes=100)), Rejection
    )


def stored(message_id: str, **message: Any) -> Event:
    payload = json.dumps({"messageId": message_id, **message}, separators=(",", ":")).encode()
    return Event(message_id, "acme", "web", str(message["type"]), message.get("event"), payload, 0.0)


def test_a_job_is_sent_with_its_fixed_events() -> None:
    good = stored("m-1", type="track", userId="u", event="Fine")
    bad = stored("m-2", type="track", userId="u", event="Not fine")
    checked = check_job([good, bad], STRICT)
    assert isinstance(checked, CheckedJob)
    assert checked.events[0] is good
    assert json.loads(checked.events[1].payload)["event"] == "Not_fine"
    assert checked.events[1].message_id == "m-2"
    assert checked.fixes == (Fix("event_name_pattern", "event"),)


def test_one_unfixable_event_skips_its_job_and_is_named() -> None:
    good = stored("m-1", type="track", userId="u", event="Fine")
    anonymous = stored("m-2", type="track", anonymousId="a", event="Fine")
    rejection = check_job([good, anonymous], STRICT)
    assert isinstance(rejection, Rejection)
    assert rejection.rule == "missing_user_id"
    assert rejection.message.startswith("message m-2: no value at userId")


def test_without_rules_events_are_not_read() -> None:
    unreadable = Event("m", "acme", "web", "track", "E", b"not json", 0.0)
    checked = check_job([unreadable], Rules())
    assert isinstance(checked, CheckedJob) and checked.events == (unreadable,)


# -- the catalog in the config ----------------------------------------------------------------------


def config_with(**destination: Any) -> Mapping[str, Any]:
    return {
        "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_web"}],
        "destinations": [{"id": "d", "source": "web", "url": "https://partner.example/in", **destination}],
    }


def problems(**destination: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_with(**destination))
    return list(caught.value.problems)


def only(**destination: Any) -> Destination:
    return parse_config(config_with(**destination)).destinations[0]


def test_every_integration_can_be_configured() -> None:
    for name, entry in catalog().items():
        credential = {} if entry.auth.scheme == "none" else {"credential": "token-123"}
        destination = only(integration=name, **credential)
        assert destination.spec is entry
        assert destination.max_batch_events == (entry.batching.default_events if entry.batching else 1)
        assert destination.rate_limit_per_s == (entry.rate_limit.per_s if entry.rate_limit else None)
        assert destination.rate_limit_burst == (entry.rate_limit.burst if entry.rate_limit else None)


def test_the_integrations_defaults() -> None:
    crm = only(integration="crm-records", credential="tok")
    assert (crm.max_batch_events, crm.max_batch_bytes, crm.rate_limit_per_s, crm.rate_limit_burst) == (
        100,
        256_000,
        10,
        10,
    )
    warehouse = only(integration="warehouse-stream", credential="tok")
    assert warehouse.max_batch_bytes == 500_000  # the engine's ceiling, under the partner's 4 MB
    webhook = only(integration="webhook")
    assert (webhook.max_batch_events, webhook.rate_limit_per_s, webhook.credential) == (1, None, None)


def test_overrides_within_bounds() -> None:
    crm = only(
        integration="crm-records",
        credential="tok",
        max_batch_events=20,
        max_batch_bytes=64_000,
        rate_limit_per_s=2.5,
    )
    assert (crm.max_batch_events, crm.max_batch_bytes, crm.rate_limit_per_s, crm.rate_limit_burst) == (
        20,
        64_000,
        2.5,
        3,
    )
    hook = only(integration="webhook", rate_limit_per_s=50, rate_limit_burst=80)
    assert (hook.rate_limit_per_s, hook.rate_limit_burst) == (50, 80)


def test_a_rate_above_the_documented_limit_is_a_warning() -> None:
    config = parse_config(config_with(integration="crm-records", credential="tok", rate_limit_per_s=40))
    assert config.destinations[0].rate_limit_per_s == 40
    assert any(
        "destinations[0].rate_limit_per_s: 40 is above the 10/s that 'crm-records' documents" in w
        for w in config.warnings
    )


@pytest.mark.parametrize(
    ("destination", "problem"),
    [
        (
            {"integration": "crm-record", "credential": "t"},
            "destinations[0].integration: unknown integration 'crm-record' (did you mean 'crm-records'?)",
        ),
        (
            {"integration": "acme-analytics"},
            "destinations[0].integration: unknown integration 'acme-analytics'",
        ),
        (
            {"integration": "crm-records"},
            "destinations[0].credential: required by integration 'crm-records' "
            "(sent as Authorization: Bearer <credential>)",
        ),
        (
            {"integration": "support-tickets"},
            "destinations[0].credential: required by integration 'support-tickets' "
            "(sent as X-Helpdesk-Token: <credential>)",
        ),
        (
            {"integration": "webhook", "credential": "t"},
            "destinations[0].credential: integration 'webhook' takes no credential",
        ),
        (
            {"integration": "crm-records", "credential": "t", "headers": {"authorization": "Bearer x"}},
            "destinations[0].headers.authorization: set from credential for integration 'crm-records'",
        ),
        (
            {"integration": "crm-records", "credential": "t", "max_batch_events": 500},
            "destinations[0].max_batch_events: must be at most 100, the most 'crm-records' takes",
        ),
        (
            {"integration": "crm-records", "credential": "t", "max_batch_events": 0},
            "destinations[0].max_batch_events: must be at least 1, got 0",
        ),
        (
            {"integration": "ads-conversions", "credential": "t", "max_batch_events": 10},
            "destinations[0].max_batch_events: integration 'ads-conversions' takes one event per request",
        ),
        (
            {"integration": "crm-records", "credential": "t", "max_batch_bytes": 1000},
            "destinations[0].max_batch_bytes: must be at least 32768, got 1000",
        ),
        (
            {"integration": "crm-records", "credential": "t", "max_batch_bytes": 300_000},
            "destinations[0].max_batch_bytes: must not exceed the 256000 bytes 'crm-records' takes",
        ),
        (
            {"integration": "warehouse-stream", "credential": "t", "max_batch_bytes": 1_000_000},
            "destinations[0].max_batch_bytes: must not exceed engine.max_batch_bytes (500000)",
        ),
        (
            {"integration": "crm-records", "credential": "t", "rate_limit_per_s": 0},
            "destinations[0].rate_limit_per_s: must be above 0 and at most 10000, got 0",
        ),
        (
            {"integration": "crm-records", "credential": "t", "rate_limit_per_s": 1e9},
            "destinations[0].rate_limit_per_s: must be above 0 and at most 10000",
        ),
        (
            {"integration": "crm-records", "credential": "t", "rate_limit_per_s": "10"},
            "destinations[0].rate_limit_per_s: must be a number, got '10' (a string)",
        ),
        (
            {"integration": "webhook", "rate_limit_burst": 5},
            "destinations[0].rate_limit_burst: needs rate_limit_per_s",
        ),
        (
            {"integration": "crm-records", "credential": "t", "rate_limit_burst": 0},
            "destinations[0].rate_limit_burst: must be at least 1, got 0",
        ),
    ],
)
def test_config_problems(destination: dict[str, Any], problem: str) -> None:
    found = problems(**destination)
    assert any(line.startswith(problem) for line in found), found


def test_a_credential_is_never_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_with(integration="webhook", credential="very-secret-value"))
    assert "very-secret-value" not in str(caught.value)
    destination = only(integration="crm-records", credential="very-secret-value")
    assert "very-secret-value" not in repr(destination)


def test_the_credential_goes_where_the_auth_scheme_says() -> None:
    assert headers(only(integration="crm-records", credential="tok"))["Authorization"] == "Bearer tok"
    assert headers(only(integration="ads-conversions", credential="k"))["X-Api-Key"] == "k"
    basic = headers(only(integration="email-campaigns", credential="key-1"))["Authorization"]
    assert basic == "Basic " + base64.b64encode(b"key-1:").decode()
    assert headers(only(integration="webhook", headers={"X-Token": "t"})) == {
        "Content-Type": "application/json",
        "X-Token": "t",
    }


def test_the_body_follows_the_request_shape() -> None:
    event = stored("m-1", type="track", userId="u", event="E")
    assert body([event], catalog()["webhook"].request) == event.payload
    assert body([event], catalog()["ads-conversions"].request) == event.payload
    assert json.loads(body([event], catalog()["crm-records"].request)) == {
        "batch": [json.loads(event.payload)]
    }
    with pytest.raises(ValueError, match="takes one event"):
        body([event, event], catalog()["support-tickets"].request)


# -- end to end: the worker over a loopback partner ---------------------------------------------------


#: The strict partner's own event-name rule (as its API documents it; the catalog says the same).
PARTNER_EVENT_NAME = re.compile(r"[A-Za-z0-9_]{1,40}")


class StrictPartner(http.server.ThreadingHTTPServer):
    """A crm-records-like partner: answers 400 to any event name outside its pattern, else 200."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _PartnerHandler)
        self.received: list[tuple[dict[str, str], Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/records"


class _PartnerHandler(http.server.BaseHTTPRequestHandler):
    server: StrictPartner

    def do_POST(self) -> None:
        document = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append((dict(self.headers), document))
        bad = [e for e in document["batch"] if not PARTNER_EVENT_NAME.fullmatch(e.get("event", "ok"))]
        status, reply = (400, b'{"error":"event_name_pattern"}') if bad else (200, b'{"ok":true}')
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def partner() -> Iterator[StrictPartner]:
    with serving(StrictPartner()) as server:
        yield server


def test_the_worker_sends_fixed_events_and_skips_unfixable_ones(
    tmp_path: Path, partner: StrictPartner
) -> None:
    config = parse_config(
        {
            "engine": {"data_dir": str(tmp_path), "allow_private_targets": True, "backoff_jitter": 0},
            "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_web"}],
            "destinations": [
                {
                    "id": "crm",
                    "source": "web",
                    "integration": "crm-records",
                    "url": partner.url,
                    "credential": "crm-secret-token",
                    "max_batch_events": 1,
                }
            ],
        }
    )
    queue = SqliteQueue(tmp_path)
    metrics = Metrics()
    now = time.time()
    fixable = stored(
        "m-fix", type="track", userId="u-1", event="Order Completed!", properties={"note": "x" * 300}
    )
    unfixable = stored("m-anon", type="track", anonymousId="a-1", event="Order Completed")
    good = stored("m-good", type="identify", userId="u-2", traits={"name": "Ada"})
    events = [
        Event(e.message_id, e.workspace_id, e.source_id, e.type, e.name, e.payload, now)
        for e in (fixable, unfixable, good)
    ]
    queue.enqueue(events, {"web": ["crm"]})

    async def deliver() -> None:
        async with Sender(request_timeout_s=5, limit=10, limit_per_host=10) as sender:
            worker = Worker(
                config,
                queue,
                sender,
                owner="test",
                on_settled=metrics.record,
                on_fixed=metrics.record_fixes,
            )
            stop = asyncio.Event()
            run = asyncio.create_task(worker.run(stop))
            deadline = time.monotonic() + 8
            while sum(queue.depth().by_state.values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(run, 8)

    try:
        asyncio.run(deliver())
        rows: list[dict[str, Any]] = []
        while (batch := queue.outbox_batch(100)) is not None:
            rows += batch.rows
            queue.outbox_ack(batch.batch_id)
    finally:
        queue.close()

    # Two requests reached the partner, none for the anonymous event; the fixed one arrived fixed.
    assert len(partner.received) == 2
    sent = {
        document["batch"][0]["messageId"]: (head, document["batch"][0]) for head, document in partner.received
    }
    assert set(sent) == {"m-fix", "m-good"}
    head, fixed = sent["m-fix"]
    assert fixed["event"] == "Order_Completed_"
    assert fixed["properties"]["note"] == "x" * 255
    assert head["Authorization"] == "Bearer crm-secret-token"
    assert sent["m-good"][1] == json.loads(good.payload)  # a good event is sent as it was stored

    by_message = {row["events"][0]["message_id"]: row for row in rows}
    assert len(rows) == 3
    delivered = by_message["m-fix"]
    assert (delivered["outcome"], delivered["status_code"], delivered["error_message"]) == (
        "delivered",
        200,
        None,
    )
    assert delivered["events"][0]["name"] == "Order Completed!"  # the name as the customer sent it
    skipped = by_message["m-anon"]
    assert (skipped["attempt"], skipped["outcome"], skipped["error_class"], skipped["error_code"]) == (
        0,
        "skipped",
        "precheck",
        "missing_user_id",
    )
    assert skipped["retryable"] is False
    assert (
        skipped["request_bytes"] is None and skipped["duration_ms"] is None and skipped["status_code"] is None
    )
    assert skipped["error_message"].startswith("no value at userId: the integration needs a userId")
    assert by_message["m-good"]["outcome"] == "delivered"

    assert metrics.precheck_fixes == {
        ("crm-records", "event_name_pattern"): 1,
        ("crm-records", "string_too_long"): 1,
    }
    assert metrics.precheck_skips == {("crm-records", "missing_user_id"): 1}
    text = metrics.render(QueueDepth(by_state={}, by_destination={}, outbox_rows=0))
    assert 'deliverydash_precheck_fixes_total{integration="crm-records",rule="event_name_pattern"} 1' in text
    assert 'deliverydash_precheck_skipped_total{integration="crm-records",rule="missing_user_id"} 1' in text


def test_precheck_metric_labels_stay_in_closed_sets() -> None:
    metrics = Metrics()
    metrics.record(
        {"error_class": "precheck", "outcome": "skipped", "integration": "ws-1", "error_code": "x"}
    )
    metrics.record(
        {
            "error_class": "precheck",
            "outcome": "skipped",
            "integration": "unknown",
            "error_code": "unknown_destination",
        }
    )
    metrics.record_fixes("crm-records", [Fix("event_name_pattern", "event"), Fix("made_up", "p")])
    assert metrics.precheck_skips == {("other", "other"): 1, ("unknown", "unknown_destination"): 1}
    assert metrics.precheck_fixes == {("crm-records", "event_name_pattern"): 1, ("crm-records", "other"): 1}


def test_prechecks_prevent_the_simulated_strict_partners_400s(tmp_path: Path) -> None:
    """The same events to the partner simulator's strict partner: raw (webhook) and checked (crm-records)."""
    from deliverydash.partner_simulator.config import parse_partners
    from deliverydash.partner_simulator.servers import partners_in_thread

    partners = parse_partners(
        {
            "control_port": 0,
            "partners": [
                {
                    "name": "records",
                    "profile": "strict",
                    "port": 0,
                    "event_pattern": PARTNER_EVENT_NAME.pattern,
                    "max_string_length": 255,
                }
            ],
        }
    )
    now = time.time()
    stamp = "2026-11-28T00:00:00Z"
    messages = [
        stored("m-fix", type="track", userId="u-1", event="Order Completed!", timestamp=stamp),
        stored(
            "m-long",
            type="track",
            userId="u-2",
            event="Signed_Up",
            properties={"n": "x" * 300},
            timestamp=stamp,
        ),
        stored("m-good", type="track", userId="u-3", event="Order_Completed", timestamp=stamp),
    ]
    events = [
        Event(e.message_id, e.workspace_id, e.source_id, e.type, e.name, e.payload, now) for e in messages
    ]
    with partners_in_thread(partners.partners, control_port=None) as running:
        url = running.url("records")
        checked = {"integration": "crm-records", "credential": "crm-secret-token", "max_batch_events": 1}
        config = parse_config(
            {
                "engine": {"data_dir": str(tmp_path), "allow_private_targets": True, "max_attempts": 1},
                "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_web"}],
                "destinations": [
                    {"id": "checked", "source": "web", "url": url, **checked},
                    {"id": "raw", "source": "web", "integration": "webhook", "url": url},
                ],
            }
        )
        queue = SqliteQueue(tmp_path)
        queue.enqueue(events, {"web": ["checked", "raw"]})

        async def deliver() -> None:
            async with Sender(request_timeout_s=5, limit=10, limit_per_host=10) as sender:
                worker = Worker(config, queue, sender, owner="test")
                stop = asyncio.Event()
                run = asyncio.create_task(worker.run(stop))
                deadline = time.monotonic() + 8
                while sum(queue.depth().by_state.values()) and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                stop.set()
                await asyncio.wait_for(run, 8)

        try:
            asyncio.run(deliver())
            rows: list[dict[str, Any]] = []
            while (batch := queue.outbox_batch(100)) is not None:
                rows += batch.rows
                queue.outbox_ack(batch.batch_id)
        finally:
            queue.close()
        stats = running.stats("records")

    statuses = {(row["destination_id"], row["events"][0]["message_id"]): row["status_code"] for row in rows}
    # Unchecked, the two faulty events are refused; checked, both are fixed and accepted.
    assert statuses[("raw", "m-fix")] == 400 and statuses[("raw", "m-long")] == 400
    assert {statuses[("checked", m)] for m in ("m-fix", "m-long", "m-good")} == {200}
    assert stats.requests == 6 and stats.statuses[400] == 2
