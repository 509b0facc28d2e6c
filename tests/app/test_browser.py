"""The real dashboard in headless Chromium: every page loads, figures match, links stay in scope.

One `deliverydash dashboard` process over the simulated day of conftest.py
serves the whole module, and one browser visits it; each test opens a fresh browser context
(a new Streamlit session, no cookies) with a link from `deliverydash link`.
Leaks are checked in everything the server sent to the browser (`Received`),
not only in the text on screen: tables are drawn on a canvas.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from app.access import Viewer, ViewerKind, sign
from queries import Scope, api, connect
from tests.app.browser import (
    Dashboard,
    Received,
    dashboard,
    launch_chromium,
    metrics,
    nav_links,
    page_text,
    wait_finished,
)
from tests.app.conftest import END, START, SimulatedDay

SECRET = "browser-test-secret-0123456789ab"
OTHER_SECRET = "another-dashboard-secret-9876543"
#: Clicks and typing wait this long for their element; page runs have their own bound.
ACTION_TIMEOUT_MS = 10_000
TITLES = (
    "A day of HTTP responses",
    "Customer delivery dashboard",
    "Partner error rates",
    "Retries",
    "Error explorer",
    "SQL console",
)


@dataclass(frozen=True)
class Figures:
    """What the pages should show, computed by `queries.api` beside the dashboard."""

    events_received: int
    workspace_events: dict[str, int]
    integration_requests: int
    status_401_requests: int


@pytest.fixture(scope="module")
def running(simulated_day: SimulatedDay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    log = tmp_path_factory.mktemp("browser") / "dashboard.log"
    with dashboard(simulated_day.data_dir, SECRET, log) as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def figures(simulated_day: SimulatedDay) -> Figures:
    workspaces = simulated_day.workspaces[:2]
    with connect(simulated_day.data_dir) as log:
        per_workspace = {
            workspace: api.day_report(log, Scope.workspace(workspace), START, END).item(0, "events_received")
            for workspace in workspaces
        }
        integration = Scope.integration(simulated_day.integrations[0])
        requests = api.day_report(log, integration, START, END).item(0, "requests")
        unauthorized = log.sql("SELECT count(*) AS n FROM attempts WHERE status_code = 401").item(0, "n")
    return Figures(simulated_day.events_received, per_workspace, requests, unauthorized)


def token_of(url: str) -> str:
    """The access token a link carries."""
    return parse_qs(urlsplit(url).query)["token"][0]


def open_link(page: Page, running: Dashboard, url: str, title: str) -> None:
    """Open a link as its holder would, and wait for the page it lands on."""
    page.goto(url)
    wait_finished(page, running, title)
    # Streamlit falls back to the home page behind a modal when a link names a page it does not
    # register; the modal makes the rest of the page inert.
    dialogs = page.get_by_test_id("stDialog").all_inner_texts()
    assert not dialogs, f"{url} opened a dialog: {dialogs}"


@dataclass(frozen=True)
class Shown:
    """One page as it was on screen."""

    text: str
    metrics: dict[str, str]


def visit_every_page(page: Page, running: Dashboard) -> dict[str, Shown]:
    """Click through the sidebar navigation, as a person would: page title to what it showed."""
    shown = {}
    for title in nav_links(page):
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
        wait_finished(page, running, title)
        shown[title] = Shown(page_text(page), metrics(page))
    return shown


def test_an_engineer_link_reaches_every_page_with_the_day_s_figures(
    page: Page, running: Dashboard, simulated_day: SimulatedDay, figures: Figures
) -> None:
    open_link(page, running, running.link("--engineer"), "A day of HTTP responses")
    assert set(TITLES) <= set(nav_links(page))

    shown = visit_every_page(page, running)
    assert set(shown) == set(nav_links(page))
    assert shown["A day of HTTP responses"].metrics["Events received"] == f"{figures.events_received:,}"
    # Operators' pickers start on the busiest workspace and integration.
    busiest = simulated_day.workspaces[0]
    customer = shown["Customer delivery dashboard"]
    assert f"Workspace {busiest}" in customer.text
    assert customer.metrics["Events received"] == f"{figures.workspace_events[busiest]:,}"
    partner = shown["Partner error rates"]
    assert f"Integration {simulated_day.integrations[0]}" in partner.text
    assert partner.metrics["Requests"] == f"{figures.integration_requests:,}"


def test_the_range_a_link_names_stays_from_page_to_page(page: Page, running: Dashboard) -> None:
    # Two whole days ending with the simulated one: a range no page shows unless asked.
    link = f"{running.link('--engineer')}&days=2"
    open_link(page, running, link, "A day of HTTP responses")
    days = page.get_by_role("spinbutton", name="Days shown, ending with that day")
    for title in [*TITLES[1:], TITLES[0]]:
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
        wait_finished(page, running, title)
        assert days.input_value() == "2", title
        if title == "SQL console":  # the console reads the whole log: the range is kept, not used
            assert days.is_disabled()
            continue
        assert days.is_enabled()
        caption = page.get_by_test_id("stMain").get_by_test_id("stCaptionContainer").first.inner_text()
        assert "(2 days)" in caption, f"{title}: {caption}"


def test_the_sql_console_runs_a_query(page: Page, running: Dashboard, figures: Figures) -> None:
    token = token_of(running.link("--engineer"))
    open_link(page, running, f"{running.base_url}/sql?token={token}", "SQL console")
    page.get_by_label("Query").fill("SELECT job_id, attempt FROM attempts WHERE status_code = 401")
    page.get_by_role("button", name="Run").click()
    caption = page.get_by_text(re.compile(r"^[\d,]+ row"))
    caption.wait_for()
    wait_finished(page, running)
    assert caption.inner_text().startswith(f"{figures.status_401_requests:,} row")
    page.get_by_test_id("stDataFrame").wait_for()


def test_a_customer_link_sees_its_workspace_and_nothing_of_another(
    page: Page, running: Dashboard, simulated_day: SimulatedDay, figures: Figures
) -> None:
    own, other = simulated_day.workspaces[:2]
    received = Received(page)
    open_link(page, running, running.link("--workspace", own), "Customer delivery dashboard")
    assert f"Workspace {own}" in page_text(page)
    assert metrics(page)["Events received"] == f"{figures.workspace_events[own]:,}"

    shown = visit_every_page(page, running)
    assert set(shown) == {
        "Customer delivery dashboard",
        "A day of HTTP responses",
        "Retries",
        "Error explorer",
    }
    assert own in received, "the recorder saw none of the pages' data"
    forbidden = [other, *simulated_day.destinations[other]]
    for title, seen in shown.items():
        assert not [name for name in forbidden if name in seen.text], title
    assert not received.found(forbidden)


def test_another_workspace_in_the_url_does_not_widen_a_customer_link(
    page: Page, running: Dashboard, simulated_day: SimulatedDay, figures: Figures
) -> None:
    own, other = simulated_day.workspaces[:2]
    received = Received(page)
    open_link(
        page, running, f"{running.link('--workspace', own)}&workspace={other}", "Customer delivery dashboard"
    )
    text = page_text(page)
    assert f"Workspace {own}" in text
    assert metrics(page)["Events received"] == f"{figures.workspace_events[own]:,}"
    assert other not in text
    assert f"{figures.workspace_events[other]:,}" not in text
    assert not received.found([other, *simulated_day.destinations[other]])


def test_another_workspace_s_destination_in_the_url_shows_nothing_of_it(
    page: Page, running: Dashboard, simulated_day: SimulatedDay
) -> None:
    own, other = simulated_day.workspaces[:2]
    theirs = simulated_day.destinations[other]
    received = Received(page)
    token = token_of(running.link("--workspace", own))
    page.goto(f"{running.base_url}/explorer?token={token}&destination={theirs[0]}")
    wait_finished(page, running, "Error explorer")
    text = page_text(page)
    assert not [name for name in [other, *theirs] if name in text]
    assert not received.found([other, *theirs])


def test_a_customer_link_cannot_open_the_sql_console(
    page: Page, running: Dashboard, simulated_day: SimulatedDay
) -> None:
    token = token_of(running.link("--workspace", simulated_day.workspaces[0]))
    page.goto(f"{running.base_url}/sql?token={token}")
    # Streamlit runs the viewer's home page instead of a page not registered for them.
    page.locator("[data-testid=stMain] h1").first.wait_for()
    wait_finished(page, running)
    assert "SQL console" not in page_text(page)
    assert page.get_by_test_id("stTextArea").count() == 0
    assert page.get_by_role("button", name="Run", exact=True).count() == 0


def test_a_partner_link_sees_its_integration_and_no_tenant_ids(
    page: Page, running: Dashboard, simulated_day: SimulatedDay, figures: Figures
) -> None:
    integration = simulated_day.integrations[0]
    received = Received(page)
    open_link(page, running, running.link("--partner", integration), "Partner error rates")
    assert f"Integration {integration}" in page_text(page)
    assert metrics(page)["Requests"] == f"{figures.integration_requests:,}"

    shown = visit_every_page(page, running)
    assert set(shown) == {"Partner error rates", "A day of HTTP responses", "Retries"}
    assert integration in received, "the recorder saw none of the pages' data"
    tenants = [
        *simulated_day.workspaces,
        *(destination for ids in simulated_day.destinations.values() for destination in ids),
    ]
    everything = "\n".join(seen.text for seen in shown.values())
    assert not [name for name in tenants if name in everything]
    assert not received.found(tenants)


def _tampered(token: str) -> str:
    version, payload, signature = token.split(".")
    middle = len(payload) // 2
    flipped = "A" if payload[middle] != "A" else "B"
    return ".".join((version, payload[:middle] + flipped + payload[middle + 1 :], signature))


def _refused_links(running: Dashboard) -> dict[str, tuple[str, str]]:
    """Link kind to (URL, what the refusal says)."""
    base = running.base_url
    engineer = Viewer(ViewerKind.ENGINEER, None, int(time.time()) + 3600)
    expired = Viewer(ViewerKind.ENGINEER, None, int(time.time()) - 60)
    good = token_of(running.link("--engineer"))
    return {
        "no token": (f"{base}/", "needs a link"),
        "forged": (f"{base}/?token={sign(engineer, OTHER_SECRET)}", "not valid"),
        "tampered": (f"{base}/?token={_tampered(good)}", "not valid"),
        "expired": (f"{base}/?token={sign(expired, SECRET)}", "expired"),
    }


@pytest.mark.parametrize("kind", ["no token", "forged", "tampered", "expired"])
def test_a_link_that_grants_nothing_is_refused(
    page: Page, running: Dashboard, simulated_day: SimulatedDay, figures: Figures, kind: str
) -> None:
    url, reason = _refused_links(running)[kind]
    received = Received(page)
    open_link(page, running, url, "Access refused")
    text = page_text(page)
    assert reason in text
    assert not metrics(page)
    assert f"{figures.events_received:,}" not in text
    assert not nav_links(page)
    assert not received.found(simulated_day.workspaces[:50])
