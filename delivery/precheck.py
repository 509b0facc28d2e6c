"""Checks made before a request: the jobs that are settled without one.

A job fails a pre-send check when::

    destination no longer in the config ........ precheck  unknown_destination
    destination disabled ........................ disabled  disabled
    destination disabled by auth failures ....... disabled  auto_disabled
      (delivery.alerts.auth_watch; one job per probe interval is still sent)
    host is an IP literal or localhost the ...... precheck  private_target
      target policy refuses (loopback, private, link-local, cloud metadata, ...)

and is then recorded once with outcome `skipped` (docs/attempt-log.md). None
of these is retryable: someone has to change the configuration.

The target check here judges only the host as written, without a lookup
(`TargetPolicy.permits_host`), which the configuration also does when it is
loaded. A host *name* is judged by the HTTP client on the addresses it
connects to, after its own lookup, on every new connection
(`delivery.transport.targets`): a check here on another lookup's answer
would prove nothing about the next one (DNS rebinding). A refusal there is
recorded as the request's failure with the same class and code,
`precheck`/`private_target`, not retried.

**The integration's rules.** A job that may be sent is then held against
its integration's rules (`delivery.catalog.Rules`) by `check_job`, a pure
function. Each event is checked in this order::

    call type accepted .......................... unsupported_type     skip
    required fields hold a value ................ missing_user_id, ... skip
    track event name matches the pattern ........ event_name_pattern   fix (rewrite) or skip
    strings in properties/traits within length .. string_too_long      fix (truncate) or skip
    event, as JSON after fixes, within size ..... event_too_large      skip

A breach the rule may fix is fixed (the name lower-cased if the rule says
so, other disallowed characters rewritten to `_`, then cut to the longest
length; a string cut to the longest length), and each fix is returned as a
`Fix`. Any other breach rejects the whole job: it is recorded `skipped` with
class `precheck`, the rule's code, and an `error_message` saying what to
change (never quoting property values). An integration without rules
(`webhook`) sends what was stored without reading it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from delivery.catalog import (
    EVENT_NAME_PATTERN,
    EVENT_TOO_LARGE,
    STRING_TOO_LONG,
    UNSUPPORTED_TYPE,
    Catalog,
    EventNameRule,
    Rules,
    catalog,
)
from delivery.config import Destination, EngineConfig
from delivery.queue import Event
from delivery.transport.targets import TARGET_REFUSED_CODE
from ingest.taxonomy import Classification, ErrorClass, classify_transport

UNKNOWN_DESTINATION: Final = Classification(ErrorClass.PRECHECK, "unknown_destination", False)
DISABLED: Final = Classification(ErrorClass.DISABLED, "disabled", False)
AUTO_DISABLED: Final = Classification(ErrorClass.DISABLED, "auto_disabled", False)
#: A target the policy refuses: here, or at connect time as the request's transport code.
PRIVATE_TARGET: Final = classify_transport(TARGET_REFUSED_CODE)

#: Whether a destination may be sent to now, by its id (`AuthAlerts.admit`: auto-disabled ones may not).
Admit = Callable[[str], bool]


class Prechecks:
    """Decides, before each request, whether a job's destination may be sent to."""

    def __init__(
        self,
        engine: EngineConfig,
        *,
        integrations: Catalog | None = None,
        admit: Admit | None = None,
    ) -> None:
        """`engine`'s target policy judges hosts as written; `integrations` is the catalog whose
        rules `events` applies (the packaged one by default).

        `admit` says whether a configured, enabled destination may be sent to
        now; refused jobs are skipped as `AUTO_DISABLED`. It is asked once per
        job and may count the question (a probe), so it is asked last.
        """
        self._policy = engine.target_policy
        self._permitted: dict[str, bool] = {}
        """url -> whether the policy permits its host as written (pure, so kept: asked per request)."""
        self._catalog = integrations if integrations is not None else catalog()
        self._admit = admit

    def verdict(self, destination: Destination | None) -> Classification | None:
        """Why the job must not be sent, or None to send it."""
        if destination is None:
            return UNKNOWN_DESTINATION
        if not destination.enabled:
            return DISABLED
        if not self._permits(destination.url):
            return PRIVATE_TARGET
        if self._admit is not None and not self._admit(destination.id):
            return AUTO_DISABLED
        return None

    def events(self, destination: Destination, events: Sequence[Event]) -> CheckedJob | Rejection:
        """A job's events held against its destination's integration rules (see `check_job`)."""
        return check_job(events, self._catalog[destination.integration].rules)

    def _permits(self, url: str) -> bool:
        # Kept by URL, not host: splitting the URL again on every request was most of the check.
        permitted = self._permitted.get(url)
        if permitted is None:
            permitted = self._permitted[url] = self._policy.permits_host(urlsplit(url).hostname or "")
        return permitted


