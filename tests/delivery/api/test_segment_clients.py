"""What Segment's browser and mobile libraries send, over sockets: short paths, text/plain, CORS, settings.

The bodies and headers are the libraries' own, read from their sources:
analytics.js (`@segment/analytics-next` 1.84: `plugins/segmentio`, the
standard and batching dispatchers), navigator.sendBeacon (analytics.js
classic's beacon mode), analytics-swift (`DirectoryStore` and `HTTPClient`)
and analytics-kotlin (`StorageImpl`, `HTTPClient.upload`). The real
analytics.js in a real browser is test_analytics_js.py.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from delivery.config import parse_config
from delivery.queue.sqlite import SqliteQueue
from tests.delivery.api.test_tracking_api import (
    Engine,
    Switch,
    assert_error,
    assert_success,
    basic,
    make_app,
    raw_request,
    serving,
)

SHOP, ANYWHERE, SERVER = "wk_shop_web", "wk_blog_web", "wk_backend"
SHOP_PAGE = "https://shop.example.com"
CONFIG = parse_config(
    {
        "sources": [
            {
                "id": "shop",
                "workspace": "acme",
                "write_key": SHOP,
                "allowed_origins": [SHOP_PAGE, "https://*.example.org"],
            },
            {"id": "blog", "workspace": "acme", "write_key": ANYWHERE},  # every page, the default
            {"id": "backend", "workspace": "acme", "write_key": SERVER, "allowed_origins": []},
        ],
        "destinations": [
            {
                "id": "hook-shop",
                "source": "shop",
                "integration": "webhook",
                "url": "https://a.example.com/in",
            },
            {
                "id": "hook-blog",
                "source": "blog",
                "integration": "webhook",
                "url": "https://b.example.com/in",
            },
            {
                "id": "hook-back",
                "source": "backend",
                "integration": "webhook",
                "url": "https://c.example.com/in",
            },
        ],
    }
)
#: Source -> its one destination.
DESTINATION = {"shop": "hook-shop", "blog": "hook-blog", "backend": "hook-back"}
#: What analytics-next 1.84's dispatchers send with every event (shared-dispatcher.ts).
TEXT_PLAIN = {"Content-Type": "text/plain"}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Switch]]:
    switch = Switch()
    with serving(switch) as url:
        yield url, switch


@pytest.fixture
def engine(server: tuple[str, Switch], tmp_path: Path) -> Iterator[Engine]:
    url, switch = server
    queue = SqliteQueue(tmp_path)
    switch.app = make_app(queue, CONFIG)
    yield Engine(url, queue, switch.app)
    switch.app = None
    queue.close()


@pytest.fixture
def http(engine: Engine) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=engine.url, timeout=10) as client:
        yield client


def ajs_event(call: str, write_key: str, **fields: Any) -> dict[str, Any]:
    """An event as analytics-next's Segment.io plugin posts it (`normalize`), `sentAt` included."""
    return {
        "timestamp": "2026-11-27T09:59:58.120Z",
        "integrations": {},
        "type": call,
        "properties": {},
        "context": {
            "page": {
                "path": "/cart",
                "referrer": "",
                "search": "",
                "title": "Cart",
                "url": f"{SHOP_PAGE}/cart",
            },
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0.0.0",
            "locale": "en-US",
            "library": {"name": "analytics.js", "version": "next-1.84.3"},
            "timezone": "Europe/Paris",
        },
        "messageId": f"ajs-next-{call}",
        "anonymousId": "5e1f2a3b-0000-4000-8000-000000000001",
        "writeKey": write_key,
        "userId": None,
        "sentAt": "2026-11-27T10:00:00.000Z",
        "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
        **fields,
    }


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.startswith("access-control-")}


# -- analytics.js ------------------------------------------------------------------------------


#: (short path, the call analytics.js sends there, its fields)
SHORT = [
    ("/v1/t", "track", {"event": "Order Completed", "properties": {"revenue": 9.5}}),
    ("/v1/p", "page", {"name": "Cart", "category": None}),
    ("/v1/i", "identify", {"userId": "user-42", "traits": {"plan": "pro"}}),
    ("/v1/g", "group", {"groupId": "acme-inc", "traits": {}}),
    ("/v1/a", "alias", {"userId": "user-42", "previousId": "5e1f2a3b-0000-4000-8000-000000000001"}),
    ("/v1/s", "screen", {"name": "Checkout"}),
]


