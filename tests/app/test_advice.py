"""Advice to partners: which of their answers defeat retries."""

from __future__ import annotations

from typing import Any

import polars as pl

from app.advice import advise
from app.hints import hint
from ingest.taxonomy import ErrorClass

REPORT: dict[str, Any] = {"dropped_pct": 0.0, "status_5xx_requests": 0}
NO_CODES = pl.DataFrame(
    {"label": [], "error_class": [], "requests": []}, schema_overrides={"requests": pl.Int64}
)


def _samples(*rows: tuple[int, str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"status_code": status, "example": example, "requests": requests}
            for status, example, requests in rows
        ],
        schema={"status_code": pl.Int16, "example": pl.String, "requests": pl.Int64},
    )


def test_a_4xx_that_says_try_again_is_called_out() -> None:
    notes = advise(REPORT, NO_CODES, _samples((400, '{"error":"Please try again later"}', 1200)))
    assert len(notes) == 1
    assert "1,200 answers were HTTP 400" in notes[0] and "429" in notes[0]


def test_a_5xx_that_describes_invalid_data_is_called_out() -> None:
    notes = advise(REPORT, NO_CODES, _samples((500, '{"error":"field email is required"}', 30)))
    assert len(notes) == 1
    assert "HTTP 500" in notes[0] and "400" in notes[0]


def test_429_that_says_retry_and_honest_bodies_are_fine() -> None:
    samples = _samples(
        (429, "Too many requests, retry later", 10),
        (400, '{"error":"field email is required"}', 10),
        (503, "Service temporarily unavailable", 10),
    )
    assert advise(REPORT, NO_CODES, samples) == []


def test_5xx_that_never_recover_are_called_out() -> None:
    report = {"dropped_pct": 1.25, "status_5xx_requests": 4000}
    notes = advise(report, NO_CODES, _samples())
    assert len(notes) == 1 and "1.25% of events were dropped" in notes[0]


def test_nonstandard_codes_are_listed() -> None:
    codes = pl.DataFrame({"label": ["418", "42"], "error_class": ["nonstandard"] * 2, "requests": [5, 7]})
    notes = advise(REPORT, codes, _samples())
    assert len(notes) == 1 and "12 answers" in notes[0] and "418, 42" in notes[0]


def test_every_error_class_has_a_hint() -> None:
    for error_class in ErrorClass:
        if error_class is not ErrorClass.NONE:
            assert "No advice" not in hint(error_class), error_class
    assert "credentials" in hint("auth", 401)
    assert "permissions" in hint("auth", 403)
