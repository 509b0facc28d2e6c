"""The real analytics.js for browser tests: `@segment/analytics-next` from npm, and a site that loads it.

The package is installed with npm on first use into a cache directory outside
the checkout (`$DELIVERYDASH_NPM_CACHE`, else `~/.cache/deliverydash/npm`),
one folder per version, published whole with a rename so that an interrupted
install is never taken for a finished one. Its standalone bundle
(`dist/umd/standalone.js`) is the script Segment's snippet loads from the
CDN; `ShopServer` serves it on loopback with a page that sets what the snippet
sets before it (`analytics._writeKey`, `analytics._cdn`: the engine's
address, where the library fetches its settings).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

#: The analytics-next release the tests drive (npm `@segment/analytics-next`).
VERSION = "1.84.3"
PACKAGE = "@segment/analytics-next"
#: Bounds a hung npm, not a slow one: the package is about 11 MB with its dependencies.
NPM_TIMEOUT_S = 600


def cache_root() -> Path:
    """Where npm packages for the tests are kept between runs."""
    configured = os.environ.get("DELIVERYDASH_NPM_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deliverydash" / "npm"


def bundle_dir(root: Path | None = None) -> Path:
    """The UMD bundles of analytics-next `VERSION`, installed with npm first if missing."""
    installed = (root or cache_root()) / f"analytics-next-{VERSION}"
    umd = installed / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
    if (umd / "standalone.js").is_file():
        return umd
    npm = shutil.which("npm")
    if npm is None:
        raise AssertionError(
            "the analytics.js test installs @segment/analytics-next with npm, which is missing: install "
            "Node.js and npm (Debian/Ubuntu: apt-get install nodejs npm; `.ci/ensure-node` does so as root)"
        )
    installed.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{installed.name}-", dir=installed.parent))
    try:
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(staging),
                "--no-save",
                "--no-package-lock",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",  # the bundle is prebuilt; nothing of the package runs here
                f"{PACKAGE}@{VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"npm install {PACKAGE}@{VERSION} failed:\n{done.stdout}\n{done.stderr}")
        try:
            staging.rename(installed)
        except OSError:
            if not (umd / "standalone.js").is_file():  # else another run finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not (umd / "standalone.js").is_file():
        raise AssertionError(f"{PACKAGE}@{VERSION} has no dist/umd/standalone.js in {installed}")
    return umd


def page_html(write_key: str, engine_url: str, load_options: dict[str, Any]) -> str:
    """A shop's page: the snippet's settings for the library, then the library itself."""
    settings = json.dumps({"writeKey": write_key, "cdn": engine_url, "loadOptions": load_options})
    return f"""<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>Shop</title>
<link rel="icon" href="data:,">
<script>
  // What Segment's snippet leaves before the library loads, with the engine as the CDN.
  var snippet = {settings};
  var analytics = (window.analytics = []);
  analytics._writeKey = snippet.writeKey;
  analytics._cdn = snippet.cdn;
  analytics._loadOptions = snippet.loadOptions;
</script>
<script src="/standalone.js"></script>
</head>
<body><h1>Shop</h1></body>
</html>
"""


class ShopServer(http.server.ThreadingHTTPServer):
    """A web site on loopback: `pages` by path, and analytics.js at `/standalone.js`."""

    def __init__(self, bundle: Path, pages: dict[str, str]) -> None:
        self.script = (bundle / "standalone.js").read_bytes()
        self.pages = pages
        super().__init__(("127.0.0.1", 0), _ShopHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _ShopHandler(http.server.BaseHTTPRequestHandler):
    server: ShopServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/standalone.js":
            self._answer(200, "text/javascript", self.server.script)
        elif path in self.server.pages:
            self._answer(200, "text/html; charset=utf-8", self.server.pages[path].encode())
        else:
            self._answer(404, "text/plain", b"not found")

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass
