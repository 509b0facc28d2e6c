"""The integration catalog: what each kind of destination expects, declared once.

A destination names an integration (its `integration` key); the catalog says,
for that integration::

    Integration
    ├── request ......... event | batch | event_or_batch   (delivery.payload builds the body)
    ├── auth ............ none | bearer | basic | api_key  (the destination's `credential` goes there)
    ├── signing ......... none | standard-webhooks          (whether a `signing_secret` may sign requests)
    ├── batching ........ max events and bytes per request, or none
    ├── rate_limit ...... documented requests/s and burst, or none
    └── rules ........... what each event must satisfy, and which breaches are fixed
        ├── types ............. call types accepted               unsupported_type (skip)
        ├── required .......... fields that must hold a value     missing_user_id, ... (skip)
        ├── event_name ........ allowed characters and length     event_name_pattern (fix or skip)
        ├── string_max_length . longest string in the properties  string_too_long (fix or skip)
        └── max_event_bytes ... largest event after fixes         event_too_large (skip)

The entries live in `catalog.toml` beside this module (package data, read with
`importlib.resources`); `load_catalog` checks every key and raises
`CatalogError` with every problem, so a broken entry fails the first test
rather than a delivery. `catalog()` is the packaged catalog, read once on
first use. How the rules are applied is `delivery.precheck`; the entries
are described for people in docs/catalog.md.
"""

from __future__ import annotations

import base64
import difflib
import functools
import importlib.resources
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeVar

#: File name of the packaged catalog, beside this module.
CATALOG_FILE: Final = "catalog.toml"

#: The call types of the Segment spec.
CALL_TYPES: Final = frozenset({"identify", "track", "page", "screen", "group", "alias"})

#: Rule codes (the attempt log's `error_code` of a skipped job, and the label of a fix).
EVENT_NAME_PATTERN: Final = "event_name_pattern"
STRING_TOO_LONG: Final = "string_too_long"
UNSUPPORTED_TYPE: Final = "unsupported_type"
EVENT_TOO_LARGE: Final = "event_too_large"

_NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_MISSING: Final = object()
_E = TypeVar("_E", bound=StrEnum)


class RequestShape(StrEnum):
    """How a request's body carries its events."""

    EVENT = "event"
    """One event's JSON, as the tracking API stored it; the integration takes no batches."""
    BATCH = "batch"
    """Always ``{"batch": [event, ...]}``, even for a single event."""
    EVENT_OR_BATCH = "event_or_batch"
    """One event as itself, several as ``{"batch": [...]}`` (Segment's own webhook format)."""


class AuthScheme(StrEnum):
    """Where the destination's `credential` goes in each request."""

    NONE = "none"
    """No credential; configured `headers` are sent as they are."""
    BEARER = "bearer"
    """``Authorization: Bearer <credential>``."""
    BASIC = "basic"
    """``Authorization: Basic base64(<credential>)``; a credential without ':' is a user name
    with an empty password (API keys sent as Basic user names)."""
    API_KEY = "api_key"
    """``<header>: <credential>``, the header named by the entry."""


class Signing(StrEnum):
    """How requests to an integration may be signed (a destination signs when it has a `signing_secret`)."""

    NONE = "none"
    """Never signed: the partner's API checks its own credential, not signatures."""
    STANDARD_WEBHOOKS = "standard-webhooks"
    """The Standard Webhooks headers (`delivery.signing`, docs/webhooks.md)."""


@dataclass(frozen=True, slots=True)
class Auth:
    """An integration's authentication scheme."""

    scheme: AuthScheme
    """How the credential is sent."""
    header: str = "Authorization"
    """The header that carries it (the entry's own for `api_key`)."""

    def header_value(self, credential: str) -> str:
        """The value of `header` for `credential` (never call it for scheme `none`)."""
        if self.scheme is AuthScheme.BEARER:
            return f"Bearer {credential}"
        if self.scheme is AuthScheme.BASIC:
            user_password = credential if ":" in credential else f"{credential}:"
            return "Basic " + base64.b64encode(user_password.encode()).decode("ascii")
        if self.scheme is AuthScheme.API_KEY:
            return credential
        raise ValueError("an integration without authentication takes no credential")


@dataclass(frozen=True, slots=True)
class Batching:
    """How many events one request may carry."""

    max_events: int
    """Most events per request the partner accepts."""
    max_bytes: int
    """Largest request body the partner accepts."""
    default_events: int
    """Events per request when the destination does not set `max_batch_events`."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The partner's documented rate limit, the metering starts there."""

    per_s: float
    """Requests per second, sustained."""
    burst: int
    """Requests allowed at once above the sustained rate (token bucket size)."""


