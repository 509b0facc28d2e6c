"""A simulated day for the dashboard tests, and AppTest sessions over it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

import app
from app.access import Viewer, ViewerKind, sign
from app.prefetch import PREFETCH_ENV
from ingest.simulate import simulate_day
from queries import Scope, api, connect

SECRET = "dashboard-test-secret-0123456789"
DAY = dt.date(2026, 11, 27)
START = dt.datetime.combine(DAY, dt.time(), dt.UTC)
END = START + dt.timedelta(days=1)
MAIN = str(Path(app.__file__).parent / "main.py")


@dataclass(frozen=True)
class SimulatedDay:
    """The data directory and the ids and figures tests compare pages with."""

    data_dir: Path
    day: dt.date
    workspaces: list[str]
    """Busiest first."""
    destinations: dict[str, list[str]]
    """Destination ids per workspace."""
    integrations: list[str]
    """Busiest first."""
    events_received: int


@pytest.fixture(scope="session")
def simulated_day(tmp_path_factory: pytest.TempPathFactory) -> SimulatedDay:
    data_dir = tmp_path_factory.mktemp("dashboard")
    simulate_day(40_000, data_dir, date=DAY, seed=11, workers=1)
    with connect(data_dir) as log:
        destinations = api.by_destination(log, Scope.all(), START, END)
        integrations = api.by_integration(log, Scope.all(), START, END)
        report = api.day_report(log, Scope.all(), START, END).row(0, named=True)
    busiest = (
        destinations.group_by("workspace_id").agg(pl.col("requests").sum()).sort("requests", descending=True)
    )
    return SimulatedDay(
        data_dir=data_dir,
        day=DAY,
        workspaces=busiest.get_column("workspace_id").to_list(),
        destinations={
            workspace: group.get_column("destination_id").to_list()
            for (workspace,), group in destinations.group_by("workspace_id")
        },
        integrations=integrations.sort("requests", descending=True).get_column("integration").to_list(),
        events_received=report["events_received"],
    )


def token(kind: ViewerKind, value: str | None = None, *, ttl_s: int = 3600, secret: str = SECRET) -> str:
    """A signed link token, as `deliverydash link` makes it."""
    return sign(Viewer(kind, value, int(dt.datetime.now(dt.UTC).timestamp()) + ttl_s), secret)


OpenApp = Callable[..., AppTest]


@pytest.fixture
def open_app(simulated_day: SimulatedDay, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenApp]:
    """Run the dashboard's entry file with a token (or none), optionally on another page."""

    def run(
        link_token: str | None = None,
        *,
        page: str | None = None,
        secret: str | None = SECRET,
        data_dir: Path | None = None,
        params: dict[str, str | list[str]] | None = None,
        read_ahead: bool = False,
    ) -> AppTest:
        monkeypatch.setenv("DELIVERYDASH_DATA_DIR", str(data_dir or simulated_day.data_dir))
        # Off unless asked: a test counts what its page reads, not what a thread reads beside it.
        monkeypatch.setenv(PREFETCH_ENV, "1" if read_ahead else "0")
        if secret is None:
            monkeypatch.delenv("DELIVERYDASH_SECRET", raising=False)
        else:
            monkeypatch.setenv("DELIVERYDASH_SECRET", secret)
        at = AppTest.from_file(MAIN, default_timeout=60)
        if link_token is not None:
            at.query_params["token"] = link_token
        for key, value in (params or {}).items():
            at.query_params[key] = value
        at.run()
        if page is not None:
            at.switch_page(page).run()
        return at

    yield run


def page_text(at: AppTest) -> str:
    """Everything the page rendered, charts' data and tables' bytes included, as one string."""
    parts: list[str] = []

    def walk(node: object) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                walk(child)

    walk(at._tree)
    return "\n".join(parts)


def metrics(at: AppTest) -> dict[str, str]:
    """Metric label to displayed value."""
    return {metric.label: metric.value for metric in at.metric}
