"""Scopes see only their rows; ranges are half-open and split requests from the event cohort."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from queries import AttemptLog, Scope, ScopeKind, by_destination, day_report, error_samples, hourly

from .conftest import D1, D2, D3, at


def figures(log: AttemptLog, scope: Scope, start: datetime = D1, end: datetime = D2) -> dict[str, int]:
    row = day_report(log, scope, start, end).row(0, named=True)
    keys = ["requests", "events_received", "delivered_first_attempt", "delivered_eventually", "failed"]
    return {key: row[key] for key in keys}


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        # acme: J1, J2, J3 (3 requests), J12's retry; cohort J1, J2, J3.
        (Scope.workspace("acme"), (6, 5, 4, 5, 0)),
        (Scope.destination("dst_globex_mix"), (8, 1, 0, 0, 0)),
        # amplitude: dst_acme_amp (J3, J12) and dst_initech_amp (J6, J7, J10).
        (Scope.integration("amplitude"), (6, 4, 0, 1, 1)),
        (Scope.workspace("nobody"), (0, 0, 0, 0, 0)),
    ],
    ids=str,
)
def test_each_scope_kind(log: AttemptLog, scope: Scope, expected: tuple[int, ...]) -> None:
    assert tuple(figures(log, scope).values()) == expected


def test_scopes_partition_the_whole(log: AttemptLog) -> None:
    whole = figures(log, Scope.all())
    parts = [figures(log, Scope.workspace(w)) for w in ("acme", "globex", "initech")]
    assert {key: sum(part[key] for part in parts) for key in whole} == whole


def test_a_workspace_sees_no_other_workspace(log: AttemptLog) -> None:
    mine = by_destination(log, Scope.workspace("globex"), D1, D2)
    assert set(mine.get_column("workspace_id")) == {"globex"}
    samples = error_samples(log, Scope.workspace("globex"), D1, D2)
    assert set(samples.get_column("destination_id")) == {"dst_globex_hook", "dst_globex_mix"}
    assert "acme" not in "".join(samples.get_column("example"))


def test_a_value_that_looks_like_sql_is_just_a_value(log: AttemptLog) -> None:
    assert figures(log, Scope.workspace("acme' OR '1'='1"))["requests"] == 0


def test_start_is_inclusive_and_end_exclusive(log: AttemptLog) -> None:
    # J2 is received at 11:00:00 exactly, J3 at 12:00:00 exactly.
    eleven = figures(log, Scope.all(), at(D1, "11:00"), at(D1, "12:00"))
    assert (eleven["requests"], eleven["events_received"]) == (1, 3)
    noon = figures(log, Scope.all(), at(D1, "12:00"), at(D1, "13:00"))
    assert (noon["requests"], noon["events_received"], noon["delivered_eventually"]) == (3, 1, 1)


def test_the_cohort_follows_retries_past_the_end(log: AttemptLog) -> None:
    # J5 was received at 20:00 and dropped at 00:20 the next day.
    row = day_report(log, Scope.all(), at(D1, "20:00"), at(D1, "21:00")).row(0, named=True)
    assert (row["events_received"], row["dropped"], row["still_retrying"]) == (1, 1, 0)
    assert row["requests"] == 3  # 20:00:01, 20:20, 20:40


def test_the_next_day_holds_requests_of_the_day_before(log: AttemptLog) -> None:
    # D2: J5's attempts 9 and 10 and J6's second are requests; only J11 is received.
    row = day_report(log, Scope.all(), D2, D3).row(0, named=True)
    assert (row["requests"], row["events_received"], row["delivered_first_attempt"]) == (4, 1, 1)
    assert row["dropped"] == 0  # J5 belongs to D1's cohort


def test_other_time_zones_mean_the_same_instants(log: AttemptLog) -> None:
    whole_day = figures(log, Scope.all())
    for zone in [timezone(timedelta(hours=9)), timezone(timedelta(hours=5, minutes=30))]:
        assert figures(log, Scope.all(), D1.astimezone(zone), D2.astimezone(zone)) == whole_day, zone


@pytest.mark.parametrize(
    ("start", "end", "problem"),
    [
        (at(D1, "10:30"), D2, "start 2026-03-10 10:30:00+00:00 is not on the hour"),
        (D1, at(D1, "23:59:59"), "end 2026-03-10 23:59:59+00:00 is not on the hour"),
        (D1, D2 + timedelta(microseconds=1), "end 2026-03-11 00:00:00.000001+00:00 is not on the hour"),
        (
            datetime(2026, 3, 10, 10, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            D2,
            "start 2026-03-10 10:00:00+05:30 (2026-03-10 04:30:00+00:00 in UTC) is not on the hour",
        ),
    ],
    ids=["start", "end", "a-microsecond", "on-the-hour-in-india"],
)
def test_ranges_are_whole_utc_hours(log: AttemptLog, start: datetime, end: datetime, problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        day_report(log, Scope.all(), start, end)
    assert str(refused.value) == f"time ranges are whole UTC hours (the rollups' grain): {problem}"


def test_naive_or_empty_ranges_are_refused(log: AttemptLog) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        day_report(log, Scope.all(), datetime(2026, 3, 10), D2)
    with pytest.raises(ValueError, match="must be after"):
        day_report(log, Scope.all(), D2, D1)


def test_scope_values_are_checked() -> None:
    assert Scope.workspace("acme") == Scope(ScopeKind.WORKSPACE, "acme")
    assert Scope("destination", "d1").kind is ScopeKind.DESTINATION  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        Scope.workspace("")
    with pytest.raises(ValueError, match="takes no value"):
        Scope(ScopeKind.ALL, "acme")
    with pytest.raises(ValueError):
        Scope("tenant", "acme")  # type: ignore[arg-type]


def test_hours_are_utc(log: AttemptLog) -> None:
    hours = hourly(log, Scope.destination("dst_globex_mix"), D1, D2).get_column("hour")
    assert hours.dtype == pl.Datetime("us", "UTC")
    assert hours.dt.hour().unique().sort().to_list() == [20, 21, 22, 23]