@dataclass(frozen=True, slots=True)
class EventNameRule:
    """A track call's `event` must match `pattern`."""

    max_length: int
    """Longest name, in characters."""
    allowed: str | None = None
    """A regex character-class body (``A-Za-z0-9_``) of the characters allowed; None: any."""
    lowercase: bool = False
    """Whether upper-case letters are refused (fixed by lower-casing them)."""
    fix: bool = True
    """Rewrite a bad name (lower-case, other characters to '_', truncate) instead of skipping the job."""

    @property
    def pattern(self) -> str:
        """The rule as one regex, for messages and docs: ``^[A-Za-z0-9_]{1,40}$``."""
        return f"^[{self.allowed}]{{1,{self.max_length}}}$" if self.allowed else f"^.{{1,{self.max_length}}}$"


@dataclass(frozen=True, slots=True)
class StringLengthRule:
    """No string under `properties`, `traits` or `context.traits` is longer than `max_length`."""

    max_length: int
    """Longest string, in characters."""
    fix: bool = True
    """Truncate a longer string instead of skipping the job."""


@dataclass(frozen=True, slots=True)
class RequiredField:
    """One of `paths` must hold a value (not missing, null or an empty string). Never fixed."""

    code: str
    """Rule code, e.g. `missing_user_id`."""
    paths: tuple[str, ...]
    """Dotted paths into the event JSON (`userId`, `traits.email`)."""
    what: str
    """What the partner needs, for the message: "a userId (records are keyed by it)"."""
    types: frozenset[str] | None = None
    """Call types the rule applies to; None: every type."""


@dataclass(frozen=True, slots=True)
class Rules:
    """What each event sent to an integration must satisfy."""

    types: frozenset[str] | None = None
    """Call types accepted; None: every type."""
    required: tuple[RequiredField, ...] = ()
    """Fields that must hold a value."""
    event_name: EventNameRule | None = None
    """The form of a track call's event name."""
    string_max_length: StringLengthRule | None = None
    """The longest string in the event's properties and traits."""
    max_event_bytes: int | None = None
    """Largest event, as compact JSON after fixes."""

    @property
    def empty(self) -> bool:
        """No rule at all: events are sent as stored, without being read."""
        return self == _NO_RULES

    @property
    def codes(self) -> tuple[str, ...]:
        """Every code these rules can give, in the order they are checked."""
        codes = [UNSUPPORTED_TYPE] if self.types is not None else []
        codes += [rule.code for rule in self.required]
        codes += [EVENT_NAME_PATTERN] if self.event_name else []
        codes += [STRING_TOO_LONG] if self.string_max_length else []
        codes += [EVENT_TOO_LARGE] if self.max_event_bytes is not None else []
        return tuple(dict.fromkeys(codes))


_NO_RULES: Final = Rules()


@dataclass(frozen=True, slots=True)
class Integration:
    """One catalog entry."""

    name: str
    """The name destinations use (`integration = "crm-records"`), and the attempt log's `integration`."""
    title: str
    """Human name."""
    description: str
    """What kind of API it is."""
    request: RequestShape
    """How a request body carries its events."""
    auth: Auth
    """Where the destination's credential goes."""
    batching: Batching | None = None
    """Batch limits; None: one event per request."""
    rate_limit: RateLimit | None = None
    """The documented rate limit; None: none documented."""
    rules: Rules = _NO_RULES
    """What each event must satisfy."""
    signing: Signing = Signing.NONE
    """Whether destinations may sign their requests, and how."""

    @property
    def max_events(self) -> int:
        """Most events one request may carry (1 without batching)."""
        return self.batching.max_events if self.batching else 1


