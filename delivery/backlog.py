"""How fast each destination's backlog drains, and how close its traffic is to the rate limit.

Two parts (docs/backlog.md):

- `Throughput` counts this engine's settled records per destination in
  one-second buckets over a sliding window (`WINDOW_S`, 60 s): requests
  made, events delivered, and events whose job ended (delivered, failed,
  dropped or skipped: what leaves the queue). It is fed by the worker's
  `on_settled`, after each commit, on the event loop. Pure: every method
  takes `now`.
- `forecast` (pure) lays those rates beside the queue's depth and the
  meters' configured and adapted rates: per destination, the jobs waiting,
  the rates now, the headroom under the limit, and the time to drain at this
  pace (`drain_state`: `empty`, `draining`, `no_progress`, or `unknown` for a
  destination another engine of a fleet sends to). A rate of 0 never divides.

`BacklogSource` is what the engine hands the admin API to build the
`backlog` section of `GET /admin/status`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from delivery.config import Config
from delivery.metering import Meter
from delivery.queue import QueueDepth

#: Seconds of settlements the rates are measured over.
WINDOW_S: Final = 60.0
#: Outcomes that end a job: its events leave the queue.
FINAL_OUTCOMES: Final = frozenset({"delivered", "failed", "dropped", "skipped"})


@dataclass(frozen=True, slots=True)
class Rates:
    """One destination's settlements per second over the window."""

    requests_per_s: float
    """Requests made (records with a duration: skips without a request are not requests)."""
    delivered_per_s: float
    """Events delivered."""
    finished_per_s: float
    """Events whose job ended (delivered, failed, dropped, skipped): the pace the backlog drains at."""


class Throughput:
    """Settled records per destination and second, over the last `window_s` seconds."""

    def __init__(self, now: float, window_s: float = WINDOW_S) -> None:
        """`now` is the engine's start: before a whole window has passed, rates are over the time since."""
        self._started = now
        self.window_s = window_s
        #: destination -> [second, requests, delivered events, finished events], oldest first.
        self._buckets: dict[str, deque[list[int]]] = {}

    def record(self, record: Mapping[str, Any], now: float) -> None:
        """Count one committed attempt record (the worker's `on_settled`)."""
        destination = str(record.get("destination_id"))
        events = int(record.get("event_count") or 1)
        outcome = str(record.get("outcome"))
        buckets = self._buckets.setdefault(destination, deque())
        second = math.floor(now)
        if not buckets or buckets[-1][0] != second:
            buckets.append([second, 0, 0, 0])
        bucket = buckets[-1]
        bucket[1] += record.get("duration_ms") is not None
        bucket[2] += events if outcome == "delivered" else 0
        bucket[3] += events if outcome in FINAL_OUTCOMES else 0
        self._prune(buckets, now)

    def rates(self, now: float) -> dict[str, Rates]:
        """Each destination's rates over the window ending at `now` (destinations idle for a window: none)."""
        span = self.span_s(now)
        found: dict[str, Rates] = {}
        for destination, buckets in list(self._buckets.items()):
            self._prune(buckets, now)
            if not buckets:
                del self._buckets[destination]
                continue
            requests, delivered, finished = (sum(b[i] for b in buckets) for i in (1, 2, 3))
            found[destination] = Rates(requests / span, delivered / span, finished / span)
        return found

    def span_s(self, now: float) -> float:
        """Seconds the rates are measured over at `now`: the window, or less since the start (at least 1)."""
        return max(1.0, min(self.window_s, now - self._started))

    def _prune(self, buckets: deque[list[int]], now: float) -> None:
        while buckets and buckets[0][0] + 1 <= now - self.window_s:  # wholly before the window
            buckets.popleft()


@dataclass(frozen=True, slots=True)
class MeterReading:
    """A meter's state at one instant."""

    adapted_per_s: float
    """The rate the bucket refills at now (lower than the configured one after 429s)."""
    held_for_s: float
    """Seconds a Retry-After still holds the destination (0: not held)."""

    @classmethod
    def of(cls, meter: Meter, now: float) -> MeterReading:
        """`meter` read at `now` (the worker's clock)."""
        return cls(meter.rate, max(0.0, meter.held_until - now))


