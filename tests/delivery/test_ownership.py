"""Destination ownership: who should own what (pure), and one engine alone owning everything."""

from __future__ import annotations

import asyncio
from collections import Counter

from delivery.ownership import Everything, preferred_owner

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
