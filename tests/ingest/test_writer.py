"""Partitioning, ordering, buffering and temporary files of `ingest.writer`."""

from __future__ import annotations

import datetime as dt
import glob
import os
import re
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ingest.files import STALE_TMP_S, TMP_DIR, attempts_glob, attempts_root, clean_temporary
from ingest.rollup import ROLLUPS, RollupBuilder, build_rollups
from ingest.schema import ATTEMPT_SCHEMA, rows_to_table
from ingest.writer import SORT_KEYS, AttemptLogWriter, write_partitioned
from tests.ingest.rows import UTC, attempt_row, spread_table

EVENING = dt.datetime(2026, 3, 9, 22, 0, tzinfo=UTC)
FILE_PATTERN = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/[0-9A-HJKMNP-TV-Z]{26}\.parquet")


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def published(data_dir: Path) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(attempts_glob(data_dir)))


def read_all(data_dir: Path) -> pa.Table:
    files = published(data_dir)
    if not files:
        return ATTEMPT_SCHEMA.empty_table()
    return pa.concat_tables(pq.ParquetFile(f).read() for f in files)


def partitions(data_dir: Path) -> dict[tuple[str, int], pa.Table]:
    """Rows by (date, hour) of the directory they were published in."""
    found: dict[tuple[str, int], list[pa.Table]] = {}
    for path in published(data_dir):
        match = FILE_PATTERN.search(path.relative_to(attempts_root(data_dir)).as_posix())
        assert match, path
        found.setdefault((match[1], int(match[2])), []).append(pq.ParquetFile(path).read())
    return {key: pa.concat_tables(parts) for key, parts in found.items()}


def by_id(table: pa.Table) -> pa.Table:
    return table.sort_by("attempt_id").combine_chunks()


def every_file(data_dir: Path) -> list[Path]:
    return sorted(p for p in attempts_root(data_dir).rglob("*") if p.is_file())


def midnight_rows() -> pa.Table:
    """Rows on both sides of midnight UTC, some given in another time zone."""
    plus_two = dt.timezone(dt.timedelta(hours=2))
    starts = [
        EVENING + dt.timedelta(minutes=10),
        EVENING + dt.timedelta(minutes=59, seconds=59, microseconds=999_999),
        EVENING + dt.timedelta(hours=1, minutes=30),
        EVENING + dt.timedelta(hours=1, minutes=59, seconds=59, microseconds=999_999),
        EVENING + dt.timedelta(hours=2),  # midnight exactly
        EVENING + dt.timedelta(hours=2, microseconds=1),
        EVENING + dt.timedelta(hours=2, minutes=45),
        EVENING + dt.timedelta(hours=7, minutes=1),
        dt.datetime(2026, 3, 10, 1, 30, tzinfo=plus_two),  # 23:30 UTC on the 9th
        dt.datetime(2026, 3, 10, 7, 15, tzinfo=plus_two),  # 05:15 UTC on the 10th
    ]
    return rows_to_table([attempt_row(i, s) for i, s in enumerate(starts)])


def test_files_land_in_their_utc_hour(tmp_path: Path) -> None:
    table = midnight_rows()
    paths = write_partitioned(table, tmp_path)
    assert sorted(paths) == published(tmp_path)
    found = partitions(tmp_path)
    assert {key: part.num_rows for key, part in found.items()} == {
        ("2026-03-09", 22): 2,
        ("2026-03-09", 23): 3,
        ("2026-03-10", 0): 3,
        ("2026-03-10", 5): 2,
    }
    for (date, hour), part in found.items():
        start = dt.datetime.fromisoformat(date).replace(hour=hour, tzinfo=UTC)
        for started in part.column("started_at").to_pylist():
            assert start <= started < start + dt.timedelta(hours=1)


def test_partitioning_keeps_every_row_unchanged(tmp_path: Path) -> None:
    table = midnight_rows()
    write_partitioned(table, tmp_path)
    assert by_id(read_all(tmp_path)).equals(by_id(table))


