"""The per-event fan-out trace: did one event reach every destination of its source (docs/trace.md).

`trace_event` looks a message id up in the `message_index` rollup, reads
the event's records from the attempt files of the hours it names (only
their destinations' row groups), and sets them beside the destinations the source
fanned out to that day (`outcomes`), so a destination that got no job of
the event shows too, with why. `fanout` is the completeness figure per
source. Partners never trace: an integration scope is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from queries.log import AttemptLog
from queries.scope import Scope, ScopeKind

#: The columns of `Trace.attempts` a person reads, request by request (the CLI's and the page's table).
REQUEST_COLUMNS = (
    "destination_id",
    "job_id",
    "attempt",
    "started_at",
    "status_code",
    "error_class",
    "error_code",
    "outcome",
    "replay_of",
)

#: The columns of `Trace.attempts` (trace_attempts.sql).
ATTEMPT_COLUMNS = (
    "job_id",
    "attempt",
    "workspace_id",
    "source_id",
    "destination_id",
    "integration",
    "received_at",
    "started_at",
    "duration_ms",
    "status_code",
    "error_class",
    "error_code",
    "outcome",
    "next_attempt_at",
    "replay_of",
    "event_count",
    "error_message",
)
#: The columns of `Trace.destinations`.
DESTINATION_COLUMNS = (
    "destination_id",
    "integration",
    "fate",
    "jobs",
    "attempts",
    "last_error_class",
    "last_error_code",
    "last_status_code",
    "first_started_at",
    "last_started_at",
    "why",
)


@dataclass(frozen=True, slots=True)
class Trace:
    """One event's fate at every destination of its source."""

    message_id: str
    attempts: pl.DataFrame
    """Every record of every job that carried the event (trace_attempts.sql), by destination and time."""
    destinations: pl.DataFrame
    """One row per destination (`DESTINATION_COLUMNS`): its fate (delivered, failed, dropped,
    skipped, retrying, no job) and why."""

    @property
    def found(self) -> bool:
        """Whether the log holds a record of the event in the scope."""
        return not self.attempts.is_empty()


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _check_scope(scope: Scope) -> None:
    if scope.kind is ScopeKind.INTEGRATION:
        raise ValueError("a partner's view has no trace: events belong to the customers")


def trace_event(log: AttemptLog, scope: Scope, message_id: str, start: datetime, end: datetime) -> Trace:
    """Trace `message_id` among the records whose request started in [start, end) (whole hours), in `scope`.

    A customer's scope (a workspace) never finds another workspace's event:
    the records are filtered by it.
    """
    _check_scope(scope)
    if not message_id.strip():
        raise ValueError("a message id is needed (the messageId of a track, identify, page... call)")
    places = log.lookup("trace_index", scope, start, end, message_id=message_id)
    if places.is_empty():  # not in the index: no need to bind the attempts' views
        return Trace(message_id, _no_attempts(), _no_destinations())
    attempts = log.lookup(
        "trace_attempts",
        scope,
        start,
        end,
        message_id=message_id,
        destinations=places.get_column("destination_id").unique().sort().to_list(),
        dates=places.get_column("date").unique().sort().to_list(),
        hours=places.get_column("hour").unique().sort().to_list(),
    )
    if attempts.is_empty():
        return Trace(message_id, attempts, _no_destinations())
    # Message ids are the customers' own: should two workspaces (or sources) have sent the same
    # one, the first to arrive is traced.
    first = attempts.row(0, named=True)  # rows are in order of receipt
    attempts = attempts.filter(
        (pl.col("workspace_id") == first["workspace_id"]) & (pl.col("source_id") == first["source_id"])
    )
    received: datetime = first["received_at"]
    day = _hour(received).replace(hour=0)
    fanned = log.lookup(
        "trace_destinations",
        scope,
        day,
        day + timedelta(days=1),
        workspace_id=first["workspace_id"],
        source_id=first["source_id"],
    )
    return Trace(message_id, attempts, _destinations(attempts, fanned, received))


def _no_attempts() -> pl.DataFrame:
    """trace_attempts' columns and no rows."""
    return pl.DataFrame(schema={name: pl.Null for name in ATTEMPT_COLUMNS})


def _no_destinations() -> pl.DataFrame:
    return pl.DataFrame(schema={name: pl.String for name in DESTINATION_COLUMNS})


def _fate(last: dict[str, object], delivered: bool) -> tuple[str, str]:
    """A destination's fate and why, from its latest record (and whether any job delivered)."""
    if delivered:
        return "delivered", "delivered" + (" by a replay" if last["replay_of"] else "")
    outcome = str(last["outcome"])
    cause = (
        f"{last['error_class']} ({last['error_code']})" if last["error_code"] else str(last["error_class"])
    )
    if outcome == "retry":
        return "retrying", f"still retrying after {cause}; next attempt at {last['next_attempt_at']}"
    return outcome, f"{outcome}: {cause}"


def _destinations(attempts: pl.DataFrame, fanned: pl.DataFrame, received: datetime) -> pl.DataFrame:
    """Per destination of the source: the event's fate there, from its jobs' records."""
    rows = []
    for (destination,), records in attempts.group_by("destination_id", maintain_order=True):
        records = records.sort("started_at", "attempt")
        last = records.row(-1, named=True)
        fate, why = _fate(last, (records.get_column("outcome") == "delivered").any())
        rows.append(
            {
                "destination_id": destination,
                "integration": last["integration"],
                "fate": fate,
                "jobs": str(records.get_column("job_id").n_unique()),
                "attempts": str(int((records.get_column("attempt") > 0).sum())),
                "last_error_class": last["error_class"],
                "last_error_code": last["error_code"],
                "last_status_code": None if last["status_code"] is None else str(last["status_code"]),
                "first_started_at": str(records.get_column("started_at").min()),
                "last_started_at": str(last["started_at"]),
                "why": why,
            }
        )
    reached = set(attempts.get_column("destination_id"))
    for other in fanned.filter(~pl.col("destination_id").is_in(reached)).iter_rows(named=True):
        added_later = other["first_received_hour"] > _hour(received)
        why = (
            "no job: the source first sent it an event after this one arrived (added later)"
            if added_later
            else "no job for this event, though the source sent it others that day"
        )
        rows.append(
            {
                "destination_id": other["destination_id"],
                "integration": other["integration"],
                "fate": "no job",
                "why": why,
            }
        )
    return pl.DataFrame(rows, schema={name: pl.String for name in DESTINATION_COLUMNS})


def fanout(log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> pl.DataFrame:
    """Fan-out completeness per source over [start, end) (fanout.sql): events delivered to all, some, none."""
    _check_scope(scope)
    return log.run("fanout", scope, start, end)