@pytest.mark.parametrize(("path", "call", "fields"), SHORT, ids=[path for path, _, _ in SHORT])
def test_analytics_js_posts_each_call_to_its_short_path(
    engine: Engine, http: httpx.Client, path: str, call: str, fields: dict[str, Any]
) -> None:
    event = ajs_event(call, SHOP, **fields)
    # analytics-next 1.84 sends the key both ways (older versions only in the body).
    headers = {**TEXT_PLAIN, **basic(SHOP), "Origin": SHOP_PAGE}
    response = http.post(path, content=json.dumps(event), headers=headers)
    assert_success(response)
    assert cors_headers(response)["access-control-allow-origin"] == SHOP_PAGE
    [stored] = engine.stored()
    assert (stored.type, stored.source_id, stored.message_id) == (call, "shop", event["messageId"])
    payload = json.loads(stored.payload)
    assert "writeKey" not in payload
    assert payload["_metadata"] == event["_metadata"] and payload["context"]["page"]["path"] == "/cart"
    # The device's clock: 1.88 s between the event and sending it, on the server's clock.
    assert payload["timestamp"] == "2026-11-27T11:59:58.120Z"


@pytest.mark.parametrize("path", ["/v1/t", "/v1/track"])
def test_a_text_plain_body_with_the_write_key_inside_is_enough(
    engine: Engine, http: httpx.Client, path: str
) -> None:
    # What older analytics.js versions send: a "simple" request, no preflight, no Authorization.
    body = json.dumps({"writeKey": ANYWHERE, "userId": "u1", "event": "Signed Up"})
    assert_success(http.post(path, content=body, headers=TEXT_PLAIN))
    assert list(engine.events().values()) == [{"hook-blog"}]


def test_analytics_js_batching_mode_posts_a_batch_to_b(engine: Engine, http: httpx.Client) -> None:
    # batched-dispatcher.ts: each event loses its own sentAt, the batch has one, and the key
    # comes as Basic auth and at the top level, besides each event's own.
    events = [ajs_event("track", SHOP, event=f"Step {i}", messageId=f"ajs-next-b{i}") for i in range(3)]
    for event in events:
        del event["sentAt"]
    body = {"writeKey": SHOP, "batch": events, "sentAt": "2026-11-27T10:00:00.000Z"}
    headers = {**TEXT_PLAIN, **basic(SHOP), "Origin": SHOP_PAGE}
    response = http.post("/v1/b", content=json.dumps(body), headers=headers)
    assert_success(response)
    assert cors_headers(response)["access-control-allow-origin"] == SHOP_PAGE
    payloads = engine.payloads()
    assert set(payloads) == {"ajs-next-b0", "ajs-next-b1", "ajs-next-b2"}
    for payload in payloads.values():
        assert "writeKey" not in payload
        assert payload["sentAt"] == "2026-11-27T10:00:00.000Z"
        assert payload["timestamp"] == "2026-11-27T11:59:58.120Z"


def test_a_beacon_is_taken(engine: Engine, http: httpx.Client) -> None:
    # navigator.sendBeacon(url, string): text/plain;charset=UTF-8, no credentials header,
    # no preflight; analytics.js classic's beacon mode sent each call so.
    event = ajs_event("page", ANYWHERE, name="Leaving")
    headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://blog.example.net"}
    assert_success(http.post("/v1/p", content=json.dumps(event), headers=headers))
    assert engine.events() == {event["messageId"]: {"hook-blog"}}


# -- CORS ----------------------------------------------------------------------------------------


def preflight(http: httpx.Client, path: str, origin: str, **more: str) -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST", **more}
    return http.options(path, headers=headers)


@pytest.mark.parametrize("path", ["/v1/t", "/v1/b", "/v1/track", "/v1/batch", "/v1/import"])
@pytest.mark.parametrize("origin", [SHOP_PAGE, "https://eu.shop.example.org", "https://anything.example"])
def test_a_preflight_from_a_page_some_source_allows_is_granted(
    engine: Engine, http: httpx.Client, path: str, origin: str
) -> None:
    asked = {"Access-Control-Request-Headers": "authorization,content-type"}
    response = preflight(http, path, origin, **asked)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert cors_headers(response) == {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": "POST",
        "access-control-allow-headers": "authorization,content-type",
        "access-control-max-age": "7200",
        "access-control-expose-headers": "Retry-After",
    }
    assert {name.strip() for name in response.headers["vary"].split(",")} == {
        "Origin",
        "Access-Control-Request-Method",
        "Access-Control-Request-Headers",
    }
    assert response.headers["allow"] == "OPTIONS, POST"
    assert engine.jobs() == []


