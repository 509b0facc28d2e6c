"""The transport seam: one `post()` that each HTTP client implements, and what it gives back.

A `Transport` POSTs a body once and returns the final `Response`, whatever
its status, or raises `TransportError` with the code users know for why
there was none. Each client maps its own exceptions at its own edge
(`delivery.transport.errors.transport_error`), so nothing above the seam
knows which client ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

#: The code of an exception no table knows: recorded, retried and logged as an error until one does.
UNCLASSIFIED_CODE: Final = "EUNCLASSIFIED"


@dataclass(frozen=True, slots=True)
class Response:
    """A final response, as much of it as the engine reads."""

    status: int
    """The status the server sent, any number (nonstandard ones included)."""
    body: bytes
    """The body's first bytes, at most the `read_limit` of the request."""
    retry_after: str | None = None
    """The raw Retry-After header, if the response had one."""


class TransportError(Exception):
    """No response: the request failed, and `code` says how.

    Raised `from` the exception that stopped the request. Its text is that
    exception's chain (`describe_chain`), not redacted.
    """

    def __init__(self, code: str, description: str, *, unclassified: str | None = None) -> None:
        super().__init__(description)
        self.code = code
        """A code `ingest.taxonomy.classify_transport` knows (ECONNREFUSED, CERT_HAS_EXPIRED, ...)."""
        self.unclassified = unclassified
        """Why no table knows the exception (then `code` is `UNCLASSIFIED_CODE`); None when one does."""


class Transport(Protocol):
    """An HTTP client behind the seam."""

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float, read_limit: int
    ) -> Response:
        """POST `body` to `url` once; the final response, with at most `read_limit` body bytes.

        Redirects are not followed. Raises only `TransportError` (cancellation
        passes through), by `timeout_s` at the latest.
        """
        ...

    async def close(self) -> None:
        """Close every connection; later posts raise `TransportError`."""
        ...
