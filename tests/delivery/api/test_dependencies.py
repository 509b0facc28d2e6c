"""The route dependencies of `delivery.api.dependencies`."""

from __future__ import annotations

import inspect
import typing

import pytest

from delivery.api import dependencies


@pytest.mark.parametrize(
    "alias",
    [
        dependencies.ConfigDep,
        dependencies.QueueDep,
        dependencies.StatsDep,
        dependencies.MetricsDep,
        dependencies.ClockDep,
        dependencies.ContextDep,
    ],
)
def test_providers_run_on_the_event_loop(alias: object) -> None:
    # FastAPI runs a plain `def` dependency in a worker thread: one thread hop per request.
    (depends,) = typing.get_args(alias)[1:]
    assert inspect.iscoroutinefunction(depends.dependency)
