"""The "Delivered more than once" section on the customer and partner pages of a simulated day:
labelled figures equal to the named query's, example job histories for a customer, no ids for a
partner."""

from __future__ import annotations

import polars as pl

from app.access import ViewerKind
from queries import Scope, api, connect
from tests.app.conftest import END, START, OpenApp, SimulatedDay, metrics, page_text, token


def _figures(simulated_day: SimulatedDay, scope: Scope) -> pl.DataFrame:
    with connect(simulated_day.data_dir) as log:
        return api.double_deliveries(log, scope, START, END)


def _busiest(simulated_day: SimulatedDay, column: str) -> str:
    figures = _figures(simulated_day, Scope.all())
    assert figures.height, "the simulated day has events delivered after a request with no answer"
    return str(
        figures.group_by(column).agg(pl.col("events").sum()).sort("events", descending=True)[0, column]
    )


def test_the_customer_page_counts_events_delivered_twice(
    open_app: OpenApp, simulated_day: SimulatedDay
) -> None:
    workspace = _busiest(simulated_day, "workspace_id")
    figures = _figures(simulated_day, Scope.workspace(workspace))
    at = open_app(token(ViewerKind.WORKSPACE, workspace))
    cards = metrics(at)
    possible = figures.filter(pl.col("certainty") == "possible")["events"].sum()
    assert cards["Events delivered twice, possibly"] == f"{possible:,}"
    assert cards["Events delivered twice, certainly"] == "0"
    assert "Delivered more than once" in page_text(at)
    picker = at.selectbox(key="double_delivery_job")
    job = figures["example_jobs"][0][0]
    assert job in picker.options
    picker.set_value(job).run()
    history = at.dataframe[-1].value
    assert set(history["job_id"]) == {job}


def test_the_partner_page_counts_them_without_ids(open_app: OpenApp, simulated_day: SimulatedDay) -> None:
    integration = _busiest(simulated_day, "integration")
    figures = _figures(simulated_day, Scope.integration(integration))
    at = open_app(token(ViewerKind.PARTNER, integration))
    possible = figures.filter(pl.col("certainty") == "possible")["events"].sum()
    assert metrics(at)["Events delivered twice, possibly"] == f"{possible:,}"
    assert all(box.key != "double_delivery_job" for box in at.selectbox)
    text = page_text(at)
    assert not [d for ids in simulated_day.destinations.values() for d in ids if d in text]
