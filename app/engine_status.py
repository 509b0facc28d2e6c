"""The live engine's backlog for the customer page: `GET /admin/status` asked over HTTP.

Like `app.replay`, it reaches the engine only when `deliverydash dashboard --config F` put the
engine's URL and admin token in the environment; without them no request is made. The answer is
cut down to one workspace's destinations here, before any page sees it: `/admin/status` lists
every workspace's, and a customer's link must show its own alone. A short timeout and a few
seconds' cache (keyed by nothing the viewer chooses: the engine's whole answer, filtered per call)
keep a page fast when the engine is slow or gone.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from app.replay import ADMIN_TOKEN_ENV, ENGINE_URL_ENV

#: Seconds to wait for the engine: a page must not hang on a dead one.
TIMEOUT_S: Final = 1.0
#: Seconds an answer (or a failure) is reused.
CACHE_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the engine said of one workspace's destinations, or why it could not be asked."""

    rows: list[dict[str, Any]]
    """The `backlog.destinations` rows of the workspace (docs/backlog.md)."""
    scope: str | None = None
    """`single_engine`, or `engine` (one engine of a fleet: its rates only)."""
    window_s: float | None = None
    """Seconds the rates are measured over."""
    error: str | None = None
    """Why there is no answer (no engine configured, unreachable, refused); None with one."""


_lock = threading.Lock()
_cached: tuple[float, dict[str, Any] | str] | None = None


def configured() -> bool:
    """Whether this dashboard knows an engine to ask (`deliverydash dashboard --config`)."""
    return bool(os.environ.get(ENGINE_URL_ENV) and os.environ.get(ADMIN_TOKEN_ENV))


def backlog(workspace: str, monotonic: Callable[[], float] = time.monotonic) -> Backlog:
    """The live backlog of `workspace`'s destinations only."""
    if not configured():
        return Backlog([], error="no engine is configured for this dashboard")
    answer = _status(monotonic)
    if isinstance(answer, str):
        return Backlog([], error=answer)
    section = answer.get("backlog")
    if not section:
        return Backlog([], error="the engine runs no delivery worker")
    rows = [row for row in section["destinations"] if row.get("workspace") == workspace]
    return Backlog(rows, scope=section["scope"], window_s=section["window_s"])


def _status(monotonic: Callable[[], float]) -> dict[str, Any] | str:
    """The engine's whole answer, or why there is none; reused for `CACHE_S`."""
    global _cached
    with _lock:
        now = monotonic()
        if _cached is not None and now - _cached[0] < CACHE_S:
            return _cached[1]
        result = _ask()
        _cached = (now, result)
        return result


def _ask() -> dict[str, Any] | str:
    url = os.environ.get(ENGINE_URL_ENV, "").rstrip("/") + "/admin/status"
    headers = {"Authorization": f"Bearer {os.environ.get(ADMIN_TOKEN_ENV, '')}"}
    try:
        response = httpx.get(url, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"the engine did not answer ({type(exc).__name__}); is it running?"
    if response.status_code != 200:
        return f"the engine answered {response.status_code}"
    answer: dict[str, Any] = response.json()
    return answer


def clear_cache() -> None:
    """Forget the cached answer (tests)."""
    global _cached
    with _lock:
        _cached = None
