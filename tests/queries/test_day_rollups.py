"""Day rollups (`ingest.day_rollups`): a range of whole days reads them, and never counts a record twice.

Every test compares a query over whole days with what the attempt files
hold at that moment, after the day files were built and then the day
changed under them (a late file, a compaction) or lost its hourly rollups
(which proves the day files are what is read).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from ingest.compaction import compact, expire
from ingest.day_rollups import DAY_DIR, DAY_FILES, build_days, day_digests, day_files
from ingest.logstore import LocalStore
from queries import Scope, api, connect
from queries.log import reads_days

from .conftest import (
    D0,
    D1,
    D2,
    D3,
    at,
    copy_log,
    job,
    ok,
    publish,
    raw_connection,
    retry,
    run_raw,
    server_503,
)

DAYS = ("2026-03-09", "2026-03-10", "2026-03-11")
#: A request whose answer never came: it may have been accepted (`maybe_accepted`).
TIMED_OUT = {"error_class": "timeout", "error_code": "ETIMEDOUT", "duration_ms": 10_000.0}
RANGE = (D1 - timedelta(days=1), D2 + timedelta(days=1))  # D0 to D2, three whole days


def requests_in_attempts(data_dir: Path, start: datetime, end: datetime) -> int:
    """Requests started in [start, end), counted from the attempt files (distinct ids)."""
    with connect(data_dir) as log:
        return int(
            log.sql(
                "SELECT count(DISTINCT attempt_id) AS n FROM attempts WHERE attempt >= 1 "
                f"AND started_at >= '{start.isoformat()}' AND started_at < '{end.isoformat()}'"
            ).item()
        )


def figures(data_dir: Path) -> dict[str, pl.DataFrame]:
    with connect(data_dir) as log:
        return {
            "day_report": api.day_report(log, Scope.all(), *RANGE),
            "daily": api.daily(log, Scope.all(), *RANGE),
            "by_destination": api.by_destination(log, Scope.all(), *RANGE).sort("destination_id"),
        }


def test_whole_days_read_the_day_rollups_and_hours_the_hourly_ones() -> None:
    assert reads_days("day_report", D1, D2)
    assert reads_days("hourly", D1, D1 + timedelta(days=2))
    assert not reads_days("hourly", D1, D2)  # one day: its hours
    assert not reads_days("day_report", D1, D1 + timedelta(hours=5))
    assert not reads_days("job_history", D1, D2)  # the raw log has no day files


def test_the_day_files_stand_for_their_days(fixture_dir: Path, tmp_path: Path) -> None:
    copy_log(fixture_dir, tmp_path)
    before = figures(tmp_path)
    result = build_days(LocalStore(tmp_path), clock=lambda: datetime(2026, 4, 1, tzinfo=UTC).timestamp())
    assert result.built == list(DAYS)
    # With the hourly rollups gone, whole days can only come from the day files.
    shutil.rmtree(tmp_path / "rollups" / "outcomes")
    after = figures(tmp_path)
    for name, frame in before.items():
        assert after[name].equals(frame), name
    assert before["day_report"].item(0, "requests") == requests_in_attempts(tmp_path, *RANGE) > 0


def test_a_day_still_open_is_not_built(fixture_dir: Path, tmp_path: Path) -> None:
    copy_log(fixture_dir, tmp_path)
    # An hour past the end of D1: D1's last hour is not closed yet, D0 is.
    now = (D2 + timedelta(minutes=30)).timestamp()
    assert build_days(LocalStore(tmp_path), clock=lambda: now).built == ["2026-03-09"]


def test_a_file_arriving_after_the_build_is_counted_once(fixture_dir: Path, tmp_path: Path) -> None:
    copy_log(fixture_dir, tmp_path)
    store = LocalStore(tmp_path)
    build_days(store, dates=DAYS)
    before = requests_in_attempts(tmp_path, *RANGE)
    publish(job("J13", "dst_acme_hook", at(D1, "10:14"), [ok(at(D1, "10:15"))]), tmp_path)
    # D1's digest is no day file's any more: D1 is read from its hourly files again.
    assert day_digests(store)["2026-03-10"] not in day_files(store)[("outcomes", "2026-03-10")]
    report = figures(tmp_path)["day_report"]
    assert report.item(0, "requests") == requests_in_attempts(tmp_path, *RANGE) == before + 1


def test_a_compaction_after_the_build_counts_nothing_twice(fixture_dir: Path, tmp_path: Path) -> None:
    copy_log(fixture_dir, tmp_path)
    publish(job("J13", "dst_acme_hook", at(D1, "10:14"), [ok(at(D1, "10:15"))]), tmp_path)
    store = LocalStore(tmp_path)
    build_days(store, dates=DAYS)
    expected = requests_in_attempts(tmp_path, *RANGE)
    # Hour 10 of D1 has two files: compaction merges them and keeps both for the grace period.
    assert compact(store, close_after_s=0, grace_s=3600).hours > 0
    assert figures(tmp_path)["day_report"].item(0, "requests") == expected
    # Built again over the compacted files, the day counts the same.
    assert "2026-03-10" in build_days(store, dates=DAYS).built
    assert figures(tmp_path)["day_report"].item(0, "requests") == expected


def test_a_superseded_day_file_goes_after_its_grace(fixture_dir: Path, tmp_path: Path) -> None:
    copy_log(fixture_dir, tmp_path)
    store = LocalStore(tmp_path)
    build_days(store, dates=DAYS)
    publish(job("J13", "dst_acme_hook", at(D1, "10:14"), [ok(at(D1, "10:15"))]), tmp_path)
    kept = build_days(store, dates=DAYS, grace_s=3600)
    # The day after is built again too: its digest names the day before's files (`redeliveries`
    # carries figures from them).
    assert kept.built == ["2026-03-10", "2026-03-11"] and kept.deleted == 0
    assert len(day_files(store)[("outcomes", "2026-03-10")]) == 2
    gone = build_days(store, dates=DAYS, grace_s=0)
    assert gone.built == [] and gone.deleted == 2 * len(DAY_FILES)  # each of the day's files, twice
    for date in ("2026-03-10", "2026-03-11"):
        assert day_files(store)[("outcomes", date)] == {day_digests(store)[date]}


def test_hourly_files_older_than_a_rollup_column_build_a_day_counting_it_null(
    fixture_dir: Path, tmp_path: Path
) -> None:
    copy_log(fixture_dir, tmp_path)
    before = figures(tmp_path)
    # As a log written before `replayed` joined the outcomes rollup: the views read it as NULL.
    for path in (tmp_path / "rollups" / "outcomes" / "date=2026-03-10").rglob("*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["replayed"]), path)
    assert build_days(LocalStore(tmp_path), dates=DAYS).built == list(DAYS)
    shutil.rmtree(tmp_path / "rollups" / "outcomes")
    after = figures(tmp_path)
    for name, frame in before.items():
        assert after[name].equals(frame), name


def sent_again_after_midnight() -> list[dict[str, object]]:
    """J21: delivered by its second attempt at 23:55 on D1, and once more after midnight (a second
    engine whose lease had run out sent it again)."""
    return job(
        "J21",
        "dst_acme_hook",
        at(D1, "23:40"),
        [server_503(at(D1, "23:40:01"), "retry"), ok(at(D1, "23:55")), ok(at(D2, "00:05"))],
    )


def test_a_job_delivered_twice_across_midnight_counts_from_the_day_files(
    fixture_dir: Path, tmp_path: Path
) -> None:
    """The day file of D2 carries D1's figures of the jobs received on D1 (`earlier_*`): the query
    reads no row of D1 for them, and still counts each such job as the raw log would."""
    copy_log(fixture_dir, tmp_path)
    # J20: a request at 23:50 that may have been accepted unanswered, delivered after midnight.
    publish(
        job(
            "J20",
            "dst_acme_hook",
            at(D1, "23:50"),
            [retry(at(D1, "23:50:01"), at(D2, "00:10"), **TIMED_OUT), ok(at(D2, "00:10"))],
        ),
        tmp_path,
    )
    publish(sent_again_after_midnight(), tmp_path)
    with connect(tmp_path) as log:
        from_hours = api.double_deliveries(log, Scope.all(), *RANGE)
    build_days(LocalStore(tmp_path), dates=DAYS)
    shutil.rmtree(tmp_path / "rollups" / "redeliveries")
    with connect(tmp_path) as log:
        from_days = api.double_deliveries(log, Scope.all(), *RANGE)
    counted = {
        (row["cause"], row["certainty"]): row["example_jobs"]
        for row in from_days.filter(pl.col("destination_id") == "dst_acme_hook").iter_rows(named=True)
    }
    assert counted == {("lease_expired", "certain"): ["J21"], ("retry_after_timeout", "possible"): ["J20"]}
    assert from_days.equals(from_hours)


SCOPES = [
    Scope.all(),
    Scope.workspace("acme"),
    Scope.destination("dst_acme_hook"),
    Scope.integration("webhook"),
]


def assert_summed_days_give_the_hourly_figures(data_dir: Path, built: tuple[str, ...] = DAYS) -> pl.DataFrame:
    """Build the days `built` of the log at `data_dir`, then check that every scope's double
    deliveries over D0-D2 (and over D0 alone, D1 alone) are those grouped from every job's hourly
    rows, and from the raw log; the summary of D1 (`redelivery_summary` of D2), empty when D2 is not
    built."""
    with connect(data_dir) as log:
        expected = [api.double_deliveries(log, scope, *RANGE) for scope in SCOPES]
        one_day = {
            day: api.double_deliveries(log, Scope.all(), day, day + timedelta(days=1)) for day in (D0, D1)
        }
    assert expected[0].height > 0, "the comparison would prove nothing"
    # ... which are the raw log's (the hourly files and the day files could share a mistake)
    with raw_connection(data_dir) as raw:
        raw_frames = [run_raw(raw, "double_deliveries", scope, *RANGE) for scope in SCOPES]
        raw_frames += [
            run_raw(raw, "double_deliveries", Scope.all(), d, d + timedelta(days=1)) for d in one_day
        ]
    for frame, raw_frame in zip([*expected, *one_day.values()], raw_frames, strict=True):
        assert frame.equals(raw_frame)
    assert build_days(LocalStore(data_dir), dates=built).built == [*built]
    if built == DAYS:  # every day from its day files alone
        shutil.rmtree(data_dir / "rollups" / "redeliveries")
    with connect(data_dir) as log:
        for scope, frame in zip(SCOPES, expected, strict=True):
            assert api.double_deliveries(log, scope, *RANGE).equals(frame), scope
        for day, frame in one_day.items():
            assert api.double_deliveries(log, Scope.all(), day, day + timedelta(days=1)).equals(frame), day
    summary = data_dir / DAY_DIR / "redelivery_summary" / "date=2026-03-11"
    return pl.read_parquet(summary) if summary.exists() else pl.DataFrame()


def test_a_replay_finds_the_job_it_replayed_on_a_summed_day(fixture_dir: Path, tmp_path: Path) -> None:
    """D0 and D1 are summed in the day files after them (`redelivery_summary`), and their jobs' rows
    not read, but for a replay's: R42, received on D2, replays J41 of D1, whose unanswered request
    makes the replay a possible double delivery. D2's summary says it holds replays of D2."""
    copy_log(fixture_dir, tmp_path)
    replayed = [retry(at(D1, "09:00:01"), at(D1, "09:05"), **TIMED_OUT), ok(at(D1, "09:05"))]
    publish(job("J41", "dst_acme_hook", at(D1, "09:00"), replayed), tmp_path)
    publish(job("R42", "dst_acme_hook", at(D2, "10:00"), [ok(at(D2, "10:00:01"))], replay_of="J41"), tmp_path)
    publish(sent_again_after_midnight(), tmp_path)
    summary = assert_summed_days_give_the_hourly_figures(tmp_path)
    marks = summary.filter(pl.col("mark").is_not_null())
    assert sorted(zip(marks["mark"], marks["received_hour"], strict=True)) == [
        ("replays", D2),
        ("summed", D1),
    ]
    sums = summary.filter(pl.col("destination_id") == "dst_acme_hook")
    examples = dict(sums.select("cause", "example_1").rows())
    assert examples == {"retry_after_timeout": "J41", "lease_expired": "J21"}


