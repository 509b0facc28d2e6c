"""The engine's counters and latency histogram, and their Prometheus text exposition.

`Metrics.record` is the worker's `on_settled`: it sees each attempt record
once, after its commit, on the event loop (so no lock). `Metrics.render`
writes the text format (version 0.0.4) by hand; the format is a few lines
of escaping, not worth a dependency.

`/metrics` is unauthenticated, so every label value comes from a closed set
(the taxonomy's enums, the tracking API's error codes, the job states, the
catalog's integration names and rule codes): no workspace, source or
destination id ever appears, and a value outside the set is counted as
`other` rather than growing a new series.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, Final

from delivery.alerts.auth_watch import Change
from delivery.catalog import Catalog, catalog
from delivery.precheck import PRIVATE_TARGET, UNKNOWN_DESTINATION, Fix
from delivery.queue import JobState, QueueDepth
from delivery.records import UNKNOWN_INTEGRATION
from ingest.taxonomy import ErrorClass, Outcome

#: Upper bounds (seconds) of the delivery latency buckets: Prometheus' defaults, plus
#: room for the slow destinations a request timeout allows.
LATENCY_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: The label value of anything outside a label's closed set.
OTHER: Final = "other"
#: The Content-Type of the text exposition format.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

PREFIX: Final = "deliverydash_"


class Metrics:
    """Attempt counters and the delivery latency histogram since the engine started."""

    def __init__(
        self, monotonic: Callable[[], float] = time.monotonic, integrations: Catalog | None = None
    ) -> None:
        """`monotonic` measures uptime; tests pass a fake one. `integrations`: the catalog (labels)."""
        self._monotonic = monotonic
        self._started = monotonic()
        known = integrations if integrations is not None else catalog()
        self._integrations = frozenset(known) | {UNKNOWN_INTEGRATION}
        self._rules = frozenset(code for entry in known.values() for code in entry.rules.codes) | {
            UNKNOWN_DESTINATION.error_code,
            PRIVATE_TARGET.error_code,
        }
        self.attempts: Counter[tuple[str, str]] = Counter()
        """Attempt records by (error_class, outcome)."""
        self.precheck_skips: Counter[tuple[str, str]] = Counter()
        """Jobs skipped by a pre-send check, by (integration, rule)."""
        self.precheck_fixes: Counter[tuple[str, str]] = Counter()
        """Fixes made to events before their request, by (integration, rule)."""
        self.latency_buckets: list[int] = [0] * len(LATENCY_BUCKETS_S)
        """Requests per bucket of `LATENCY_BUCKETS_S` (not cumulative; `render` sums them)."""
        self.latency_sum_s = 0.0
        """Total duration of the requests counted in the histogram."""
        self.latency_count = 0
        """Requests counted in the histogram (records with a duration: a request was sent)."""
        self.notifications: Counter[str] = Counter()
        """Notifications raised, by kind (`delivery.alerts.auth_watch.Change`)."""
        self.disabled_destinations: Callable[[], int] = lambda: 0
        """How many destinations auth failures have disabled now (`delivery.engine` sets it)."""

    def uptime_s(self) -> float:
        """Seconds since this object was made (the engine's start)."""
        return self._monotonic() - self._started

    def record(self, record: Mapping[str, Any]) -> None:
        """Count one committed attempt record (the worker's `on_settled`)."""
        error_class = _closed(record.get("error_class"), ErrorClass)
        outcome = _closed(record.get("outcome"), Outcome)
        self.attempts[error_class, outcome] += 1
        if error_class == ErrorClass.PRECHECK:
            self.precheck_skips[self._label(record.get("integration"), record.get("error_code"))] += 1
        duration_ms = record.get("duration_ms")
        # No duration: the job was settled without a request (precheck, disabled destination).
        if duration_ms is None:
            return
        seconds = max(0.0, float(duration_ms) / 1000)
        index = bisect.bisect_left(LATENCY_BUCKETS_S, seconds)
        if index < len(LATENCY_BUCKETS_S):
            self.latency_buckets[index] += 1
        self.latency_sum_s += seconds
        self.latency_count += 1

    def record_notification(self, kind: str) -> None:
        """Count one notification raised (`delivery.alerts.auth_alerts`)."""
        self.notifications[_closed(kind, Change)] += 1

    def record_fixes(self, integration: str, fixes: Iterable[Fix]) -> None:
        """Count the fixes made to one job's events (the worker's `on_fixed`)."""
        for fix in fixes:
            self.precheck_fixes[self._label(integration, fix.rule)] += 1

    def _label(self, integration: object, rule: object) -> tuple[str, str]:
        """(integration, rule) as label values from their closed sets."""
        integration, rule = str(integration), str(rule)
        return (
            integration if integration in self._integrations else OTHER,
            rule if rule in self._rules else OTHER,
        )

    def render(self, depth: QueueDepth) -> str:
        """These counters and `depth` (the queue) in the text format; the API adds its own first."""
        lines: list[str] = []
        self._render_attempts(lines)
        self._render_prechecks(lines)
        self._render_latency(lines)
        self._render_alerts(lines)
        _render_queue(lines, depth)
        family(lines, "uptime_seconds", "gauge", "Seconds since the engine started.")
        lines.append(f"{PREFIX}uptime_seconds {_number(self.uptime_s())}")
        return "\n".join(lines) + "\n"

    def _render_attempts(self, lines: list[str]) -> None:
        family(lines, "attempts_total", "counter", "Delivery attempts recorded, by error class and outcome.")
        for (error_class, outcome), n in sorted(self.attempts.items()):
            labels = _labels(error_class=error_class, outcome=outcome)
            lines.append(f"{PREFIX}attempts_total{labels} {n}")

    def _render_prechecks(self, lines: list[str]) -> None:
        families = (
            (
                "precheck_skipped_total",
                "Jobs not sent because a pre-send check refused them, by rule.",
                self.precheck_skips,
            ),
            (
                "precheck_fixes_total",
                "Fixes made to events so their integration accepts them, by rule.",
                self.precheck_fixes,
            ),
        )
        for name, help_text, counts in families:
            family(lines, name, "counter", help_text)
            for (integration, rule), n in sorted(counts.items()):
                lines.append(f"{PREFIX}{name}{_labels(integration=integration, rule=rule)} {n}")

    def _render_latency(self, lines: list[str]) -> None:
        name = "request_duration_seconds"
        family(lines, name, "histogram", "Duration of delivery requests to destinations.")
        cumulative = 0
        for bound, n in zip(LATENCY_BUCKETS_S, self.latency_buckets, strict=True):
            cumulative += n
            lines.append(f"{PREFIX}{name}_bucket{_labels(le=_number(bound))} {cumulative}")
        lines.append(f'{PREFIX}{name}_bucket{{le="+Inf"}} {self.latency_count}')
        lines.append(f"{PREFIX}{name}_sum {_number(self.latency_sum_s)}")
        lines.append(f"{PREFIX}{name}_count {self.latency_count}")

    def _render_alerts(self, lines: list[str]) -> None:
        labelled_counter(
            lines,
            "notifications_total",
            "Notifications raised about destinations, by kind.",
            "kind",
            self.notifications,
        )
        family(lines, "destinations_disabled", "gauge", "Destinations disabled by auth failures now.")
        lines.append(f"{PREFIX}destinations_disabled {self.disabled_destinations()}")


def _render_queue(lines: list[str], depth: QueueDepth) -> None:
    family(lines, "queue_jobs", "gauge", "Jobs in the queue, by state.")
    by_state = Counter({JobState.PENDING.value: 0, JobState.LEASED.value: 0})
    by_state.update(closed_counts(depth.by_state, JobState))
    for state, n in sorted(by_state.items()):
        lines.append(f"{PREFIX}queue_jobs{_labels(state=state)} {n}")
    family(lines, "outbox_records", "gauge", "Attempt records committed but not yet in the Parquet log.")
    lines.append(f"{PREFIX}outbox_records {depth.outbox_rows}")


def family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    """Start the family `name` (prefixed) of `kind` with its help text."""
    lines.append(f"# HELP {PREFIX}{name} {_escape_help(help_text)}")
    lines.append(f"# TYPE {PREFIX}{name} {kind}")


def labelled_counter(
    lines: list[str], name: str, help_text: str, label: str, counts: Mapping[str, int]
) -> None:
    """A counter family with one sample per value of `label`."""
    family(lines, name, "counter", help_text)
    for value, n in sorted(counts.items()):
        lines.append(f"{PREFIX}{name}{_labels(**{label: value})} {n}")


def _closed(value: object, allowed: type[StrEnum]) -> str:
    """`value` if it is one of `allowed`'s values, else `OTHER`: label sets stay bounded."""
    text = str(value)
    return text if text in allowed._value2member_map_ else OTHER


def closed_counts(counts: Mapping[str, int], allowed: type[StrEnum]) -> Counter[str]:
    """`counts` with every value outside `allowed` counted under `OTHER`."""
    closed: Counter[str] = Counter()
    for value, n in counts.items():
        closed[_closed(value, allowed)] += n
    return closed


def _labels(**labels: str) -> str:
    pairs: Iterable[str] = (f'{key}="{escape_label_value(value)}"' for key, value in labels.items())
    return "{" + ",".join(pairs) + "}"


def escape_label_value(value: str) -> str:
    """A label value as the text format needs it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    """A float as Prometheus reads it, without needless digits (`0.005`, `1`, `2.5`)."""
    return repr(float(value)).removesuffix(".0")
