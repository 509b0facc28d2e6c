"""The real analytics.js in headless Chromium against a running engine: what a shop's page sends arrives.

Everything is real and on loopback: `deliverydash serve` (a process), a sink
as the source's webhook destination, a shop's web site serving a page and
Segment's analytics.js (`@segment/analytics-next` from npm, its standalone
bundle: `tests/delivery/api/analytics_js.py`), and Debian's Chromium driven
by Playwright. The page knows only the engine's address: the library fetches
its settings there (`/v1/projects/{writeKey}/settings`), which send it to the
engine's short paths, across origins (the shop and the engine are on
different ports), so every request goes through CORS as in the field.
"""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.app.browser import launch_chromium
from tests.delivery.api.analytics_js import ShopServer, bundle_dir, page_html
from tests.delivery.engine_process import free_port, serving, start_engine, wait_for

WRITE_KEY = "wk_shop_browser"
ADMIN_TOKEN = "browser-test-admin-token-0123456789abcdef"
#: Page actions and waits for the page's own work; only bounds a hang.
ACTION_TIMEOUT_MS = 15_000
#: How analytics.js batches in its batching mode here: three events, or after 100 ms.
BATCHING = {
    "integrations": {
        "Segment.io": {"deliveryStrategy": {"strategy": "batching", "config": {"size": 3, "timeout": 100}}}
    }
}


class Sink(http.server.ThreadingHTTPServer):
    """The source's webhook: answers 200 and keeps every event delivered to it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _SinkHandler)

    def by_message_id(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {event["messageId"]: event for event in self.events}


class _SinkHandler(http.server.BaseHTTPRequestHandler):
    server: Sink

    def do_POST(self) -> None:
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.events.append(event)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass(frozen=True)
class Setup:
    """The engine, its destination and the shop's site, running."""

    engine_url: str
    engine: subprocess.Popen[str]
    data_dir: Path
    sink: Sink
    shop: ShopServer

    @property
    def shop_url(self) -> str:
        return f"http://127.0.0.1:{self.shop.port}"

    def rejected(self) -> dict[str, int]:
        """The engine's count of refused tracking requests, by code (`/admin/status`)."""
        status = httpx.get(
            f"{self.engine_url}/admin/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
        )
        assert status.status_code == 200, status.text
        rejected: dict[str, int] = status.json()["requests_rejected"]
        return rejected

    def logged(self) -> dict[str, tuple[str, str]]:
        """messageId -> (destination, outcome) of every attempt in the engine's Parquet log so far."""
        files = list((self.data_dir / "attempts").glob("date=*/hour=*/*.parquet"))
        if not files:
            return {}
        rows = duckdb.sql(
            "SELECT e.message_id, destination_id, outcome FROM read_parquet($files), unnest(events) AS t(e)",
            params={"files": [str(path) for path in files]},
        ).fetchall()
        return {message_id: (destination, outcome) for message_id, destination, outcome in rows}


