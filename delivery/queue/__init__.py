"""The durable queue: the `Queue` interface (`base`), the outbox's record form (`outbox`), its backends.

Backends, one module each behind the same interface: `sqlite` (embedded, one
engine process per data directory). Import a backend from its module; this
package re-exports the interface and the models every caller shares.
"""

from delivery.queue.base import (
    DEDUP_WINDOW_S,
    Event,
    Job,
    JobState,
    LeaseLost,
    OutboxBatch,
    Queue,
    QueueDepth,
    QueueError,
    Settlement,
    StorageFull,
)
from delivery.queue.outbox import check_record, decode_record, encode_record

__all__ = [
    "DEDUP_WINDOW_S",
    "Event",
    "Job",
    "JobState",
    "LeaseLost",
    "OutboxBatch",
    "Queue",
    "QueueDepth",
    "QueueError",
    "Settlement",
    "StorageFull",
    "check_record",
    "decode_record",
    "encode_record",
]
