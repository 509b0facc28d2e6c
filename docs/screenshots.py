"""Full-page screenshots of the dashboard's main pages, for the README and docs/dashboard.md.

    .venv/bin/python docs/screenshots.py [--data-dir DIR] [--out docs/screenshots]

Starts `deliverydash dashboard` over DIR (by default a 2,000,000-attempt day
simulated into a temporary directory, about 15 s), opens it with an engineer
link in headless Chromium (Debian's `chromium`, which Playwright drives), and
saves one PNG per page, 1400 px wide, and the retry what-if's section. The
trace of one event needs an event with several destinations, which the
simulator does not make: `--trace-from DIR` takes it over a live-demo day's
log (`deliverydash demo --data-dir DIR`). The browser test (tests/app/browser.py) has its own
harness: tests must not depend on docs, nor docs on tests.

Then the views of issue 15 (`capture_issue15_views`; `--issue15` takes only
those): the customer page's "Delivered more than once" on the same day, the
report of a partner evidence pack built by `deliverydash evidence`, and the
customer page's "Backlog and headroom" of a live engine (`deliverydash
partners` and `deliverydash serve`, a burst of events, then `deliverydash
dashboard --config --engine-url` while the backlog drains; about 2 minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Locator, Page, sync_playwright

WIDTH = 1400
ATTEMPTS = 2_000_000
SECRET = "screenshots-only-secret-0123456789"
#: (file name, URL path, title to wait for); the day page is the home page, served at the root.
PAGES = (
    ("day", "", "A day of HTTP responses"),
    ("customer", "customer", "Customer delivery dashboard"),
    ("partner", "partner", "Partner error rates"),
    ("retries", "retries", "Retries"),
    ("explorer", "explorer", "Error explorer"),
    ("sql", "sql", "SQL console"),
)
SQL_EXAMPLE = """SELECT error_class, count(*) AS requests,
       round(100 * count(*) / sum(count(*)) OVER (), 2) AS pct
