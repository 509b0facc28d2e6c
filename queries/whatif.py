"""Retry what-if: the day's retried jobs replayed on paper against other schedules (docs/whatif.md).

A `Schedule` is written as the command line takes it,
``base=30s,factor=2,max=1h,attempts=10,window=4h,jitter=0.2`` (every key
optional: the engine's defaults). `whatif` runs `queries/whatif.sql` for one
schedule and returns the cohort's actual figures beside the schedule's
expected ones.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from queries.errors import QueryError
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

    def params(self) -> dict[str, object]:
        """The parameters `queries/whatif.sql` binds."""
        return asdict(self)


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


def whatif(
    log: AttemptLog,
    scope: Scope,
    start: datetime,
    end: datetime,
    schedule: Schedule,
    *,
    resolution_s: float = RESOLUTION_S,
) -> dict[str, Any]:
    """The cohort of [start, end) in `scope`: actual figures and `schedule`'s expected ones (one row).

    `resolution_s`: the destination's answers are read in intervals of this length (a minute; a
    time-compressed demo compresses it too); one more than 60 intervals old is not trusted.
    """
    if not 0 < resolution_s <= 3600:
        raise ValueError(f"resolution must be within (0, 1 h], got {resolution_s:g} s")
    frame = log.run("whatif", scope, start, end, resolution_s=resolution_s, **schedule.params())
    if frame.height != 1:  # an aggregate: one row, always
        raise QueryError(f"the what-if query gave {frame.height} rows")
    return frame.row(0, named=True)
