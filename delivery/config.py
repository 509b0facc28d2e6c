"""The engine's configuration: one TOML file, checked whole before anything starts.

`load_config` reads the file and `parse_config` turns its tables into frozen
dataclasses. Every problem found is collected, each one naming its key::

    deliverydash.toml: 2 problems
      engine.max_atempts: unknown key (did you mean 'max_attempts'?)
      destinations[1].url: must be an http(s) URL, got 'ftp://x'

and raised together as one `ConfigError`, so a config with an error never
starts the engine. The keys, their defaults and the rules are documented in
`docs/configuration.md`.

Secrets (write keys, header values, the admin token) are held in `Secret`,
whose repr and str are masked, and no error message ever quotes one.
Destination URLs are shown as their origin only (scheme, host, port), since
webhook URLs often carry a token in their path.
"""

from __future__ import annotations

import difflib
import hmac
import math
import os
import re
import ssl
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from delivery.catalog import AuthScheme, Integration, catalog
from delivery.transport import CLIENTS
from delivery.transport.targets import is_private_target

_MASK = "**********"


class Secret:
    """A string that does not show itself: repr and str are masked.

    Call `reveal()` where the value is really needed (an outgoing header),
    and `matches()` to check a presented credential in constant time.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value itself."""
        return self._value

    def matches(self, candidate: str) -> bool:
        """Whether `candidate` equals the secret, compared in constant time."""
        return hmac.compare_digest(candidate.encode(), self._value.encode())

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


#: Documented in the issue and the docs, so public: `Config.warnings` flags it.
_DEFAULT_ADMIN_TOKEN = Secret("change-me")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The `[engine]` table: how the engine stores, sends and retries."""

    data_dir: Path = Path("data")
    """Root of the SQLite queue and the Parquet attempt log."""
    retry_window_s: float = 14_400
    """Give up on retryable failures this long after the job was received."""
    max_attempts: int = 10
    """Most requests one job makes, the first included."""
    backoff_base_s: float = 30
    """Delay before the first retry, before jitter; doubles per attempt."""
    backoff_max_s: float = 3_600
    """Longest backoff delay."""
    backoff_jitter: float = 0.2
    """Fraction of each delay drawn at random: the delay is uniform in [(1 - jitter) x d, d]."""
    retry_after_max_s: float = 3_600
    """Longest wait a destination's Retry-After can impose."""
    request_timeout_s: float = 10
    """Whole-request timeout of one delivery attempt."""
    export_interval_s: float = 5
    """Attempt records reach the Parquet log at least this often."""
    allow_private_targets: bool = False
    """Whether destinations may be loopback, private or link-local addresses."""
    ca_bundle: Path | None = None
    """PEM file of CA certificates trusted in addition to the system's."""
    admin_token: Secret = _DEFAULT_ADMIN_TOKEN
    """Bearer token of the `/admin/*` endpoints."""
    concurrency: int = 64
    """Requests in flight at once, across all destinations."""
    per_destination_concurrency: int = 8
    """Requests in flight at once to any one destination."""
    claim_batch_size: int = 100
    """Jobs a worker claims from the queue in one transaction."""
    lease_s: float = 60
    """How long a claimed job stays leased before another worker may take it."""
    shutdown_grace_s: float = 10
    """On SIGTERM/SIGINT, how long in-flight requests may take to finish."""
    max_batch_bytes: int = 500_000
    """Largest request body sent to any destination that takes batches (a ceiling over the catalog's)."""
    metering: bool = True
    """Pace requests to destinations with a rate limit (`delivery.metering`); false: as slots allow."""
    batch_linger_s: float = 0.05
    """How long a batching destination's oldest due job waits for others to join its request."""
    http_client: str = "builtin"
    """What sends the requests: "builtin" (`delivery.transport.http1`) or "aiohttp"."""


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """The `[alerts]` table: notifications about destinations, and when auth failures disable one."""

    webhook_url: Secret | None = None
    """Where each notification is also POSTed as JSON; None: stored only (the URL may hold a token)."""
    webhook_timeout_s: float = 5
    """Timeout of one webhook POST."""
    auto_disable: bool = True
    """Whether auth failures disable a destination (false: notifications only)."""
    disable_after_failures: int = 50
    """Consecutive auth failures (401/403) that disable a destination."""
    disable_after_s: float = 1_800
    """Seconds of only auth failures, from the first, that disable a destination."""
    probe_interval_s: float = 300
    """While a destination is disabled, one job is sent this often as a probe."""


