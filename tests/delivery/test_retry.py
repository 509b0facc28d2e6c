"""The retry arithmetic of `delivery.retry`: exact values from seeded generators and fixed clocks."""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from delivery.config import EngineConfig
from delivery.retry import (
    Decision,
    RetryPolicy,
    backoff_delay,
    decide,
    next_attempt,
    parse_retry_after,
    retry_delay,
)
from ingest.taxonomy import Classification, Outcome, classify_status, classify_transport

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DEFAULTS = RetryPolicy.from_engine(EngineConfig())


class Fixed(random.Random):
    """A generator whose `random()` always returns `u`: delays become plain arithmetic."""

    def __init__(self, u: float) -> None:
        super().__init__(0)
        self.u = u
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return self.u


def policy(**changes: float) -> RetryPolicy:
    fields = {
        "max_attempts": 10,
        "retry_window_s": 14_400,
        "backoff_base_s": 30,
        "backoff_max_s": 3_600,
        "jitter": 0.0,
        "retry_after_max_s": 3_600,
    }
    return RetryPolicy(**{**fields, **changes})  # type: ignore[arg-type]


# -- backoff_delay -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [
        *[
            (1, 30),
            (2, 60),
            (3, 120),
            (4, 240),
            (5, 480),
            (6, 960),
            (7, 1920),
            (8, 3600),
            (9, 3600),
            (10, 3600),
        ],
        *[(64, 3600), (1023, 3600), (1024, 3600), (10**6, 3600)],
    ],
)
def test_nominal_delay_doubles_from_the_base_up_to_the_cap(attempt: int, delay: float) -> None:
    assert backoff_delay(attempt, base_s=30, max_s=3600, jitter=0.0, rng=Fixed(0.5)) == delay


@pytest.mark.parametrize(
    ("u", "jitter", "attempt", "delay"),
    [
        (0.0, 0.2, 1, 30.0),  # the top of the range is the nominal delay
        (0.5, 0.2, 1, 27.0),
        (0.5, 0.2, 3, 108.0),
        (0.75, 0.2, 9, 3060.0),  # jitter still spreads delays at the cap
        (0.5, 0.5, 2, 45.0),  # "equal jitter"
        (0.25, 1.0, 4, 180.0),  # "full jitter"
        (0.5, 0.0, 4, 240.0),
    ],
)
def test_jitter_takes_a_random_fraction_off_the_nominal_delay(
    u: float, jitter: float, attempt: int, delay: float
) -> None:
    assert backoff_delay(attempt, base_s=30, max_s=3600, jitter=jitter, rng=Fixed(u)) == delay


@pytest.mark.parametrize(
    ("seed", "jitter", "attempt", "delay"),
    [
        (0, 0.2, 1, 24.933468890849714),
        (0, 0.2, 2, 49.86693778169943),
        (0, 0.2, 8, 2992.0162669019655),
        (1, 0.2, 1, 29.193814535325593),
        (1, 0.2, 9, 3503.257744239071),
        (42, 0.2, 1, 26.163439209252697),
        (42, 0.2, 8, 3139.6127051103235),
        (7, 1.0, 1, 20.285017055005127),
        (7, 1.0, 5, 324.56027288008204),
    ],
)
def test_seeded_generators_give_exact_delays(seed: int, jitter: float, attempt: int, delay: float) -> None:
    assert backoff_delay(attempt, base_s=30, max_s=3600, jitter=jitter, rng=random.Random(seed)) == delay


def test_seeded_delays_follow_the_documented_formula() -> None:
    for seed in range(50):
        u = random.Random(seed).random()
        for attempt in range(1, 12):
            nominal = min(3600, 30 * 2 ** (attempt - 1))
            drawn = backoff_delay(attempt, base_s=30, max_s=3600, jitter=0.2, rng=random.Random(seed))
            assert drawn == nominal * (1 - 0.2 * u)


@pytest.mark.parametrize("jitter", [0.0, 0.2, 0.5, 1.0])
def test_delays_stay_within_the_range_and_the_cap(jitter: float) -> None:
    rng = random.Random(2026)
    for attempt in range(1, 60):
        nominal = min(3600, 30 * 2 ** (attempt - 1))
        for _ in range(200):
            delay = backoff_delay(attempt, base_s=30, max_s=3600, jitter=jitter, rng=rng)
            assert 0 <= (1 - jitter) * nominal <= delay <= nominal <= 3600


