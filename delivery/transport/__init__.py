"""How the engine's requests reach destinations: the HTTP clients behind one seam.

`open_transport(name)` gives a `Transport` (`base.py`): one `post()` that
returns a `Response` or raises `TransportError` with the code users know.
This is the only module that knows which client is which: the engine's own
HTTP/1.1 client (`http1.py`, "builtin") and aiohttp (`aiohttp_client.py`).
Beside them: `errors.py` (exceptions -> transport codes), `redaction.py`
(what is kept of bodies and error texts), `targets.py` (the target policy
each client applies to the addresses it connects to, and RFC 6761),
`proxy.py` (the egress proxy's address).
"""

from __future__ import annotations

import os
import ssl
from typing import Final

from delivery.transport.base import UNCLASSIFIED_CODE, Response, Transport, TransportError
from delivery.transport.targets import PRIVATE_ALLOWED, Resolve, TargetPolicy, system_resolve

__all__ = [
    "CLIENTS",
    "UNCLASSIFIED_CODE",
    "Response",
    "Transport",
    "TransportError",
    "open_transport",
]

#: The clients `[engine] http_client` may name: the engine's own HTTP/1.1 client, or aiohttp.
CLIENTS: Final = ("builtin", "aiohttp")


def open_transport(
    name: str,
    *,
    ca_bundle: str | os.PathLike[str] | None = None,
    limit: int = 256,
    limit_per_host: int = 32,
    keepalive_s: float = 4.0,
    user_agent: str = "deliverydash/0.1",
    targets: TargetPolicy = PRIVATE_ALLOWED,
    egress_proxy: str | None = None,
    resolver: Resolve = system_resolve,
) -> Transport:
    """The client `name` (one of `CLIENTS`); nothing is connected until its first post.

    `ca_bundle` is a PEM file of CAs trusted in addition to the system's.
    At most `limit_per_host` requests run at once per host, and `limit` in
    all (aiohttp only: the built-in client has no overall pool bound).
    A connection idle for `keepalive_s` is not reused.

    Each new connection goes to the addresses `targets` permits among
    those `resolver` answers (the system's; tests inject their own). The
    default policy refuses only cloud metadata addresses: it suits the
    operator's own endpoints; deliveries pass the engine's
    (`EngineConfig.target_policy`). With `egress_proxy` (`http://host:port`)
    every request goes through that proxy, which resolves the names.
    """
    if name not in CLIENTS:
        raise ValueError(f"http_client must be one of {', '.join(CLIENTS)}, got {name!r}")
    tls = ssl.create_default_context()
    if ca_bundle:
        tls.load_verify_locations(cafile=os.fspath(ca_bundle))
    # Imported here, not above: the configuration imports this package for
    # CLIENTS, and a process that never sends should not load aiohttp.
    if name == "builtin":
        from delivery.transport import http1

        return http1.Client(
            ssl_context=tls,
            limit_per_host=limit_per_host,
            keepalive_s=keepalive_s,
            user_agent=user_agent,
            targets=targets,
            egress_proxy=egress_proxy,
            resolver=resolver,
        )
    from delivery.transport import aiohttp_client

    return aiohttp_client.Client(
        ssl_context=tls,
        limit=limit,
        limit_per_host=limit_per_host,
        keepalive_s=keepalive_s,
        user_agent=user_agent,
        targets=targets,
        egress_proxy=egress_proxy,
        resolver=resolver,
    )
