"""Per-hour manifests of compaction: which files of an hour a reader reads (docs/log-store.md).

Compaction (`ingest.compaction`) replaces an hour's small files by a few
large sorted ones. An object store cannot rename, so readers are told which
files count by small JSON manifests, in one flat folder:

* ``manifests/<date>T<HH>-v<version>.pending.json``: a compaction has
  begun; its `outputs` (``compact-v<version>-<k>.parquet``) do not count yet.
* ``manifests/<date>T<HH>-v<version>.json``: it is done; its `outputs`
  count, and the files it `supersedes` (the small files it merged, the
  previous version's outputs) no longer do.
* ``manifests/<date>T<HH>-v<version>.swept.json``: the files it superseded
  are deleted; readers need not leave them out by name any more (a month
  of them would make every view's filter tens of thousands of names long).

Both are written with an exclusive put: one compactor wins a version. A
reader hides, per hour, what the newest done manifest supersedes and the
outputs of every begun compaction not done; everything else in the hour's
partitions counts (a file that arrived after the compaction too), except
a ``compact-*`` file no done manifest the reader knows of names: a
compaction may begin, and write its outputs, after the reader listed the
manifests. So at every moment an attempt is counted once: its small file
until the manifest is written, its compacted file after.

`hidden_files` gives what readers hide; `ManifestCache` keeps parsed
manifests between queries, so a query costs one listing of the folder.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from ingest.logstore import LogStore, StoredFile

MANIFESTS_DIR = "manifests"
COMPACT_PREFIX = "compact-"
_KEY = re.compile(
    rf"^{MANIFESTS_DIR}/(?P<date>\d{{4}}-\d{{2}}-\d{{2}})T(?P<hour>\d{{2}})-v(?P<version>\d+)"
    r"(?P<kind>\.pending|\.swept)?\.json$"
)


@dataclass(frozen=True, slots=True)
class Manifest:
    """One compaction of one hour, begun (`pending`) or done."""

    date: str
    hour: int
    version: int
    outputs: tuple[str, ...]
    """File names (in the hour's partition of `attempts/` and of each rollup) the compaction writes."""
    supersedes: tuple[str, ...]
    """File names that no longer count once it is done."""
    pending: bool = False
    written_at: float = 0.0
    """When it was written (epoch seconds): the grace before superseded files go counts from here."""
    rows: int = 0
    """Attempt records in the outputs."""

    @property
    def key(self) -> str:
        return manifest_key(self.date, self.hour, self.version, pending=self.pending)

    @property
    def partition(self) -> tuple[str, int]:
        return self.date, self.hour

    def to_json(self) -> bytes:
        document = {
            "date": self.date,
            "hour": self.hour,
            "version": self.version,
            "outputs": list(self.outputs),
            "supersedes": list(self.supersedes),
            "written_at": self.written_at,
            "rows": self.rows,
        }
        return json.dumps(document, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, *, pending: bool) -> Manifest:
        document = json.loads(data)
        return cls(
            date=document["date"],
            hour=int(document["hour"]),
            version=int(document["version"]),
            outputs=tuple(document["outputs"]),
            supersedes=tuple(document["supersedes"]),
            pending=pending,
            written_at=float(document.get("written_at", 0.0)),
            rows=int(document.get("rows", 0)),
        )


def manifest_key(date: str, hour: int, version: int, *, pending: bool = False) -> str:
    """The key of one hour's manifest of `version`."""
    return f"{MANIFESTS_DIR}/{date}T{hour:02d}-v{version:06d}{'.pending' if pending else ''}.json"


def swept_key(date: str, hour: int, version: int) -> str:
    """The key of the marker saying the files version `version` superseded are deleted."""
    return f"{MANIFESTS_DIR}/{date}T{hour:02d}-v{version:06d}.swept.json"


def compact_name(version: int, part: int) -> str:
    """The name of a compaction's `part`-th output file."""
    return f"{COMPACT_PREFIX}v{version:06d}-{part}.parquet"


@dataclass(frozen=True, slots=True)
class HourState:
    """What the manifests say about one hour."""

    done: tuple[Manifest, ...]
    """The done compactions, oldest first."""
    unfinished: tuple[Manifest, ...]
    """Begun compactions without a done manifest of their version."""
    versions: int
    """The highest version begun or done: the next compaction takes the one after."""
    swept: frozenset[int] = frozenset()
    """Done versions whose superseded files are all deleted."""

    def superseded(self) -> frozenset[str]:
        """Every name a done compaction superseded (each supersedes only what counted when it began)."""
        return frozenset(name for done in self.done for name in done.supersedes)

    def hidden(self) -> frozenset[str]:
        """The names in the hour's partitions that do not count and may still be there.

        What done compactions superseded, until their sweep deleted it, and
        the outputs of every compaction begun and not done.
        """
        names: set[str] = set()
        for done in self.done:
            if done.version not in self.swept:
                names.update(done.supersedes)
        for begun in self.unfinished:
            names.update(begun.outputs)
        return frozenset(names)

    def counted_outputs(self) -> frozenset[str]:
        """The compaction outputs that count: done and not superseded by a later compaction."""
        outputs = frozenset(name for done in self.done for name in done.outputs)
        return outputs - self.superseded() - self.hidden()


@dataclass
class ManifestCache:
    """Parsed manifests of one store, read once each (a manifest never changes once written)."""

    store: LogStore
    _parsed: dict[str, Manifest] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hours(self) -> dict[tuple[str, int], HourState]:
        """Every hour with a manifest -> its state; one listing, and a read of each manifest not seen."""
        matched = [(stored, _KEY.match(stored.key)) for stored in self.store.list(f"{MANIFESTS_DIR}/")]
        listed = [stored for stored, match in matched if match and match["kind"] != ".swept"]
        swept = {
            (m["date"], int(m["hour"]), int(m["version"])) for _, m in matched if m and m["kind"] == ".swept"
        }
        with self._lock:
            for stored in listed:
                if stored.key not in self._parsed:
                    self._parsed[stored.key] = self._read(stored)
            present = {stored.key for stored in listed}
            for gone in self._parsed.keys() - present:
                del self._parsed[gone]  # retention removed it
            manifests = list(self._parsed.values())
        return hour_states(manifests, swept)

    def _read(self, stored: StoredFile) -> Manifest:
        match = _KEY.match(stored.key)
        assert match is not None
        return Manifest.from_json(self.store.read_bytes(stored.key), pending=match["kind"] == ".pending")


def hour_states(
    manifests: Iterable[Manifest], swept: Collection[tuple[str, int, int]] = ()
) -> dict[tuple[str, int], HourState]:
    """Group manifests, and the (date, hour, version) swept, by hour (what each hides: the docstring)."""
    by_hour: dict[tuple[str, int], list[Manifest]] = {}
    for manifest in manifests:
        by_hour.setdefault(manifest.partition, []).append(manifest)
    states = {}
    for partition, group in by_hour.items():
        done = tuple(sorted((m for m in group if not m.pending), key=lambda m: m.version))
        done_versions = {m.version for m in done}
        unfinished = tuple(m for m in group if m.pending and m.version not in done_versions)
        versions = frozenset(version for date, hour, version in swept if (date, hour) == partition)
        states[partition] = HourState(done, unfinished, max(m.version for m in group), versions)
    return states


def hidden_files(states: dict[tuple[str, int], HourState]) -> dict[tuple[str, int], frozenset[str]]:
    """Per hour, the file names readers leave out; hours hiding nothing are left out."""
    hidden = {partition: state.hidden() for partition, state in states.items()}
    return {partition: names for partition, names in hidden.items() if names}


def counted_outputs(states: dict[tuple[str, int], HourState]) -> dict[tuple[str, int], frozenset[str]]:
    """Per hour, the compaction outputs readers count (every other `compact-*` file they leave out)."""
    counted = {partition: state.counted_outputs() for partition, state in states.items()}
    return {partition: names for partition, names in counted.items() if names}


def now() -> float:
    """The time manifests are stamped with (a seam for tests of the grace period)."""
    return time.time()
