"""The tracking and admin APIs fuzzed from their own OpenAPI document: schemathesis, in-process, seeded.

Schemathesis loads `/openapi.json` from the app over ASGI (no socket) and runs
its stateless phases over every operation, with the write key and the admin
token it is given: the document's examples; the coverage phase (each field
missing, of the wrong type, at its bounds; no credentials and wrong ones;
methods the document does not list); and the fuzzing phase, `MAX_EXAMPLES`
generated requests per operation, valid and invalid. Every answer passes
every check of `CHECKS`: no 5xx; a documented status, content type, body and
headers; credentials enforced; methods the document does not list refused.

Behind the app: a real `SqliteQueue` in `tmp_path`, a source with two
destinations (one disabled in the file), the auth alerts (one destination
disabled by auth failures, so that re-enabling it answers 200), and their
notifications, and the store of changes made live (`/admin/destinations`, `/admin/sources`). After
the run nothing acknowledged is lost: every message of
every request answered 200 is in the queue's tables, with one job per
destination of its source.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from fastapi import FastAPI
from schemathesis.engine import events
from schemathesis.python import asgi

from delivery.alerts.auth_alerts import AuthAlerts
from delivery.alerts.auth_watch import Phase, WatchState
from delivery.alerts.store import NewNotification, NotificationStore
from delivery.api.main import create_app
from delivery.api.segment import (
    GENERATED_ID_PREFIX,
    CallType,
    basic_auth_write_key,
    decode_body,
    parse_batch,
    parse_call,
    parse_json,
    request_write_key,
)
from delivery.config import Config, parse_config
from delivery.config.live import LiveConfig
from delivery.config.store import SqliteSettings
from delivery.queue.sqlite import SqliteQueue

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # the server's clock
WRITE_KEY = "wk_fuzz_web"
ADMIN_TOKEN = "adm-fuzz-token-0123456789-0123456789"
#: The destination auth failures disabled before the run; schemathesis learns its id from the
#: notifications it reads, and re-enables it.
AUTH_DISABLED = "hook-a"

SEED = 20261127
#: Generated requests per operation in the fuzzing phase; the coverage phase adds its own.
MAX_EXAMPLES = 50
#: The same for the operations that repeat another's code (short paths, CORS preflights).
MAX_EXAMPLES_ALIKE = 10
#: Checks run on every answer. Left out, each for a reason:
#: - `negative_data_rejection`: the API is lenient by design where Segment's is (an invalid batch
#:   item is rejected alone and the batch answered 200; `originalTimestamp` is not read when
#:   `timestamp` is there), so a request outside the document may be accepted;
#: - `positive_data_acceptance`: JSON Schema cannot say all the API refuses (a clock-skew
#:   correction that leaves the calendar, a message over 32 KiB once encoded), so a request
#:   inside the document may be refused, with a documented 4xx, which the other checks hold;
#: - the stateful checks (`use_after_free`, `ensure_resource_availability`,
#:   `object_level_authorization`): the API creates no resources to follow.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "missing_required_header",
    "ignored_auth",
    "unsupported_method",
    "allow_header_conformance",
)
SCHEMATHESIS = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "auth": {
            "openapi": {
                "writeKey": {"username": WRITE_KEY, "password": ""},
                "adminToken": {"bearer": ADMIN_TOKEN},
            }
        },
        # The source settings take the write key in their path: half the requests use the real one.
        "dictionaries": {"write-keys": {"values": [WRITE_KEY]}},
        "parameters": {"path.writeKey": {"dictionary": "write-keys", "probability": 0.5}},
        # A preflight reads three headers, and a short path runs its long path's code with its
        # schema (so the long path's coverage phase covers it): fewer generated requests each.
        "operations": [
            {"include-method": "OPTIONS", "generation": {"max-examples": MAX_EXAMPLES_ALIKE}},
            {
                "include-path-regex": "^/v1/[a-z]$",
                "generation": {"max-examples": MAX_EXAMPLES_ALIKE},
                "phases": {"coverage": {"enabled": False}},
            },
        ],
    }
)


def config_for(data_dir: Path) -> Config:
    return parse_config(
        {
            "engine": {"admin_token": ADMIN_TOKEN, "data_dir": str(data_dir)},
            "sources": [{"id": "web", "workspace": "acme", "write_key": WRITE_KEY}],
            "destinations": [
                {
                    "id": AUTH_DISABLED,
                    "source": "web",
                    "integration": "webhook",
                    "url": "https://a.example.com/in",
                },
                {
                    "id": "hook-off",
                    "source": "web",
                    "integration": "webhook",
                    "url": "https://off.example.com/in",
                    "enabled": False,
                },
            ],
        }
    )


def seed_notifications(data_dir: Path) -> None:
    """`AUTH_DISABLED` disabled by auth failures, as a running engine would have stored it."""
    at = NOW.timestamp() - 600
    store = NotificationStore(data_dir)
    try:
        store.record(
            AUTH_DISABLED,
            WatchState(
                Phase.DISABLED, failures=5, first_failure_at=at, disabled_at=at + 60, next_probe_at=at + 660
            ),
            [
                NewNotification(
                    id="01KB0000000000000000000001",
                    kind="disabled",
                    workspace_id="acme",
                    destination_id=AUTH_DISABLED,
                    integration="webhook",
                    created_at=at + 60,
                    message="Disabled after 5 auth failures: fix the credential, then re-enable it.",
                    first_seen_at=at,
                    failures=5,
                    status_code=401,
                    sample_body='{"error": "invalid token"}',
                )
            ],
        )
    finally:
        store.close()


@asynccontextmanager
async def alerts_running(app: FastAPI) -> AsyncIterator[None]:
    """The auth alerts' part of the engine's lifespan (`delivery.engine.build_app`), without a worker."""
    alerts: AuthAlerts = app.state.context.alerts
    await alerts.start()
    task = asyncio.create_task(alerts.run())
    try:
        yield
    finally:
        alerts.stop()
        await task
        await alerts.close()


@dataclass
class Engine:
    """The app under test and what stands behind it."""

    app: FastAPI
    queue: SqliteQueue
    config: Config


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    config = config_for(tmp_path)
    seed_notifications(tmp_path)
    # NORMAL: the same commits, without an fsync each (what a power cut keeps is not tested here).
    queue = SqliteQueue(tmp_path / "queue", synchronous="NORMAL")
    app = create_app(config, queue, clock=lambda: NOW, lifespan=alerts_running)
    # Sources and destinations changed live are stored and shown; the app's own config (what the
    # tracking API fans out by) is not swapped, as no engine takes the changes up here.
    live = LiveConfig(config, SqliteSettings(tmp_path / "settings"))
    app.state.context = dataclasses.replace(app.state.context, alerts=AuthAlerts(config), live=live)
    try:
        yield Engine(app, queue, config)
    finally:
        asgi.shutdown_lifespans()  # the alerts stop; schemathesis keeps an app's lifespan until then
        queue.close()
        live.store.close()


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one schemathesis run sent, got and found."""

    examples: int = 0
    """Requests sent and answered."""
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    """(operation, status) -> answers."""
    checks: set[str] = field(default_factory=set)
    """Names of the checks that ran."""
    failures: list[str] = field(default_factory=list)
    """Each failed check: operation, check, what, and a curl command that repeats it."""
    errors: list[str] = field(default_factory=list)
    """Errors of schemathesis itself (a schema it could not read, ...)."""
    acknowledged: list[requests.PreparedRequest] = field(default_factory=list)
    """Tracking requests answered 200."""

    def add(self, scenario: events.ScenarioFinished) -> None:
        recorder = scenario.recorder
        for interaction in recorder.interactions.values():
            response = interaction.response
            if response is None:
                continue
            self.examples += 1
            self.statuses[(recorder.label, response.status_code)] += 1
            if response.status_code == 200 and recorder.label.startswith("POST /v1/"):
                self.acknowledged.append(response.request)
        for checks in recorder.checks.values():
            for check in checks:
                self.checks.add(check.name)
                if check.failure_info is not None:
                    failure = check.failure_info.failure
                    self.failures.append(
                        f"{recorder.label} {check.name}: {failure.title}\n{failure.message}\n"
                        f"{check.failure_info.code_sample}"
                    )