FROM attempts
GROUP BY ALL
ORDER BY requests DESC"""
TIMEOUT_MS = 180_000
CLI = (sys.executable, "-m", "deliverydash")
CHROMIUM_ARGS = (
    *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
    *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
)


@contextmanager
def running_dashboard(data_dir: Path, *options: str) -> Iterator[str]:
    """`deliverydash dashboard [options]` on a free port; yields its base URL once healthy."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, DELIVERYDASH_SECRET=SECRET, STREAMLIT_SERVER_FILE_WATCHER_TYPE="none")
    command = [*CLI, "dashboard", "--data-dir", str(data_dir), "--port", str(port), *options]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(f"the dashboard exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=1) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def engineer_token(base_url: str) -> str:
    link = subprocess.run(
        [*CLI, "link", "--engineer", "--ttl", "1h", "--base-url", base_url],
        env=dict(os.environ, DELIVERYDASH_SECRET=SECRET),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return link.strip().split("token=")[1]


def settle(page: Page, title: str) -> None:
    """Wait for the page's run to end and every lazily loaded element and chart to be drawn."""
    page.locator("[data-testid=stMain] h1").filter(has_text=title).first.wait_for(timeout=TIMEOUT_MS)
    page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid=stSkeleton]')
            && [...document.querySelectorAll('[data-testid=stPlotlyChart]')]
               .every(chart => chart.querySelector('.main-svg'))""",
        timeout=TIMEOUT_MS,
    )
    errors = page.get_by_test_id("stException").all_inner_texts()
    if errors:
        raise SystemExit(f"{page.url} raised: {errors}")


def full_page(page: Page, path: Path) -> None:
    """Streamlit scrolls inside its main block, not the document: grow the viewport to fit it."""
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stSidebar]')]"
        ".map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": WIDTH, "height": int(height) + 40})
    page.wait_for_timeout(500)  # one layout pass for charts that follow the width
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size({"width": WIDTH, "height": 900})


def section(page: Page, heading: str, path: Path) -> None:
    """The page from the heading `heading` to its end, as `full_page` lays it out."""
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": WIDTH, "height": int(height) + 40})
    page.wait_for_timeout(500)
    top = page.get_by_role("heading", name=heading).bounding_box()
    if top is None:
        raise SystemExit(f"{page.url} has no heading {heading!r}")
    end = page.locator("[data-testid=stMain] [data-testid=stVerticalBlock] > *").last.bounding_box()
    bottom = end["y"] + end["height"] + 24 if end is not None else int(height) + 40
    clip = {"x": 0, "y": top["y"] - 16, "width": WIDTH, "height": bottom - top["y"] + 16}
    page.screenshot(path=path, full_page=True, clip=clip)  # type: ignore[arg-type]
    page.set_viewport_size({"width": WIDTH, "height": 900})


def traced_message(data_dir: Path) -> str:
    """A message id for the trace's screenshot: an event delivered at one destination and failed at
    another (a live-demo day: the simulator gives each event one destination)."""
    import duckdb

    glob = str(data_dir / "attempts" / "date=*" / "hour=*" / "*.parquet")
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT e.message_id FROM read_parquet($glob), unnest(events) AS u(e) GROUP BY ALL "
            "HAVING bool_or(outcome = 'delivered') AND bool_or(outcome = 'failed') ORDER BY 1 LIMIT 1",
            {"glob": glob},
        ).fetchall()
    if not rows:
        raise SystemExit(f"no event of {data_dir} was delivered at one destination and failed at another")
    return str(rows[0][0])


def capture_trace(data_dir: Path, out: Path) -> Path:
    """The error explorer's "Trace one event" of `traced_message` over the log at `data_dir`."""
    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("screenshots need the program `chromium` (Debian package `chromium`)")
    message_id = traced_message(data_dir)
    saved = out / "trace.png"
    with running_dashboard(data_dir) as base_url, sync_playwright() as playwright:
        token = engineer_token(base_url)
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        # The search box binds to the URL.
        page.goto(f"{base_url}/explorer?token={token}&message_id={message_id}")
        page.get_by_role("heading", name="Trace one event").wait_for(timeout=TIMEOUT_MS)
        page.get_by_text("Destinations of its source").wait_for(timeout=TIMEOUT_MS)
        settle(page, "Error explorer")
        section(page, "Trace one event", saved)
        browser.close()
    print(f"saved {saved}", file=sys.stderr)
    return saved


def capture(base_url: str, out: Path) -> list[Path]:
    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("screenshots need the program `chromium` (Debian package `chromium`)")
    token = engineer_token(base_url)
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        for name, path, title in PAGES:
            page.goto(f"{base_url}/{path}?token={token}")
            settle(page, title)
            if name == "sql":
                page.get_by_label("Query").fill(SQL_EXAMPLE)
                page.get_by_role("button", name="Run").click()
                page.get_by_text(re.compile(r"^[\d,]+ row")).wait_for(timeout=TIMEOUT_MS)
                settle(page, title)
            if name == "explorer":
                # A job's attempt history is read once a job is picked: the first (most attempts).
                page.locator("[data-testid=stSelectbox]").filter(has_text="Job").click()
                page.get_by_role("option").first.click()
                page.locator("[data-testid=stDataFrame]").nth(1).wait_for(timeout=TIMEOUT_MS)
                settle(page, title)
            saved.append(out / f"{name}.png")
            full_page(page, saved[-1])
            print(f"saved {saved[-1]}", file=sys.stderr)
            if name == "retries":
                page.get_by_role("button", name="Run the what-if").click()
                page.locator("[data-testid=stDataFrame]").nth(1).wait_for(timeout=TIMEOUT_MS)
                settle(page, title)
                saved.append(out / "whatif.png")
                section(page, "Retry what-if", saved[-1])
                print(f"saved {saved[-1]}", file=sys.stderr)
        browser.close()
    return saved


# Issue 15's views: double deliveries, the partner evidence pack, the live engine's backlog. -------

#: The day `simulate_day` writes, shown by the double-delivery view and the evidence pack.
SIMULATED_DAY = dt.date(2026, 11, 27)
#: Columns from job_history's first (attempt_id) to its `outcome` (queries/job_history.sql).
HISTORY_COLUMNS_TO_OUTCOME = 15
#: The live engine's one workspace, its source's write key and admin token (loopback, throwaway).
LIVE_WORKSPACE = "acme"
LIVE_WRITE_KEY = "wk_screenshots_acme_web"
LIVE_ADMIN_TOKEN = "screenshots-only-admin-token-0123456789"
#: Events sent to the live engine at once: each goes to its three destinations.
LIVE_EVENTS = 1_200
#: Seconds the live engine delivers before the page is read: the rates are over the last 60 s.
LIVE_WARMUP_S = 60
#: The partner simulator's partners: (name, profile, knobs); docs/partners.md.
LIVE_PARTNERS: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("records", "rate-limited", {"rate": 4, "burst": 4}),
    ("slow-hooks", "healthy", {"latency_s": 1.0}),
    ("hooks", "healthy", {}),
)
#: The engine's destinations: (id, integration, partner, extra keys). crm-records is limited to
#: 10 requests/s by the catalog, above what its partner takes (429s, so the meter adapts);
#: slow-hooks has no limit, but answers in a second, 8 at a time (per_destination_concurrency).
LIVE_DESTINATIONS: tuple[tuple[str, str, str, dict[str, object]], ...] = (
    ("acme-crm", "crm-records", "records", {"max_batch_events": 1, "credential": "crm-token"}),
    ("acme-slow-hook", "webhook", "slow-hooks", {}),
    ("acme-hook", "webhook", "hooks", {}),
)


