"""Every page under every scope, through Streamlit's AppTest, over a simulated day."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.access import ViewerKind
from delivery.alerts.auth_watch import Phase, WatchState
from delivery.alerts.postgres_store import PostgresNotificationStore
from delivery.alerts.store import NewNotification, NotificationStore
from delivery.queue.postgres import migrate
from ingest.files import attempts_root
from ingest.ids import new_id
from ingest.logstore import open_store
from ingest.rollup import rollup_root
from queries import Scope, api, connect
from tests.app.conftest import END, START, OpenApp, SimulatedDay, metrics, page_text, token

ALL_PAGES = (
    "views/day.py",
    "views/customer.py",
    "views/partner.py",
    "views/retries.py",
    "views/explorer.py",
    "views/sql_console.py",
)
WORKSPACE_PAGES = ("views/customer.py", "views/day.py", "views/retries.py", "views/explorer.py")
PARTNER_PAGES = ("views/partner.py", "views/day.py", "views/retries.py")


def _events_received(simulated_day: SimulatedDay, scope: Scope) -> int:
    with connect(simulated_day.data_dir) as log:
        received: int = api.day_report(log, scope, START, END).item(0, "events_received")
    return received


def _assert_rendered(at) -> None:  # type: ignore[no-untyped-def]
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, "the page has no title"


@pytest.mark.parametrize("page", ALL_PAGES)
def test_a_local_run_shows_every_page_with_a_banner(open_app: OpenApp, page: str) -> None:
    at = open_app(secret=None, page=page)
    _assert_rendered(at)
    assert any("Access control is off" in warning.value for warning in at.sidebar.warning)


@pytest.mark.parametrize("page", ALL_PAGES)
def test_an_engineer_sees_every_page(open_app: OpenApp, page: str) -> None:
    at = open_app(token(ViewerKind.ENGINEER), page=page)
    _assert_rendered(at)
    assert not at.sidebar.warning
    assert any("engineer" in caption.value for caption in at.sidebar.caption)


def test_the_day_page_shows_the_days_figures(open_app: OpenApp, simulated_day: SimulatedDay) -> None:
    at = open_app(token(ViewerKind.ENGINEER))
    assert at.title[0].value == "A day of HTTP responses"
    assert metrics(at)["Events received"] == f"{simulated_day.events_received:,}"


def test_large_counts_show_compact_on_the_cards_with_the_exact_count_on_hover(
    open_app: OpenApp, simulated_day: SimulatedDay, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The simulated day is small: cards go compact from 10,000 here instead of a million.
    monkeypatch.setattr("app.style.COMPACT_FROM", 10_000)
    at = open_app(token(ViewerKind.ENGINEER))
    received = simulated_day.events_received
    (card,) = [metric for metric in at.metric if metric.label == "Events received"]
    assert card.value == f"{received / 1000:.1f}K"
    assert card.proto.help == f"Exactly {received:,}."


@pytest.mark.parametrize("page", WORKSPACE_PAGES)
def test_a_customer_sees_only_its_workspace(
    open_app: OpenApp, simulated_day: SimulatedDay, page: str
) -> None:
    mine, other = simulated_day.workspaces[1], simulated_day.workspaces[0]
    # The other workspace is also asked for in the URL: a customer link cannot widen its scope.
    at = open_app(token(ViewerKind.WORKSPACE, mine), page=page, params={"workspace": other})
    _assert_rendered(at)
    text = page_text(at)
    assert other not in text
    for destination in simulated_day.destinations[other]:
        assert destination not in text
    assert (
        not at.sidebar.selectbox.filtered_by(label="Workspace")
        if hasattr(at.sidebar.selectbox, "filtered_by")
        else True
    )
    assert all(box.label != "Workspace" for box in at.sidebar.selectbox)


def test_the_customer_dashboard_shows_the_workspaces_figures(
    open_app: OpenApp, simulated_day: SimulatedDay
) -> None:
    mine = simulated_day.workspaces[1]
    at = open_app(token(ViewerKind.WORKSPACE, mine))
    assert at.title[0].value == "Customer delivery dashboard"
    assert metrics(at)["Events received"] == f"{_events_received(simulated_day, Scope.workspace(mine)):,}"
    assert f"Workspace **{mine}**" in at.caption[0].value


@pytest.mark.parametrize("page", ["views/sql_console.py", "views/partner.py"])
def test_a_customer_cannot_open_operator_or_partner_pages(
    open_app: OpenApp, simulated_day: SimulatedDay, page: str
) -> None:
    at = open_app(token(ViewerKind.WORKSPACE, simulated_day.workspaces[0]))
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(page)


@pytest.mark.parametrize("page", PARTNER_PAGES)
def test_a_partner_sees_no_workspace(open_app: OpenApp, simulated_day: SimulatedDay, page: str) -> None:
    integration = simulated_day.integrations[0]
    at = open_app(token(ViewerKind.PARTNER, integration), page=page)
    _assert_rendered(at)
    text = page_text(at)
    leaked = [workspace for workspace in simulated_day.workspaces if workspace in text]
    assert not leaked
    leaked = [d for ids in simulated_day.destinations.values() for d in ids if d in text]
    assert not leaked


def test_the_partner_page_shows_its_integration(open_app: OpenApp, simulated_day: SimulatedDay) -> None:
    integration = simulated_day.integrations[0]
    at = open_app(
        token(ViewerKind.PARTNER, integration), params={"integration": simulated_day.integrations[1]}
    )
    assert at.title[0].value == "Partner error rates"
    assert f"Integration **{integration}**" in at.caption[0].value
    with connect(simulated_day.data_dir) as log:
        requests = api.day_report(log, Scope.integration(integration), START, END).item(0, "requests")
    assert metrics(at)["Requests"] == f"{requests:,}"


@pytest.mark.parametrize("page", ["views/sql_console.py", "views/customer.py", "views/explorer.py"])
def test_a_partner_cannot_open_customer_or_operator_pages(
    open_app: OpenApp, simulated_day: SimulatedDay, page: str
) -> None:
    at = open_app(token(ViewerKind.PARTNER, simulated_day.integrations[0]))
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(page)


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda: None, "needs a link"),
        (lambda: token(ViewerKind.ENGINEER, secret="somebody-elses-secret-000"), "not valid"),
        (lambda: token(ViewerKind.ENGINEER)[:-2] + "xx", "not valid"),
        (lambda: token(ViewerKind.WORKSPACE, "acme", ttl_s=-60), "expired"),
        (lambda: "v1.bm90LWpzb24.c2ln", "not valid"),
    ],
    ids=["missing", "forged", "tampered", "expired", "malformed"],
)
def test_a_bad_link_is_refused_with_no_data(open_app: OpenApp, make_token, reason: str) -> None:  # type: ignore[no-untyped-def]
    at = open_app(make_token())
    assert at.title[0].value == "Access refused"
    assert reason in at.error[0].value
    assert not at.metric and not at.dataframe and not at.sidebar.selectbox


def test_an_empty_data_directory_says_how_to_get_data(open_app: OpenApp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    at = open_app(token(ViewerKind.ENGINEER), data_dir=tmp_path)
    assert not at.exception
    assert "No delivery data yet" in at.info[0].value
    assert "deliverydash simulate" in at.info[0].value


def test_filters_come_from_the_url(open_app: OpenApp, simulated_day: SimulatedDay) -> None:
    day = simulated_day.day.isoformat()
    at = open_app(token(ViewerKind.ENGINEER), params={"hours": ["6", "12"], "day": day})
    assert at.sidebar.slider[0].value == (6, 12)
    assert "06:00 to 12:00" in at.caption[0].value


def test_the_customer_sees_its_open_notifications_and_no_one_elses(
    open_app: OpenApp, simulated_day: SimulatedDay, tmp_path: Path
) -> None:
    mine, other = simulated_day.workspaces[1], simulated_day.workspaces[0]
    data_dir = tmp_path / "data"
    shutil.copytree(simulated_day.data_dir, data_dir)
    store = NotificationStore(data_dir)
    now = time.time()
    for workspace, destination in ((mine, "dst-mine"), (other, "dst-theirs")):
        note = NewNotification(
            id=new_id(),
            kind="disabled",
            workspace_id=workspace,
            destination_id=destination,
            integration="crm-records",
            created_at=now,
            message=f"{destination}: disabled after 50 auth failures",
            first_seen_at=now - 600,
            failures=50,
            status_code=401,
            sample_body='{"error":"invalid_grant"}',
        )
        store.record(destination, WatchState(Phase.DISABLED, 50, now - 600, now, now + 300), [note])
    store.close()
    at = open_app(token(ViewerKind.WORKSPACE, mine), data_dir=data_dir)
    shown = " ".join(error.value for error in at.error)
    assert "dst-mine" in shown and "disabled after 50 auth failures" in shown
    assert '{"error":"invalid_grant"}' in [text.value for text in at.text]  # the answer that disabled it
    assert "dst-theirs" not in page_text(at)


def _out_of_step_banners(at: AppTest) -> list[str]:
    return [warning.value for warning in at.warning if "deliverydash repair" in warning.value]


@pytest.mark.parametrize("page", ["views/day.py", "views/retries.py"])
def test_rollups_out_of_step_show_a_banner(
    open_app: OpenApp, simulated_day: SimulatedDay, tmp_path: Path, page: str
) -> None:
    assert not _out_of_step_banners(open_app(token(ViewerKind.ENGINEER), page=page))
    data_dir = shutil.copytree(simulated_day.data_dir, tmp_path / "data")
    # A writer that died between an attempt file and its rollups, a minute ago.
    lost = sorted(rollup_root(data_dir, "outcomes").glob("date=*/hour=*/*.parquet"))[0]
    lost.unlink()
    then = time.time() - 60
    os.utime(attempts_root(data_dir) / lost.relative_to(rollup_root(data_dir, "outcomes")), (then, then))
    at = open_app(token(ViewerKind.ENGINEER), page=page, data_dir=data_dir)
    _assert_rendered(at)
    assert _out_of_step_banners(at) == [
        "The rollups are out of step with the attempt log (1 file), so figures may be incomplete. "
        "Run `deliverydash repair` to mend them."
    ]
    assert not lost.exists(), "showing figures mended nothing"


def test_the_customer_sees_a_fleet_s_notifications_from_postgresql(
    open_app: OpenApp, simulated_day: SimulatedDay, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = simulated_day.workspaces[1]
    migrate(postgres_dsn)
    password = "pw_SECRET_dashboard"
    dsn = postgres_dsn.replace("@", f":{password}@", 1)
    store = PostgresNotificationStore(dsn)
    now = time.time()
    note = NewNotification(
        new_id(),
        "disabled",
        mine,
        "dst-fleet",
        "crm-records",
        now,
        "dst-fleet: disabled by the fleet",
        now - 60,
    )
    store.record("dst-fleet", WatchState(Phase.DISABLED, 50, now - 60, now, now + 300), [note])
    store.close()
    # As `deliverydash dashboard --config F` passes it when F's queue is PostgreSQL.
    monkeypatch.setenv("DELIVERYDASH_QUEUE_DSN", dsn)
    at = open_app(token(ViewerKind.WORKSPACE, mine))
    _assert_rendered(at)
    assert "disabled by the fleet" in " ".join(error.value for error in at.error)
    assert password not in page_text(at)

    # The database out of reach: the page says so, without naming the server or its password.
    monkeypatch.setenv(
        "DELIVERYDASH_QUEUE_DSN", f"postgresql://dd:{password}@127.0.0.1:1/db?connect_timeout=2"
    )
    at = open_app(token(ViewerKind.WORKSPACE, mine))
    _assert_rendered(at)
    assert any("notifications cannot be read" in warning.value for warning in at.warning)
    assert password not in page_text(at) and "127.0.0.1" not in page_text(at)


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ingest.simulate import simulate_day

    data_dir = tmp_path_factory.mktemp("two_days")
    for day in (25, 27):
        simulate_day(1_000, data_dir, date=dt.date(2026, 11, day), workers=1)
    return data_dir


@pytest.mark.parametrize("page", ["views/day.py", "views/customer.py"])
def test_a_range_of_whole_days_shows_their_figures_and_a_daily_trend(
    open_app: OpenApp, two_days: Path, page: str
) -> None:
    at = open_app(token(ViewerKind.ENGINEER), data_dir=two_days, page=page, params={"day": "2026-11-27"})
    at.sidebar.number_input(key="days").set_value(7).run()
    _assert_rendered(at)
    assert not at.sidebar.slider  # hours are for one day
    assert any("2026-11-21 to 2026-11-27 UTC (7 days)" in caption.value for caption in at.caption)
    text = page_text(at)
    assert "Delivery rates by day received" in text
    assert "first attempt" in text and "eventually" in text
    # A bar a day over whole days (the day rollups hold no hours).
    assert "Requests per day by error class" in text and "Requests per hour" not in text
    if page == "views/day.py":
        start = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
        with connect(two_days) as log:
            received = api.day_report(log, Scope.all(), start, start + dt.timedelta(days=7)).item(
                0, "events_received"
            )
        assert metrics(at)["Events received"] == f"{received:,}"


def test_a_range_of_days_comes_from_the_url(open_app: OpenApp, two_days: Path) -> None:
    at = open_app(token(ViewerKind.ENGINEER), data_dir=two_days, params={"day": "2026-11-27", "days": "3"})
    _assert_rendered(at)
    assert at.sidebar.number_input(key="days").value == 3
    assert "2026-11-25 to 2026-11-27 UTC (3 days)" in at.caption[0].value


def test_one_day_keeps_its_hours_and_shows_no_trend(open_app: OpenApp, two_days: Path) -> None:
    at = open_app(token(ViewerKind.ENGINEER), data_dir=two_days, params={"day": "2026-11-27"})
    _assert_rendered(at)
    assert at.sidebar.slider[0].value == (0, 24)
    assert "Delivery rates by day received" not in page_text(at)
    assert "Requests per hour by error class" in page_text(at)


def test_the_dashboard_reads_a_log_on_the_object_store(
    open_app: OpenApp, two_days: Path, s3_log: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, remote = open_store(two_days), open_store(s3_log)
    for stored in local.list(""):  # the log as `aws s3 sync` (or an engine with [log] url) puts it there
        if stored.key.startswith(("attempts/", "rollups/")):
            remote.put_bytes(stored.key, local.read_bytes(stored.key))
    monkeypatch.setenv("DELIVERYDASH_LOG", s3_log)
    at = open_app(token(ViewerKind.ENGINEER), data_dir=two_days / "elsewhere", params={"day": "2026-11-27"})
    _assert_rendered(at)
    start = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    with connect(two_days) as log:
        received = api.day_report(log, Scope.all(), start, start + dt.timedelta(days=1)).item(
            0, "events_received"
        )
    assert metrics(at)["Events received"] == f"{received:,}"
    console = open_app(
        token(ViewerKind.ENGINEER), data_dir=two_days / "elsewhere", page="views/sql_console.py"
    )
    _assert_rendered(console)
