"""Dead letters: the events of jobs that ended undelivered, kept so that they can be replayed.

A settlement whose record says `failed`, `dropped` or `skipped` (`DEAD_OUTCOMES`)
keeps its job's events, one row each, in the backend's ``dead_letters``
table, in the transaction that finishes the job: what the attempt log says
ended undelivered is exactly what can be replayed. `Queue.replay` makes new
jobs of them (docs/replay.md) and marks them with the replay's id, so that a
second replay of the same selection finds nothing new; `expire_dead_letters`
deletes them after `[engine] dead_letter_days`.

What both backends share lives here: the rows a settlement leaves, and the
SQL filter of a `ReplaySelection`, written once for either placeholder style.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from delivery.queue.base import DEAD_OUTCOMES, ReplayResult, ReplaySelection, Settlement

#: Columns of a dead letter as `rows` gives them, in order (the table has an id and `replay_id` too).
COLUMNS = (
    "job_id",
    "position",
    "destination_id",
    "message_id",
    "workspace_id",
    "source_id",
    "type",
    "name",
    "payload",
    "received_at",
    "ended_at",
    "outcome",
    "error_class",
    "replay_of",
)
#: Dead letters read per statement when a replay copies them into jobs.
CHUNK = 2_000


def rows(settlements: Iterable[Settlement]) -> list[tuple[Any, ...]]:
    """The dead letters the finished, undelivered settlements among `settlements` leave.

    One row per event the request carried (a batch's merged jobs included),
    under the id of the job whose record says how it ended.
    """
    kept: list[tuple[Any, ...]] = []
    for settlement in settlements:
        record = settlement.record
        if settlement.due_at is not None or record.get("outcome") not in DEAD_OUTCOMES:
            continue
        job = settlement.job
        ended_at = _epoch(record["started_at"])
        events = [event for part in (job, *settlement.merged) for event in part.events]
        kept += [
            (
                job.id,
                position,
                job.destination_id,
                event.message_id,
                event.workspace_id,
                event.source_id,
                event.type,
                event.name,
                event.payload,
                event.received_at,
                ended_at,
                record["outcome"],
                record.get("error_class"),
                job.replay_of,
            )
            for position, event in enumerate(events)
        ]
    return kept


def _epoch(value: dt.datetime | float) -> float:
    return value.timestamp() if isinstance(value, dt.datetime) else float(value)


def tally(matched: Iterable[tuple[str, bool, int]], again: bool) -> ReplayResult:
    """What a replay would do, from its selection's dead letters counted by (destination, replayed before)."""
    wanted: Counter[str] = Counter()
    already = 0
    for destination_id, replayed, n in matched:
        already += n if replayed else 0
        if again or not replayed:
            wanted[destination_id] += n
    return ReplayResult(sum(wanted.values()), dict(wanted), already)


def where(selection: ReplaySelection, style: Literal["sqlite", "postgres"]) -> tuple[str, dict[str, Any]]:
    """The SQL condition on ``dead_letters`` that `selection` means (but `again`), and its parameters.

    `style` is the driver's placeholder style: SQLite's ``:name`` (lists
    spelled out one placeholder per value) or psycopg's ``%(name)s`` (lists
    as arrays).
    """
    conditions: list[str] = []
    params: dict[str, Any] = {}

    def mark(name: str) -> str:
        return f":{name}" if style == "sqlite" else f"%({name})s"

    def one_of(column: str, name: str, values: Iterable[str]) -> None:
        ordered = sorted(values)
        if style == "postgres":
            params[name] = ordered
            conditions.append(f"{column} = ANY({mark(name)})")
            return
        names = [f"{name}_{n}" for n in range(len(ordered))]
        params.update(zip(names, ordered, strict=True))
        conditions.append(f"{column} IN ({', '.join(mark(n) for n in names) or 'NULL'})")

    for column, value in (
        ("destination_id", selection.destination_id),
        ("workspace_id", selection.workspace_id),
    ):
        if value is not None:
            params[column] = value
            conditions.append(f"{column} = {mark(column)}")
    if selection.since is not None:
        params["since"] = selection.since
        conditions.append(f"ended_at >= {mark('since')}")
    if selection.until is not None:
        params["until"] = selection.until
        conditions.append(f"ended_at < {mark('until')}")
    if selection.error_classes:
        one_of("error_class", "class", selection.error_classes)
    one_of("outcome", "outcome", selection.outcomes)
    return " AND ".join(conditions), params
