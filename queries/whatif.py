"""Retry what-if: the day's retried jobs replayed on paper against other schedules (docs/whatif.md).

A `Schedule` is written as the command line takes it,
``base=30s,factor=2,max=1h,attempts=10,window=4h,jitter=0.2`` (every key
optional: the engine's defaults). `whatif_schedules` returns the cohort's
actual figures beside each schedule's expected ones (`whatif`: one schedule).

What every schedule shares is read from the log once, by three queries: the
destinations' answers interval by interval (`queries/whatif_answers.sql`),
the retried jobs' first records (`whatif_jobs.sql`) and the cohort's actual
figures (`whatif_actual.sql`). The model then runs here, on arrays: a
schedule's paper attempts, one attempt number at a time for every retried
job together, each looked up in the answers. Written in SQL, the same model
sorted tens of millions of paper attempts per schedule (an as-of join and a
window per job) and took a minute a schedule on a day of 100 million
attempts (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from queries.log import AttemptLog
from queries.scope import Scope

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|min|m|h|d)?$")
#: Most paper attempts per job: the engine's own ceiling is the attempt log's SMALLINT.
MAX_ATTEMPTS = 1000


@dataclass(frozen=True, slots=True)
class Schedule:
    """A retry schedule, as `[engine]` sets the engine's (docs/configuration.md)."""

    base_s: float = 30.0
    """Nominal delay after the first attempt."""
    factor: float = 2.0
    """Each nominal delay is the last one times this (the engine doubles)."""
    max_s: float = 3600.0
    """Cap of the nominal delay."""
    attempts: int = 10
    """Most requests per job, the first included."""
    window_s: float = 14_400.0
    """No attempt starts later than this long after the job was received."""
    jitter: float = 0.2
    """The engine's subtractive jitter: a delay is uniform in [(1 - jitter) d, d]; its mean is used."""

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.base_s <= self.max_s:
            problems.append(f"need 0 < base <= max, got base={self.base_s:g}s, max={self.max_s:g}s")
        if not 1 <= self.factor <= 100:
            problems.append(f"factor must be within 1-100, got {self.factor:g}")
        if not 1 <= self.attempts <= MAX_ATTEMPTS:
            problems.append(f"attempts must be within 1-{MAX_ATTEMPTS}, got {self.attempts}")
        if not 0 < self.window_s <= 7 * 86400:
            problems.append(f"window must be positive and at most 7 days, got {self.window_s:g}s")
        if not 0 <= self.jitter <= 1:
            problems.append(f"jitter must be within 0-1, got {self.jitter:g}")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """A schedule from ``key=value`` pairs separated by commas; `ValueError` names what is wrong."""
        fields: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not value:
                raise ValueError(f"{part!r}: write key=value")
            if key in ("base", "max", "window"):
                fields[f"{key}_s"] = _seconds(key, value)
            elif key == "factor" or key == "jitter":
                fields[key] = _number(key, value)
            elif key == "attempts":
                if not value.isdigit():
                    raise ValueError(f"attempts: {value!r} is not a whole number")
                fields["attempts"] = int(value)
            else:
                raise ValueError(f"{key!r}: not a schedule key (base, factor, max, attempts, window, jitter)")
        return cls(**fields)

    def label(self) -> str:
        """The schedule as `parse` reads it."""
        return (
            f"base={_duration(self.base_s)},factor={self.factor:g},max={_duration(self.max_s)},"
            f"attempts={self.attempts},window={_duration(self.window_s)},jitter={self.jitter:g}"
        )

    def offsets(self) -> list[float]:
        """How long after the first request each later one starts, failed requests left out:
        attempt k after `offsets()[k - 2]` seconds.

        The nominal delays ``min(max, base x factor^(i-1))`` for i < k, added up, shortened by the
        mean of the engine's subtractive jitter (``1 - jitter / 2``).
        """
        waited, offsets = 0.0, []
        for i in range(1, self.attempts):
            waited += min(self.max_s, self.base_s * self.factor ** (i - 1))
            offsets.append(waited * (1 - self.jitter / 2))
        return offsets


def seconds(text: str) -> float:
    """A duration as a schedule writes it (`30s`, `2min`, `1h`), in seconds; `ValueError` if not one."""
    return _seconds("duration", text)


def _seconds(key: str, value: str) -> float:
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"{key}: {value!r} is not a duration (30s, 2min, 1h, 1d)")
    return float(match[1]) * _UNITS[match[2] or "s"]