class CatalogError(Exception):
    """A catalog with problems; `problems` lists each, starting with the key it is about."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.origin = origin
        self.problems = tuple(problems)
        super().__init__(f"{origin}: " + "; ".join(problems))


class Catalog(Mapping[str, Integration]):
    """The integrations by name (a read-only mapping)."""

    def __init__(self, integrations: Mapping[str, Integration]) -> None:
        self._integrations = dict(integrations)

    def __getitem__(self, name: str) -> Integration:
        return self._integrations[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._integrations)

    def __len__(self) -> int:
        return len(self._integrations)

    def unknown(self, name: str) -> str:
        """The message for a name that is not in the catalog, suggesting the nearest one."""
        close = difflib.get_close_matches(name, list(self), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(map(repr, self))
        return f"unknown integration {name!r} ({hint})"


@functools.cache
def catalog() -> Catalog:
    """The packaged catalog (`catalog.toml`), read and checked on first use."""
    text = importlib.resources.files("delivery").joinpath(CATALOG_FILE).read_text(encoding="utf-8")
    return load_catalog(text, f"delivery/{CATALOG_FILE}")


def load_catalog(text: str, origin: str = "<catalog>") -> Catalog:
    """Parse and check a catalog document; raise `CatalogError` with every problem found."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(origin, [f"invalid TOML: {exc}"]) from None
    problems: list[str] = []
    root = _Reader(document, "", problems, ("integrations",))
    entries = root.table("integrations", required=True) or {}
    integrations = {}
    for name, entry in entries.items():
        where = f"integrations.{name}"
        if not _NAME.fullmatch(name):
            problems.append(f"{where}: names are lower-case letters, digits and '-', starting with a letter")
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: must be a table")
            continue
        integrations[name] = _integration(name, _Reader(entry, where, problems, _ENTRY_KEYS))
    if "webhook" not in integrations:
        problems.append("integrations.webhook: the generic webhook must be in the catalog")
    if problems:
        raise CatalogError(origin, problems)
    return Catalog(integrations)


# -- reading entries -----------------------------------------------------------------------------

_ENTRY_KEYS = ("title", "description", "request", "auth", "batching", "rate_limit", "rules", "signing")


def _integration(name: str, entry: _Reader) -> Integration:
    request = entry.choice("request", RequestShape)
    batching = _batching(entry.sub("batching", ("max_events", "max_bytes", "default_events")))
    if request is RequestShape.EVENT and batching is not None:
        entry.problem("batching", "an integration with request = 'event' takes no batches")
    if request is not RequestShape.EVENT and batching is None:
        entry.problem("batching", f"required with request = {request.value!r}")
    return Integration(
        name=name,
        title=entry.text("title"),
        description=entry.text("description"),
        request=request,
        auth=_auth(entry.sub("auth", ("scheme", "header"), required=True)),
        batching=batching,
        rate_limit=_rate_limit(entry.sub("rate_limit", ("per_s", "burst"))),
        rules=_rules(entry.sub("rules", _RULES_KEYS)),
        signing=entry.choice("signing", Signing) if "signing" in entry.raw else Signing.NONE,
    )


def _auth(table: _Reader | None) -> Auth:
    if table is None:
        return Auth(AuthScheme.NONE)
    scheme = table.choice("scheme", AuthScheme)
    if scheme is AuthScheme.API_KEY:
        header = table.text("header", pattern=_HEADER)
        if header.lower() in ("authorization", "content-type", "host", "content-length"):
            table.problem("header", f"{header!r} is not an API-key header")
        return Auth(scheme, header)
    if "header" in table.raw:
        table.problem("header", f"only for scheme 'api_key' ({scheme.value} uses Authorization)")
    return Auth(scheme)


def _batching(table: _Reader | None) -> Batching | None:
    if table is None:
        return None
    max_events = table.integer("max_events", maximum=100_000)
    return Batching(
        max_events=max_events,
        max_bytes=table.integer("max_bytes", minimum=32 * 1024, maximum=100_000_000),
        default_events=table.integer("default_events", default=max_events, maximum=max_events),
    )


def _rate_limit(table: _Reader | None) -> RateLimit | None:
    if table is None:
        return None
    return RateLimit(per_s=table.number("per_s"), burst=table.integer("burst", maximum=100_000))


_RULES_KEYS = ("types", "required", "event_name", "string_max_length", "max_event_bytes")


def _rules(table: _Reader | None) -> Rules:
    if table is None:
        return _NO_RULES
    types = table.types("types")
    required = tuple(
        _required(item) for item in table.array_of_tables("required", ("code", "paths", "what", "types"))
    )
    codes = [rule.code for rule in required]
    if len(set(codes)) != len(codes):
        table.problem("required", "each rule needs its own code")
    event_name = table.sub("event_name", ("allowed", "max_length", "lowercase", "fix"))
    strings = table.sub("string_max_length", ("max_length", "fix"))
    max_event_bytes = table.raw.get("max_event_bytes")
    return Rules(
        types=types,
        required=required,
        event_name=_event_name(event_name) if event_name else None,
        string_max_length=(
            StringLengthRule(strings.integer("max_length", maximum=1_000_000), strings.boolean("fix"))
            if strings
            else None
        ),
        max_event_bytes=(
            table.integer("max_event_bytes", maximum=100_000_000) if max_event_bytes is not None else None
        ),
    )