def test_a_preflight_from_a_page_no_source_allows_is_refused(server: tuple[str, Switch]) -> None:
    url, switch = server
    config = parse_config(
        {"sources": [{"id": "shop", "workspace": "acme", "write_key": SHOP, "allowed_origins": [SHOP_PAGE]}]}
    )
    switch.app = refusing = make_app(None, config)  # a preflight reaches no queue
    with httpx.Client(base_url=url, timeout=10) as client:
        response = preflight(client, "/v1/t", "https://evil.example")
        assert_error(response, 403, "origin_not_allowed")
        assert "https://evil.example" in response.json()["message"]
        assert cors_headers(response) == {}  # the browser stops here
        # A look-alike of an allowed page is another page.
        for lookalike in ("http://shop.example.com", "https://shop.example.com.evil.example"):
            assert_error(preflight(client, "/v1/t", lookalike), 403, "origin_not_allowed")
        assert preflight(client, "/v1/t", SHOP_PAGE).status_code == 204
    switch.app = None
    assert refusing.state.context.stats.requests_rejected == Counter({"origin_not_allowed": 3})


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
@pytest.mark.parametrize("path", ["/v1/t", "/v1/track", "/v1/b"])
def test_a_request_from_a_page_its_source_does_not_allow_is_refused_and_stored_nowhere(
    engine: Engine, http: httpx.Client, origin: str, path: str
) -> None:
    # A text/plain POST gets no preflight: the engine's own check is what stops it.
    body = ajs_event("track", SHOP, event="Forged")
    if path == "/v1/b":
        body = {"batch": [body], "writeKey": SHOP}
    response = http.post(path, content=json.dumps(body), headers={**TEXT_PLAIN, "Origin": origin})
    assert_error(response, 403, "origin_not_allowed")
    # The blog takes every page, so this page may read why the shop refused it.
    assert cors_headers(response)["access-control-allow-origin"] == origin
    assert engine.jobs() == []
    assert engine.stats.requests_rejected == Counter({"origin_not_allowed": 1})


def test_a_basic_auth_key_is_judged_before_the_body_is_read(engine: Engine, http: httpx.Client) -> None:
    response = http.post(
        "/v1/t", content=b"not even JSON", headers={**basic(SHOP), "Origin": "https://evil.example"}
    )
    assert_error(response, 403, "origin_not_allowed")


def test_a_server_source_takes_no_browser_and_every_server(engine: Engine, http: httpx.Client) -> None:
    body = json.dumps({"writeKey": SERVER, "userId": "u1", "event": "Invoice Paid"})
    assert_error(
        http.post("/v1/track", content=body, headers={"Origin": SHOP_PAGE}), 403, "origin_not_allowed"
    )
    assert engine.jobs() == []
    assert_success(http.post("/v1/track", content=body))  # no Origin: not a browser
    assert list(engine.events().values()) == [{"hook-back"}]


def test_answers_without_an_origin_carry_no_cors_headers(engine: Engine, http: httpx.Client) -> None:
    body = json.dumps({"writeKey": SHOP, "userId": "u1", "event": "E"})
    response = http.post("/v1/track", content=body)
    assert_success(response)
    assert cors_headers(response) == {} and "vary" not in response.headers
    plain = http.options("/v1/track")  # no Origin: a question about the methods
    assert (plain.status_code, plain.headers["allow"], cors_headers(plain)) == (204, "OPTIONS, POST", {})


@pytest.mark.parametrize("path", ["/admin/status", "/healthz", "/metrics", "/openapi.json"])
def test_nothing_outside_the_tracking_api_is_cors_enabled(http: httpx.Client, path: str) -> None:
    response = http.get(path, headers={"Origin": "https://anything.example"})
    assert cors_headers(response) == {}
    assert http.options(path, headers={"Origin": "https://anything.example"}).status_code == 405