# -- the integration's rules ---------------------------------------------------------------------

#: Where `string_max_length` looks for strings: what a caller writes, not the ids and timestamps.
_STRING_ROOTS: Final = (("properties",), ("traits",), ("context", "traits"))


@dataclass(frozen=True, slots=True)
class Fix:
    """One change made to an event so that its integration accepts it."""

    rule: str
    """The rule's code: `event_name_pattern`, `string_too_long`."""
    path: str
    """Where in the event: `event`, `properties.description`, `traits.tags[2]`."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a job cannot be sent as it is; it is recorded skipped with this verdict."""

    rule: str
    """The rule's code, the record's `error_code`: `missing_user_id`, `event_name_pattern`, ..."""
    message: str
    """What to change, the record's `error_message`; never quotes a property value."""

    @property
    def verdict(self) -> Classification:
        """The record's classification: class `precheck`, not retryable."""
        return Classification(ErrorClass.PRECHECK, self.rule, False)


@dataclass(frozen=True, slots=True)
class Checked:
    """An event that passes its rules, as it is to be sent."""

    event: Mapping[str, Any]
    """The event, fixed where `fixes` says (the same object when nothing was fixed)."""
    fixes: tuple[Fix, ...] = ()
    """The fixes made, in the order of the rules."""


@dataclass(frozen=True, slots=True)
class CheckedJob:
    """A job's events as they are to be sent."""

    events: tuple[Event, ...]
    """The events; a fixed one carries its fixed JSON as `payload`."""
    fixes: tuple[Fix, ...] = ()
    """Every fix made, over all the events."""


def check_job(events: Sequence[Event], rules: Rules) -> CheckedJob | Rejection:
    """Hold each of a job's events against `rules`: the events to send, or why none can be.

    One event that cannot be sent rejects the job (its record is one row for
    all its events); its message names the event's messageId.
    """
    if rules.empty:
        return CheckedJob(tuple(events))
    sent: list[Event] = []
    fixes: list[Fix] = []
    for event in events:
        checked = check_event(json.loads(event.payload), rules, size=len(event.payload))
        if isinstance(checked, Rejection):
            message = f"message {event.message_id}: {checked.message}" if len(events) > 1 else checked.message
            return Rejection(checked.rule, message)
        if checked.fixes:
            event = dataclasses.replace(event, payload=_encode(checked.event))
            fixes += checked.fixes
        sent.append(event)
    return CheckedJob(tuple(sent), tuple(fixes))


