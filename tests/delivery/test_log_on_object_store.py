"""One engine writes its attempt log to a real S3-compatible store; the commands and other readers read it.

The engine runs as `deliverydash serve` with `[log] url = "s3://..."` (its
credentials in AWS_* variables), events go in through the real Segment
client, a loopback partner answers; then `report`, `sql` and `repair` read
the objects with `--log`, and polars and pyarrow read the same objects
directly. The SQL console's sandbox holds on the store: only the log's
prefix is readable.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import polars as pl
import pyarrow.dataset as ds
import pytest

from deliverydash.partner_simulator.config import PartnerSpec
from deliverydash.partner_simulator.profiles import Healthy
from deliverydash.partner_simulator.servers import partners_in_thread
from ingest.compaction import log_hours
from ingest.day_rollups import DAY_FILES
from ingest.logstore import S3Store, open_store
from ingest.rollup import ROLLUPS
from ingest.schema import rows_to_table
from ingest.writer import publish_hours
from queries.log import AttemptLog
from tests.delivery.engine_process import free_port, start_engine, wait_for
from tests.delivery.test_fleet import ADMIN_TOKEN, WRITE_KEY, destination, drained, send
from tests.ingest.rows import attempt_row
from tests.objectstore import BUCKET, S3Server, log_connection

HOOKS = ["hook-a", "hook-b"]
OLD_HOUR = dt.datetime(2026, 3, 9, 10, tzinfo=dt.UTC)


def write_config(path: Path, data_dir: Path, log_url: str, destinations: str) -> Path:
    path.write_text(
        f"""[engine]
data_dir = "{data_dir}"
allow_private_targets = true
admin_token = "{ADMIN_TOKEN}"
export_interval_s = 0.2

[log]
url = "{log_url}"
compact_interval_s = 0.5

[[sources]]
id = "web"
workspace = "acme"
write_key = "{WRITE_KEY}"
{destinations}""",
        encoding="utf-8",
    )
    return path


def deliverydash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deliverydash", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def written_log(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """An engine's log on the object store: 300 events to two destinations, the engine stopped."""
    monkeypatch = pytest.MonkeyPatch()
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    folder = tmp_path_factory.mktemp("engine")
    log_url = f"s3://{BUCKET}/engine-{uuid.uuid4().hex[:8]}"
    sent = [str(uuid.uuid4()) for _ in range(300)]
    # An hour long closed, as an exporter left it: four small files, for the engine to compact.
    old_hour = [attempt_row(n, OLD_HOUR + dt.timedelta(minutes=n)) for n in range(8)]
    for part in (old_hour[0:2], old_hour[2:4], old_hour[4:6], old_hour[6:8]):
        publish_hours(rows_to_table(part), open_store(log_url), prefix="outbox-")
    try:
        with partners_in_thread([PartnerSpec("hooks", Healthy())], control_port=None) as partners:
            hooks = "".join(destination(name, f"{partners.url('hooks')}/{name}") for name in HOOKS)
            config = write_config(folder / "engine.toml", folder / "data", log_url, hooks)
            port = free_port()
            engine = start_engine(config, port)
            try:
                assert send(port, sent) == []
                wait_for(lambda: drained(port), timeout_s=60)
                wait_for(lambda: open_store(log_url).has_files("manifests/2026-03-09T10-v000001.json"), 60)
            finally:
                engine.terminate()
                output, _ = engine.communicate(timeout=60)
            assert engine.returncode == 0, output
            assert f"attempt log at {log_url}" in output
            assert s3_server.secret_key not in output
        yield log_url, sent
    finally:
        monkeypatch.undo()


@pytest.fixture
def store_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)


def test_the_engine_compacts_closed_hours(written_log: tuple[str, list[str]], store_env: None) -> None:
    log_url, _ = written_log
    hours = {(hour.date, hour.hour): hour for hour in log_hours(open_store(log_url))}
    closed = hours[("2026-03-09", 10)]
    assert closed.live == {"compact-v000001-0.parquet"}
    assert len(closed.names) == 5  # the four small files stay for their grace period, not counted
    counted = (
        log_connection(log_url)
        .execute("SELECT count(*) FROM attempts WHERE date = DATE '2026-03-09'")
        .fetchone()
    )
    assert counted == (8 + 4 * 2,)  # a bare glob still sees the superseded files until they go
    with AttemptLog(log_url) as log:
        row = log.trusted_sql("SELECT count(*) FROM attempts WHERE date = DATE '2026-03-09'").row(0)
        assert row == (8,)  # the log's views honour the manifest
    # Today's hours are open: left as the exporter wrote them.
    assert all(hour.state is None for key, hour in hours.items() if key[0] != "2026-03-09")


