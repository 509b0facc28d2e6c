"""Ask a running engine how it is doing (GET /admin/status): uptime, the queue by state and by
destination, the tracking API's counters, the alerts webhook's deliveries and failures, and the backlog:
per destination, jobs waiting, the rate now against the limit, the headroom, the time to drain at this
pace, and the hours of today (UTC) its traffic was over the limit, read from the attempt log of the
config (docs/backlog.md). The admin token is the config's [engine] admin_token, else the one the
engine generated in <data_dir>/admin_token (so run it as the engine's user)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from deliverydash import admin_api, options

log = logging.getLogger(__name__)

NAME = "status"
HELP = "show a running engine's state through its admin API"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    admin_api.add_options(parser)
    parser.add_argument("--json", action="store_true", help="print the answer as it came, as JSON")


def run(args: argparse.Namespace) -> None:
    """Print the engine's status (a `CommandError` when it cannot be asked)."""
    answer = admin_api.call(args, "GET", "/admin/status")
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    backlog = answer.get("backlog")
    over = hours_over_today(args.config, backlog["destinations"]) if backlog else None
    print(render(args.url, answer, over), end="")


def hours_over_today(config: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, int] | None:
    """Per destination, the hours of today (UTC, up to the current hour) it was over its limit, from the
    config's attempt log (`queries.headroom`); None when the log cannot be read."""
    from queries import api
    from queries.headroom import count_over, hours_over_limit
    from queries.log import connect
    from queries.scope import Scope

    now = dt.datetime.now(dt.UTC)
    start = dt.datetime.combine(now.date(), dt.time(), dt.UTC)
    end = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    limits = {row["destination"]: row["limit_per_s"] for row in rows}
    try:
        with connect(options.engine_config(config).log_location) as attempt_log:
            per_hour = api.destination_hours(attempt_log, Scope.all(), start, end)
    except Exception as exc:  # the status is still worth printing without the log's figures
        log.debug("the attempt log could not be read", exc_info=True)
        print(
            f"deliverydash status: the attempt log could not be read ({type(exc).__name__}): {exc}",
            file=sys.stderr,
        )
        return None
    return count_over(hours_over_limit(per_hour, limits))


def render(url: str, status: Mapping[str, Any], hours_over: Mapping[str, int] | None = None) -> str:
    """The answer of `GET /admin/status` as a few lines of text."""
    queue = status["queue"]
    events = status["events"]
    lines = [
        f"engine at {url}, up {_duration(status['uptime_s'])}",
        f"queue ({queue['backend']}, {queue['location']}): {_counts(queue['by_state']) or 'empty'}; "
        f"{queue['outbox_records']} attempt records not yet in the log",
    ]
    lines += [
        f"  {name}: {_counts(counts)}"
        for name, counts in queue["by_destination"].items()
        if any(counts.values())
    ]
    rejected = sum(events["rejected"].values())
    lines.append(
        f"events: {events['accepted']} accepted, {events['duplicate']} duplicate, {rejected} rejected"
    )
    if status["requests_rejected"]:
        lines.append(f"requests rejected: {_counts(status['requests_rejected'])}")
    lines += _webhook(status["alerts_webhook"])
    if status.get("backlog"):
        lines += render_backlog(status["backlog"], hours_over)
    return "\n".join(lines) + "\n"


#: The backlog table's columns: heading, and how a row's cell is made.
_BACKLOG_HEADINGS = (
    "destination",
    "waiting",
    "rate now (req/s)",
    "delivered (events/s)",
    "limit (req/s)",
    "adapted (req/s)",
    "headroom",
    "time to drain",
    "hours over limit today",
)


def render_backlog(backlog: Mapping[str, Any], hours_over: Mapping[str, int] | None) -> list[str]:
    """The `backlog` section as a labelled table, one line per destination (docs/backlog.md)."""
    if backlog["scope"] == "engine":
        whose = (
            f"rates are this engine's ({backlog['engine']}), for the destinations it sends to; "
            "jobs waiting are the fleet's"
        )
    else:
        whose = "rates are the engine's"
    lines = [f"backlog (rates over the last {backlog['window_s']:g} s; {whose}):"]
    rows = [_BACKLOG_HEADINGS] + [_backlog_cells(row, hours_over) for row in backlog["destinations"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_BACKLOG_HEADINGS))]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    if not backlog["destinations"]:
        lines.append("  (no destination)")
    return [line.rstrip() for line in lines]


def _backlog_cells(row: Mapping[str, Any], hours_over: Mapping[str, int] | None) -> tuple[str, ...]:
    over = "unknown" if hours_over is None else str(hours_over.get(row["destination"], 0))
    if row["limit_per_s"] is None:
        over = "no limit"
    adapted = _rate(row["adapted_per_s"])
    if row["held_for_s"]:
        adapted += f" (held {row['held_for_s']:g} s)"
    headroom = "-" if row["headroom_pct"] is None else f"{row['headroom_pct']:.0f}%"
    return (
        row["destination"],
        str(row["waiting"]),
        _rate(row["requests_per_s"]),
        _rate(row["delivered_per_s"]),
        "none" if row["limit_per_s"] is None else f"{row['limit_per_s']:g}",
        adapted,
        headroom,
        _drain(row["drain_state"], row["drain_s"]),
        over,
    )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _drain(state: str, seconds: float | None) -> str:
    if state == "draining" and seconds is not None:
        return _duration(seconds) if seconds >= 1 else "under 1 s"
    return {"empty": "empty", "no_progress": "no progress", "unknown": "unknown (another engine)"}.get(
        state, state
    )


def _webhook(webhook: Mapping[str, Any]) -> list[str]:
    """The alerts webhook's lines: counts, the last failure, the last given up, what waits."""
    if not webhook["configured"]:
        return ["alerts webhook: not configured"]
    lines = [
        f"alerts webhook: {webhook['pending']} pending, {webhook['delivered']} delivered, "
        f"{webhook['given_up']} given up, {webhook['failed_attempts']} failed attempts"
    ]
    if failure := webhook["last_failure"]:
        lines.append(f"  last failure {failure['at']}: {_failure(failure)}")
    if gave_up := webhook["last_given_up"]:
        lines.append(f"  last given up ({gave_up['reason']}) {gave_up['at']}: {_failure(gave_up)}")
    for pending in webhook["pending_notifications"]:
        when = f"next at {pending['next_attempt_at']}" if pending["next_attempt_at"] else "attempt in flight"
        lines.append(
            f"  pending: {pending['kind']} of {pending['destination_id']} ({pending['notification_id']}), "
            f"{pending['attempts']} attempts, {when}"
        )
    return lines


def _failure(failure: Mapping[str, Any]) -> str:
    return (
        f"attempt {failure['attempt']} for {failure['kind']} of {failure['destination_id']} "
        f"({failure['notification_id']}): {failure['error_code']} ({failure['error_class']})"
    )


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{value} {name}" for name, value in counts.items() if value)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"
