"""The simulated world (`ingest.world.build_world`)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from ingest.world import CATEGORIES, FIXED_TRANSPORT, World, build_world


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(7)


def fields_equal(a: World, b: World) -> dict[str, bool]:
    return {f.name: np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(World)}


def test_same_seed_same_world(world: World) -> None:
    assert all(fields_equal(world, build_world(7)).values())


def test_other_seed_other_world(world: World) -> None:
    same = fields_equal(world, build_world(8))
    assert not same["dest_integration"]
    assert not same["dest_rate"]
    assert not same["int_name"]


def test_integration_names_are_unique_and_descriptive(world: World) -> None:
    names = world.int_name.tolist()
    assert len(names) == 200
    assert len(set(names)) == len(names)
    assert names[0] == "webhook"
    categories = "|".join(re.escape(c[0]) for c in CATEGORIES)
    pattern = re.compile(rf"(?:{categories})-[a-z]+(?:-[2-8])?")
    assert all(pattern.fullmatch(name) for name in names[1:]), names


@pytest.mark.parametrize("seed", [7, 8, 2026])
def test_webhook_has_the_most_destinations(seed: int) -> None:
    world = build_world(seed)
    per_integration = np.bincount(world.dest_integration, minlength=world.int_name.size)
    assert world.int_name[np.argmax(per_integration)] == "webhook"
    assert per_integration[0] > per_integration[1:].max()


def test_destinations_are_consistent(world: World) -> None:
    n = world.n_destinations
    assert n > 1_000
    per_destination = [
        "dest_workspace",
        "dest_source",
        "dest_integration",
        "dest_rate",
        "dest_auth_code",
        "dest_fixed_code",
        "dest_fixed_transport",
    ]
    assert all(getattr(world, name).shape == (n,) for name in per_destination)
    assert len(set(world.dest_id.tolist())) == n
    assert np.all(world.dest_rate > 0)
    assert world.dest_fixed_transport.min() >= 0
    assert world.dest_fixed_transport.max() < len(FIXED_TRANSPORT)
    # A source belongs to one workspace.
    pairs = set(zip(world.dest_source.tolist(), world.dest_workspace.tolist(), strict=True))
    assert len({source for source, _ in pairs}) == len(pairs)


def test_destination_ids_sort_like_their_workspaces(world: World) -> None:
    # The simulator sorts rows by destination index and promises the writer
    # (workspace_id, destination_id) order: that holds only if both orders agree.
    ids = world.dest_id.tolist()
    assert ids == sorted(ids)
    workspaces = world.dest_workspace.tolist()
    assert workspaces == sorted(workspaces)
