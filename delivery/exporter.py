"""The exporter: committed attempt records, from the queue's outbox to the Parquet log, once each.

The protocol (docs/queue.md tells it at length):

1. `outbox_batch` takes records into a batch with a new, never-reused id,
   and commits that before anything is written; after a crash, the same
   batch, with the same records, comes back marked `resumed`.
2. The batch's rows are published to the log's store (`ingest.logstore`,
   a directory or an object store) with `publish_hours`: one file per hour,
   named ``outbox-<batch_id>.parquet`` in that hour's partition, and its
   rollups. Files appear whole (a local file under a temporary name,
   fsynced, then linked into place; an object in one put), and a file
   already there under its name is kept, never written again.
3. `outbox_ack` deletes the batch's records, in one transaction.

A crash before 3 leaves the batch open. Resuming it, the exporter writes
the same names, so whatever was published stays once, and the rollups a
file still lacked are written. (It first leaves out the attempt ids in
files an earlier release published for the batch, whose names ended in a
random id.) Two
exporters on one batch (a lease taken over from an engine thought dead)
write the same names too, and the store keeps the first.

When the engine starts, before its first batch, the exporter brings the
log's hourly rollups in step with its files (`ingest.rollup`): a writer that
stopped between an attempt file and its rollups is repaired by the next
writer, never by a reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc

from delivery.config import EngineConfig
from delivery.queue import OutboxBatch, Queue
from ingest.files import ATTEMPTS_DIR, attempts_root, clean_temporary, partition_key
from ingest.logstore import LocalStore, LogStore, open_store
from ingest.rollup import RepairResult, RollupBuilder, repair
from ingest.schema import json_lines_to_table, rows_to_table
from ingest.writer import hours_of, publish_hours

log = logging.getLogger(__name__)

#: Records per batch: one Parquet file per hour they span.
BATCH_ROWS = 50_000
FILE_PREFIX = "outbox-"


def batch_stem(batch_id: str) -> str:
    """How every attempt file of a batch's name begins: ``outbox-<batch_id>``.

    Its files are ``<stem>.parquet``, one per hour partition; an earlier
    release named them ``<stem>-<random id>.parquet``.
    """
    return f"{FILE_PREFIX}{batch_id}"


class Exporter:
    """Moves the outbox of `queue` into the attempt log at `log` (a directory, an ``s3://`` URL, a store).

    `after_step` is a seam for crash tests: it is called with ``"batched"``,
    ``"published"`` and ``"acked"`` as each step of a batch is done.
    `rollups` builds the batches' rollups on a connection it keeps (a process
    that never forks, `delivery.export_process`); by default each batch makes its own.
    """

    def __init__(
        self,
        queue: Queue,
        log: str | os.PathLike[str] | LogStore,
        *,
        batch_rows: int = BATCH_ROWS,
        after_step: Callable[[str], None] | None = None,
        rollups: RollupBuilder | None = None,
    ) -> None:
        self.queue = queue
        self._rollups = rollups
        self.store = open_store(log)
        self.batch_rows = batch_rows
        self._after_step = after_step or (lambda step: None)
        self.rows_exported = 0
        self.files_written: list[PurePosixPath] = []
        """The keys of the attempt files written, under the log's root."""
        if isinstance(self.store, LocalStore):
            clean_temporary(attempts_root(self.store.root))
        # The first table built imports pandas (pyarrow's lazy shim): 0.2 s of GIL at start-up
        # rather than in the first export, where it stalled the worker's event loop under load.
        rows_to_table([])

    def repair_rollups(self) -> RepairResult:
        """Build the rollups attempt files lack and remove orphaned ones.

        No grace for files just written: at start the engine is this log's
        only writer, so a fresh file without rollups was left by the process
        it replaces, not one still writing. (In a fleet another engine may be
        writing: it publishes an hour's rollups right after its file, and a
        rollup built twice from one file is the same file, kept once.)
        """
        return repair(self.store, grace_s=0)

    def run_once(self) -> int:
        """Export every committed record, batch after batch; return how many were published.

        Stops after a batch that was not full, so it ends even while workers keep committing.
        """
        exported = 0
        while (batch := self.queue.outbox_batch(self.batch_rows)) is not None:
            exported += self.export(batch)
            if not batch.resumed and len(batch) < self.batch_rows:
                break
        return exported

    def export(self, batch: OutboxBatch) -> int:
        """Publish one batch's records not yet published, then acknowledge it; return how many were."""
        table = json_lines_to_table(batch.lines)
        if batch.resumed:
            published = pa.array(sorted(self._published_ids(batch.batch_id, table)), pa.string())
            table = table.filter(pc.invert(pc.is_in(table.column("attempt_id"), value_set=published)))
        self._after_step("batched")
        written = publish_hours(
            table, self.store, name=f"{batch_stem(batch.batch_id)}.parquet", rollups=self._rollups
        )
        if isinstance(self.store, LocalStore):
            _sync_directories([self.store.root / key for key in written], attempts_root(self.store.root))
        self._after_step("published")
        self.queue.outbox_ack(batch.batch_id)
        self._after_step("acked")
        rows = sum(written.values())
        self.rows_exported += rows
        self.files_written.extend(PurePosixPath(key) for key in written)
        return rows

    def _published_ids(self, batch_id: str, table: pa.Table) -> set[str]:
        """Attempt ids of `table` in files an earlier release published for the batch (random names).

        Files of this release's names are left out: publishing their rows
        again is refused for the file and writes only the rollups it lacks.
        """
        ids: set[str] = set()
        for date, hour in hours_of(table):
            stem = partition_key(ATTEMPTS_DIR, date, hour, batch_stem(batch_id))
            for stored in self.store.list(stem):
                if stored.key.endswith(".parquet") and stored.key != f"{stem}.parquet":
                    column = self.store.read_table(stored.key, columns=["attempt_id"]).column("attempt_id")
                    ids.update(column.to_pylist())
        return ids


def _sync_directories(paths: list[Path], root: Path) -> None:
    """Make the renames that published `paths` survive power loss before the outbox forgets them."""
    directories = {path.parent for path in paths} | {path.parent.parent for path in paths}
    for directory in sorted(directories) + ([root] if paths else []):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def outbox_lease_s(engine: EngineConfig) -> float:
    """How long a shared outbox's batch stays an exporter's without it asking again (PostgreSQL).

    A dead engine's open batch passes to another exporter as soon as its job
    leases would; an exporter renews its batch every export interval.
    """
    return max(engine.lease_s, 4 * engine.export_interval_s)


def repair_at_start(exporter: Exporter) -> None:
    """`Exporter.repair_rollups`, logged; a failure is logged and does not stop the exports."""
    try:
        repaired = exporter.repair_rollups()
    except Exception:
        log.exception("repairing the attempt log's rollups failed; `deliverydash repair` retries it")
    else:
        if repaired.built or repaired.removed:
            log.info("rollups repaired: %d built, %d orphaned removed", repaired.built, repaired.removed)


async def export_until(exporter: Exporter, interval_s: float, stop: asyncio.Event) -> None:
    """Run `exporter` every `interval_s` until `stop` is set, then once more (the final flush).

    A failed round is logged and retried at the next interval: the records
    stay committed in the outbox meanwhile. The final round's error propagates.
    The rollups are repaired first (`repair_at_start`).
    """
    await asyncio.to_thread(repair_at_start, exporter)
    while not stop.is_set():
        try:
            await asyncio.to_thread(exporter.run_once)
        except Exception:
            log.exception("exporting attempt records failed; retrying in %.1f s", interval_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
    await asyncio.to_thread(exporter.run_once)