@dataclass(frozen=True, slots=True)
class Source:
    """One `[[sources]]` entry: where events come in, identified by a write key."""

    id: str
    """Source id (column `source_id`)."""
    workspace: str
    """The customer that owns the source (column `workspace_id`)."""
    write_key: Secret
    """The key clients send (Basic-auth username or `writeKey`)."""


@dataclass(frozen=True, slots=True, repr=False)
class Destination:
    """One `[[destinations]]` entry: where a source's events are delivered."""

    id: str
    """Destination id (column `destination_id`)."""
    source: str
    """Id of the source whose events it receives."""
    integration: str
    """Destination type / partner (column `integration`): a name in the catalog (`delivery.catalog`)."""
    url: str
    """Where requests are POSTed; repr shows its origin only (the path may hold a token)."""
    headers: Mapping[str, Secret] = field(default_factory=dict)
    """Extra request headers; never written to the attempt log."""
    credential: Secret | None = None
    """What the integration's auth scheme sends (bearer token, Basic user:password, API key)."""
    max_batch_events: int = 1
    """Most events per request (the integration's default unless set); 1 sends each event alone."""
    max_batch_bytes: int = 500_000
    """Largest request body when batching (the integration's limit, under `engine.max_batch_bytes`)."""
    rate_limit_per_s: float | None = None
    """Requests/s the metering allows (the integration's documented limit unless set); None: no limit."""
    rate_limit_burst: int | None = None
    """Requests the metering allows at once above the rate (token bucket size); None with no limit."""
    enabled: bool = True
    """A disabled destination's jobs are recorded as skipped (`disabled`), not sent."""

    @property
    def origin(self) -> str:
        """Scheme, host and port of `url`: safe to show and to label metrics with."""
        return _url_origin(urlsplit(self.url))

    @property
    def spec(self) -> Integration:
        """The catalog entry of `integration` (KeyError if the catalog has no such entry)."""
        return catalog()[self.integration]

    def request_headers(self) -> dict[str, str]:
        """The configured headers and the credential's header, values revealed, for the HTTP client."""
        headers = {name: value.reveal() for name, value in self.headers.items()}
        if self.credential is not None:
            auth = self.spec.auth
            headers[auth.header] = auth.header_value(self.credential.reveal())
        return headers

    def __repr__(self) -> str:
        return (
            f"Destination(id={self.id!r}, source={self.source!r}, integration={self.integration!r}, "
            f"origin={self.origin!r}, headers={dict(self.headers)!r}, credential={self.credential!r}, "
            f"max_batch_events={self.max_batch_events!r}, max_batch_bytes={self.max_batch_bytes!r}, "
            f"rate_limit_per_s={self.rate_limit_per_s!r}, rate_limit_burst={self.rate_limit_burst!r}, "
            f"enabled={self.enabled!r})"
        )