def write_config(tmp_path: Path, sink: Sink, shop_origin: str) -> Path:
    config = tmp_path / "deliverydash.toml"
    config.write_text(
        f"""
[engine]
data_dir = "data"
allow_private_targets = true
export_interval_s = 0.2
admin_token = "{ADMIN_TOKEN}"
shutdown_grace_s = 2

[[sources]]
id = "shop"
workspace = "acme"
write_key = "{WRITE_KEY}"
allowed_origins = ["{shop_origin}"]

[[destinations]]
id = "shop-hook"
source = "shop"
integration = "webhook"
url = "http://127.0.0.1:{sink.server_address[1]}/events"
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp_path = tmp_path_factory.mktemp("analytics-js")
    bundle = bundle_dir()
    port = free_port()
    engine_url = f"http://127.0.0.1:{port}"
    pages = {
        "/standard": page_html(WRITE_KEY, engine_url, {}),
        "/batching": page_html(WRITE_KEY, engine_url, BATCHING),
    }
    with serving(Sink()) as sink, serving(ShopServer(bundle, pages)) as shop:
        config = write_config(tmp_path, sink, f"http://127.0.0.1:{shop.port}")
        with (tmp_path / "engine.log").open("w") as log:
            engine = start_engine(config, port, log=log)
            try:
                yield Setup(engine_url, engine, tmp_path / "data", sink, shop)
            finally:
                engine.send_signal(signal.SIGTERM)
                engine.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A page in a fresh browser context, with what it logged and requested."""

    page: Page
    errors: list[str]
    requests: list[tuple[str, str]]
    """(method, URL) of every request the page made (CORS preflights are the browser's own)."""


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context()
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    opened = Tab(page, [], [])
    page.on(
        "console", lambda message: opened.errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    page.on("request", lambda request: opened.requests.append((request.method, request.url)))
    yield opened
    context.close()


def load(tab: Tab, url: str) -> None:
    """Open `url` and wait until analytics.js has loaded its settings and is ready."""
    tab.page.goto(url)
    try:
        tab.page.wait_for_function("() => window.analytics && window.analytics.initialized === true")
    except Exception as exc:
        raise AssertionError(f"analytics.js did not load on {url}: {exc}\nconsole: {tab.errors}") from None


def engine_paths(tab: Tab, setup: Setup) -> list[str]:
    """The paths of the page's requests to the engine, in order."""
    # A round trip to the page first: Playwright hands its events over while it waits for an
    # answer, and the browser reports them in order, so every request made so far is in.
    tab.page.evaluate("0")
    return [url.removeprefix(setup.engine_url) for _, url in tab.requests if url.startswith(setup.engine_url)]


#: page(), track() and identify() as a shop calls them; each answers the event it made.
CALLS = """async () => {
    const contexts = [
        await analytics.page("Shop", "Cart", {cart: 2}),
        await analytics.track("Order Completed", {revenue: 9.5, currency: "EUR"}),
        await analytics.identify("user-42", {plan: "pro", email: "ada@example.com"}),
    ];
    return contexts.map((ctx) => ({
        messageId: ctx.event.messageId,
        type: ctx.event.type,
        failed: ctx.failedDelivery() ? String(ctx.failedDelivery().reason) : null,
    }));
}"""


def test_page_track_and_identify_arrive_at_the_destination_and_in_the_log(tab: Tab, setup: Setup) -> None:
    load(tab, f"{setup.shop_url}/standard")
    sent = tab.page.evaluate(CALLS)
    assert [(event["type"], event["failed"]) for event in sent] == [
        ("page", None),
        ("track", None),
        ("identify", None),
    ]
    ids = [event["messageId"] for event in sent]
    wait_for(lambda: set(ids) <= set(setup.sink.by_message_id()))
    delivered = setup.sink.by_message_id()
    page, track, identify = (delivered[message_id] for message_id in ids)
    assert (page["type"], page["category"], page["name"], page["properties"]["cart"]) == (
        "page",
        "Shop",
        "Cart",
        2,
    )
    assert page["properties"]["url"] == f"{setup.shop_url}/standard"
    assert (track["event"], track["properties"]) == ("Order Completed", {"revenue": 9.5, "currency": "EUR"})
    assert (identify["userId"], identify["traits"]["plan"]) == ("user-42", "pro")
    # One visitor, seen by the library: its anonymous id on every call, its user id once known.
    assert page["anonymousId"] == track["anonymousId"] == identify["anonymousId"]
    for event in (page, track, identify):
        assert event["context"]["library"]["name"] == "analytics.js"
        assert event["context"]["page"]["url"] == f"{setup.shop_url}/standard"
        assert "writeKey" not in event  # the engine keeps the key from destinations
    # The library asked the engine, not Segment, for its settings, and sent to the short paths.
    assert engine_paths(tab, setup) == [f"/v1/projects/{WRITE_KEY}/settings", "/v1/p", "/v1/t", "/v1/i"]
    assert all(url.startswith((setup.shop_url, setup.engine_url)) for _, url in tab.requests)
    assert tab.errors == []
    wait_for(lambda: set(ids) <= set(setup.logged()))
    assert {setup.logged()[message_id] for message_id in ids} == {("shop-hook", "delivered")}


def test_the_batching_mode_sends_one_batch(tab: Tab, setup: Setup) -> None:
    load(tab, f"{setup.shop_url}/batching")
    ids = tab.page.evaluate(
        """async () => {
            const contexts = await Promise.all([1, 2, 3].map((n) => analytics.track("Step " + n, {n})));
            return contexts.map((ctx) => ctx.event.messageId);
        }"""
    )
    wait_for(lambda: set(ids) <= set(setup.sink.by_message_id()))
    delivered = setup.sink.by_message_id()
    assert sorted(delivered[message_id]["event"] for message_id in ids) == ["Step 1", "Step 2", "Step 3"]
    assert engine_paths(tab, setup) == [f"/v1/projects/{WRITE_KEY}/settings", "/v1/b"]
    assert tab.errors == []
    wait_for(lambda: set(ids) <= set(setup.logged()))


def test_a_beacon_arrives(tab: Tab, setup: Setup) -> None:
    # navigator.sendBeacon: what pages send as they unload (analytics.js classic's beacon mode).
    load(tab, f"{setup.shop_url}/standard")
    queued = tab.page.evaluate(
        """(engine) => navigator.sendBeacon(engine + "/v1/t", JSON.stringify({
            writeKey: analytics.settings.writeKey,
            anonymousId: analytics.user().anonymousId(),
            event: "Left Checkout",
            messageId: "beacon-1",
        }))""",
        setup.engine_url,
    )
    assert queued is True
    wait_for(lambda: "beacon-1" in setup.sink.by_message_id())
    assert setup.sink.by_message_id()["beacon-1"]["event"] == "Left Checkout"


def test_a_page_the_source_does_not_allow_sends_nothing(tab: Tab, setup: Setup) -> None:
    # The same site under another name is another origin: not in the source's allowed_origins.
    other = f"http://localhost:{setup.shop.port}"
    before = setup.rejected().get("origin_not_allowed", 0)
    # The settings fetch is refused (403, no CORS grant), so the library does not start.
    with tab.page.expect_console_message(lambda message: "Failed to load Analytics.js" in message.text):
        tab.page.goto(f"{other}/standard")
    assert setup.rejected()["origin_not_allowed"] == before + 1
    assert any("blocked by CORS policy" in error for error in tab.errors), tab.errors
    assert tab.page.evaluate("() => Array.isArray(window.analytics)")  # still the snippet's stub
    # A form-like POST gets no preflight: the engine refuses it itself, and stores nothing.
    outcome = tab.page.evaluate(
        """({engine, writeKey}) => fetch(engine + "/v1/t", {
            method: "POST",
            headers: {"Content-Type": "text/plain"},
            body: JSON.stringify({writeKey, userId: "u-1", event: "Forged", messageId: "forged-1"}),
        }).then(() => "read", (error) => "blocked: " + error)""",
        {"engine": setup.engine_url, "writeKey": WRITE_KEY},
    )
    assert outcome.startswith("blocked")  # the page cannot even read the refusal
    assert setup.rejected()["origin_not_allowed"] == before + 2
    assert "forged-1" not in setup.sink.by_message_id() and "forged-1" not in setup.logged()
