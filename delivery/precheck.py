"""Checks made before a request: the jobs that are settled without one.

A job fails a pre-send check when::

    destination no longer in the config ........ precheck  unknown_destination
    destination disabled ........................ disabled  disabled
    host resolves to a private address .......... precheck  private_target
      (loopback, private, link-local, ...; only while allow_private_targets is false)

and is then recorded once with outcome `skipped` (docs/attempt-log.md). None
of these is retryable: someone has to change the configuration.

Private targets are refused when the configuration is loaded if the host is
an IP literal or `localhost`; a host *name* can only be judged by the
addresses it resolves to, and those can change, so they are checked here,
when the job is sent. Verdicts are kept for `ttl_s` (aiohttp keeps its own
DNS answers 10 s too). A name that does not resolve is not refused: the
request is made and fails as `ENOTFOUND`, a retryable delivery failure.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

from delivery.config import Destination, EngineConfig, is_private_target
from ingest.taxonomy import Classification, ErrorClass

UNKNOWN_DESTINATION: Final = Classification(ErrorClass.PRECHECK, "unknown_destination", False)
DISABLED: Final = Classification(ErrorClass.DISABLED, "disabled", False)
PRIVATE_TARGET: Final = Classification(ErrorClass.PRECHECK, "private_target", False)

#: Resolves a host name to the IP addresses it has now.
Resolve = Callable[[str], Awaitable[list[str]]]


async def resolve(host: str) -> list[str]:
    """The addresses `host` resolves to, by the system resolver (the one aiohttp uses)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class Prechecks:
    """Decides, before each request, whether a job's destination may be sent to."""

    def __init__(
        self,
        engine: EngineConfig,
        *,
        resolver: Resolve = resolve,
        clock: Callable[[], float] = time.monotonic,
        ttl_s: float = 10.0,
    ) -> None:
        self._check_targets = not engine.allow_private_targets
        self._resolve = resolver
        self._clock = clock
        self._ttl_s = ttl_s
        self._verdicts: dict[str, tuple[float, bool]] = {}
        """host -> (valid until, resolves to a private address)."""

    async def verdict(self, destination: Destination | None) -> Classification | None:
        """Why the job must not be sent, or None to send it."""
        if destination is None:
            return UNKNOWN_DESTINATION
        if not destination.enabled:
            return DISABLED
        if self._check_targets and await self._private(urlsplit(destination.url).hostname or ""):
            return PRIVATE_TARGET
        return None

    async def _private(self, host: str) -> bool:
        if is_private_target(host):
            return True
        cached = self._verdicts.get(host)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        try:
            addresses = await self._resolve(host)
        except OSError:
            # Not refused: the request fails on its own (ENOTFOUND, EAI_AGAIN) and is retried.
            return False
        private = any(is_private_target(address) for address in addresses)
        self._verdicts[host] = (self._clock() + self._ttl_s, private)
        return private
