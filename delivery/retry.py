"""When to try a failed delivery again: pure arithmetic, no clock, no global randomness.

Attempts are numbered like the attempt log's `attempt` column: 1 is a job's
first request. After attempt n fails with a retryable error:

- **Backoff.** The nominal delay is ``d = min(backoff_max_s, backoff_base_s x 2^(n-1))``
  (30 s, 1 min, 2 min, ... up to 1 h with the defaults), and the delay drawn
  is uniform in ``[(1 - jitter) x d, d]``: *subtractive* jitter. Jitter
  spreads out the retries of jobs that failed together (a destination's
  outage) so they do not come back as one burst; taking it off the nominal
  delay instead of around it keeps ``backoff_max_s`` a hard cap with no pile
  of retries at exactly the cap, and makes the no-jitter schedule the
  latest each retry can happen. ``jitter = 1`` is AWS's "full jitter",
  ``0.5`` its "equal jitter".
- **Retry-After.** When the destination sent one, the delay is
  ``max(backoff, min(retry_after, retry_after_max_s))``: never sooner than
  our own backoff (a `Retry-After: 0` on every 429 cannot turn the engine
  into a tight loop), as late as the destination asks up to
  ``retry_after_max_s`` (a partner saying "come back in a week" cannot park a
  job). Unlike Svix, which clamps to ``[scheduled, 2 x scheduled]``, a
  rate-limited partner that asks for ten minutes is not retried after two,
  which would be sure to fail again and spend one of the job's attempts.
- **Giving up.** No next attempt (the caller records outcome `dropped`)
  once ``max_attempts`` requests were made, or when the next attempt would
  start after ``received_at + retry_window_s``.

`decide` applies this to a request's classification: the job's next step
(delivered, retry at a time, failed, dropped).

Each call draws at most one number from the `random.Random` it is given,
and none when it gives up on attempts, so a seeded generator replays a
schedule exactly.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from delivery.config import EngineConfig
from ingest.taxonomy import Classification, ErrorClass, Outcome

#: delay-seconds (RFC 9110 section 10.2.3); a decimal fraction is accepted too, since some servers send one.
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
#: `2.0 ** 1024` overflows; any positive base times `2 ** 1023` is past any sane cap.
_MAX_EXPONENT = 1023


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry settings of `[engine]`, as the arithmetic below uses them."""

    max_attempts: int
    """Most requests one job makes, the first included."""
    retry_window_s: float
    """No attempt starts later than this long after the job was received."""
    backoff_base_s: float
    """Nominal delay after the first attempt; doubles per attempt."""
    backoff_max_s: float
    """Cap of the nominal delay."""
    jitter: float
    """Fraction of the nominal delay that is random: the delay is uniform in [(1 - jitter) x d, d]."""
    retry_after_max_s: float
    """Longest wait a destination's Retry-After can impose."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0 < self.backoff_base_s <= self.backoff_max_s < math.inf:
            raise ValueError(
                "need 0 < backoff_base_s <= backoff_max_s < inf, "
                f"got {self.backoff_base_s} and {self.backoff_max_s}"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")
        if not 0 < self.retry_window_s < math.inf or not 0 <= self.retry_after_max_s < math.inf:
            raise ValueError(
                "retry_window_s must be positive and retry_after_max_s non-negative, both finite"
            )

    @classmethod
    def from_engine(cls, engine: EngineConfig) -> RetryPolicy:
        """The policy of a loaded `[engine]` table."""
        return cls(
            max_attempts=engine.max_attempts,
            retry_window_s=engine.retry_window_s,
            backoff_base_s=engine.backoff_base_s,
            backoff_max_s=engine.backoff_max_s,
            jitter=engine.backoff_jitter,
            retry_after_max_s=engine.retry_after_max_s,
        )


def backoff_delay(attempt: int, *, base_s: float, max_s: float, jitter: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based), before any Retry-After.

    Uniform in ``[(1 - jitter) x d, d]`` with ``d = min(max_s, base_s x 2^(attempt-1))``;
    never negative, never above `max_s`. Draws one number from `rng`.
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    if not 0 <= jitter <= 1:
        raise ValueError(f"jitter must be within [0, 1], got {jitter}")
    nominal = min(max_s, base_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    return nominal * (1.0 - jitter * rng.random())


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header value asks to wait, or None when absent or unreadable.

    Takes delay-seconds (``120``) or an HTTP-date in any of RFC 9110's three
    forms (a date without a zone is UTC, as the RFC says); a date in the past
    means 0. Negative numbers, signs, infinities and garbage are None: an
    unreadable header is ignored, never guessed at.
    """
    _require_aware(now, "now")
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def retry_delay(attempt: int, retry_after_s: float | None, policy: RetryPolicy, rng: random.Random) -> float:
    """Seconds to wait after failed attempt `attempt`: the backoff, raised to a clamped Retry-After.

    The rule is ``max(backoff, min(retry_after_s, retry_after_max_s))``; see the module docstring.
    """
    if retry_after_s is not None and not retry_after_s >= 0:  # NaN fails this too
        raise ValueError(f"retry_after_s must be a non-negative number of seconds, got {retry_after_s}")
    delay = backoff_delay(
        attempt, base_s=policy.backoff_base_s, max_s=policy.backoff_max_s, jitter=policy.jitter, rng=rng
    )
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, policy.retry_after_max_s))
    return delay


