"""Compaction and retention of the attempt log, on a local directory and on a real S3-compatible store.

The concurrency test writes small files, compacts and queries at once, and
checks every query against the records published before it began and after
it ended: never a record counted twice (count = distinct attempt ids), never
one missed, in the raw log and in the rollups alike.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from ingest.compaction import compact, expire, log_hours
from ingest.logstore import LogStore, open_store
from ingest.manifests import ManifestCache, hidden_files
from ingest.rollup import ROLLUPS, out_of_step
from ingest.schema import rows_to_table
from ingest.writer import SORT_KEYS, publish_hours
from queries.log import AttemptLog
from tests.ingest.rows import attempt_row

DAY = dt.datetime(2026, 3, 9, tzinfo=dt.UTC)
LATER = (DAY + dt.timedelta(days=2)).timestamp()
#: Files the concurrency test writes (with their rollups), while compacting and querying.
WRITES = 16


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LogStore:
    if request.param == "local":
        return open_store(tmp_path / "log")
    return open_store(request.getfixturevalue("s3_log"))


def small_files(store: LogStore, hours: list[int], files: int, rows: int, start: int = 0) -> int:
    """`files` files of `rows` records in each hour of `hours`, as an exporter writes them; the next n."""
    n = start
    for _ in range(files):
        batch = []
        for hour in hours:
            for k in range(rows):
                at = DAY + dt.timedelta(hours=hour, seconds=(n * 7 + k) % 3600)
                batch.append(attempt_row(n, at, destination_id=f"dst_{n % 3}"))
                n += 1
        publish_hours(rows_to_table(batch), store, prefix="outbox-")
    return n


def counts(log: AttemptLog) -> tuple[int, int, int]:
    """Records and distinct attempt ids in one scan of `attempts`; records in the `outcomes` rollup."""
    records, ids = log.trusted_sql("SELECT count(*), count(DISTINCT attempt_id) FROM attempts").row(0)
    (rolled,) = log.trusted_sql("SELECT coalesce(sum(records), 0)::BIGINT FROM outcomes").row(0)
    return int(records), int(ids), int(rolled)


def test_closed_hours_become_one_sorted_file_and_readers_count_each_record_once(store: LogStore) -> None:
    total = small_files(store, [1, 2], files=12, rows=5)
    with AttemptLog(store) as log:
        assert counts(log) == (total, total, total)
        result = compact(store, clock=lambda: LATER)
        assert (result.hours, result.merged, result.written, result.rows) == (2, 24, 2, total)
        assert counts(log) == (total, total, total)
        # Within the grace period the small files are still there, hidden by the manifests.
        assert all(len(hour.names) == 13 and len(hour.live) == 1 for hour in log_hours(store))
        swept = compact(store, clock=lambda: LATER + 601)
        assert swept.hours == 0 and swept.deleted == 24
        # Swept: readers no longer leave the merged files out by name (a month of names would
        # make every view's filter enormous); they are gone.
        assert hidden_files(ManifestCache(store).hours()) == {}
        assert [sorted(hour.names) for hour in log_hours(store)] == [["compact-v000001-0.parquet"]] * 2
        assert counts(log) == (total, total, total)
        assert out_of_step(store, grace_s=0).files == 0
        # The output is sorted like every attempt file.
        (hour, *_) = log_hours(store)
        table = store.read_table(f"attempts/date=2026-03-09/hour=01/{min(hour.names)}")
        assert table.equals(table.sort_by(SORT_KEYS))
    # Nothing left to do, and a plain glob (Spark, polars) now reads the log as it is.
    assert compact(store, clock=lambda: LATER + 601).hours == 0


def test_an_open_hour_is_left_alone(store: LogStore) -> None:
    small_files(store, [3], files=3, rows=2)
    end_of_hour = (DAY + dt.timedelta(hours=4)).timestamp()
    assert compact(store, clock=lambda: end_of_hour + 3_599).hours == 0
    assert compact(store, clock=lambda: end_of_hour + 3_600).hours == 1


def test_a_file_that_arrives_after_compaction_counts_and_is_compacted_again(store: LogStore) -> None:
    total = small_files(store, [5], files=3, rows=4)
    compact(store, clock=lambda: LATER)
    total = small_files(store, [5], files=1, rows=4, start=total)  # a batch taken over late
    with AttemptLog(store) as log:
        assert counts(log) == (total, total, total)
        result = compact(store, clock=lambda: LATER + 1)
        assert (result.hours, result.merged) == (1, 2)  # version 1's output and the late file
        assert counts(log) == (total, total, total)
    (hour,) = log_hours(store)
    assert hour.live == {"compact-v000002-0.parquet"}


def test_a_compaction_that_died_before_it_was_done_hides_its_outputs_until_swept(store: LogStore) -> None:
    total = small_files(store, [6], files=3, rows=4)
    manifests = ManifestCache(store)

    class Died(Exception):
        pass

    publish = type(store).publish

    def die_after_first_output(self: LogStore, key: str, *args: object, **kwargs: object) -> bool:
        written = publish(self, key, *args, **kwargs)  # type: ignore[arg-type]
        if "compact-" in key and key.startswith("attempts/"):
            raise Died
        return written

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(store), "publish", die_after_first_output)
        with pytest.raises(Died):
            compact(store, clock=lambda: LATER)
    assert hidden_files(manifests.hours()) == {("2026-03-09", 6): {"compact-v000001-0.parquet"}}
    with AttemptLog(store) as log:
        assert counts(log) == (total, total, total)
        # The next run takes version 2; version 1's output goes once its grace is over.
        assert compact(store, clock=lambda: LATER + 1).hours == 1
        assert counts(log) == (total, total, total)
        assert compact(store, clock=lambda: LATER + 700).deleted == 3 + 1 + 1
        assert counts(log) == (total, total, total)
    (hour,) = log_hours(store)
    assert hour.names == {"compact-v000002-0.parquet"}


def test_writes_compactions_and_queries_at_once_never_count_twice_or_miss(store: LogStore) -> None:
    published = 0  # records whose files (and rollups) are all written
    begun = 0  # records whose files are being written, or are
    writing = threading.Event()
    writing.set()
    queried = threading.Event()  # a query ran since the last write: the writer waits for one
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer() -> None:
        nonlocal published, begun
        n = 0
        try:
            for round_ in range(WRITES):
                hours = [round_ % 3, 3 + round_ % 2]
                with lock:
                    begun = n + len(hours) * 3
                n = small_files(store, hours, files=1, rows=3, start=n)
                with lock:
                    published = n
                queried.clear()
                queried.wait(timeout=10)
        finally:
            writing.clear()

    def compactor() -> None:
        manifests = ManifestCache(store)
        try:
            while writing.is_set():
                # Every hour counts as closed: late files keep arriving, and each hour is
                # compacted again and again while queries run.
                compact(store, close_after_s=-10 * 86_400, grace_s=3_600, manifests=manifests)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=compactor)]
    for thread in threads:
        thread.start()
    checked = 0
    try:
        with AttemptLog(store) as log:
            while writing.is_set():
                with lock:
                    before = published
                records, ids, rolled = counts(log)
                with lock:
                    after = begun
                assert records == ids, (records, ids)  # never twice
                assert before <= records <= after, (before, records, after)  # never missed
                assert before <= rolled <= after, (before, rolled, after)  # the rollups too
                checked += 1
                queried.set()
    except BaseException as exc:
        errors.append(exc)
    finally:
        writing.clear()
        for thread in threads:
            thread.join()
    assert not errors, errors[0]
    assert checked >= WRITES // 2
    versions = max(hour.state.versions for hour in log_hours(store) if hour.state)
    assert versions >= 2  # hours were compacted again while queried
    with AttemptLog(store) as log:
        assert counts(log) == (published, published, published)


def test_retention_deletes_whole_days_with_their_rollups_and_manifests(store: LogStore) -> None:
    small_files(store, [23], files=2, rows=2)  # 2026-03-09
    next_day = DAY + dt.timedelta(days=1)
    publish_hours(rows_to_table([attempt_row(10_000, next_day + dt.timedelta(hours=1))]), store)
    compact(store, clock=lambda: LATER)
    before = {stored.key for stored in store.list("")}
    # On 2026-03-12 with 2 days kept: 03-10 and 03-11 stay, 03-09 goes.
    on_12th = (DAY + dt.timedelta(days=3, hours=5)).timestamp()
    planned = expire(store, 2, dry_run=True, clock=lambda: on_12th)
    assert [day.date for day in planned] == ["2026-03-09"]
    # Two small files and one compacted, each with its rollups, and two manifests.
    assert planned[0].files == (2 + 1) * (1 + len(ROLLUPS)) + 2 and planned[0].bytes > 0
    assert {stored.key for stored in store.list("")} == before  # a dry run deletes nothing
    assert expire(store, 2, clock=lambda: on_12th) == planned
    left = {stored.key for stored in store.list("")}
    assert left and all("2026-03-09" not in key for key in left)
    assert expire(store, 0, clock=lambda: on_12th) == []  # 0 keeps everything
    with AttemptLog(store) as log:
        assert counts(log) == (1, 1, 1)


def test_a_simulated_hour_of_one_file_is_not_rewritten(store: LogStore) -> None:
    publish_hours(pa.concat_tables([rows_to_table([attempt_row(1, DAY)])]), store)
    assert compact(store, clock=lambda: LATER).hours == 0


def test_a_compaction_swept_as_abandoned_while_it_ran_is_not_done(store: LogStore) -> None:
    total = small_files(store, [7], files=3, rows=2)
    publish = type(store).publish

    def swept_meanwhile(self: LogStore, key: str, *args: object, **kwargs: object) -> bool:
        if "compact-" in key and key.startswith("attempts/"):  # another run swept the begun manifest
            self.delete(stored.key for stored in self.list("manifests/"))
        return publish(self, key, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(store), "publish", swept_meanwhile)
        result = compact(store, clock=lambda: LATER)
    assert (result.hours, result.skipped) == (0, ["2026-03-09 07:00"])
    assert not any(stored.key.startswith("manifests/") for stored in store.list(""))
    with AttemptLog(store) as log:
        assert counts(log) == (total, total, total)  # the small files count; the orphan output does not
