"""The per-event trace on a log the real engine wrote (docs/trace.md): a source fans out to a
healthy webhook and to one answering 403 (a terminal failure); an event traced by its messageId
is delivered at the first and failed at the second with the class and code, from the library,
the command line and the fan-out completeness figure ("some")."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from deliverydash.cli import main
from deliverydash.partner_simulator.config import PartnerSpec
from deliverydash.partner_simulator.profiles import Forbidden, Healthy
from deliverydash.partner_simulator.servers import PartnerSet, partners_in_thread
from queries import Scope, connect
from queries.trace import fanout, trace_event
from tests.delivery.engine_process import free_port, start_engine, wait_for

WRITE_KEY = "wk_test_trace"
EVENTS = 4
HOOKS = ("healthy", "forbidden")


@pytest.fixture
def partners() -> Iterator[PartnerSet]:
    specs = [PartnerSpec("healthy", Healthy()), PartnerSpec("forbidden", Forbidden())]
    with partners_in_thread(specs, control_port=None) as running:
        yield running


def write_config(tmp_path: Path, partners: PartnerSet) -> Path:
    config = tmp_path / "deliverydash.toml"
    hooks = "".join(
        f"""
[[destinations]]
id = "{name}-hook"
source = "app"
integration = "webhook"
url = "{partners.url(name)}events"
"""
        for name in HOOKS
    )
    config.write_text(
        f"""
[engine]
data_dir = "data"
allow_private_targets = true
export_interval_s = 0.2
request_timeout_s = 5
lease_s = 10
shutdown_grace_s = 1

[[sources]]
id = "app"
workspace = "acme"
write_key = "{WRITE_KEY}"
{hooks}""",
        encoding="utf-8",
    )
    return config


def settled(data_dir: Path) -> int:
    """Terminal records in the attempt files so far."""
    if not list(data_dir.glob("attempts/date=*/hour=*/*.parquet")):
        return 0
    glob = str(data_dir / "attempts/date=*/hour=*/*.parquet")
    with duckdb.connect() as db:
        rows = db.execute("SELECT count(*) FROM read_parquet($glob) WHERE outcome <> 'retry'", {"glob": glob})
        return int(rows.fetchall()[0][0])


@pytest.fixture
def written(tmp_path: Path, partners: PartnerSet) -> tuple[Path, list[str]]:
    """The engine's log once every event is settled at both hooks, and the events' message ids."""
    config = write_config(tmp_path, partners)
    port = free_port()
    engine = start_engine(config, port)
    message_ids = [str(uuid.uuid4()) for _ in range(EVENTS)]
    try:
        batch = [
            {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": message_id}
            for message_id in message_ids
        ]
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""), timeout=10
        )
        assert response.status_code == 200, response.text
        wait_for(lambda: settled(tmp_path / "data") >= EVENTS * len(HOOKS), timeout_s=30)
    finally:
        engine.terminate()
        engine.communicate(timeout=30)
    return tmp_path / "data", message_ids


def _today() -> tuple[dt.datetime, dt.datetime]:
    day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - dt.timedelta(days=1), day + dt.timedelta(days=1)  # an engine may cross midnight


def test_an_event_is_delivered_at_one_hook_and_failed_at_the_other(written: tuple[Path, list[str]]) -> None:
    data_dir, message_ids = written
    start, end = _today()
    with connect(data_dir) as log:
        trace = trace_event(log, Scope.workspace("acme"), message_ids[0], start, end)
        other = trace_event(log, Scope.workspace("globex"), message_ids[0], start, end)
        sources = fanout(log, Scope.workspace("acme"), start, end)
    assert trace.found and not other.found
    fates = {row["destination_id"]: row for row in trace.destinations.iter_rows(named=True)}
    assert set(fates) == {"healthy-hook", "forbidden-hook"}
    assert fates["healthy-hook"]["fate"] == "delivered"
    assert fates["forbidden-hook"]["fate"] == "failed"
    assert (fates["forbidden-hook"]["last_error_class"], fates["forbidden-hook"]["last_error_code"]) == (
        "auth",
        "403",
    )
    assert fates["forbidden-hook"]["last_status_code"] == "403"
    # Only this event's records: one request at each hook.
    assert sorted(trace.attempts.get_column("destination_id").to_list()) == ["forbidden-hook", "healthy-hook"]
    assert set(trace.attempts.get_column("source_id")) == {"app"}
    # Every event reached one of its two destinations: fan-out completeness counts them as "some".
    assert sources.select(
        "source_id", "events", "delivered_all", "delivered_some", "delivered_none"
    ).rows() == [("app", EVENTS, 0, EVENTS, 0)]


def test_the_command_prints_the_fate_per_destination(
    written: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, message_ids = written
    status = main(["trace", message_ids[1], "--data-dir", str(data_dir), "--workspace", "acme"])
    out = capsys.readouterr().out
    assert status in (0, None)
    lines: dict[str, str] = {}  # the first table's row of each hook (the fates; every attempt follows)
    for line in out.splitlines():
        if "-hook" in line and "│" in line:
            lines.setdefault(line.split()[1], line)
    assert "delivered" in lines["healthy-hook"]
    assert "failed: auth (403)" in lines["forbidden-hook"]
    status = main(["trace", message_ids[1], "--data-dir", str(data_dir), "--workspace", "globex"])
    assert status not in (0, None)
    assert "is in no attempt record" in capsys.readouterr().err
