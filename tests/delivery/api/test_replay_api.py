"""`POST /admin/replay` in-process over a real SQLite queue: what it refuses, and how it answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from delivery.api.main import create_app
from delivery.api.routers.replay import FailedClass
from delivery.config import parse_config
from delivery.queue import Settlement
from delivery.queue.sqlite import SqliteQueue
from deliverydash.commands.replay import CLASSES
from ingest.taxonomy import ErrorClass
from tests.delivery.queue.helpers import event, record_for

ADMIN_TOKEN = "adm-replay-token-0123456789-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
T0 = dt.datetime(2026, 12, 5, 10, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteQueue]:
    queue = SqliteQueue(tmp_path)
    queue.enqueue([event(f"m{i}", T0, source_id="ios") for i in range(3)], {"ios": ["hook-a"]})
    jobs = queue.claim("w", T0 + 1, limit=10, per_destination_limit=10, lease_s=30)
    queue.settle(
        [Settlement(j, record_for(j, n, outcome="failed", error_class="auth")) for n, j in enumerate(jobs)]
    )
    yield queue
    queue.close()


@pytest.fixture
def app(queue: SqliteQueue) -> FastAPI:
    config = parse_config(
        {
            "engine": {"admin_token": ADMIN_TOKEN, "allow_private_targets": True},
            "sources": [{"id": "ios", "workspace": "acme", "write_key": "wk_ios_0123456789"}],
            "destinations": [
                {"id": "hook-a", "source": "ios", "integration": "webhook", "url": "http://127.0.0.1:9/"}
            ],
        }
    )
    return create_app(config, queue=queue)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engine.test") as client:
        yield client


async def post(client: httpx.AsyncClient, body: Any, headers: dict[str, str] = AUTH) -> httpx.Response:
    return await client.post("/admin/replay", json=body, headers=headers)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({}, 400, "name a destination or a workspace"),
        ({"destination": "nope"}, 404, "no destination 'nope'"),
        ({"destination": "hook-a", "classes": ["none"]}, 400, "classes.0"),
        ({"destination": "hook-a", "outcomes": ["delivered"]}, 400, "outcomes.0"),
        ({"destination": "hook-a", "dryrun": True}, 400, "dryrun"),
        ({"destination": "hook-a", "since": "yesterday"}, 400, "since"),
        (
            {"destination": "hook-a", "since": "2026-12-05T10:00:00Z", "until": "2026-12-05T09:00:00Z"},
            400,
            "since must be before until",
        ),
        (["hook-a"], 400, "body"),
    ],
)
async def test_bad_requests_are_refused_with_a_message_that_names_the_problem(
    client: httpx.AsyncClient, queue: SqliteQueue, body: Any, status: int, words: str
) -> None:
    response = await post(client, body)
    assert response.status_code == status, response.text
    assert words in response.json()["message"]
    assert queue.depth().by_state["pending"] == 0


@pytest.mark.anyio
async def test_the_admin_token_is_required(client: httpx.AsyncClient, queue: SqliteQueue) -> None:
    response = await post(client, {"destination": "hook-a"}, headers={})
    assert response.status_code == 401
    assert queue.depth().by_state["pending"] == 0


@pytest.mark.anyio
async def test_a_dry_run_counts_then_a_replay_enqueues_once(
    client: httpx.AsyncClient, queue: SqliteQueue
) -> None:
    counted = (await post(client, {"workspace": "acme", "dry_run": True})).json()
    assert counted == {
        "replay_id": None,
        "dry_run": True,
        "jobs": 3,
        "by_destination": {"hook-a": 3},
        "already_replayed": 0,
    }
    assert queue.depth().by_state["pending"] == 0
    since = dt.datetime.fromtimestamp(T0, dt.UTC).isoformat()
    done = (await post(client, {"destination": "hook-a", "since": since, "classes": ["auth"]})).json()
    assert (done["jobs"], done["already_replayed"], len(done["replay_id"])) == (3, 0, 26)
    assert queue.depth().by_state["pending"] == 3
    again = (await post(client, {"destination": "hook-a"})).json()
    assert (again["jobs"], again["already_replayed"]) == (0, 3)


def test_the_api_and_the_command_know_every_class_a_failure_may_have() -> None:
    failures = {str(c) for c in ErrorClass} - {"none"}
    assert set(FailedClass.__args__) == failures  # type: ignore[attr-defined]
    assert set(CLASSES) == failures
