"""Double deliveries, end to end over real sockets: a partner that takes every event and then
never answers (accept-then-timeout) receives each event twice, because the engine times out and
retries; the attempt log's figure (`double_deliveries`, `deliverydash report`) counts exactly the
events the partner itself saw twice, and a healthy destination beside it counts none."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deliverydash.cli import main
from deliverydash.partner_simulator.config import PartnerSpec
from deliverydash.partner_simulator.profiles import AcceptThenTimeout, Healthy
from deliverydash.partner_simulator.servers import PartnerSet, partners_in_thread
from queries import Scope, api, connect
from tests.delivery.engine_process import free_port, start_engine, wait_for

WRITE_KEY = "wk_test_twice"
EVENTS = 5


@pytest.fixture
def partners() -> Iterator[PartnerSet]:
    specs = [PartnerSpec("twice", AcceptThenTimeout(times=1)), PartnerSpec("healthy", Healthy())]
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
        for name in ("twice", "healthy")
    )
    config.write_text(
        f"""
[engine]
data_dir = "data"
allow_private_targets = true
export_interval_s = 0.2
request_timeout_s = 0.5
lease_s = 10
backoff_base_s = 0.2
backoff_jitter = 0
shutdown_grace_s = 1

[[sources]]
id = "app"
workspace = "acme"
write_key = "{WRITE_KEY}"
{hooks}""",
        encoding="utf-8",
    )
    return config


def delivered(data_dir: Path) -> int:
    """Delivered records in the log's rollups so far (read through the query API)."""
    if not list(data_dir.glob("rollups/redeliveries/date=*/hour=*/*.parquet")):
        return 0
    with connect(data_dir) as log:
        frame = log.trusted_sql("SELECT coalesce(sum(deliveries), 0) AS n FROM redeliveries")
    return int(frame["n"][0])


def test_events_the_partner_took_twice_are_counted_twice(
    tmp_path: Path, partners: PartnerSet, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, partners)
    port = free_port()
    engine = start_engine(config, port)
    try:
        batch = [
            {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": str(uuid.uuid4())}
            for _ in range(EVENTS)
        ]
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""), timeout=10
        )
        assert response.status_code == 200, response.text
        # Every event's retry is delivered (attempt 2, kept by the rollup) once the partner answers.
        wait_for(lambda: delivered(tmp_path / "data") >= EVENTS, timeout_s=30)
    finally:
        engine.terminate()
        engine.communicate(timeout=30)

    twice = partners.stats("twice")
    assert twice.accepted_more_than_once == EVENTS  # the partner's own count
    assert partners.stats("healthy").accepted_more_than_once == 0

    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    with connect(tmp_path / "data") as log:
        figures = api.double_deliveries(log, Scope.workspace("acme"), start, end)
        assert set(figures["destination_id"]) == {"twice-hook"}
        # What the log says: possibly twice (a timeout, then a 2xx), every unanswered request of
        # this partner having in fact been taken: the partner's count exactly.
        assert figures["events"].sum() == twice.accepted_more_than_once
        assert set(figures["cause"]) == {"retry_after_timeout"}
        assert set(figures["certainty"]) == {"possible"}
        # The evidence: each example job's history is a timeout, then a delivery.
        for job_id in figures["example_jobs"][0]:
            history = api.job_history(log, Scope.workspace("acme"), job_id)
            assert history["error_code"].to_list() == ["ETIMEDOUT", "200"]
            assert history["outcome"].to_list() == ["retry", "delivered"]
        # A partner sees the figure for its integration, without the customer's ids.
        partner_view = api.double_deliveries(log, Scope.integration("webhook"), start, end)
        assert partner_view["events"].sum() == EVENTS
        assert partner_view["destination_id"].is_null().all()
        assert partner_view["example_jobs"].is_null().all()

    status = main(["report", "--data-dir", str(tmp_path / "data"), "--date", now.date().isoformat()])
    out = capsys.readouterr().out
    assert status in (0, None)
    assert "Delivered more than once" in out
    assert "twice-hook" in out
