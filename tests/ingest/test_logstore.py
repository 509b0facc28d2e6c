"""The log store on a local directory and on a real S3-compatible server (SeaweedFS on loopback)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from ingest.logstore import LocalStore, LogStore, LogStoreError, S3Store, open_store
from tests.objectstore import BUCKET, S3Server


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LogStore:
    if request.param == "local":
        return open_store(tmp_path / "log")
    return open_store(request.getfixturevalue("s3_log"))


KEY = "attempts/date=2026-03-09/hour=22/outbox-b1.parquet"


def test_publish_lists_reads_and_deletes(store: LogStore) -> None:
    table = pa.table({"attempt_id": ["a", "b"], "n": [1, 2]})
    assert store.publish(KEY, table)
    assert [(f.key, f.size > 0) for f in store.list("attempts/")] == [(KEY, True)]
    assert store.read_table(KEY).to_pylist() == table.to_pylist()
    assert store.has_files("attempts/date=")
    assert not store.has_files("rollups/")
    assert store.exists(KEY) and not store.exists(KEY.replace("b1", "b"))
    store.delete([KEY, "attempts/date=2026-03-09/hour=22/gone.parquet"])
    assert list(store.list("attempts/")) == []
    with pytest.raises(FileNotFoundError):
        store.read_table(KEY)


def test_an_exclusive_publish_keeps_what_is_there(store: LogStore) -> None:
    first, second = pa.table({"n": [1]}), pa.table({"n": [2]})
    assert store.publish(KEY, first, exclusive=True)
    assert not store.publish(KEY, second, exclusive=True)
    assert store.read_table(KEY).to_pylist() == [{"n": 1}]
    assert store.publish(KEY, second)  # not exclusive: replaced
    assert store.read_table(KEY).to_pylist() == [{"n": 2}]


def test_duckdb_polars_and_arrow_read_the_same_files(store: LogStore) -> None:
    for hour in (1, 2):
        store.publish(f"attempts/date=2026-03-09/hour={hour:02d}/f.parquet", pa.table({"n": [hour] * hour}))
    glob = store.path("attempts/date=*/hour=*/*.parquet")
    con = duckdb.connect()
    store.register(con)
    assert con.execute(f"SELECT sum(n), count(*) FROM read_parquet('{glob}')").fetchone() == (5, 3)
    frame = pl.scan_parquet(glob, storage_options=store.storage_options()).collect()
    assert frame.get_column("n").sum() == 5
    if isinstance(store, S3Store):
        dataset = ds.dataset(f"{store.bucket}/{store.prefix}/attempts", filesystem=store.filesystem)
    else:
        dataset = ds.dataset(store.path("attempts"))
    assert dataset.to_table().num_rows == 3


def test_a_local_store_skips_unpublished_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "attempts" / "_tmp").mkdir(parents=True)
    (tmp_path / "attempts" / "_tmp" / "x.parquet.1.ab.tmp").write_bytes(b"half")
    assert list(store.list("attempts/")) == []


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("s3://", "names no bucket"),
        ("gs://bucket/x", "not gs://"),
    ],
)
def test_a_location_that_is_no_store_is_named(location: str, message: str) -> None:
    with pytest.raises(LogStoreError, match=message):
        open_store(location)


def test_half_a_key_pair_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(LogStoreError, match="AWS_SECRET_ACCESS_KEY is not set"):
        open_store("s3://bucket/log")


def test_an_unreachable_or_refusing_store_is_one_clear_error(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    store = open_store(f"s3://{BUCKET}/denied")
    with pytest.raises(LogStoreError) as refused:
        store.publish(KEY, pa.table({"n": [1]}))
    assert f"s3://{BUCKET}/denied/{KEY}" in str(refused.value)
    assert "wrong-secret-value" not in str(refused.value)
    with pytest.raises(LogStoreError):
        list(store.list("attempts/"))


def test_the_secret_key_is_never_in_a_stores_or_its_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-123")
    store = open_store("s3://bucket/log")
    assert isinstance(store, S3Store)
    for shown in (repr(store), repr(store.settings), str(store.settings), store.location):
        assert "very-secret-value-123" not in shown