def test_rows_in_each_file_follow_the_sort_keys(tmp_path: Path) -> None:
    table = spread_table(3, 200, start=EVENING)
    write_partitioned(table, tmp_path)
    files = published(tmp_path)
    assert len(files) == 3
    for path in files:
        part = pq.ParquetFile(path).read()
        assert part.num_rows == 200
        assert part.equals(part.sort_by(SORT_KEYS))
        keys = list(zip(*(part.column(k).to_pylist() for k, _ in SORT_KEYS), strict=True))
        assert keys == sorted(keys)


def test_presorted_path_gives_the_same_partitions(tmp_path: Path) -> None:
    table = spread_table(4, 150, start=EVENING)
    write_partitioned(table, tmp_path / "sorted")
    hour = pc.floor_temporal(table.column("started_at"), unit="hour")
    presorted = (
        table.append_column("_hour", hour).sort_by([("_hour", "ascending"), *SORT_KEYS]).drop_columns("_hour")
    )
    paths = write_partitioned(presorted, tmp_path / "presorted", presorted=True)
    assert len(paths) == 4
    expected, got = partitions(tmp_path / "sorted"), partitions(tmp_path / "presorted")
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key].equals(expected[key]), key


def test_writer_flushes_at_max_rows(tmp_path: Path) -> None:
    with AttemptLogWriter(tmp_path, max_rows=5, clock=FakeClock()) as writer:
        writer.write([attempt_row(i, EVENING) for i in range(3)])
        assert published(tmp_path) == []
        assert writer.buffered_rows == 3
        writer.write([attempt_row(i, EVENING) for i in range(3, 6)])
        assert writer.buffered_rows == 0
        assert writer.rows_written == 6
        assert read_all(tmp_path).num_rows == 6
        writer.write([attempt_row(6, EVENING)])
        assert writer.buffered_rows == 1
    assert writer.rows_written == 7
    assert read_all(tmp_path).num_rows == 7


