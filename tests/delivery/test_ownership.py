"""Destination ownership: who should own what (pure), one engine alone, a fleet on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from delivery.ownership import Everything, Shares, preferred_owner
from delivery.queue.postgres import PostgresQueue

DESTINATIONS = [f"dest-{i}" for i in range(600)]


def assignment(engines: list[str]) -> dict[str, str]:
    return {d: preferred_owner(d, engines) for d in DESTINATIONS}


def test_every_engine_computes_the_same_owner_whatever_order_it_lists_the_fleet_in() -> None:
    engines = ["host-a-1", "host-b-7", "host-c-3"]
    assert assignment(engines) == assignment(list(reversed(engines)))


def test_destinations_spread_evenly_over_the_engines() -> None:
    counts = Counter(assignment(["e1", "e2", "e3"]).values())
    assert set(counts) == {"e1", "e2", "e3"}
    assert all(150 <= n <= 250 for n in counts.values()), counts  # 200 each on average


def test_when_an_engine_leaves_only_its_destinations_move() -> None:
    before = assignment(["e1", "e2", "e3"])
    after = assignment(["e1", "e3"])
    moved = {d for d in DESTINATIONS if before[d] != after[d]}
    assert moved == {d for d in DESTINATIONS if before[d] == "e2"}


def test_when_an_engine_joins_it_takes_only_from_the_others_share() -> None:
    before = assignment(["e1", "e2"])
    after = assignment(["e1", "e2", "e3"])
    moved = {d for d in DESTINATIONS if before[d] != after[d]}
    assert moved == {d for d in DESTINATIONS if after[d] == "e3"}
    assert 150 <= len(moved) <= 250


def test_one_engine_alone_excludes_nothing() -> None:
    alone = Everything()
    assert alone.excluded() == frozenset()
    asyncio.run(alone.run(asyncio.Event()))
    asyncio.run(alone.leave())


# -- on PostgreSQL: the store, and engines sharing destinations --------------------------------


@pytest.fixture
def shared(postgres_dsn: str) -> Iterator[PostgresQueue]:
    queue = PostgresQueue(postgres_dsn)
    yield queue
    queue.close()


def test_a_destination_has_one_owner_until_its_lease_lapses_or_it_is_given_back(
    shared: PostgresQueue,
) -> None:
    assert shared.acquire("e1", ["d1", "d2"], lease_s=60) == {"d1", "d2"}
    assert shared.acquire("e2", ["d1", "d2", "d3"], lease_s=60) == {"d3"}
    assert shared.acquire("e1", ["d1"], lease_s=60) == {"d1"}  # renewed: still e1's
    shared.release_destinations("e1", ["d2"])
    shared.release_destinations("e2", ["d1"])  # not e2's: nothing happens
    assert shared.acquire("e2", ["d1", "d2"], lease_s=60) == {"d2"}
    assert shared.owners() == {"d1": "e1", "d2": "e2", "d3": "e2"}
    shared.acquire("e1", ["d1"], lease_s=0.2)  # e1 stops renewing (dies)
    time.sleep(0.4)
    assert "d1" not in shared.owners()
    assert shared.acquire("e2", ["d1"], lease_s=60) == {"d1"}


def test_heartbeats_name_the_engines_alive_and_leaving_frees_everything(shared: PostgresQueue) -> None:
    assert shared.heartbeat("e1", lease_s=60) == ["e1"]
    assert shared.heartbeat("e2", lease_s=60) == ["e1", "e2"]
    shared.heartbeat("e3", lease_s=0.2)
    time.sleep(0.4)
    assert shared.heartbeat("e1", lease_s=60) == ["e1", "e2"]  # e3 stopped beating
    shared.acquire("e2", ["d1", "d2"], lease_s=60)
    shared.leave("e2")
    assert shared.heartbeat("e1", lease_s=60) == ["e1"]
    assert shared.owners() == {}


def test_engines_split_the_destinations_and_the_survivor_takes_the_dead_ones_share(
    shared: PostgresQueue, postgres_dsn: str
) -> None:
    destinations = [f"d{i}" for i in range(40)]
    other = PostgresQueue(postgres_dsn)
    # Leases long enough for a refresh on a loaded machine (0.6 s lapsed between two refreshes
    # there, under a parallel suite), short enough to wait out below.
    lease_s = 3.0
    try:
        first = Shares(shared, "engine-a", destinations, lease_s=lease_s, busy=lambda d: False)
        second = Shares(other, "engine-b", destinations, lease_s=lease_s, busy=lambda d: False)
        first.refresh()
        assert first.owned == frozenset(destinations)  # alone: everything
        second.refresh()  # joins: wants its share, held by the first until it gives it back
        assert second.owned == frozenset()
        theirs = {d for d in destinations if preferred_owner(d, ["engine-a", "engine-b"]) == "engine-b"}
        first.refresh()  # sees the second: stops claiming its share at once, still holding it...
        assert first.owned == frozenset(destinations) and first.excluded() == theirs
        first.refresh()  # ...and gives it back a round later, nothing of it being in flight
        second.refresh()
        assert second.owned == theirs
        assert first.owned | second.owned == frozenset(destinations)
        assert not first.owned & second.owned
        assert 10 <= len(second.owned) <= 30
        assert first.excluded() == second.owned and second.excluded() == first.owned
        # The first stops renewing (as if killed): by its own clock it stops claiming first...
        time.sleep(lease_s + 0.1)
        assert first.owned == frozenset() and first.excluded() == frozenset(destinations)
        # ...then its leases lapse in the database, and the second takes everything.
        second.refresh()
        assert second.owned == frozenset(destinations)
    finally:
        other.close()


def test_a_destination_with_requests_in_flight_is_kept_until_they_end(shared: PostgresQueue) -> None:
    destinations = [f"d{i}" for i in range(40)]
    in_flight = set(destinations)
    first = Shares(shared, "engine-a", destinations, lease_s=30, busy=lambda d: d in in_flight)
    first.refresh()
    shared.heartbeat("engine-b", lease_s=30)
    theirs = {d for d in destinations if preferred_owner(d, ["engine-a", "engine-b"]) == "engine-b"}
    first.refresh()
    first.refresh()
    assert first.owned == frozenset(destinations)  # all busy: nothing given back yet...
    assert first.excluded() == theirs  # ...but no new job of theirs is claimed here
    in_flight.clear()
    first.refresh()
    assert first.owned == frozenset(destinations) - theirs
    assert shared.acquire("engine-b", theirs, lease_s=30) == theirs
