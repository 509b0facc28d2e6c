"""Full-page screenshots of the dashboard's main pages, for the README and docs/dashboard.md.

    .venv/bin/python docs/screenshots.py [--data-dir DIR] [--out docs/screenshots]

Starts `deliverydash dashboard` over DIR (by default a 2,000,000-attempt day
simulated into a temporary directory, about 15 s), opens it with an engineer
link in headless Chromium (Debian's `chromium`, which Playwright drives), and
saves one PNG per page, 1400 px wide, and two sections: the retry what-if and
the trace of one event. The browser test (tests/app/browser.py) has its own
harness: tests must not depend on docs, nor docs on tests.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

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


@contextmanager
def running_dashboard(data_dir: Path) -> Iterator[str]:
    """`deliverydash dashboard` on a free port; yields its base URL once healthy."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, DELIVERYDASH_SECRET=SECRET, STREAMLIT_SERVER_FILE_WATCHER_TYPE="none")
    command = [*CLI, "dashboard", "--data-dir", str(data_dir), "--port", str(port)]
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
    """A message id for the trace's screenshot: an event retried three times, then delivered."""
    import duckdb

    glob = str(data_dir / "attempts" / "date=*" / "hour=*" / "*.parquet")
    rows = duckdb.sql(
        "SELECT events[1].message_id FROM read_parquet($glob) WHERE attempt = 4 AND outcome = 'delivered' "
        "ORDER BY job_id LIMIT 1",
        params={"glob": glob},
    ).fetchall()
    if not rows:
        raise SystemExit(f"no event of {data_dir} was delivered by its 4th attempt")
    return str(rows[0][0])


def capture(base_url: str, out: Path, message_id: str) -> list[Path]:
    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("screenshots need the program `chromium` (Debian package `chromium`)")
    token = engineer_token(base_url)
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        for name, path, title in PAGES:
            page.goto(f"{base_url}/{path}?token={token}")
            settle(page, title)
            if name == "sql":
                page.get_by_label("Query").fill(SQL_EXAMPLE)
                page.get_by_role("button", name="Run").click()
                page.get_by_text(re.compile(r"^[\d,]+ row")).wait_for(timeout=TIMEOUT_MS)
                settle(page, title)
            saved.append(out / f"{name}.png")
            full_page(page, saved[-1])
            print(f"saved {saved[-1]}", file=sys.stderr)
            if name == "explorer":
                # The trace of one event (issue 15, part 2): its search box binds to the URL.
                page.goto(f"{base_url}/{path}?token={token}&message_id={message_id}")
                page.get_by_role("heading", name="Trace one event").wait_for(timeout=TIMEOUT_MS)
                page.get_by_text("Destinations of its source").wait_for(timeout=TIMEOUT_MS)
                settle(page, title)
                saved.append(out / "trace.png")
                section(page, "Trace one event", saved[-1])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="an attempt log to show (default: simulate a day)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="deliverydash-screenshots-") as scratch:
        data_dir = args.data_dir
        if data_dir is None:
            from ingest.simulate import simulate_day

            data_dir = Path(scratch)
            print(f"simulating {ATTEMPTS:,} attempts into {data_dir}...", file=sys.stderr)
            simulate_day(ATTEMPTS, data_dir)
        with running_dashboard(data_dir) as base_url:
            capture(base_url, args.out, traced_message(data_dir))


if __name__ == "__main__":
    main()