def between(page: Page, heading: str, next_heading: str | None, path: Path, width: int = WIDTH) -> None:
    """The page from the heading `heading` to the heading `next_heading` (None: the page's end),
    `width` pixels wide."""
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": width, "height": int(height) + 40})
    page.wait_for_timeout(500)
    top = page.get_by_role("heading", name=heading, exact=True).bounding_box()
    if top is None:
        raise SystemExit(f"{page.url} has no heading {heading!r}")
    if next_heading is None:
        end = page.locator("[data-testid=stMain] [data-testid=stVerticalBlock] > *").last.bounding_box()
        bottom = end["y"] + end["height"] + 24 if end is not None else int(height) + 40
    else:
        below = page.get_by_role("heading", name=next_heading, exact=True).bounding_box()
        if below is None:
            raise SystemExit(f"{page.url} has no heading {next_heading!r}")
        bottom = below["y"] - 16
    clip = {"x": 0, "y": top["y"] - 16, "width": width, "height": bottom - top["y"] + 16}
    page.screenshot(path=path, full_page=True, clip=clip)  # type: ignore[arg-type]
    page.set_viewport_size({"width": WIDTH, "height": 900})


def collapse_sidebar(page: Page) -> None:
    """Give a section the page's whole width: its tables have many columns."""
    page.get_by_test_id("stSidebar").hover()
    page.get_by_role("button", name="Collapse sidebar").click()
    page.get_by_role("button", name="Expand sidebar").wait_for(state="attached", timeout=TIMEOUT_MS)
    page.mouse.move(WIDTH / 2, 0)


def width_for(table: Locator) -> int:
    """The window width at which `table` (a dataframe) shows every column without scrolling."""
    hidden = table.evaluate(
        "e => { const s = e.querySelector('.dvn-scroller'); return s.scrollWidth - s.clientWidth; }"
    )
    return WIDTH + max(0, int(hidden)) + 8


def most_double_delivered(data_dir: Path, day: dt.date) -> str:
    """The workspace with the most events delivered more than once on `day`."""
    import polars as pl

    from queries import Scope, api, connect

    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    with connect(data_dir) as log:
        figures = api.double_deliveries(log, Scope.all(), start, start + dt.timedelta(days=1))
    if figures.is_empty():
        raise SystemExit(f"no event of {day} was delivered more than once: nothing to show")
    totals = figures.group_by("workspace_id").agg(pl.col("events").sum()).sort("events", descending=True)
    return str(totals["workspace_id"][0])


def busiest_partner(data_dir: Path, day: dt.date) -> str:
    """The integration other than the generic webhook with the most requests on `day`."""
    import polars as pl

    from queries import Scope, api, connect

    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    with connect(data_dir) as log:
        integrations = api.by_integration(log, Scope.all(), start, start + dt.timedelta(days=1))
    named = integrations.filter(pl.col("integration") != "webhook").sort("requests", descending=True)
    return str(named["integration"][0])


