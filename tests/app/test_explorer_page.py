"""The error explorer over a simulated day: the latest failed attempts, and one job's attempt
history once a job is picked (from the list or from the link)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.access import ViewerKind
from queries import Scope, api, connect
from tests.app.conftest import OpenApp, SimulatedDay, token


def _histories(at: AppTest) -> list[list[int]]:
    """The attempt numbers of every job history table on the page."""
    return [
        frame.value["attempt"].tolist()
        for frame in at.dataframe
        if "attempt" in frame.value.columns and "job_id" not in frame.value.columns
    ]


def _job_picker(at: AppTest):  # type: ignore[no-untyped-def]
    (picker,) = [box for box in at.selectbox if box.label == "Job"]
    return picker


def test_a_job_history_is_read_once_a_job_is_picked(open_app: OpenApp, simulated_day: SimulatedDay) -> None:
    workspace = simulated_day.workspaces[0]
    at = open_app(token(ViewerKind.WORKSPACE, workspace), page="views/explorer.py")
    assert not at.exception
    picker = _job_picker(at)
    assert picker.value is None and picker.options, "jobs are offered, none is read before one is picked"
    assert _histories(at) == []

    job = picker.options[0]
    at = picker.select(job).run()
    assert not at.exception
    with connect(simulated_day.data_dir) as log:
        expected = api.job_history(log, Scope.workspace(workspace), job)
    assert expected.height
    assert _histories(at) == [expected.get_column("attempt").to_list()]


def test_a_link_naming_a_job_shows_its_history(open_app: OpenApp, simulated_day: SimulatedDay) -> None:
    workspace = simulated_day.workspaces[0]
    at = open_app(token(ViewerKind.WORKSPACE, workspace), page="views/explorer.py")
    job = _job_picker(at).options[-1]
    at = open_app(token(ViewerKind.WORKSPACE, workspace), page="views/explorer.py", params={"job": job})
    assert not at.exception
    assert _job_picker(at).value == job
    with connect(simulated_day.data_dir) as log:
        expected = api.job_history(log, Scope.workspace(workspace), job)
    assert _histories(at) == [expected.get_column("attempt").to_list()]


def test_the_partner_page_s_integration_does_not_filter_the_explorer(open_app: OpenApp) -> None:
    fresh = open_app(token(ViewerKind.ENGINEER), page="views/explorer.py")
    after_partner = open_app(token(ViewerKind.ENGINEER), page="views/partner.py")
    after_partner.switch_page("views/retries.py").run()  # the picker's key outlived the partner page
    after_partner.switch_page("views/explorer.py").run()
    assert not after_partner.exception

    fresh_tables, tables = (
        [frame.value for frame in fresh.dataframe],
        [frame.value for frame in after_partner.dataframe],
    )
    assert fresh_tables and len(tables) == len(fresh_tables)
    assert all(table.equals(fresh_table) for table, fresh_table in zip(tables, fresh_tables, strict=True))
