"""Pre-send checks: removed and disabled destinations, and hosts the target policy refuses as written."""

from __future__ import annotations

import ipaddress

import pytest

from delivery.config import Destination, EngineConfig
from delivery.precheck import DISABLED, PRIVATE_TARGET, UNKNOWN_DESTINATION, Prechecks
from delivery.transport.targets import TARGET_REFUSED_CODE
from ingest.taxonomy import Classification, ErrorClass, classify_transport

STRICT = EngineConfig(allow_private_targets=False)
LENIENT = EngineConfig(allow_private_targets=True)
LISTED = EngineConfig(allowed_private_cidrs=(ipaddress.ip_network("10.1.0.0/16"),))


def hook(url: str, *, enabled: bool = True) -> Destination:
    return Destination(id="hook", source="web", integration="webhook", url=url, enabled=enabled)


def verdict(engine: EngineConfig, destination: Destination | None) -> Classification | None:
    return Prechecks(engine).verdict(destination)


@pytest.mark.parametrize(
    ("url", "strict", "lenient", "listed"),
    [
        ("https://hooks.example.com/x", None, None, None),
        ("http://127.0.0.1:9001/hook", PRIVATE_TARGET, None, PRIVATE_TARGET),
        ("http://localhost/hook", PRIVATE_TARGET, None, PRIVATE_TARGET),
        ("http://[::1]:8080/", PRIVATE_TARGET, None, PRIVATE_TARGET),
        ("http://10.1.2.3/", PRIVATE_TARGET, None, None),
        ("http://[::ffff:10.1.2.3]/", PRIVATE_TARGET, None, None),
        ("http://169.254.169.254/latest", PRIVATE_TARGET, PRIVATE_TARGET, PRIVATE_TARGET),
        # Names are never looked up here: the client judges the addresses it connects to.
        ("http://rebind.example.com/", None, None, None),
        ("http://nowhere.invalid/", None, None, None),
    ],
)
def test_hosts_are_judged_as_written(
    url: str,
    strict: Classification | None,
    lenient: Classification | None,
    listed: Classification | None,
) -> None:
    assert verdict(STRICT, hook(url)) == strict
    assert verdict(LENIENT, hook(url)) == lenient
    assert verdict(LISTED, hook(url)) == listed


def test_removed_and_disabled_destinations() -> None:
    assert verdict(LENIENT, None) == UNKNOWN_DESTINATION
    assert verdict(LENIENT, hook("https://hooks.example.com/x", enabled=False)) == DISABLED
    assert UNKNOWN_DESTINATION.error_class == "precheck" and DISABLED.error_class == "disabled"
    assert not (UNKNOWN_DESTINATION.retryable or DISABLED.retryable or PRIVATE_TARGET.retryable)


def test_a_refused_target_has_one_verdict_before_the_request_and_at_its_connect() -> None:
    assert classify_transport(TARGET_REFUSED_CODE) == PRIVATE_TARGET
    assert Classification(ErrorClass.PRECHECK, "private_target", False) == PRIVATE_TARGET
