"""Metering: the token bucket's arithmetic (pure, exact), and the worker against the partner simulator.

The socket tests count what the simulated partner received (`Stats`), never
how long anything took.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from delivery.config import Config, Destination, parse_config
from delivery.metering import Meter, Metering, MeterPolicy
from delivery.queue import Event
from delivery.queue.sqlite import SqliteQueue
from delivery.sender import Sender
from delivery.worker import Worker
from deliverydash.partner_simulator.config import PartnerSpec
from deliverydash.partner_simulator.profiles import RateLimited
from deliverydash.partner_simulator.servers import PartnerSet

# -- the arithmetic --------------------------------------------------------------------------------


def test_a_new_meter_is_full_and_refills_at_the_documented_rate() -> None:
    meter = Meter(10, 5, now=100.0)
    assert (meter.rate, meter.available(100.0)) == (10.0, 5)
    meter.take(100.0, 5)
    assert meter.available(100.0) == 0
    assert meter.wait_s(100.0) == pytest.approx(0.1)
    assert meter.tokens(100.25) == pytest.approx(2.5)
    assert meter.available(100.25) == 2
    assert meter.tokens(200.0) == 5.0  # never above the burst


def test_requests_claimed_before_a_cut_leave_the_bucket_in_debt() -> None:
    meter = Meter(10, 5, now=0.0)
    meter.observe(1.0, sent_at=1.0, status=429, retry_after_s=None)  # 5/s, empty
    meter.take(1.0, 2)
    assert meter.tokens(1.0) == -2.0
    assert meter.wait_s(1.0) == pytest.approx(0.6)  # 3 tokens at 5/s
    assert meter.available(1.6) == 1


@pytest.mark.parametrize(
    ("cuts", "rate"),
    [(1, 5.0), (2, 2.5), (3, 1.25), (4, 0.625), (5, 0.5), (9, 0.5)],  # floor: 5 % of 10/s
)
def test_each_429_halves_the_rate_down_to_the_floor(cuts: int, rate: float) -> None:
    meter = Meter(10, 10, now=0.0)
    for n in range(cuts):
        meter.observe(float(n + 1), sent_at=float(n + 1), status=429, retry_after_s=None)
    assert meter.rate == pytest.approx(rate)
    assert meter.tokens(float(cuts)) == 0.0  # the bucket is emptied at each cut


def test_429s_to_requests_already_in_flight_cut_once() -> None:
    meter = Meter(10, 10, now=0.0)
    for sent_at in (1.0, 1.01, 1.02, 1.03):  # four requests in flight together
        meter.observe(1.1, sent_at=sent_at, status=429, retry_after_s=None)
    assert meter.rate == 5.0
    meter.observe(1.3, sent_at=1.05, status=429, retry_after_s=None)  # sent before the cut at 1.1
    assert meter.rate == 5.0
    meter.observe(1.5, sent_at=1.2, status=429, retry_after_s=None)  # sent after it: too fast still
    assert meter.rate == 2.5


def test_successes_recover_five_percent_of_the_documented_rate_per_second() -> None:
    meter = Meter(10, 10, now=0.0)
    meter.observe(10.0, sent_at=10.0, status=429, retry_after_s=None)
    assert meter.rate == 5.0
    meter.observe(12.0, sent_at=11.9, status=200, retry_after_s=None)  # 2 s after the cut: +1/s
    assert meter.rate == pytest.approx(6.0)
    meter.observe(12.5, sent_at=12.4, status=204, retry_after_s=None)
    assert meter.rate == pytest.approx(6.25)
    meter.observe(100.0, sent_at=99.9, status=200, retry_after_s=None)
    assert meter.rate == 10.0  # never above the documented rate


def test_tokens_accrue_at_the_rate_in_force_when_they_accrued() -> None:
    meter = Meter(10, 10, now=0.0)
    meter.observe(0.0, sent_at=0.0, status=429, retry_after_s=None)  # 5/s from 0, bucket empty
    assert meter.tokens(0.4) == pytest.approx(2.0)
    meter.observe(1.0, sent_at=0.9, status=200, retry_after_s=None)  # 5/s until 1.0, then 5.5/s
    assert meter.tokens(1.0) == pytest.approx(5.0)
    assert meter.tokens(2.0) == pytest.approx(10.0)


def test_a_retry_after_holds_the_meter_and_recovery_counts_from_its_end() -> None:
    meter = Meter(10, 10, now=0.0)
    meter.observe(1.0, sent_at=0.9, status=429, retry_after_s=3.0)
    assert meter.held_until == 4.0
    assert [meter.available(t) for t in (1.0, 2.0, 3.99)] == [0, 0, 0]
    # No token accrues during the hold; from its end at 5/s, the first comes 0.2 s later.
    assert meter.wait_s(2.0) == pytest.approx(2.2)
    assert meter.available(4.1) == 0
    assert meter.available(4.2) == 1
    # Recovery counts from the end of the hold, not from the 429.
    meter.observe(5.0, sent_at=4.9, status=200, retry_after_s=None)
    assert meter.rate == pytest.approx(5.5)


def test_a_retry_after_on_another_failure_holds_without_cutting() -> None:
    meter = Meter(10, 10, now=0.0)
    meter.observe(1.0, sent_at=0.9, status=503, retry_after_s=2.0)
    assert (meter.rate, meter.held_until, meter.available(2.9), meter.available(3.0)) == (10.0, 3.0, 0, 10)
    meter.observe(4.0, sent_at=3.9, status=None, retry_after_s=None)  # a reset: nothing learnt
    assert (meter.rate, meter.held_until) == (10.0, 3.0)


def test_a_later_shorter_retry_after_does_not_shorten_a_hold() -> None:
    meter = Meter(10, 10, now=0.0)
    meter.observe(1.0, sent_at=0.5, status=429, retry_after_s=10.0)
    meter.observe(2.0, sent_at=0.6, status=429, retry_after_s=1.0)
    assert meter.held_until == 11.0


def test_the_policy_can_be_tuned_and_is_checked() -> None:
    meter = Meter(100, 10, now=0.0, policy=MeterPolicy(backoff_factor=0.8, floor_fraction=0.5))
    meter.observe(1.0, sent_at=1.0, status=429, retry_after_s=None)
    assert meter.rate == 80.0
    for n in range(2, 10):
        meter.observe(float(n), sent_at=float(n), status=429, retry_after_s=None)
    assert meter.rate == 50.0
    with pytest.raises(ValueError):
        MeterPolicy(backoff_factor=1.0)
    with pytest.raises(ValueError):
        Meter(0, 1, now=0.0)


def test_only_destinations_with_a_rate_limit_are_metered_and_retry_after_is_clamped() -> None:
    destinations = [
        Destination("hook", "web", "webhook", "https://a.example"),
        Destination(
            "crm", "web", "crm-records", "https://b.example", rate_limit_per_s=10, rate_limit_burst=9
        ),
        Destination("own", "web", "webhook", "https://c.example", rate_limit_per_s=2.5),
    ]
    metering = Metering(destinations, now=0.0, retry_after_max_s=5)
    assert metering.get("hook") is None
    crm, own = metering.get("crm"), metering.get("own")
    assert crm is not None and own is not None
    assert (crm.documented, crm.burst, own.documented, own.burst) == (10.0, 9, 2.5, 3)
    metering.observe("crm", 1.0, sent_at=1.0, status=429, retry_after_s=3600)
    assert crm.held_until == 6.0
    metering.observe("hook", 1.0, sent_at=1.0, status=429, retry_after_s=3600)  # unmetered: ignored


# -- the worker against the partner simulator -------------------------------------------------------

PARTNER = "limited"


def config_for(tmp_path: Path, url: str, *, metering: bool, rate: float, burst: int, **engine: Any) -> Config:
    return parse_config(
        {
            "engine": {
                "data_dir": str(tmp_path),
                "allow_private_targets": True,
                "backoff_base_s": 0.05,
                "backoff_max_s": 0.2,
                "backoff_jitter": 0,
                "request_timeout_s": 5,
                "lease_s": 10,
                "shutdown_grace_s": 2,
                "concurrency": 8,
                "per_destination_concurrency": 4,
                "metering": metering,
                **engine,
            },
            "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_test_web"}],
            "destinations": [
                {
                    "id": PARTNER,
                    "source": "web",
                    "integration": "webhook",
                    "url": url,
                    "rate_limit_per_s": rate,
                    "rate_limit_burst": burst,
                }
            ],
        }
    )


def enqueue(queue: SqliteQueue, n: int) -> None:
    now = time.time()
    queue.enqueue(
        [
            Event(f"m{i}", "acme", "web", "track", "Paid", json.dumps({"messageId": f"m{i}"}).encode(), now)
            for i in range(n)
        ],
        {"web": [PARTNER]},
    )


async def run_until(config: Config, queue: SqliteQueue, done: Any, *, then_s: float = 0.0) -> None:
    """Run a worker until `done()` holds (8 s at most), then `then_s` more, then stop it."""
    async with Sender(request_timeout_s=5, limit=100, limit_per_host=100) as sender:
        stop = asyncio.Event()
        worker = Worker(config, queue, sender, owner="test")
        task = asyncio.create_task(worker.run(stop))
        deadline = time.monotonic() + 8
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(then_s)
        stop.set()
        await task


def unfinished(queue: SqliteQueue) -> int:
    return sum(queue.depth().by_state.values())


@pytest.mark.parametrize("metering", [True, False])
def test_metering_keeps_429s_near_zero_where_unmetered_sending_gets_many(
    tmp_path: Path, metering: bool
) -> None:
    """A partner taking 40 requests/s (burst 5) is sent 60 events, metered at its limit or not at all."""
    queue = SqliteQueue(tmp_path)

    async def scenario() -> tuple[int, int, int]:
        async with PartnerSet([PartnerSpec(PARTNER, RateLimited(rate=40, burst=5))]) as partners:
            config = config_for(tmp_path, partners.url(PARTNER), metering=metering, rate=40, burst=5)
            enqueue(queue, 60)
            stats = partners.stats(PARTNER)
            # Metered: until every event is delivered. Unmetered: until 60 requests were made.
            await run_until(
                config, queue, lambda: unfinished(queue) == 0 if metering else stats.requests >= 60
            )
            return stats.requests, stats.statuses[200], stats.statuses[429]

    try:
        requests, ok, limited = asyncio.run(scenario())
    finally:
        queue.close()
    print(f"metering={metering}: {requests} requests, {ok} answered 200, {limited} answered 429")
    if metering:
        assert ok == 60
        assert limited <= 3  # near zero: the partner's bucket and ours tick apart by a few ms
    else:
        assert limited >= requests // 2
        assert requests >= 60


@pytest.mark.parametrize("metering", [True, False])
def test_a_retry_after_holds_the_whole_destination(tmp_path: Path, metering: bool) -> None:
    """The partner's clock stands still: 2 requests pass, then every one is a 429 asking for 30 s."""
    queue = SqliteQueue(tmp_path)

    async def scenario() -> tuple[int, int]:
        spec = PartnerSpec(PARTNER, RateLimited(rate=1 / 30, burst=2))
        async with PartnerSet([spec], clock=lambda: 0.0) as partners:
            config = config_for(
                tmp_path,
                partners.url(PARTNER),
                metering=metering,
                rate=1000,  # the meter's own pace is never what stops it here
                burst=100,
                per_destination_concurrency=2,
                backoff_base_s=5,
                backoff_max_s=5,
            )
            enqueue(queue, 10)
            stats = partners.stats(PARTNER)
            # Then 0.5 s (five poll intervals) in which a held destination gets nothing more.
            await run_until(config, queue, lambda: stats.statuses[429] >= 1, then_s=0.5)
            return stats.statuses[200], stats.statuses[429]

    try:
        ok, limited = asyncio.run(scenario())
        pending = unfinished(queue)
    finally:
        queue.close()
    assert ok == 2
    if metering:
        # Only the requests already in flight when the first 429 came back (2 slots) were answered 429.
        assert limited <= 2
        assert pending == 8
    else:
        assert limited == 8  # each job found out for itself