def test_a_page_reads_the_errors_of_the_sources_it_may_send_to(engine: Engine, http: httpx.Client) -> None:
    headers = {**TEXT_PLAIN, "Origin": SHOP_PAGE}
    unknown = http.post("/v1/t", content=json.dumps({"writeKey": "wk_nope", "userId": "u"}), headers=headers)
    assert_error(unknown, 401, "invalid_write_key")
    invalid = http.post("/v1/t", content=json.dumps({"writeKey": SHOP, "userId": "u"}), headers=headers)
    assert_error(invalid, 400, "missing_event")
    for response in (unknown, invalid):
        assert cors_headers(response)["access-control-allow-origin"] == SHOP_PAGE


# -- the source settings ---------------------------------------------------------------------------


def test_the_settings_point_the_library_at_the_engine(engine: Engine, http: httpx.Client) -> None:
    response = http.get(f"/v1/projects/{SHOP}/settings", headers={"Origin": SHOP_PAGE})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "max-age=300"
    assert cors_headers(response)["access-control-allow-origin"] == SHOP_PAGE
    assert response.headers["vary"] == "Origin"
    settings = response.json()
    host = engine.url.removeprefix("http://")
    assert settings["integrations"] == {
        "Segment.io": {
            "apiKey": SHOP,
            "apiHost": f"{host}/v1",
            "protocol": "http",
            "unbundledIntegrations": [],
            "addBundledMetadata": True,
            "maybeBundledConfigIds": {},
        }
    }
    # Nothing more to load, and no telemetry to Segment.
    assert settings["metrics"] == {"sampleRate": 0}
    assert settings["remotePlugins"] == [] and settings["enabledMiddleware"] == {}
    assert settings["legacyVideoPluginsEnabled"] is False
    # Where the settings send the library, it is taken.
    api = settings["integrations"]["Segment.io"]
    event = json.dumps(ajs_event("track", SHOP, event="E"))
    sent = httpx.post(f"{api['protocol']}://{api['apiHost']}/t", content=event, headers=TEXT_PLAIN)
    assert_success(sent)


def test_the_settings_name_the_address_the_request_came_to(engine: Engine) -> None:
    # A TLS proxy in front (uvicorn trusts X-Forwarded-Proto from loopback by default).
    head = (
        f"GET /v1/projects/{ANYWHERE}/settings HTTP/1.1\r\nHost: events.example.com\r\n"
        "X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
    )
    status, _, body = raw_request(engine.url, head.encode())
    api = json.loads(body)["integrations"]["Segment.io"]
    assert (status, api["apiHost"], api["protocol"]) == (200, "events.example.com/v1", "https")


@pytest.mark.parametrize("host", ["events.example.com/evil", "a b", "", "[::1"])
def test_the_settings_need_a_host_to_name(engine: Engine, host: str) -> None:
    head = f"GET /v1/projects/{ANYWHERE}/settings HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    status, _, body = raw_request(engine.url, head.encode())
    assert (status, json.loads(body)["code"]) == (400, "invalid_header")


def test_the_settings_of_an_unknown_key_and_for_a_refused_page(
    engine: Engine, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    near_miss = SHOP + "x"
    assert_error(http.get(f"/v1/projects/{near_miss}/settings"), 401, "invalid_write_key")
    refused = http.get(f"/v1/projects/{SHOP}/settings", headers={"Origin": "https://evil.example"})
    assert_error(refused, 403, "origin_not_allowed")
    assert_error(
        http.get(f"/v1/projects/{SERVER}/settings", headers={"Origin": SHOP_PAGE}), 403, "origin_not_allowed"
    )
    assert http.get(f"/v1/projects/{SERVER}/settings").status_code == 200  # a mobile app sends no Origin
    # The key is in the path, which the app never logs (the engine runs uvicorn without its
    # access log, `delivery.engine.engine_server`; the client's own log is its business).
    engine_log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("delivery"))
    assert "GET /v1/projects/{writeKey}/settings: 401 invalid_write_key" in engine_log
    assert SHOP not in engine_log


# -- the mobile libraries ------------------------------------------------------------------------


