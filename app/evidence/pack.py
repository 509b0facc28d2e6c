"""Build a partner's evidence pack: a zip of the HTML report and the CSV behind every chart.

One implementation for `deliverydash evidence` and the partner page's
download button (docs/evidence.md). The figures are the partner page's
queries for one integration and range; every text written is scrubbed of
the configured secrets and of every workspace and destination id in the
range (`app.evidence.scrub`).
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import polars as pl

from app.evidence import charts, html
from app.evidence.figures import PartnerFigures, rates_frame, read_figures, tenant_ids
from app.evidence.scrub import Scrubber
from queries import AttemptLog, Scope, api

#: The CSV behind each chart of the report, in the report's order.
CSVS = (
    (charts.status_codes, "data/status_codes.csv"),
    (charts.rates, "data/rates_429_5xx.csv"),
    (charts.classes_over_time, "data/requests_by_class.csv"),
    (charts.latency, "data/latency.csv"),
    (charts.retry_outcomes, "data/retry_outcomes.csv"),
)
README = """Evidence pack: what the {integration} API did to the data sent to it, {range}.

report.html                  the report: open it in a browser (self-contained, works offline)
data/summary.csv             the summary table's figures
data/status_codes.csv        requests per status code (or, without an answer, per error code)
data/rates_429_5xx.csv       per {per}: requests, 429s, 5xx and their shares
data/requests_by_class.csv   per {per}: requests per error class
data/latency.csv             request duration percentiles, mean and max (ms)
data/retry_outcomes.csv      per class of first failure: what retries recovered
data/error_templates.csv     the most frequent error answers, grouped by template, redacted

Made by deliverydash from its attempt log; no workspace, source or destination ids, no credentials.
"""


class EvidenceError(Exception):
    """No pack can be made for this integration and range; the message says why."""


Progress = Callable[[str], object]


def build_pack(
    log: AttemptLog,
    integration: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    secrets: Iterable[str] = (),
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> bytes:
    """The zip's bytes; raises `EvidenceError` for an integration without requests in the range.

    `secrets` are scrubbed from every text of the pack, as is every workspace
    and destination id with requests in the range. `progress` is told each step.
    """
    step = progress or (lambda _: None)
    step("reading the partner page's figures")
    figures = read_figures(log, integration, start, end)
    if not figures.report["requests"]:
        raise EvidenceError(_why_empty(log, integration, start, end))
    step("scrubbing secrets and customer ids")
    scrub = Scrubber([*secrets, *tenant_ids(log, start, end)], keep=[integration])
    figures = _scrubbed(figures, scrub)
    step("drawing the charts")
    made = now or dt.datetime.now(dt.UTC)
    page = html.render(figures, [(chart(figures), csv) for chart, csv in CSVS], figures.advice(), made)
    step("writing the zip")
    files = {"README.txt": _readme(figures), "report.html": html.with_library(scrub(page))}
    files |= {name: scrub(text) for name, text in _csvs(figures).items()}
    return _zip(files, folder=folder_name(integration, start, end), made=made)


def folder_name(integration: str, start: dt.datetime, end: dt.datetime) -> str:
    """`evidence-<integration>-<start>-<end>`, the zip's one folder (and the download's name)."""
    return f"evidence-{integration}-{start:%Y%m%dT%H}-{end:%Y%m%dT%H}"


def _why_empty(log: AttemptLog, integration: str, start: dt.datetime, end: dt.datetime) -> str:
    known = api.by_integration(log, Scope.all(), start, end).sort("requests", descending=True)
    names = known.get_column("integration").to_list()
    if not names:
        return f"no requests at all between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC"
    listed = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f"no requests to integration {integration!r} in this range; integrations with requests: {listed}"


def _scrubbed(figures: PartnerFigures, scrub: Scrubber) -> PartnerFigures:
    def frame(data: pl.DataFrame) -> pl.DataFrame:
        texts = [name for name, dtype in data.schema.items() if dtype == pl.String]
        return data.with_columns(pl.col(name).map_elements(scrub, return_dtype=pl.String) for name in texts)

    return replace(
        figures,
        codes=frame(figures.codes),
        hours=frame(figures.hours),
        samples=frame(figures.samples),
        recovery=frame(figures.recovery),
    )


def _csvs(figures: PartnerFigures) -> dict[str, str]:
    summary = pl.DataFrame(
        {
            "figure": [label for label, _, _, _ in html.SUMMARY],
            "column": [column for _, column, _, _ in html.SUMMARY],
            "value": [_value(figures.report[column], kind) for _, column, kind, _ in html.SUMMARY],
            "meaning": [meaning for _, _, _, meaning in html.SUMMARY],
        }
    )
    samples = figures.samples.drop("destination_id", strict=False)
    return {
        "data/summary.csv": summary.write_csv(),
        "data/status_codes.csv": figures.codes.write_csv(),
        "data/rates_429_5xx.csv": rates_frame(figures.hours).write_csv(),
        "data/requests_by_class.csv": figures.hours.write_csv(),
        "data/latency.csv": figures.latency.write_csv(),
        "data/retry_outcomes.csv": figures.recovery.write_csv(),
        "data/error_templates.csv": samples.write_csv(),
    }


def _value(value: Any, kind: str) -> str:
    if value is None:
        return ""
    return str(int(value)) if kind == "count" else f"{float(value):.4f}"


def _readme(figures: PartnerFigures) -> str:
    from app import style

    return README.format(
        integration=figures.integration, range=style.time_range(figures.start, figures.end), per=figures.per
    )


def _zip(files: dict[str, str], *, folder: str, made: dt.datetime) -> bytes:
    buffer = io.BytesIO()
    stamp = made.timetuple()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(f"{folder}/{name}", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode())
    return buffer.getvalue()
