"""How the SQL sandbox and its worker process talk: length-prefixed frames over pipes.

A frame is an 8-byte big-endian length, then that many bytes. A message is
one frame of JSON; a result is a message followed by one frame of Arrow
IPC stream bytes. The parent reads with a deadline (`read_frame`), so a
worker that stops answering is noticed, and killed, on time.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

_HEADER = struct.Struct(">Q")
_CHUNK = 1 << 20
#: No frame is larger: a result is capped well below (`Limits.max_bytes`).
MAX_FRAME = 1 << 32


class Timeout(Exception):
    """The deadline passed before the frame was complete."""


def write_frame(fd: int, payload: bytes | memoryview) -> None:
    """Write one frame to `fd` (blocking)."""
    _write_all(fd, _HEADER.pack(len(payload)))
    _write_all(fd, payload)


def write_message(fd: int, message: dict[str, Any]) -> None:
    """Write one JSON message to `fd`."""
    write_frame(fd, json.dumps(message).encode())


def read_frame(fd: int, deadline: float | None = None) -> bytes | None:
    """The next frame on `fd`: None at end of file, `Timeout` once `time.monotonic()` passes `deadline`."""
    header = _read_exactly(fd, _HEADER.size, deadline)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes: not from a sandbox worker")
    body = _read_exactly(fd, size, deadline)
    if body is None:
        raise EOFError("the pipe closed in the middle of a frame")
    return body


def read_message(fd: int, deadline: float | None = None) -> dict[str, Any] | None:
    """The next JSON message on `fd`, or None at end of file."""
    frame = read_frame(fd, deadline)
    if frame is None:
        return None
    message: dict[str, Any] = json.loads(frame)
    return message


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes | None:
    buffer = bytearray()
    while len(buffer) < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise Timeout
        chunk = os.read(fd, min(size - len(buffer), _CHUNK))
        if not chunk:
            if buffer:
                raise EOFError("the pipe closed in the middle of a frame")
            return None
        buffer += chunk
    return bytes(buffer)
