"""The route dependency of `delivery.api.dependencies`."""

from __future__ import annotations

import inspect
import typing

from delivery.api import dependencies


def test_the_context_provider_runs_on_the_event_loop() -> None:
    # FastAPI runs a plain `def` dependency in a worker thread: one thread hop per request.
    (depends,) = typing.get_args(dependencies.ContextDep)[1:]
    assert inspect.iscoroutinefunction(depends.dependency)
