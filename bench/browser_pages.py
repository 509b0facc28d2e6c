"""Page times as a user meets them: headless Chromium, from a click in the sidebar to the page's
script finishing, and a full load of a page's link.

    .venv/bin/python -m bench.browser_pages --data-dir /tmp/dd100m [--runs 3] [--day 2026-11-27] [--days 1]

Starts `deliverydash dashboard` over the data directory (or `--log URL`),
opens an engineer's link in Debian's Chromium (tests/app/browser.py), and
for each page in the sidebar measures:

* click, cold: the first click on it (Streamlit's query cache empty for it);
* click, warm: the median of `--runs` later clicks (cached results, as within
  the 30 s cache: what a user clicking around meets);
* load: a full load of the page's URL in a new tab (new session, warm server).

A click is timed from the click to the page's script run finishing with its
title shown and no element still loading (`wait_finished`). `--days N` opens
the pages on a range of N whole days ending with `--day`. Figures are
machine-dependent.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

from playwright.sync_api import Page, sync_playwright

from tests.app.browser import dashboard, launch_chromium, nav_links, wait_finished

SECRET = "bench-browser-secret-0123456789abcdef"


def timed(action, page: Page, running, title: str) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    action()
    wait_finished(page, running, title)
    return time.perf_counter() - start


def with_params(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--day", help="UTC day to open (default: the latest)")
    parser.add_argument("--days", type=int, default=1, help="whole days shown, ending with --day")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    params = {key: value for key, value in (("day", args.day), ("days", str(args.days))) if value}
    log = Path(tempfile.mkdtemp(prefix="bench-browser-")) / "dashboard.log"
    with (
        dashboard(args.data_dir, SECRET, log, start_timeout_s=120) as running,
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(120_000)
        page = context.new_page()
        link = with_params(running.link("--engineer"), params)
        first_load = timed(lambda: page.goto(link), page, running, "A day of HTTP responses")
        print(f"first load of the link (server cold): {first_load * 1000:.0f} ms", flush=True)
        links = nav_links(page)
        titles = list(links)
        cold: dict[str, float] = {}
        warm: dict[str, list[float]] = {title: [] for title in titles}
        # Start on the second page: clicking the page already shown would time nothing.
        order = titles[1:] + titles[:1]
        for run in range(args.runs + 1):
            for title in order:
                anchor = page.locator("[data-testid=stSidebarNav] a", has_text=title).first
                seconds = timed(anchor.click, page, running, title)
                if run == 0:
                    cold[title] = seconds
                else:
                    warm[title].append(seconds)
        loads: dict[str, float] = {}
        for title, href in links.items():
            tab = context.new_page()
            # The page's path on the signed link: a new session needs the token to be let in.
            url = urlunsplit(urlsplit(link)._replace(path=urlsplit(href).path))
            loads[title] = timed(lambda tab=tab, url=url: tab.goto(url), tab, running, title)
            tab.close()
        browser.close()
    print("\n| page | click, cold | click, warm (median) | full load |")
    print("|---|---|---|---|")
    for title in titles:
        print(
            f"| {title} | {cold[title] * 1000:.0f} ms | {statistics.median(warm[title]) * 1000:.0f} ms | "
            f"{loads[title] * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
