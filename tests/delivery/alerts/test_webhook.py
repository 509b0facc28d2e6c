"""The alerts webhook in process: `AuthAlerts` posts each notification once, through the transport seam.

One 401 record raises one `auth_failing` notification; each test points
`[alerts] webhook_url` at a loopback server from `faults.py` and reads what
it received, or what the engine logged when it could not tell it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
import trustme

from delivery.alerts.auth_alerts import USER_AGENT, AuthAlerts
from delivery.config import parse_config
from tests.delivery.faults import (
    FaultServer,
    Handler,
    close_without_answer,
    closed_port,
    http_response,
    respond,
    server_context,
)

TOKEN = "webhook-t0ken-secret"
FAILED_401 = {
    "attempt_id": "a-1",
    "destination_id": "hook",
    "workspace_id": "acme",
    "error_class": "auth",
    "outcome": "failed",
    "status_code": 401,
    "response_body": '{"error": "token_expired"}',
}


def make_alerts(tmp_path: Path, webhook_url: str, ca_bundle: Path | None = None) -> AuthAlerts:
    engine = {"data_dir": str(tmp_path / "data"), "allow_private_targets": True}
    if ca_bundle is not None:
        engine["ca_bundle"] = str(ca_bundle)
    config = parse_config(
        {
            "engine": engine,
            "alerts": {"webhook_url": webhook_url, "webhook_timeout_s": 2},
            "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_test_web"}],
            "destinations": [
                {"id": "hook", "source": "web", "integration": "webhook", "url": "http://127.0.0.1:9/x"}
            ],
        }
    )
    return AuthAlerts(config)


async def notify_once(alerts: AuthAlerts) -> None:
    """Raise one notification and return once the webhook was told (or failed to be)."""
    await alerts.start()
    runner = asyncio.create_task(alerts.run())
    alerts.on_settled(FAILED_401)
    alerts.stop()
    await runner
    await alerts.close()


def post_to(tmp_path: Path, handler: Handler, *, path: str = f"/alerts?token={TOKEN}") -> FaultServer:
    async def scenario() -> FaultServer:
        async with FaultServer(handler) as server:
            await notify_once(make_alerts(tmp_path, server.url(path)))
            return server

    return asyncio.run(scenario())


def test_the_notification_is_posted_as_json(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="delivery.alerts"):
        server = post_to(tmp_path, respond(http_response(204, "No Content")))
    [request] = server.received
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == f"POST /alerts?token={TOKEN} HTTP/1.1"
    assert "Content-Type: application/json" in lines
    assert f"User-Agent: {USER_AGENT}" in lines
    note = json.loads(body)
    assert (note["kind"], note["destination_id"], note["status_code"]) == ("auth_failing", "hook", 401)
    assert "alerts webhook" not in caplog.text


def test_a_refusal_is_logged_with_its_status(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="delivery.alerts"):
        server = post_to(tmp_path, respond(http_response(500, "Oops", b"x" * 10_000)))
    assert server.requests == 1
    assert "alerts webhook answered 500 to notification" in caplog.text


def test_a_redirect_is_not_followed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    moved = respond(http_response(307, "Moved", Location="http://127.0.0.1:9/elsewhere"))
    with caplog.at_level(logging.WARNING, logger="delivery.alerts"):
        server = post_to(tmp_path, moved)
    assert server.requests == 1
    assert "alerts webhook answered 307 to notification" in caplog.text


def test_a_failure_is_logged_by_its_code_once_without_the_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="delivery.alerts"):
        server = post_to(tmp_path, close_without_answer)
    assert server.connections == 1  # told once: no retry
    assert "alerts webhook failed for notification" in caplog.text
    assert caplog.text.rstrip().endswith(": ESERVERDISCONNECT")
    assert TOKEN not in caplog.text


def test_an_unreachable_webhook_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with closed_port() as port, caplog.at_level(logging.WARNING, logger="delivery.alerts"):
        asyncio.run(notify_once(make_alerts(tmp_path, f"http://127.0.0.1:{port}/alerts?token={TOKEN}")))
    assert caplog.text.rstrip().endswith(": ECONNREFUSED")
    assert TOKEN not in caplog.text


def test_the_engine_s_ca_bundle_is_trusted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    tls = server_context(ca.issue_cert("127.0.0.1"))

    async def scenario(trusted: Path | None) -> int:
        async with FaultServer(respond(http_response(204, "No Content")), tls=tls) as server:
            url = server.url("/alerts").replace("http://", "https://")
            await notify_once(make_alerts(tmp_path / str(trusted is None), url, trusted))
            return server.requests

    with caplog.at_level(logging.WARNING, logger="delivery.alerts"):
        assert asyncio.run(scenario(bundle)) == 1
        assert "alerts webhook" not in caplog.text
        assert asyncio.run(scenario(None)) == 0
    assert caplog.text.rstrip().endswith(": UNABLE_TO_GET_ISSUER_CERT_LOCALLY")
