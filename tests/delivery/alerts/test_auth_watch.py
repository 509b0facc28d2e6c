"""The auth-failure state machine, by table: observations, probes, manual enables."""

from __future__ import annotations

from typing import Any

import pytest

from delivery import precheck
from delivery.alerts.auth_alerts import AuthAlerts
from delivery.alerts.auth_watch import (
    HEALTHY,
    AuthWatch,
    Change,
    Observation,
    Phase,
    Policy,
    Transition,
    WatchState,
    admit,
    enable,
    observation,
    observe,
)
from delivery.config import parse_config

POLICY = Policy(disable_after_failures=3, disable_after_s=60, probe_interval_s=10)
FAILING = WatchState(Phase.FAILING, failures=1, first_failure_at=100.0)
DISABLED = WatchState(Phase.DISABLED, 3, 100.0, disabled_at=120.0, next_probe_at=130.0)
RESTORED = WatchState(Phase.DISABLED, 3, 100.0, disabled_at=120.0, next_probe_at=None)
AUTH, OK, OTHER = Observation.AUTH_FAILURE, Observation.SUCCESS, Observation.NEUTRAL


@pytest.mark.parametrize(
    ("before", "seen", "now", "after", "changes"),
    [
        # healthy: the first auth failure opens a streak; anything else changes nothing
        (HEALTHY, AUTH, 100.0, FAILING, (Change.AUTH_FAILING,)),
        (HEALTHY, OK, 100.0, HEALTHY, ()),
        (HEALTHY, OTHER, 100.0, HEALTHY, ()),
        (HEALTHY, Observation.IGNORED, 100.0, HEALTHY, ()),
        # failing: counts up to the threshold, by number or by time
        (FAILING, AUTH, 101.0, WatchState(Phase.FAILING, 2, 100.0), ()),
        (
            WatchState(Phase.FAILING, 2, 100.0),
            AUTH,
            102.0,
            WatchState(Phase.DISABLED, 3, 100.0, disabled_at=102.0, next_probe_at=112.0),
            (Change.DISABLED,),
        ),
        (
            FAILING,
            AUTH,
            160.0,
            WatchState(Phase.DISABLED, 2, 100.0, disabled_at=160.0, next_probe_at=170.0),
            (Change.DISABLED,),
        ),
        (FAILING, AUTH, 159.9, WatchState(Phase.FAILING, 2, 100.0), ()),
        # a server error or a timeout says nothing about the credential
        (FAILING, OTHER, 500.0, FAILING, ()),
        (FAILING, OK, 101.0, HEALTHY, (Change.RECOVERED,)),
        # disabled: a failed probe keeps it disabled; a delivered one re-enables it
        (DISABLED, AUTH, 131.0, WatchState(Phase.DISABLED, 4, 100.0, 120.0, 130.0), ()),
        (DISABLED, OTHER, 131.0, DISABLED, ()),
        (DISABLED, OK, 131.0, HEALTHY, (Change.RECOVERED,)),
    ],
)
def test_observe(
    before: WatchState, seen: Observation, now: float, after: WatchState, changes: tuple[Change, ...]
) -> None:
    assert observe(before, seen, now, POLICY) == (after, changes)


def test_a_threshold_of_one_warns_and_disables_at_once() -> None:
    policy = Policy(disable_after_failures=1, disable_after_s=60, probe_interval_s=10)
    state, changes = observe(HEALTHY, AUTH, 5.0, policy)
    assert changes == (Change.AUTH_FAILING, Change.DISABLED)
    assert state == WatchState(Phase.DISABLED, 1, 5.0, disabled_at=5.0, next_probe_at=15.0)


def test_without_auto_disable_it_only_warns() -> None:
    policy = Policy(disable_after_failures=1, disable_after_s=1, probe_interval_s=10, auto_disable=False)
    state, changes = observe(HEALTHY, AUTH, 5.0, policy)
    for now in (6.0, 100.0):
        state, more = observe(state, AUTH, now, policy)
        changes += more
    assert changes == (Change.AUTH_FAILING,)
    assert state.phase is Phase.FAILING and state.failures == 3


@pytest.mark.parametrize(
    ("before", "now", "after", "admitted"),
    [
        (HEALTHY, 0.0, HEALTHY, True),
        (FAILING, 0.0, FAILING, True),
        (DISABLED, 129.9, DISABLED, False),
        # the probe is due: this job goes, and the next probe is one interval on
        (DISABLED, 130.0, WatchState(Phase.DISABLED, 3, 100.0, 120.0, 140.0), True),
        (DISABLED, 500.0, WatchState(Phase.DISABLED, 3, 100.0, 120.0, 510.0), True),
        # restored without a probe time: probe at once
        (RESTORED, 121.0, WatchState(Phase.DISABLED, 3, 100.0, 120.0, 131.0), True),
    ],
)
def test_admit(before: WatchState, now: float, after: WatchState, admitted: bool) -> None:
    assert admit(before, now, POLICY) == (after, admitted)