def test_writer_flushes_by_age_on_write(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = AttemptLogWriter(tmp_path, max_age_s=10.0, clock=clock)
    writer.write([attempt_row(1, EVENING)])
    clock.now += 9.999
    writer.write([attempt_row(2, EVENING)])
    assert published(tmp_path) == []
    clock.now += 0.001
    writer.write([attempt_row(3, EVENING)])
    assert writer.buffered_rows == 0
    assert sorted(read_all(tmp_path).column("attempt_id").to_pylist()) == [
        "att_00000001",
        "att_00000002",
        "att_00000003",
    ]


def test_age_counts_from_the_oldest_buffered_row(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = AttemptLogWriter(tmp_path, max_age_s=10.0, clock=clock)
    writer.write([attempt_row(1, EVENING)])
    writer.flush()
    clock.now += 60.0
    writer.write([attempt_row(2, EVENING)])  # a fresh buffer: its age starts now
    assert writer.buffered_rows == 1
    clock.now += 9.0
    writer.flush_if_due()
    assert writer.buffered_rows == 1
    clock.now += 1.0
    writer.flush_if_due()
    assert writer.buffered_rows == 0
    assert read_all(tmp_path).num_rows == 2


def test_flush_if_due_waits_for_max_age(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = AttemptLogWriter(tmp_path, max_age_s=5.0, clock=clock)
    writer.flush_if_due()  # nothing buffered: nothing to do, whatever the time
    writer.write([attempt_row(1, EVENING)])
    clock.now += 4.0
    writer.flush_if_due()
    assert published(tmp_path) == []
    clock.now += 1.0
    writer.flush_if_due()
    assert read_all(tmp_path).num_rows == 1
    assert writer.files_written == published(tmp_path)


def test_close_publishes_the_rest(tmp_path: Path) -> None:
    writer = AttemptLogWriter(tmp_path, clock=FakeClock())
    writer.write(midnight_rows())
    assert published(tmp_path) == []
    writer.close()
    assert writer.buffered_rows == 0
    assert by_id(read_all(tmp_path)).equals(by_id(midnight_rows()))
    assert sorted(writer.files_written) == published(tmp_path)


def test_context_exit_publishes_even_after_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), AttemptLogWriter(tmp_path, clock=FakeClock()) as writer:
        writer.write(midnight_rows().to_batches()[0])
        raise RuntimeError("the engine stopped")
    assert read_all(tmp_path).num_rows == midnight_rows().num_rows


def test_empty_writes_publish_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    with AttemptLogWriter(tmp_path, max_rows=1, max_age_s=0.0, clock=clock) as writer:
        writer.write([])
        writer.write(ATTEMPT_SCHEMA.empty_table())
        clock.now += 100.0
        writer.flush_if_due()
        assert writer.flush() == []
    assert writer.rows_written == 0
    assert writer.files_written == []
    assert write_partitioned(ATTEMPT_SCHEMA.empty_table(), tmp_path) == []
    assert not attempts_root(tmp_path).exists()


def test_nothing_but_parquet_is_ever_in_the_glob(tmp_path: Path) -> None:
    with AttemptLogWriter(tmp_path, max_rows=100) as writer:
        for offset in range(0, 1_000, 250):
            writer.write(spread_table(2, 125, start=EVENING, offset=offset))
            assert all(p.suffix == ".parquet" for p in published(tmp_path))
    files = every_file(tmp_path)
    assert files == published(tmp_path)  # and the _tmp dir is left empty
    assert len(files) == 8
    assert read_all(tmp_path).num_rows == 1_000


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_clean_temporary_removes_only_stale_tmp_files(tmp_path: Path) -> None:
    write_partitioned(midnight_rows(), tmp_path)
    tmp_dir = attempts_root(tmp_path) / TMP_DIR
    stale, fresh, other = tmp_dir / "a.parquet.tmp", tmp_dir / "b.parquet.tmp", tmp_dir / "c.parquet"
    for path in (stale, fresh, other):
        path.write_bytes(b"half a file")
    _age(stale, STALE_TMP_S + 60)
    _age(other, STALE_TMP_S + 60)
    _age(fresh, STALE_TMP_S - 60)
    for path in published(tmp_path):
        _age(path, STALE_TMP_S + 60)
    before = published(tmp_path)

    assert clean_temporary(attempts_root(tmp_path)) == 1
    assert not stale.exists()
    assert fresh.exists() and other.exists()
    assert published(tmp_path) == before
    assert clean_temporary(attempts_root(tmp_path), older_than_s=30) == 1
    assert not fresh.exists()


def test_clean_temporary_without_a_tmp_dir(tmp_path: Path) -> None:
    assert clean_temporary(attempts_root(tmp_path)) == 0


def test_writer_start_clears_stale_tmp_files(tmp_path: Path) -> None:
    tmp_dir = attempts_root(tmp_path) / TMP_DIR
    tmp_dir.mkdir(parents=True)
    stale, fresh = tmp_dir / "dead.parquet.tmp", tmp_dir / "alive.parquet.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    _age(stale, STALE_TMP_S + 1)
    AttemptLogWriter(tmp_path)
    assert not stale.exists()
    assert fresh.exists()


def test_prefix_starts_every_file_name(tmp_path: Path) -> None:
    paths = write_partitioned(midnight_rows(), tmp_path, prefix="engine-")
    assert paths == published(tmp_path)
    assert all(p.name.startswith("engine-") and p.suffix == ".parquet" for p in paths)
    assert read_all(tmp_path).num_rows == midnight_rows().num_rows


def test_a_kept_rollup_connection_builds_each_batch_from_its_own_rows() -> None:
    first = spread_table(2, 40, start=EVENING)
    # Other workspaces, a retried delivery and a request with no answer: rows the first batch lacks.
    second = rows_to_table(
        [
            attempt_row(900, EVENING, workspace_id="ws_other", attempt=2),
            attempt_row(
                901,
                EVENING,
                workspace_id="ws_other",
                status_code=None,
                error_class="network",
                error_code="read_timeout",
                outcome="retrying",
            ),
        ]
    )
    with RollupBuilder() as builder:
        builder.build(first)
        with pytest.raises(duckdb.Error):  # a batch that cannot be aggregated leaves nothing behind
            builder.build(first.drop_columns(["outcome"]))
        kept = builder.build(second)
    assert set(kept) == set(ROLLUPS)
    for rollup, rows in build_rollups(second).items():
        assert kept[rollup].equals(rows), rollup
    assert kept["outcomes"].column("workspace_id").to_pylist() == ["ws_other"] * kept["outcomes"].num_rows