def _number(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{key}: {value!r} is not a number") from None


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


#: How long an observed answer stands for a destination's state: a minute (docs/whatif.md).
RESOLUTION_S = 60.0
#: An answer more than this many intervals older than the attempt is not trusted (an hour).
TRUSTED_INTERVALS = 60
_LN_1_1 = math.log(1.1)
#: Delay buckets are log-scale from 0.01 ms (bucket -49) up: index = bucket + _BUCKET_0.
_BUCKET_0 = 64

Array = npt.NDArray[Any]


def whatif(
    log: AttemptLog,
    scope: Scope,
    start: datetime,
    end: datetime,
    schedule: Schedule,
    *,
    resolution_s: float = RESOLUTION_S,
) -> dict[str, Any]:
    """The cohort of [start, end) in `scope`: actual figures and `schedule`'s expected ones (one row)."""
    return whatif_schedules(log, scope, start, end, [schedule], resolution_s=resolution_s)[0]


def whatif_schedules(
    log: AttemptLog,
    scope: Scope,
    start: datetime,
    end: datetime,
    schedules: Sequence[Schedule],
    *,
    resolution_s: float = RESOLUTION_S,
) -> list[dict[str, Any]]:
    """The cohort of [start, end) in `scope`: one row per schedule, the actual figures beside its
    expected ones, with the log read once for all of them.

    `resolution_s`: the destination's answers are read in intervals of this length (a minute; a
    time-compressed demo compresses it too); one more than 60 intervals old is not trusted.
    Each row: `events_received`, `actual_delivered`, `actual_delivered_pct`, `actual_requests`,
    `actual_delay_p50_s` (p90, p99), the schedule's `delivered`, `delivered_pct`, `requests`,
    `delay_p50_s` (p90, p99), `jobs_replayed` and `guessed_pct` (docs/whatif.md).
    """
    if not 0 < resolution_s <= 3600:
        raise ValueError(f"resolution must be within (0, 1 h], got {resolution_s:g} s")
    answers = Answers.read(log, scope, start, end, resolution_s)
    jobs = Jobs.read(log, scope, start, end, answers)
    actual = Actual.read(log, scope, start, end)
    papers = [Paper(bucket_weights=actual.first_weights.copy()) for _ in schedules]
    # Schedules that wait alike (base, factor, max, jitter) share their attempts' times and
    # answers: only how many attempts each makes, and within which window, differ.
    timings: dict[tuple[float, ...], list[int]] = {}
    for n, schedule in enumerate(schedules):
        timings.setdefault((schedule.base_s, schedule.factor, schedule.max_s, schedule.jitter), []).append(n)
    for group in timings.values():
        _replay(answers, jobs, [schedules[n] for n in group], [papers[n] for n in group])
    return [actual.row(paper) for paper in papers]


@dataclass
class Answers:
    """What each destination answered, interval by interval (`whatif_answers.sql`), for look-ups.

    Destinations are numbered 0.. in the order of their hash. The per-row arrays have a row per
    (destination, interval) with requests, in that order; the others, a row per destination.
    """

    resolution_s: float
    key: Array
    """Per row: destination number x span + interval - first interval, sorted (`np.searchsorted`)."""
    slot: Array
    p_ok: Array
    """Per row: the share of the interval's requests delivered."""
    p_again: Array
    """Per row: the share that failed transiently (retryable classes)."""
    hashes: Array
    """Per destination: its hash, as the queries give it."""
    starts: Array
    """Per destination: its first row."""
    overall_ok: Array
    """Per destination: its share delivered over the whole range, the guess of an untrusted interval."""
    overall_again: Array
    failing_s: Array
    """Per destination: the mean seconds a transient failure took (0 without any)."""
    first: int
    span: int

    @classmethod
    def read(
        cls, log: AttemptLog, scope: Scope, start: datetime, end: datetime, resolution_s: float
    ) -> Answers:
        """The answers of the scope's destinations from `start` to a day past `end`."""
        frame = log.run("whatif_answers", scope, start, end, resolution_s=resolution_s)
        hashes, slot, requests, delivered, again, failing = (
            frame.get_column(c).to_numpy()
            for c in ("destination", "slot", "requests", "delivered", "again", "failing_s")
        )
        del frame
        # A destination's rows run from the one where the hash changes to the next such row.
        new = np.ones(len(hashes), dtype=bool)
        new[1:] = hashes[1:] != hashes[:-1]
        starts = np.flatnonzero(new)
        first = int(slot.min()) if len(slot) else 0
        span = int(slot.max()) - first + 1 if len(slot) else 1
        total, total_ok, total_again, total_failing = (
            np.add.reduceat(a, starts) for a in (requests, delivered, again, failing)
        )
        counts = np.diff(starts, append=len(hashes))
        return cls(
            resolution_s=resolution_s,
            key=np.repeat(np.arange(len(starts)) * span - first, counts) + slot,
            slot=slot,
            p_ok=delivered / requests,
            p_again=again / requests,
            hashes=hashes[starts],
            starts=starts,
            overall_ok=total_ok / total,
            overall_again=total_again / total,
            failing_s=np.divide(
                total_failing, total_again, out=np.zeros_like(total_failing), where=total_again > 0
            ),
            first=first,
            span=span,
        )

    def at(self, destination: Array, at_s: Array) -> tuple[Array, Array, Array]:
        """(p_ok, p_again, guessed) of requests to `destination` at `at_s`: the last interval with
        requests at or before it, or, with none within `TRUSTED_INTERVALS`, the overall shares."""
        slot = np.floor(at_s / self.resolution_s).astype(np.int64)
        wanted = destination * self.span + np.clip(slot - self.first, -1, self.span - 1)
        # The last row at or before `wanted`: the destination's own, unless it has none that early.
        row = np.searchsorted(self.key, wanted, side="right") - 1
        guessed = row < self.starts[destination]
        row[guessed] = 0
        guessed |= at_s - self.slot[row] * self.resolution_s > TRUSTED_INTERVALS * self.resolution_s
        p_ok = np.where(guessed, self.overall_ok[destination], self.p_ok[row])
        p_again = np.where(guessed, self.overall_again[destination], self.p_again[row])
        return p_ok, p_again, guessed


@dataclass
class Jobs:
    """The retried jobs (`whatif_jobs.sql`), their destinations numbered as in `Answers`."""

    destination: Array
    events: Array
    received_s: Array
    first_s: Array

    @classmethod
    def read(cls, log: AttemptLog, scope: Scope, start: datetime, end: datetime, answers: Answers) -> Jobs:
        """The cohort's retried jobs. Each job's first request is among the answers."""
        frame = log.run("whatif_jobs", scope, start, end)
        hashes = frame.get_column("destination").to_numpy()
        return cls(
            destination=np.searchsorted(answers.hashes, hashes),
            events=frame.get_column("events").to_numpy().astype(np.float64),
            received_s=frame.get_column("received_s").to_numpy(),
            first_s=frame.get_column("first_s").to_numpy(),
        )

    def take(self, rows: Array) -> Jobs:
        """The jobs of `rows` (a mask or indices)."""
        return Jobs(self.destination[rows], self.events[rows], self.received_s[rows], self.first_s[rows])


@dataclass
class Paper:
    """One schedule's paper attempts, summed: expected values."""

    bucket_weights: Array
    """Events delivered per delay bucket (index: bucket + _BUCKET_0), first attempts included."""
    delivered: float = 0.0
    requests: float = 0.0
    guessed: float = 0.0
    """Paper attempts expected to happen whose answer was guessed."""


def _replay(answers: Answers, jobs: Jobs, schedules: Sequence[Schedule], papers: Sequence[Paper]) -> None:
    """Add the paper attempts of `schedules`, which wait alike, to their `papers`.

    Attempt k of every job at once: it starts after the delays before it and the failed requests
    before it (the destination's mean time to fail transiently); it happens with `reach`, the
    chance every earlier attempt failed transiently, and delivers with that times the answer's
    p_ok. A job leaves once no schedule can try it again: its chance is 0, or its next attempt
    would start past every window.
    """
    reach = np.ones(len(jobs.events))
    failing = answers.failing_s[jobs.destination]
    longest = max(s.window_s for s in schedules)
    for k, waited in enumerate(max(schedules, key=lambda s: s.attempts).offsets(), start=2):
        at_s = jobs.first_s + waited + (k - 1) * failing
        p_ok, p_again, guessed = answers.at(jobs.destination, at_s)
        delivering = jobs.events * reach * p_ok
        bucket = _log_bucket((at_s - jobs.received_s) * 1000)
        for schedule, paper in zip(schedules, papers, strict=True):
            if k > schedule.attempts:
                continue
            within = at_s <= jobs.received_s + schedule.window_s
            paper.requests += float(reach[within].sum())
            paper.delivered += float(delivering[within].sum())
            paper.guessed += float(reach[within & guessed].sum())
            _add(paper, bucket[within] + _BUCKET_0, delivering[within])
        reach = reach * p_again
        going = (reach > 0) & (at_s <= jobs.received_s + longest)
        if not going.all():
            jobs, reach, failing = jobs.take(going), reach[going], failing[going]
            if not len(reach):
                return


def _log_bucket(ms: Array) -> Array:
    """The delay rollups' bucket of each delay, as the `log_bucket` macro (ingest/rollups/macros.sql)."""
    return np.floor(np.log(np.maximum(ms, 0.01)) / _LN_1_1).astype(np.int64)


def _add(paper: Paper, index: Array, weights: Array) -> None:
    counts = np.bincount(index, weights=weights)
    if len(counts) > len(paper.bucket_weights):
        paper.bucket_weights = np.pad(paper.bucket_weights, (0, len(counts) - len(paper.bucket_weights)))
    paper.bucket_weights[: len(counts)] += counts


@dataclass
class Actual:
    """The cohort's actual figures (`whatif_actual.sql`)."""

    events_received: int
    delivered: int
    delivered_first: int
    """Events delivered by the first request: the same under every schedule."""
    requests: int
    jobs_replayed: int
    requests_unchanged: int
    """First requests of the jobs not replayed."""
    bucket_weights: Array = field(repr=False)
    """Events delivered per delay bucket (index: bucket + _BUCKET_0)."""
    first_weights: Array = field(repr=False)
    """The same, of the events delivered by the first request."""

    @classmethod
    def read(cls, log: AttemptLog, scope: Scope, start: datetime, end: datetime) -> Actual:
        """The cohort of [start, end) in `scope`: its figures and delay buckets."""
        frame = log.run("whatif_actual", scope, start, end)
        sums = frame.drop("bucket").sum().row(0, named=True) if frame.height else {}
        counted = frame.filter(frame.get_column("bucket").is_not_null())
        index = counted.get_column("bucket").to_numpy().astype(np.int64) + _BUCKET_0
        # Float even when empty (bincount then gives integers): the paper's expected values add up here.
        weights, first = (
            np.bincount(index, weights=counted.get_column(c).to_numpy(), minlength=_BUCKET_0).astype(
                np.float64
            )
            for c in ("delivered", "delivered_first")
        )
        return cls(
            **{name: int(sums.get(name) or 0) for name in _ACTUAL_SUMS},
            bucket_weights=weights,
            first_weights=first,
        )

    def row(self, paper: Paper) -> dict[str, Any]:
        """The actual figures beside `paper`'s, as `whatif_schedules` returns them."""
        delivered = self.delivered_first + paper.delivered
        actual_delays = _percentiles(self.bucket_weights)
        delays = _percentiles(paper.bucket_weights)
        return {
            "events_received": self.events_received,
            "actual_delivered": self.delivered,
            "actual_delivered_pct": _pct(self.delivered, self.events_received),
            "actual_requests": self.requests,
            **{f"actual_delay_p{q}_s": value for q, value in zip(_QUANTILES, actual_delays, strict=True)},
            "delivered": delivered,
            "delivered_pct": _pct(delivered, self.events_received),
            # Every replayed job's first request happened as it did.
            "requests": self.requests_unchanged + self.jobs_replayed + paper.requests,
            **{f"delay_p{q}_s": value for q, value in zip(_QUANTILES, delays, strict=True)},
            "jobs_replayed": self.jobs_replayed,
            "guessed_pct": _pct(paper.guessed, paper.requests),
        }


_ACTUAL_SUMS = (
    "events_received",
    "delivered",
    "delivered_first",
    "requests",
    "jobs_replayed",
    "requests_unchanged",
)
_QUANTILES = (50, 90, 99)


def _percentiles(weights: Array) -> list[float | None]:
    """p50, p90 and p99 of the delays weighted per bucket: the first bucket whose running share
    reaches each, at its geometric middle (within 5 % of any delay in it)."""
    total = weights.sum()
    if not total > 0:
        return [None] * len(_QUANTILES)
    share = np.cumsum(weights) / total
    return [float(1.1 ** (int(np.argmax(share >= q / 100)) - _BUCKET_0 + 0.5) / 1000) for q in _QUANTILES]


def _pct(part: float, whole: float) -> float:
    return 100 * part / whole if whole else 0.0