@pytest.mark.parametrize(
    ("before", "after", "changes"),
    [(HEALTHY, HEALTHY, ()), (FAILING, FAILING, ()), (DISABLED, HEALTHY, (Change.ENABLED,))],
)
def test_enable(before: WatchState, after: WatchState, changes: tuple[Change, ...]) -> None:
    assert enable(before) == (after, changes)


@pytest.mark.parametrize(
    ("record", "seen"),
    [
        ({"error_class": "auth", "outcome": "failed", "status_code": 401}, AUTH),
        ({"error_class": "auth", "outcome": "failed", "status_code": 403}, AUTH),
        ({"error_class": "none", "outcome": "delivered", "status_code": 200}, OK),
        ({"error_class": "server", "outcome": "retry", "status_code": 503}, OTHER),
        ({"error_class": "rate_limit", "outcome": "retry", "status_code": 429}, OTHER),
        ({"error_class": "network", "outcome": "dropped", "status_code": None}, OTHER),
        ({"error_class": "disabled", "outcome": "skipped", "status_code": None}, Observation.IGNORED),
        ({"error_class": "precheck", "outcome": "skipped", "status_code": None}, Observation.IGNORED),
    ],
)
def test_observation_of_a_record(record: dict[str, Any], seen: Observation) -> None:
    assert observation(record) is seen


def test_the_watch_keeps_one_state_per_destination_and_reports_transitions() -> None:
    watch = AuthWatch(POLICY)
    changes = [t.change for now in (1.0, 2.0, 3.0) for t in watch.observe("a", AUTH, now)]
    assert changes == [Change.AUTH_FAILING, Change.DISABLED]
    assert watch.state("b") == HEALTHY and watch.admit("b", 3.0)
    assert list(watch.disabled()) == ["a"]
    assert not watch.admit("a", 12.9)
    assert watch.admit("a", 13.0)  # the probe
    assert not watch.admit("a", 13.0)  # one per interval
    [recovered] = watch.observe("a", OK, 13.5)
    assert recovered.change is Change.RECOVERED
    assert recovered.before.failures == 3 and recovered.before.first_failure_at == 1.0
    assert recovered.after == HEALTHY and watch.disabled() == {}


def test_the_watch_starts_from_stored_states() -> None:
    watch = AuthWatch(POLICY, {"a": DISABLED, "b": HEALTHY})
    assert list(watch.disabled()) == ["a"]
    assert not watch.admit("a", 125.0)
    [enabled] = watch.enable("a", 126.0)
    assert enabled.change is Change.ENABLED and watch.admit("a", 126.0)
    assert watch.enable("a", 127.0) == []


def test_the_precheck_skips_what_the_watch_does_not_admit() -> None:
    config = parse_config(
        {
            "engine": {"allow_private_targets": True},
            "sources": [{"id": "web", "workspace": "acme", "write_key": "wk"}],
            "destinations": [
                {"id": "a", "source": "web", "integration": "webhook", "url": "http://127.0.0.1:1/"},
                {"id": "b", "source": "web", "integration": "webhook", "url": "http://127.0.0.1:2/"}
                | {"enabled": False},
            ],
        }
    )
    asked: list[str] = []

    def refuse(destination_id: str) -> bool:
        asked.append(destination_id)
        return False

    prechecks = precheck.Prechecks(config.engine, admit=refuse)
    assert prechecks.verdict(config.destination("a")) == precheck.AUTO_DISABLED
    # Disabled in the file, or unknown: decided before the watch is asked (no probe spent).
    assert prechecks.verdict(config.destination("b")) == precheck.DISABLED
    assert prechecks.verdict(None) == precheck.UNKNOWN_DESTINATION
    assert asked == ["a"]
    assert (precheck.AUTO_DISABLED.error_class, precheck.AUTO_DISABLED.error_code) == (
        "disabled",
        "auto_disabled",
    )


def test_notifications_raised_together_sort_in_the_order_they_were_raised() -> None:
    config = parse_config(
        {
            "engine": {"allow_private_targets": True},
            "sources": [{"id": "web", "workspace": "acme", "write_key": "wk"}],
            "destinations": [
                {"id": "a", "source": "web", "integration": "webhook", "url": "http://127.0.0.1:1/"}
            ],
        }
    )
    alerts = AuthAlerts(config)
    failing = WatchState(Phase.FAILING, 1, 100.0)
    disabled = WatchState(Phase.DISABLED, 2, 100.0, 101.0, 401.0)
    # One record can raise both at once: within one millisecond, ids alone must keep their order.
    ids = [
        alerts._raised(Transition("a", change, 101.0, before, after), None).id
        for change, before, after in [
            (Change.AUTH_FAILING, HEALTHY, failing),
            (Change.DISABLED, failing, disabled),
        ]
        * 50
    ]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
