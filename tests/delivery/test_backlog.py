"""The backlog forecast's arithmetic (`delivery.backlog`) and the hours over a limit
(`queries.headroom`): pure, exact values."""

from __future__ import annotations

import datetime as dt
import tomllib

import polars as pl
import pytest

from delivery.backlog import Rates, Throughput, drain, forecast, headroom_pct
from delivery.config import parse_config
from delivery.queue import QueueDepth
from queries.headroom import count_over, hours_over_limit


def record(destination: str, outcome: str, events: int = 1, request: bool = True) -> dict[str, object]:
    return {
        "destination_id": destination,
        "outcome": outcome,
        "event_count": events,
        "duration_ms": 12.0 if request else None,
    }


def test_throughput_counts_requests_delivered_and_finished_events_over_the_window() -> None:
    meter = Throughput(now=0.0, window_s=60)
    meter.record(record("d", "delivered", events=3), now=100.2)
    meter.record(record("d", "retry"), now=100.7)
    meter.record(record("d", "failed"), now=130.0)
    meter.record(record("d", "skipped", request=False), now=131.0)
    assert meter.rates(150.0)["d"] == Rates(
        requests_per_s=3 / 60, delivered_per_s=3 / 60, finished_per_s=5 / 60
    )
    # A minute later the first second has left the window.
    assert meter.rates(161.5)["d"] == Rates(1 / 60, 0.0, 2 / 60)
    assert meter.rates(300.0) == {}


def test_throughput_measures_over_the_time_since_the_start_before_a_whole_window() -> None:
    meter = Throughput(now=10.0, window_s=60)
    meter.record(record("d", "delivered", events=4), now=12.0)
    assert meter.span_s(12.5) == 2.5
    assert meter.rates(12.5)["d"].delivered_per_s == 4 / 2.5
    assert meter.span_s(10.1) == 1.0  # never a near-zero divisor


@pytest.mark.parametrize(
    ("waiting", "rate", "expected"),
    [
        (0, 0.0, ("empty", 0.0)),
        (0, None, ("empty", 0.0)),
        (10, 0.0, ("no_progress", None)),
        (10, None, ("unknown", None)),
        (10, 2.5, ("draining", 4.0)),
    ],
)
def test_drain(waiting: int, rate: float | None, expected: tuple[str, float | None]) -> None:
    assert drain(waiting, rate) == expected


def test_headroom() -> None:
    assert headroom_pct(2.5, 10.0) == 75.0
    assert headroom_pct(12.0, 10.0) == -20.0
    assert headroom_pct(3.0, None) is None


CONFIG = """
[engine]
data_dir = "data"
admin_token = "admin-token-for-backlog-tests-0123456789"
[[sources]]
id = "a"
workspace = "acme"
write_key = "wk_a"
[[destinations]]
id = "limited"
source = "a"
integration = "webhook"
url = "https://example.com/a"
rate_limit_per_s = 4
[[destinations]]
id = "free"
source = "a"
integration = "webhook"
url = "https://example.com/b"
"""


def test_forecast_rows_of_one_engine_and_of_a_fleets_engine() -> None:
    config = parse_config(tomllib.loads(CONFIG), "test.toml")
    depth = QueueDepth(
        by_state={"pending": 12, "leased": 2},
        by_destination={"limited": {"pending": 10, "leased": 2}, "removed": {"pending": 2}},
        outbox_rows=0,
    )
    rates = {"limited": Rates(3.0, 2.0, 2.0)}
    rows = {r["destination"]: r for r in forecast(config, depth, rates, {}, owned=None)}
    assert list(rows) == ["free", "limited", "removed"]
    limited = rows["limited"]
    assert (limited["waiting"], limited["workspace"], limited["limit_per_s"]) == (12, "acme", 4.0)
    assert (limited["headroom_pct"], limited["drain_state"], limited["drain_s"]) == (25.0, "draining", 6.0)
    assert rows["free"]["drain_state"] == "empty" and rows["free"]["headroom_pct"] is None
    assert rows["removed"]["drain_state"] == "no_progress" and rows["removed"]["workspace"] is None
    fleet = {r["destination"]: r for r in forecast(config, depth, rates, {}, owned=frozenset({"free"}))}
    assert fleet["limited"]["owned_here"] is False
    assert (fleet["limited"]["requests_per_s"], fleet["limited"]["drain_state"]) == (None, "unknown")


def test_hours_over_the_limit() -> None:
    hour = dt.datetime(2026, 11, 27, 9, tzinfo=dt.UTC)
    per_hour = pl.DataFrame(
        {
            "destination_id": ["a", "a", "a", "b", "c"],
            "hour": [hour, hour + dt.timedelta(hours=1), hour + dt.timedelta(hours=2), hour, hour],
            "requests": [3600, 3240, 100, 50, 10],
            "events": [3600, 3240, 100, 50, 10],
            "rate_limited": [0, 0, 1, 2, 0],
        }
    )
    hours = hours_over_limit(per_hour, {"a": 1.0, "b": None})
    # a: 100% and 90% of 3600 are at the limit, a 429 is over it; b has no limit but was answered 429.
    assert hours.get_column("over").to_list() == [True, True, True, True]
    assert hours.get_column("use_pct").to_list()[:2] == [100.0, 90.0]
    assert count_over(hours) == {"a": 3, "b": 1}
    assert count_over(hours_over_limit(per_hour, {"c": 5.0})) == {"c": 0}