def mobile_event(library: str, call: str, message_id: str, **fields: Any) -> dict[str, Any]:
    """An event as analytics-swift and analytics-kotlin store it (no writeKey, no sentAt of its own)."""
    return {
        "type": call,
        "anonymousId": "B5A1C2D3-0000-4000-8000-000000000002",
        "messageId": message_id,
        "userId": "user-42",
        "timestamp": "2026-11-27T09:59:50.500Z",
        "context": {
            "library": {"name": library, "version": "1.6.0"},
            "app": {"name": "Shop", "version": "3.1", "build": "31"},
            "device": {"manufacturer": "Apple", "type": "ios"},
            "os": {"name": "iOS", "version": "18.1"},
            "instanceId": "2E1D0000-0000-4000-8000-000000000003",
        },
        "integrations": {},
        "_metadata": {"bundled": [], "unbundled": [], "bundledIds": []},
        **fields,
    }


def test_analytics_swift_uploads_its_batch_file(engine: Engine, http: httpx.Client) -> None:
    # DirectoryStore: a header line, one event per line, commas leading, and the ending
    # with sentAt and the key; HTTPClient: JSON content type, no Authorization, no gzip.
    events = [
        mobile_event("analytics-swift", "screen", "s-1", name="Cart", properties={}),
        mobile_event("analytics-swift", "track", "s-2", event="Checkout Started", properties={"items": 2}),
    ]
    lines = ['{ "batch": [', json.dumps(events[0]), "," + json.dumps(events[1])]
    ending = '],"sentAt":"2026-11-27T10:00:00.000Z","writeKey":"' + ANYWHERE + '"}'
    body = "\n".join([*lines, ending]) + "\n"
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "analytics-ios/1.6.0",
        "Accept-Encoding": "gzip",
    }
    assert_success(http.post("/v1/b", content=body.encode(), headers=headers))
    payloads = engine.payloads()
    assert {key: payload["type"] for key, payload in payloads.items()} == {"s-1": "screen", "s-2": "track"}
    # 9.5 s before sending on the device's clock, on the server's.
    assert {payload["timestamp"] for payload in payloads.values()} == {"2026-11-27T11:59:50.500Z"}


def test_analytics_kotlin_uploads_its_batch_gzipped_in_chunks(engine: Engine, http: httpx.Client) -> None:
    # StorageImpl's file, streamed through a GZIPOutputStream with chunked transfer;
    # text/plain, no Authorization. SegmentInstant writes milliseconds and a Z.
    events = [
        mobile_event("analytics-kotlin", "identify", "k-1", traits={"plan": "pro"}),
        mobile_event("analytics-kotlin", "track", "k-2", event="Item Viewed", properties={"sku": "X-1"}),
    ]
    body = '{"batch":[' + ",".join(json.dumps(e) for e in events) + '],"sentAt":"2026-11-27T10:00:00.000Z",'
    body += f'"writeKey":"{ANYWHERE}"}}'
    packed = gzip.compress(body.encode())
    chunks = iter([packed[:10], packed[10:]])
    headers = {
        "Content-Type": "text/plain",
        "Content-Encoding": "gzip",
        "User-Agent": "analytics-kotlin/1.19.1",
    }
    response = http.post("/v1/b", content=chunks, headers=headers)
    assert_success(response)
    assert set(engine.payloads()) == {"k-1", "k-2"}
    assert {event.type for event in engine.stored()} == {"identify", "track"}


def test_the_mobile_libraries_fetch_the_settings(engine: Engine, http: httpx.Client) -> None:
    # analytics-kotlin sends a JSON content type on its GET; analytics-swift a User-Agent.
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "analytics-kotlin/1.19.1"}
    response = http.get(f"/v1/projects/{ANYWHERE}/settings", headers=headers)
    assert response.status_code == 200
    assert response.json()["integrations"]["Segment.io"]["apiKey"] == ANYWHERE


def test_a_write_key_in_basic_auth_and_in_a_mobile_batch_must_agree(
    engine: Engine, http: httpx.Client
) -> None:
    body = {"batch": [mobile_event("analytics-swift", "track", "m-1", event="E")], "writeKey": ANYWHERE}
    response = http.post("/v1/b", content=json.dumps(body), headers=basic(SHOP))
    assert_error(response, 401, "write_key_mismatch")
    assert engine.jobs() == []
    assert_success(http.post("/v1/b", content=json.dumps(body), headers=basic(ANYWHERE)))
