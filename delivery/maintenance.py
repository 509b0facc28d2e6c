"""The engine's upkeep: hours of the log compacted, old days and dead letters deleted, one engine at a time.

Every `[log] compact_interval_s` the engine takes the fleet-wide lock
`LOCK` (`Queue.exclusive`: an advisory lock on PostgreSQL, always held by
the one engine of a SQLite queue). The engine that holds it compacts every
closed hour (`ingest.compaction.compact`) and deletes the days past
`[log] retention_days` (`ingest.compaction.expire`); the others skip the
round. Compaction is correct without the lock (manifests are written with
exclusive puts, docs/log-store.md): the lock only saves the work twice.

An hour closes `close_after_s` after its end: an hour at least, and more
when the engine's settings let a record take longer to reach the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from delivery.config import Config
from delivery.queue import Queue
from ingest.compaction import CLOSE_AFTER_S, CompactionResult, compact, expire
from ingest.day_rollups import build_days
from ingest.logstore import LogStore
from ingest.manifests import ManifestCache

log = logging.getLogger(__name__)

LOCK = "deliverydash.attempt-log-upkeep"


def close_after_s(config: Config) -> float:
    """How long after its end an hour of the log may still get records from this engine's settings.

    A request started at the hour's end runs up to `request_timeout_s`,
    waits for its settlement, and reaches the log at a later export; if its
    engine dies, another exporter takes the batch over once its lease lapses.
    """
    engine = config.engine
    longest = (
        engine.request_timeout_s + engine.shutdown_grace_s + 6 * engine.export_interval_s + engine.lease_s
    )
    return max(CLOSE_AFTER_S, 2 * longest)


class Upkeep:
    """One engine's rounds of compaction and retention over the log at `store`."""

    def __init__(self, store: LogStore, queue: Queue, config: Config) -> None:
        self.store = store
        self.queue = queue
        self.retention_days = config.log.retention_days
        self.dead_letter_days = config.engine.dead_letter_days
        self.interval_s = config.log.compact_interval_s
        self.close_after_s = close_after_s(config)
        self._manifests = ManifestCache(store)
        self._stop = threading.Event()

    def run_once(self) -> CompactionResult | None:
        """One round, if this engine gets the lock (None when another engine has it)."""
        with self.queue.exclusive(LOCK) as held:
            if not held:
                return None
            result = compact(
                self.store, close_after_s=self.close_after_s, manifests=self._manifests, stop=self._stop
            )
            if result.hours or result.deleted:
                log.info(
                    "attempt log compacted: %d hours, %d files merged into %d, %d superseded files deleted",
                    result.hours,
                    result.merged,
                    result.written,
                    result.deleted,
                )
            expired = self.queue.expire_dead_letters(time.time() - self.dead_letter_days * 86_400)
            if expired:
                log.info("dead letters older than %d days deleted: %d", self.dead_letter_days, expired)
            # Retention before the day rollups: the oldest day kept loses its day before, which its
            # digest names (ingest.day_rollups), and is built again in this round, not the next.
            for day in expire(self.store, self.retention_days):
                log.info(
                    "attempt log: %s deleted (%d files, retention %d days)",
                    day.date,
                    day.files,
                    self.retention_days,
                )
            days = build_days(self.store, close_after_s=self.close_after_s, manifests=self._manifests)
            if days.built:
                log.info("attempt log: day rollups of %s built", ", ".join(days.built))
            return result

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds every `interval_s` until `stop` is set; a failed round is logged and tried again."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
            if stop.is_set():
                break
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("compacting the attempt log failed; trying again in %.0f s", self.interval_s)

    def stop(self) -> None:
        """Ask a round under way to stop after the hour it is compacting."""
        self._stop.set()