@pytest.mark.parametrize("built", [DAYS, DAYS[:2]], ids=["every day built", "D2 read from hourly files"])
def test_a_job_with_rows_two_days_after_it_was_received_is_grouped(
    fixture_dir: Path, tmp_path: Path, built: tuple[str, ...]
) -> None:
    """J40, received on D0, unanswered twice, delivered on D2: no sum of D0 holds its row of D2, so
    the query groups D0's jobs from their rows. D2's summary marks D0 ('rows_later'); unbuilt, D2's
    rows say it."""
    copy_log(fixture_dir, tmp_path)
    attempts = [
        retry(at(D0, "23:30:01"), at(D1, "23:00"), **TIMED_OUT),
        retry(at(D1, "23:00"), at(D2, "01:00"), **TIMED_OUT),
        ok(at(D2, "01:00")),
    ]
    publish(job("J40", "dst_acme_hook", at(D0, "23:30"), attempts), tmp_path)
    summary = assert_summed_days_give_the_hourly_figures(tmp_path, built)
    if built == DAYS:
        marks = summary.filter(pl.col("mark").is_not_null())
        assert sorted(zip(marks["mark"], marks["received_hour"], strict=True)) == [
            ("rows_later", D0),
            ("summed", D1),
        ]
    with connect(tmp_path) as log:
        counted = api.double_deliveries(log, Scope.destination("dst_acme_hook"), *RANGE)
    assert counted.select("cause", "certainty", "example_jobs").rows() == [
        ("retry_after_timeout", "possible", ["J40"])
    ]


