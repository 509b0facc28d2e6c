"""Authentication failures per destination: when to warn, disable, probe and re-enable. Pure.

Every committed attempt record is an observation about its destination's
credential::

    error_class auth (401, 403) ............. AUTH_FAILURE   counts
    delivered (2xx) ......................... SUCCESS        ends the streak
    outcome skipped (no request made) ....... ignored
    anything else (5xx, 429, network, ...) .. NEUTRAL        neither counts nor ends the streak

A server error or a timeout says nothing about whether the credential is
valid, so it does not break a run of 401s: a partner that answers 503 and
401 in turn still has a broken credential.

One destination moves between three phases::

    healthy ──auth failure──> failing ──threshold──> disabled
       ^                        │                      │  every probe_interval_s one job is sent (a probe)
       └──── success ───────────┴──── success ─────────┘  or POST /admin/destinations/{id}/enable

The threshold is reached at `disable_after_failures` consecutive auth
failures, or at an auth failure `disable_after_s` or more after the first
one of the streak with no success between ("30 minutes of only auth
failures"). While disabled, `admit` refuses every job except one per
`probe_interval_s`: the next job after a probe falls due is sent, so the
probe carries a recent event (the backlog is skipped as it is claimed).
Admitting a probe schedules the next one, so a probe lost to a crash
costs one interval, never the destination.

`observe`, `admit` and `enable` are functions of (state, input, now,
policy) returning the new state and the `Change`s to announce; `AuthWatch`
keeps one state per destination. Times are epoch seconds passed by the
caller: nothing here reads a clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ingest.taxonomy import ErrorClass, Outcome


class Phase(StrEnum):
    """Where a destination stands with its credential (stored: literal values)."""

    HEALTHY = "healthy"
    FAILING = "failing"
    DISABLED = "disabled"


class Observation(StrEnum):
    """What one attempt record says about the credential."""

    AUTH_FAILURE = "auth_failure"
    SUCCESS = "success"
    NEUTRAL = "neutral"
    IGNORED = "ignored"


class Change(StrEnum):
    """A transition worth a notification (the notification's `kind`: literal values)."""

    AUTH_FAILING = "auth_failing"
    """The first auth failure of a streak."""
    DISABLED = "disabled"
    """The threshold was reached: jobs are skipped except for probes."""
    RECOVERED = "recovered"
    """A request was delivered after auth failures (a probe, while disabled)."""
    ENABLED = "enabled"
    """Re-enabled by hand (`POST /admin/destinations/{id}/enable`)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The thresholds (the `[alerts]` table)."""

    disable_after_failures: int = 50
    """Consecutive auth failures that disable the destination."""
    disable_after_s: float = 1800
    """Seconds of only auth failures (since the streak's first) that disable it."""
    probe_interval_s: float = 300
    """While disabled, one job is sent this often."""
    auto_disable: bool = True
    """False: notify only, never disable."""


@dataclass(frozen=True, slots=True)
class WatchState:
    """One destination's standing; `HEALTHY` (the default) is never stored."""

    phase: Phase = Phase.HEALTHY
    """healthy, failing or disabled."""
    failures: int = 0
    """Auth failures in the current streak."""
    first_failure_at: float | None = None
    """When the streak's first auth failure was recorded (epoch seconds)."""
    disabled_at: float | None = None
    """When the destination was disabled."""
    next_probe_at: float | None = None
    """While disabled: when the next job may be sent as a probe."""


HEALTHY = WatchState()


def observation(record: Mapping[str, Any]) -> Observation:
    """What a committed attempt record says about its destination's credential."""
    if record.get("outcome") == Outcome.SKIPPED:
        return Observation.IGNORED
    error_class = record.get("error_class")
    if error_class == ErrorClass.AUTH:
        return Observation.AUTH_FAILURE
    if error_class == ErrorClass.NONE:
        return Observation.SUCCESS
    return Observation.NEUTRAL


def observe(
    state: WatchState, seen: Observation, now: float, policy: Policy
) -> tuple[WatchState, tuple[Change, ...]]:
    """The state after one observation at `now`, and the changes to announce."""
    if seen is Observation.SUCCESS:
        if state.phase is Phase.HEALTHY:
            return state, ()
        return HEALTHY, (Change.RECOVERED,)
    if seen is not Observation.AUTH_FAILURE:
        return state, ()
    if state.phase is Phase.DISABLED:
        # A failed probe (or a request already in flight when it was disabled).
        return dataclasses.replace(state, failures=state.failures + 1), ()
    changes: tuple[Change, ...] = ()
    if state.phase is Phase.HEALTHY:
        state = WatchState(Phase.FAILING, 0, now)
        changes = (Change.AUTH_FAILING,)
    first = state.first_failure_at if state.first_failure_at is not None else now
    state = dataclasses.replace(state, failures=state.failures + 1)
    if policy.auto_disable and (
        state.failures >= policy.disable_after_failures or now - first >= policy.disable_after_s
    ):
        state = dataclasses.replace(
            state, phase=Phase.DISABLED, disabled_at=now, next_probe_at=now + policy.probe_interval_s
        )
        changes += (Change.DISABLED,)
    return state, changes


def admit(state: WatchState, now: float, policy: Policy) -> tuple[WatchState, bool]:
    """Whether a job may be sent at `now`; admitting a probe schedules the next one."""
    if state.phase is not Phase.DISABLED:
        return state, True
    if state.next_probe_at is not None and now < state.next_probe_at:
        return state, False
    return dataclasses.replace(state, next_probe_at=now + policy.probe_interval_s), True


def enable(state: WatchState) -> tuple[WatchState, tuple[Change, ...]]:
    """Re-enable by hand: a disabled destination becomes healthy; any other is left as it is."""
    if state.phase is not Phase.DISABLED:
        return state, ()
    return HEALTHY, (Change.ENABLED,)


@dataclass(frozen=True, slots=True)
class Transition:
    """A change to announce, with the state it left behind and the state before it."""

    destination_id: str
    change: Change
    at: float
    """When it happened (epoch seconds)."""
    before: WatchState
    """The destination's state before the observation (for the streak's first failure, failures)."""
    after: WatchState
    """The state to store."""


class AuthWatch:
    """One `WatchState` per destination, moved by the functions above."""

    def __init__(self, policy: Policy, states: Mapping[str, WatchState] | None = None) -> None:
        """`states`: what was stored before a restart (destinations not in it are healthy)."""
        self.policy = policy
        self._states: dict[str, WatchState] = {
            destination: state
            for destination, state in (states or {}).items()
            if state.phase != Phase.HEALTHY
        }

    def state(self, destination_id: str) -> WatchState:
        """The destination's current state."""
        return self._states.get(destination_id, HEALTHY)

    def disabled(self) -> dict[str, WatchState]:
        """The destinations disabled now."""
        return {d: s for d, s in self._states.items() if s.phase is Phase.DISABLED}

    def observe(self, destination_id: str, seen: Observation, now: float) -> list[Transition]:
        """Apply one observation; the transitions it caused, in order."""
        before = self.state(destination_id)
        after, changes = observe(before, seen, now, self.policy)
        self._set(destination_id, after)
        return [Transition(destination_id, change, now, before, after) for change in changes]

    def admit(self, destination_id: str, now: float) -> bool:
        """Whether a job of this destination may be sent now (see the module docstring)."""
        if destination_id not in self._states:
            return True  # healthy: asked before every request, so answered without a state change
        after, admitted = admit(self.state(destination_id), now, self.policy)
        self._set(destination_id, after)
        return admitted

    def enable(self, destination_id: str, now: float) -> list[Transition]:
        """Re-enable by hand; no transition when the destination was not disabled."""
        before = self.state(destination_id)
        after, changes = enable(before)
        self._set(destination_id, after)
        return [Transition(destination_id, change, now, before, after) for change in changes]

    def load(self, destination_id: str, state: WatchState) -> None:
        """Take up a standing stored elsewhere (another engine's change, or a reload after a conflict)."""
        self._set(destination_id, state)

    def _set(self, destination_id: str, state: WatchState) -> None:
        if state.phase is Phase.HEALTHY:
            self._states.pop(destination_id, None)
        else:
            self._states[destination_id] = state
