"""Replaying from the dashboard: the engine's `POST /admin/replay`, asked on a viewer's behalf.

`deliverydash dashboard --config F` hands the dashboard's process where the
engine listens and its admin token, through the environment (never the
command line, never a page). Without them the pages offer no replay. What a
viewer may replay is decided by the page, from its `app.access` scope: a
customer's link, its own workspace; an engineer, any; a partner, none.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

#: Where the engine's admin API is (`deliverydash dashboard --engine-url`).
ENGINE_URL_ENV = "DELIVERYDASH_ENGINE_URL"
#: The engine's admin token. Never shown: it opens the whole admin API.
ADMIN_TOKEN_ENV = "DELIVERYDASH_ADMIN_TOKEN"
OUTCOMES = ("failed", "dropped", "skipped")


class ReplayError(Exception):
    """The engine could not be asked, or refused; the message says which, without the token."""


@dataclass(frozen=True, slots=True)
class Replayed:
    """The engine's answer: what was enqueued (or, for a dry run, would be)."""

    jobs: int
    already_replayed: int
    replay_id: str | None


def available() -> bool:
    """Whether this dashboard knows an engine to ask."""
    return bool(os.environ.get(ENGINE_URL_ENV) and os.environ.get(ADMIN_TOKEN_ENV))


def replay(workspace: str, destination: str | None, outcomes: Sequence[str], *, dry_run: bool) -> Replayed:
    """Ask the engine to replay (or count) the dead letters of `workspace` (and `destination`)."""
    url = os.environ.get(ENGINE_URL_ENV, "").rstrip("/") + "/admin/replay"
    body: dict[str, Any] = {"workspace": workspace, "outcomes": list(outcomes), "dry_run": dry_run}
    if destination is not None:
        body["destination"] = destination
    headers = {"Authorization": f"Bearer {os.environ.get(ADMIN_TOKEN_ENV, '')}"}
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise ReplayError(f"the engine did not answer ({type(exc).__name__}); is it running?") from None
    if response.status_code != 200:
        try:
            message = str(response.json().get("message", ""))
        except ValueError:
            message = ""
        raise ReplayError(f"the engine answered {response.status_code}: {message or response.reason_phrase}")
    answer = response.json()
    return Replayed(answer["jobs"], answer["already_replayed"], answer["replay_id"])
