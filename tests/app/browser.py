"""The real dashboard process and Debian's Chromium, driven by Playwright, for browser tests.

Playwright's own browser downloads are not reachable here, so it drives the
`chromium` on PATH (installed by `.ci/ensure-chromium`). The dashboard runs
as `deliverydash dashboard`, exactly as its users start it; its output goes
to a log file that every failure message quotes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: A page over a small simulated day renders in about a second; this only bounds a hang.
PAGE_TIMEOUT_MS = 30_000
#: A page whose script run is over, titled `title` (when not null), with no element still loading:
#: Streamlit loads most element kinds' code on first use and shows a skeleton until it arrives, so
#: a finished run can still lack its metrics, tables and charts for a moment. Checked at every
#: animation frame (`wait_for_function`'s polling): a locator's `wait_for` checks again after 20,
#: 50, 100, 100 ms, then every 500 ms, so it saw a page drawn 0.3 s after a click at 0.78 s.
FINISHED = """title => {
    const app = document.querySelector("[data-testid=stApp]");
    if (!app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
    if (document.querySelector("[data-testid=stSkeleton]")) return false;
    const heads = document.querySelectorAll("[data-testid=stMain] h1");
    return title === null || [...heads].some(h => h.textContent.replace(/\\s+/g, " ").trim() === title);
}"""
_CLI = (sys.executable, "-m", "deliverydash")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Dashboard:
    """A running `deliverydash dashboard` process."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    """Its stdout and stderr."""
    secret: str

    def output(self) -> str:
        """What the process printed so far, for failure messages."""
        return self.log.read_text(errors="replace")

    def link(self, *who: str, ttl: str = "1h") -> str:
        """A URL from `deliverydash link` (`who` is e.g. `--workspace`, `ws_0001`)."""
        done = subprocess.run(
            [*_CLI, "link", *who, "--ttl", ttl, "--base-url", self.base_url],
            env=dict(os.environ, DELIVERYDASH_SECRET=self.secret),
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"deliverydash link {' '.join(who)} failed:\n{done.stderr}"
        return done.stdout.strip()


@contextmanager
def dashboard(
    data_dir: Path, secret: str, log: Path, *, start_timeout_s: float = 60.0
) -> Iterator[Dashboard]:
    """`deliverydash dashboard` over `data_dir` on a free port, once `/_stcore/health` says ok."""
    port = free_port()
    # No file watcher: a test's dashboard must not rerun (or offer to) when sources change under it.
    env = dict(os.environ, DELIVERYDASH_SECRET=secret, STREAMLIT_SERVER_FILE_WATCHER_TYPE="none")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*_CLI, "dashboard", "--data-dir", str(data_dir), "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Dashboard(process, f"http://127.0.0.1:{port}", log, secret)
    try:
        _wait_healthy(running, start_timeout_s)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(running: Dashboard, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise AssertionError(
                f"the dashboard exited with {running.process.returncode}:\n{running.output()}"
            )
        try:
            with urllib.request.urlopen(f"{running.base_url}/_stcore/health", timeout=1) as response:
                if response.read() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(
        f"the dashboard did not answer /_stcore/health in {timeout_s:g} s:\n{running.output()}"
    )


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; fails naming the program when it is missing.

    Playwright gives every launch a fresh temporary profile (it refuses `--user-data-dir`),
    and every `new_context()` its own cookies and storage.
    """
    executable = shutil.which("chromium")
    if executable is None:
        raise AssertionError(
            "the browser test needs the program `chromium` on PATH: install the Debian package "
            "`chromium` (`.ci/ensure-chromium` does so when run as root)"
        )
    return playwright.chromium.launch(
        executable_path=executable,
        args=list(CHROMIUM_ARGS),
        timeout=PAGE_TIMEOUT_MS,
    )


def wait_finished(page: Page, running: Dashboard, title: str | None = None) -> None:
    """Wait until the script run is over (and the page titled `title` is shown); fail on exceptions."""
    try:
        page.wait_for_function(FINISHED, arg=title, timeout=PAGE_TIMEOUT_MS)
    except PlaywrightTimeout as exc:
        raise AssertionError(
            f"{page.url} did not finish rendering{f' {title!r}' if title else ''}: {exc.message}\n"
            f"page text:\n{page_text(page)}\ndashboard output:\n{running.output()}"
        ) from None
    exceptions = page.get_by_test_id("stException").all_inner_texts()
    assert not exceptions, f"{page.url} raised:\n{exceptions}\ndashboard output:\n{running.output()}"


def page_text(page: Page) -> str:
    """The text of the whole page, sidebar included (tables drawn on canvas are not in it)."""
    return page.locator("body").inner_text()


def metrics(page: Page) -> dict[str, str]:
    """Every `st.metric` on the page: label to displayed value."""
    pairs: list[list[str]] = page.eval_on_selector_all(
        "[data-testid=stMetric]",
        """elements => elements.map(e => [
            e.querySelector('[data-testid=stMetricLabel]').innerText.trim(),
            e.querySelector('[data-testid=stMetricValue]').innerText.trim(),
        ])""",
    )
    return {label: value for label, value in pairs}


class Received:
    """Every WebSocket message the server sent to a page: what its browser got, drawn or not.

    Tables are drawn on a canvas and charts hold more than they label, so a
    check for leaks reads the messages (protobuf, with Arrow tables and Plotly
    JSON inside, where strings are plain UTF-8) rather than the page text.
    Messages that only echo the address bar (`page_info_changed`) are left
    out: a link's own query string is not data the server chose to send.
    """

    def __init__(self, page: Page) -> None:
        self.messages: list[bytes] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._append))

    def _append(self, payload: bytes | str) -> None:
        message = payload.encode() if isinstance(payload, str) else payload
        if ForwardMsg.FromString(message).WhichOneof("type") != "page_info_changed":
            self.messages.append(message)

    def __contains__(self, text: str) -> bool:
        needle = text.encode()
        return any(needle in message for message in self.messages)

    def found(self, names: Iterable[str]) -> list[str]:
        """Those of `names` that appear in any message."""
        everything = b"\0".join(self.messages)
        return [name for name in names if name.encode() in everything]


def nav_links(page: Page) -> dict[str, str]:
    """The sidebar navigation: link text to href."""
    pairs: list[list[str]] = page.eval_on_selector_all(
        "[data-testid=stSidebarNav] a",
        "links => links.map(a => [a.innerText.trim(), a.getAttribute('href')])",
    )
    return {label: href for label, href in pairs}
