"""The pack's report: one self-contained HTML file (plotly.js inline, so it opens offline).

Every number is in a labelled table row or a chart with a title and
labelled axes; every text that came from the log has been scrubbed before
it gets here, and is HTML-escaped here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

import plotly.graph_objects as go
import plotly.offline

from app import style
from app.evidence.figures import PartnerFigures

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { white-space: pre-wrap; word-break: break-all; background: #f6f6f6; padding: 0.5rem; margin: 0; }
.note { background: #fff6e0; border-left: 4px solid #f0a000; padding: 0.5rem 0.8rem; margin: 0.5rem 0; }
.muted { color: #666; }
"""

#: Where plotly.js goes: `with_library` puts it in after the report's own text was scrubbed.
LIBRARY = "<!-- plotly.js -->"

#: The summary's rows: (label, day_report column, how to show it, what it means).
SUMMARY = (
    ("Requests", "requests", "count", "HTTP requests sent to the integration in the range"),
    ("Answered 429", "status_429_requests_pct", "pct", "share of requests answered 429 Too Many Requests"),
    ("Answered 5xx", "status_5xx_requests_pct", "pct", "share of requests answered with a 5xx status"),
    ("Answered 401/403", "auth_requests_pct", "pct", "share of requests refused for their credentials"),
    ("Answered 400", "status_400_requests_pct", "pct", "share of requests answered 400 Bad Request"),
    ("Network errors", "network_requests_pct", "pct", "share of requests without an answer: network errors"),
    ("Timeouts", "timeout_requests_pct", "pct", "share of requests without an answer in time"),
    ("Nonstandard status", "nonstandard_requests_pct", "pct", "share of answers outside HTTP's status codes"),
    ("Events received", "events_received", "count", "events sent to the integration, received in the range"),
    (
        "Events delivered first try",
        "delivered_first_attempt_pct",
        "pct",
        "share delivered by the first request",
    ),
    (
        "Recovered by retries",
        "delivered_after_retries_pct",
        "pct",
        "share whose first attempt failed and a retry delivered",
    ),
    (
        "Delivered eventually",
        "delivered_eventually_pct",
        "pct",
        "share delivered, first try or after retries",
    ),
    ("Failed", "failed_pct", "pct", "share lost to a terminal answer"),
    ("Dropped", "dropped_pct", "pct", "share lost when the retries ran out"),
)


def render(
    figures: PartnerFigures, charts: Sequence[tuple[go.Figure, str]], notes: Sequence[str], made: dt.datetime
) -> str:
    """The report: `charts` are (figure, name of the CSV behind it); `notes` the advice."""
    name = escape(figures.integration)
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Evidence pack: {name}</title>",
        f"<style>{_STYLE}</style>{LIBRARY}</head><body>",
        f"<h1>What the {name} API did to the data sent to it</h1>",
        f"<p>Integration <b>{name}</b>, across every customer sending to it, "
        f"{escape(style.time_range(figures.start, figures.end))}. "
        f"Made {made:%Y-%m-%d %H:%M} UTC by deliverydash. "
        "Aggregates only: no workspace, source or destination ids; error bodies redacted.</p>",
        "<h2>Summary</h2>",
        _summary(figures),
    ]
    for figure, csv in charts:
        parts.append(figure.to_html(full_html=False, include_plotlyjs=False, default_width="100%"))
        parts.append(f"<p class='muted'>Data: <code>{escape(csv)}</code></p>")
    parts += [_latency(figures), _advice(notes), _templates(figures), "</body></html>"]
    return "\n".join(parts)


def _summary(figures: PartnerFigures) -> str:
    rows = []
    for label, column, kind, meaning in SUMMARY:
        value = figures.report[column]
        shown = style.count(value) if kind == "count" else style.pct(value)
        rows.append(f"<tr><th>{escape(label)}</th><td class='n'>{shown}</td><td>{escape(meaning)}</td></tr>")
    return "<table><tr><th>figure</th><th>value</th><th>meaning</th></tr>" + "".join(rows) + "</table>"


def _latency(figures: PartnerFigures) -> str:
    if not figures.latency.height:
        return "<h2>Latency</h2><p>No timed requests in this range.</p>"
    row = figures.latency.row(0, named=True)
    cells = "".join(
        f"<tr><th>{label}</th><td class='n'>{style.ms(row[column])}</td></tr>"
        for label, column in (
            ("p50", "p50_ms"),
            ("p95", "p95_ms"),
            ("p99", "p99_ms"),
            ("mean", "mean_ms"),
            ("max", "max_ms"),
        )
    )
    timed = f"<tr><th>requests timed</th><td class='n'>{style.count(row['requests'])}</td></tr>"
    return (
        "<h2>Latency</h2><p class='muted'>Request duration; percentiles within 5% (from hourly histograms). "
        "Data: <code>data/latency.csv</code></p>"
        f"<table><tr><th>statistic</th><th>duration</th></tr>{cells}{timed}</table>"
    )


def _advice(notes: Sequence[str]) -> str:
    head = "<h2>Advice: answers that defeat retries</h2>"
    if not notes:
        return head + "<p>Nothing stands out: this integration's error answers let retries do their job.</p>"
    return head + "".join(f"<div class='note'>{escape(note)}</div>" for note in notes)


def _templates(figures: PartnerFigures) -> str:
    head = (
        "<h2>Most frequent error answers</h2><p class='muted'>Grouped by template (variable parts masked); "
        "each with its latest body, redacted: quoted values, numbers, e-mail addresses, URLs and "
        "customer ids are placeholders. Data: <code>data/error_templates.csv</code></p>"
    )
    if not figures.samples.height:
        return head + "<p>No error answers with a body in this range.</p>"
    rows = [
        "<tr><th>requests</th><th>HTTP status or error</th><th>error class</th><th>template</th>"
        "<th>latest example (redacted)</th></tr>"
    ]
    for sample in figures.samples.iter_rows(named=True):
        answer = sample["status_code"] if sample["status_code"] is not None else sample["error_code"]
        rows.append(
            f"<tr><td class='n'>{style.count(sample['requests'])}</td><td>{escape(str(answer))}</td>"
            f"<td>{escape(sample['error_class'] or '')}</td>"
            f"<td><pre>{escape(sample['template'] or '')}</pre></td>"
            f"<td><pre>{escape(sample['example'] or '(empty body)')}</pre></td></tr>"
        )
    return head + "<table>" + "".join(rows) + "</table>"


def with_library(page: str) -> str:
    """`page` with plotly.js inline in place of `LIBRARY`: the report opens offline, in any browser."""
    return page.replace(LIBRARY, f"<script>{plotly.offline.get_plotlyjs()}</script>", 1)
