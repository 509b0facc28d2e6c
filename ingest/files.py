"""Files appear whole: write under a temporary name, fsync, rename into place.

Every Parquet file of the data directory (attempt log and rollups) is
published this way. The temporary file sits in a `_tmp/` folder with a
`.tmp` suffix, outside every reader's glob, so a reader, or a crash at any
moment, never leaves half a file where a reader looks.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

TMP_DIR = "_tmp"
#: Where the attempt log lives under a data directory.
ATTEMPTS_DIR = "attempts"
#: Temporary files older than this belong to a writer that died.
STALE_TMP_S = 3600.0


def attempts_root(data_dir: str | os.PathLike[str]) -> Path:
    """Directory that holds the partitioned attempt log."""
    return Path(data_dir) / ATTEMPTS_DIR


def attempts_glob(data_dir: str | os.PathLike[str]) -> str:
    """The glob every reader uses; temporary files never match it."""
    return str(attempts_root(data_dir) / "date=*" / "hour=*" / "*.parquet")


def partition_key(tree: str, date: str, hour: int, name: str) -> str:
    """A log store's key for a file: ``tree/date=YYYY-MM-DD/hour=HH/name``."""
    return f"{tree}/date={date}/hour={hour:02d}/{name}"


def publish_parquet(table: pa.Table, final_path: Path, *, exclusive: bool = False, **options: Any) -> bool:
    """Write `table` as `final_path` (``…/date=…/hour=…/name``) atomically; whether it was written.

    With `exclusive`, an existing file of that name is kept and False is
    returned (it was published whole before: a resumed export writes the
    same names, docs/log-store.md); otherwise it is replaced.
    """
    return _publish(final_path, lambda handle: pq.write_table(table, handle, **options), exclusive)


def publish_bytes(data: bytes, final_path: Path, *, exclusive: bool = False, mode: int | None = None) -> bool:
    """Write `data` as `final_path` atomically, as `publish_parquet` does; whether it was written.

    `mode` (such as ``0o600``) is the file's permissions from the moment it
    exists, temporary name included, so a secret is never readable by others
    even for an instant; None leaves them to the umask.
    """
    return _publish(final_path, lambda handle: handle.write(data), exclusive, mode)


def _publish(
    final_path: Path, write: Callable[[BinaryIO], object], exclusive: bool, mode: int | None = None
) -> bool:
    """Temporary file, fsync, then rename (or link, when `exclusive`) into place, and sync the folder.

    The temporary file sits in `TMP_DIR` beside the partition folders (the
    parent of ``date=…`` for a partitioned file, else the file's own folder).
    """
    final_dir = final_path.parent
    final_dir.mkdir(parents=True, exist_ok=True)
    root = final_dir.parent.parent if final_dir.name.startswith("hour=") else final_dir
    tmp_dir = root / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    # Unique per writer: a writer and a repair of the rollups may publish
    # the same name at once, and must not write into one temporary file.
    tmp_path = tmp_dir / f"{final_path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    with open(tmp_path, "xb", opener=_opener(mode)) as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    written = True
    if exclusive:
        try:
            os.link(tmp_path, final_path)  # fails on an existing name, where a rename would replace it
        except FileExistsError:
            written = False
        tmp_path.unlink()
    else:
        os.replace(tmp_path, final_path)
    _fsync_directory(final_dir)  # the rename itself survives a power cut only once its directory is synced
    return written


def _opener(mode: int | None) -> Callable[[str, int], int] | None:
    """An `open` opener creating the file with exactly `mode`; None: the default (0o666 less the umask)."""
    if mode is None:
        return None

    def opener(path: str, flags: int) -> int:
        fd = os.open(path, flags, mode)  # created with `mode` less the umask: never more than `mode`
        os.fchmod(fd, mode)  # and exactly `mode`, whatever the umask took off
        return fd

    return opener


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_temporary(root: Path, older_than_s: float = STALE_TMP_S) -> int:
    """Remove temporary files a crashed writer left under `root`; return how many.

    Only files older than `older_than_s` go: a younger one may belong to a
    writer in another process that is still running.
    """
    tmp_dir = root / TMP_DIR
    cutoff = time.time() - older_than_s
    removed = 0
    for path in tmp_dir.glob("*.tmp") if tmp_dir.is_dir() else ():
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