def capture_double_delivery(page: Page, base_url: str, token: str, data_dir: Path, path: Path) -> None:
    """The customer page's "Delivered more than once", with an example job's history opened."""
    title = "Customer delivery dashboard"
    workspace = most_double_delivered(data_dir, SIMULATED_DAY)
    page.goto(f"{base_url}/customer?day={SIMULATED_DAY}&workspace={workspace}&token={token}")
    settle(page, title)
    picker = page.get_by_role("combobox", name="Job history (evidence): an example job")
    collapse_sidebar(page)
    picker.scroll_into_view_if_needed()
    picker.click()
    page.get_by_role("listbox").get_by_role("option").first.click(timeout=TIMEOUT_MS)
    history = page.locator("[data-testid=stMain] [data-testid=stDataFrame]").nth(-1)
    history.locator("th", has_text="job_id").wait_for(state="attached", timeout=TIMEOUT_MS)
    settle(page, title)
    # The history has more columns than fit: bring those that tell the story (status, class,
    # error code, outcome) into view as a reader would, by moving the cell cursor to the right.
    history.scroll_into_view_if_needed()
    box = history.bounding_box()
    if box is None:
        raise SystemExit(f"{page.url} shows no job history")
    page.mouse.click(box["x"] + 40, box["y"] + 50)
    for _ in range(HISTORY_COLUMNS_TO_OUTCOME):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Escape")
    page.mouse.move(WIDTH / 2, 0)
    between(page, "Delivered more than once", "Replay what was not delivered", path)


