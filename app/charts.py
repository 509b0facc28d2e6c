"""The dashboard's charts, built the same way everywhere; pages draw them `kept`, built once.

Building a figure with plotly express (and laying it out) was about three
quarters of a warm page run's CPU on the customer page: a click served from
the query cache still rebuilt every chart. A page calls ``kept(builder)(...)``:
the same arguments (data frames by their contents) give back the figure
built the first time, the object itself, for every session. So a page must
never change a figure it was given (`st.plotly_chart` only reads it). The
builders themselves stay plain functions: the evidence pack, built outside
the dashboard too, calls them directly.

The figures are made of graph objects, one trace per series as plotly
express would make them (`series`): express took 35-40 ms to build a chart
where the same traces take 2 ms (docs/benchmarks.md), and a page's charts
are built again for every range it is shown for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
import polars.selectors as cs
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

    def text(events: int) -> str:
        return f"{events:,} ({100 * events / received if received else 0.0:.2f}%)"

    rows = [
        {"fate": label, "events": figures[column], "outcome": outcome, "text": text(figures[column])}
        for label, column, outcome in FATES
    ]
    figure = go.Figure(
        series(
            pl.DataFrame(rows),
            x="events",
            y="fate",
            color="outcome",
            colors=style.OUTCOME_COLORS,
            labels={"events": "events", "fate": "", "outcome": "outcome"},
            text="text",
            orientation="h",
        ),
        layout={"barmode": "relative", "showlegend": False},
    )
    figure.update_yaxes(categoryorder="array", categoryarray=[label for label, _, _ in reversed(FATES)])
    return style.finish(figure, title=title, x="events", y="final outcome")


def requests_by_class(frame: pl.DataFrame, x: str, x_label: str) -> go.Figure:
    """Bars of `requests` per `x`, stacked by error class (its label and colour)."""
    return go.Figure(
        series(
            frame.with_columns(style.class_label()),
            x=x,
            y="requests",
            color="error_class",
            colors=style.LABEL_COLORS,
            labels={x: x_label, "requests": "requests", "error_class": "error class"},
        ),
        layout={"barmode": "relative"},
    )


def hourly_classes(hours: pl.DataFrame, title: str, per: str = "hour") -> go.Figure:
    """Requests per hour (or per `per`: a day, over a range of days), stacked by error class."""
    figure = requests_by_class(hours, "hour", f"{per} (UTC)")
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
    figure = go.Figure(
        series(
            frame,
            x="day",
            y="pct",
            color="rate",
            labels={"day": "day received (UTC)", "pct": "events delivered (%)", "rate": "delivered"},
            trace=go.Scatter,
            mode="lines+markers",
        )
    )
    return style.finish(
        figure, title=title, x="day received (UTC)", y="events delivered (%)", legend_below=True
    )


def delivery_funnel(funnel: pl.DataFrame, title: str) -> go.Figure:
    """First attempt versus eventual delivery: received, delivered by attempt k, after a replay if any."""
    frame = funnel.filter(pl.col("kind").is_in(["received", "delivered", "replayed"])).sort("step")
    texts = [f"{events:,} ({pct:.2f}%)" for events, pct in frame.select("events", "pct").iter_rows()]
    figure = go.Figure(
        go.Funnel(
            x=frame.get_column("events").to_list(),
            y=frame.get_column("stage").to_list(),
            text=texts,
            textinfo="text",
            marker={"color": _colorway()[0]},
            hovertemplate="events=%{x}<br>=%{y}<br>text=%{text}<extra></extra>",
            showlegend=False,
        )
    )
    return style.finish(figure, title=title, x="events", y="stage")


def failed_by_class(errors: pl.DataFrame, title: str) -> go.Figure | None:
    """Failed requests per error class, largest first (`by_error` rows); None when none failed."""
    failed = errors.filter(pl.col("error_class") != "none")
    if not failed.height:
        return None
    by_class = (
        failed.group_by("error_class")
        .agg(pl.col("requests").sum())
        .with_columns(style.class_label())
        .sort("requests", descending=True)
    )
    figure = go.Figure(
        series(
            by_class,
            x="error_class",
            y="requests",
            color="error_class",
            colors=style.LABEL_COLORS,
            labels={"error_class": "error class", "requests": "failed requests"},
        ),
        layout={"barmode": "relative", "showlegend": False},
    )
    figure.update_xaxes(categoryorder="array", categoryarray=by_class.get_column("error_class").to_list())
    return style.finish(figure, title=title, x="error class", y="requests")


def terminal_codes(codes: pl.DataFrame, title: str) -> go.Figure | None:
    """Requests per terminal 4xx status code (`by_status_code` rows); None when there were none."""
    terminal = codes.filter(pl.col("error_class").is_in(["auth", "validation", "client"]))
    if not terminal.height:
        return None
    figure = requests_by_class(terminal, "label", "status code")
    figure.update_xaxes(type="category")
    return style.finish(figure, title=title, x="HTTP status", y="requests")


def delivered_per_attempt(funnel: pl.DataFrame, title: str) -> go.Figure | None:
    """Events delivered at each attempt, on a log scale (`funnel` rows); None when none was delivered."""
    delivered = funnel.filter(pl.col("kind") == "delivered")
    if not delivered.height:
        return None
    # The funnel's stages are cumulative; each bar is what one more attempt added.
    per_attempt = delivered.sort("attempt").with_columns(pl.col("events").diff().fill_null(pl.col("events")))
    events = per_attempt.get_column("events").to_list()
    figure = go.Figure(
        go.Bar(
            x=per_attempt.get_column("attempt").to_list(),
            y=events,
            text=[f"{count:,}" for count in events],
            textposition="auto",
            marker={"color": style.CLASS_COLORS["none"]},
            hovertemplate=(
                "attempt that delivered=%{x}<br>events delivered=%{y}<br>text=%{text}<extra></extra>"
            ),
            showlegend=False,
        ),
        layout={"barmode": "relative", "yaxis": {"type": "log"}},
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
    figure = go.Figure(
        series(
            labelled,
            x="attempt",
            y="delivered_by_pct",
            color="curve",
            colors=colors,
            labels={
                "attempt": "attempts made",
                "delivered_by_pct": "delivered (%)",
                "curve": "first failure",
            },
            trace=go.Scatter,
            mode="lines+markers",
        )
    )
    figure.update_yaxes(ticksuffix="%", range=[0, 100])
    return style.finish(
        figure, title=title, x="attempts made", y="events delivered (% of the curve's events)", height=420
    )


def delay_buckets(buckets: pl.DataFrame, title: str) -> go.Figure:
    """Delivered events by time from receipt to delivery, first attempt beside after retries, on a log
    scale (`delivery_delay_histogram` rows)."""
    upper = pl.col("upper_ms").map_elements(lambda ms: style.duration(ms / 1000), return_dtype=pl.String)
    figure = go.Figure(
        series(
            buckets.with_columns(upper.alias("up to")),
            x="up to",
            y="events",
            color="delivery",
            colors={
                "first attempt": style.CLASS_COLORS["none"],
                "after retries": style.CLASS_COLORS["rate_limit"],
            },
            labels={"events": "events delivered", "up to": "time to delivery, up to", "delivery": ""},
        ),
        layout={"barmode": "group", "yaxis": {"type": "log"}},
    )
    return style.finish(figure, title=title, x="time to delivery", y="events (log scale)")


def series(
    frame: pl.DataFrame,
    *,
    x: str,
    y: str,
    color: str,
    labels: Mapping[str, str],
    colors: Mapping[str, str] | None = None,
    text: str | None = None,
    trace: Callable[..., Any] = go.Bar,
    **options: Any,
) -> list[Any]:
    """One trace of `frame`'s `x` and `y` per value of `color`, in the order the values first come,
    as plotly express draws them: named by the value, coloured from `colors` or else the template's
    colourway in turn, and hovered with the `labels` of the columns."""
    palette = _colorway()
    # Plotly.js reads no time zone in a date: UTC times go as they read, as express sends them.
    frame = frame.with_columns(
        cs.datetime(time_zone="*").dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    )
    traces = []
    for index, ((value,), rows) in enumerate(frame.group_by(color, maintain_order=True)):
        hover = f"{labels.get(x, x)}=%{{x}}<br>{labels.get(y, y)}=%{{y}}"
        if color != x:  # a series per x value says its name once
            hover = f"{labels.get(color, color)}={value}<br>{hover}"
        extra: dict[str, Any] = {}
        if text is not None:
            extra = {"text": rows.get_column(text).to_list(), "textposition": "auto"}
            hover += "<br>text=%{text}"
        if trace is go.Bar:
            extra["marker"] = {"color": _color(value, colors, palette, index)}
        else:
            extra["line"] = {"color": _color(value, colors, palette, index)}
        traces.append(
            trace(
                x=rows.get_column(x).to_list(),
                y=rows.get_column(y).to_list(),
                name=str(value),
                legendgroup=str(value),
                hovertemplate=hover + "<extra></extra>",
                **extra,
                **options,
            )
        )
    return traces


def _color(value: object, colors: Mapping[str, str] | None, palette: Sequence[str], index: int) -> str:
    if colors is not None and str(value) in colors:
        return colors[str(value)]
    return palette[index % len(palette)]


def _colorway() -> Sequence[str]:
    """The default template's colours (Streamlit's, which the browser maps to its theme)."""
    template = pio.templates[pio.templates.default]
    colorway: Sequence[str] = template.layout.colorway or ("#636efa",)
    return colorway
