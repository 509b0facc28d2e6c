"""The alerts webhook in process: `AuthAlerts` hands each notification to `AlertWebhook`, which POSTs it
through the transport seam and retries with backoff until the receiver takes it or a bound is reached.

One 401 record raises one `auth_failing` notification; each test points
`[alerts] webhook_url` at a loopback server from `faults.py` (one
misbehaviour per connection, in order) and reads what it received, what
`webhook_report()` (the `/admin/status` section) says and what was logged.
The schedule is made short (a base delay of 10 ms) so that runs are quick;
nothing is timed: every wait polls with a deadline. A real engine process
is in test_notifications.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trustme

from delivery.alerts.auth_alerts import USER_AGENT, AuthAlerts
from delivery.config import parse_config
from ingest.notifications import read_notifications
from tests.delivery.faults import (
    Exchange,
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
DELIVERED = {
    "attempt_id": "a-2",
    "destination_id": "hook",
    "workspace_id": "acme",
    "error_class": "none",
    "outcome": "delivered",
}
QUICK = {"webhook_backoff_base_s": 0.01, "webhook_backoff_max_s": 0.05, "webhook_max_attempts": 3}
NO_CONTENT = respond(http_response(204, "No Content"))


def make_alerts(tmp_path: Path, webhook_url: str, ca_bundle: Path | None = None, **alerts: Any) -> AuthAlerts:
    engine = {"data_dir": str(tmp_path / "data"), "allow_private_targets": True}
    if ca_bundle is not None:
        engine["ca_bundle"] = str(ca_bundle)
    config = parse_config(
        {
            "engine": engine,
            "alerts": {"webhook_url": webhook_url, "webhook_timeout_s": 2, **QUICK, **alerts},
            "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_test_web"}],
            "destinations": [
                {"id": "hook", "source": "web", "integration": "webhook", "url": "http://127.0.0.1:9/x"}
            ],
        }
    )
    return AuthAlerts(config)


def in_turn(*handlers: Handler) -> Handler:
    """Each connection gets the next handler; the last one answers every connection after."""
    left = list(handlers)

    async def handler(exchange: Exchange) -> None:
        await (left.pop(0) if len(left) > 1 else left[0])(exchange)

    return handler


async def eventually(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def settled(report: dict[str, Any], notifications: int = 1) -> bool:
    """Whether the webhook is done with `notifications` notifications: delivered or given up."""
    return bool(report["delivered"] + report["given_up"] == notifications and report["pending"] == 0)


async def notify(alerts: AuthAlerts, *records: dict[str, Any], notifications: int = 1) -> dict[str, Any]:
    """Feed `records` (one 401 by default), wait until the webhook is done, stop; the last report."""
    await alerts.start()
    runner = asyncio.create_task(alerts.run())
    for record in records or (FAILED_401,):
        alerts.on_settled(record)
    await eventually(lambda: settled(alerts.webhook_report(), notifications))
    report = alerts.webhook_report()
    alerts.stop()
    await runner
    await alerts.close()
    return report


def post_to(tmp_path: Path, handler: Handler, **alerts: Any) -> tuple[FaultServer, dict[str, Any]]:
    async def scenario() -> tuple[FaultServer, dict[str, Any]]:
        async with FaultServer(handler) as server:
            report = await notify(make_alerts(tmp_path, server.url(f"/alerts?token={TOKEN}"), **alerts))
            return server, report

    return asyncio.run(scenario())


def bodies(server: FaultServer) -> list[dict[str, Any]]:
    return [json.loads(request.partition(b"\r\n\r\n")[2]) for request in server.received]


def test_the_notification_is_posted_as_json(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="delivery.alerts"):
        server, report = post_to(tmp_path, NO_CONTENT)
    [request] = server.received
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == f"POST /alerts?token={TOKEN} HTTP/1.1"
    assert "Content-Type: application/json" in lines
    assert f"User-Agent: {USER_AGENT}" in lines
    note = json.loads(body)
    assert (note["kind"], note["destination_id"], note["status_code"]) == ("auth_failing", "hook", 401)
    assert "alerts webhook" not in caplog.text
    assert report == {
        "configured": True,
        "pending": 0,
        "delivered": 1,
        "given_up": 0,
        "failed_attempts": 0,
        "last_failure": None,
        "last_given_up": None,
        "pending_notifications": [],
    }


def test_failures_are_retried_until_the_receiver_takes_the_notification(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fails_twice = in_turn(respond(http_response(503, "Busy")), close_without_answer, NO_CONTENT)
    with caplog.at_level(logging.INFO, logger="delivery.alerts"):
        server, report = post_to(tmp_path, fails_twice)
    assert server.requests == 3
    [note, *again] = bodies(server)
    assert again == [note, note]  # the same notification each time
    assert (report["delivered"], report["failed_attempts"], report["given_up"], report["pending"]) == (
        1,
        2,
        0,
        0,
    )
    last = report["last_failure"]
    assert (last["attempt"], last["status_code"], last["error_class"], last["error_code"]) == (
        2,
        None,
        "network",
        "ESERVERDISCONNECT",
    )
    assert (last["notification_id"], last["kind"], last["destination_id"]) == (
        note["id"],
        "auth_failing",
        "hook",
    )
    assert f"attempt 1 for notification {note['id']} failed: 503 (server)" in caplog.text
    assert f"attempt 2 for notification {note['id']} failed: ESERVERDISCONNECT (network)" in caplog.text
    assert f"notification {note['id']} delivered at attempt 3" in caplog.text
    assert TOKEN not in caplog.text


def test_a_receiver_that_never_takes_it_is_given_up_after_max_attempts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="delivery.alerts"):
        server, report = post_to(tmp_path, respond(http_response(500, "Oops", b"x" * 10_000)))
    assert server.requests == 3  # webhook_max_attempts
    assert (report["delivered"], report["failed_attempts"], report["given_up"], report["pending"]) == (
        0,
        3,
        1,
        0,
    )
    gave_up = report["last_given_up"]
    assert (gave_up["reason"], gave_up["attempt"], gave_up["status_code"], gave_up["error_class"]) == (
        "max_attempts",
        3,
        500,
        "server",
    )
    assert gave_up == {**report["last_failure"], "reason": "max_attempts"}
    assert "gave up on notification" in caplog.text and "after 3 attempts (max_attempts)" in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    "answer",
    [
        http_response(307, "Moved", Location="http://127.0.0.1:9/elsewhere"),  # redirects are not followed
        http_response(400, "Bad Request"),
        http_response(404, "Not Found"),
        http_response(401, "Unauthorized"),
    ],
    ids=["307", "400", "404", "401"],
)
def test_an_answer_retrying_cannot_change_is_given_up_at_once(tmp_path: Path, answer: bytes) -> None:
    server, report = post_to(tmp_path, respond(answer))
    assert server.requests == 1
    assert report["last_given_up"]["reason"] == "terminal"
    assert report["last_given_up"]["status_code"] == int(answer.split()[1])


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    async def scenario() -> tuple[FaultServer, dict[str, Any]]:
        first = respond(http_response(429, "Too Many Requests", Retry_After="1"))
        async with FaultServer(in_turn(first, NO_CONTENT)) as server:
            alerts = make_alerts(tmp_path, server.url("/alerts"), webhook_backoff_max_s=5)
            await alerts.start()
            runner = asyncio.create_task(alerts.run())
            alerts.on_settled(FAILED_401)
            await eventually(lambda: alerts.webhook_report()["failed_attempts"] == 1)
            seen.append(alerts.webhook_report())
            await eventually(lambda: settled(alerts.webhook_report()))
            report = alerts.webhook_report()
            alerts.stop()
            await runner
            await alerts.close()
            return server, report

    server, report = asyncio.run(scenario())
    assert server.requests == 2 and report["delivered"] == 1
    [waiting] = seen[0]["pending_notifications"]
    failed_at = datetime.fromisoformat(waiting["last_failure"]["at"])
    due = datetime.fromisoformat(waiting["next_attempt_at"])
    # The backoff alone would wait 10 ms or less; the receiver asked for 1 s.
    assert (due - failed_at).total_seconds() == pytest.approx(1.0, abs=1e-5)
    assert waiting["attempts"] == 1 and waiting["last_failure"]["error_class"] == "rate_limit"


def test_a_retry_after_past_the_retry_window_is_given_up_at_once(tmp_path: Path) -> None:
    later = respond(http_response(503, "Busy", Retry_After="3600"))
    server, report = post_to(tmp_path, later, webhook_backoff_max_s=300, webhook_retry_window_s=30)
    assert server.requests == 1
    assert report["last_given_up"]["reason"] == "retry_window"


def test_an_unreachable_webhook_is_retried_then_given_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with closed_port() as port, caplog.at_level(logging.WARNING, logger="delivery.alerts"):
        url = f"http://127.0.0.1:{port}/alerts?token={TOKEN}"
        report = asyncio.run(notify(make_alerts(tmp_path, url, webhook_max_attempts=2)))
    assert report["failed_attempts"] == 2
    assert report["last_given_up"]["error_code"] == "ECONNREFUSED"
    assert report["last_given_up"]["reason"] == "max_attempts"
    assert "failed: ECONNREFUSED (network)" in caplog.text
    assert TOKEN not in caplog.text


def test_a_slow_webhook_holds_up_no_write(tmp_path: Path) -> None:
    """The receiver holds the first notification's POST; the next change is stored and posted meanwhile."""

    async def scenario() -> tuple[list[str], dict[str, Any], dict[str, Any]]:
        release = asyncio.Event()

        async def held(exchange: Exchange) -> None:
            await exchange.read_request()
            await release.wait()
            await exchange.send(http_response(204, "No Content"))
            await exchange.close()

        async with FaultServer(in_turn(held, NO_CONTENT)) as server:
            alerts = make_alerts(tmp_path, server.url("/alerts"), webhook_timeout_s=600)
            await alerts.start()
            runner = asyncio.create_task(alerts.run())
            alerts.on_settled(FAILED_401)
            await eventually(lambda: server.requests == 1)  # the first POST is held
            alerts.on_settled(DELIVERED)  # raises `recovered`: stored, and posted, meanwhile
            await eventually(lambda: alerts.webhook_report()["delivered"] == 1)
            stored = [n.kind for n in read_notifications(tmp_path / "data", state="all")]
            meanwhile = alerts.webhook_report()
            release.set()
            await eventually(lambda: settled(alerts.webhook_report(), 2))
            alerts.stop()
            await runner
            await alerts.close()
            return stored, meanwhile, alerts.webhook_report()

    stored, meanwhile, report = asyncio.run(scenario())
    assert stored == ["recovered", "auth_failing"]
    [held] = meanwhile["pending_notifications"]
    assert held["kind"] == "auth_failing" and held["attempts"] == 1
    assert held["next_attempt_at"] is None  # in flight, not waiting for a retry
    assert (report["delivered"], report["failed_attempts"], report["pending"]) == (2, 0, 0)