@dataclass(frozen=True)
class Config:
    """The whole file: engine settings, sources and destinations, with lookups."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    """The `[engine]` table."""
    sources: tuple[Source, ...] = ()
    """The `[[sources]]` entries, in file order."""
    destinations: tuple[Destination, ...] = ()
    """The `[[destinations]]` entries, in file order."""
    warnings: tuple[str, ...] = field(default=(), compare=False)
    """Legal but probably unintended settings, worded like errors."""
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    """The `[alerts]` table."""
    _by_write_key: dict[str, Source] = field(init=False, repr=False, compare=False)
    _by_source: dict[str, tuple[Destination, ...]] = field(init=False, repr=False, compare=False)
    _by_id: dict[str, Destination] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_write_key = {source.write_key.reveal(): source for source in self.sources}
        by_source: dict[str, list[Destination]] = {source.id: [] for source in self.sources}
        if len(by_source) != len(self.sources) or len(by_write_key) != len(self.sources):
            raise ValueError("source ids and write keys must be unique")
        for destination in self.destinations:
            if destination.source not in by_source:
                raise ValueError(
                    f"destination {destination.id!r} names unknown source {destination.source!r}"
                )
            by_source[destination.source].append(destination)
        by_id = {destination.id: destination for destination in self.destinations}
        if len(by_id) != len(self.destinations):
            raise ValueError("destination ids must be unique")
        for destination in self.destinations:
            if destination.integration not in catalog():
                raise ValueError(
                    f"destination {destination.id!r}: {catalog().unknown(destination.integration)}"
                )
        object.__setattr__(self, "_by_write_key", by_write_key)
        object.__setattr__(self, "_by_source", {key: tuple(value) for key, value in by_source.items()})
        object.__setattr__(self, "_by_id", by_id)

    def source_for_write_key(self, write_key: str) -> Source | None:
        """The source a write key belongs to, or None for an unknown key."""
        return self._by_write_key.get(write_key)

    def destinations_for(self, source_id: str) -> tuple[Destination, ...]:
        """Every destination of a source, disabled ones included (their jobs are recorded as skipped)."""
        return self._by_source.get(source_id, ())

    def destination(self, destination_id: str) -> Destination | None:
        """The destination with this id, or None."""
        return self._by_id.get(destination_id)


class ConfigError(Exception):
    """A configuration that must not start the engine; lists every problem found."""

    def __init__(self, origin: str, problems: Iterable[str]) -> None:
        self.origin = origin
        """The file (or other source) the configuration came from."""
        self.problems = tuple(problems)
        """One line per problem, each starting with the key it is about."""
        super().__init__(self.origin, self.problems)

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return f"{self.origin}: {self.problems[0]}"
        lines = "".join(f"\n  {problem}" for problem in self.problems)
        return f"{self.origin}: {len(self.problems)} problems{lines}"


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check a TOML config file; relative paths in it are relative to its folder.

    Raises `ConfigError` naming every problem: a missing or unreadable file,
    invalid TOML (with its line and column), or invalid settings.
    """
    path = Path(path)
    origin = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(origin, ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(origin, [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        mapping = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(origin, [f"not UTF-8 text (byte {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages carry "(at line L, column C)" and never quote the text.
        raise ConfigError(origin, [f"invalid TOML: {exc}"]) from None
    return parse_config(mapping, origin, base_dir=path.parent)


def parse_config(
    mapping: Mapping[str, Any], origin: str = "<config>", *, base_dir: Path | None = None
) -> Config:
    """Check a parsed TOML document and build the `Config`.

    `origin` names the document in the error; relative `data_dir` and
    `ca_bundle` are taken relative to `base_dir` (the working directory when
    None). Raises `ConfigError` with every problem found.
    """
    problems: list[str] = []
    if not isinstance(mapping, Mapping):
        raise ConfigError(origin, [f"the document must be a table, got {_kind(mapping)}"])
    # `[dashboard]` belongs to the dashboard and `deliverydash link` (app/settings.py checks it):
    # known here so one file can configure both, and not read by the engine.
    _reject_unknown(mapping, ("engine", "sources", "destinations", "alerts", "dashboard"), "", problems)
    engine_table = _table(mapping.get("engine", {}), "engine", problems)
    engine = _engine(_Table(engine_table, "engine", _ENGINE_KEYS, problems), base_dir or Path())
    sources = [
        _source(_Table(table, where, _SOURCE_KEYS, problems))
        for where, table in _array_of_tables(mapping, "sources", problems)
    ]
    destinations = [
        _destination(_Table(table, where, _DESTINATION_KEYS, problems), engine)
        for where, table in _array_of_tables(mapping, "destinations", problems)
    ]
    problems += _cross_references(sources, destinations)
    alerts = _alerts(
        _Table(_table(mapping.get("alerts", {}), "alerts", problems), "alerts", _ALERTS_KEYS, problems)
    )
    if problems:
        raise ConfigError(origin, problems)
    return Config(
        engine=engine,
        sources=tuple(source for _, source in sources),
        destinations=tuple(destination for _, destination in destinations),
        warnings=_warnings(engine, sources, destinations),
        alerts=alerts,
    )


# -- the tables ----------------------------------------------------------------------------------

_ENGINE_KEYS = tuple(f.name for f in fields(EngineConfig))
_SOURCE_KEYS = tuple(f.name for f in fields(Source))
_DESTINATION_KEYS = tuple(f.name for f in fields(Destination))

#: Ids travel into Parquet columns, metric labels and admin URLs: keep them plain.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ID_RULE = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
#: RFC 9110 field-name (token).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Framing and connection headers belong to the HTTP client, not to users.
_ENGINE_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade"}
)
_MAX_SECONDS = 366 * 86_400
#: The attempt log's `attempt` column is SMALLINT.
_MAX_ATTEMPTS = 32_767
#: The tracking API's largest message (`delivery.api.segment.MAX_MESSAGE_BYTES`): a batch must fit one.
_MIN_BATCH_BYTES = 32 * 1024
_MAX_RATE_PER_S = 10_000
_REQUIRED = object()


def _engine(table: _Table, base_dir: Path) -> EngineConfig:
    defaults = EngineConfig()
    retry_window_s = table.seconds("retry_window_s", defaults.retry_window_s)
    backoff_base_s = table.seconds("backoff_base_s", defaults.backoff_base_s)
    backoff_max_s = table.seconds("backoff_max_s", defaults.backoff_max_s)
    request_timeout_s = table.seconds("request_timeout_s", defaults.request_timeout_s)
    lease_s = table.seconds("lease_s", defaults.lease_s)
    if backoff_base_s > backoff_max_s:
        table.problem(
            "backoff_base_s",
            f"must not exceed engine.backoff_max_s ({backoff_max_s:g}), got {backoff_base_s:g}",
        )
    if lease_s <= request_timeout_s:
        # A lease that can expire while its request is in flight sends the job twice.
        table.problem(
            "lease_s",
            f"must be longer than engine.request_timeout_s ({request_timeout_s:g}), got {lease_s:g}",
        )
    ca_bundle = table.text("ca_bundle", "", allow_empty=True)
    admin_token = table.text("admin_token", defaults.admin_token.reveal(), secret=True)
    return EngineConfig(
        data_dir=_data_dir(table, defaults.data_dir, base_dir),
        retry_window_s=retry_window_s,
        max_attempts=table.integer("max_attempts", defaults.max_attempts, maximum=_MAX_ATTEMPTS),
        backoff_base_s=backoff_base_s,
        backoff_max_s=backoff_max_s,
        backoff_jitter=table.fraction("backoff_jitter", defaults.backoff_jitter),
        retry_after_max_s=table.seconds("retry_after_max_s", defaults.retry_after_max_s, allow_zero=True),
        request_timeout_s=request_timeout_s,
        export_interval_s=table.seconds("export_interval_s", defaults.export_interval_s),
        allow_private_targets=table.boolean("allow_private_targets", defaults.allow_private_targets),
        ca_bundle=_ca_bundle(table, ca_bundle, base_dir) if ca_bundle else None,
        admin_token=Secret(admin_token),
        concurrency=table.integer("concurrency", defaults.concurrency),
        per_destination_concurrency=table.integer(
            "per_destination_concurrency", defaults.per_destination_concurrency
        ),
        claim_batch_size=table.integer("claim_batch_size", defaults.claim_batch_size),
        lease_s=lease_s,
        shutdown_grace_s=table.seconds("shutdown_grace_s", defaults.shutdown_grace_s, allow_zero=True),
        max_batch_bytes=table.integer("max_batch_bytes", defaults.max_batch_bytes),
        metering=table.boolean("metering", defaults.metering),
        batch_linger_s=table.seconds("batch_linger_s", defaults.batch_linger_s, allow_zero=True),
        http_client=table.choice("http_client", defaults.http_client, CLIENTS),
    )


_ALERTS_KEYS = tuple(f.name for f in fields(AlertsConfig))


def _alerts(table: _Table) -> AlertsConfig:
    """The `[alerts]` table (docs/notifications.md)."""
    defaults = AlertsConfig()
    url = table.text("webhook_url", "", secret=True, allow_empty=True)
    # The operator's own endpoint (often an internal alert router), so unlike a
    # destination's URL it may be a private address.
    for problem in _url_problems(url, allow_private_targets=True) if url else ():
        table.problem("webhook_url", problem)
    return AlertsConfig(
        webhook_url=Secret(url) if url else None,
        webhook_timeout_s=table.seconds("webhook_timeout_s", defaults.webhook_timeout_s),
        auto_disable=table.boolean("auto_disable", defaults.auto_disable),
        disable_after_failures=table.integer("disable_after_failures", defaults.disable_after_failures),
        disable_after_s=table.seconds("disable_after_s", defaults.disable_after_s),
        probe_interval_s=table.seconds("probe_interval_s", defaults.probe_interval_s),
    )


def _data_dir(table: _Table, default: Path, base_dir: Path) -> Path:
    text = table.text("data_dir", str(default))
    path = base_dir / text
    if text and path.exists() and not path.is_dir():
        table.problem("data_dir", f"{text!r} exists and is not a directory")
    return path


def _ca_bundle(table: _Table, text: str, base_dir: Path) -> Path:
    path = base_dir / text
    if not path.is_file():
        table.problem("ca_bundle", f"no such file: {str(path)!r}")
        return path
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        table.problem("ca_bundle", f"{str(path)!r} is not a PEM file of CA certificates ({exc})")
    return path


def _source(table: _Table) -> tuple[str, Source]:
    write_key = table.text("write_key", secret=True)
    if ":" in write_key:
        table.problem("write_key", "must not contain ':' (clients send it as the Basic-auth username)")
    if any(char.isspace() or not char.isprintable() for char in write_key):
        table.problem("write_key", "must not contain whitespace or control characters")
    source = Source(
        id=table.text("id", pattern=_ID),
        workspace=table.text("workspace", pattern=_ID),
        write_key=Secret(write_key),
    )
    return table.where, source


def _destination(table: _Table, engine: EngineConfig) -> tuple[str, Destination]:
    url = table.text("url")
    if url:
        for problem in _url_problems(url, engine.allow_private_targets):
            table.problem("url", problem)
    name = table.text("integration", pattern=_ID)
    integration = catalog().get(name)
    if integration is None and _ID.fullmatch(name):
        table.problem("integration", catalog().unknown(name))
    headers = _headers(table)
    max_batch_events, max_batch_bytes = _batch_limits(table, integration, engine)
    rate_limit_per_s, rate_limit_burst = _rate_limit(table, integration)
    destination = Destination(
        id=table.text("id", pattern=_ID),
        source=table.text("source"),
        integration=name,
        url=url,
        headers=headers,
        credential=_credential(table, integration, headers),
        max_batch_events=max_batch_events,
        max_batch_bytes=max_batch_bytes,
        rate_limit_per_s=rate_limit_per_s,
        rate_limit_burst=rate_limit_burst,
        enabled=table.boolean("enabled", True),
    )
    return table.where, destination


def _credential(
    table: _Table, integration: Integration | None, headers: Mapping[str, Secret]
) -> Secret | None:
    """The destination's credential, required exactly when its integration authenticates."""
    if "credential" not in table.raw:
        if integration is not None and integration.auth.scheme is not AuthScheme.NONE:
            table.problem(
                "credential",
                f"required by integration {integration.name!r} "
                f"(sent as {integration.auth.header}: {_AUTH_FORMS[integration.auth.scheme]})",
            )
        return None
    credential = table.text("credential", secret=True)
    if integration is None:
        return None
    if integration.auth.scheme is AuthScheme.NONE:
        table.problem(
            "credential",
            f"integration {integration.name!r} takes no credential; send your own headers with headers",
        )
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in credential):
        table.problem("credential", "must not contain line breaks or control characters")
    for name in headers:
        if name.lower() == integration.auth.header.lower():
            table.problems.append(
                f"{table.where}.headers.{name}: set from credential for integration {integration.name!r}; "
                "remove it from headers"
            )
    return Secret(credential) if credential else None


_AUTH_FORMS = {
    AuthScheme.BEARER: "Bearer <credential>",
    AuthScheme.BASIC: "Basic base64(<credential>), credential = 'user:password' or an API key",
    AuthScheme.API_KEY: "<credential>",
}


def _batch_limits(table: _Table, integration: Integration | None, engine: EngineConfig) -> tuple[int, int]:
    """`max_batch_events` and `max_batch_bytes`: the integration's, or overrides within its limits."""
    batching = integration.batching if integration is not None else None
    if batching is None:
        for key in ("max_batch_events", "max_batch_bytes"):
            value = table.raw.get(key)
            if integration is not None and value is not None and value != 1:
                table.problem(key, f"integration {integration.name!r} takes one event per request")
        return 1, engine.max_batch_bytes
    assert integration is not None
    events = table.integer("max_batch_events", batching.default_events)
    if events > batching.max_events:
        table.problem(
            "max_batch_events",
            f"must be at most {batching.max_events}, the most {integration.name!r} takes in one request; "
            f"got {events}",
        )
    ceiling = min(batching.max_bytes, engine.max_batch_bytes)
    if "max_batch_bytes" not in table.raw:
        return events, ceiling
    size = table.integer("max_batch_bytes", ceiling, minimum=_MIN_BATCH_BYTES)
    if size > ceiling:
        limit = (
            f"engine.max_batch_bytes ({engine.max_batch_bytes})"
            if engine.max_batch_bytes < batching.max_bytes
            else f"the {batching.max_bytes} bytes {integration.name!r} takes in one request"
        )
        table.problem("max_batch_bytes", f"must not exceed {limit}, got {size}")
    return events, min(size, ceiling)


def _rate_limit(table: _Table, integration: Integration | None) -> tuple[float | None, int | None]:
    """`rate_limit_per_s` and `rate_limit_burst`: the integration's documented limit, or overrides."""
    documented = integration.rate_limit if integration is not None else None
    per_s: float | None = documented.per_s if documented else None
    if "rate_limit_per_s" in table.raw:
        per_s = table.number("rate_limit_per_s", per_s or 1.0, maximum=_MAX_RATE_PER_S)
    if "rate_limit_burst" in table.raw:
        burst = table.integer("rate_limit_burst", 1, maximum=_MAX_RATE_PER_S)
        if per_s is None:
            table.problem("rate_limit_burst", "needs rate_limit_per_s (the integration documents no limit)")
        return per_s, burst if per_s is not None else None
    if per_s is None:
        return None, None
    if documented is not None and per_s == documented.per_s:
        return per_s, documented.burst
    return per_s, max(1, math.ceil(per_s))


def _headers(table: _Table) -> dict[str, Secret]:
    raw = table.get("headers", {})
    where = f"{table.where}.headers"
    if not isinstance(raw, Mapping):
        table.problem("headers", f"must be a table of header names to strings, got {_kind(raw)}")
        return {}
    headers: dict[str, Secret] = {}
    seen: dict[str, str] = {}
    for name, value in raw.items():
        if not _HEADER_NAME.fullmatch(name):
            table.problems.append(f"{where}: {name!r} is not a valid HTTP header name")
        elif name.lower() in _ENGINE_HEADERS:
            table.problems.append(f"{where}.{name}: is set by the HTTP client and cannot be configured")
        elif name.lower() in seen:
            table.problems.append(f"{where}.{name}: same header as {where}.{seen[name.lower()]}")
        elif not isinstance(value, str):
            table.problems.append(f"{where}.{name}: must be a string, got {_kind(value)}")
        elif any((ord(char) < 0x20 and char != "\t") or ord(char) == 0x7F for char in value):
            table.problems.append(f"{where}.{name}: must not contain line breaks or control characters")
        else:
            headers[name] = Secret(value)
        seen.setdefault(name.lower(), name)
    return headers


def _url_problems(url: str, allow_private_targets: bool) -> list[str]:
    if any(char.isspace() or not char.isprintable() for char in url):
        return ["must not contain whitespace or control characters"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port is the check
    except ValueError as exc:
        return [f"is not a valid URL ({exc})"]
    if "@" in parts.netloc:
        return ["must not carry credentials (user:password@host); put them in headers"]
    shown = _url_origin(parts) + ("/…" if parts.path.strip("/") or parts.query or parts.fragment else "")
    if parts.scheme not in ("http", "https"):
        return [f"must be an http(s) URL, got {shown!r}"]
    if not parts.hostname:
        return [f"must name a host, got {shown!r}"]
    if not allow_private_targets and is_private_target(parts.hostname):
        return [
            f"host {parts.hostname!r} is a loopback, private or link-local address; "
            "set engine.allow_private_targets = true to deliver to it"
        ]
    return []


def _url_origin(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


def _cross_references(
    sources: list[tuple[str, Source]], destinations: list[tuple[str, Destination]]
) -> list[str]:
    problems: list[str] = []
    source_ids: dict[str, str] = {}
    write_keys: dict[str, str] = {}
    for where, source in sources:
        if source.id and source.id in source_ids:
            problems.append(f"{where}.id: duplicate source id {source.id!r} (also {source_ids[source.id]})")
        source_ids.setdefault(source.id, where)
        key = source.write_key.reveal()
        if key and key in write_keys:
            problems.append(f"{where}.write_key: same write key as {write_keys[key]}")
        write_keys.setdefault(key, where)
    destination_ids: dict[str, str] = {}
    for where, destination in destinations:
        if destination.id and destination.id in destination_ids:
            problems.append(
                f"{where}.id: duplicate destination id {destination.id!r} "
                f"(also {destination_ids[destination.id]})"
            )
        destination_ids.setdefault(destination.id, where)
        if destination.source and destination.source not in source_ids:
            suggestion = _suggest(destination.source, [known for known in source_ids if known])
            problems.append(f"{where}.source: unknown source {destination.source!r}{suggestion}")
    return problems


def _warnings(
    engine: EngineConfig, sources: list[tuple[str, Source]], destinations: list[tuple[str, Destination]]
) -> tuple[str, ...]:
    warnings = []
    if engine.admin_token == _DEFAULT_ADMIN_TOKEN:
        warnings.append("engine.admin_token: still the documented default; set a token of your own")
    if not sources:
        warnings.append("sources: none configured; every write key will be refused")
    for where, destination in destinations:
        documented = catalog()[destination.integration].rate_limit
        if documented and destination.rate_limit_per_s and destination.rate_limit_per_s > documented.per_s:
            warnings.append(
                f"{where}.rate_limit_per_s: {destination.rate_limit_per_s:g} is above the "
                f"{documented.per_s:g}/s that {destination.integration!r} documents; expect 429s"
            )
    fed = {destination.source for _, destination in destinations}
    warnings += [
        f"{where}: source {source.id!r} has no destinations; its events are accepted and go nowhere"
        for where, source in sources
        if source.id not in fed
    ]
    return tuple(warnings)


# -- reading values ------------------------------------------------------------------------------


class _Table:
    """One TOML table being read: typed getters that record problems under the table's name.

    A getter that finds a problem records it and returns a placeholder, so
    reading carries on and every problem in the file is reported at once.
    """

    def __init__(self, raw: Mapping[str, Any], where: str, known: Iterable[str], problems: list[str]) -> None:
        self.raw = raw
        self.where = where
        self.problems = problems
        _reject_unknown(raw, tuple(known), where, problems)

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where}.{key}: {message}")

    def get(self, key: str, default: Any) -> Any:
        if key in self.raw:
            return self.raw[key]
        if default is _REQUIRED:
            self.problem(key, "required key is missing")
        return default

    def text(
        self,
        key: str,
        default: Any = _REQUIRED,
        *,
        pattern: re.Pattern[str] | None = None,
        secret: bool = False,
        allow_empty: bool = False,
    ) -> str:
        value = self.get(key, default)
        if value is _REQUIRED:
            return ""
        if not isinstance(value, str):
            shown = _kind(value) if secret else _describe(value)
            self.problem(key, f"must be a string, got {shown}")
            return ""
        if not value and not allow_empty:
            self.problem(key, "must not be empty")
        elif pattern is not None and not pattern.fullmatch(value):
            self.problem(key, f"{_ID_RULE}, got {_describe(value)}")
        return value

    def integer(self, key: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be an integer, got {_describe(value)}")
            return default
        if value < minimum:
            self.problem(key, f"must be at least {minimum}, got {value}")
        elif maximum is not None and value > maximum:
            self.problem(key, f"must be at most {maximum}, got {value}")
        return value

    def seconds(self, key: str, default: float, *, allow_zero: bool = False) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"must be a number of seconds, got {_describe(value)}")
            return default
        if not math.isfinite(value):
            self.problem(key, f"must be a finite number of seconds, got {value}")
            return default
        if value < 0 or (value == 0 and not allow_zero):
            least = "zero or more" if allow_zero else "a positive number of"
            self.problem(key, f"must be {least} seconds, got {value:g}")
        elif value > _MAX_SECONDS:
            self.problem(key, f"must be at most {_MAX_SECONDS} seconds (366 days), got {value:g}")
        return float(value)

    def number(self, key: str, default: float, *, maximum: float) -> float:
        """A positive finite number up to `maximum` (a rate)."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"must be a number, got {_describe(value)}")
            return default
        if not 0 < value <= maximum:  # NaN fails this too
            self.problem(key, f"must be above 0 and at most {maximum:g}, got {value}")
            return default
        return float(value)

    def fraction(self, key: str, default: float) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"must be a number from 0 to 1, got {_describe(value)}")
            return default
        if not 0 <= value <= 1:  # NaN fails this too
            self.problem(key, f"must be a number from 0 to 1, got {value}")
            return default
        return float(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(key, default)
        if value not in choices:
            self.problem(key, f"must be one of {', '.join(map(repr, choices))}, got {_describe(value)}")
            return default
        return str(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, got {_describe(value)}")
            return default
        return value


def _reject_unknown(raw: Mapping[str, Any], known: tuple[str, ...], where: str, problems: list[str]) -> None:
    prefix = f"{where}." if where else ""
    for key in raw:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown key{_suggest(key, known)}")


def _suggest(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if 0 < len(choices) <= 8:
        return f" (known: {', '.join(repr(choice) for choice in choices)})"
    return ""


def _table(value: Any, where: str, problems: list[str]) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    problems.append(f"{where}: must be a table ([{where}]), got {_kind(value)}")
    return {}


def _array_of_tables(
    mapping: Mapping[str, Any], key: str, problems: list[str]
) -> list[tuple[str, Mapping[str, Any]]]:
    value = mapping.get(key, [])
    if not isinstance(value, list):
        problems.append(f"{key}: must be an array of tables ([[{key}]]), got {_kind(value)}")
        return []
    tables = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        if isinstance(item, Mapping):
            tables.append((where, item))
        else:
            problems.append(f"{where}: must be a table, got {_kind(item)}")
    return tables


def _kind(value: Any) -> str:
    """The TOML kind of a value, with its article, for messages that must not quote it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return f"a {type(value).__name__}"


def _describe(value: Any) -> str:
    """A value as TOML would spell it, shortened, with its kind where the spelling is ambiguous."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown) + (" (a string)" if _looks_numeric(value) else "")
    return _kind(value)


def _looks_numeric(text: str) -> bool:
    return text.strip().lower() in ("true", "false") or bool(re.fullmatch(r"\s*[-+]?[0-9_.]+\s*", text))
