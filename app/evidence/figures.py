"""The figures of a partner's evidence pack: the partner page's queries, for one integration and range.

The partner page (`app/views/partner.py`) reads the same named queries with
the same arguments, so the pack and the page show the same figures for the
same integration and range; `retry_recovery` (the retries page's, for the
same scope) adds what retries recovered per class of first failure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from app import advice
from queries import AttemptLog, Scope, api

#: Error answers the page and the pack list (and give the advice): the same number on both.
SAMPLES = 15


@dataclass(frozen=True)
class PartnerFigures:
    """Everything the pack shows, already scoped to one integration."""

    integration: str
    start: dt.datetime
    end: dt.datetime
    report: dict[str, Any]
    """One day_report row."""
    codes: pl.DataFrame
    """by_status_code."""
    hours: pl.DataFrame
    """hourly: requests per hour (per day over several days) and error class."""
    latency: pl.DataFrame
    """latency_histogram per integration: this integration's row, or none without timed requests."""
    samples: pl.DataFrame
    """error_samples: the most frequent error templates, redacted for a partner's scope."""
    recovery: pl.DataFrame
    """retry_recovery: per class of first failure, what retries recovered."""

    @property
    def per(self) -> str:
        """What a point of the charts over time stands for: an hour of one day, a day of several."""
        return "day" if (self.end - self.start) > dt.timedelta(days=1) else "hour"

    def advice(self) -> list[str]:
        """The status-code hygiene advice the partner page gives (`app.advice`)."""
        return advice.advise(self.report, self.codes, self.samples)


def read_figures(log: AttemptLog, integration: str, start: dt.datetime, end: dt.datetime) -> PartnerFigures:
    """Run the partner page's queries (and retry_recovery) for `integration` over [start, end)."""
    scope = Scope.integration(integration)
    latency = api.latency(log, scope, start, end, per_integration=True)
    return PartnerFigures(
        integration=integration,
        start=start,
        end=end,
        report=api.day_report(log, scope, start, end).row(0, named=True),
        codes=api.by_status_code(log, scope, start, end),
        hours=api.hourly(log, scope, start, end),
        latency=latency.filter(pl.col("integration") == integration),
        samples=api.error_samples(log, scope, start, end, limit=SAMPLES),
        recovery=api.retry_recovery(log, scope, start, end),
    )


def tenant_ids(log: AttemptLog, start: dt.datetime, end: dt.datetime) -> set[str]:
    """Every workspace and destination id with requests in [start, end), whatever their integration."""
    frame = api.by_destination(log, Scope.all(), start, end)
    ids: set[str] = set()
    for column in ("workspace_id", "destination_id"):
        ids.update(value for value in frame.get_column(column).to_list() if value)
    return ids


def status_code_frame(codes: pl.DataFrame) -> pl.DataFrame:
    """Requests per answered status code, nonstandard codes in one bar (as on the partner page)."""
    answered = codes.filter(pl.col("status_code").is_not_null())
    nonstandard = answered.filter(pl.col("error_class") == "nonstandard")
    standard = answered.filter(pl.col("error_class") != "nonstandard").select(
        "label", "error_class", "requests"
    )
    if nonstandard.height:
        grouped = pl.DataFrame(
            {
                "label": [f"nonstandard ({nonstandard.height} codes)"],
                "error_class": ["nonstandard"],
                "requests": [int(nonstandard.get_column("requests").sum())],
            }
        )
        standard = pl.concat([standard, grouped], how="vertical_relaxed")
    return standard


def rates_frame(hours: pl.DataFrame) -> pl.DataFrame:
    """Per hour (or day): requests, 429s and 5xx, and their shares in percent (as on the partner page)."""
    return (
        hours.group_by("hour")
        .agg(
            pl.col("requests").sum().alias("requests"),
            pl.col("requests").filter(pl.col("error_class") == "rate_limit").sum().alias("status_429"),
            pl.col("requests").filter(pl.col("error_class") == "server").sum().alias("status_5xx"),
        )
        .with_columns(
            (100 * pl.col("status_429") / pl.col("requests")).alias("rate_429_pct"),
            (100 * pl.col("status_5xx") / pl.col("requests")).alias("rate_5xx_pct"),
        )
        .sort("hour")
    )