def fuzz(app: FastAPI) -> Run:
    """Run schemathesis over every operation of `app`'s document."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=SCHEMATHESIS)
    run = Run()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            run.add(event)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            run.errors.append(repr(event))
    return run


# -- nothing lost --------------------------------------------------------------------------------

#: The call of each single-call path: `/v1/track`, and `/v1/t` as analytics.js posts it.
CALLS = {call.value: call for call in CallType} | {call.value[0]: call for call in CallType}


@dataclass
class Acknowledged:
    """What the 200 answers promised was stored, read again from the requests by the API's own parser."""

    message_ids: set[tuple[str, str]] = field(default_factory=set)
    """(source, messageId) of the messages that came with a messageId."""
    generated: Counter[str] = field(default_factory=Counter)
    """source -> messages that came without one (the engine made up an `api-` id)."""

    def add(self, request: requests.PreparedRequest, config: Config) -> None:
        raw = request.body.encode() if isinstance(request.body, str) else request.body
        assert isinstance(raw, bytes)  # a 200 had a JSON body
        headers = {name: str(value) for name, value in request.headers.items()}
        body = parse_json(decode_body(raw, headers.get("Content-Encoding")))
        key = request_write_key(basic_auth_write_key(headers.get("Authorization")), body)
        source = config.source_for_write_key(key)
        assert source is not None
        call = urlsplit(str(request.url)).path.removeprefix("/v1/")
        if call in ("batch", "import", "b"):
            parsed = parse_batch(body, NOW)
            rejected = {rejection.index for rejection in parsed.rejections}
            items = [item for index, item in enumerate(body["batch"]) if index not in rejected]
        else:
            parsed = parse_call(body, CALLS[call], NOW)
            items = [body]
        for item, message in zip(items, parsed.messages, strict=True):
            if item.get("messageId") is None:
                self.generated[source.id] += 1
            else:
                self.message_ids.add((source.id, message.message_id))


