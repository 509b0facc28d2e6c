"""`deliverydash demo` as a user runs it: simulated partners, the real engine, the real Segment client."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb


def test_the_live_demo_shows_every_kind_of_failure_end_to_end(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "deliverydash", "demo",
            "--events", "60", "--time-scale", "1200", "--send-seconds", "4", "--data-dir", "data",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "DELIVERYDASH_DATA_DIR": ""},
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    out = done.stdout
    assert re.search(r"^events received\s+180\s+100\.00%", out, re.MULTILINE), out
    assert re.search(r"^still retrying\s+0\s", out, re.MULTILINE), out
    assert "auth_failing" in out and "acme/acme-ads" in out

    glob = str(tmp_path / "data" / "attempts" / "date=*" / "hour=*" / "*.parquet")
    rows = dict(
        duckdb.sql(
            f"SELECT destination_id, list(DISTINCT error_class ORDER BY error_class) "
            f"FROM read_parquet('{glob}') GROUP BY ALL"
        ).fetchall()
    )
    assert rows["acme-hook"] == ["none"]
    assert "auth" in rows["acme-ads"]
    assert "precheck" in rows["acme-crm"]  # anonymous events refused before sending
    assert rows["initech-legacy"] == ["tls"]
    assert rows["initech-hook"] == ["nonstandard"]
    assert rows["initech-slow"] == ["timeout"]
    # Every job reached one final outcome, and events reached the batch partner in batches.
    unsettled = duckdb.sql(
        f"SELECT count(*) FROM (SELECT job_id FROM read_parquet('{glob}') GROUP BY job_id "
        "HAVING count(*) FILTER (outcome <> 'retry') <> 1)"
    ).fetchall()
    assert unsettled == [(0,)]
    batched = duckdb.sql(
        f"SELECT max(event_count) FROM read_parquet('{glob}') WHERE destination_id = 'globex-warehouse'"
    ).fetchall()
    assert batched[0][0] > 1

    # The retry what-if on this engine-written day (docs/whatif.md): the demo's schedule, compressed
    # 1200 times, replayed on paper at a resolution compressed as much (60 s / 1200) gives the
    # actual eventual delivery within a point, and the actual requests within 10 % (few retries).
    schedule = "base=0.025s,max=3s,window=12s,attempts=10,jitter=0.2"
    whatif = subprocess.run(
        [
            sys.executable, "-m", "deliverydash", "whatif", "--data-dir", str(tmp_path / "data"),
            "--actual", schedule, "--schedule", "base=0.025s,max=3s,window=12s,attempts=2",
            "--resolution", "0.05s",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert whatif.returncode == 0, whatif.stderr
    lines = whatif.stdout.splitlines()
    actual = re.search(r"^actual \(from the log\)\s+([\d,]+)\s+([\d.]+)%\s+([\d,]+)", lines[3])
    replayed = re.search(r"^replayed: \S+\s+([\d,]+)\s+([\d.]+)%\s+([\d,]+)", lines[4])
    assert actual and replayed, whatif.stdout
    assert abs(float(replayed[2]) - float(actual[2])) <= 1.0, whatif.stdout
    requests = [int(match[3].replace(",", "")) for match in (actual, replayed)]
    assert abs(requests[1] / requests[0] - 1) <= 0.10, whatif.stdout

    # The fan-out trace on this engine-written day (docs/trace.md): an event acme's auth-failing ads
    # partner failed reached acme's healthy webhook; both fates are printed, with the failure's class.
    traced = duckdb.sql(
        f"SELECT e.message_id FROM read_parquet('{glob}'), unnest(events) AS u(e) "
        "WHERE destination_id = 'acme-ads' AND outcome = 'failed' AND error_class = 'auth' LIMIT 1"
    ).fetchall()[0][0]
    hook_fate = duckdb.sql(
        f"SELECT outcome FROM read_parquet('{glob}'), unnest(events) AS u(e) "
        f"WHERE destination_id = 'acme-hook' AND e.message_id = '{traced}' AND outcome <> 'retry'"
    ).fetchall()
    trace = subprocess.run(
        [sys.executable, "-m", "deliverydash", "trace", traced, "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert trace.returncode == 0, trace.stderr
    table = trace.stdout.split("Every attempt")[
        0
    ]  # the fate per destination: │ id ┆ integration ┆ fate ┆ ...
    cells = [[cell.strip() for cell in line.strip("│").split("┆")] for line in table.splitlines()]
    fates = {row[0]: row[2] for row in cells if len(row) > 2 and row[0].startswith("acme-")}
    assert fates["acme-ads"].startswith("failed"), trace.stdout
    assert hook_fate == [("delivered",)] and fates["acme-hook"] == "delivered", trace.stdout
