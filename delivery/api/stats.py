"""The tracking API's counters, and their families at the top of `/metrics`.

The API counts what it accepts and refuses here; `delivery.metrics` counts
what the worker delivers. Error codes are the API's own (`ErrorCode`), so the
closed label set of these families is kept here too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from delivery.api.segment import ErrorCode
from delivery.metrics import PREFIX, closed_counts, family, labelled_counter


@dataclass
class TrackingStats:
    """Counters of the tracking API since start, for `/metrics`. Updated on the event loop only."""

    events_accepted: int = 0
    """Events stored (a duplicate messageId counts under `events_duplicate` instead)."""
    events_duplicate: int = 0
    """Events acknowledged but not stored again: their messageId was seen in the last 24 h."""
    events_rejected: Counter[str] = field(default_factory=Counter)
    """Batch items refused alone, by error code."""
    requests_rejected: Counter[str] = field(default_factory=Counter)
    """Requests answered with an error, by error code."""


def render(stats: TrackingStats) -> str:
    """The tracking API's families in the Prometheus text format."""
    lines: list[str] = []
    family(lines, "events_accepted_total", "counter", "Events stored by the tracking API.")
    lines.append(f"{PREFIX}events_accepted_total {stats.events_accepted}")
    family(
        lines,
        "events_duplicate_total",
        "counter",
        "Events acknowledged but not stored again (messageId seen in the last 24 h).",
    )
    lines.append(f"{PREFIX}events_duplicate_total {stats.events_duplicate}")
    labelled_counter(
        lines,
        "events_rejected_total",
        "Batch items refused alone, by error code.",
        "code",
        closed_counts(stats.events_rejected, ErrorCode),
    )
    labelled_counter(
        lines,
        "requests_rejected_total",
        "Tracking API requests answered with an error, by error code.",
        "code",
        closed_counts(stats.requests_rejected, ErrorCode),
    )
    return "\n".join(lines) + "\n"
