"""The SQL in docs/attempt-log.md, written from that page alone, agrees with the query API."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from queries import Scope, connect, day_report
from tests.queries.conftest import SIMULATED_DAY

DOC = Path(__file__).resolve().parents[2] / "docs" / "attempt-log.md"
DAY = SIMULATED_DAY


def seed_table_sql(data_dir: Path) -> str:
    match = re.search(
        r"<!-- test: seed-table -->\n```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL
    )
    assert match, "docs/attempt-log.md lost its seed-table example"
    return match[1].replace("'data/", f"'{data_dir.as_posix()}/")


@pytest.fixture(scope="module")
def day(simulated_day_dir: Path) -> Path:
    return simulated_day_dir


def test_the_pages_sql_gives_the_day_reports_figures(day: Path) -> None:
    from_doc = duckdb.sql(seed_table_sql(day)).pl().row(0, named=True)
    with connect(day) as log:
        report = day_report(log, Scope.all(), DAY, DAY.replace(day=28)).row(0, named=True)
    assert from_doc.keys() <= report.keys()
    for name, value in from_doc.items():
        assert value == pytest.approx(report[name], abs=1e-9), name
