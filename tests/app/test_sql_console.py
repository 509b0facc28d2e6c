"""The SQL console: engineers' queries run, and the sandbox refuses everything but reading the log."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from app.access import ViewerKind
from app.data import as_csv
from tests.app.conftest import OpenApp, SimulatedDay, token


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


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "outside the data directory"),
        ("SELECT * FROM read_text('{data_dir}/queue.sqlite3')", "outside the log's directories"),
        ("COPY (SELECT 1) TO '{data_dir}/attempts/out.csv'", "writing a file"),
        ("ATTACH '{data_dir}/other.duckdb' AS other", "attaching a database"),
        ("INSTALL httpfs", "installing an extension"),
        ("LOAD httpfs", "loading an extension"),
        ("SET enable_external_access = true", "changing a setting"),
        ("SELECT 1; SET threads = 8", "a second statement"),
        ("CREATE TABLE t AS SELECT 1", "creating a table"),
        ("SELECT * FROM glob('/**')", "listing files outside the log"),
    ],
)
def test_the_sandbox_refuses(open_app: OpenApp, simulated_day: SimulatedDay, sql: str, why: str) -> None:
    data_dir = simulated_day.data_dir
    (data_dir / "queue.sqlite3").touch()
    at = _run(_console(open_app), sql.format(data_dir=data_dir))
    assert at.error, f"the console ran {why}: {sql}"
    assert at.error[0].value.startswith("The query was refused or failed")
    assert not at.dataframe
    assert not (Path(data_dir) / "attempts" / "out.csv").exists()
    assert not (Path(data_dir) / "other.duckdb").exists()


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
