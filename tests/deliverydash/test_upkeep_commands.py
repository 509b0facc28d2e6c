"""`deliverydash compact` and `deliverydash retention` on a local log and on the object store."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.compaction import log_hours
from ingest.logstore import open_store
from ingest.rollup import ROLLUPS
from ingest.schema import rows_to_table
from ingest.writer import publish_hours
from queries.log import AttemptLog
from tests.ingest.rows import attempt_row

LONG_AGO = dt.datetime(2026, 3, 9, tzinfo=dt.UTC)


def deliverydash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deliverydash", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(params=["local", "s3"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    location = str(tmp_path / "data") if request.param == "local" else request.getfixturevalue("s3_log")
    store = open_store(location)
    for day in range(3):  # three days long past, three small files in hour 05 of each
        for part in range(3):
            at = LONG_AGO + dt.timedelta(days=day, hours=5, minutes=part)
            publish_hours(rows_to_table([attempt_row(day * 10 + part, at)]), store, prefix="outbox-")
    return location


def test_compact_merges_closed_hours_and_says_what_it_did(log_url: str) -> None:
    done = deliverydash("compact", "--log", log_url, "--grace", "0")
    assert done.returncode == 0, done.stderr
    assert "3 hours compacted (9 files merged into 3, 9 records); 0 superseded files deleted" in done.stdout
    assert "hours looked at" in done.stderr  # the progress bar
    again = deliverydash("compact", "--log", log_url, "--grace", "0")
    assert "0 hours compacted" in again.stdout and "9 superseded files deleted" in again.stdout
    assert all(
        hour.names == hour.live == {"compact-v000001-0.parquet"} for hour in log_hours(open_store(log_url))
    )
    with AttemptLog(log_url) as log:
        assert log.trusted_sql("SELECT count(*) FROM attempts").row(0) == (9,)


def test_retention_dry_run_lists_and_then_deletes_whole_days(log_url: str) -> None:
    keep = (dt.datetime.now(dt.UTC).date() - LONG_AGO.date()).days - 2  # the last of the three days stays
    listed = deliverydash("retention", "--log", log_url, "--days", str(keep), "--dry-run")
    assert listed.returncode == 0, listed.stderr
    files = 3 * (1 + len(ROLLUPS))  # 3 attempt files, each with its rollups
    assert f"2026-03-09: would delete {files} files" in listed.stdout
    assert f"2026-03-10: would delete {files} files" in listed.stdout
    assert "2026-03-11" not in listed.stdout
    assert len(list(open_store(log_url).list("attempts/"))) == 9
    deleted = deliverydash("retention", "--log", log_url, "--days", str(keep))
    assert deleted.returncode == 0, deleted.stderr
    assert "2 days older than" in deleted.stdout and "deleted" in deleted.stdout
    assert {hour.date for hour in log_hours(open_store(log_url))} == {"2026-03-11"}


def test_retention_without_a_retention_is_refused(tmp_path: Path) -> None:
    refused = deliverydash("retention", "--data-dir", str(tmp_path))
    assert refused.returncode == 2
    assert refused.stderr.startswith("deliverydash retention: no retention to apply")
