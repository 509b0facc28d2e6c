"""The durable queue: the `Queue` interface (`base`), the outbox's record form (`outbox`), its backends.

Backends, one module each behind the same interface:

- `sqlite`: embedded, one file under the data directory, one engine process
  per data directory (a lock file enforces it);
- `postgres`: a PostgreSQL database shared by any number of engine
  processes, on one machine or many (claims with ``SKIP LOCKED``, leases by
  the database's clock, a shared outbox); also `migrate` and `redact_dsn`.

`claims` holds the fairness rule both apply to a claim's candidates, `dead_letters` what
they share about the events kept for replay. Import a
backend from its module (each pulls in its driver); this package re-exports
the interface and the models every caller shares.
"""

from delivery.queue.base import (
    DEAD_OUTCOMES,
    DEDUP_WINDOW_S,
    ClaimOptions,
    Event,
    Job,
    JobState,
    LeaseLost,
    OutboxBatch,
    Queue,
    QueueDepth,
    QueueError,
    ReplayResult,
    ReplaySelection,
    Settlement,
    StorageFull,
)
from delivery.queue.outbox import check_record, decode_record, encode_record

__all__ = [
    "DEAD_OUTCOMES",
    "DEDUP_WINDOW_S",
    "ClaimOptions",
    "Event",
    "Job",
    "JobState",
    "LeaseLost",
    "OutboxBatch",
    "Queue",
    "QueueDepth",
    "QueueError",
    "ReplayResult",
    "ReplaySelection",
    "Settlement",
    "StorageFull",
    "check_record",
    "decode_record",
    "encode_record",
]