def next_attempt(
    attempt: int,
    received_at: datetime,
    now: datetime,
    retry_after_s: float | None,
    policy: RetryPolicy,
    rng: random.Random,
) -> datetime | None:
    """When to make the attempt after failed attempt `attempt`, or None to give up.

    `received_at` is the job's (the start of its retry window), `now` the end
    of the failed request, `retry_after_s` what `parse_retry_after` read from
    the response, if anything. None means the attempts or the window ran
    out: the caller records outcome `dropped`.
    """
    _require_aware(received_at, "received_at")
    _require_aware(now, "now")
    if attempt >= policy.max_attempts:
        return None
    when = now + timedelta(seconds=retry_delay(attempt, retry_after_s, policy, rng))
    if when > received_at + timedelta(seconds=policy.retry_window_s):
        return None
    return when


@dataclass(frozen=True, slots=True)
class Decision:
    """What becomes of the job after a request."""

    outcome: Outcome
    """The record's `outcome`: delivered, retry, failed or dropped."""
    next_attempt_at: datetime | None = None
    """When the next attempt is due; set exactly when `outcome` is retry."""
    retry_after_s: float | None = None
    """What the destination's Retry-After asked for, in seconds, if it sent a readable one."""

    def __post_init__(self) -> None:
        if (self.outcome is Outcome.RETRY) != (self.next_attempt_at is not None):
            raise ValueError("next_attempt_at is set exactly when the outcome is retry")
        if self.outcome is Outcome.SKIPPED:
            raise ValueError("a request is never skipped: use skip_record")


def decide(
    verdict: Classification,
    *,
    attempt: int,
    received_at: datetime,
    ended_at: datetime,
    retry_after: str | None,
    policy: RetryPolicy,
    rng: random.Random,
) -> Decision:
    """The job's next step after request number `attempt` got `verdict`.

    2xx is delivered; a terminal verdict failed; a retryable one is retried
    when `next_attempt` (counting from `ended_at`, the end of
    the request, and honouring the raw `retry_after` header) gives a time,
    else dropped. Draws from `rng` only for a retry.
    """
    retry_after_s = parse_retry_after(retry_after, ended_at)
    if verdict.error_class is ErrorClass.NONE:
        return Decision(Outcome.DELIVERED, retry_after_s=retry_after_s)
    if not verdict.retryable:
        return Decision(Outcome.FAILED, retry_after_s=retry_after_s)
    when = next_attempt(attempt, received_at, ended_at, retry_after_s, policy, rng)
    if when is None:
        return Decision(Outcome.DROPPED, retry_after_s=retry_after_s)
    return Decision(Outcome.RETRY, when, retry_after_s)


def _require_aware(moment: datetime, name: str) -> None:
    # Naive datetimes are ambiguous across hosts and DST; the attempt log is UTC throughout.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
