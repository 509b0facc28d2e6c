"""The SQL that docs/sql.md shows a user, run as a user would: a plain DuckDB over the files.

Its figures must match the named queries' on the fixture, so the page and
the package cannot drift apart. Each ```sql block on the page is preceded
by `<!-- test: NAME -->`; a block without one fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest

from ingest.rollup import connect_macros
from queries import AttemptLog, Scope, by_destination, day_report, funnel
from queries.loader import load_macros

from .conftest import D1, D2

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
BLOCK = re.compile(r"(?:<!-- test: (?P<name>[\w-]+) -->\n)?```sql\n(?P<sql>.*?)```", re.DOTALL)
#: The page's example day and data directory (as quoted paths begin), and what the fixture has instead.
DOC_DAY, DOC_NEXT_DAY, DOC_DATA_DIR = "2026-11-27", "2026-11-28", "'data/"


def doc_blocks() -> dict[str, str]:
    blocks = {}
    for match in BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        assert match["name"], f"untested SQL block in docs/sql.md:\n{match['sql']}"
        blocks[match["name"]] = match["sql"]
    return blocks


@pytest.fixture
def cli(fixture_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB session that has run the page's view definitions against the fixture.

    It has read `ingest/rollups/macros.sql` and `queries/_macros.sql` too, as the page tells CLI users to.
    """
    con = duckdb.connect(":memory:")
    con.execute(localize(doc_blocks()["view"], fixture_dir))
    connect_macros(con)
    con.execute(load_macros())
    yield con
    con.close()


def localize(sql: str, fixture_dir: Path) -> str:
    return (
        sql.replace(DOC_DAY, D1.date().isoformat())
        .replace(DOC_NEXT_DAY, D2.date().isoformat())
        .replace(DOC_DATA_DIR, f"'{fixture_dir.as_posix()}/")
    )


def run_doc(cli: duckdb.DuckDBPyConnection, name: str, fixture_dir: Path) -> pl.DataFrame:
    return cli.sql(localize(doc_blocks()[name], fixture_dir)).pl()


def test_every_block_is_known() -> None:
    assert set(doc_blocks()) == {
        "view",
        "day-events",
        "day-requests",
        "day-requests-raw",
        "funnel",
        "workspace-destinations",
        "error-templates",
        "raw-templates",
        "latency",
        "latency-histogram",
        "workspace-latency-histogram",
        "cohort-macro",
    }


def test_day_in_events_matches_day_report(
    cli: duckdb.DuckDBPyConnection, fixture_dir: Path, log: AttemptLog
) -> None:
    by_hand = run_doc(cli, "day-events", fixture_dir).row(0, named=True)
    report = day_report(log, Scope.all(), D1, D2).row(0, named=True)
    for key in [
        "events_received",
        "delivered_first_attempt",
        "delivered_eventually",
        "failed",
        "dropped",
        "skipped",
    ]:
        assert by_hand[key] == report[key], key
    assert by_hand["first_attempt_pct"] == round(report["delivered_first_attempt_pct"], 1)
    assert by_hand["eventually_pct"] == round(report["delivered_eventually_pct"], 1)
    assert by_hand["failed_pct"] == round(report["failed_pct"], 1)


def test_day_in_requests_matches_day_report(
    cli: duckdb.DuckDBPyConnection, fixture_dir: Path, log: AttemptLog
) -> None:
    by_hand = run_doc(cli, "day-requests", fixture_dir).row(0, named=True)
    report = day_report(log, Scope.all(), D1, D2).row(0, named=True)
    assert by_hand["requests"] == report["requests"] == 20
    pairs = {
        "auth_pct": "auth_requests_pct",
        "status_400_pct": "status_400_requests_pct",
        "status_429_pct": "status_429_requests_pct",
        "status_5xx_pct": "status_5xx_requests_pct",
        "network_pct": "network_requests_pct",
    }
    for doc_key, report_key in pairs.items():
        assert by_hand[doc_key] == round(report[report_key], 2), doc_key


def test_the_cohort_macro_gives_the_day_reports_figures(
    cli: duckdb.DuckDBPyConnection, fixture_dir: Path, log: AttemptLog
) -> None:
    by_hand = run_doc(cli, "cohort-macro", fixture_dir).row(0, named=True)
    report = day_report(log, Scope.workspace("acme"), D1, D2).row(0, named=True)
    assert by_hand["events_received"] > 0, "the comparison would prove nothing"
    for key, value in by_hand.items():
        # A plain sum is NULL where nothing matched (acme had no failures), and 0 in the report.
        assert (value or 0) == report[key], key


def test_funnel_matches(cli: duckdb.DuckDBPyConnection, fixture_dir: Path, log: AttemptLog) -> None:
    by_hand = run_doc(cli, "funnel", fixture_dir)
    stages = funnel(log, Scope.all(), D1, D2).filter(pl.col("kind") == "delivered")
    assert by_hand.get_column("attempt").to_list() == stages.get_column("attempt").to_list()
    assert by_hand.get_column("delivered_by_attempt").to_list() == stages.get_column("events").to_list()
    assert by_hand.get_column("pct").to_list() == [round(p, 1) for p in stages.get_column("pct")]


def test_workspace_destinations_match(
    cli: duckdb.DuckDBPyConnection, fixture_dir: Path, log: AttemptLog
) -> None:
    columns = ["destination_id", "requests", "events_received", "delivered_first_attempt", "failed"]
    by_hand = (
        run_doc(cli, "workspace-destinations", fixture_dir)
        .select(columns)
        # Plain sums are NULL where nothing matched, and DuckDB's HUGEINT arrives as a decimal.
        .with_columns(pl.exclude("destination_id").cast(pl.Int64).fill_null(0))
        .sort("destination_id")
    )
    named = by_destination(log, Scope.workspace("acme"), D1, D2).select(columns).sort("destination_id")
    assert by_hand.rows() == named.rows()
    assert by_hand.height == 2


@pytest.mark.parametrize(
    ("rollup", "raw"), [("day-requests", "day-requests-raw"), ("error-templates", "raw-templates")]
)
def test_rollup_and_raw_examples_agree(
    cli: duckdb.DuckDBPyConnection, fixture_dir: Path, rollup: str, raw: str
) -> None:
    from_rollup = run_doc(cli, rollup, fixture_dir)
    from_raw = run_doc(cli, raw, fixture_dir)
    assert from_rollup.height > 0
    # Sums of the rollups' BIGINT counts are HUGEINT, counts BIGINT: compare values, not types.
    assert sorted(from_rollup.rows()) == sorted(from_raw.rows())


@pytest.mark.parametrize(
    "name", ["error-templates", "latency", "latency-histogram", "workspace-latency-histogram"]
)
def test_other_examples_run(cli: duckdb.DuckDBPyConnection, fixture_dir: Path, name: str) -> None:
    assert run_doc(cli, name, fixture_dir).height > 0
