"""A data directory written before `first_error_class` existed still answers every query.

Its attempt and `outcomes` files lack the column; the views read it as NULL
(docs/attempt-log.md): the retry figures then count a retried job's fate as
unknown (still retrying, missing from its class's curve), and nothing else changes.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from ingest.files import attempts_glob
from ingest.rollup import rollup_glob
from queries import AttemptLog, Scope, connect, day_report, retries, retry_recovery
from tests.queries.conftest import D1, D2, copy_log

COLUMN = "first_error_class"


def _drop_column(pattern: str) -> int:
    files = glob.glob(pattern)
    for name in files:
        table = pq.read_table(name)
        pq.write_table(table.drop_columns([COLUMN]), name)
    return len(files)


@pytest.fixture(scope="module")
def old_dir(fixture_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = copy_log(fixture_dir, tmp_path_factory.mktemp("old"))
    assert _drop_column(attempts_glob(data_dir)) > 0
    for rollup in ("outcomes", "integration_outcomes"):  # the rollups that have the column
        assert _drop_column(rollup_glob(data_dir, rollup)) > 0
    return data_dir


@pytest.fixture(scope="module")
def old(old_dir: Path) -> Iterator[AttemptLog]:
    with connect(old_dir) as opened:
        yield opened


def test_the_views_have_the_column_all_null(old: AttemptLog) -> None:
    for view in ("attempts", "outcomes"):
        counts = old.sql(f"SELECT count(*) AS n, count({COLUMN}) AS known FROM {view}").row(0)
        assert counts[0] > 0 and counts[1] == 0, view


def test_other_figures_are_unchanged(old: AttemptLog, log: AttemptLog) -> None:
    assert_frame_equal(day_report(old, Scope.all(), D1, D2), day_report(log, Scope.all(), D1, D2))


def test_retry_recovery_counts_retried_jobs_as_still_retrying(old: AttemptLog, log: AttemptLog) -> None:
    before, now = retry_recovery(old, Scope.all(), D1, D2), retry_recovery(log, Scope.all(), D1, D2)
    same = ["first_error_class", "first_failed", "not_retried", "retried"]
    assert_frame_equal(before.select(same), now.select(same))
    assert before.get_column("still_retrying").to_list() == before.get_column("retried").to_list()
    assert before.select("recovered", "failed", "dropped", "skipped").sum().row(0) == (0, 0, 0, 0)
    assert (
        now.get_column("recovered").sum() > 0
    )  # the fixture has recovered jobs, so the test means something


def test_retries_curves_miss_the_deliveries_after_a_first_failure(old: AttemptLog, log: AttemptLog) -> None:
    before, now = retries(old, Scope.all(), D1, D2), retries(log, Scope.all(), D1, D2)
    assert_frame_equal(
        before.select("first_error_class", "attempt", "events"),
        now.select("first_error_class", "attempt", "events"),
    )
    everyone = pl.col("first_error_class").is_null()
    assert_frame_equal(before.filter(everyone), now.filter(everyone))
    assert before.filter(~everyone).get_column("delivered").sum() == 0
    assert now.filter(~everyone).get_column("delivered").sum() > 0


def test_over_hours_one_old_file_among_new_ones_is_read_by_name(
    fixture_dir: Path, tmp_path: Path, log: AttemptLog
) -> None:
    # A range of hours reads its views through anchors (columns matched to today's, not by name):
    # a query reading a column that one file lacks, among files that have it, makes DuckDB refuse
    # the anchored read, and the log reads that range's dates by name from then on.
    data_dir = copy_log(fixture_dir, tmp_path)
    for rollup in ("outcomes", "integration_outcomes"):
        # The range's last file but one: files before and after it have the column.
        in_range = sorted(
            name for name in glob.glob(rollup_glob(data_dir, rollup)) if f"date={D1.date()}" in name
        )
        assert len(in_range) > 2
        pq.write_table(pq.read_table(in_range[-2]).drop_columns([COLUMN]), in_range[-2])
    start, end = D1 + timedelta(hours=1), D2 - timedelta(hours=1)
    with connect(data_dir) as mixed, connect(data_dir) as by_name:
        # A query that does not read the column reads the old file through the anchor all the same.
        assert_frame_equal(
            day_report(mixed, Scope.all(), start, end), day_report(log, Scope.all(), start, end)
        )
        assert not mixed._by_name_dates
        by_name._by_name_dates.update(str(D1.date() + timedelta(days=n)) for n in range(3))
        expected = retry_recovery(by_name, Scope.all(), start, end)
        assert_frame_equal(retry_recovery(mixed, Scope.all(), start, end), expected)
        assert mixed._by_name_dates  # the fallback was taken, so the test means something


def test_over_hours_a_log_of_today_s_files_is_read_through_anchors(tmp_path: Path, fixture_dir: Path) -> None:
    with connect(copy_log(fixture_dir, tmp_path)) as current:
        day_report(current, Scope.all(), D1 + timedelta(hours=1), D2 - timedelta(hours=1))
        assert current._anchors is not None and not current._by_name_dates


def test_under_a_key_value_folder_the_range_views_read_by_name(
    tmp_path: Path, fixture_dir: Path, log: AttemptLog
) -> None:
    # `env=prod` above the log's trees is one more Hive column of every file, which an anchor's path
    # lacks: DuckDB would refuse the anchored views, so a log there reads by name.
    data_dir = copy_log(fixture_dir, tmp_path / "env=prod")
    start, end = D1 + timedelta(hours=1), D2 - timedelta(hours=1)
    with connect(data_dir) as nested:
        assert_frame_equal(
            day_report(nested, Scope.all(), start, end), day_report(log, Scope.all(), start, end)
        )
        assert nested._anchors is None
