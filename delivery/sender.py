"""The HTTP call: one POST per `Sender.send` through the transport seam, never an exception out.

`send` returns a `SendResult`: a response (status, the start of its body
with secrets redacted, the raw Retry-After) or the transport code of the
failure that stopped the request (with its chain as redacted text), and
the request's duration either way. `delivery.classify` judges it; nothing
here decides about retries, and nothing here knows which HTTP client ran
(`delivery.transport.open_transport`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from delivery.transport import Transport, TransportError, open_transport
from delivery.transport.errors import transport_error
from delivery.transport.redaction import keep, redact, secrets_of
from delivery.transport.targets import PRIVATE_ALLOWED, TargetPolicy
from ingest.schema import RESPONSE_BODY_LIMIT

#: Bytes of a response body read: twice what is kept, so that a secret across
#: the cut at RESPONSE_BODY_LIMIT is still seen whole when it is redacted.
BODY_READ_LIMIT: Final = 2 * RESPONSE_BODY_LIMIT


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one request produced: a status, or the transport code of what stopped it."""

    duration_ms: float
    """From just before the request to the end of reading the response, in milliseconds."""
    status: int | None = None
    """The status the server sent, nonstandard numbers included; None without a response."""
    body: str | None = None
    """For a status outside 2xx: the body's first `RESPONSE_BODY_LIMIT` bytes, secrets
    redacted ("" when there was none, or the client could not read it); None otherwise."""
    retry_after: str | None = None
    """The raw Retry-After header, if the response had one."""
    error_code: str | None = None
    """The transport code (ECONNREFUSED, CERT_HAS_EXPIRED, EUNCLASSIFIED, ...) when there was no response."""
    error_message: str | None = None
    """The failure's exception chain as text, secrets redacted, when there was no response."""
    unclassified: str | None = None
    """Why no table knows the failure's exception (`error_code` is then EUNCLASSIFIED),
    secrets redacted; None otherwise."""

    def __post_init__(self) -> None:
        if (self.status is None) == (self.error_code is None):
            raise ValueError("a SendResult holds either a status or an error")


class Sender:
    """POSTs bodies to destinations through one transport (pooled connections).

    Use as `async with Sender(...) as sender:`, or call `close()` when done.
    """

    def __init__(
        self,
        *,
        request_timeout_s: float,
        limit: int = 256,
        limit_per_host: int = 32,
        ca_bundle: str | os.PathLike[str] | None = None,
        keepalive_timeout_s: float = 4.0,
        user_agent: str = "deliverydash/0.1",
        http_client: str = "builtin",
        targets: TargetPolicy = PRIVATE_ALLOWED,
        egress_proxy: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        """Open `http_client` (`delivery.transport.CLIENTS`) with these settings, or use `transport`.

        Nothing is connected yet. `ca_bundle` is a PEM file of CAs trusted
        in addition to the system's. `keepalive_timeout_s` stays under the
        5 s idle timeout of common servers (Node, Apache), so a pooled
        connection is not reused just as the server closes it, which would
        fail a POST that cannot be retried transparently. `targets` is the
        policy each new connection is held to (the engine passes its own;
        the default refuses cloud metadata addresses only), `egress_proxy`
        the proxy every request goes through. A `transport` given (a
        test's) replaces the client, and its settings with it.
        """
        if transport is None:
            transport = open_transport(
                http_client,
                ca_bundle=ca_bundle,
                limit=limit,
                limit_per_host=limit_per_host,
                keepalive_s=keepalive_timeout_s,
                user_agent=user_agent,
                targets=targets,
                egress_proxy=egress_proxy,
            )
        self._transport = transport
        self._timeout_s = request_timeout_s
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the transport and its connections; later sends fail (as results)."""
        self._closed = True
        await self._transport.close()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """POST `body` to `url` once; every failure comes back as a result.

        Redirects are not followed, cookies are not kept. Only cancellation
        (a BaseException) passes through, so shutdown still works.
        """
        started = time.perf_counter()
        try:
            if self._closed:
                raise RuntimeError("the Sender is closed")
            response = await self._transport.post(
                url, body, headers, timeout_s=self._timeout_s, read_limit=BODY_READ_LIMIT
            )
        except Exception as error:
            return _failed(error, started, url, headers)
        status = response.status
        duration_ms = (time.perf_counter() - started) * 1000
        if 200 <= status < 300:
            return SendResult(duration_ms, status=status, retry_after=response.retry_after)
        text = response.body.decode("utf-8", errors="replace")
        kept = keep(text, secrets_of(headers, url), RESPONSE_BODY_LIMIT)
        return SendResult(duration_ms, status=status, body=kept, retry_after=response.retry_after)


def _failed(error: Exception, started: float, url: str, headers: Mapping[str, str]) -> SendResult:
    """The result of a request that raised: its transport code and its chain, redacted.

    Anything but a `TransportError` (the closed check, a client's bug) is
    mapped here, and is unclassified unless it is one of Python's own.
    """
    duration_ms = (time.perf_counter() - started) * 1000
    failure = error if isinstance(error, TransportError) else transport_error(error)
    secrets = secrets_of(headers, url)
    return SendResult(
        duration_ms,
        error_code=failure.code,
        error_message=keep(str(failure), secrets, RESPONSE_BODY_LIMIT),
        unclassified=redact(failure.unclassified, secrets) if failure.unclassified else None,
    )
