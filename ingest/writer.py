"""The attempt-log writer: buffered, partitioned, atomically published Parquet.

Layout: ``<data_dir>/attempts/date=YYYY-MM-DD/hour=HH/<id>.parquet`` by
`started_at` in UTC, each file published whole (`ingest.files`) and followed
by its rollups (`ingest.rollup`).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.files import ATTEMPTS_DIR, attempts_root, clean_temporary, partition_key
from ingest.ids import new_id
from ingest.logstore import LocalStore, LogStore
from ingest.rollup import RollupBuilder, publish_rollups
from ingest.schema import UTC_MICROS, conform, rows_to_table

#: Rows sorted this way inside each file let DuckDB skip row groups when a
#: query names one workspace or destination, and keep ids and times compact.
SORT_KEYS = [
    ("workspace_id", "ascending"),
    ("destination_id", "ascending"),
    ("started_at", "ascending"),
]
_US_PER_HOUR = 3_600_000_000

#: Columns with few distinct values: dictionary-encoded.
_DICTIONARY_COLUMNS = [
    "attempt",
    "workspace_id",
    "source_id",
    "destination_id",
    "integration",
    "event_count",
    "events.list.element.type",
    "events.list.element.name",
    "status_code",
    "error_class",
    "error_code",
    "retryable",
    "outcome",
    "retry_after_s",
    # Latency to 0.1 ms has a few ten thousand values an hour: indices into a
    # dictionary are 0.6 byte smaller than split float bytes.
    "duration_ms",
    "response_body",
    "error_message",
    "first_error_class",
]
#: Unique ids share prefixes (their time part) with their neighbours; sorted
#: integers and timestamps store small deltas. Measured in docs/benchmarks.md.
_ENCODINGS = {
    "attempt_id": "DELTA_BYTE_ARRAY",
    "job_id": "DELTA_BYTE_ARRAY",
    # Random uuids share no prefix with their neighbours: lengths only.
    "events.list.element.message_id": "DELTA_LENGTH_BYTE_ARRAY",
    "received_at": "DELTA_BINARY_PACKED",
    "started_at": "DELTA_BINARY_PACKED",
    "next_attempt_at": "DELTA_BINARY_PACKED",
    "request_bytes": "DELTA_BINARY_PACKED",
}
WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,  # as small as level 3 on this data, and faster
    "use_dictionary": _DICTIONARY_COLUMNS,
    "column_encoding": _ENCODINGS,
    "write_statistics": True,
    # Without the Arrow schema in the footer, every reader sees plain strings
    # where the simulator handed over dictionary-encoded ones.
    "store_schema": False,
    "row_group_size": 122_880,  # DuckDB's own row-group size: one unit of parallel work
}


def _hours(table: pa.Table) -> np.ndarray:
    """Hours since the epoch of each row's `started_at`."""
    return table.column("started_at").cast(UTC_MICROS).cast(pa.int64()).to_numpy() // _US_PER_HOUR


def hours_of(table: pa.Table) -> list[tuple[str, int]]:
    """The (date, hour) partitions the rows of `table` fall in, by `started_at` in UTC, in order."""
    moments = (dt.datetime.fromtimestamp(int(hour) * 3_600, dt.UTC) for hour in np.unique(_hours(table)))
    return [(moment.strftime("%Y-%m-%d"), moment.hour) for moment in moments]


def write_partitioned(
    table: pa.Table, data_dir: str | os.PathLike[str], *, presorted: bool = False, prefix: str = ""
) -> list[Path]:
    """Write contract rows into their hour partitions under a local `data_dir`; return the published files.

    `presorted` promises the rows already run in (hour of started_at, then
    `SORT_KEYS`) order, which saves the sort (the simulator sorts on integers).
    `prefix` starts each file name, so a producer can find its own files again.
    """
    store = LocalStore(data_dir)
    return [store.root / key for key in publish_hours(table, store, presorted=presorted, prefix=prefix)]


def publish_hours(
    table: pa.Table,
    store: LogStore,
    *,
    presorted: bool = False,
    prefix: str = "",
    name: str | None = None,
    rollups: RollupBuilder | None = None,
) -> dict[str, int]:
    """Publish contract rows to `store`, one attempt file (and its rollups, built on `rollups` when
    given: `ingest.rollup.build_rollups`) per hour.

    Returns the key and row count of each attempt file written. Files are
    named `prefix` then a new id, or `name` in every hour: a file or rollup
    already published under that name is then kept, not written again nor
    returned (the exporter's exactly-once, docs/log-store.md).
    """
    table = conform(table)
    if table.num_rows == 0:
        return {}
    if not presorted:
        keyed = table.append_column("_hour", pa.array(_hours(table)))
        table = keyed.sort_by([("_hour", "ascending"), *SORT_KEYS]).drop_columns("_hour")
    hours = _hours(table)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(hours)) + 1])
    ends = np.append(starts[1:], hours.size)
    written = {}
    exclusive = name is not None
    for start, end in zip(starts, ends, strict=True):
        moment = dt.datetime.fromtimestamp(int(hours[start]) * 3_600, dt.UTC)
        part = table.slice(start, end - start)
        date, file_name = moment.strftime("%Y-%m-%d"), name or f"{prefix}{new_id()}.parquet"
        key = partition_key(ATTEMPTS_DIR, date, moment.hour, file_name)
        if store.publish(key, part, exclusive=exclusive, **WRITE_OPTIONS):
            written[key] = part.num_rows
        publish_rollups(part, store, date, moment.hour, file_name, exclusive=exclusive, builder=rollups)
    return written


class AttemptLogWriter:
    """Buffers attempt records and publishes them as partitioned Parquet.

    Flushes when `max_rows` rows are buffered, when the oldest buffered row
    is `max_age_s` old (checked on every `write` and by `flush_if_due`), and
    on `close`. Use it as a context manager.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        max_rows: int = 500_000,
        max_age_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._clock = clock
        self._buffer: list[pa.Table] = []
        self._buffered_rows = 0
        self._oldest: float | None = None
        self.rows_written = 0
        self.files_written: list[Path] = []
        clean_temporary(attempts_root(self.data_dir))

    @property
    def buffered_rows(self) -> int:
        """Rows accepted but not yet published."""
        return self._buffered_rows

    def write(self, records: pa.Table | pa.RecordBatch | Sequence[Mapping[str, Any]]) -> None:
        """Accept records (an Arrow table/batch or row mappings) for publishing."""
        table = conform(records) if isinstance(records, pa.Table | pa.RecordBatch) else rows_to_table(records)
        if table.num_rows:
            self._buffer.append(table)
            self._buffered_rows += table.num_rows
            if self._oldest is None:
                self._oldest = self._clock()
        if self._buffered_rows >= self.max_rows:
            self.flush()
        else:
            self.flush_if_due()

    def flush_if_due(self) -> None:
        """Flush when the oldest buffered record has waited `max_age_s`."""
        if self._oldest is not None and self._clock() - self._oldest >= self.max_age_s:
            self.flush()

    def flush(self) -> list[Path]:
        """Publish everything buffered; return the new files."""
        if not self._buffer:
            return []
        table = pa.concat_tables(self._buffer)
        paths = write_partitioned(table, self.data_dir)
        self._buffer.clear()
        self._buffered_rows = 0
        self._oldest = None
        self.rows_written += table.num_rows
        self.files_written.extend(paths)
        return paths

    def close(self) -> None:
        """Publish what is left."""
        self.flush()

    def __enter__(self) -> AttemptLogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
