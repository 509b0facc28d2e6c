"""Auth-failure alerts in a running engine: the state machine wired to the worker, the store and a webhook.

`AuthAlerts` connects `delivery.alerts.auth_watch` to the engine at three points:

- `on_settled(record)`: chained after `Metrics.record` on the worker's
  hook, so it sees every committed attempt record once, on the event loop;
- `admit(destination_id)`: the pre-send checks' `admit`, so an
  auto-disabled destination's jobs are skipped (`auto_disabled`) except a
  probe per `probe_interval_s`;
- `enable(destination_id)`: `POST /admin/destinations/{id}/enable`.

The state changes in memory at once (the next job's precheck sees it); what
it must keep, the destination's standing (every change of it, the streak's
count included) and the notifications raised, goes through one queue to a
task (`run`) that writes each change to the store in a thread, in order, and
then hands each notification to the alerts webhook (`delivery.alerts.webhook`)
if `[alerts] webhook_url` is set, which POSTs it from a task of its own and
retries with backoff, so nothing here waits for the receiver. A change that
raises nothing waits up to `COALESCE_S` for others, so a burst of 401s is
one write per destination. Only the engine that stored a notification hands
it to the webhook, so a fleet tells the receiver once.

The store follows the queue's backend (`open_store`): the SQLite file under
`data_dir` (`NotificationStore`), or, for a fleet, tables in the queue's
PostgreSQL database (`PostgresNotificationStore`), which every engine
writes and reads (docs/fleet.md, "Shared alert state"). There:

- each destination's standing has a version; this engine writes over the
  version it last stored or read, and when another engine wrote since (a
  re-enable through its admin API) the write is refused, and this engine
  takes up the stored standing instead (its refused change is dropped);
- every `refresh_s` (`REFRESH_S`) `run` re-reads every stored standing and
  takes up each one another engine changed, unless a change of its own to
  that destination is waiting to be written. So an engine that starts
  owning a destination (its owner died) already holds, and continues, its
  streak, and an owner applies a re-enable made elsewhere within `refresh_s`;
- `enable` is one transaction in the database, in order with this engine's
  own writes, from whichever engine is asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from delivery.alerts.auth_watch import (
    HEALTHY,
    AuthWatch,
    Change,
    Observation,
    Phase,
    Policy,
    Transition,
    WatchState,
    observation,
)
from delivery.alerts.postgres_store import PostgresNotificationStore
from delivery.alerts.store import NewNotification, NotificationStore, Standing
from delivery.alerts.webhook import AlertWebhook, idle_report
from delivery.config import AlertsConfig, Config
from delivery.transport import open_transport
from ingest.ids import new_id
from ingest.notifications import Notification

log = logging.getLogger(__name__)

#: The `User-Agent` of webhook POSTs.
USER_AGENT: Final = "deliverydash-alerts"
#: On the shared store: how often an engine re-reads the standing other engines stored (seconds).
REFRESH_S: Final = 2.0
#: How long a change that raises no notification waits for others to be written with it (seconds).
COALESCE_S: Final = 0.5

Store: TypeAlias = NotificationStore | PostgresNotificationStore


def open_store(config: Config) -> Store:
    """The store of `config`'s queue backend: the queue's PostgreSQL database, or the file under data_dir."""
    if config.queue.backend == "postgres":
        assert config.queue.dsn is not None  # the config checks it
        return PostgresNotificationStore(config.queue.dsn.reveal())
    return NotificationStore(config.engine.data_dir)


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
    notifications: list[NewNotification] = field(default_factory=list)
    done: list[asyncio.Future[None]] = field(default_factory=list)
    """Who waits for it to be stored (a manual enable on the file)."""
    generation: int = 0
    """The destination's generation when it was queued: a write of an older one is stale (not written)."""


@dataclass(slots=True)
class _Enable:
    """A manual re-enable on the shared store: one transaction there, in order with the writes."""

    destination_id: str
    done: asyncio.Future[Notification | None]


