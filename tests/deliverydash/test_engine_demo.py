"""`deliverydash demo-engine` as a user runs it: real sinks, a real engine, the real Segment client."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb


def figure(stdout: str, label: str) -> int:
    """The count printed on the funnel line `label`."""
    match = re.search(rf"^{re.escape(label)}\s+([\d,]+)\s", stdout, re.MULTILINE)
    assert match, f"no line {label!r} in:\n{stdout}"
    return int(match.group(1).replace(",", ""))


def test_demo_engine_delivers_real_events_and_prints_the_funnel(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deliverydash", "demo-engine", "--events", "40", "--data-dir", "tmp"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DELIVERYDASH_DATA_DIR": ""},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Traceback" not in done.stderr

    received = figure(out, "events received")
    first = figure(out, "delivered by attempt 1")
    attempts = [int(n) for n in re.findall(r"^delivered by attempt (\d+)", out, re.MULTILINE)]
    eventually = figure(out, f"delivered by attempt {max(attempts)}")
    assert received == 40 * 3
    assert 0 < first < eventually <= received
    assert first == 40  # only `healthy` delivers on the first try
    assert eventually == 80  # `flaky` delivers on the retry
    assert figure(out, "failed") == 40  # `expired-credentials` never
    assert figure(out, "still retrying") == 0

    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    # destination: requests, received, 1st try, eventually, failed, ...
    assert rows["expired-credentials"][1:5] == ["40", "0", "0", "40"]
    assert rows["flaky"][:4] == ["80", "40", "0", "40"]
    assert rows["healthy"][:4] == ["40", "40", "40", "40"]

    glob = str(tmp_path / "tmp" / "attempts" / "date=*" / "hour=*" / "*.parquet")
    classes = duckdb.sql(
        f"SELECT destination_id, list(DISTINCT error_class ORDER BY error_class), count(*) "
        f"FROM read_parquet('{glob}') GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert classes == [
        ("expired-credentials", ["auth"], 40),
        ("flaky", ["none", "server"], 80),
        ("healthy", ["none"], 40),
    ]
