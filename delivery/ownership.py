"""Which destinations this engine sends to: all of them alone, its share of them in a fleet.

Token buckets (`delivery.metering`), batches (`delivery.batching`) and the
auth watch (`delivery.alerts`) hold per-destination state in memory, and
each is exact only if one process sees every request to the destination.
So in a fleet each destination has one owner at a time (docs/fleet.md):

- every engine heartbeats a row of its own (`OwnershipStore.heartbeat`),
  which also tells it which engines are alive;
- every engine ranks the live engines for each destination by rendezvous
  hashing (`preferred_owner`), so all agree on who should own what without
  talking, and when an engine joins or leaves only its share moves;
- an engine takes a destination it should own once it is free
  (`OwnershipStore.acquire`: released, or its lease lapsed by the
  database's clock), renews what it holds each round, and gives back one
  it should no longer own once none of that destination's requests is in
  flight, so two engines never send to one destination at once.

An engine that cannot renew (the database unreachable) stops claiming for
every destination when its leases would have lapsed by its own monotonic
clock, before another engine may take them. An engine that dies stops
renewing; its destinations pass to the others within `lease_s`.

With one engine (the SQLite queue), `Everything` owns every destination
and none of this runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Protocol

log = logging.getLogger(__name__)

#: Rounds (heartbeat, acquire, renew, release) per lease: a round can fail twice before a lease lapses.
ROUNDS_PER_LEASE = 3


class OwnershipStore(Protocol):
    """Where a fleet keeps its engines' heartbeats and destinations' owners. Every method blocks."""

    def heartbeat(self, engine: str, lease_s: float) -> list[str]:
        """Renew `engine`'s liveness for `lease_s`; the engines alive now (itself included)."""
        ...

    def acquire(self, engine: str, destinations: Collection[str], lease_s: float) -> set[str]:
        """Take or renew, for `lease_s`, each of `destinations` that is free or `engine`'s; those held now."""
        ...

    def release_destinations(self, engine: str, destinations: Collection[str]) -> None:
        """Give back `destinations`, if `engine` holds them."""
        ...

    def leave(self, engine: str) -> None:
        """At a clean stop: give back every destination and the heartbeat, so others take over at once."""
        ...


def preferred_owner(destination: str, engines: Iterable[str]) -> str:
    """The engine that should own `destination`: rendezvous (highest random weight) hashing."""
    return max(engines, key=lambda engine: _weight(engine, destination))


def _weight(engine: str, destination: str) -> bytes:
    return hashlib.blake2b(f"{engine}\0{destination}".encode(), digest_size=8).digest()


class Everything:
    """One engine alone: it owns every destination."""

    def excluded(self) -> frozenset[str]:
        """Destinations this engine must not claim for: none."""
        return frozenset()

    async def run(self, stop: asyncio.Event) -> None:
        """Nothing to keep up."""

    async def leave(self) -> None:
        """Nothing to give back."""


class Shares:
    """This engine's share of a fleet's destinations; see the module docstring."""

    def __init__(
        self,
        store: OwnershipStore,
        engine: str,
        destinations: Collection[str],
        *,
        lease_s: float,
        busy: Callable[[str], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`busy(d)`: whether requests to `d` are in flight here (one is given back only when not)."""
        self._store = store
        self._engine = engine
        self._destinations = frozenset(destinations)
        self._lease_s = lease_s
        self._busy = busy
        self._clock = clock
        self._owned: frozenset[str] = frozenset()
        #: Those this engine should own, as of the last round (everything until the first).
        self._wanted: frozenset[str] = self._destinations
        #: Held but no longer wanted since the round before: given back once not busy.
        self._draining: frozenset[str] = frozenset()
        #: Until when (by `clock`) what `_owned` holds is surely still ours.
        self._valid_until = float("-inf")

    def reconfigure(self, destinations: Collection[str]) -> None:
        """Share out `destinations` from the next round on (docs/live-config.md).

        A new one is excluded from claims until a round takes it; one no longer listed is
        left to lapse like one that moved.
        """
        self._destinations = frozenset(destinations)

    @property
    def owned(self) -> frozenset[str]:
        """The destinations this engine holds now (empty once its leases may have lapsed)."""
        return self._owned if self._clock() < self._valid_until else frozenset()

    def excluded(self) -> frozenset[str]:
        """Destinations this engine must not claim for: all but those it holds and should hold.

        One that moved to another engine is excluded at once, and held (renewed)
        until its requests here are over; only then is it given back.
        """
        return self._destinations - (self.owned & self._wanted)

    def refresh(self) -> None:
        """One round: heartbeat, give back what is no longer ours, take and renew what is. Blocks."""
        started = self._clock()
        engines = self._store.heartbeat(self._engine, self._lease_s)
        if self._engine not in engines:
            engines.append(self._engine)
        wanted = frozenset(d for d in self._destinations if preferred_owner(d, engines) == self._engine)
        self._wanted = wanted  # from now on claims leave out those that moved
        # One that moved is given back a round after it was first left out of claims (so a claim
        # that started before cannot still be bringing jobs of it), and once none is in flight.
        moved = self._owned - wanted
        leaving = frozenset(d for d in moved & self._draining if not self._busy(d))
        self._draining = moved
        if leaving:
            # Ours no more from here, even if what follows fails: the others may take them now.
            self._owned -= leaving
            self._store.release_destinations(self._engine, leaving)
        keep = wanted | self._owned
        held = frozenset(self._store.acquire(self._engine, keep, self._lease_s))
        if held != self._owned:
            log.info(
                "owning %d of %d destinations (%d engines alive): +%d -%d",
                len(held),
                len(self._destinations),
                len(engines),
                len(held - self._owned),
                len(self._owned - held),
            )
        self._owned = held
        # Leases were renewed after `started`: by our clock they last at least until then + lease_s.
        self._valid_until = started + self._lease_s

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every third of a lease until `stop`; a failed round is logged and tried again."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:
                log.exception("could not renew destination ownership; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._lease_s / ROUNDS_PER_LEASE)

    async def leave(self) -> None:
        """Give everything back (after the worker stopped), so the others take over at once."""
        self._owned, self._valid_until = frozenset(), float("-inf")
        try:
            await asyncio.to_thread(self._store.leave, self._engine)
        except Exception:
            log.exception("could not give back destination ownership; it lapses within %.0f s", self._lease_s)
