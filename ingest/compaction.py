"""Compaction and retention of the attempt log: closed hours merged into few sorted files, old days deleted.

The exporter writes a small file every export interval, about 17,000 a day
per engine. Once an hour is closed (no record can still arrive for it: its
end plus `close_after_s`, an hour by default, docs/log-store.md), `compact`
merges the files that count in it into one sorted file (more past
`MAX_ROWS_PER_FILE`) with its rebuilt rollups, announced by the hour's
manifests (`ingest.manifests`) so that readers never count a record twice
or miss one while it runs:

1. the begun manifest ``v<n>.pending`` (an exclusive put: only one
   compactor gets version n; a loser leaves the hour alone);
2. the outputs ``compact-v<n>-<k>.parquet``, with their rollups;
3. the done manifest ``v<n>``, which supersedes the merged files.

Superseded files are deleted `grace_s` after the done manifest (a query
that listed before still finds them), and a begun compaction that never got
done has its outputs deleted as long after it began. An hour that gets a
file after its compaction (an exporter that took a batch over late) is
compacted again, to version n + 1.

`expire` deletes whole days older than the retention, with their rollups (hourly and by day) and
manifests.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from ingest.files import ATTEMPTS_DIR, partition_key
from ingest.logstore import LogStore, StoredFile
from ingest.manifests import (
    MANIFESTS_DIR,
    HourState,
    Manifest,
    ManifestCache,
    compact_name,
    now,
    swept_key,
)
from ingest.rollup import ROLLUPS, ROLLUPS_DIR, publish_rollups, rollup_tree
from ingest.schema import ATTEMPT_SCHEMA
from ingest.writer import SORT_KEYS, WRITE_OPTIONS

#: An hour is closed this long after its end: far more than the longest way
#: a record can take to the log (request timeout + settlement + two export
#: intervals + an outbox lease, about 2.5 minutes by default), and clock skew.
CLOSE_AFTER_S = 3_600.0
#: Superseded files stay this long after the manifest that replaced them.
GRACE_S = 600.0
#: Rows per compacted file: an engine's busiest hour fits in one.
MAX_ROWS_PER_FILE = 10_000_000
_TREES = (ATTEMPTS_DIR, *(rollup_tree(rollup) for rollup in ROLLUPS))


@dataclass
class CompactionResult:
    """What one `compact` run did."""

    hours: int = 0
    """Hours compacted."""
    merged: int = 0
    """Attempt files merged (each with its rollups)."""
    written: int = 0
    """Attempt files written."""
    rows: int = 0
    """Attempt records rewritten."""
    deleted: int = 0
    """Files deleted: superseded ones past their grace, outputs of compactions never done, all trees."""
    skipped: list[str] = field(default_factory=list)
    """Hours left alone: another compactor had them, or this run outlived the grace period."""


@dataclass(frozen=True, slots=True)
class HourFiles:
    """The attempt files of one hour partition, and what the manifests say of them."""

    date: str
    hour: int
    names: frozenset[str]
    state: HourState | None

    @property
    def live(self) -> frozenset[str]:
        """The names readers count."""
        return self.names - self.state.hidden() if self.state else self.names

    @property
    def end(self) -> float:
        start = dt.datetime.fromisoformat(self.date).replace(hour=self.hour, tzinfo=dt.UTC)
        return start.timestamp() + 3_600


def log_hours(store: LogStore, manifests: ManifestCache | None = None) -> list[HourFiles]:
    """Every hour partition of the attempt log with its files and manifests, oldest first."""
    states = (manifests or ManifestCache(store)).hours()
    names: dict[tuple[str, int], set[str]] = {}
    for key in store.keys(f"{ATTEMPTS_DIR}/date="):
        parts = key.split("/")
        if len(parts) != 4 or not parts[3].endswith(".parquet"):
            continue
        partition = (parts[1].removeprefix("date="), int(parts[2].removeprefix("hour=")))
        names.setdefault(partition, set()).add(parts[3])
    hours = set(names) | set(states)
    return [
        HourFiles(date, hour, frozenset(names.get((date, hour), ())), states.get((date, hour)))
        for date, hour in sorted(hours)
    ]


def compact(
    store: LogStore,
    *,
    close_after_s: float = CLOSE_AFTER_S,
    grace_s: float = GRACE_S,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = now,
    manifests: ManifestCache | None = None,
    stop: threading.Event | None = None,
    hours: list[HourFiles] | None = None,
) -> CompactionResult:
    """Compact every closed hour with more than one file that counts, and sweep what has had its grace.

    `progress`, when given, is called with 1 after each hour looked at.
    `manifests`, kept from one run to the next, spares reading a manifest
    twice; `hours`, a `log_hours` listing just made (to size a progress
    bar), spares listing the log again. Once `stop` is set, the run ends
    after the hour under way.
    """
    result = CompactionResult()
    at = clock()
    for files in log_hours(store, manifests) if hours is None else hours:
        if stop is not None and stop.is_set():
            break
        if files.end + close_after_s <= at and len(files.live) > 1:
            _compact_hour(store, files, result, clock)
        _sweep(store, files, at - grace_s, result)
        if progress is not None:
            progress(1)
    return result


def _compact_hour(
    store: LogStore, files: HourFiles, result: CompactionResult, clock: Callable[[], float]
) -> None:
    live = sorted(files.live)
    version = (files.state.versions if files.state else 0) + 1
    tables = [
        store.read_table(partition_key(ATTEMPTS_DIR, files.date, files.hour, name), schema=ATTEMPT_SCHEMA)
        for name in live
    ]
    table = pa.concat_tables(tables).sort_by(SORT_KEYS)
    parts = max(1, -(-table.num_rows // MAX_ROWS_PER_FILE))
    outputs = tuple(compact_name(version, k) for k in range(parts))
    begun = Manifest(files.date, files.hour, version, outputs, tuple(live), pending=True, written_at=clock())
    if not store.put_bytes(begun.key, begun.to_json(), exclusive=True):
        result.skipped.append(f"{files.date} {files.hour:02d}:00")  # another compactor has this version
        return
    for k, name in enumerate(outputs):
        part = table.slice(k * MAX_ROWS_PER_FILE, MAX_ROWS_PER_FILE)
        key = partition_key(ATTEMPTS_DIR, files.date, files.hour, name)
        store.publish(key, part, exclusive=True, **WRITE_OPTIONS)
        publish_rollups(part, store, files.date, files.hour, name, exclusive=True)
    if not store.exists(begun.key):
        # Swept as abandoned while this ran past the grace period: its outputs may be gone.
        result.skipped.append(f"{files.date} {files.hour:02d}:00")
        return
    done = Manifest(
        files.date, files.hour, version, outputs, tuple(live), written_at=clock(), rows=table.num_rows
    )
    store.put_bytes(done.key, done.to_json(), exclusive=True)
    result.hours += 1
    result.merged += len(live)
    result.written += len(outputs)
    result.rows += table.num_rows


def _sweep(store: LogStore, files: HourFiles, cutoff: float, result: CompactionResult) -> None:
    """Delete superseded files and never-done outputs whose grace ended before `cutoff`."""
    state = files.state
    if state is None:
        return
    doomed: set[str] = set()
    sweeping = [done for done in state.done if done.version not in state.swept and done.written_at < cutoff]
    for done in sweeping:
        doomed.update(files.names & set(done.supersedes))
    stale_manifests = []
    for begun in state.unfinished:
        if begun.written_at < cutoff:
            doomed.update(begun.outputs)
            stale_manifests.append(begun.key)
    if not sweeping and not stale_manifests:
        return
    # Rollups first, attempt files last: the attempt files' listing is what finds work to do.
    for tree in reversed(_TREES):
        store.delete(partition_key(tree, files.date, files.hour, name) for name in sorted(doomed))
    store.delete(stale_manifests)
    for done in sweeping:  # only once everything it superseded is gone
        store.put_bytes(swept_key(files.date, files.hour, done.version), b"{}", exclusive=True)
    result.deleted += len(doomed & files.names) + len(stale_manifests)


@dataclass(frozen=True, slots=True)
class ExpiredDay:
    """A day `expire` deletes (or would, on a dry run)."""

    date: str
    files: int
    bytes: int


def expire(
    store: LogStore, retention_days: int, *, dry_run: bool = False, clock: Callable[[], float] = now
) -> list[ExpiredDay]:
    """Delete whole days older than `retention_days` (every file of theirs, rollups and manifests too).

    A day goes once all of it is older than the retention: on day D + 1 +
    `retention_days` (UTC). With `dry_run`, nothing is deleted and the days
    that would go are returned all the same.
    """
    if retention_days <= 0:
        return []
    today = dt.datetime.fromtimestamp(clock(), dt.UTC).date()
    first_kept = (today - dt.timedelta(days=retention_days)).isoformat()
    by_day: dict[str, list[tuple[str, int]]] = {}
    for stored in _every_file(store):
        date = date_of(stored.key)
        if date is not None and date < first_kept:
            by_day.setdefault(date, []).append((stored.key, stored.size))
    expired = []
    for date, keys in sorted(by_day.items()):
        if not dry_run:
            # Manifests last: until they go, a reader still knows what they hid.
            ordered = sorted(keys, key=lambda item: item[0].startswith(MANIFESTS_DIR))
            store.delete(key for key, _ in ordered)
        expired.append(ExpiredDay(date, len(keys), sum(size for _, size in keys)))
    return expired


def _every_file(store: LogStore) -> Iterable[StoredFile]:
    for tree in _TREES:
        yield from store.list(f"{tree}/date=")
    # The day rollups (`ingest.day_rollups`), which import this module, under `rollups/by_day/`.
    yield from store.list(f"{ROLLUPS_DIR}/by_day/")
    yield from store.list(f"{MANIFESTS_DIR}/")


def date_of(key: str) -> str | None:
    """The day a key (or a path, or a glob) of the log belongs to: a partition's date, or a
    manifest's."""
    for part in key.split("/"):
        if part.startswith("date="):
            return part.removeprefix("date=")
    if key.startswith(f"{MANIFESTS_DIR}/"):
        return key.removeprefix(f"{MANIFESTS_DIR}/")[:10]
    return None
