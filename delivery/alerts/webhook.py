"""The alerts webhook: each notification POSTed to `[alerts] webhook_url`, retried until it is taken.

`AlertWebhook.submit(notification)` returns at once; a task of its own then
makes the attempts, so neither the worker nor the store's writes ever wait
for the webhook. The schedule is the deliveries' arithmetic
(`delivery.retry.decide`) with the `[alerts]` webhook settings:

- attempt 1 at once; a failure that may pass (by the taxonomy: no
  connection, a reset or a timeout, 408, 429, a 5xx but 501 and 505) is
  tried again after ``webhook_backoff_base_s x 2^(n-1)`` (2 s, 4 s, 8 s, ...)
  up to ``webhook_backoff_max_s`` (5 min), the last 20 % of it drawn at
  random, or later when the receiver's `Retry-After` asks (honoured up to
  ``webhook_backoff_max_s``);
- it gives up after ``webhook_max_attempts`` (10, about 13 minutes of
  trying) or when the next attempt would start more than
  ``webhook_retry_window_s`` (1 h) after the notification was raised, and
  at once on an answer retrying cannot change (a 3xx, which is not followed;
  another 4xx; a TLS failure);
- each notification has its own schedule, so a receiver that recovers may
  get them out of order: each carries its `id` (a ULID) and `created_at`.

What happened is kept in memory for `/admin/status` (`report()`): how many
are waiting, delivered and given up, the last failure and the last one
given up (status, error class and code, never the URL, which may hold a
token). `stop()` lets attempts in flight end, makes the first attempt of
anything submitted but not yet tried, and gives up on the retries still
waiting (logged): the notifications themselves are in the store, which is
the record (docs/notifications.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from delivery.config import AlertsConfig, Secret
from delivery.retry import RetryPolicy, decide
from delivery.transport import Transport, TransportError
from ingest.notifications import Notification
from ingest.taxonomy import Classification, Outcome, classify_status, classify_transport

log = logging.getLogger(__name__)

#: Fraction of each backoff delay drawn at random, as the deliveries' default (`[engine] backoff_jitter`).
JITTER: Final = 0.2
#: Pending notifications `report()` lists, oldest first (the counts cover them all).
REPORTED_PENDING: Final = 20


class GaveUp(StrEnum):
    """Why a notification was not delivered to the webhook."""

    TERMINAL = "terminal"
    """An answer retrying would not change (3xx, 4xx but 408 and 429, TLS)."""
    MAX_ATTEMPTS = "max_attempts"
    """`webhook_max_attempts` attempts failed."""
    RETRY_WINDOW = "retry_window"
    """The next attempt would start past `webhook_retry_window_s` after the notification was raised."""
    ENGINE_STOPPED = "engine_stopped"
    """The engine stopped while a retry was waiting."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt to tell the webhook about a notification."""

    notification_id: str
    kind: str
    destination_id: str
    attempt: int
    """1 for the first attempt."""
    at: float
    """When the attempt ended (epoch seconds)."""
    status_code: int | None
    """The receiver's status; None when there was no response."""
    error_class: str
    """The taxonomy's class (`server`, `network`, `timeout`, ...)."""
    error_code: str
    """The status as text, or the transport code (`ECONNREFUSED`, `ESERVERDISCONNECT`, ...)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "notification_id": self.notification_id,
            "kind": self.kind,
            "destination_id": self.destination_id,
            "attempt": self.attempt,
            "at": _iso(self.at),
            "status_code": self.status_code,
            "error_class": self.error_class,
            "error_code": self.error_code,
        }

    def describe(self) -> str:
        """`503 (server)`, `ECONNREFUSED (network)`: for log lines."""
        return f"{self.error_code} ({self.error_class})"


@dataclass(slots=True)
class _Pending:
    notification: Notification
    attempts: int = 0
    next_attempt_at: float | None = None
    """When a retry waits: its time; None while an attempt is due or in flight."""
    last_failure: Failure | None = None


@dataclass(slots=True)
class _Tally:
    delivered: int = 0
    given_up: int = 0
    failed_attempts: int = 0
    last_failure: Failure | None = None
    last_given_up: tuple[Failure, GaveUp] | None = None
    pending: dict[str, _Pending] = field(default_factory=dict)


def policy(alerts: AlertsConfig) -> RetryPolicy:
    """The webhook's retry schedule from the `[alerts]` table."""
    return RetryPolicy(
        max_attempts=alerts.webhook_max_attempts,
        retry_window_s=alerts.webhook_retry_window_s,
        backoff_base_s=alerts.webhook_backoff_base_s,
        backoff_max_s=alerts.webhook_backoff_max_s,
        jitter=JITTER,
        retry_after_max_s=alerts.webhook_backoff_max_s,
    )


def idle_report(configured: bool) -> dict[str, Any]:
    """`report()` of a webhook that has told nothing (or of an app without alerts)."""
    return {
        "configured": configured,
        "pending": 0,
        "delivered": 0,
        "given_up": 0,
        "failed_attempts": 0,
        "last_failure": None,
        "last_given_up": None,
        "pending_notifications": [],
    }


