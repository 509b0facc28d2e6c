"""Ask a running engine how it is doing (GET /admin/status): uptime, the queue by state and by
destination, the tracking API's counters, and the alerts webhook's deliveries and failures. The admin
token is the config's [engine] admin_token, else the one the engine generated in <data_dir>/admin_token
(so run it as the engine's user)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from deliverydash import admin_api

NAME = "status"
HELP = "show a running engine's state through its admin API"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    admin_api.add_options(parser)
    parser.add_argument("--json", action="store_true", help="print the answer as it came, as JSON")


def run(args: argparse.Namespace) -> None:
    """Print the engine's status (a `CommandError` when it cannot be asked)."""
    answer = admin_api.call(args, "GET", "/admin/status")
    print(
        json.dumps(answer, indent=2) if args.json else render(args.url, answer), end="\n" if args.json else ""
    )


def render(url: str, status: Mapping[str, Any]) -> str:
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
    return "\n".join(lines) + "\n"


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
