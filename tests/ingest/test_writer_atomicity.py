"""A writer killed with SIGKILL leaves only whole files in the readers' glob.

A child process writes tables in a loop through `AttemptLogWriter`; the test
kills it (a) at chosen moments after some files are published, and (b) at
two exact points made deterministic by a hook in the child: halfway through
writing an attempt file's bytes, and after the bytes are synced but before
`os.replace` publishes them. Every file the glob matches must then read in
full with pyarrow and DuckDB, and leftovers must sit in a `_tmp/` folder as
`.tmp`. The same holds for every other Parquet file under the data
directory (whatever the writer publishes beside the attempt log).
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.files import TMP_DIR, attempts_glob, attempts_root
from ingest.schema import ATTEMPT_SCHEMA
from ingest.writer import AttemptLogWriter

REPO = Path(__file__).resolve().parents[2]
ROWS_PER_HOUR = 20_000
HOURS = 3
#: Safety net against a hung child, not a measurement: every wait normally ends in well under a second.
DEADLINE_S = 15.0

CHILD = r"""
import datetime as dt, itertools, os, sys, time
import pyarrow as pa
import pyarrow.parquet as pq
from ingest.writer import AttemptLogWriter
from tests.ingest.rows import UTC, spread_table

data_dir, hook, hook_call = sys.argv[1], sys.argv[2], int(sys.argv[3])
ready = os.path.join(os.path.dirname(data_dir), "ready")
attempts_tmp = os.path.join(data_dir, "attempts", "_tmp")
start = dt.datetime(2026, 3, 9, 22, 0, tzinfo=UTC)
base = spread_table(HOURS, 200, start=start)
table = pa.concat_tables([base] * (ROWS_PER_HOUR // 200))
calls = itertools.count()

def stop_here():
    open(ready, "w").close()
    time.sleep(3600)

if hook == "mid-write":
    real_write = pq.write_table
    def write_table(data, where, **options):
        if os.path.dirname(where.name) == attempts_tmp and next(calls) == hook_call:
            buffer = pa.BufferOutputStream()
            real_write(data, buffer, **options)
            whole = buffer.getvalue().to_pybytes()
            where.write(whole[: len(whole) // 2])
            where.flush()
            stop_here()
        return real_write(data, where, **options)
    pq.write_table = write_table
elif hook == "before-replace":
    real_replace = os.replace
    def replace(src, dst):
        if os.path.dirname(str(src)) == attempts_tmp and next(calls) == hook_call:
            stop_here()
        return real_replace(src, dst)
    os.replace = replace

with AttemptLogWriter(data_dir, max_rows=len(table)) as writer:
    while True:
        writer.write(table)
""".replace("HOURS", str(HOURS)).replace("ROWS_PER_HOUR", str(ROWS_PER_HOUR))


def start_child(data_dir: Path, hook: str = "none", hook_call: int = -1) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), hook, str(hook_call)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(proc: subprocess.Popen[bytes], condition) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"writer exited early: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail("the writer never reached the moment to kill it")
        time.sleep(0.002)


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()


def published(data_dir: Path) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(attempts_glob(data_dir)))


def check_only_whole_files_are_visible(data_dir: Path) -> tuple[list[Path], list[Path]]:
    """Assert the crash invariants; return (published attempt files, leftovers anywhere)."""
    files = published(data_dir)
    everything = [p for p in data_dir.rglob("*") if p.is_file()]
    leftovers = [p for p in everything if p.parent.name == TMP_DIR]
    assert all(".parquet." in p.name and p.name.endswith(".tmp") for p in leftovers), leftovers
    others = set(everything) - set(leftovers) - set(files)
    assert all(p.suffix == ".parquet" for p in others), others
    assert all(p.parent != attempts_root(data_dir) / TMP_DIR for p in files)
    for path in others:
        pq.read_table(path).validate(full=True)
    for path in files:
        table = pq.read_table(path)
        assert table.schema.equals(ATTEMPT_SCHEMA)
        assert table.num_rows == ROWS_PER_HOUR
        table.validate(full=True)
    if files:
        # Decode every column of every row, not just the footers.
        totals = (
            duckdb.connect()
            .execute(
                "SELECT count(*), count(attempt_id), count(events), sum(len(events)), "
                "count(epoch_us(started_at)), count(retryable), count(duration_ms) "
                "FROM read_parquet($glob, hive_partitioning = false)",
                {"glob": attempts_glob(data_dir)},
            )
            .fetchone()
        )
        assert totals == (len(files) * ROWS_PER_HOUR,) * 7
    return files, leftovers


@pytest.mark.parametrize(("files_before_kill", "delay_s"), [(1, 0.0), (2, 0.003), (4, 0.011), (7, 0.029)])
def test_kill_at_a_random_moment(tmp_path: Path, files_before_kill: int, delay_s: float) -> None:
    data_dir = tmp_path / "data"
    with start_child(data_dir) as proc:
        wait_for(proc, lambda: len(published(data_dir)) >= files_before_kill)
        time.sleep(delay_s)
        kill(proc)
    files, leftovers = check_only_whole_files_are_visible(data_dir)
    assert len(files) >= files_before_kill
    assert len(leftovers) <= 1  # one writer, one file in flight


@pytest.mark.parametrize("hook", ["mid-write", "before-replace"])
def test_kill_while_a_file_is_in_flight(tmp_path: Path, hook: str) -> None:
    data_dir = tmp_path / "data"
    with start_child(data_dir, hook, hook_call=4) as proc:
        wait_for(proc, (tmp_path / "ready").exists)
        kill(proc)
    files, leftovers = check_only_whole_files_are_visible(data_dir)
    assert len(files) == 4  # the four published before the fifth was cut short
    assert len(leftovers) == 1
    (partial,) = leftovers
    assert partial.parent == attempts_root(data_dir) / TMP_DIR
    if hook == "mid-write":
        with pytest.raises(pa.ArrowInvalid, match="magic bytes not found"):
            pq.read_table(partial)
    else:
        assert pq.read_table(partial).num_rows == ROWS_PER_HOUR  # whole, but never published

    # A new writer leaves the young leftover alone: its owner might still be alive.
    AttemptLogWriter(data_dir).close()
    assert partial.exists()