@pytest.mark.parametrize("built", [False, True], ids=["hourly files", "day files"])
def test_the_days_received_are_those_of_the_attempt_files(
    fixture_dir: Path, tmp_path: Path, built: bool
) -> None:
    """Newest first; a day holding only retries of the day before's jobs is no day received."""
    copy_log(fixture_dir, tmp_path)
    # D3 holds only a retry of a job received on D2.
    late = job(
        "J30",
        "dst_acme_hook",
        at(D2, "23:50"),
        [retry(at(D2, "23:50:01"), at(D3, "00:10")), ok(at(D3, "00:10"))],
    )
    publish(late, tmp_path)
    if built:
        assert build_days(LocalStore(tmp_path), close_after_s=0).built == [*DAYS, "2026-03-12"]
    with connect(tmp_path) as log:
        assert api.received_days(log) == [D2.date(), D1.date(), D0.date()]
        raw = log.sql(
            "SELECT DISTINCT timezone('UTC', received_at)::DATE AS day FROM attempts ORDER BY day DESC"
        )
        assert api.received_days(log) == raw.get_column("day").to_list()


def test_out_of_step_over_whole_days_looks_only_at_the_days_read_from_hourly_files(
    fixture_dir: Path, tmp_path: Path
) -> None:
    """A day file was built from rollups in step: losing one of its hours' hourly rollups since
    takes nothing from the figures over days, only from those over that day's hours."""
    copy_log(fixture_dir, tmp_path)
    store = LocalStore(tmp_path)
    build_days(store, dates=DAYS)
    lost = sorted((tmp_path / "rollups" / "errors" / "date=2026-03-10").rglob("*.parquet"))[0]
    lost.unlink()
    attempt = tmp_path / "attempts" / lost.relative_to(tmp_path / "rollups" / "errors")
    os.utime(attempt, (1_700_000_000, 1_700_000_000))  # older than the writers' grace
    with connect(tmp_path) as log:
        assert log.rollups_out_of_step() == 1
        assert log.rollups_out_of_step(*RANGE) == 0  # three whole days, each from its day file
        assert log.rollups_out_of_step(D1, D2) == 1  # one day: the hourly chart reads its hours
        assert log.rollups_out_of_step(D2, D2 + timedelta(days=1)) == 0  # D2 and D3 are in step
    shutil.rmtree(tmp_path / DAY_DIR)
    with connect(tmp_path) as log:
        assert log.rollups_out_of_step(*RANGE) == 1  # no day files: every day from its hourly files


