"""How fast the engine may send to each destination: a token bucket whose rate adapts. Pure.

A destination with a rate limit (its integration's documented one, or its
own `rate_limit_per_s` / `rate_limit_burst`) gets a `Meter`; one without
(the webhook) is not metered. The bucket holds at most `burst` tokens, one
per request, refilled at the meter's current *rate*, which starts at the
documented rate and moves like TCP's congestion window (AIMD)::

    start .............. rate = documented, bucket full
    a request .......... takes a token; none left: the destination waits
                         (a request claimed just before a cut leaves the bucket in debt)
    429 ................ rate x BACKOFF_FACTOR, never below FLOOR_FRACTION x documented,
                         and the bucket is emptied; only for a request sent after the
                         last cut: the other requests already in flight met the same
                         overload and do not cut again
    Retry-After ........ (429 or any other retryable answer) the whole destination is
                         held: no token until it has passed, and none accrues meanwhile
    2xx ................ rate + RECOVERY_PER_S x documented for every second since the
                         last change (or the end of a hold), never above documented

Every method takes `now` (seconds, any clock, the same for all calls): no
clock is read here, so tests assert exact arithmetic. The worker takes
tokens when it claims jobs (`available`, `take`) and reports each answer
(`observe`); see docs/worker.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from delivery.config import Destination

#: A 429 multiplies the rate by this.
BACKOFF_FACTOR: Final = 0.5
#: Each second of successes adds this fraction of the documented rate.
RECOVERY_PER_S: Final = 0.05
#: The rate never falls below this fraction of the documented rate.
FLOOR_FRACTION: Final = 0.05
#: Float slack when counting whole tokens (0.1 + 0.2 is not 0.3).
_EPSILON: Final = 1e-9


@dataclass(frozen=True, slots=True)
class MeterPolicy:
    """The AIMD constants (the module's defaults)."""

    backoff_factor: float = BACKOFF_FACTOR
    """A 429 multiplies the rate by this (0 < factor < 1)."""
    recovery_per_s: float = RECOVERY_PER_S
    """Fraction of the documented rate regained per second of successes."""
    floor_fraction: float = FLOOR_FRACTION
    """The rate's floor, as a fraction of the documented rate."""

    def __post_init__(self) -> None:
        if not 0 < self.backoff_factor < 1:
            raise ValueError(f"backoff_factor must be within (0, 1), got {self.backoff_factor}")
        if not self.recovery_per_s > 0 or not 0 < self.floor_fraction <= 1:
            raise ValueError("recovery_per_s must be positive and floor_fraction within (0, 1]")


class Meter:
    """One destination's token bucket with its adaptive rate (see the module docstring)."""

    def __init__(self, rate_per_s: float, burst: int, now: float, policy: MeterPolicy | None = None) -> None:
        if not rate_per_s > 0 or burst < 1:
            raise ValueError(f"need a positive rate and a burst of at least 1, got {rate_per_s}, {burst}")
        self.policy = policy or MeterPolicy()
        self.documented = float(rate_per_s)
        """The rate the meter starts at and recovers to."""
        self.burst = burst
        """The bucket's size."""
        self.floor = self.documented * self.policy.floor_fraction
        """The lowest rate a run of 429s brings it to."""
        self._rate = self.documented
        self._tokens = float(burst)
        self._at = now
        """When `_tokens` was last brought up to date."""
        self._held_until = -math.inf
        self._cut_at = -math.inf
        """When the rate was last cut: 429s to requests sent before this do not cut again."""
        self._recovering_since = now

    @property
    def rate(self) -> float:
        """Requests per second the bucket refills at now."""
        return self._rate

    @property
    def held_until(self) -> float:
        """Until when a Retry-After holds the destination (-inf: never held)."""
        return self._held_until

    def tokens(self, now: float) -> float:
        """Tokens in the bucket at `now` (fractional; 0 while held)."""
        self._refill(now)
        return 0.0 if now < self._held_until else self._tokens

    def available(self, now: float) -> int:
        """Requests that may start at `now`: the whole tokens, 0 while held."""
        return math.floor(self.tokens(now) + _EPSILON)

    def take(self, now: float, n: int = 1) -> None:
        """Spend `n` tokens on requests starting at `now`.

        The caller asks `available` first; if a 429 emptied the bucket in
        between (the worker claims in a thread while answers arrive), the
        requests already claimed still go and the bucket goes into debt: it
        refills from below zero, so the debt delays the next request.
        """
        self._refill(now)
        self._tokens -= n

    def wait_s(self, now: float) -> float:
        """Seconds from `now` until a request may start (0: one may start now)."""
        tokens = self.tokens(now)
        if now < self._held_until:
            tokens = self._tokens  # frozen during the hold, refilling from its end
        missing = max(0.0, 1.0 - tokens - _EPSILON)
        return max(0.0, self._held_until - now) + missing / self._rate

    def observe(self, now: float, *, sent_at: float, status: int | None, retry_after_s: float | None) -> None:
        """Learn from the answer to a request sent at `sent_at`, received at `now`.

        `status` is None when there was no response; `retry_after_s` is what the
        answer's Retry-After asked for (already clamped by the caller), if any.
        A 429 cuts the rate, a 2xx lets it recover, and a Retry-After on any
        answer but a 2xx holds the destination.
        """
        if status == 429:
            self._cut(now, sent_at)
        if status is not None and 200 <= status < 300:
            self._recover(now)
        elif retry_after_s is not None and retry_after_s > 0:
            self._hold(now, retry_after_s)

    def _refill(self, now: float) -> None:
        start = max(self._at, self._held_until)
        if now > start:
            self._tokens = min(float(self.burst), self._tokens + (now - start) * self._rate)
            self._at = now

    def _cut(self, now: float, sent_at: float) -> None:
        if sent_at < self._cut_at:
            return  # in flight when the rate was last cut: the same overload, already answered
        self._refill(now)
        self._rate = max(self.floor, self._rate * self.policy.backoff_factor)
        self._tokens = 0.0
        self._at = max(self._at, now)
        self._cut_at = now
        self._recovering_since = max(now, self._held_until)

    def _recover(self, now: float) -> None:
        start = max(self._recovering_since, self._held_until)
        if now <= start:
            return
        self._refill(now)  # tokens accrued so far, at the rate they accrued at
        step = self.policy.recovery_per_s * self.documented * (now - start)
        self._rate = min(self.documented, self._rate + step)
        self._recovering_since = now

    def _hold(self, now: float, seconds: float) -> None:
        self._refill(now)
        self._held_until = max(self._held_until, now + seconds)
        self._recovering_since = max(self._recovering_since, self._held_until)


class Metering:
    """The meters of a configuration's rate-limited destinations, by destination id."""

    def __init__(
        self,
        destinations: Iterable[Destination],
        now: float,
        *,
        retry_after_max_s: float = math.inf,
        policy: MeterPolicy | None = None,
    ) -> None:
        """One meter per destination with a `rate_limit_per_s`, full at `now`.

        A Retry-After holds a destination at most `retry_after_max_s` (the
        engine's cap on what a destination may impose; 0 ignores Retry-After).
        """
        self._retry_after_max_s = retry_after_max_s
        self._policy = policy
        self._limits: dict[str, tuple[float, int]] = {}
        self._meters: dict[str, Meter] = {}
        self.reconfigure(destinations, now)

    def reconfigure(self, destinations: Iterable[Destination], now: float) -> None:
        """Meter `destinations` from now on: a meter whose rate and burst are unchanged is kept as it is
        (its tokens, its cut rate, its Retry-After hold); a new or changed one starts full at `now`."""
        meters: dict[str, Meter] = {}
        limits: dict[str, tuple[float, int]] = {}
        for d in destinations:
            if not d.rate_limit_per_s:
                continue
            limits[d.id] = (d.rate_limit_per_s, d.rate_limit_burst or math.ceil(d.rate_limit_per_s))
            kept = self._meters.get(d.id)
            if kept is not None and self._limits.get(d.id) == limits[d.id]:
                meters[d.id] = kept
            else:
                meters[d.id] = Meter(*limits[d.id], now, self._policy)
        self._meters, self._limits = meters, limits

    def get(self, destination_id: str) -> Meter | None:
        """The destination's meter; None when it is not metered."""
        return self._meters.get(destination_id)

    def items(self) -> Iterable[tuple[str, Meter]]:
        """(destination id, meter) of every metered destination."""
        return self._meters.items()

    def observe(
        self,
        destination_id: str,
        now: float,
        *,
        sent_at: float,
        status: int | None,
        retry_after_s: float | None,
    ) -> None:
        """`Meter.observe` on the destination's meter, with Retry-After clamped; nothing if unmetered."""
        meter = self._meters.get(destination_id)
        if meter is None:
            return
        if retry_after_s is not None:
            retry_after_s = min(retry_after_s, self._retry_after_max_s)
        meter.observe(now, sent_at=sent_at, status=status, retry_after_s=retry_after_s)