def test_the_engine_writes_only_to_the_object_store(
    written_log: tuple[str, list[str]], store_env: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log_url, _ = written_log
    keys = [stored.key for stored in open_store(log_url).list("") if not stored.key.startswith("manifests/")]
    assert any(key.startswith("attempts/date=") for key in keys)
    assert any(key.startswith("rollups/outcomes/date=") for key in keys)
    # Each attempt file has one file of each rollup, and the closed day one day file of each but
    # the message index (it has none), and the day's summary of double deliveries.
    attempt_files = [key for key in keys if key.startswith("attempts/")]
    day_files = [key for key in keys if key.startswith("rollups/by_day/")]
    rollup_files = [key for key in keys if key.startswith("rollups/")]
    assert len(rollup_files) == len(ROLLUPS) * len(attempt_files) + len(day_files)
    assert sorted({key.split("/")[3] for key in day_files}) == ["date=2026-03-09"]
    assert len(day_files) == len(DAY_FILES)


def test_report_and_sql_read_the_object_store(written_log: tuple[str, list[str]], store_env: None) -> None:
    log_url, sent = written_log
    report = deliverydash("report", "--log", log_url)
    assert report.returncode == 0, report.stderr
    assert f"{len(sent) * len(HOOKS):,}" in report.stdout  # the day's jobs (an event per destination)
    counted = deliverydash(
        "sql",
        "--log",
        log_url,
        "SELECT count(DISTINCT e.message_id) AS events, count(*) AS requests "
        "FROM attempts, unnest(events) AS u(e) WHERE outcome = 'delivered' AND destination_id LIKE 'hook-%'",
    )
    assert counted.returncode == 0, counted.stderr
    assert str(len(sent)) in counted.stdout
    repair = deliverydash("repair", "--log", log_url)
    assert repair.returncode == 0, repair.stderr
    assert "in step" in repair.stdout


def test_the_sql_sandbox_reads_only_the_logs_prefix(
    written_log: tuple[str, list[str]], store_env: None, s3_server: S3Server
) -> None:
    log_url, _ = written_log
    with s3_server.filesystem().open_output_stream(f"{BUCKET}/private/secret.csv") as out:
        out.write(b"password\nhunter2\n")
    for statement in (
        f"SELECT * FROM read_csv('s3://{BUCKET}/private/secret.csv')",
        f"SELECT * FROM glob('s3://{BUCKET}/*')",
        "SELECT * FROM read_csv('/etc/passwd')",
    ):
        refused = deliverydash("sql", "--log", log_url, statement)
        assert refused.returncode == 2, (statement, refused.stdout)
        assert "hunter2" not in refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr


def test_polars_and_pyarrow_read_the_same_objects(
    written_log: tuple[str, list[str]], store_env: None
) -> None:
    log_url, sent = written_log
    store = open_store(log_url)
    assert isinstance(store, S3Store)
    frame = pl.scan_parquet(
        store.path("attempts/date=*/hour=*/*.parquet"), storage_options=store.storage_options()
    ).collect()
    delivered = frame.filter((pl.col("outcome") == "delivered") & pl.col("destination_id").is_in(HOOKS))
    by_duckdb = log_connection(log_url).execute(
        "SELECT count(*) FROM attempts WHERE outcome = 'delivered' AND destination_id LIKE 'hook-%'"
    )
    assert by_duckdb.fetchone() == (delivered.height,)
    messages = delivered.explode("events").get_column("events").struct.field("message_id")
    assert messages.n_unique() == len(sent)
    dataset = ds.dataset(
        f"{store.bucket}/{store.prefix}/attempts", filesystem=store.filesystem, partitioning="hive"
    )
    assert dataset.count_rows() == frame.height


def test_a_store_it_cannot_reach_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-not-to-print")
    report = deliverydash("report", "--log", f"s3://{BUCKET}/nowhere")
    assert report.returncode == 2
    assert report.stderr.startswith("deliverydash report: ")
    assert "Traceback" not in report.stderr and "secret-not-to-print" not in report.stderr
    config = write_config(tmp_path / "engine.toml", tmp_path / "data", f"s3://{BUCKET}/nowhere", "")
    serve = deliverydash("serve", "--config", str(config), "--port", str(free_port()))
    assert serve.returncode == 2
    assert "the engine did not start: the attempt log: listing s3://" in serve.stderr
    assert "Traceback" not in serve.stderr
