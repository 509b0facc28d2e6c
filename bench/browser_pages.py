"""Page times as a user meets them: headless Chromium, from a click in the sidebar to the page's
script finishing, and a full load of a page's link.

    .venv/bin/python -m bench.browser_pages --data-dir /tmp/dd100m [--runs 3] [--cold 3]
                                            [--day 2026-11-27] [--days 1] [--pause 0]

Starts `deliverydash dashboard` over the data directory (or `--log URL`),
opens an engineer's link in Debian's Chromium (tests/app/browser.py), and
for each page in the sidebar measures:

* click, cold: the median of up to `--cold` first clicks on it, each over a
  range no page has read yet, so Streamlit's query cache is empty for it: the
  range asked for (as a user's first click after opening the link; not the
  link's own page, which the link loaded), then ranges one, two... days
  shorter (one day: hours 0 to 23, 0 to 22...), each picked in the sidebar on
  the day page (that change is the day page's cold click) before every other
  page is clicked once. All in one browser session, as a user would: a new
  session would also load and compile the page elements' code again. The SQL
  console reads nothing of a range: its one cold click is the first;
* click, warm: the median of `--runs` later clicks (cached results, as within
  the 30 s cache: what a user clicking around meets);
* load: a full load of the page's URL in a new tab (new session, warm server).

Each click follows the last page's drawing at once (the worst case for the
dashboard's reading ahead, docs/dashboard.md), or after `--pause` seconds,
as a user who reads a page before the next click.

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
CONSOLE = "SQL console"
RUNNING = "[data-testid=stApp][data-test-script-state=running]"


def timed(action, page: Page, running, title: str, pause: float = 0.0) -> float:  # type: ignore[no-untyped-def]
    time.sleep(pause)  # reading the page on screen
    start = time.perf_counter()
    action()
    wait_finished(page, running, title)
    return time.perf_counter() - start


def shorten(page: Page, days: int, shorter: int) -> None:
    """Pick in the sidebar a range `shorter` days shorter (one day: `shorter` hours), and wait for
    the rerun it starts (then `wait_finished` waits for its end)."""
    if days > 1:
        box = page.get_by_label("Days shown, ending with that day", exact=True)
        box.fill(str(days - shorter))
        box.press("Enter")
    else:
        # The hours slider's end thumb, one hour earlier.
        page.locator("[data-testid=stSidebar] [data-testid=stSlider] input[type=range]").nth(1).press(
            "ArrowLeft"
        )
    page.wait_for_function(f"() => document.querySelector('{RUNNING}') !== null")


def with_params(url: str, params: dict[str, str | list[str]]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params, doseq=True)]))
    return urlunsplit(parts._replace(query=query))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3, help="warm clicks per page")
    parser.add_argument("--cold", type=int, default=3, help="cold clicks per page, each over another range")
    parser.add_argument("--day", help="UTC day to open (default: the latest)")
    parser.add_argument("--days", type=int, default=1, help="whole days shown, ending with --day")
    parser.add_argument(
        "--pause", type=float, default=0.0, help="seconds spent on a page before the next click or range"
    )
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores; pause before each click: {args.pause:g} s")
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
        cold: dict[str, list[float]] = {title: [] for title in titles}
        warm: dict[str, list[float]] = {title: [] for title in titles}

        def click(title: str) -> float:
            anchor = page.locator("[data-testid=stSidebarNav] a", has_text=title).first
            return timed(anchor.click, page, running, title, args.pause)

        # The link's own range: its page (the first) is loaded already, so its click is not cold.
        for title in titles[1:]:
            cold[title].append(click(title))
        click(titles[0])
        # Every other range is picked in the sidebar, on the day page; each range is new.
        for shorter in range(1, min(args.cold, args.days - 1 if args.days > 1 else 24)):
            cold[titles[0]].append(
                timed(lambda n=shorter: shorten(page, args.days, n), page, running, titles[0], args.pause)
            )
            for title in titles[1:]:
                if title != CONSOLE:
                    cold[title].append(click(title))
            click(titles[0])
        for _ in range(args.runs):
            for title in titles[1:] + titles[:1]:
                warm[title].append(click(title))
        loads: dict[str, float] = {}
        for title, href in links.items():
            tab = context.new_page()
            # The page's path on the signed link: a new session needs the token to be let in.
            url = urlunsplit(urlsplit(link)._replace(path=urlsplit(href).path))
            loads[title] = timed(lambda tab=tab, url=url: tab.goto(url), tab, running, title)
            tab.close()
        browser.close()
    print(f"\n| page | click, cold: median (samples) | click, warm: median of {args.runs} | full load |")
    print("|---|---|---|---|")
    for title in titles:
        samples = ", ".join(f"{seconds * 1000:.0f}" for seconds in cold[title])
        median = f"{statistics.median(cold[title]) * 1000:.0f} ms ({samples})" if cold[title] else "n/a"
        print(
            f"| {title} | {median} | "
            f"{statistics.median(warm[title]) * 1000:.0f} ms | {loads[title] * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
