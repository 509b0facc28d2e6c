"""The retry what-if on the retries page: an engineer runs it, a customer's link does not see it."""

from __future__ import annotations

from app.access import ViewerKind
from tests.app.conftest import OpenApp, SimulatedDay, token

PAGE = "views/retries.py"


def test_an_engineer_runs_the_what_if_and_reads_each_schedule_beside_the_actual(open_app: OpenApp) -> None:
    at = open_app(token(ViewerKind.ENGINEER), page=PAGE)
    next(b for b in at.button if b.label == "Run the what-if").click().run()
    assert not at.exception
    table = at.dataframe[-1].value
    assert table["schedule"].tolist() == [
        "actual (from the log)",
        "actual schedule (engine defaults)",
        "longer: 15 attempts within 8 h",
        "shorter: 3 attempts",
    ]
    actual, replayed, longer, shorter = table.to_dict("records")
    assert actual["delivered"] == int(actual["delivered"])  # counted, not expected
    # More attempts cost requests and cannot deliver less; three attempts cannot deliver more.
    assert longer["requests"] > replayed["requests"] > shorter["requests"]
    assert longer["delivered"] >= replayed["delivered"] >= shorter["delivered"]


def test_a_customer_link_has_no_what_if(open_app: OpenApp, simulated_day: SimulatedDay) -> None:
    at = open_app(token(ViewerKind.WORKSPACE, simulated_day.workspaces[0]), page=PAGE)
    assert not at.exception
    assert "Run the what-if" not in [b.label for b in at.button]
