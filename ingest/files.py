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
from pathlib import Path
from typing import Any

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


def partition_dir(root: Path, date: str, hour: int) -> Path:
    """``root/date=YYYY-MM-DD/hour=HH``."""
    return root / f"date={date}" / f"hour={hour:02d}"


def publish_parquet(table: pa.Table, root: Path, date: str, hour: int, name: str, **options: Any) -> Path:
    """Write `table` as ``root/date=…/hour=…/name`` atomically; return the path."""
    tmp_dir = root / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    final_dir = partition_dir(root, date, hour)
    final_dir.mkdir(parents=True, exist_ok=True)
    # Unique per writer: a writer and a repair of the rollups may publish
    # the same name at once, and must not write into one temporary file.
    tmp_path = tmp_dir / f"{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    with open(tmp_path, "wb") as handle:
        pq.write_table(table, handle, **options)
        handle.flush()
        os.fsync(handle.fileno())
    final_path = final_dir / name
    os.replace(tmp_path, final_path)
    _fsync_directory(final_dir)  # the rename itself survives a power cut only once its directory is synced
    return final_path


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