def test_a_stop_gives_up_the_retries_waiting(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[FaultServer, dict[str, Any]]:
        busy = respond(http_response(503, "Busy"))
        async with FaultServer(busy) as server:
            alerts = make_alerts(
                tmp_path, server.url("/alerts"), webhook_backoff_base_s=3600, webhook_backoff_max_s=3600
            )
            await alerts.start()
            runner = asyncio.create_task(alerts.run())
            alerts.on_settled(FAILED_401)
            await eventually(lambda: alerts.webhook_report()["failed_attempts"] == 1)
            alerts.stop()
            await runner
            webhook = alerts._webhook
            assert webhook is not None
            # Not an hour: the retry waiting is given up at once (the bound only guards a hang).
            await asyncio.wait_for(alerts.close(), 60)
            return server, webhook.report()

    with caplog.at_level(logging.WARNING, logger="delivery.alerts"):
        server, report = asyncio.run(scenario())
    assert server.requests == 1
    assert report["last_given_up"]["reason"] == "engine_stopped"
    assert "(engine_stopped)" in caplog.text


def test_the_engine_s_ca_bundle_is_trusted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    tls = server_context(ca.issue_cert("127.0.0.1"))

    async def scenario(trusted: Path | None) -> tuple[int, dict[str, Any]]:
        async with FaultServer(NO_CONTENT, tls=tls) as server:
            url = server.url("/alerts").replace("http://", "https://")
            report = await notify(make_alerts(tmp_path / str(trusted is None), url, trusted))
            return server.requests, report

    with caplog.at_level(logging.WARNING, logger="delivery.alerts"):
        assert asyncio.run(scenario(bundle))[0] == 1
        assert "alerts webhook" not in caplog.text
        requests, report = asyncio.run(scenario(None))
    assert requests == 0
    gave_up = report["last_given_up"]  # a certificate it cannot trust is not retried
    assert (gave_up["reason"], gave_up["error_class"], gave_up["error_code"]) == (
        "terminal",
        "tls",
        "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    )