_Item: TypeAlias = _Write | _Enable | None


class AuthAlerts:
    """Watches auth failures per destination; see the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        on_notification: Callable[[str], None] | None = None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        """`clock` gives epoch seconds (the worker's clock); `on_notification` hears each kind raised.

        `refresh_s`: on the shared store, how often `run` re-reads what other engines stored.
        """
        self._config = config
        self._clock = clock
        self._on_notification = on_notification or (lambda kind: None)
        self._refresh_s = refresh_s
        self._watch = AuthWatch(policy(config.alerts))
        self._store: Store | None = None
        self._shared: PostgresNotificationStore | None = None
        self._writes: asyncio.Queue[_Item] = asyncio.Queue()
        self._webhook: AlertWebhook | None = None
        #: Shared store: the version of each destination's standing this engine last stored or read.
        self._versions: dict[str, int] = {}
        #: Bumped when a destination's standing is taken from the store: older queued writes are stale.
        self._generations: Counter[str] = Counter()
        #: Writes queued and not yet handled, per destination (the refresh leaves those alone).
        self._pending: Counter[str] = Counter()
        self._refresh_failing = False

    def reconfigure(self, config: Config) -> None:
        """Look destinations up in `config` from now on (sources and destinations changed live)."""
        self._config = config

    @property
    def started(self) -> bool:
        """Whether `start` has run (the store is open)."""
        return self._store is not None

    async def start(self) -> None:
        """Open the store and take up the standing stored by an earlier run (or, shared, by the fleet)."""
        self._store = store = await asyncio.to_thread(open_store, self._config)
        if isinstance(store, PostgresNotificationStore):
            self._shared = store
            standings = await asyncio.to_thread(store.standings)
            known = {d: s for d, s in standings.items() if self._config.destination(d) is not None}
            self._versions = {d: s.version for d, s in known.items()}
            stored = {d: s.state for d, s in known.items()}
        else:
            states = await asyncio.to_thread(store.watch_states)
            stored = {d: s for d, s in states.items() if self._config.destination(d) is not None}
        self._watch = AuthWatch(self._watch.policy, stored)
        for destination_id in self._watch.disabled():
            log.warning("destination %s is still disabled by auth failures; probing it", destination_id)
        url = self._config.alerts.webhook_url
        if url is not None:
            ca_bundle = self._config.engine.ca_bundle
            transport = open_transport("builtin", ca_bundle=ca_bundle, user_agent=USER_AGENT)
            self._webhook = AlertWebhook(url, transport, self._config.alerts, clock=self._clock)

    async def run(self) -> None:
        """Store (then post) each change, in order, until `stop`; what was queued before it is written.

        On the shared store, also re-read every `refresh_s` what other engines stored.
        """
        loop = asyncio.get_running_loop()
        refresh_at = loop.time() + self._refresh_s if self._shared is not None else float("inf")
        while True:
            items = await self._collect(refresh_at)
            stop = next((n for n, item in enumerate(items) if item is None), None)
            if stop is not None:
                await self._apply(items[:stop])
                return
            await self._apply(items)
            if self._shared is not None and loop.time() >= refresh_at:
                await self._refresh()
                refresh_at = loop.time() + self._refresh_s

    def stop(self) -> None:
        """End `run` once the changes queued so far are written. Call after the worker stopped."""
        self._writes.put_nowait(None)

    async def close(self) -> None:
        """Close the webhook (its attempts in flight end; retries waiting are given up) and the store."""
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
        before = self._watch.state(destination_id)
        if seen is Observation.IGNORED or (
            seen is not Observation.AUTH_FAILURE and before.phase is Phase.HEALTHY
        ):
            return  # the common case: nothing to change
        transitions = self._watch.observe(destination_id, seen, self._clock())
        after = self._watch.state(destination_id)
        if after != before:  # a transition, or the streak's count: both are stored
            notes = [self._raised(transition, record) for transition in transitions]
            self._queue(_Write(destination_id, after, notes))

    async def enable(self, destination_id: str) -> Notification | None:
        """Re-enable a destination disabled by auth failures; its notification, or None if it was not.

        Returns once the change is stored (and before the webhook is told).
        On the shared store the stored standing decides (whichever engine
        owns the destination), and its owner takes the change up within
        `refresh_s`.
        """
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._shared is not None:
            self._writes.put_nowait(_Enable(destination_id, done))
            note: Notification | None = await done
            return note
        transitions = self._watch.enable(destination_id, self._clock())
        if not transitions:
            return None
        raised = self._raised(transitions[0], None)
        self._queue(_Write(destination_id, transitions[0].after, [raised], [done]))
        await done
        return raised.stored()

    def disabled_count(self) -> int:
        """How many destinations auth failures have disabled now."""
        return len(self._watch.disabled())

    def state(self, destination_id: str) -> WatchState:
        """A destination's standing now."""
        return self._watch.state(destination_id)

    def webhook_report(self) -> dict[str, Any]:
        """The alerts webhook's deliveries and failures, for `/admin/status` (no URL, no secret)."""
        if self._webhook is None:
            return idle_report(self._config.alerts.webhook_url is not None)
        return self._webhook.report()

    # -- internals ----------------------------------------------------------------------------------

    def _queue(self, write: _Write) -> None:
        for note in write.notifications:
            self._announce(note)
        write.generation = self._generations[write.destination_id]
        self._pending[write.destination_id] += 1
        self._writes.put_nowait(write)

    def _announce(self, note: NewNotification) -> None:
        log.warning("notification %s for %s: %s", note.kind, note.destination_id, note.message)
        self._on_notification(note.kind)

    async def _collect(self, until: float) -> list[_Item]:
        """What is queued, once there is something; nothing if the loop's clock reaches `until` first.

        A change that raises nothing waits up to `COALESCE_S` (never past
        `until`) for more, so that a burst of auth failures is one write per
        destination.
        """
        loop = asyncio.get_running_loop()
        wait = None if until == float("inf") else max(0.0, until - loop.time())
        try:
            items = [await asyncio.wait_for(self._writes.get(), wait)]
        except TimeoutError:
            return []
        deadline = min(loop.time() + COALESCE_S, until)
        while not any(_urgent(item) for item in items):
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                items.append(await asyncio.wait_for(self._writes.get(), left))
            except TimeoutError:
                break
        while not self._writes.empty():
            items.append(self._writes.get_nowait())
        return items

    async def _apply(self, items: list[_Item]) -> None:
        """Store the writes, a destination's consecutive ones as one; a re-enable in its place."""
        writes: list[_Write] = []
        for item in items:
            if isinstance(item, _Enable):
                await self._flush(writes)
                writes = []
                await self._enable_stored(item)
            elif item is not None:
                writes.append(item)
        await self._flush(writes)

    async def _flush(self, writes: list[_Write]) -> None:
        merged: dict[str, _Write] = {}
        for write in writes:
            destination_id = write.destination_id
            self._pending[destination_id] -= 1
            if write.generation != self._generations[destination_id]:
                _dropped(write, "its standing was taken from the store since")
                continue
            if (into := merged.get(destination_id)) is None:
                merged[destination_id] = write
            else:
                into.state = write.state
                into.notifications += write.notifications
                into.done += write.done
        for write in merged.values():
            await self._write(write)

    async def _write(self, write: _Write) -> None:
        """Store one change (on the shared store, over the version last seen), then post what it raised."""
        destination_id = write.destination_id
        try:
            if self._shared is not None:
                expected = self._versions.get(destination_id, 0)
                version = await asyncio.to_thread(
                    self._shared.record, destination_id, write.state, write.notifications, expected=expected
                )
            elif self._store is not None:
                await asyncio.to_thread(self._store.record, destination_id, write.state, write.notifications)
                version = 0
            else:
                raise RuntimeError("AuthAlerts.start() was not called")
        except Exception as exc:
            log.exception("could not store the auth standing of %s", destination_id)
            for waiter in write.done:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        if version is None:
            # Another engine wrote this standing since (a re-enable): the stored one wins.
            _dropped(write, "another engine changed its standing meanwhile")
            await self._reload(destination_id)
        elif self._shared is not None:
            self._versions[destination_id] = max(version, self._versions.get(destination_id, 0))
        for waiter in write.done:
            if not waiter.done():
                waiter.set_result(None)
        if version is not None:
            for note in write.notifications:
                self._post(note.stored())

    async def _enable_stored(self, enable: _Enable) -> None:
        """A manual re-enable on the shared store: decided and stored there in one transaction."""
        destination_id = enable.destination_id

        def notify(before: WatchState) -> NewNotification:
            transition = Transition(destination_id, Change.ENABLED, self._clock(), before, HEALTHY)
            return self._raised(transition, None)

        try:
            assert self._shared is not None
            note, standing = await asyncio.to_thread(self._shared.enable, destination_id, notify)
        except Exception as exc:
            log.exception("could not re-enable %s", destination_id)
            enable.done.set_exception(exc)
            return
        if standing.version != self._versions.get(destination_id, 0):
            self._adopt(destination_id, standing)
        if note is None:
            enable.done.set_result(None)
            return
        self._announce(note)
        enable.done.set_result(note.stored())
        self._post(note.stored())

    async def _refresh(self) -> None:
        """Take up every standing another engine stored, but of destinations with a write waiting here."""
        assert self._shared is not None
        try:
            standings = await asyncio.to_thread(self._shared.standings)
        except Exception as exc:
            if not self._refresh_failing:  # once per outage, not every few seconds
                log.warning("could not read the fleet's auth standing; trying again: %s", exc)
            self._refresh_failing = True
            return
        if self._refresh_failing:
            log.info("read the fleet's auth standing again")
        self._refresh_failing = False
        for destination_id in standings.keys() | self._versions.keys():
            standing = standings.get(destination_id, Standing())
            if self._pending[destination_id] == 0 and standing.version != self._versions.get(
                destination_id, 0
            ):
                self._adopt(destination_id, standing)

    async def _reload(self, destination_id: str) -> None:
        assert self._shared is not None
        try:
            standing = await asyncio.to_thread(self._shared.standing, destination_id)
        except Exception:
            log.exception("could not reload the auth standing of %s", destination_id)
            return
        self._adopt(destination_id, standing)

    def _adopt(self, destination_id: str, standing: Standing) -> None:
        """Hold the stored standing as this destination's; what is queued for it from before is stale."""
        if self._config.destination(destination_id) is None:
            return
        before = self._watch.state(destination_id).phase
        self._watch.load(destination_id, standing.state)
        self._versions[destination_id] = standing.version
        self._generations[destination_id] += 1
        if standing.state.phase is not before:
            log.info(
                "destination %s: %s -> %s, as the fleet's store has it",
                destination_id,
                before,
                standing.state.phase,
            )

    def _post(self, notification: Notification) -> None:
        """Hand a stored notification to the webhook, if there is one; returns at once."""
        if self._webhook is not None:
            self._webhook.submit(notification)

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


def _urgent(item: _Item) -> bool:
    """Whether an item is written at once: the stop, a re-enable, or a change that raised something."""
    return not isinstance(item, _Write) or bool(item.notifications or item.done)


def _dropped(write: _Write, why: str) -> None:
    kinds = ", ".join(note.kind for note in write.notifications) or "none"
    log.info(
        "a change to the auth standing of %s was not stored (%s); notifications: %s",
        write.destination_id,
        why,
        kinds,
    )


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