@pytest.mark.parametrize(
    "built", [(), ("2026-03-11",), DAYS], ids=["no day files", "the last day's", "every day's"]
)
def test_double_deliveries_read_hourly_files_written_before_the_day_files_columns(
    fixture_dir: Path, tmp_path: Path, built: tuple[str, ...]
) -> None:
    """`redeliveries` files from before `may_count` and the carried figures (an upgraded log, whose
    days are read from their hourly files until built again) give the same figures."""
    copy_log(fixture_dir, tmp_path)
    publish(sent_again_after_midnight(), tmp_path)
    hours = (D1 + timedelta(hours=12), D2)
    with connect(tmp_path) as log:
        expected = api.double_deliveries(log, Scope.all(), *RANGE)
        expected_hours = api.double_deliveries(log, Scope.all(), *hours)
    assert expected.height > 0 and expected_hours.height > 0, "the comparison would prove nothing"
    for path in (tmp_path / "rollups" / "redeliveries").rglob("*.parquet"):
        pq.write_table(
            pq.read_table(path).drop_columns(["may_count", "earlier_deliveries", "earlier_unanswered"]), path
        )
    build_days(LocalStore(tmp_path), dates=built)
    with connect(tmp_path) as log:
        assert api.double_deliveries(log, Scope.all(), *RANGE).equals(expected)
        assert api.double_deliveries(log, Scope.all(), *hours).equals(expected_hours)


