"""The trace search and fan-out completeness on the pages of a simulated day (docs/trace.md): a
customer finds its own events only, an engineer any, a partner has no search."""

from __future__ import annotations

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from app.access import ViewerKind
from queries import Scope, connect
from queries.trace import fanout
from tests.app.conftest import END, START, OpenApp, SimulatedDay, metrics, page_text, token


def _event(simulated_day: SimulatedDay, workspace: str) -> tuple[str, str, str]:
    """A retried event of `workspace`: its message id, destination and final outcome."""
    glob = f"{simulated_day.data_dir}/attempts/*/*/*.parquet"
    rows = duckdb.sql(
        f"SELECT events[1].message_id, destination_id, job_id FROM read_parquet('{glob}') "
        "WHERE workspace_id = $w AND attempt = 2 ORDER BY job_id LIMIT 1",
        params={"w": workspace},
    ).fetchall()
    assert rows, f"{workspace} has a retried job"
    message_id, destination, job = rows[0]
    last = duckdb.sql(
        f"SELECT outcome FROM read_parquet('{glob}') WHERE job_id = $j ORDER BY attempt DESC LIMIT 1",
        params={"j": job},
    ).fetchall()[0][0]
    return message_id, destination, last


def _search(at: AppTest, message_id: str) -> AppTest:
    box = at.text_input(key="message_id")
    box.set_value(message_id).run()
    assert not at.exception, at.exception
    return at


def _fates(at: AppTest) -> dict[str, str]:
    tables = [frame.value for frame in at.dataframe if "Fate" in frame.value.columns]
    assert len(tables) == 1, "one fate table"
    return dict(zip(tables[0]["Destination"], tables[0]["Fate"], strict=True))


def test_a_customer_traces_its_own_event(open_app: OpenApp, simulated_day: SimulatedDay) -> None:
    workspace = simulated_day.workspaces[0]
    message_id, destination, outcome = _event(simulated_day, workspace)
    at = _search(open_app(token(ViewerKind.WORKSPACE, workspace)), message_id)
    fates = _fates(at)
    assert fates[destination] == outcome.replace("retry", "retrying")
    assert set(fates) <= set(simulated_day.destinations[workspace])
    assert metrics(at)["Destinations of its source"] == str(len(fates))


def test_a_customer_cannot_find_another_workspaces_event(
    open_app: OpenApp, simulated_day: SimulatedDay
) -> None:
    mine, theirs = simulated_day.workspaces[0], simulated_day.workspaces[1]
    message_id, destination, _ = _event(simulated_day, theirs)
    for page in (None, "views/explorer.py"):
        at = _search(open_app(token(ViewerKind.WORKSPACE, mine), page=page), message_id)
        assert not [frame for frame in at.dataframe if "Fate" in frame.value.columns]
        assert any(f"No record of message `{message_id}` in workspace {mine}" in i.value for i in at.info)
        assert destination not in page_text(at)


def test_an_engineer_traces_any_workspaces_event_on_the_explorer(
    open_app: OpenApp, simulated_day: SimulatedDay
) -> None:
    workspace = simulated_day.workspaces[1]
    message_id, destination, outcome = _event(simulated_day, workspace)
    at = _search(open_app(token(ViewerKind.ENGINEER), page="views/explorer.py"), message_id)
    assert _fates(at)[destination] == outcome.replace("retry", "retrying")


@pytest.mark.parametrize("page", [None, "views/day.py", "views/retries.py"])
def test_a_partner_link_has_no_search(
    open_app: OpenApp, simulated_day: SimulatedDay, page: str | None
) -> None:
    at = open_app(token(ViewerKind.PARTNER, simulated_day.integrations[0]), page=page)
    assert not at.exception
    assert all(box.key != "message_id" for box in at.text_input)
    assert "Trace one event" not in page_text(at)
    assert "Fan-out completeness" not in page_text(at)


def test_the_customer_page_shows_fanout_completeness(open_app: OpenApp, simulated_day: SimulatedDay) -> None:
    workspace = simulated_day.workspaces[0]
    with connect(simulated_day.data_dir) as log:
        sources = fanout(log, Scope.workspace(workspace), START, END)
    assert sources.height and set(sources.get_column("workspace_id")) == {workspace}
    at = open_app(token(ViewerKind.WORKSPACE, workspace))
    assert "Events delivered to some" not in metrics(at)  # counted when asked: a slow figure on big days
    at.toggle(key="fanout").set_value(True).run()
    assert not at.exception
    cards = metrics(at)
    for column, label in [
        ("delivered_all", "Events delivered to all its destinations"),
        ("delivered_some", "Events delivered to some"),
        ("delivered_none", "Events delivered to none"),
    ]:
        assert cards[label] == f"{sources.get_column(column).sum():,}"
