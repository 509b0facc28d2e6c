"""The pack's charts: the partner page's two, the classes over time, latency and retry outcomes.

Each has a title and labelled axes (`app.style.finish`), and its numbers
are in a CSV of the pack (`app.evidence.pack.CSVS`). The partner page's two
are graph objects (`app.charts.series`: built in a fifth of express's time,
on every range the page is shown for); the pack's own, built once per pack,
are plotly express.
"""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import polars as pl

from app import charts, style
from app.evidence.figures import PartnerFigures, rates_frame, status_code_frame

#: What became of the events whose first attempt failed, in the order the bars stack.
RETRY_FATES = (
    ("recovered", "recovered by a retry", "delivered"),
    ("failed", "failed on a retry", "failed"),
    ("dropped", "dropped (retries ran out)", "dropped"),
    ("skipped", "skipped (destination disabled)", "skipped"),
    ("still_retrying", "still retrying", "still retrying"),
    ("not_retried", "not retried (terminal answer)", "retry"),
)


def status_codes(figures: PartnerFigures) -> go.Figure:
    """Requests per status code, log scale, coloured by class (the partner page's chart)."""
    return status_codes_chart(figures.codes)


def status_codes_chart(codes: pl.DataFrame) -> go.Figure:
    """Requests per answered status code of the `by_status_code` query, nonstandard codes in one bar."""
    figure = charts.requests_by_class(status_code_frame(codes), "label", "status code")
    figure.update_yaxes(type="log")
    figure.update_xaxes(type="category")
    return style.finish(
        figure,
        title="Status code distribution",
        x="HTTP status",
        y="requests (log scale)",
        height=440,
        legend_below=True,
    )


def rates(figures: PartnerFigures) -> go.Figure:
    """429 and 5xx shares of requests over time (the partner page's chart)."""
    return rates_chart(figures.hours, figures.per)


def rates_chart(hours: pl.DataFrame, per: str) -> go.Figure:
    """429 and 5xx shares of the `hourly` query's requests per `per` (an hour or a day)."""
    frame = (
        rates_frame(hours)
        .rename({"rate_429_pct": "429 rate", "rate_5xx_pct": "5xx rate"})
        .unpivot(index="hour", on=["429 rate", "5xx rate"], variable_name="rate", value_name="pct")
    )
    figure = go.Figure(
        charts.series(
            frame,
            x="hour",
            y="pct",
            color="rate",
            colors={"429 rate": style.CLASS_COLORS["rate_limit"], "5xx rate": style.CLASS_COLORS["server"]},
            labels={"hour": f"{per} (UTC)", "pct": "share of requests (%)", "rate": ""},
            trace=go.Scatter,
            mode="lines+markers",
        )
    )
    figure.update_yaxes(ticksuffix="%")
    return style.finish(
        figure, title=f"429 and 5xx rates per {per}", x=f"{per} (UTC)", y="share of requests (%)"
    )


def classes_over_time(figures: PartnerFigures) -> go.Figure:
    """Requests per hour (or day) by error class: the status codes over time."""
    return charts.hourly_classes(
        figures.hours, f"Requests per {figures.per} by error class (status codes over time)", figures.per
    )


def latency(figures: PartnerFigures) -> go.Figure:
    """p50, p95, p99, mean and max request duration, as labelled bars."""
    row = figures.latency.row(0, named=True) if figures.latency.height else {}
    names = ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")
    values = [row.get(name) or 0.0 for name in names]
    figure = px.bar(
        x=[name.removesuffix("_ms") for name in names],
        y=values,
        text=[style.ms(value) for value in values],
        labels={"x": "statistic", "y": "duration (ms)"},
    )
    return style.finish(figure, title="Request latency", x="statistic", y="duration (ms)")


def retry_outcomes(figures: PartnerFigures) -> go.Figure:
    """Per class of first failure, the events' fates after it, stacked."""
    frame = figures.recovery.unpivot(
        index="first_error_class",
        on=[column for column, _, _ in RETRY_FATES],
        variable_name="fate",
        value_name="events",
    ).with_columns(
        pl.col("fate").replace_strict({column: label for column, label, _ in RETRY_FATES}),
        style.class_label("first_error_class"),
    )
    colours = {label: style.OUTCOME_COLORS[outcome] for _, label, outcome in RETRY_FATES}
    figure = px.bar(
        frame.to_pandas(),
        x="events",
        y="first_error_class",
        color="fate",
        orientation="h",
        color_discrete_map=colours,
        labels={"events": "events", "first_error_class": "first failure", "fate": "what became of them"},
    )
    return style.finish(
        figure,
        title="Retry outcomes by class of first failure",
        x="events",
        y="first failure",
        height=380,
        legend_below=True,
    )