def capture_evidence_report(page: Page, data_dir: Path, scratch: Path, path: Path) -> None:
    """The first screens of the report in `deliverydash evidence`'s zip, as a partner opens it."""
    partner = busiest_partner(data_dir, SIMULATED_DAY)
    pack = scratch / "evidence.zip"
    since, until = SIMULATED_DAY, SIMULATED_DAY + dt.timedelta(days=1)
    subprocess.run(
        [*CLI, "evidence", "--partner", partner, "--data-dir", str(data_dir), "--since", str(since),
         "--until", str(until), "--out", str(pack), "--force"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    with zipfile.ZipFile(pack) as archive:
        report = next(name for name in archive.namelist() if name.endswith("/report.html"))
        archive.extract(report, scratch)
    page.goto((scratch / report).as_uri())
    page.wait_for_function(
        """() => [...document.querySelectorAll('.plotly-graph-div')]
               .every(chart => chart.querySelector('.main-svg'))""",
        timeout=TIMEOUT_MS,
    )
    # The summary and the first two charts (the whole report is about five screens): up to the third.
    third = page.locator(".plotly-graph-div").nth(2).bounding_box()
    bottom = third["y"] - 8 if third is not None else 1600
    page.screenshot(path=path, full_page=True, clip={"x": 0, "y": 0, "width": WIDTH, "height": bottom})


def wait_for(url: str, what: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Poll `url` until it answers 200, or fail if `process` ends first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer at {url} in {seconds:g} s")


def _toml(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower()


@contextmanager
def live_engine(workdir: Path) -> Iterator[tuple[Path, str]]:
    """Partners and an engine with a backlog: yields (the engine's config, its URL).

    `deliverydash partners` (a rate-limited, a slow and a healthy partner) and `deliverydash
    serve`, as their own processes; then LIVE_EVENTS events, in batches of 100 through the
    tracking API, each fanned out to the three destinations.
    """
    import httpx

    partners = workdir / "partners.toml"
    partners.write_text(
        "control_port = 0\n"
        + "".join(
            f'\n[[partners]]\nname = "{name}"\nprofile = "{profile}"\nport = 0\n'
            + "".join(f"{key} = {_toml(value)}\n" for key, value in knobs.items())
            for name, profile, knobs in LIVE_PARTNERS
        )
    )
    ready = workdir / "partners.json"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(
            subprocess.Popen(
                [*CLI, "partners", "--config", str(partners), "--ready-file", str(ready)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        for _ in range(300):
            if ready.exists() or processes[0].poll() is not None:
                break
            time.sleep(0.1)
        if not ready.exists():
            raise SystemExit("the partner simulator did not start")
        urls = {partner["name"]: partner["url"] for partner in json.loads(ready.read_text())["partners"]}
        config = workdir / "deliverydash.toml"
        lines = [
            "[engine]",
            'data_dir = "data"',
            f'admin_token = "{LIVE_ADMIN_TOKEN}"',
            "allow_private_targets = true",
            "export_interval_s = 1",
            "shutdown_grace_s = 1",
            "",
            "[[sources]]",
            'id = "acme-web"',
            f'workspace = "{LIVE_WORKSPACE}"',
            f'write_key = "{LIVE_WRITE_KEY}"',
        ]
        for destination, integration, partner, extra in LIVE_DESTINATIONS:
            lines += ["", "[[destinations]]", f'id = "{destination}"', 'source = "acme-web"']
            lines += [f'integration = "{integration}"', f'url = "{urls[partner]}"']
            lines += [f"{key} = {_toml(value)}" for key, value in extra.items()]
        config.write_text("\n".join(lines) + "\n")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        engine_url = f"http://127.0.0.1:{port}"
        processes.append(
            subprocess.Popen(
                [*CLI, "serve", "--config", str(config), "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_for(f"{engine_url}/healthz", "the engine", processes[-1])
        for first in range(0, LIVE_EVENTS, 100):
            batch = [
                {"type": "track", "userId": f"user-{i % 50}", "event": "Order Completed",
                 "messageId": f"screenshots-{i}", "properties": {"order_id": f"o-{i}", "revenue": 9.99}}
                for i in range(first, min(first + 100, LIVE_EVENTS))
            ]  # fmt: skip
            answer = httpx.post(
                f"{engine_url}/v1/batch", json={"batch": batch}, auth=(LIVE_WRITE_KEY, ""), timeout=30
            )
            answer.raise_for_status()
        yield config, engine_url
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)


def capture_backlog(workdir: Path, out: Path) -> Path:
    """The customer page's "Backlog and headroom (live engine)" while a live engine drains."""
    title = "Customer delivery dashboard"
    path = out / "backlog.png"
    with live_engine(workdir) as (config, engine_url):
        print(f"engine on {engine_url}: {LIVE_EVENTS:,} events sent, delivering...", file=sys.stderr)
        time.sleep(LIVE_WARMUP_S)
        options = ("--config", str(config), "--engine-url", engine_url)
        with running_dashboard(workdir / "data", *options) as base_url, sync_playwright() as playwright:
            token = engineer_token(base_url)
            browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.goto(f"{base_url}/customer?workspace={LIVE_WORKSPACE}&token={token}")
            settle(page, title)
            page.get_by_text("Live from the engine").wait_for(timeout=TIMEOUT_MS)
            collapse_sidebar(page)
            table = page.locator("[data-testid=stMain] [data-testid=stDataFrame]").first
            width = width_for(table)
            between(page, "Backlog and headroom (live engine)", "Destinations", path, width)
            browser.close()
    print(f"saved {path}", file=sys.stderr)
    return path


def chromium() -> str:
    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("screenshots need the program `chromium` (Debian package `chromium`)")
    return executable


def capture_issue15_views(base_url: str, data_dir: Path, out: Path, scratch: Path) -> list[Path]:
    """Double deliveries and the evidence pack over `data_dir` (served at `base_url`), then the
    live backlog of an engine of its own under `scratch`."""
    token = engineer_token(base_url)
    saved = [out / "double-delivery.png", out / "evidence-report.png"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        capture_double_delivery(page, base_url, token, data_dir, saved[0])
        print(f"saved {saved[0]}", file=sys.stderr)
        capture_evidence_report(page, data_dir, scratch, saved[1])
        print(f"saved {saved[1]}", file=sys.stderr)
        browser.close()
    live = scratch / "live"
    live.mkdir()
    saved.append(capture_backlog(live, out))
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="an attempt log to show (default: simulate a day)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "screenshots")
    parser.add_argument(
        "--issue15", action="store_true", help="only issue 15's views (double deliveries, evidence, backlog)"
    )
    parser.add_argument(
        "--trace-from",
        type=Path,
        metavar="DIR",
        help="only the trace of one event, over the log in DIR (a live-demo day's: `deliverydash demo`)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.trace_from:
        capture_trace(args.trace_from, args.out)
        return
    with tempfile.TemporaryDirectory(prefix="deliverydash-screenshots-") as scratch:
        data_dir = args.data_dir
        if data_dir is None:
            from ingest.simulate import simulate_day

            data_dir = Path(scratch)
            print(f"simulating {ATTEMPTS:,} attempts into {data_dir}...", file=sys.stderr)
            simulate_day(ATTEMPTS, data_dir)
        with running_dashboard(data_dir) as base_url:
            if not args.issue15:
                capture(base_url, args.out)
            capture_issue15_views(base_url, data_dir, args.out, Path(scratch))


if __name__ == "__main__":
    main()
