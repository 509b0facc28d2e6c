"""The SQL console: engineers' queries run, and the sandbox refuses everything but reading the log."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from app import data
from app.access import ViewerKind
from app.data import as_csv
from queries import Scope, api
from tests.app.conftest import END, MAIN, START, OpenApp, SimulatedDay, page_text, token
from tests.app.conftest import SECRET as SECRET_KEY
from tests.queries.escapes import (
    BOMBS,
    CATALOG,
    ESCAPES,
    PROCESS_LIMIT,
    SECRET,
    Case,
    Places,
    ids,
    make_places,
    measured,
    tree,
)

ROOT = Path(__file__).resolve().parents[2]


def _console(open_app: OpenApp) -> AppTest:
    return open_app(token(ViewerKind.ENGINEER), page="views/sql_console.py")


def _run(at: AppTest, sql: str) -> AppTest:
    at.text_area(key="sql").set_value(sql)
    at.button[0].click()
    return at.run()


def test_a_query_shows_its_rows_and_offers_a_csv(open_app: OpenApp, simulated_day: SimulatedDay) -> None:
    at = _run(_console(open_app), "SELECT count(*) AS n FROM attempts")
    assert not at.error, at.error[0].value if at.error else ""
    assert at.dataframe[0].value["n"][0] == 40_000
    assert "1 row(s), 1 column(s)" in at.main.caption[-1].value
    assert at.get("download_button")


def test_a_saved_example_fills_the_editor_and_runs(open_app: OpenApp) -> None:
    at = _console(open_app)
    at.selectbox[0].select("Requests per error class").run()
    assert "FROM outcomes" in at.text_area(key="sql").value
    at.button[0].click().run()
    assert not at.error
    assert "error_class" in at.dataframe[0].value.columns


@pytest.fixture(scope="module")
def places(simulated_day: SimulatedDay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Places]:
    """The escapes' targets, and a console sandbox whose worker starts where `.tmp` holds a file."""
    made = make_places(tmp_path_factory.mktemp("console-escapes"), simulated_day.data_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(made.workdir)
        data._sql_sandbox.clear()  # the next console query starts a sandbox here
        yield made
    data._sql_sandbox.clear()


def pages(simulated_day: SimulatedDay) -> tuple[object, ...]:
    """What the pages' shared log answers, and what its catalog holds."""
    log = data._log(str(simulated_day.data_dir))
    return (
        log.trusted_sql(CATALOG).rows(),
        api.by_destination(log, Scope.workspace(simulated_day.workspaces[0]), START, END).rows(),
        api.day_report(log, Scope.all(), START, END).rows(),
    )


@pytest.fixture(scope="module")
def escape_console(simulated_day: SimulatedDay, places: Places) -> Iterator[AppTest]:
    """One engineer's console session for every escape, as `open_app` opens it: each escape is
    refused and leaves the session as it was, so opening the app again for each (the home page's
    figures, then the console) would only repeat the same start."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DELIVERYDASH_DATA_DIR", str(simulated_day.data_dir))
        patch.setenv("DELIVERYDASH_SECRET", SECRET_KEY)
        at = AppTest.from_file(MAIN, default_timeout=60)
        at.query_params["token"] = token(ViewerKind.ENGINEER)
        at.run()
        yield at.switch_page("views/sql_console.py").run()


@pytest.mark.parametrize("case", ESCAPES, ids=ids(ESCAPES))
def test_an_escape_is_refused_and_changes_nothing(
    escape_console: AppTest, simulated_day: SimulatedDay, places: Places, case: Case
) -> None:
    at = escape_console
    before, seen = tree(places.data_dir, places.outside, places.workdir), pages(simulated_day)
    at = _run(at, places.fill(case.sql))
    assert at.error, f"the console ran {case.id}"
    message = at.error[0].value
    assert message.startswith("The query was refused or failed: ")
    assert re.search(case.refusal, message), message
    assert not at.dataframe
    assert SECRET not in page_text(at)
    assert tree(places.data_dir, places.outside, places.workdir) == before
    assert pages(simulated_day) == seen


REPLACEMENTS = [
    "CREATE OR REPLACE VIEW outcomes AS SELECT * REPLACE ('{mine}' AS workspace_id) FROM outcomes",
    "EXPLAIN (FORMAT json /* ) */) CREATE OR REPLACE VIEW outcomes AS "
    "SELECT * REPLACE ('{mine}' AS workspace_id) FROM outcomes",
    "CREATE OR REPLACE MACRO in_scope(kind, value, workspace_id, destination_id, integration) AS true",
    "CREATE TEMP VIEW outcomes AS SELECT * REPLACE ('{mine}' AS workspace_id) FROM outcomes",
]


def test_an_engineers_replaced_view_never_reaches_a_customers_page(
    open_app: OpenApp, simulated_day: SimulatedDay
) -> None:
    # Once, one engineer's query replaced `outcomes` in the connection every viewer's pages
    # share, and a customer's page showed every workspace's destinations.
    mine, other = simulated_day.workspaces[1], simulated_day.workspaces[0]
    console = _console(open_app)
    for replacement in REPLACEMENTS:
        console = _run(console, replacement.format(mine=mine))
        assert console.error, replacement
    customer = open_app(token(ViewerKind.WORKSPACE, mine))
    assert customer.title[0].value == "Customer delivery dashboard"
    text = page_text(customer)
    for destination in simulated_day.destinations[other]:
        assert destination not in text
    for destination in simulated_day.destinations[mine]:
        assert destination in text
    # And the console's own next query sees the views as they were.
    console = _run(
        console, f"SELECT count(DISTINCT workspace_id) AS n FROM outcomes WHERE workspace_id <> '{mine}'"
    )
    assert console.dataframe[0].value["n"][0] == len(simulated_day.workspaces) - 1


_BOMBS = """
import json, sys
from streamlit.testing.v1 import AppTest
import app.data
from app.access import ViewerKind
from tests.app.conftest import MAIN, token

at = AppTest.from_file(MAIN, default_timeout=300)
at.query_params["token"] = token(ViewerKind.ENGINEER)
at.run()
at.switch_page("views/sql_console.py").run()
said = []
queries = json.loads(sys.argv[1]) + [["SELECT 42 AS answer", 30]]
for sql, timeout_s in queries:
    app.data.SQL_TIMEOUT_S = timeout_s
    at.text_area(key="sql").set_value(sql)
    at.button[0].click()
    at.run()
    said.append([e.value for e in at.error] or [str(at.dataframe[0].value.iloc[0, 0])])
app.data.sql_sandbox().close()  # its workers end, and count in this process's children
print(json.dumps(said))
"""


@pytest.fixture(scope="module")
def bombs(simulated_day: SimulatedDay) -> tuple[dict[str, str], str, int]:
    """Every bomb through one console, then a query that should still run: messages, answer, peak size."""
    done = measured(
        [sys.executable, "-c", _BOMBS, json.dumps([[bomb.sql, bomb.timeout_s] for bomb in BOMBS])],
        cwd=ROOT,
        env={"DELIVERYDASH_DATA_DIR": str(simulated_day.data_dir), "DELIVERYDASH_SECRET": SECRET_KEY},
    )
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    messages = {bomb.id: said[index][0] for index, bomb in enumerate(BOMBS)}
    return messages, said[-1][0], done.peak_bytes


@pytest.mark.parametrize("bomb", BOMBS, ids=ids(BOMBS))
def test_a_bomb_is_stopped_within_its_limit(bombs: tuple[dict[str, str], str, int], bomb: Case) -> None:
    messages, answer, peak = bombs
    assert messages[bomb.id].startswith("The query was refused or failed: ")
    assert bomb.refusal in messages[bomb.id]
    assert answer == "42"  # the console goes on
    assert peak < PROCESS_LIMIT, f"{peak / 2**30:.2f} GiB"


def test_a_large_result_is_cut_at_the_row_limit(open_app: OpenApp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.data.SQL_MAX_ROWS", 100)
    at = _run(_console(open_app), "SELECT * FROM attempts")
    assert len(at.dataframe[0].value) == 100
    assert "more than 100 rows" in at.warning[-1].value


def test_a_result_with_nested_columns_downloads_as_csv(open_app: OpenApp) -> None:
    at = _run(_console(open_app), "SELECT attempt_id, events FROM attempts LIMIT 3")
    assert not at.exception and not at.error
    assert at.get("download_button")


def test_nested_values_become_json_in_the_csv() -> None:
    frame = pl.DataFrame(
        {"n": [1, 2], "events": [[{"message_id": "m1", "type": "track"}], []]},
    )
    rows = list(csv.DictReader(io.StringIO(as_csv(frame).decode())))
    assert [json.loads(row["events"]) for row in rows] == [[{"message_id": "m1", "type": "track"}], []]
    assert [row["n"] for row in rows] == ["1", "2"]


class _Sandbox:
    """Counts the workers asked for."""

    def __init__(self) -> None:
        self.started = 0

    def start(self) -> None:
        self.started += 1


def test_the_console_starts_a_worker_once_it_stays_on_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = _Sandbox()
    monkeypatch.setattr(data, "sql_sandbox", lambda: sandbox)
    data.start_sql_worker(after_s=0.01).join()
    assert sandbox.started == 1


def test_a_page_run_before_the_worker_starts_leaves_it_unstarted() -> None:
    # The viewer went on to another page: the worker's opening would share the cores with it.
    sandbox = _Sandbox()
    asked = time.monotonic()
    data.page_run_begins()
    data._start_unless_a_page_ran(sandbox, asked)  # type: ignore[arg-type]
    assert sandbox.started == 0
    data._start_unless_a_page_ran(sandbox, time.monotonic())  # type: ignore[arg-type]
    assert sandbox.started == 1
