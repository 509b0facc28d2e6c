"""The attempt-log contract: one row per HTTP request to a destination.

Defined once here; the writer, the simulator, the engine, the queries and
`docs/attempt-log.md` all follow it. Column names and meanings are fixed
because users write SQL against them; new columns may be added at the end.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

#: Times are stored to the millisecond, the precision of Segment's own
#: timestamps; finer digits cost 1.2 bytes a column per record on disk
#: (docs/benchmarks.md). Writers may hand over finer times: `conform` truncates.
UTC_MILLIS = pa.timestamp("ms", tz="UTC")
#: What writers hand over: Python datetimes and the simulator's clocks.
UTC_MICROS = pa.timestamp("us", tz="UTC")

EVENT_TYPE = pa.struct(
    [
        pa.field("message_id", pa.string()),
        pa.field("type", pa.string()),
        pa.field("name", pa.string()),
    ]
)


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the attempt log."""

    name: str
    """Column name, as users write it in SQL."""
    arrow_type: pa.DataType
    """Physical type in Parquet (via Arrow)."""
    sql_type: str
    """The type DuckDB shows for it."""
    nullable: bool
    """Whether NULL is a legal value."""
    doc: str
    """What the value means."""
    decimals: int | None = None
    """Decimal places a float keeps; `conform` rounds to it."""
    omissible: bool = False
    """A writer may leave it out: `conform` adds it as NULLs (columns added after writers existed)."""


COLUMNS: tuple[Column, ...] = (
    Column(
        "attempt_id", pa.string(), "VARCHAR", False, "unique, time-ordered id of this record (26-char ULID)"
    ),
    Column(
        "job_id",
        pa.string(),
        "VARCHAR",
        False,
        "the delivery job: one or more events bound for one destination, stable across its retries",
    ),
    Column(
        "attempt",
        pa.int16(),
        "SMALLINT",
        False,
        "1 = first request of the job, 2 = first retry, ...; 0 = no request was made",
    ),
    Column("workspace_id", pa.string(), "VARCHAR", False, "the customer that owns the source"),
    Column("source_id", pa.string(), "VARCHAR", False, "the source the events came in through"),
    Column("destination_id", pa.string(), "VARCHAR", False, "the configured destination instance"),
    Column("integration", pa.string(), "VARCHAR", False, "the destination's type / partner (`webhook`, ...)"),
    Column("event_count", pa.int32(), "INTEGER", False, "events carried by this request"),
    Column(
        "events",
        pa.list_(EVENT_TYPE),
        'STRUCT(message_id VARCHAR, "type" VARCHAR, "name" VARCHAR)[]',
        False,
        "the events carried: Segment messageId, call type, and event name (track) or NULL",
    ),
    Column(
        "received_at",
        UTC_MILLIS,
        "TIMESTAMP WITH TIME ZONE",
        False,
        "earliest time the tracking API accepted one of the job's events",
    ),
    Column(
        "started_at",
        UTC_MILLIS,
        "TIMESTAMP WITH TIME ZONE",
        False,
        "when this request started (for attempt 0: when the job was settled)",
    ),
    Column(
        "duration_ms",
        pa.float32(),
        "FLOAT",
        True,
        "request latency in milliseconds, to 0.1 ms; NULL when no request was made",
        # A tenth of a millisecond is finer than any percentile a user reads;
        # the digits below it are clock noise that cost 1.5 bytes a record.
        decimals=1,
    ),
    Column(
        "status_code",
        pa.int16(),
        "SMALLINT",
        True,
        "HTTP status as received, nonstandard ones included; NULL when there was no response",
    ),
    Column(
        "error_class",
        pa.string(),
        "VARCHAR",
        False,
        "taxonomy leaf: none, auth, validation, client, rate_limit, server, timeout, "
        "network, tls, nonstandard, redirect, precheck, disabled",
    ),
    Column(
        "error_code",
        pa.string(),
        "VARCHAR",
        True,
        "the most specific code: `200`, `401`, `429`, `ECONNRESET`, `CERT_HAS_EXPIRED`, ...",
    ),
    Column("retryable", pa.bool_(), "BOOLEAN", False, "what the classification said"),
    Column(
        "outcome",
        pa.string(),
        "VARCHAR",
        False,
        "delivered, retry (another attempt is scheduled), failed (terminal), "
        "dropped (retryable, but the window or attempts ran out), skipped (no request made)",
    ),
    Column(
        "retry_after_s",
        pa.float32(),
        "FLOAT",
        True,
        "Retry-After the destination asked for, in seconds, if any",
    ),
    Column(
        "next_attempt_at",
        UTC_MILLIS,
        "TIMESTAMP WITH TIME ZONE",
        True,
        "when the next attempt is scheduled (outcome `retry` only)",
    ),
    Column("request_bytes", pa.int32(), "INTEGER", True, "body bytes sent; NULL when nothing was sent"),
    Column(
        "response_body",
        pa.string(),
        "VARCHAR",
        True,
        "first 2 KiB of the body of a non-2xx response, secrets redacted; NULL otherwise",
    ),
    Column("error_message", pa.string(), "VARCHAR", True, "transport error text when there was no response"),
    Column(
        "first_error_class",
        pa.string(),
        "VARCHAR",
        True,
        "`error_class` of the job's first request (attempt 1), on every record of the job; "
        "NULL on attempt 0 (no request was made)",
    ),
    Column(
        "replay_of",
        pa.string(),
        "VARCHAR",
        True,
        "the job this job replays (`deliverydash replay`): its events ended undelivered there; "
        "NULL for the jobs of events as received",
        omissible=True,
    ),
)