def _event_name(table: _Reader) -> EventNameRule:
    allowed = table.raw.get("allowed")
    if allowed is not None:
        allowed = table.text("allowed")
        try:
            re.compile(f"[{allowed}]")
        except re.error as exc:
            table.problem("allowed", f"is not a regex character-class body ({exc})")
        if "_" not in allowed:
            table.problem("allowed", "must allow '_', the character a fix rewrites others to")
    return EventNameRule(
        max_length=table.integer("max_length", maximum=10_000),
        allowed=allowed,
        lowercase=table.boolean("lowercase", default=False),
        fix=table.boolean("fix"),
    )


def _required(table: _Reader) -> RequiredField:
    paths = table.raw.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        table.problem("paths", "must be a non-empty array of dotted paths")
        paths = []
    for path in paths:
        if not _PATH.fullmatch(path):
            table.problem("paths", f"{path!r} is not a dotted path of field names")
    return RequiredField(
        code=table.text("code", pattern=_CODE),
        paths=tuple(paths),
        what=table.text("what"),
        types=table.types("types"),
    )


class _Reader:
    """One table of the catalog being read: typed getters that note problems under its key."""

    def __init__(self, raw: Mapping[str, Any], where: str, problems: list[str], known: tuple[str, ...]):
        self.raw, self.where, self.problems = raw, where, problems
        for key in raw:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.problem(key, f"unknown key{hint}")

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where}.{key}: {message}" if self.where else f"{key}: {message}")

    def _get(self, key: str, default: Any) -> Any:
        if key in self.raw:
            return self.raw[key]
        if default is _MISSING:
            self.problem(key, "required key is missing")
        return default

    def table(self, key: str, *, required: bool = False) -> Mapping[str, Any] | None:
        value = self._get(key, _MISSING if required else None)
        if value is None or value is _MISSING:
            return None
        if not isinstance(value, Mapping):
            self.problem(key, "must be a table")
            return None
        return value

    def sub(self, key: str, known: tuple[str, ...], *, required: bool = False) -> _Reader | None:
        value = self.table(key, required=required)
        return None if value is None else _Reader(value, f"{self.where}.{key}", self.problems, known)

    def array_of_tables(self, key: str, known: tuple[str, ...]) -> list[_Reader]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            self.problem(key, f"must be an array of tables ([[...{key}]])")
            return []
        return [
            _Reader(item, f"{self.where}.{key}[{i}]", self.problems, known) for i, item in enumerate(value)
        ]

    def text(self, key: str, *, pattern: re.Pattern[str] | None = None) -> str:
        value = self._get(key, _MISSING)
        if not isinstance(value, str) or not value:
            if value is not _MISSING:
                self.problem(key, "must be a non-empty string")
            return ""
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(key, f"{value!r} does not match {pattern.pattern}")
        return value

    def integer(self, key: str, *, default: Any = None, minimum: int = 1, maximum: int) -> int:
        value = self._get(key, _MISSING if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int):
            if value is not _MISSING:
                self.problem(key, "must be an integer")
            return minimum
        if not minimum <= value <= maximum:
            self.problem(key, f"must be from {minimum} to {maximum}, got {value}")
        return value

    def number(self, key: str) -> float:
        value = self._get(key, _MISSING)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100_000:
            if value is not _MISSING:
                self.problem(key, "must be a number above 0 and at most 100000")
            return 1.0
        return float(value)

    def boolean(self, key: str, *, default: bool | None = None) -> bool:
        value = self._get(key, _MISSING if default is None else default)
        if not isinstance(value, bool):
            if value is not _MISSING:
                self.problem(key, "must be true or false")
            return False
        return value

    def choice(self, key: str, enum: type[_E]) -> _E:
        value = self._get(key, _MISSING)
        try:
            return enum(value)
        except ValueError:
            if value is not _MISSING:
                choices = ", ".join(repr(member.value) for member in enum)
                self.problem(key, f"must be one of {choices}, got {value!r}")
            return next(iter(enum))

    def types(self, key: str) -> frozenset[str] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not value or not set(value) <= CALL_TYPES:
            self.problem(key, f"must be a non-empty array of call types ({', '.join(sorted(CALL_TYPES))})")
            return None
        return frozenset(value)
