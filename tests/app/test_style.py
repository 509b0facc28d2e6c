"""How counts look on the dashboard's metric cards: exact below a million, compact above, exact on hover."""

from __future__ import annotations

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