@pytest.mark.parametrize("jitter", [0.2, 1.0])
def test_delays_never_shrink_from_one_attempt_to_the_next(jitter: float) -> None:
    # With the same draw, a later attempt never waits less: monotone pathwise, so in expectation too.
    for seed in range(300):
        delays = [
            backoff_delay(attempt, base_s=30, max_s=3600, jitter=jitter, rng=random.Random(seed))
            for attempt in range(1, 40)
        ]
        assert delays == sorted(delays)


def test_mean_delay_is_the_nominal_delay_less_half_the_jitter() -> None:
    rng = random.Random(5)
    for attempt, nominal in [(1, 30), (4, 240), (12, 3600)]:
        draws = [backoff_delay(attempt, base_s=30, max_s=3600, jitter=0.2, rng=rng) for _ in range(20_000)]
        assert sum(draws) / len(draws) == pytest.approx(nominal * 0.9, rel=0.005)


def test_a_tiny_base_still_reaches_the_cap() -> None:
    assert backoff_delay(2000, base_s=1e-300, max_s=60, jitter=0, rng=Fixed(0)) == 60


@pytest.mark.parametrize(("attempt", "jitter"), [(0, 0.2), (-1, 0.2), (1, -0.1), (1, 1.5)])
def test_backoff_refuses_nonsense(attempt: int, jitter: float) -> None:
    with pytest.raises(ValueError):
        backoff_delay(attempt, base_s=30, max_s=3600, jitter=jitter, rng=Fixed(0))


# -- parse_retry_after ---------------------------------------------------------------------------

NOW = datetime(1994, 11, 6, 8, 48, 37, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("  5 ", 5.0),
        ("007", 7.0),
        ("1.5", 1.5),  # not RFC 9110, but unambiguous and sent by some servers
        ("86400000", 86_400_000.0),  # clamping is next_attempt's job
        # The three HTTP-date forms of RFC 9110, one minute after NOW.
        ("Sun, 06 Nov 1994 08:49:37 GMT", 60.0),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 60.0),
        ("Sun Nov  6 08:49:37 1994", 60.0),
        ("Sun, 06 Nov 1994 10:49:37 +0200", 60.0),
        ("Sun, 06 Nov 1994 08:48:37 GMT", 0.0),
        ("Sun, 06 Nov 1994 08:00:00 GMT", 0.0),  # in the past
        ("Sat, 01 Jan 1994 00:00:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("   ", None),
        ("-1", None),
        ("+5", None),
        ("1e3", None),
        ("inf", None),
        ("NaN", None),
        ("9" * 400, None),  # beyond float range
        ("120, 60", None),  # two headers folded into one
        ("soon", None),
        ("١٢٠", None),  # non-ASCII digits
        ("Sun, 32 Nov 1994 08:49:37 GMT", None),
        ("Sun, 06 Nov 1994 25:49:37 GMT", None),
    ],
)
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_retry_after_is_measured_against_the_given_clock() -> None:
    later = NOW + timedelta(seconds=45)
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later) == 15.0
    assert (
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later.astimezone(timezone(timedelta(hours=-5))))
        == 15.0
    )


def test_retry_after_needs_an_aware_clock() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_retry_after("5", datetime(2026, 1, 1))


# -- retry_delay: the Retry-After clamp ----------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after_s", "delay"),
    [
        (None, 30.0),
        (0.0, 30.0),  # never sooner than the backoff
        (10.0, 30.0),
        (45.0, 45.0),  # as late as the destination asks ...
        (600.0, 600.0),  # ... beyond Svix's 2 x scheduled ...
        (3600.0, 3600.0),
        (7200.0, 3600.0),  # ... up to retry_after_max_s
        (float("inf"), 3600.0),
    ],
)
def test_retry_after_is_clamped_between_the_backoff_and_its_maximum(
    retry_after_s: float | None, delay: float
) -> None:
    assert retry_delay(1, retry_after_s, policy(), Fixed(0)) == delay


def test_a_zero_maximum_ignores_retry_after() -> None:
    assert retry_delay(3, 900.0, policy(retry_after_max_s=0), Fixed(0)) == 120.0