def stored_events(queue: SqliteQueue) -> dict[tuple[str, str], list[set[str]]]:
    """(source, messageId) -> the destinations of the jobs of each event row stored under it."""
    db = sqlite3.connect(f"file:{queue.path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT e.id, e.source_id, e.message_id, j.destination_id FROM events e "
            "LEFT JOIN job_events je ON je.event_id = e.id LEFT JOIN jobs j ON j.id = je.job_id"
        ).fetchall()
    finally:
        db.close()
    by_row: dict[int, tuple[tuple[str, str], set[str]]] = {}
    for event_id, source_id, message_id, destination_id in rows:
        _, destinations = by_row.setdefault(event_id, ((source_id, message_id), set()))
        if destination_id is not None:
            destinations.add(destination_id)
    stored: dict[tuple[str, str], list[set[str]]] = {}
    for key, destinations in by_row.values():
        stored.setdefault(key, []).append(destinations)
    return stored


def assert_nothing_lost(run: Run, engine: Engine) -> None:
    acknowledged = Acknowledged()
    for request in run.acknowledged:
        acknowledged.add(request, engine.config)
    stored = stored_events(engine.queue)
    fanout = {
        source.id: {d.id for d in engine.config.destinations_for(source.id)}
        for source in engine.config.sources
    }
    # Each acknowledged messageId: one event, with one job per destination of its source.
    for source_id, message_id in acknowledged.message_ids:
        assert stored.get((source_id, message_id)) == [fanout[source_id]], (source_id, message_id)
    # The rest are the ids the engine made up, one event each: nothing else was stored.
    made_up = {key: rows for key, rows in stored.items() if key not in acknowledged.message_ids}
    assert Counter(source_id for source_id, _ in made_up) == acknowledged.generated
    for (source_id, message_id), rows in made_up.items():
        assert message_id.startswith(GENERATED_ID_PREFIX) and rows == [fanout[source_id]], message_id
    assert acknowledged.message_ids and acknowledged.generated  # both kinds were exercised


# -- the test ------------------------------------------------------------------------------------


def test_the_api_fuzzed_finds_nothing_and_loses_nothing(engine: Engine) -> None:
    run = fuzz(engine.app)
    assert not run.errors, run.errors
    assert not run.failures, "\n\n".join(run.failures)
    assert run.checks == set(CHECKS)
    assert run.examples >= 1_000
    operations = {operation for operation, _ in run.statuses}
    documented = {
        f"{method.upper()} {path}" for path, item in engine.app.openapi()["paths"].items() for method in item
    }
    assert operations == documented
    # The credentials worked: every authenticated operation was reached, and refused without them.
    preflights = {operation for operation in operations if operation.startswith("OPTIONS ")}
    for operation in operations - preflights - {"GET /healthz", "GET /metrics"}:
        assert run.statuses[(operation, 200)] + run.statuses[(operation, 201)] > 0, operation  # 201: added
        assert run.statuses[(operation, 401)] > 0, operation
    # Every page is allowed here (the default), so every preflight is granted.
    for operation in preflights:
        assert run.statuses[(operation, 204)] > 0 and run.statuses[(operation, 403)] == 0, operation
    assert run.acknowledged
    assert_nothing_lost(run, engine)
