"""The attempt record as the queue's outbox stores it: checked, then one line of JSON.

Timestamps are stored as epoch microseconds. `check_record` runs in the
worker's settle transaction, where it costs microseconds: a bad record found
later by the exporter would block the whole outbox. Encoding and decoding use
orjson, a quarter of the json module's time in the settle thread, which holds
the GIL the event loop needs; a record with a non-finite float (none is
expected) is written and read the `json` way, since orjson writes NaN as null.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import pyarrow as pa

from ingest.schema import COLUMNS, EVENT_TYPE, SchemaError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_EVENT_KEYS = frozenset(f.name for f in EVENT_TYPE)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_aware_datetime(value: Any) -> bool:
    return isinstance(value, dt.datetime) and value.utcoffset() is not None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _is_events(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, Mapping)
        and item.keys() <= _EVENT_KEYS
        and all(v is None or isinstance(v, str) for v in item.values())
        for item in value
    )


def _integer_check(bits: int) -> Callable[[Any], bool]:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def check(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    return check


def _check_for(arrow_type: pa.DataType) -> Callable[[Any], bool]:
    if pa.types.is_string(arrow_type):
        return _is_text
    if pa.types.is_integer(arrow_type):
        return _integer_check(arrow_type.bit_width)
    if pa.types.is_floating(arrow_type):
        return _is_number
    if pa.types.is_boolean(arrow_type):
        return _is_boolean
    if pa.types.is_timestamp(arrow_type):
        return _is_aware_datetime
    if arrow_type.equals(pa.list_(EVENT_TYPE)):
        return _is_events
    raise TypeError(f"no outbox check for Arrow type {arrow_type}")  # a new column type: teach it here


def _plain_type(arrow_type: pa.DataType) -> type:
    """The Python type whose every value the column's check passes: no need to call the check.

    A type no value has where the check looks further (integers' range, a datetime's zone, events).
    """
    if pa.types.is_string(arrow_type):
        return str
    if pa.types.is_floating(arrow_type):
        return float
    if pa.types.is_boolean(arrow_type):
        return bool
    return type(None)  # never a checked value's type: None is handled before


#: Per column: (name, nullable, plain type, value check). Checking here, in the worker's settle
#: transaction, costs microseconds; a bad record found later by the exporter would block the
#: whole outbox. The plain type spares most columns a call: this runs once per request, in the
#: settle thread, holding the GIL the event loop needs.
_CHECKS = tuple((c.name, c.nullable, _plain_type(c.arrow_type), _check_for(c.arrow_type)) for c in COLUMNS)
_NAMES = frozenset(c.name for c in COLUMNS)
_TIMESTAMPS = tuple(c.name for c in COLUMNS if pa.types.is_timestamp(c.arrow_type))
#: The only columns a float can be in, once checked: where NaN and infinities are looked for.
_FLOATS = tuple(c.name for c in COLUMNS if pa.types.is_floating(c.arrow_type))


def check_record(record: Mapping[str, Any]) -> None:
    """Raise `SchemaError` unless `record` fits the attempt-log contract (a missing key is NULL)."""
    if not record.keys() <= _NAMES:
        unknown = record.keys() - _NAMES
        raise SchemaError(f"unknown attempt column(s): {', '.join(sorted(unknown))}")
    for name, nullable, plain, check in _CHECKS:
        value = record.get(name)
        if value is None:
            if not nullable:
                raise SchemaError(f"attempt column {name!r} is required")
        elif type(value) is not plain and not check(value):
            raise SchemaError(f"attempt column {name!r} cannot hold {value!r}")


def from_stored(stored: Mapping[str, Any]) -> dict[str, Any]:
    """An attempt record from its outbox form: epoch microseconds back to UTC datetimes."""
    row = dict(stored)
    for name in _TIMESTAMPS:
        if row.get(name) is not None:
            row[name] = _EPOCH + dt.timedelta(microseconds=row[name])
    return row


def encode_record(record: Mapping[str, Any]) -> str:
    """The outbox form of an attempt record: checked, then JSON with timestamps in epoch µs."""
    check_record(record)
    stored = dict(record)
    for name in _TIMESTAMPS:
        value = stored.get(name)
        if value is not None:
            stored[name] = (value - _EPOCH) // _MICROSECOND
    if any(isinstance(value := stored.get(name), float) and not math.isfinite(value) for name in _FLOATS):
        return json.dumps(stored, ensure_ascii=False, separators=(",", ":"))
    return orjson.dumps(stored).decode()


def decode_record(text: str | bytes) -> dict[str, Any]:
    """The attempt record `encode_record` stored, timestamps as UTC datetimes."""
    return from_stored(_loads(text))


def _loads(text: str | bytes) -> dict[str, Any]:
    """A record's outbox form, as stored (times in epoch microseconds)."""
    try:
        row: dict[str, Any] = orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN or Infinity, which only `json` writes and reads
        row = json.loads(text)
    return row