class AlertWebhook:
    """Tells `url` about each notification submitted; see the module docstring."""

    def __init__(
        self,
        url: Secret,
        transport: Transport,
        alerts: AlertsConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        """`transport` is closed by `close()`; `clock` gives epoch seconds; `rng` draws the jitter."""
        self._url = url
        self._transport = transport
        self._timeout_s = alerts.webhook_timeout_s
        self._policy = policy(alerts)
        self._clock = clock
        self._rng = rng or random.Random()
        self._tally = _Tally()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    def submit(self, notification: Notification) -> None:
        """Start telling the webhook about `notification`; returns at once (call on the event loop)."""
        self._tally.pending[notification.id] = _Pending(notification)
        task = asyncio.get_running_loop().create_task(self._deliver(notification), name="alerts webhook")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def report(self) -> dict[str, Any]:
        """What `/admin/status` shows under `alerts_webhook` (no URL, no secret)."""
        tally = self._tally
        pending = sorted(tally.pending.values(), key=lambda p: p.notification.id)
        given_up = tally.last_given_up
        return {
            "configured": True,
            "pending": len(pending),
            "delivered": tally.delivered,
            "given_up": tally.given_up,
            "failed_attempts": tally.failed_attempts,
            "last_failure": tally.last_failure.as_json() if tally.last_failure else None,
            "last_given_up": {**given_up[0].as_json(), "reason": str(given_up[1])} if given_up else None,
            "pending_notifications": [_pending_json(p) for p in pending[:REPORTED_PENDING]],
        }

    def stop(self) -> None:
        """Give up on the retries waiting; attempts in flight or not yet made still run once."""
        self._stopping.set()

    async def close(self) -> None:
        """`stop()`, wait for the attempts still running, close the client."""
        self.stop()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._transport.close()

    # -- one notification -----------------------------------------------------------------------

    async def _deliver(self, notification: Notification) -> None:
        pending = self._tally.pending[notification.id]
        body = json.dumps(notification.as_json()).encode()
        try:
            while True:
                pending.attempts += 1
                pending.next_attempt_at = None
                status, verdict, retry_after = await self._attempt(body)
                ended = self._clock()
                decision = decide(
                    verdict,
                    attempt=pending.attempts,
                    received_at=notification.created_at,
                    ended_at=datetime.fromtimestamp(ended, UTC),
                    retry_after=retry_after,
                    policy=self._policy,
                    rng=self._rng,
                )
                if decision.outcome is Outcome.DELIVERED:
                    self._delivered(pending)
                    return
                failure = self._failed(pending, status, verdict, ended)
                if decision.next_attempt_at is None:
                    self._give_up(pending, failure, self._why(decision.outcome, pending.attempts))
                    return
                delay = max(0.0, decision.next_attempt_at.timestamp() - ended)
                log.warning(
                    "alerts webhook: attempt %d for notification %s failed: %s; next attempt in %.1f s",
                    pending.attempts,
                    notification.id,
                    failure.describe(),
                    delay,
                )
                if await self._stopped_within(pending, ended + delay, delay):
                    self._give_up(pending, failure, GaveUp.ENGINE_STOPPED)
                    return
        except Exception:
            # A bug, such as a transport code the taxonomy does not know: said, never flattened.
            log.exception("alerts webhook: notification %s: attempts stopped by an error", notification.id)
        finally:
            self._tally.pending.pop(notification.id, None)

    async def _attempt(self, body: bytes) -> tuple[int | None, Classification, str | None]:
        """One POST: the receiver's status (None: no response), the taxonomy's verdict, its Retry-After."""
        try:
            response = await self._transport.post(
                self._url.reveal(),
                body,
                {"Content-Type": "application/json"},
                timeout_s=self._timeout_s,
                read_limit=0,  # only the status matters
            )
        except TransportError as exc:
            # Never the error's text: it may quote the URL, which may hold a token.
            return None, classify_transport(exc.code), None
        return response.status, classify_status(response.status), response.retry_after

    async def _stopped_within(self, pending: _Pending, at: float, delay: float) -> bool:
        """Wait `delay` seconds for the next attempt; whether the engine stopped meanwhile."""
        pending.next_attempt_at = at
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            return False
        return True

    def _why(self, outcome: Outcome, attempts: int) -> GaveUp:
        if outcome is Outcome.FAILED:
            return GaveUp.TERMINAL
        return GaveUp.MAX_ATTEMPTS if attempts >= self._policy.max_attempts else GaveUp.RETRY_WINDOW

    def _delivered(self, pending: _Pending) -> None:
        self._tally.delivered += 1
        if pending.attempts > 1:
            log.info(
                "alerts webhook: notification %s delivered at attempt %d",
                pending.notification.id,
                pending.attempts,
            )

    def _failed(self, pending: _Pending, status: int | None, verdict: Classification, at: float) -> Failure:
        note = pending.notification
        failure = Failure(
            notification_id=note.id,
            kind=note.kind,
            destination_id=note.destination_id,
            attempt=pending.attempts,
            at=at,
            status_code=status,
            error_class=str(verdict.error_class),
            error_code=verdict.error_code,
        )
        pending.last_failure = failure
        self._tally.failed_attempts += 1
        self._tally.last_failure = failure
        return failure

    def _give_up(self, pending: _Pending, failure: Failure, why: GaveUp) -> None:
        self._tally.given_up += 1
        self._tally.last_given_up = (failure, why)
        log.warning(
            "alerts webhook: gave up on notification %s after %d attempts (%s); last: %s. "
            "It stays in the store (deliverydash notifications, GET /admin/notifications)",
            failure.notification_id,
            pending.attempts,
            why,
            failure.describe(),
        )


def _pending_json(pending: _Pending) -> dict[str, Any]:
    note = pending.notification
    return {
        "notification_id": note.id,
        "kind": note.kind,
        "destination_id": note.destination_id,
        "attempts": pending.attempts,
        "next_attempt_at": _iso(pending.next_attempt_at) if pending.next_attempt_at is not None else None,
        "last_failure": pending.last_failure.as_json() if pending.last_failure else None,
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
