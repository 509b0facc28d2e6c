"""The dashboard's charts, built the same way everywhere; pages draw them `kept`, built once.

Building a figure with plotly express (and laying it out) was about three
quarters of a warm page run's CPU on the customer page: a click served from
the query cache still rebuilt every chart. A page calls ``kept(builder)(...)``:
the same arguments (data frames by their contents) give back the figure
built the first time, the object itself, for every session. So a page must
never change a figure it was given (`st.plotly_chart` only reads it). The
builders themselves stay plain functions: the evidence pack, built outside
the dashboard too, calls them directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec

import plotly.express as px
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from app import style

P = ParamSpec("P")
#: How long a built figure is kept, and how many: the query cache's time (app.data), a few pages'
#: worth of figures for a few viewers.
KEPT_S = 30
KEPT_FIGURES = 256


def kept(builder: Callable[P, go.Figure]) -> Callable[P, go.Figure]:
    """`builder`, whose figures are built once per distinct arguments and shared (module docstring)."""
    return st.cache_resource(ttl=KEPT_S, max_entries=KEPT_FIGURES, show_spinner=False)(builder)


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


def failed_by_class(errors: pl.DataFrame, title: str) -> go.Figure | None:
    """Failed requests per error class, largest first (`by_error` rows); None when none failed."""
    failed = errors.filter(pl.col("error_class") != "none")
    if not failed.height:
        return None
    by_class = failed.group_by("error_class").agg(pl.col("requests").sum()).with_columns(style.class_label())
    figure = px.bar(
        by_class.sort("requests", descending=True).to_pandas(),
        x="error_class",
        y="requests",
        color="error_class",
        color_discrete_map=style.LABEL_COLORS,
        labels={"error_class": "error class", "requests": "failed requests"},
    )
    figure.update_layout(showlegend=False)
    return style.finish(figure, title=title, x="error class", y="requests")


def terminal_codes(codes: pl.DataFrame, title: str) -> go.Figure | None:
    """Requests per terminal 4xx status code (`by_status_code` rows); None when there were none."""
    terminal = codes.filter(pl.col("error_class").is_in(["auth", "validation", "client"]))
    if not terminal.height:
        return None
    figure = px.bar(
        terminal.with_columns(style.class_label()).to_pandas(),
        x="label",
        y="requests",
        color="error_class",
        color_discrete_map=style.LABEL_COLORS,
        labels={"label": "status code", "requests": "requests", "error_class": "error class"},
    )
    figure.update_xaxes(type="category")
    return style.finish(figure, title=title, x="HTTP status", y="requests")


def delivered_per_attempt(funnel: pl.DataFrame, title: str) -> go.Figure | None:
    """Events delivered at each attempt, on a log scale (`funnel` rows); None when none was delivered."""
    delivered = funnel.filter(pl.col("kind") == "delivered")
    if not delivered.height:
        return None
    # The funnel's stages are cumulative; each bar is what one more attempt added.
    per_attempt = delivered.sort("attempt").with_columns(pl.col("events").diff().fill_null(pl.col("events")))
    figure = px.bar(
        per_attempt.to_pandas(),
        x="attempt",
        y="events",
        log_y=True,
        text=[f"{events:,}" for events in per_attempt.get_column("events")],
        labels={"attempt": "attempt that delivered", "events": "events delivered"},
        color_discrete_sequence=[style.CLASS_COLORS["none"]],
    )
    figure.update_xaxes(dtick=1)
    return style.finish(
        figure, title=title, x="attempt that delivered (1 = first try)", y="events (log scale)"
    )


def recovery_curves(curves: pl.DataFrame, title: str) -> go.Figure:
    """Share of events delivered after n attempts per class of first failure (`retries` rows), with
    the curve of all events received in black."""
    labelled = curves.with_columns(
        pl.col("first_error_class")
        .replace_strict(style.CLASS_LABELS, default=pl.col("first_error_class"))
        .fill_null("all events received")
        .alias("curve")
    )
    colors = {style.CLASS_LABELS[name]: color for name, color in style.CLASS_COLORS.items()}
    colors["all events received"] = "#000000"
    figure = px.line(
        labelled.to_pandas(),
        x="attempt",
        y="delivered_by_pct",
        color="curve",
        markers=True,
        color_discrete_map=colors,
        labels={"attempt": "attempts made", "delivered_by_pct": "delivered (%)", "curve": "first failure"},
    )
    figure.update_yaxes(ticksuffix="%", range=[0, 100])
    return style.finish(
        figure, title=title, x="attempts made", y="events delivered (% of the curve's events)", height=420
    )


def delay_buckets(buckets: pl.DataFrame, title: str) -> go.Figure:
    """Delivered events by time from receipt to delivery, first attempt beside after retries, on a log
    scale (`delivery_delay_histogram` rows)."""
    upper = pl.col("upper_ms").map_elements(lambda ms: style.duration(ms / 1000), return_dtype=pl.String)
    figure = px.bar(
        buckets.with_columns(upper.alias("up to")).to_pandas(),
        x="up to",
        y="events",
        color="delivery",
        barmode="group",
        log_y=True,
        labels={"events": "events delivered", "up to": "time to delivery, up to", "delivery": ""},
        color_discrete_map={
            "first attempt": style.CLASS_COLORS["none"],
            "after retries": style.CLASS_COLORS["rate_limit"],
        },
    )
    return style.finish(figure, title=title, x="time to delivery", y="events (log scale)")
