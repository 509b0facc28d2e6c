"""`POST /admin/replay`: send again what ended undelivered (docs/replay.md).

The events of jobs that ended `failed`, `dropped` or `skipped` are kept as
dead letters for `[engine] dead_letter_days` (`delivery.queue.dead_letters`).
A replay selects some of them (by destination, workspace, when the job
ended, error class, outcome) and enqueues each as a new job whose records
name the job it replays (`replay_of`). A dead letter is replayed once: the
same replay asked again finds nothing new, unless `again` says so.
`dry_run` only counts. `deliverydash replay` and the dashboard call this
endpoint; it is behind the admin token like the rest of `/admin`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from delivery.api import openapi
from delivery.api.dependencies import ContextDep
from delivery.api.routers.admin import require_admin
from delivery.queue import DEAD_OUTCOMES, ReplaySelection
from ingest.ids import new_id

log = logging.getLogger(__name__)

#: An error class of a job that ended undelivered: `ingest.taxonomy.ErrorClass` but `none` (tested).
FailedClass = Literal[
    "auth",
    "validation",
    "client",
    "rate_limit",
    "server",
    "timeout",
    "network",
    "tls",
    "nonstandard",
    "redirect",
    "precheck",
    "disabled",
]
DeadOutcome = Literal["failed", "dropped", "skipped"]
_Id = Annotated[str, Field(min_length=1, max_length=200)]


class ReplayRequest(BaseModel):
    """Which dead letters to replay: every filter given must hold; name a destination or a workspace."""

    model_config = ConfigDict(extra="forbid")

    destination: _Id | None = Field(None, description="Only the jobs of this destination.")
    workspace: _Id | None = Field(None, description="Only the events of this workspace.")
    since: dt.datetime | None = Field(None, description="Only jobs that ended at or after this time.")
    until: dt.datetime | None = Field(None, description="Only jobs that ended before this time.")
    classes: list[FailedClass] | None = Field(
        None, description="Only jobs whose last attempt had one of these error classes (default: any)."
    )
    outcomes: list[DeadOutcome] | None = Field(
        None, description="Only jobs that ended so (default: failed, dropped and skipped)."
    )
    dry_run: bool = Field(False, description="Count what would be replayed; change nothing.")
    again: bool = Field(
        False, description="Replay dead letters an earlier replay took, too (otherwise they are left alone)."
    )

    def selection(self) -> ReplaySelection:
        """The queue's form of the request."""
        return ReplaySelection(
            destination_id=self.destination,
            workspace_id=self.workspace,
            since=_epoch(self.since),
            until=_epoch(self.until),
            error_classes=frozenset(self.classes or ()),
            outcomes=frozenset(self.outcomes) if self.outcomes else DEAD_OUTCOMES,
            again=self.again,
        )


def _refused(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def _epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={401: openapi.ADMIN_UNAUTHORIZED},
)


@router.post(
    "/replay",
    summary="Replay what ended undelivered",
    response_model=None,
    responses={
        200: openapi.REPLAYED_ANSWER,
        400: openapi.error(
            "The body is not a replay request, or names neither a destination nor a workspace, or its "
            "`since` is not before its `until`; `message` says which.",
            ["invalid_request"],
        ),
        404: openapi.error("No destination has this id.", ["unknown_destination"]),
        503: openapi.unavailable("The queue could not be reached"),
    },
    openapi_extra=openapi.ADMIN,
)
async def replay(request: ReplayRequest, context: ContextDep) -> dict[str, Any] | JSONResponse:
    """Enqueue again the dead letters the request selects, as new jobs; answer how many and the replay's id.

    On the PostgreSQL backend any engine of the fleet may answer: the jobs go
    to the shared queue, and two replays at once replay each dead letter once.
    """
    if request.destination is None and request.workspace is None:
        return _refused(400, "invalid_request", "name a destination or a workspace to replay")
    try:
        selection = request.selection()
    except (OverflowError, ValueError):  # a time outside what epoch seconds hold
        return _refused(400, "invalid_request", "since and until must be times a computer clock can hold")
    if selection.since is not None and selection.until is not None and selection.since >= selection.until:
        return _refused(400, "invalid_request", "since must be before until")
    if request.destination is not None and context.config.destination(request.destination) is None:
        return _refused(404, "unknown_destination", f"no destination {request.destination!r} is configured")
    replay_id = None if request.dry_run else new_id()
    now = context.clock().timestamp()
    try:
        result = await asyncio.to_thread(
            context.queue.replay, selection, replay_id or "", now, dry_run=request.dry_run
        )
    except Exception:
        log.exception("/admin/replay: the queue could not replay")
        raise HTTPException(503, "the queue could not be reached; try again later") from None
    if replay_id is not None:
        log.info(
            "replay %s: %d jobs enqueued (%d dead letters left alone, replayed before)",
            replay_id,
            result.jobs,
            result.already_replayed,
        )
    return {
        "replay_id": replay_id,
        "dry_run": request.dry_run,
        "jobs": result.jobs,
        "by_destination": dict(sorted(result.by_destination.items())),
        "already_replayed": result.already_replayed,
    }
