"""Time-ordered ids and Segment-style message ids (`ingest.ids`)."""

from __future__ import annotations

import re
import time
import uuid

import numpy as np
import pyarrow.compute as pc
import pytest

from ingest.ids import ID_LENGTH, ids_for, message_ids, new_id, new_ids

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_PATTERN = re.compile(f"[{CROCKFORD}]{{26}}")
MAX_MS = 2**48 - 1
#: Milliseconds at the edges of base32 digits (carries) and of the 48-bit range.
EDGE_MS = [0, 1, 31, 32, 1023, 1024, 2**25 - 1, 2**25, 1_773_100_800_000, 1_773_100_800_001, MAX_MS]


def decode_ms(identifier: str) -> int:
    """Milliseconds in an id's 10-character time prefix."""
    value = 0
    for char in identifier[:10]:
        value = value * 32 + CROCKFORD.index(char)
    return value


def test_id_length_is_26() -> None:
    assert ID_LENGTH == 26


@pytest.mark.parametrize("ms", EDGE_MS)
def test_new_id_is_crockford_base32_with_the_time_prefix(ms: int) -> None:
    identifier = new_id(ms)
    assert ID_PATTERN.fullmatch(identifier)
    assert decode_ms(identifier) == ms


@pytest.mark.parametrize("random_bytes", [bytes(10), b"\xff" * 10, bytes(range(1, 11)), b"\x80" + bytes(9)])
def test_new_id_encodes_every_bit_of_its_time_and_randomness(
    random_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ingest.ids.os.urandom", lambda n: random_bytes[:n])
    identifier = new_id(MAX_MS)
    value = 0
    for char in identifier:
        value = value * 32 + CROCKFORD.index(char)
    assert value == (MAX_MS << 80) | int.from_bytes(random_bytes, "big")


def test_new_id_uses_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    identifier = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= decode_ms(identifier) <= after


def test_new_ids_in_one_millisecond_differ() -> None:
    assert len({new_id(1_000) for _ in range(1_000)}) == 1_000


def test_new_ids_sort_by_time() -> None:
    rng = np.random.default_rng(1)
    ms = np.unique(np.concatenate([EDGE_MS, rng.integers(0, MAX_MS, 2_000)]))
    generated = [new_id(int(m)) for m in ms]  # ms ascending
    assert sorted(generated) == generated


def test_new_ids_are_many_unique_ids_of_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = new_ids(10_000, np.random.default_rng())
    after = time.time_ns() // 1_000_000
    assert len(set(made)) == 10_000
    assert all(ID_PATTERN.fullmatch(identifier) for identifier in made)
    assert {decode_ms(identifier) for identifier in made} <= set(range(before, after + 1))
    assert new_ids(0, np.random.default_rng()) == []


@pytest.mark.parametrize("ms", EDGE_MS)
def test_ids_for_has_new_ids_prefix(ms: int) -> None:
    vectorized = ids_for(np.array([ms]), np.random.default_rng(0))[0].as_py()
    assert ID_PATTERN.fullmatch(vectorized)
    assert vectorized[:10] == new_id(ms)[:10]


def test_ids_for_matches_new_id_prefix_over_many_times() -> None:
    ms = np.random.default_rng(2).integers(0, MAX_MS, 5_000)
    vectorized = ids_for(ms, np.random.default_rng(3)).to_pylist()
    assert [v[:10] for v in vectorized] == [new_id(int(m))[:10] for m in ms]


def test_ids_for_is_unique_over_a_million_draws() -> None:
    ms = np.full(1_000_000, 1_773_100_800_000)
    drawn = ids_for(ms, np.random.default_rng(4))
    assert len(drawn) == 1_000_000
    assert pc.count_distinct(drawn).as_py() == 1_000_000
    assert pc.all(pc.match_substring_regex(drawn, f"^[{CROCKFORD}]{{26}}$")).as_py()


def test_ids_for_random_part_uses_the_whole_alphabet() -> None:
    drawn = ids_for(np.zeros(2_000, dtype=np.int64), np.random.default_rng(5)).to_pylist()
    for position in range(10, ID_LENGTH):
        assert {d[position] for d in drawn} == set(CROCKFORD), position


def test_ids_for_sorts_like_its_times() -> None:
    ms = np.random.default_rng(6).integers(0, MAX_MS, 20_000)
    drawn = np.array(ids_for(ms, np.random.default_rng(7)).to_pylist())
    by_text = np.argsort(drawn, kind="stable")
    assert np.all(np.diff(ms[by_text]) >= 0)


def test_ids_for_is_reproducible_from_the_generator() -> None:
    ms = np.arange(100)
    first = ids_for(ms, np.random.default_rng(8))
    assert first.equals(ids_for(ms, np.random.default_rng(8)))
    assert not first.equals(ids_for(ms, np.random.default_rng(9)))


def test_ids_for_nothing_is_empty() -> None:
    assert len(ids_for(np.array([], dtype=np.int64), np.random.default_rng(0))) == 0


def test_message_ids_are_uuid4_strings() -> None:
    drawn = message_ids(20_000, np.random.default_rng(10)).to_pylist()
    parsed = [uuid.UUID(m) for m in drawn]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [str(u) for u in parsed] == drawn  # canonical: lowercase, hyphenated
    assert len(set(drawn)) == len(drawn)
    assert {m[19] for m in drawn} == set("89ab")  # the two free variant bits are random


def test_message_ids_of_nothing_is_empty() -> None:
    assert len(message_ids(0, np.random.default_rng(0))) == 0


def test_ids_made_one_after_the_other_strictly_increase() -> None:
    # Thousands fall within one millisecond: random bits alone would not keep their order.
    made = [new_id() for _ in range(5_000)]
    assert made == sorted(made) and len(set(made)) == len(made)
