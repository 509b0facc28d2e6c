"""How the dashboard shows counts (compact above a million, exact on hover) and time ranges."""

from __future__ import annotations

import datetime as dt

import pytest

from app import style


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        (0, "0"),
        (40_000, "40,000"),
        (999_999, "999,999"),
        (1_000_000, "1.0M"),
        (11_812_345, "11.8M"),
        (999_940_000, "999.9M"),
        (999_960_000, "1.0B"),
        (2_345_678_901, "2.3B"),
        (4_000_000_000_000, "4.0T"),
    ],
)
def test_a_card_shows_a_count_that_fits(value: int | None, shown: str) -> None:
    assert style.card_count(value) == shown


def test_the_exact_count_is_on_hover_only_when_the_card_shows_a_compact_one() -> None:
    assert style.card_help(11_812_345) == "Exactly 11,812,345."
    assert style.card_help(11_812_345, "Events accepted.") == "Events accepted. Exactly 11,812,345."
    assert style.card_help(40_000) is None
    assert style.card_help(40_000, "Events accepted.") == "Events accepted."
    assert style.card_help(None) is None


@pytest.mark.parametrize(
    ("start", "end", "shown"),
    [
        (dt.datetime(2026, 11, 27, 6, tzinfo=dt.UTC), dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC),
         "2026-11-27 06:00 to 12:00 UTC"),
        (dt.datetime(2026, 11, 27, tzinfo=dt.UTC), dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
         "2026-11-27 00:00 to 24:00 UTC"),
        (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 2, tzinfo=dt.UTC),
         "2026-11-01 to 2026-12-01 UTC (31 days)"),
    ],
)  # fmt: skip
def test_time_ranges_read_as_hours_of_a_day_or_whole_days(
    start: dt.datetime, end: dt.datetime, shown: str
) -> None:
    assert style.time_range(start, end) == shown
