"""The egress proxy: where `[engine] egress_proxy` sends every delivery, and what its URL may be.

Both clients speak to the proxy in plain HTTP, as smokescreen and squid
expect: a request to an `http` destination goes to the proxy in absolute
form (`POST http://host/path HTTP/1.1`), one to an `https` destination
asks for a tunnel (`CONNECT host:443 HTTP/1.1`) and runs TLS with the
destination inside it. The proxy then resolves the destination's name and
enforces egress; the engine cannot see where a name leads, so it applies
the target policy only to what it can judge without a lookup (IP literals,
`localhost`, `.invalid`). The proxy's own address is exempt from the
policy: the operator named it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class EgressProxy:
    """An HTTP proxy's address."""

    host: str
    """Its host name or IP address (no brackets), as the URL gave it."""
    port: int
    """Its port (the URL must give one)."""

    @classmethod
    def parse(cls, url: str) -> EgressProxy:
        """The proxy `url` names (`http://host:port`); ValueError saying what is wrong with it."""
        if any(char.isspace() or not char.isprintable() for char in url):
            raise ValueError("must not contain whitespace or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"is not a valid URL ({exc})") from None
        if parts.scheme != "http":
            raise ValueError(
                f"must be an http://host:port URL, got scheme {parts.scheme!r} (the engine speaks "
                "plain HTTP to the proxy; https deliveries go through it in CONNECT tunnels)"
            )
        if "@" in parts.netloc:
            raise ValueError(
                "must not carry credentials (user:password@host): proxy authentication is not supported"
            )
        if not parts.hostname:
            raise ValueError("must name the proxy's host (http://host:port)")
        if port is None:
            raise ValueError(f"must give the proxy's port (http://{parts.netloc}:port)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be http://host:port alone, without a path or query")
        return cls(parts.hostname, port)

    @property
    def url(self) -> str:
        """`http://host:port` (an IPv6 address in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
