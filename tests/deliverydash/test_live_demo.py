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
