"""An existing distributed engine reads the log: Spark's counts over a compacted log equal DuckDB's.

The log is written as the engine writes it (small files, a few per hour,
from a simulated day), compacted, and the superseded files swept. Spark
reads a local copy (its `s3a://` connector comes from Maven, which these
machines cannot reach; docs/scaling.md has the table definitions over the
object store) with plain partition discovery, knowing nothing of manifests.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ingest.compaction import compact, log_hours
from ingest.logstore import LocalStore, open_store
from ingest.simulate import simulate_day
from ingest.writer import publish_hours
from queries.log import AttemptLog

DAY = dt.date(2026, 11, 27)
LATER = dt.datetime(2026, 11, 30, tzinfo=dt.UTC).timestamp()


@pytest.fixture(scope="module")
def compacted_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    simulated = tmp_path_factory.mktemp("simulated")
    simulate_day(10_000, simulated, date=DAY, workers=1)
    written = LocalStore(tmp_path_factory.mktemp("written"))
    store = LocalStore(simulated)
    day = pa.concat_tables(store.read_table(stored.key) for stored in store.list("attempts/date="))
    export = np.arange(day.num_rows) % 3
    for k in range(3):  # as three exports, each holding a share of every hour: three files an hour
        publish_hours(day.filter(pa.array(export == k)), written, prefix="outbox-")
    compact(written, clock=lambda: LATER)
    result = compact(written, clock=lambda: LATER + 3_600)  # sweeps the superseded files
    assert result.deleted > 0
    assert all(hour.names == hour.live for hour in log_hours(written))
    return written.root


def test_sparks_counts_by_outcome_and_status_code_equal_duckdbs(compacted_log: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(compacted_log / "attempts", copy / "attempts")  # what `aws s3 sync` would fetch
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("deliverydash-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    try:
        spark.read.parquet(str(copy / "attempts")).createOrReplaceTempView("attempts")
        by_spark = spark.sql(
            "SELECT outcome, coalesce(status_code, -1) AS status, count(*) AS n, "
            "count(DISTINCT attempt_id) AS ids FROM attempts GROUP BY 1, 2"
        ).collect()
        partitions = spark.sql("SELECT count(DISTINCT date), count(DISTINCT hour) FROM attempts").collect()
    finally:
        spark.stop()
    with AttemptLog(open_store(compacted_log)) as log:
        by_duckdb = log.trusted_sql(
            "SELECT outcome, coalesce(status_code, -1) AS status, count(*) AS n, "
            "count(DISTINCT attempt_id) AS ids FROM attempts GROUP BY 1, 2"
        )
        days_hours = log.trusted_sql("SELECT count(DISTINCT date), count(DISTINCT hour) FROM attempts").row(0)
    spark_rows = sorted((row["outcome"], row["status"], row["n"], row["ids"]) for row in by_spark)
    duckdb_rows = sorted(by_duckdb.iter_rows())
    assert spark_rows == duckdb_rows
    assert sum(row[2] for row in spark_rows) == 10_000
    assert len({row[1] for row in spark_rows}) > 5  # the simulated day's many status codes
    assert tuple(partitions[0]) == days_hours
