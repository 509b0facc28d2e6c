"""Exact figures on the fixture log, counted by hand from the table in conftest.py."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from queries import (
    AttemptLog,
    Scope,
    ScopeKind,
    by_destination,
    by_error,
    by_integration,
    by_status_code,
    daily,
    day_report,
    error_samples,
    funnel,
    hourly,
    latency,
)

from .conftest import D0, D1, D2, D3, RATE_LIMIT_7S

ALL = Scope.all()


def pct(part: int, whole: int) -> object:
    return pytest.approx(100 * part / whole)


def test_day_report_events(log: AttemptLog) -> None:
    row = day_report(log, ALL, D1, D2).row(0, named=True)
    # Cohort J1-J10: 1 + 3 + 1 + 1 + 1 + 1 + 1 + 1 + 2 + 1 events.
    assert row["events_received"] == 13
    assert row["delivered_first_attempt"] == 4  # J1, J2 (a batch of 3)
    assert row["delivered_eventually"] == 7  # + J3 (attempt 3), J9 (2 events, attempt 2)
    assert row["delivered_after_retries"] == 3
    assert row["failed"] == 3  # J4 401, J8 status 42, J10 400
    assert row["dropped"] == 1  # J5, whose last attempt started on D2
    assert row["skipped"] == 1  # J7
    assert row["still_retrying"] == 1  # J6
    assert row["delivered_first_attempt_pct"] == pct(4, 13)
    assert row["delivered_eventually_pct"] == pct(7, 13)
    assert row["failed_pct"] == pct(3, 13)
    assert row["still_retrying_pct"] == pct(1, 13)


def test_day_report_requests(log: AttemptLog) -> None:
    row = day_report(log, ALL, D1, D2).row(0, named=True)
    # J1 1, J2 1, J3 3, J4 1, J5 8 (of 10), J6 1 (of 2), J8 1, J9 2, J10 1, J12 1 (its D1 retry).
    assert row["requests"] == 20
    expected = {
        "auth_requests": 1,
        "status_400_requests": 1,
        "status_429_requests": 2,
        "status_5xx_requests": 8,
        "network_requests": 1,
        "timeout_requests": 1,
        "tls_requests": 0,
        "nonstandard_requests": 1,
    }
    assert {key: row[key] for key in expected} == expected
    for key, count in expected.items():
        assert row[f"{key}_pct"] == pct(count, 20)


def test_funnel_is_cumulative_and_ends_with_the_undelivered(log: AttemptLog) -> None:
    stages = funnel(log, ALL, D1, D2)
    assert stages.columns == ["step", "stage", "kind", "attempt", "events", "pct"]
    delivered = [4, 6, 7, 7, 7, 7, 7, 7, 7, 7]  # J5 reached attempt 10, so the funnel does too
    assert stages.get_column("events").to_list() == [13, *delivered, 3, 1, 1, 1]
    assert stages.get_column("stage").to_list() == [
        "events received",
        *(f"delivered by attempt {k}" for k in range(1, 11)),
        "failed",
        "dropped",
        "skipped",
        "still retrying",
    ]
    assert stages.get_column("step").to_list() == list(range(15))
    assert stages.get_column("pct").to_list() == pytest.approx(
        [100 * n / 13 for n in stages.get_column("events")]
    )


def test_by_destination(log: AttemptLog) -> None:
    rows = {row["destination_id"]: row for row in by_destination(log, ALL, D1, D2).iter_rows(named=True)}
    figures = [
        "requests",
        "events_received",
        "delivered_first_attempt",
        "delivered_eventually",
        "failed",
        "dropped",
        "skipped",
        "still_retrying",
    ]
    expected = {
        "dst_acme_hook": [2, 4, 4, 4, 0, 0, 0, 0],  # J11 is D2's
        "dst_acme_amp": [4, 1, 0, 1, 0, 0, 0, 0],  # J12's D1 retry is a request, not in the cohort
        "dst_globex_hook": [4, 4, 0, 2, 2, 0, 0, 0],
        "dst_globex_mix": [8, 1, 0, 0, 0, 1, 0, 0],
        "dst_initech_amp": [2, 3, 0, 0, 1, 0, 1, 1],
    }
    assert {name: [row[f] for f in figures] for name, row in rows.items()} == expected
    assert rows["dst_acme_hook"]["workspace_id"] == "acme"
    assert rows["dst_globex_mix"]["integration"] == "mixpanel"
    assert rows["dst_acme_hook"]["first_attempt_pct"] == 100.0
    assert rows["dst_globex_hook"]["eventually_pct"] == 50.0


def test_by_integration_sums_its_destinations(log: AttemptLog) -> None:
    result = by_integration(log, ALL, D1, D2)
    rows = {row["integration"]: row for row in result.iter_rows(named=True)}
    assert {name: (r["destinations"], r["requests"], r["events_received"]) for name, r in rows.items()} == {
        "webhook": (2, 6, 8),
        "amplitude": (2, 6, 4),
        "mixpanel": (1, 8, 1),
    }
    per_destination = by_destination(log, ALL, D1, D2).group_by("integration").agg(pl.col("requests").sum())
    assert dict(per_destination.iter_rows()) == {name: r["requests"] for name, r in rows.items()}


def test_by_status_code_labels_missing_responses_by_error_code(log: AttemptLog) -> None:
    result = by_status_code(log, ALL, D1, D2)
    counts = {
        row["label"]: (row["status_code"], row["requests"], row["events"])
        for row in result.iter_rows(named=True)
    }
    assert counts == {
        "503": (503, 8, 8),
        "200": (200, 5, 8),  # J1, J2 (3 events), J3, J9 (2 events), J12
        "429": (429, 2, 2),
        "400": (400, 1, 1),
        "401": (401, 1, 1),
        "42": (42, 1, 1),
        "ECONNRESET": (None, 1, 1),
        "ETIMEDOUT": (None, 1, 2),
    }
    assert result.get_column("pct").sum() == pytest.approx(100.0)


def test_by_error_counts_jobs_settled_without_a_request_apart(log: AttemptLog) -> None:
    rows = {(r["error_class"], r["error_code"]): r for r in by_error(log, ALL, D1, D2).iter_rows(named=True)}
    assert rows["precheck", "MISSING_API_KEY"]["requests"] == 0
    assert rows["precheck", "MISSING_API_KEY"]["unsent"] == 1
    assert rows["server", "503"]["requests"] == 8
    assert rows["server", "503"]["retryable"] is True
    assert rows["auth", "401"]["retryable"] is False
    assert rows["network", "ECONNRESET"]["pct"] == pct(1, 20)
    assert sum(r["requests"] for r in rows.values()) == 20


def test_hourly(log: AttemptLog) -> None:
    result = hourly(log, ALL, D1, D2)
    assert result.get_column("requests").sum() == 20
    by_hour = result.group_by("hour").agg(pl.col("requests").sum()).sort("hour")
    assert by_hour.get_column("hour").dt.hour().to_list() == [0, 10, 11, 12, 13, 15, 16, 17, 20, 21, 22, 23]
    noon = result.filter(pl.col("hour") == datetime(2026, 3, 10, 12, tzinfo=D1.tzinfo))
    assert noon.select("error_class", "requests", "delivered_events").rows() == [
        ("none", 1, 1),
        ("rate_limit", 2, 0),
    ]


def test_daily_follows_each_days_cohort(log: AttemptLog) -> None:
    rows = daily(log, ALL, D0, D3).rows(named=True)
    assert [(r["day"].isoformat(), r["events_received"], r["delivered_first_attempt"]) for r in rows] == [
        ("2026-03-09", 1, 0),  # J12: 503 first, delivered on its retry the next day
        ("2026-03-10", 13, 4),
        ("2026-03-11", 1, 1),  # J11
    ]
    assert [r["delivered_eventually"] for r in rows] == [1, 7, 1]
    assert rows[1]["first_attempt_pct"] == pct(4, 13)
    assert rows[1]["eventual_pct"] == pct(7, 13)
    # A day's figures are the day report's for that day.
    one_day = day_report(log, ALL, D1, D2).row(0, named=True)
    assert rows[1]["events_received"] == one_day["events_received"]
    assert rows[1]["delivered_eventually"] == one_day["delivered_eventually"]
    assert daily(log, Scope.workspace("acme"), D1, D2).get_column("events_received").to_list() == [5]


def test_exact_latency(log: AttemptLog) -> None:
    overall = latency(log, ALL, D1, D2, exact=True).row(0, named=True)
    assert overall["integration"] is None
    assert overall["requests"] == 20
    assert overall["max_ms"] == 10_000.0
    per = {
        r["integration"]: r
        for r in latency(log, ALL, D1, D2, per_integration=True, exact=True).iter_rows(named=True)
    }
    assert per["mixpanel"]["p50_ms"] == per["mixpanel"]["p99_ms"] == 200.0
    # amplitude: J3's 50, 60, 70, J6's 15, J10's 25, J12's 100 -> median of six, interpolated.
    assert per["amplitude"]["p50_ms"] == pytest.approx(55.0)
    assert per["amplitude"]["mean_ms"] == pytest.approx(320 / 6)


def test_exact_latency_is_latency_sql(log: AttemptLog) -> None:
    scope = Scope.workspace("acme")
    assert latency(log, scope, D1, D2, exact=True).equals(
        log.run("latency", scope, D1, D2, per_integration=False)
    )


@pytest.mark.parametrize(
    "scope",
    [ALL, Scope.integration("amplitude"), Scope.workspace("acme"), Scope.destination("dst_acme_amp")],
    ids=str,
)
@pytest.mark.parametrize("per_integration", [False, True])
def test_latency_from_the_histogram_is_within_5_percent(
    log: AttemptLog, scope: Scope, per_integration: bool
) -> None:
    approximate = latency(log, scope, D1, D2, per_integration=per_integration)
    exact = latency(log, scope, D1, D2, per_integration=per_integration, exact=True)
    assert approximate.columns == exact.columns
    assert approximate.schema == exact.schema
    exact_columns = ["integration", "requests", "max_ms"]
    assert approximate.select(exact_columns).rows() == exact.select(exact_columns).rows()
    assert approximate.get_column("mean_ms").to_list() == pytest.approx(exact.get_column("mean_ms").to_list())
    for column in ["p50_ms", "p95_ms", "p99_ms"]:
        assert approximate.get_column(column).to_list() == pytest.approx(
            exact.get_column(column).to_list(), rel=0.05
        ), column


def test_latency_on_the_histogram_by_hand(log: AttemptLog) -> None:
    per = {r["integration"]: r for r in latency(log, ALL, D1, D2, per_integration=True).iter_rows(named=True)}
    # mixpanel: eight requests of 200 ms, in bucket 55 = [1.1^55, 1.1^56) = [189.1, 208.0).
    assert per["mixpanel"]["p50_ms"] == per["mixpanel"]["p99_ms"] == pytest.approx(1.1**55.5)
    # amplitude's median lies between 50 ms (bucket 41) and 60 ms (bucket 42): halfway between their middles.
    assert per["amplitude"]["p50_ms"] == pytest.approx((1.1**41.5 + 1.1**42.5) / 2)
    # webhook's p99 lies between 120 ms and 10 s: the middle of 10 s's bucket is above it, so max caps.
    assert per["webhook"]["max_ms"] == 10_000.0
    assert per["webhook"]["p99_ms"] <= 10_000.0


@pytest.mark.parametrize(
    ("scope", "exact_p50", "below_bucket", "above_bucket"),
    [
        # acme: J3's 50, 60, 70, J12's 100, J1's 120, J2's 80: the median lies
        # between 70 ms (bucket 44) and 80 ms (bucket 45).
        (Scope.workspace("acme"), 75.0, 44, 45),
        # dst_acme_amp: J3's 50, 60, 70 and J12's 100: between 60 ms (bucket 42) and 70 ms (bucket 44).
        (Scope.destination("dst_acme_amp"), 65.0, 42, 44),
    ],
    ids=str,
)
def test_latency_of_a_workspace_or_destination_by_hand(
    log: AttemptLog, scope: Scope, exact_p50: float, below_bucket: int, above_bucket: int
) -> None:
    approximate = latency(log, scope, D1, D2)
    assert approximate.item(0, "p50_ms") == pytest.approx(
        (1.1 ** (below_bucket + 0.5) + 1.1 ** (above_bucket + 0.5)) / 2
    )
    assert latency(log, scope, D1, D2, exact=True).item(0, "p50_ms") == exact_p50
    # The other customers' requests are not in the histogram the scope reads.
    assert approximate.item(0, "requests") == (6 if scope.kind is ScopeKind.WORKSPACE else 4)


def test_error_samples_on_the_fixture(log: AttemptLog) -> None:
    samples = error_samples(log, ALL, D1, D2)
    first = samples.row(0, named=True)
    assert (first["status_code"], first["requests"]) == (503, 8)
    rate_limited = samples.filter(pl.col("status_code") == 429).row(0, named=True)
    assert rate_limited["requests"] == 2
    assert rate_limited["example"] == RATE_LIMIT_7S  # the more recent of the two
    assert rate_limited["destination_id"] is None  # not a tenant's view
    assert error_samples(log, ALL, D1, D2, limit=2).height == 2
