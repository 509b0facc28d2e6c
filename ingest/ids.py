"""Time-ordered unique ids (ULID layout) and Segment-style message ids.

An id is 26 Crockford base32 characters: 10 for the millisecond timestamp,
16 for 80 random bits. Sorting ids as text sorts them by time, which keeps
them cheap to store next to each other and easy to page through.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pyarrow as pa

_ALPHABET = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ALPHABET_NP = np.frombuffer(_ALPHABET, dtype=np.uint8)
_HEX_NP = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
ID_LENGTH = 26


def new_id(now_ms: int | None = None) -> str:
    """One time-ordered id for the current (or given) millisecond."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = bytearray(ID_LENGTH)
    for i in range(ID_LENGTH - 1, -1, -1):
        chars[i] = _ALPHABET[value & 31]
        value >>= 5
    return chars.decode("ascii")


def _fixed_width_strings(chars: np.ndarray) -> pa.StringArray:
    """Wrap an (n, width) uint8 matrix of ASCII as an Arrow string array, no copy per row."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(chars).reshape(-1)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def ids_for(ms: np.ndarray, rng: np.random.Generator) -> pa.StringArray:
    """Vectorized ids for an array of millisecond timestamps."""
    ms = np.asarray(ms, dtype=np.int64)
    n = ms.size
    chars = np.empty((n, ID_LENGTH), dtype=np.uint8)
    # 48-bit timestamp, 5 bits per character, most significant first.
    for i in range(10):
        chars[:, i] = _ALPHABET_NP[(ms >> (5 * (9 - i))) & 31]
    chars[:, 10:] = _ALPHABET_NP[rng.integers(0, 32, size=(n, 16), dtype=np.uint8)]
    return _fixed_width_strings(chars)


def message_ids(n: int, rng: np.random.Generator) -> pa.StringArray:
    """Vectorized uuid4 strings, the messageId real Segment clients send."""
    nibbles = rng.integers(0, 16, size=(n, 32), dtype=np.uint8)
    nibbles[:, 12] = 4  # version
    nibbles[:, 16] = 8 + (nibbles[:, 16] & 3)  # RFC 4122 variant
    chars = np.empty((n, 36), dtype=np.uint8)
    hex_chars = _HEX_NP[nibbles]
    chars[:, 0:8] = hex_chars[:, 0:8]
    chars[:, 9:13] = hex_chars[:, 8:12]
    chars[:, 14:18] = hex_chars[:, 12:16]
    chars[:, 19:23] = hex_chars[:, 16:20]
    chars[:, 24:36] = hex_chars[:, 20:32]
    chars[:, [8, 13, 18, 23]] = ord("-")
    return _fixed_width_strings(chars)