def forecast(
    config: Config,
    depth: QueueDepth,
    rates: Mapping[str, Rates],
    meters: Mapping[str, MeterReading],
    owned: frozenset[str] | None,
) -> list[dict[str, Any]]:
    """One row per destination configured or waiting in the queue, sorted by id (docs/backlog.md).

    `owned`: the destinations this engine sends to (None: all of them, one engine alone). For one
    another engine of a fleet owns, rates and meters are not known here: they are null and the
    drain `unknown`.
    """
    workspaces = {s.id: s.workspace for s in config.sources}
    destinations = {d.id: d for d in config.destinations}
    rows = []
    for destination_id in sorted(destinations.keys() | depth.by_destination.keys()):
        destination = destinations.get(destination_id)
        counts = depth.by_destination.get(destination_id, {})
        waiting = sum(counts.values())
        here = owned is None or destination_id in owned
        rate = rates.get(destination_id, Rates(0.0, 0.0, 0.0)) if here else None
        meter = meters.get(destination_id) if here else None
        limit = destination.rate_limit_per_s if destination is not None else None
        state, seconds = drain(waiting, rate.finished_per_s if rate is not None else None)
        rows.append(
            {
                "destination": destination_id,
                "workspace": workspaces.get(destination.source) if destination is not None else None,
                "owned_here": here,
                "waiting": waiting,
                "pending": counts.get("pending", 0),
                "leased": counts.get("leased", 0),
                "requests_per_s": _round(rate.requests_per_s) if rate is not None else None,
                "delivered_per_s": _round(rate.delivered_per_s) if rate is not None else None,
                "finished_per_s": _round(rate.finished_per_s) if rate is not None else None,
                "limit_per_s": limit,
                "adapted_per_s": _round(meter.adapted_per_s) if meter is not None else None,
                "held_for_s": _round(meter.held_for_s) if meter is not None else None,
                "headroom_pct": headroom_pct(rate.requests_per_s, limit) if rate is not None else None,
                "drain_state": state,
                "drain_s": _round(seconds) if seconds is not None else None,
            }
        )
    return rows


def drain(waiting: int, finished_per_s: float | None) -> tuple[str, float | None]:
    """(state, seconds) to drain `waiting` jobs at `finished_per_s` (None: the rate is not known here)."""
    if waiting == 0:
        return "empty", 0.0
    if finished_per_s is None:
        return "unknown", None
    if finished_per_s <= 0:
        return "no_progress", None
    return "draining", waiting / finished_per_s


def headroom_pct(requests_per_s: float, limit_per_s: float | None) -> float | None:
    """How far under the limit the request rate is, in % of the limit (negative: over it; None: no limit)."""
    if not limit_per_s:
        return None
    return _round(100 * (1 - requests_per_s / limit_per_s))


def _round(value: float) -> float:
    return round(value, 3)


@dataclass(frozen=True, slots=True)
class BacklogSource:
    """What the admin API reads the backlog from: the engine's throughput, meters and ownership."""

    engine: str
    """This engine's owner id (its leases' name)."""
    fleet: bool
    """Whether the queue is shared (PostgreSQL): then the rates are this engine's only."""
    throughput: Throughput
    """Fed by the worker's `on_settled`."""
    meters: Callable[[], Iterable[tuple[str, Meter]]]
    """The worker's meters (none when metering is off)."""
    owned: Callable[[], frozenset[str] | None]
    """The destinations this engine sends to; None: all."""
    monotonic: Callable[[], float]
    """The clock `throughput` is fed with."""
    wall: Callable[[], float]
    """The worker's clock (epoch seconds): what meters' holds are in."""

    def section(self, config: Config, depth: QueueDepth) -> dict[str, Any]:
        """The `backlog` section of `GET /admin/status`."""
        now = self.monotonic()
        wall = self.wall()
        readings = {d: MeterReading.of(meter, wall) for d, meter in self.meters()}
        return {
            "scope": "engine" if self.fleet else "single_engine",
            "engine": self.engine,
            "window_s": round(self.throughput.span_s(now), 3),
            "destinations": forecast(config, depth, self.throughput.rates(now), readings, self.owned()),
        }