def test_retry_after_below_a_jittered_backoff_keeps_the_backoff() -> None:
    assert retry_delay(2, 40.0, policy(jitter=0.5), Fixed(0.5)) == 45.0
    assert retry_delay(2, 50.0, policy(jitter=0.5), Fixed(0.5)) == 50.0


@pytest.mark.parametrize("retry_after_s", [-1.0, float("nan")])
def test_retry_delay_refuses_a_negative_retry_after(retry_after_s: float) -> None:
    with pytest.raises(ValueError):
        retry_delay(1, retry_after_s, policy(), Fixed(0))


# -- next_attempt ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "now", "retry_after_s", "expected"),
    [
        (1, T0, None, T0 + timedelta(seconds=30)),
        (
            1,
            T0 + timedelta(seconds=2),
            None,
            T0 + timedelta(seconds=32),
        ),  # counts from the end of the request
        (4, T0 + timedelta(minutes=10), None, T0 + timedelta(minutes=14)),
        (9, T0 + timedelta(hours=2), None, T0 + timedelta(hours=3)),
        (2, T0, 300.0, T0 + timedelta(minutes=5)),
        (2, T0, 1e9, T0 + timedelta(hours=1)),
        # The window's end is the last moment an attempt may start.
        (1, T0 + timedelta(hours=3, minutes=59, seconds=30), None, T0 + timedelta(hours=4)),
        (1, T0 + timedelta(hours=3, minutes=59, seconds=31), None, None),
        (2, T0 + timedelta(hours=3), 3600.0, T0 + timedelta(hours=4)),
        (2, T0 + timedelta(hours=3, seconds=1), 3600.0, None),  # a Retry-After past the window drops
        (9, T0, None, T0 + timedelta(hours=1)),
        (10, T0, None, None),  # max_attempts requests made
        (11, T0, None, None),
    ],
)
def test_next_attempt_with_a_fixed_clock(
    attempt: int, now: datetime, retry_after_s: float | None, expected: datetime | None
) -> None:
    assert next_attempt(attempt, T0, now, retry_after_s, policy(), Fixed(0)) == expected


def test_a_seeded_generator_replays_a_whole_schedule_exactly() -> None:
    def schedule(seed: int) -> list[datetime | None]:
        rng, now, times = random.Random(seed), T0, []
        for attempt in range(1, 11):
            when = next_attempt(attempt, T0, now, None, DEFAULTS, rng)
            times.append(when)
            now = when or now
        return times

    assert schedule(42) == [
        datetime(2026, 11, 27, 12, 0, 26, 163439, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 1, 25, 863310, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 3, 19, 262606, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 7, 8, 548491, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 13, 57, 847254, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 27, 47, 920952, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 54, 5, 323998, tzinfo=UTC),
        datetime(2026, 11, 27, 13, 53, 2, 728039, tzinfo=UTC),
        datetime(2026, 11, 27, 14, 47, 58, 944329, tzinfo=UTC),
        None,
    ]
    assert schedule(42) == schedule(42)
    assert schedule(42) != schedule(43)


def test_giving_up_on_attempts_draws_nothing() -> None:
    rng = Fixed(0.5)
    assert next_attempt(10, T0, T0, None, policy(), rng) is None
    assert rng.draws == 0
    assert next_attempt(9, T0, T0, None, policy(), rng) is not None
    assert rng.draws == 1


def test_next_attempt_needs_aware_datetimes() -> None:
    naive = datetime(2026, 11, 27, 12, 0)
    with pytest.raises(ValueError, match="received_at"):
        next_attempt(1, naive, T0, None, policy(), Fixed(0))
    with pytest.raises(ValueError, match="now"):
        next_attempt(1, T0, naive, None, policy(), Fixed(0))


def failing_job(pol: RetryPolicy, rng: random.Random, retry_after: float | None) -> list[datetime]:
    """Start times of a job whose every request fails after 1.5 s."""
    starts, now, attempt = [T0], T0, 1
    while True:
        now += timedelta(seconds=1.5)
        when = next_attempt(attempt, T0, now, retry_after, pol, rng)
        if when is None:
            return starts
        starts.append(when)
        now, attempt = when, attempt + 1


