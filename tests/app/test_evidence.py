"""The evidence pack on a simulated day: its figures are the partner page's, it names no customer,
`deliverydash evidence` refuses bad input in one line, and the partner page offers it for download."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import plotly.offline
import polars as pl
import pytest

import app.evidence
from app.access import ViewerKind
from deliverydash.cli import main
from queries import Scope, api, connect
from tests.app.conftest import END, START, OpenApp, SimulatedDay, token


def pack_files(path: Path) -> dict[str, str]:
    """Every file of the zip, by its name inside the pack's folder, as text."""
    with zipfile.ZipFile(path) as archive:
        return {name.split("/", 1)[1]: archive.read(name).decode() for name in archive.namelist()}


def without_plotly_js(files: dict[str, str]) -> dict[str, str]:
    """The files with the report's copy of plotly.js left out: a fixed text no data goes into, and
    98% of the bytes a scan for every tenant id would otherwise read."""
    library = plotly.offline.get_plotlyjs()
    assert files["report.html"].count(library) == 1
    return files | {"report.html": files["report.html"].replace(library, "")}


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def pack(simulated_day: SimulatedDay, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("evidence") / "pack.zip"
    integration = simulated_day.integrations[0]
    argv = ["evidence", "--partner", integration, "--data-dir", str(simulated_day.data_dir)]
    assert main([*argv, "--since", "2026-11-27", "--until", "2026-11-28", "--out", str(out)]) == 0
    return pack_files(out)


def test_the_pack_holds_the_report_and_the_csv_behind_every_chart(pack: dict[str, str]) -> None:
    assert set(pack) == {"README.txt", "report.html", *(csv for _, csv in app.evidence.pack.CSVS)} | {
        "data/summary.csv",
        "data/error_templates.csv",
    }
    report = pack["report.html"]
    for title in (
        "Status code distribution",
        "429 and 5xx rates per hour",
        "Requests per hour by error class",
        "Request latency",
        "Retry outcomes by class of first failure",
        "Advice: answers that defeat retries",
        "Most frequent error answers",
    ):
        assert title in report
    assert "<script src=" not in report  # plotly.js inline: the report opens offline
    assert report.count("Plotly.newPlot") == len(app.evidence.pack.CSVS)


def test_the_pack_shows_the_partner_page_s_figures(simulated_day: SimulatedDay, pack: dict[str, str]) -> None:
    scope = Scope.integration(simulated_day.integrations[0])
    with connect(simulated_day.data_dir) as log:
        report = api.day_report(log, scope, START, END).row(0, named=True)
        codes = api.by_status_code(log, scope, START, END)
        samples = api.error_samples(log, scope, START, END, limit=15)
    summary = {row["column"]: row["value"] for row in rows(pack["data/summary.csv"])}
    assert int(summary["requests"]) == report["requests"]
    assert float(summary["status_429_requests_pct"]) == pytest.approx(
        report["status_429_requests_pct"], abs=1e-4
    )
    written = pl.read_csv(io.StringIO(pack["data/status_codes.csv"]), schema_overrides={"label": pl.String})
    assert written.get_column("requests").sum() == codes.get_column("requests").sum()
    assert len(rows(pack["data/error_templates.csv"])) == samples.height
    assert f"{report['requests']:,}" in pack["report.html"]


def test_the_pack_names_no_workspace_or_destination(
    simulated_day: SimulatedDay, pack: dict[str, str]
) -> None:
    ids = [*simulated_day.workspaces, *(d for ids in simulated_day.destinations.values() for d in ids)]
    leaks = [
        (name, value) for name, text in without_plotly_js(pack).items() for value in ids if value in text
    ]
    assert not leaks


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partner", "no-such-partner"], "no requests to integration 'no-such-partner' in this range"),
        (["--since", "2026-11-27T12", "--until", "2026-11-27T06"], "must be before --until"),
        (["--since", "2026-01-01"], "no requests at all between 2026-01-01 00:00"),
        (["--since", "2026-11-27T06:30"], "ranges are whole UTC hours"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    simulated_day: SimulatedDay,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    base = ["--partner", simulated_day.integrations[0], "--data-dir", str(simulated_day.data_dir)]
    argv = ["evidence", *base, "--out", str(tmp_path / "pack.zip"), *args]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("deliverydash evidence: ") and message in error
    assert not (tmp_path / "pack.zip").exists()


def test_an_existing_out_file_needs_force(
    simulated_day: SimulatedDay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pack.zip"
    out.write_bytes(b"mine")
    argv = ["evidence", "--partner", simulated_day.integrations[1], "--data-dir", str(simulated_day.data_dir)]
    assert main([*argv, "--out", str(out)]) == 2
    assert "exists (pass --force to replace it)" in capsys.readouterr().err
    assert out.read_bytes() == b"mine"
    assert main([*argv, "--out", str(out), "--force"]) == 0  # the latest day, by default
    assert "report.html" in pack_files(out)


def test_the_partner_page_offers_the_pack_and_builds_it_only_on_click(
    open_app: OpenApp, simulated_day: SimulatedDay, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    monkeypatch.setattr(app.evidence, "build_pack", lambda *args, **kwargs: built.append(args[1]) or b"")
    integration = simulated_day.integrations[0]
    at = open_app(token(ViewerKind.PARTNER, integration), page="views/partner.py")
    assert not at.exception
    buttons = at.get("download_button")
    assert len(buttons) == 1
    proto = buttons[0].proto
    assert proto.label == "Download the evidence pack (zip)"
    assert not built  # generated on click, not on page load
    with connect(simulated_day.data_dir) as log:
        zipped = app.evidence.pack.build_pack(log, integration, START, END)
    assert (
        zipfile.ZipFile(io.BytesIO(zipped))
        .namelist()[0]
        .startswith(f"{app.evidence.folder_name(integration, START, END)}/")
    )
