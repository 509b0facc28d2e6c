"""The dashboard's reader of the engine's backlog (`app.engine_status`) when there is no engine:
no request without one configured; an unreachable one answers an error fast, reused for a while."""

from __future__ import annotations

import pytest

from app import engine_status
from app.replay import ADMIN_TOKEN_ENV, ENGINE_URL_ENV
from tests.delivery.engine_process import free_port


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    engine_status.clear_cache()


def test_no_engine_configured_makes_no_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENGINE_URL_ENV, raising=False)
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    monkeypatch.setattr(engine_status, "_ask", lambda: pytest.fail("asked the engine"))
    found = engine_status.backlog("acme")
    assert found.rows == [] and found.error == "no engine is configured for this dashboard"


def test_an_unreachable_engine_is_said_so_and_asked_once_per_cache_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENGINE_URL_ENV, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "token")
    asked = []
    ask = engine_status._ask
    monkeypatch.setattr(engine_status, "_ask", lambda: asked.append(1) or ask())
    clock = iter([0.0, 1.0, engine_status.CACHE_S + 1])
    first = engine_status.backlog("acme", monotonic=lambda: next(clock))
    assert first.error is not None and "did not answer" in first.error
    assert engine_status.backlog("acme", monotonic=lambda: next(clock)).error == first.error
    assert len(asked) == 1
    engine_status.backlog("acme", monotonic=lambda: next(clock))
    assert len(asked) == 2