@pytest.mark.parametrize(
    ("pol", "retry_after"),
    [
        (DEFAULTS, None),
        (DEFAULTS, 1800.0),
        (policy(jitter=1.0, max_attempts=1000, retry_window_s=7200, backoff_max_s=600), None),
        (policy(jitter=0.3, max_attempts=50, retry_window_s=600, backoff_base_s=1, backoff_max_s=60), 0.0),
        (policy(max_attempts=1), None),
    ],
)
def test_every_schedule_respects_attempts_window_and_delays(
    pol: RetryPolicy, retry_after: float | None
) -> None:
    rng = random.Random(11)
    for _ in range(200):
        starts = failing_job(pol, rng, retry_after)
        assert 1 <= len(starts) <= pol.max_attempts
        assert starts[-1] <= T0 + timedelta(seconds=pol.retry_window_s)
        for attempt, (before, after) in enumerate(itertools.pairwise(starts), start=1):
            nominal = min(pol.backoff_max_s, pol.backoff_base_s * 2 ** (attempt - 1))
            floor = max((1 - pol.jitter) * nominal, min(retry_after or 0, pol.retry_after_max_s))
            ceiling = max(nominal, min(retry_after or 0, pol.retry_after_max_s))
            gap = (after - before - timedelta(seconds=1.5)).total_seconds()
            assert floor - 1e-6 <= gap <= ceiling + 1e-6


def test_defaults_make_ten_attempts_within_the_window() -> None:
    rng = random.Random(3)
    for _ in range(500):
        starts = failing_job(DEFAULTS, rng, None)
        assert len(starts) == 10
        assert starts[-1] - T0 < timedelta(hours=3, minutes=5)


# -- RetryPolicy ---------------------------------------------------------------------------------


def test_policy_from_the_engine_config() -> None:
    engine = EngineConfig(
        max_attempts=3, retry_window_s=60, backoff_base_s=1, backoff_max_s=8, backoff_jitter=0.5
    )
    assert RetryPolicy.from_engine(engine) == RetryPolicy(
        max_attempts=3,
        retry_window_s=60,
        backoff_base_s=1,
        backoff_max_s=8,
        jitter=0.5,
        retry_after_max_s=3600,
    )
    assert policy(jitter=0.2) == DEFAULTS


