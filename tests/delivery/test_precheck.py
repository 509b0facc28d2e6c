"""Pre-send checks: removed and disabled destinations, and hosts that resolve to private addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from delivery.config import Destination, EngineConfig
from delivery.precheck import DISABLED, PRIVATE_TARGET, UNKNOWN_DESTINATION, Prechecks
from ingest.taxonomy import Classification

STRICT = EngineConfig(allow_private_targets=False)
LENIENT = EngineConfig(allow_private_targets=True)
ADDRESSES = {
    "hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "rebind.example.com": ["93.184.215.14", "127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
}


def hook(url: str, *, enabled: bool = True) -> Destination:
    return Destination(id="hook", source="web", integration="webhook", url=url, enabled=enabled)


class FakeDns:
    def __init__(self) -> None:
        self.lookups: list[str] = []
        self.now = 0.0

    async def resolve(self, host: str) -> list[str]:
        self.lookups.append(host)
        if host not in ADDRESSES:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return ADDRESSES[host]


def verdict(
    engine: EngineConfig, destination: Destination | None, dns: FakeDns | None = None
) -> Classification | None:
    dns = dns or FakeDns()
    checks = Prechecks(engine, resolver=dns.resolve, clock=lambda: dns.now)
    return asyncio.run(checks.verdict(destination))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.example.com/x", None),
        ("http://127.0.0.1:9001/hook", PRIVATE_TARGET),
        ("http://localhost/hook", PRIVATE_TARGET),
        ("http://[::1]:8080/", PRIVATE_TARGET),
        ("http://rebind.example.com/", PRIVATE_TARGET),  # any private address refuses the host
        ("http://metadata.example.com/latest", PRIVATE_TARGET),
        ("http://nowhere.invalid/", None),  # not refused: the request fails as ENOTFOUND and is retried
    ],
)
def test_private_targets_are_refused_unless_allowed(url: str, expected: Classification | None) -> None:
    assert verdict(STRICT, hook(url)) == expected
    assert verdict(LENIENT, hook(url)) is None


def test_removed_and_disabled_destinations() -> None:
    assert verdict(LENIENT, None) == UNKNOWN_DESTINATION
    assert verdict(LENIENT, hook("https://hooks.example.com/x", enabled=False)) == DISABLED
    assert UNKNOWN_DESTINATION.error_class == "precheck" and DISABLED.error_class == "disabled"
    assert not (UNKNOWN_DESTINATION.retryable or DISABLED.retryable or PRIVATE_TARGET.retryable)


def test_a_verdict_is_kept_for_its_ttl() -> None:
    dns = FakeDns()
    checks = Prechecks(STRICT, resolver=dns.resolve, clock=lambda: dns.now, ttl_s=10)
    target = hook("https://hooks.example.com/x")

    async def ask() -> None:
        assert await checks.verdict(target) is None

    asyncio.run(ask())
    dns.now = 9.9
    asyncio.run(ask())
    assert dns.lookups == ["hooks.example.com"]
    dns.now = 10.0
    asyncio.run(ask())
    assert dns.lookups == ["hooks.example.com"] * 2


def test_the_system_resolver_is_used_by_default() -> None:
    # This host's own name, looked up by the system resolver, is judged by its addresses
    # (usually loopback or private; skipped where the name does not resolve).
    name = socket.gethostname()
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        pytest.skip("this host's name does not resolve")
    checks = Prechecks(STRICT)
    expected = PRIVATE_TARGET if any(not _global(a) for a in addresses) else None
    assert asyncio.run(checks.verdict(hook(f"http://{name}:9001/"))) == expected


def _global(address: str) -> bool:
    return ipaddress.ip_address(address.split("%")[0]).is_global
