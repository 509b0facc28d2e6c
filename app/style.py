"""How numbers and charts look, the same on every page.

One colour per error class everywhere, so "rate_limit" is the same orange on
the day page, a customer's dashboard and a partner's page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import plotly.graph_objects as go
import polars as pl

from ingest.taxonomy import ErrorClass, Outcome

CLASS_COLORS: Final[dict[str, str]] = {
    ErrorClass.NONE: "#2ca02c",
    ErrorClass.AUTH: "#d62728",
    ErrorClass.VALIDATION: "#9467bd",
    ErrorClass.CLIENT: "#8c564b",
    ErrorClass.RATE_LIMIT: "#ff7f0e",
    ErrorClass.SERVER: "#e377c2",
    ErrorClass.TIMEOUT: "#bcbd22",
    ErrorClass.NETWORK: "#17becf",
    ErrorClass.TLS: "#1f77b4",
    ErrorClass.NONSTANDARD: "#7f7f7f",
    ErrorClass.REDIRECT: "#aec7e8",
    ErrorClass.PRECHECK: "#c5b0d5",
    ErrorClass.DISABLED: "#393b79",
}
OUTCOME_COLORS: Final[dict[str, str]] = {
    Outcome.DELIVERED: "#2ca02c",
    Outcome.RETRY: "#ff7f0e",
    Outcome.FAILED: "#d62728",
    Outcome.DROPPED: "#8c564b",
    Outcome.SKIPPED: "#7f7f7f",
    "still retrying": "#bcbd22",
}
CLASS_LABELS: Final[dict[str, str]] = {
    ErrorClass.NONE: "success",
    ErrorClass.AUTH: "auth (401/403)",
    ErrorClass.VALIDATION: "validation (400/422)",
    ErrorClass.CLIENT: "other 4xx",
    ErrorClass.RATE_LIMIT: "rate limit (429)",
    ErrorClass.SERVER: "server (5xx)",
    ErrorClass.TIMEOUT: "timeout",
    ErrorClass.NETWORK: "network",
    ErrorClass.TLS: "TLS",
    ErrorClass.NONSTANDARD: "nonstandard status",
    ErrorClass.REDIRECT: "redirect (3xx)",
    ErrorClass.PRECHECK: "refused before sending",
    ErrorClass.DISABLED: "destination disabled",
}


#: The same colours, keyed by the labels charts show.
LABEL_COLORS: Final[dict[str, str]] = {CLASS_LABELS[name]: color for name, color in CLASS_COLORS.items()}


def class_label(column: str = "error_class") -> pl.Expr:
    """The column's error classes as their on-screen labels (`rate_limit` -> `rate limit (429)`)."""
    return pl.col(column).replace_strict(CLASS_LABELS, default=pl.col(column))


def count(value: Any) -> str:
    """A whole number with thousands separators; a dash for nothing."""
    if value is None:
        return "-"
    return f"{int(value):,}"


#: From here on a metric card shows a count in compact units: "11,812,345" no longer fits a
#: card of a five-card row in a 1400-pixel window ("11,81…"), "11.8M" does.
COMPACT_FROM: Final = 1_000_000
_UNITS: Final = ((1_000_000_000_000, "T"), (1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K"))


def card_count(value: Any) -> str:
    """A count for a metric card: exact below a million, else compact (`11.8M`); a dash for nothing."""
    if value is None or int(value) < COMPACT_FROM:
        return count(value)
    whole = int(value)
    for index, (size, unit) in enumerate(_UNITS):
        if whole >= size:
            shown = f"{whole / size:.1f}"
            if float(shown) >= 1000 and index:  # rounded up to the next unit: 1.0B, never 1000.0M
                size, unit = _UNITS[index - 1]
                shown = f"{whole / size:.1f}"
            return f"{shown}{unit}"
    return count(value)


def card_help(value: Any, help: str | None = None) -> str | None:
    """The card's tooltip: its own help, and the exact count when the card shows a compact one."""
    exact = f"Exactly {int(value):,}." if value is not None and int(value) >= COMPACT_FROM else None
    return " ".join(part for part in (help, exact) if part) or None


def pct(value: Any, digits: int = 2) -> str:
    """A percentage with a % sign; a dash for nothing."""
    if value is None:
        return "-"
    return f"{float(value):.{digits}f}%"


def ms(value: Any) -> str:
    """A latency in milliseconds, or seconds past 10 s."""
    if value is None:
        return "-"
    value = float(value)
    return f"{value / 1000:,.1f} s" if value >= 10_000 else f"{value:,.0f} ms"


def duration(seconds: Any) -> str:
    """A duration in the largest unit that keeps it readable."""
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def time_range(start: dt.datetime, end: dt.datetime) -> str:
    """`2026-11-27 06:00 to 12:00 UTC`; a range ending at the next midnight ends at 24:00.

    Several whole days read `2026-11-21 to 2026-11-27 UTC (7 days)`.
    """
    span = end - start
    whole_days = (
        start.time() == dt.time()
        and end.time() == dt.time()
        and span % dt.timedelta(days=1) == dt.timedelta()
    )
    if whole_days and span > dt.timedelta(days=1):
        last = (end - dt.timedelta(days=1)).date()
        return f"{start:%Y-%m-%d} to {last:%Y-%m-%d} UTC ({span.days} days)"
    if end.date() == start.date():
        until = f"{end:%H:%M}"
    elif end == dt.datetime.combine(start.date(), dt.time(), start.tzinfo) + dt.timedelta(days=1):
        until = "24:00"
    else:
        until = f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M} to {until} UTC"


def finish(
    figure: go.Figure, *, title: str, x: str, y: str, height: int = 340, legend_below: bool = False
) -> go.Figure:
    """Every chart gets a title, labelled axes and the same margins."""
    figure.update_layout(
        title={"text": title},
        xaxis_title=x,
        yaxis_title=y,
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend_title_text="",
    )
    if legend_below:
        figure.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0})
    return figure
