"""The seed-style day report as terminal text: events and requests next to the study's figures.

`deliverydash report` prints it for a day of the attempt log; the live demo
prints it for its own run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from queries.log import AttemptLog

#: The seed's day: (label, day_report column, seed figure in %).
SEED_EVENT_FIGURES = (
    ("delivered on the first attempt", "delivered_first_attempt", 92.6),
    ("delivered eventually (10 attempts / 4 h)", "delivered_eventually", 93.9),
    ("  of which thanks to retries", "delivered_after_retries", 1.3),
    ("never arrive: terminal errors", "failed", 5.5),
    ("dropped: retries ran out", "dropped", None),
    ("skipped: never sent", "skipped", None),
    ("still retrying", "still_retrying", None),
    ("recovered later by a replay", "recovered_by_replay", None),
)
SEED_REQUEST_FIGURES = (
    ("answered 401 or 403", "auth_requests", 3.8),
    ("answered 400", "status_400_requests", 0.51),
    ("answered 429", "status_429_requests", 7.3),
    ("answered 5xx", "status_5xx_requests", 1.3),
    ("failed at the network layer", "network_requests", 1.1),
    ("timed out", "timeout_requests", None),
    ("TLS errors", "tls_requests", None),
    ("nonstandard status (WTF webhooks)", "nonstandard_requests", None),
)


def latest_day(log: AttemptLog) -> dt.date | None:
    """The latest UTC day on which the log received a job, or None for an empty log."""
    from queries.api import received_days

    days = received_days(log)
    return days[0] if days else None


def render_failures(failures: pl.DataFrame, received: int) -> str:
    """The events that never arrived, by outcome and error class: what the customer can act on."""
    import polars as pl

    lines: list[str] = [""]
    totals = failures.group_by("outcome", "error_class").agg(pl.col("events").sum())
    for outcome, title in (
        ("failed", "FAILED, by error class (terminal: fix and resend)"),
        ("dropped", "DROPPED, by error class of the last attempt (retries ran out)"),
        ("skipped", "SKIPPED, by reason (never sent)"),
    ):
        rows = totals.filter(pl.col("outcome") == outcome).sort("events", descending=True)
        if rows.is_empty():
            continue
        lines.append(f"{title:<60}{'events':>16}{'share':>10}")
        for error_class, events in rows.select("error_class", "events").iter_rows():
            share = 100 * events / received if received else 0.0
            lines.append(f"  {error_class:<58}{events:>16,}{share:>9.2f}%")
        lines.append("")
    return "\n".join(lines) if len(lines) > 1 else ""


def render_report(row: dict[str, float], day: dt.date, scope: str, last: dt.date | None = None) -> str:
    """The day report as a terminal table, next to the seed's figures; of the days `day`..`last` if given."""
    days = (
        f"{day} UTC" if last is None or last == day else f"{day} to {last} UTC ({(last - day).days + 1} days)"
    )
    lines = [
        f"{'Day' if last is None or last == day else 'Days'} of HTTP responses: {days}, scope {scope}",
        "",
    ]

    def section(
        title: str, total_label: str, total: float, figures: Sequence[tuple[str, str, float | None]]
    ) -> None:
        lines.append(f"{title:<44}{'count':>16}{'share':>10}{'seed':>9}")
        lines.append(f"{total_label:<44}{int(total):>16,}{'100.00%':>10}")
        for label, column, seed in figures:
            seed_text = f"{seed:.2f}%" if seed is not None else ""
            lines.append(f"{label:<44}{int(row[column]):>16,}{row[column + '_pct']:>9.2f}%{seed_text:>9}")
        lines.append("")

    when = "this day" if last is None or last == day else "these days"
    section(
        f"EVENTS (jobs received {when}, by events)",
        "events received",
        row["events_received"],
        SEED_EVENT_FIGURES,
    )
    section(f"REQUESTS (started {when})", "requests", row["requests"], SEED_REQUEST_FIGURES)
    return "\n".join(lines).rstrip() + "\n"


def render_daily(daily: pl.DataFrame) -> str:
    """The daily trend of a range: per day, events received and the first-attempt and eventual rates."""
    lines = [
        "DAILY TREND (events by day received)",
        f"{'day':<12}{'events received':>18}{'first attempt':>16}{'eventually':>13}",
    ]
    for row in daily.iter_rows(named=True):
        lines.append(
            f"{row['day'].isoformat():<12}{row['events_received']:>18,}"
            f"{row['first_attempt_pct']:>15.2f}%{row['eventual_pct']:>12.2f}%"
        )
    return "\n".join(lines) + "\n"
