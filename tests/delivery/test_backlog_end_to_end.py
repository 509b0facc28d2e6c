"""The backlog forecast through a real engine (issue 15, part 3): a rate-limited partner of the
simulator behind a destination whose configured limit is above the partner's, so the partner answers
429 and the backlog drains at the partner's pace. `/admin/status`, `deliverydash status` and the
dashboard's engine reader (`app.engine_status`) are asked while it drains and after.

On SQLite (one engine) and on PostgreSQL (one engine of a fleet: its own rates, the fleet's queue).
Nothing is timed: every wait polls with a deadline.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from app import engine_status
from app.access import ViewerKind
from app.replay import ADMIN_TOKEN_ENV, ENGINE_URL_ENV
from deliverydash.cli import main
from deliverydash.partner_simulator.config import PartnerSpec
from deliverydash.partner_simulator.profiles import Healthy, RateLimited
from deliverydash.partner_simulator.servers import PartnerSet, partners_in_thread
from tests.app.conftest import MAIN, SECRET, token
from tests.delivery.engine_process import free_port, start_engine, wait_for

ADMIN = "admin-token-for-backlog-tests-0123456789"
EVENTS = 30
#: The engine believes 10 requests/s; the partner allows 5.
CONFIGURED_LIMIT = 10.0


@pytest.fixture
def partners() -> Iterator[PartnerSet]:
    specs = [PartnerSpec("limited", RateLimited(rate=5, burst=5)), PartnerSpec("healthy", Healthy())]
    with partners_in_thread(specs, control_port=None) as running:
        yield running


def write_config(tmp_path: Path, partners: PartnerSet, queue: str) -> Path:
    config = tmp_path / "deliverydash.toml"
    config.write_text(
        f"""
[engine]
data_dir = "data"
allow_private_targets = true
export_interval_s = 0.2
request_timeout_s = 5
lease_s = 10
shutdown_grace_s = 2
backoff_base_s = 0.2
backoff_max_s = 1
retry_after_max_s = 1
admin_token = "{ADMIN}"
{queue}

[[sources]]
id = "acme-app"
workspace = "acme"
write_key = "wk_backlog_acme"

[[sources]]
id = "globex-app"
workspace = "globex"
write_key = "wk_backlog_globex"

[[destinations]]
id = "acme-crm"
source = "acme-app"
integration = "webhook"
url = "{partners.url("limited")}events"
rate_limit_per_s = {CONFIGURED_LIMIT}

[[destinations]]
id = "globex-hook"
source = "globex-app"
integration = "webhook"
url = "{partners.url("healthy")}events"
""",
        encoding="utf-8",
    )
    return config


def status(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/admin/status", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def row(url: str, destination: str) -> dict[str, Any]:
    rows = {r["destination"]: r for r in status(url)["backlog"]["destinations"]}
    return rows[destination]


def send(url: str, write_key: str, n: int) -> None:
    batch = [
        {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": str(uuid.uuid4())}
        for _ in range(n)
    ]
    response = httpx.post(f"{url}/v1/batch", json={"batch": batch}, auth=(write_key, ""), timeout=10)
    assert response.status_code == 200, response.text


@pytest.fixture(params=["sqlite", "postgres"])
def queue(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return ""
    dsn = request.getfixturevalue("postgres_dsn")
    return f'\n[queue]\nbackend = "postgres"\ndsn = "{dsn}"\n'


def test_the_backlog_of_a_rate_limited_partner_through_a_real_engine(
    tmp_path: Path,
    partners: PartnerSet,
    queue: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_config(tmp_path, partners, queue)
    port = free_port()
    engine = start_engine(config, port)
    url = f"http://127.0.0.1:{port}"
    try:
        backlog = status(url)["backlog"]
        fleet = bool(queue)
        assert backlog["scope"] == ("engine" if fleet else "single_engine")
        assert backlog["engine"]
        if fleet:  # the only engine of the fleet takes every destination within a round
            wait_for(lambda: row(url, "acme-crm")["owned_here"])

        send(url, "wk_backlog_acme", EVENTS)
        send(url, "wk_backlog_globex", 3)

        # While it drains: jobs wait, requests go out, the pace gives a finite time to drain.
        def draining() -> bool:
            r = row(url, "acme-crm")
            return r["drain_state"] == "draining" and r["waiting"] > 0 and r["requests_per_s"] > 0

        wait_for(draining)
        r = row(url, "acme-crm")
        assert r["workspace"] == "acme" and r["owned_here"] is True
        assert r["limit_per_s"] == CONFIGURED_LIMIT
        assert r["drain_s"] > 0
        assert r["headroom_pct"] == pytest.approx(
            100 * (1 - r["requests_per_s"] / CONFIGURED_LIMIT), abs=0.01
        )

        # The partner's 429s cut the meter below the configured limit.
        wait_for(lambda: row(url, "acme-crm")["adapted_per_s"] < CONFIGURED_LIMIT)

        # The dashboard's reader: one workspace's destinations only, each number from the engine.
        monkeypatch.setenv(ENGINE_URL_ENV, url)
        monkeypatch.setenv(ADMIN_TOKEN_ENV, ADMIN)
        engine_status.clear_cache()
        acme = engine_status.backlog("acme")
        assert acme.error is None
        assert [r["destination"] for r in acme.rows] == ["acme-crm"]
        assert [r["destination"] for r in engine_status.backlog("globex").rows] == ["globex-hook"]
        assert engine_status.backlog("initech").rows == []

        # Drained: nothing waits, the forecast says so without dividing.
        wait_for(lambda: row(url, "acme-crm")["waiting"] == 0, timeout_s=60)
        r = row(url, "acme-crm")
        assert (r["drain_state"], r["drain_s"]) == ("empty", 0.0)
        assert r["delivered_per_s"] > 0

        # deliverydash status: the labelled table, with today's hours over the limit from the log.
        data = tmp_path / "data" / "attempts"
        wait_for(lambda: any(data.glob("date=*/hour=*/*.parquet")))
        capsys.readouterr()

        def table() -> dict[str, list[str]]:
            main(["status", "--config", str(config), "--url", url])
            out = capsys.readouterr().out
            lines = out[out.index("backlog (") :].splitlines()[1:]
            return {line.split()[0]: line.split() for line in lines}

        def hours_over() -> bool:
            return table()["acme-crm"][-1] not in ("0", "unknown")

        wait_for(hours_over)  # the 429s reach the log with the exporter's next batch
        printed = table()
        assert printed["destination"][:3] == ["destination", "waiting", "rate"]
        assert "empty" in printed["acme-crm"]
        assert printed["globex-hook"][-2:] == ["no", "limit"]

        # The customer page of acme's link: its live section lists acme's destination, no other's.
        monkeypatch.setenv("DELIVERYDASH_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("DELIVERYDASH_SECRET", SECRET)
        engine_status.clear_cache()
        page = AppTest.from_file(MAIN, default_timeout=60)
        page.query_params["token"] = token(ViewerKind.WORKSPACE, "acme")
        page.run()
        page.switch_page("views/customer.py").run()
        assert not page.exception
        assert "Backlog and headroom (live engine)" in [h.value for h in page.header]
        live = next(frame.value for frame in page.dataframe if "drain" in frame.value.columns)
        assert live["destination"].tolist() == ["acme-crm"]
        assert live["drain"].tolist() == ["nothing waiting"]
    finally:
        engine.send_signal(signal.SIGTERM)
        output = engine.communicate(timeout=30)[0]
        assert engine.returncode == 0, output
