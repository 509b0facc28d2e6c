"""Auth-failure alerts in a running engine: the state machine wired to the worker, the store and a webhook.

`AuthAlerts` connects `delivery.alerts.auth_watch` to the engine at three points:

- `on_settled(record)`: chained after `Metrics.record` on the worker's
  hook, so it sees every committed attempt record once, on the event loop;
- `admit(destination_id)`: the pre-send checks' `admit`, so an
  auto-disabled destination's jobs are skipped (`auto_disabled`) except a
  probe per `probe_interval_s`;
- `enable(destination_id)`: `POST /admin/destinations/{id}/enable`.

The state changes in memory at once (the next job's precheck sees it); what
it must keep, the destination's standing and the notifications raised, goes
through one queue to a task (`run`) that writes each change to the
`NotificationStore` in a thread, in order, and then POSTs each notification
to `[alerts] webhook_url` if one is set. The webhook is told once, without
retries: the store is the durable record, and a lost POST is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from delivery.alerts.auth_watch import (
    AuthWatch,
    Change,
    Observation,
    Phase,
    Policy,
    Transition,
    WatchState,
    observation,
)
from delivery.alerts.store import NewNotification, NotificationStore
from delivery.config import AlertsConfig, Config
from delivery.transport import Transport, TransportError, open_transport
from ingest.ids import new_id
from ingest.notifications import Notification

log = logging.getLogger(__name__)

#: The `User-Agent` of webhook POSTs.
USER_AGENT: Final = "deliverydash-alerts"


def policy(alerts: AlertsConfig) -> Policy:
    """The state machine's thresholds from the `[alerts]` table."""
    return Policy(
        disable_after_failures=alerts.disable_after_failures,
        disable_after_s=alerts.disable_after_s,
        probe_interval_s=alerts.probe_interval_s,
        auto_disable=alerts.auto_disable,
    )


@dataclass(slots=True)
class _Write:
    """One change to store: a destination's new standing and what it raised."""

    destination_id: str
    state: WatchState
    notifications: Sequence[NewNotification] = ()
    done: asyncio.Future[None] | None = field(default=None)