@pytest.mark.parametrize(
    "changes",
    [
        {"max_attempts": 0},
        {"backoff_base_s": 0},
        {"backoff_base_s": 7200},
        {"backoff_max_s": float("inf"), "backoff_base_s": 1},
        {"jitter": 1.01},
        {"retry_window_s": 0},
        {"retry_window_s": float("nan")},
        {"retry_after_max_s": -1},
    ],
)
def test_policy_refuses_nonsense(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        policy(**changes)


# -- docs ----------------------------------------------------------------------------------------


DASH = "\N{EN DASH}"


def human(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{value} {unit}" for value, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if value]
    return " ".join(parts) or "0 s"


def test_the_documented_schedule_is_the_default_policys() -> None:
    rows = [f"| 1 | {DASH} | 0 s |"]
    earliest = latest = 0.0
    for attempt in range(1, DEFAULTS.max_attempts):
        low = backoff_delay(attempt, base_s=30, max_s=3600, jitter=DEFAULTS.jitter, rng=Fixed(1.0))
        high = backoff_delay(attempt, base_s=30, max_s=3600, jitter=DEFAULTS.jitter, rng=Fixed(0.0))
        earliest, latest = earliest + low, latest + high
        delay, since_first = f"{human(low)} {DASH} {human(high)}", f"{human(earliest)} {DASH} {human(latest)}"
        rows.append(f"| {attempt + 1} | {delay} | {since_first} |")
    assert latest <= DEFAULTS.retry_window_s
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- test: retry-schedule -->\n(?:\|.*\n){2}((?:\|.*\n)+)", text)
    assert match, "docs/configuration.md lost its retry schedule"
    assert match[1].splitlines() == rows


# -- decide: a request's classification to the job's next step ----------------------------------

RECEIVED = datetime.fromtimestamp(1_790_000_000.0, UTC)
ENDED = RECEIVED + timedelta(seconds=10)
#: No jitter, so every retry time is exact: base 1 s doubling, at most 8 s, 5 attempts in 60 s.
DECIDE_POLICY = RetryPolicy(
    max_attempts=5, retry_window_s=60, backoff_base_s=1, backoff_max_s=8, jitter=0, retry_after_max_s=30
)


def decide_for(verdict: Classification, attempt: int = 1, retry_after: str | None = None) -> Decision:
    return decide(
        verdict,
        attempt=attempt,
        received_at=RECEIVED,
        ended_at=ENDED,
        retry_after=retry_after,
        policy=DECIDE_POLICY,
        rng=random.Random(7),
    )


def after(seconds: float) -> datetime:
    return ENDED + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("status", "attempt", "retry_after", "expected"),
    [
        (200, 1, None, Decision(Outcome.DELIVERED)),
        (204, 3, None, Decision(Outcome.DELIVERED)),
        (401, 1, None, Decision(Outcome.FAILED)),
        (400, 1, None, Decision(Outcome.FAILED)),
        (501, 1, None, Decision(Outcome.FAILED)),
        (302, 1, None, Decision(Outcome.FAILED)),
        (42, 1, None, Decision(Outcome.FAILED)),
        (503, 1, None, Decision(Outcome.RETRY, after(1))),
        (503, 3, None, Decision(Outcome.RETRY, after(4))),
        (503, 4, None, Decision(Outcome.RETRY, after(8))),
        (503, 5, None, Decision(Outcome.DROPPED)),  # max_attempts made
        (429, 1, "5", Decision(Outcome.RETRY, after(5), retry_after_s=5.0)),
        (429, 1, "0", Decision(Outcome.RETRY, after(1), retry_after_s=0.0)),  # never sooner than backoff
        (429, 1, "600", Decision(Outcome.RETRY, after(30), retry_after_s=600.0)),  # clamped
        (429, 1, "soon", Decision(Outcome.RETRY, after(1))),  # unreadable: ignored
        (429, 5, "5", Decision(Outcome.DROPPED, retry_after_s=5.0)),  # what was asked is still recorded
        (401, 1, "5", Decision(Outcome.FAILED, retry_after_s=5.0)),
    ],
)
def test_decide_by_status(status: int, attempt: int, retry_after: str | None, expected: Decision) -> None:
    assert decide_for(classify_status(status), attempt, retry_after) == expected


def test_decide_honours_an_http_date_retry_after() -> None:
    decision = decide_for(classify_status(503), retry_after="Fri, 01 Oct 2026 00:00:00 GMT")
    asked = (datetime(2026, 10, 1, tzinfo=UTC) - ENDED).total_seconds()
    assert decision.retry_after_s == asked
    assert decision.next_attempt_at == after(min(asked, DECIDE_POLICY.retry_after_max_s))


def test_decide_drops_a_retry_that_would_fall_outside_the_window() -> None:
    late = decide(
        classify_transport("ECONNREFUSED"),
        attempt=1,
        received_at=RECEIVED,
        ended_at=RECEIVED + timedelta(seconds=59.5),
        retry_after=None,
        policy=DECIDE_POLICY,
        rng=random.Random(7),
    )
    assert late == Decision(Outcome.DROPPED)


def test_decide_by_transport_code() -> None:
    assert decide_for(classify_transport("ECONNRESET")).outcome is Outcome.RETRY
    assert decide_for(classify_transport("CERT_HAS_EXPIRED")).outcome is Outcome.FAILED
    assert decide_for(classify_transport("EBADRESPONSE")).outcome is Outcome.FAILED


def test_jitter_comes_from_the_given_generator() -> None:
    jittery = dataclasses.replace(DECIDE_POLICY, jitter=0.5)
    times = [
        decide(
            classify_status(503),
            attempt=1,
            received_at=RECEIVED,
            ended_at=ENDED,
            retry_after=None,
            policy=jittery,
            rng=random.Random(seed),
        ).next_attempt_at
        for seed in (1, 1, 2)
    ]
    assert times[0] == times[1] != times[2]
    assert times[0] == after(1 - 0.5 * random.Random(1).random())


def test_a_decision_is_consistent() -> None:
    with pytest.raises(ValueError, match="exactly when"):
        Decision(Outcome.RETRY)
    with pytest.raises(ValueError, match="exactly when"):
        Decision(Outcome.FAILED, ENDED)
    with pytest.raises(ValueError, match="skip_record"):
        Decision(Outcome.SKIPPED)
