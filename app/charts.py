"""Charts more than one page draws, built the same way everywhere."""

from __future__ import annotations

from typing import Any

import plotly.express as px
import plotly.graph_objects as go
import polars as pl

from app import style

#: Final outcomes of the event cohort, in the order the bars show them.
FATES = (
    ("delivered on the first attempt", "delivered_first_attempt", "delivered"),
    ("delivered after retries", "delivered_after_retries", "delivered"),
    ("failed (terminal error)", "failed", "failed"),
    ("dropped (retries ran out)", "dropped", "dropped"),
    ("skipped (never sent)", "skipped", "skipped"),
    ("still retrying", "still_retrying", "still retrying"),
)


def fates_bar(figures: dict[str, Any], title: str) -> go.Figure:
    """Events by final outcome, with counts and shares of events received."""
    received = figures["events_received"] or 0
    rows = [
        {
            "fate": label,
            "events": figures[column],
            "share": 100 * figures[column] / received if received else 0.0,
            "outcome": outcome,
        }
        for label, column, outcome in FATES
    ]
    frame = pl.DataFrame(rows)
    figure = px.bar(
        frame.to_pandas(),
        x="events",
        y="fate",
        orientation="h",
        color="outcome",
        color_discrete_map=style.OUTCOME_COLORS,
        text=[f"{row['events']:,} ({row['share']:.2f}%)" for row in rows],
        labels={"events": "events", "fate": ""},
    )
    figure.update_yaxes(categoryorder="array", categoryarray=[label for label, _, _ in reversed(FATES)])
    figure.update_layout(showlegend=False)
    return style.finish(figure, title=title, x="events", y="final outcome")


def hourly_classes(hours: pl.DataFrame, title: str, per: str = "hour") -> go.Figure:
    """Requests per hour (or per `per`: a day, over a range of days), stacked by error class."""
    frame = hours.with_columns(style.class_label())
    figure = px.bar(
        frame.to_pandas(),
        x="hour",
        y="requests",
        color="error_class",
        color_discrete_map=style.LABEL_COLORS,
        labels={"hour": f"{per} (UTC)", "requests": "requests", "error_class": "error class"},
    )
    return style.finish(
        figure, title=title, x=f"{per} (UTC)", y=f"requests per {per}", height=440, legend_below=True
    )


def daily_trend(daily: pl.DataFrame, title: str) -> go.Figure:
    """First-attempt and eventual delivery rates per day of receipt, as lines."""
    frame = daily.unpivot(
        index="day", on=["first_attempt_pct", "eventual_pct"], variable_name="rate", value_name="pct"
    ).with_columns(
        pl.col("rate").replace({"first_attempt_pct": "first attempt", "eventual_pct": "eventually"})
    )
    figure = px.line(
        frame.to_pandas(),
        x="day",
        y="pct",
        color="rate",
        markers=True,
        labels={"day": "day received (UTC)", "pct": "events delivered (%)", "rate": "delivered"},
    )
    return style.finish(
        figure, title=title, x="day received (UTC)", y="events delivered (%)", legend_below=True
    )


def delivery_funnel(funnel: pl.DataFrame, title: str) -> go.Figure:
    """First attempt versus eventual delivery: received, delivered by attempt k, after a replay if any."""
    frame = funnel.filter(pl.col("kind").is_in(["received", "delivered", "replayed"])).sort("step")
    figure = px.funnel(
        frame.to_pandas(),
        x="events",
        y="stage",
        text=[f"{events:,} ({pct:.2f}%)" for events, pct in frame.select("events", "pct").iter_rows()],
        labels={"events": "events", "stage": ""},
    )
    figure.update_traces(textinfo="text")
    return style.finish(figure, title=title, x="events", y="stage")
