"""`app.charts`: pages draw figures `kept`, built once per distinct data and shared, never rebuilt."""

from __future__ import annotations

import polars as pl

from app.charts import failed_by_class, hourly_classes, kept

ERRORS = pl.DataFrame(
    {
        "error_class": ["none", "rate_limit", "auth", "rate_limit"],
        "error_code": ["200", "429", "401", "429"],
        "requests": [900, 60, 25, 15],
    }
)


def test_the_same_data_gives_the_figure_built_the_first_time() -> None:
    first = kept(failed_by_class)(ERRORS, "Failed requests by error class")
    # A page's next run wraps the builder again: the same figure, not a new one.
    assert kept(failed_by_class)(ERRORS.clone(), "Failed requests by error class") is first


def test_other_data_or_another_title_gets_its_own_figure() -> None:
    first = kept(failed_by_class)(ERRORS, "Failed requests by error class")
    fewer = ERRORS.with_columns(pl.col("requests") // 5)
    other = kept(failed_by_class)(fewer, "Failed requests by error class")
    assert other is not first
    assert sorted(bar.y[0] for bar in other.data) == [5, 15]  # auth 25 // 5; rate_limit 60 // 5 + 15 // 5
    assert kept(failed_by_class)(ERRORS, "Another title") is not first


def test_a_builder_kept_is_the_builder() -> None:
    hours = pl.DataFrame({"hour": [0, 0, 1], "error_class": ["none", "auth", "none"], "requests": [5, 1, 7]})
    built, drawn = (
        hourly_classes(hours, "Requests per hour"),
        kept(hourly_classes)(hours, "Requests per hour"),
    )
    assert drawn.to_dict() == built.to_dict()


def test_no_failed_request_draws_no_chart() -> None:
    assert kept(failed_by_class)(ERRORS.filter(pl.col("error_class") == "none"), "Failed") is None