ATTEMPT_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in COLUMNS])
COLUMN_NAMES = tuple(c.name for c in COLUMNS)
#: What `rows_to_table` parses rows with: times as fine as Python's datetimes.
_ROWS_SCHEMA = pa.schema(
    [f.with_type(UTC_MICROS) if pa.types.is_timestamp(f.type) else f for f in ATTEMPT_SCHEMA]
)

#: Bytes of a response body kept in the log.
RESPONSE_BODY_LIMIT = 2048


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table of `schema` with no rows.

    `pa.Schema.empty_table` imports pandas (half a second) for a reader that
    otherwise never needs it, such as `deliverydash report`.
    """
    return pa.Table.from_arrays([pa.nulls(0, field.type) for field in schema], schema=schema)


class SchemaError(ValueError):
    """Data handed to the attempt log does not match the contract."""


def _is_dictionary_of(data_type: pa.DataType, value_type: pa.DataType) -> bool:
    return pa.types.is_dictionary(data_type) and data_type.value_type == value_type


def _stored(values: pa.ChunkedArray, column: Column) -> pa.ChunkedArray:
    """`values` cast to the column's type, at the precision the log keeps."""
    if pa.types.is_timestamp(values.type) and pa.types.is_timestamp(column.arrow_type):
        # Truncating a finer clock is the point, not a loss to refuse.
        return values.cast(column.arrow_type, safe=False)
    if column.decimals is not None:
        # Imported where used, as is pyarrow.json below: together 60 ms of every reader's start.
        import pyarrow.compute as pc

        return pc.round(values.cast(pa.float64()), column.decimals).cast(column.arrow_type)
    return values.cast(column.arrow_type)


def conform(table: pa.Table | pa.RecordBatch) -> pa.Table:
    """Return `table` with exactly the contract's columns, order and types.

    A dictionary-encoded column of the right value type stays encoded (Parquet
    stores it the same way, and decoding first would only cost time).
    Raises `SchemaError` naming the first missing column or impossible cast.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    for column in COLUMNS:
        if column.omissible and column.name not in table.column_names:
            table = table.append_column(column.name, pa.nulls(len(table), column.arrow_type))
    missing = [name for name in COLUMN_NAMES if name not in table.column_names]
    if missing:
        raise SchemaError(f"attempt records lack column(s): {', '.join(missing)}")
    arrays, fields = [], []
    for column, field in zip(COLUMNS, ATTEMPT_SCHEMA, strict=True):
        values = table.column(column.name)
        if not column.nullable and values.null_count:
            raise SchemaError(f"column {column.name!r} has {values.null_count} NULL value(s)")
        if _is_dictionary_of(values.type, column.arrow_type):
            arrays.append(values)
            fields.append(field.with_type(values.type))
            continue
        try:
            arrays.append(_stored(values, column))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(f"column {column.name!r} cannot hold its values: {exc}") from exc
        fields.append(field)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


#: What `json_lines_to_table` reads: times as epoch microseconds, every column nullable
#: (`conform` names a NULL where there must be none).
_JSON_LINES_SCHEMA = pa.schema(
    [pa.field(f.name, pa.int64() if pa.types.is_timestamp(f.type) else f.type) for f in ATTEMPT_SCHEMA]
)


def json_lines_to_table(data: bytes) -> pa.Table:
    """Build a contract table from JSON lines whose times are epoch microseconds (the outbox's form).

    Arrow's reader parses outside the GIL, several times faster than
    `json` plus `rows_to_table`. A key outside the contract, a value of the
    wrong type, or text that is not JSON raises `SchemaError`.
    """
    if not data:
        return rows_to_table([])
    import pyarrow.json as pa_json

    options = pa_json.ParseOptions(explicit_schema=_JSON_LINES_SCHEMA, unexpected_field_behavior="error")
    try:
        try:
            table = pa_json.read_json(io.BytesIO(data), parse_options=options)
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc):
                raise
            # A record longer than the reader's 1 MiB block: read the batch as one block.
            whole = pa_json.ReadOptions(block_size=len(data) + 1)
            table = pa_json.read_json(io.BytesIO(data), read_options=whole, parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"attempt records do not match the contract: {exc}") from exc
    columns = [
        table.column(f.name).cast(f.type) if pa.types.is_timestamp(f.type) else table.column(f.name)
        for f in _ROWS_SCHEMA
    ]
    return conform(pa.Table.from_arrays(columns, schema=_ROWS_SCHEMA))


def rows_to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Build a contract table from row mappings (the engine's path).

    A missing key is a NULL, so a row without a required column fails here,
    at the caller, not later when a buffer of good rows is flushed.
    """
    unknown = set().union(*rows) - set(COLUMN_NAMES) if rows else set()  # a mapping iterates its keys
    if unknown:
        raise SchemaError(f"unknown attempt column(s): {', '.join(sorted(unknown))}")
    try:
        # Column by column: faster than Table.from_pylist, which goes row by row.
        arrays = [pa.array([row.get(f.name) for row in rows], f.type) for f in _ROWS_SCHEMA]
        table = pa.Table.from_arrays(arrays, schema=_ROWS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"attempt records do not match the contract: {exc}") from exc
    return conform(table)