def check_event(event: Mapping[str, Any], rules: Rules, *, size: int | None = None) -> Checked | Rejection:
    """Hold one event (the JSON object a destination receives) against `rules`. Pure.

    Returns the event to send with the fixes made, or the first rule it breaks
    that cannot be fixed (the order is in the module docstring). `size` is the
    event's size as stored, if known: it saves encoding an unfixed event again.
    `event` itself is never changed.
    """
    call_type = event.get("type")
    if rules.types is not None and call_type not in rules.types:
        accepted = ", ".join(sorted(rules.types))
        return Rejection(
            UNSUPPORTED_TYPE,
            f"{call_type!s} calls are not accepted by this integration (only {accepted}); "
            "leave them out of what this destination is sent",
        )
    for required in rules.required:
        if required.types is not None and call_type not in required.types:
            continue
        if not any(_has_value(event, path) for path in required.paths):
            return Rejection(
                required.code,
                f"no value at {' or '.join(required.paths)}: the integration needs {required.what}; "
                "add it to the calls sent to this destination",
            )
    fixes: list[Fix] = []
    fixed = dict(event)
    if rules.event_name is not None and call_type == "track":
        name = _event_name(event.get("event"), rules.event_name)
        if isinstance(name, Rejection):
            return name
        if name != event["event"]:
            fixed["event"] = name
            fixes.append(Fix(EVENT_NAME_PATTERN, "event"))
    if rules.string_max_length is not None:
        limit, fix = rules.string_max_length.max_length, rules.string_max_length.fix
        for root in _STRING_ROOTS:
            parent, container = _parent_and_child(fixed, root)
            if container is None:
                continue
            long_paths = [path for path, text in _strings(container, ".".join(root)) if len(text) > limit]
            if long_paths and not fix:
                return Rejection(
                    STRING_TOO_LONG,
                    f"{long_paths[0]} is longer than the {limit} characters the integration accepts; "
                    "shorten it",
                )
            if long_paths:
                parent[root[-1]] = _truncated(container, limit)
                fixes += (Fix(STRING_TOO_LONG, path) for path in long_paths)
    if rules.max_event_bytes is not None:
        actual = len(_encode(fixed)) if fixes or size is None else size
        if actual > rules.max_event_bytes:
            return Rejection(
                EVENT_TOO_LARGE,
                f"the event is {actual} bytes as JSON, more than the {rules.max_event_bytes} "
                "the integration accepts; send fewer or shorter properties",
            )
    return Checked(fixed, tuple(fixes)) if fixes else Checked(event)


def _event_name(name: object, rule: EventNameRule) -> str | Rejection:
    """The name as the rule accepts it (rewritten if the rule fixes), or the rejection."""
    if not isinstance(name, str) or not name:
        # Nothing to rewrite: a name cannot be made up for the customer.
        return Rejection(
            EVENT_NAME_PATTERN, f"the track call has no event name; {rule.pattern} needs one: name the event"
        )
    disallowed = re.compile(f"[^{rule.allowed}]") if rule.allowed is not None else None
    wrong_case = rule.lowercase and name != name.lower()
    if len(name) <= rule.max_length and not wrong_case and not (disallowed and disallowed.search(name)):
        return name
    if not rule.fix:
        return Rejection(
            EVENT_NAME_PATTERN,
            f"event name {name[:80]!r} does not match {rule.pattern}; rename the event",
        )
    if rule.lowercase:
        name = name.lower()
    if disallowed is not None:
        name = disallowed.sub("_", name)
    return name[: rule.max_length]


def _has_value(event: Mapping[str, Any], path: str) -> bool:
    value: Any = event
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return False
        value = value.get(key)
    return value is not None and value != ""


def _parent_and_child(event: dict[str, Any], root: tuple[str, ...]) -> tuple[dict[str, Any], Any]:
    """The (copied) parent of `root` in `event`, and the value at `root` (None when absent)."""
    parent = event
    for key in root[:-1]:
        child = parent.get(key)
        if not isinstance(child, Mapping):
            return parent, None
        parent[key] = parent = dict(child)
    child = parent.get(root[-1])
    return parent, child if isinstance(child, Mapping | list) else None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside `value`, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def _truncated(value: Any, limit: int) -> Any:
    """`value` with every string inside it cut to `limit` characters (a copy)."""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, Mapping):
        return {key: _truncated(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [_truncated(item, limit) for item in value]
    return value


def _encode(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
