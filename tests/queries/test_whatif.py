"""Retry what-if on a log counted by hand: a destination down from 10:00 to 10:09, up from 10:10.

Job X (received 10:00:00) failed with a 503 at 10:00:01 and was retried. Other jobs' requests say
how the destination answered, minute by minute: 503 at 10:00-10:05, 200 from 10:10 to 10:20. A
schedule of base 60 s doubling (no jitter) tries X again at 10:01:01, 10:03:01, 10:07:01 (the last
observation at or before it, 10:05, says down) and 10:15:01 (up), each a tenth of a second later
per failed request before it (the destination's time to fail): delivered at attempt 5, after 5
requests; with 4 attempts it runs out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deliverydash.cli import main
from queries import AttemptLog, Scope, connect
from queries.whatif import Schedule, whatif

from .conftest import at, job, ok, publish

D = datetime(2026, 3, 10, tzinfo=UTC)
DOWN = {"status_code": 503, "error_class": "server", "retryable": True}


def down(started_at: datetime, outcome: str = "failed") -> dict[str, Any]:
    return {"started_at": started_at, **DOWN, "outcome": outcome}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = job(
        "X",
        "dst_acme_hook",
        at(D, "10:00"),
        [
            {**down(at(D, "10:00:01"), "retry"), "next_attempt_at": at(D, "10:00:31")},
            down(at(D, "10:00:31"), "dropped"),
        ],
    )
    # The destination's other traffic: one job a minute, each one request (received a day before
    # the range, so not in its cohort: only the destination's answers matter).
    for minute in range(6):
        rows += job(
            f"D{minute}",
            "dst_acme_hook",
            at(D, "10:00") - timedelta(days=1),
            [down(at(D, f"10:0{minute}:30"))],
        )
    for minute in range(10, 21):
        rows += job(
            f"U{minute}", "dst_acme_hook", at(D, "10:00") - timedelta(days=1), [ok(at(D, f"10:{minute}:30"))]
        )
    data_dir: Path = tmp_path_factory.mktemp("whatif")
    publish(rows, data_dir)
    return data_dir


@pytest.fixture(scope="module")
def log(data_dir: Path) -> Iterator[AttemptLog]:
    with connect(data_dir) as opened:
        yield opened


def run(log: AttemptLog, schedule: str) -> dict[str, Any]:
    return whatif(log, Scope.all(), D, D + timedelta(days=1), Schedule.parse(schedule))


def test_a_schedule_that_outlasts_the_outage_delivers_at_its_first_attempt_after_it(log: AttemptLog) -> None:
    row = run(log, "base=60s,factor=2,max=1h,attempts=10,window=4h,jitter=0")
    assert (row["events_received"], row["actual_delivered"], row["actual_requests"]) == (1, 0, 2)
    assert row["jobs_replayed"] == 1
    assert row["delivered"] == pytest.approx(1.0)
    assert row["requests"] == pytest.approx(5.0)  # the first, then 10:01, 10:03, 10:07, 10:15
    # Each failed request before it took the destination's 0.1 s to fail: attempt 5 starts 0.4 s
    # later. Delays are read from log-scale buckets: within 5 %.
    assert row["delay_p50_s"] == pytest.approx(15 * 60 + 1 + 0.4, rel=0.05)
    assert row["guessed_pct"] == 0


def test_one_that_gives_up_first_delivers_nothing_and_costs_its_attempts(log: AttemptLog) -> None:
    row = run(log, "base=60s,factor=2,attempts=4,jitter=0")
    assert row["delivered"] == pytest.approx(0.0)
    assert row["requests"] == pytest.approx(4.0)
    # A window that ends before 10:15:01 gives up too, after the attempts it allows.
    short = run(log, "base=60s,factor=2,attempts=10,window=10min,jitter=0")
    assert (short["delivered"], short["requests"]) == (pytest.approx(0.0), pytest.approx(4.0))


def test_an_attempt_long_after_the_last_answer_is_guessed_from_the_day(log: AttemptLog) -> None:
    # base 2 h: the second attempt at 12:00:01 is an hour and a half past the last answer (10:20).
    row = run(log, "base=2h,max=2h,attempts=2,window=1d,jitter=0")
    assert row["guessed_pct"] == 100
    # The day's answers: 6 down, 11 up, and X's own 2 down: 11 of 19 delivered.
    assert row["delivered"] == pytest.approx(11 / 19)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("attempts=0", "attempts must be within"),
        ("base=2h,max=1h", "base <= max"),
        ("base=soon", "not a duration"),
        ("tries=3", "not a schedule key"),
        ("factor", "write key=value"),
        ("jitter=2", "jitter must be within"),
        ("attempts=2.5", "not a whole number"),
    ],
)
def test_a_bad_schedule_names_its_problem(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Schedule.parse(text)


def test_a_schedule_reads_back_as_written() -> None:
    schedule = Schedule.parse("base=45s,factor=1.5,max=30min,attempts=12,window=6h,jitter=0.1")
    assert (schedule.base_s, schedule.factor, schedule.max_s, schedule.window_s) == (45, 1.5, 1800, 21600)
    assert Schedule.parse(schedule.label()) == schedule
    assert Schedule.parse("") == Schedule()


def test_the_command_prints_each_schedule_beside_the_actual_figures(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schedule = "base=60s,factor=2,jitter=0"
    argv = ["whatif", "--data-dir", str(data_dir), "--date", "2026-03-10", "--actual", schedule]
    assert main([*argv, "--schedule", "base=60s,attempts=4,jitter=0"]) in (0, None)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "1 events received, 1 retried jobs replayed on paper" in lines[0]
    actual, replayed, shorter = (line.split() for line in lines[3:6])
    assert actual[:6] == ["actual", "(from", "the", "log)", "0", "0.00%"]
    assert replayed[2:5] == ["1", "100.00%", "5"]  # delivered at 10:15:01, after 5 requests
    assert shorter[1:4] == ["0", "0.00%", "4"]
    assert "replaying schedule 2 of 2" in err


def test_the_command_refuses_a_bad_schedule_and_an_empty_day(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["whatif", "--data-dir", str(data_dir), "--schedule", "tries=3"])
    assert exit_.value.code == 2
    assert "'tries': not a schedule key" in capsys.readouterr().err
    assert (
        main(["whatif", "--data-dir", str(data_dir), "--date", "2026-03-20", "--schedule", "attempts=3"]) == 2
    )
    assert "no events received on 2026-03-20" in capsys.readouterr().err