def test_a_day_lacking_an_hourly_rollup_is_left_alone(fixture_dir: Path, tmp_path: Path) -> None:
    copy_log(fixture_dir, tmp_path)
    next((tmp_path / "rollups" / "errors" / "date=2026-03-10").rglob("*.parquet")).unlink()
    result = build_days(LocalStore(tmp_path), dates=DAYS)
    assert "2026-03-10" in result.unready and "2026-03-10" not in result.built
    assert ("outcomes", "2026-03-10") not in day_files(LocalStore(tmp_path))


def test_retention_deletes_a_days_day_files(fixture_dir: Path, tmp_path: Path) -> None:
    copy_log(fixture_dir, tmp_path)
    store = LocalStore(tmp_path)
    build_days(store, dates=DAYS)
    expired = expire(store, 1, clock=lambda: datetime(2026, 3, 12, 12, tzinfo=UTC).timestamp())
    assert [day.date for day in expired] == ["2026-03-09", "2026-03-10"]
    assert {date for _, date in day_files(store)} == {"2026-03-11"}
    assert not list((tmp_path / DAY_DIR).glob("*/date=2026-03-10/*.parquet"))


@pytest.mark.parametrize("days", [2, 3])
def test_the_hourly_chart_over_days_has_a_row_per_day(fixture_dir: Path, tmp_path: Path, days: int) -> None:
    copy_log(fixture_dir, tmp_path)
    build_days(LocalStore(tmp_path), dates=DAYS)
    start = D2 - timedelta(days=days - 1)
    with connect(tmp_path) as log:
        hours = api.hourly(log, Scope.all(), start, D2 + timedelta(days=1))
    assert hours.get_column("hour").dt.hour().unique().to_list() == [0]
    assert hours.get_column("requests").sum() == requests_in_attempts(tmp_path, start, D2 + timedelta(days=1))