class AuthAlerts:
    """Watches auth failures per destination; see the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        on_notification: Callable[[str], None] | None = None,
    ) -> None:
        """`clock` gives epoch seconds (the worker's clock); `on_notification` hears each kind raised."""
        self._config = config
        self._clock = clock
        self._on_notification = on_notification or (lambda kind: None)
        self._watch = AuthWatch(policy(config.alerts))
        self._store: NotificationStore | None = None
        self._writes: asyncio.Queue[_Write | None] = asyncio.Queue()
        self._webhook: Transport | None = None

    @property
    def started(self) -> bool:
        """Whether `start` has run (the store is open)."""
        return self._store is not None

    async def start(self) -> None:
        """Open the store and take up the standing stored by an earlier run."""
        data_dir = self._config.engine.data_dir
        self._store = store = await asyncio.to_thread(NotificationStore, data_dir)
        stored = await asyncio.to_thread(store.watch_states)
        known = {d: s for d, s in stored.items() if self._config.destination(d) is not None}
        self._watch = AuthWatch(self._watch.policy, known)
        for destination_id in self._watch.disabled():
            log.warning("destination %s is still disabled by auth failures; probing it", destination_id)
        if self._config.alerts.webhook_url is not None:
            self._webhook = open_transport(
                "builtin", ca_bundle=self._config.engine.ca_bundle, user_agent=USER_AGENT
            )

    async def run(self) -> None:
        """Store (then post) each change, in order, until `stop`; what was queued before it is written."""
        while (write := await self._writes.get()) is not None:
            await self._apply(write)

    def stop(self) -> None:
        """End `run` once the changes queued so far are written. Call after the worker stopped."""
        self._writes.put_nowait(None)

    async def close(self) -> None:
        """Close the webhook client and the store."""
        if self._webhook is not None:
            await self._webhook.close()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    # -- the hooks ----------------------------------------------------------------------------------

    def admit(self, destination_id: str) -> bool:
        """Whether a job of this destination may be sent now (the precheck's `admit`)."""
        return self._watch.admit(destination_id, self._clock())

    def on_settled(self, record: Mapping[str, Any]) -> None:
        """Take in one committed attempt record (the worker's `on_settled`, after metrics)."""
        seen = observation(record)
        destination_id = str(record.get("destination_id"))
        if seen is Observation.IGNORED or (
            seen is not Observation.AUTH_FAILURE and self._watch.state(destination_id).phase is Phase.HEALTHY
        ):
            return  # the common case: nothing to change
        transitions = self._watch.observe(destination_id, seen, self._clock())
        if transitions:
            notes = [self._raised(transition, record) for transition in transitions]
            self._queue(_Write(destination_id, transitions[-1].after, notes))

    async def enable(self, destination_id: str) -> Notification | None:
        """Re-enable a destination disabled by auth failures; its notification, or None if it was not.

        Returns once the change is stored (and before the webhook is told).
        """
        transitions = self._watch.enable(destination_id, self._clock())
        if not transitions:
            return None
        note = self._raised(transitions[0], None)
        done = asyncio.get_running_loop().create_future()
        self._queue(_Write(destination_id, transitions[0].after, [note], done))
        await done
        return note.stored()

    def disabled_count(self) -> int:
        """How many destinations auth failures have disabled now."""
        return len(self._watch.disabled())

    def state(self, destination_id: str) -> WatchState:
        """A destination's standing now."""
        return self._watch.state(destination_id)

    # -- internals ----------------------------------------------------------------------------------

    def _queue(self, write: _Write) -> None:
        for note in write.notifications:
            log.warning("notification %s for %s: %s", note.kind, note.destination_id, note.message)
            self._on_notification(note.kind)
        self._writes.put_nowait(write)

    async def _apply(self, write: _Write) -> None:
        try:
            if self._store is None:
                raise RuntimeError("AuthAlerts.start() was not called")
            await asyncio.to_thread(
                self._store.record, write.destination_id, write.state, write.notifications
            )
        except Exception as exc:
            log.exception("could not store the auth standing of %s", write.destination_id)
            if write.done is not None and not write.done.done():
                write.done.set_exception(exc)
            return
        if write.done is not None and not write.done.done():
            write.done.set_result(None)
        for note in write.notifications:
            await self._post(note.stored())

    async def _post(self, notification: Notification) -> None:
        url = self._config.alerts.webhook_url
        if self._webhook is None or url is None:
            return
        body = json.dumps(notification.as_json()).encode()
        try:
            response = await self._webhook.post(
                url.reveal(),
                body,
                {"Content-Type": "application/json"},
                timeout_s=self._config.alerts.webhook_timeout_s,
                read_limit=0,  # only the status matters
            )
        except TransportError as exc:
            # Never quote the URL or the error's text: either may carry a token.
            log.warning("alerts webhook failed for notification %s: %s", notification.id, exc.code)
            return
        if response.status >= 300:
            log.warning("alerts webhook answered %d to notification %s", response.status, notification.id)

    def _raised(self, transition: Transition, record: Mapping[str, Any] | None) -> NewNotification:
        """The notification a transition raises, with what the record that caused it shows."""
        destination = self._config.destination(transition.destination_id)
        integration = destination.integration if destination is not None else "unknown"
        workspace = self._workspace(transition.destination_id, record)
        streak = (
            transition.before if transition.change in (Change.RECOVERED, Change.ENABLED) else transition.after
        )
        status_code = record.get("status_code") if record is not None else None
        body = record.get("response_body") if record is not None else None
        quoting = transition.change in (Change.AUTH_FAILING, Change.DISABLED)
        return NewNotification(
            id=new_id(),
            kind=str(transition.change),
            workspace_id=workspace,
            destination_id=transition.destination_id,
            integration=integration,
            created_at=transition.at,
            message=self._message(transition, streak),
            first_seen_at=streak.first_failure_at,
            failures=streak.failures,
            status_code=status_code if quoting else None,
            sample_body=body if quoting else None,
            resolves=transition.change in (Change.RECOVERED, Change.ENABLED),
        )

    def _workspace(self, destination_id: str, record: Mapping[str, Any] | None) -> str:
        if record is not None and record.get("workspace_id"):
            return str(record["workspace_id"])
        destination = self._config.destination(destination_id)
        if destination is not None:
            for source in self._config.sources:
                if source.id == destination.source:
                    return source.workspace
        return "unknown"

    def _message(self, transition: Transition, streak: WatchState) -> str:
        alerts = self._config.alerts
        name = transition.destination_id
        probe = _duration(alerts.probe_interval_s)
        if transition.change is Change.AUTH_FAILING:
            then = (
                f"; after {alerts.disable_after_failures} auth failures in a row, or "
                f"{_duration(alerts.disable_after_s)} of only auth failures, it will be disabled"
                if alerts.auto_disable
                else ""
            )
            return f"{name}: the partner refused the credential (401/403); update it{then}."
        if transition.change is Change.DISABLED:
            return (
                f"{name}: disabled after {streak.failures} auth failures; its jobs are skipped "
                f"(auto_disabled) and one is sent every {probe} as a probe. Fix the credential: the "
                f"first probe delivered re-enables it, or POST /admin/destinations/{name}/enable."
            )
        if transition.change is Change.RECOVERED:
            was = (
                "re-enabled: a probe was delivered" if streak.phase is Phase.DISABLED else "delivering again"
            )
            return f"{name}: {was} after {streak.failures} auth failures."
        return f"{name}: re-enabled by hand; its jobs are sent again."


def chain(*hooks: Callable[[Mapping[str, Any]], None]) -> Callable[[Mapping[str, Any]], None]:
    """One `on_settled` calling each hook in turn; a hook that raises does not stop the others."""

    def call(record: Mapping[str, Any]) -> None:
        for hook in hooks:
            try:
                hook(record)
            except Exception:
                log.exception("on_settled hook %r failed for attempt %s", hook, record.get("attempt_id"))

    return call


def _duration(seconds: float) -> str:
    """`90` -> `1 min 30 s`; `1800` -> `30 min`."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:g} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{secs} s" if secs else ""]
    return " ".join(part for part in parts if part)
