"""Replays in the figures, counted by hand: the fixture log of conftest.py plus two replays.

R4 replays J4 (globex's hook, 401 failed) and is delivered on D1 at 18:00; R7 replays J7
(initech, skipped) and fails again (400) at 19:00; R12 replays J12's event (received on D0),
delivered on D1. Each keeps its event's `received_at`, as the engine's replays do. An event is
received once: the cohort figures are those of the fixture; replays add requests, and what they
delivered is `recovered_by_replay`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from queries import (
    AttemptLog,
    Scope,
    by_destination,
    connect,
    daily,
    day_report,
    delivery_delay_histogram,
    funnel,
)

from .conftest import D0, D1, D2, at, fixture_rows, job, ok, publish

ALL = Scope.all()


def replayed(replay_of: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "replay_of": replay_of} for row in rows]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttemptLog]:
    replays = [
        *replayed("J4", job("R4", "dst_globex_hook", at(D1, "13:00"), [ok(at(D1, "18:00"))])),
        *replayed(
            "J7",
            job(
                "R7",
                "dst_initech_amp",
                at(D1, "14:00"),
                [
                    {
                        "started_at": at(D1, "19:00"),
                        "status_code": 400,
                        "error_class": "validation",
                        "outcome": "failed",
                    }
                ],
            ),
        ),
        *replayed("J12", job("R12", "dst_acme_amp", at(D0, "23:00"), [ok(at(D1, "09:00"))])),
    ]
    data_dir = tmp_path_factory.mktemp("replays")
    publish([*fixture_rows(), *replays], data_dir)
    with connect(data_dir) as opened:
        yield opened


def test_an_event_is_received_once_and_a_replay_s_delivery_is_recovered(log: AttemptLog) -> None:
    row = day_report(log, ALL, D1, D2).row(0, named=True)
    # The fixture's cohort, unchanged (test_figures.py): J4 still failed, J7 still skipped.
    assert (row["events_received"], row["delivered_eventually"]) == (13, 7)
    assert (row["failed"], row["dropped"], row["skipped"], row["still_retrying"]) == (3, 1, 1, 1)
    assert row["recovered_by_replay"] == 1  # R4; R7 failed again; R12's event was received on D0
    assert row["recovered_by_replay_pct"] == pytest.approx(100 / 13)
    # Replays' requests are requests: the fixture's 20, R4, R7 and R12.
    assert row["requests"] == 23
    assert row["status_400_requests"] == 2


def test_the_funnel_adds_delivered_after_replay_before_the_undelivered(log: AttemptLog) -> None:
    stages = funnel(log, ALL, D1, D2)
    by_stage = dict(
        zip(stages.get_column("stage").to_list(), stages.get_column("events").to_list(), strict=True)
    )
    assert by_stage["events received"] == 13
    assert by_stage["delivered by attempt 10"] == 7
    assert by_stage["delivered after replay"] == 8
    assert stages.get_column("stage").to_list()[-5:] == [
        "delivered after replay",
        "failed",
        "dropped",
        "skipped",
        "still retrying",
    ]
    assert stages.get_column("step").to_list() == list(range(stages.height))
    assert stages.filter(stages["stage"] == "delivered after replay").get_column("kind").to_list() == [
        "replayed"
    ]


def test_without_a_replay_the_funnel_has_no_replay_stage(log: AttemptLog) -> None:
    # On D0 only J12 was received; its replay ran on D1, within the cohort's horizon of a day.
    stages = funnel(log, ALL, D0, D1)
    assert "delivered after replay" in stages.get_column("stage").to_list()
    acme_hook = funnel(log, Scope.destination("dst_acme_hook"), D1, D2)
    assert "delivered after replay" not in acme_hook.get_column("stage").to_list()


def test_per_destination_and_per_day(log: AttemptLog) -> None:
    rows = {row["destination_id"]: row for row in by_destination(log, ALL, D1, D2).iter_rows(named=True)}
    assert (rows["dst_globex_hook"]["recovered_by_replay"], rows["dst_globex_hook"]["failed"]) == (1, 2)
    assert rows["dst_initech_amp"]["recovered_by_replay"] == 0
    assert rows["dst_globex_hook"]["events_received"] == 4  # J4, J8, J9 (2 events): R4 not again
    days = daily(log, ALL, D0, D2)
    assert days.get_column("events_received").to_list() == [1, 13]


def test_replays_are_not_in_the_delivery_delays(log: AttemptLog) -> None:
    # R4 delivered 5 hours after its event was received; no delivery of the fixture took an hour.
    histogram = delivery_delay_histogram(log, Scope.workspace("globex"), D1, D2)
    assert histogram.height
    assert histogram.get_column("upper_ms").max() < 3_600_000  # type: ignore[operator]
