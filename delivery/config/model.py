"""The configuration as frozen records: what `delivery.config.parse` builds from the file.

Secrets (write keys, header values, signing secrets, the admin token, the
alert webhook's URL) are held in `Secret`, whose repr and str are masked. A
destination's repr shows its URL's origin only (scheme, host, port), since
webhook URLs often carry a token in their path.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from delivery.catalog import Integration, catalog
from delivery.config import origins
from delivery.transport.targets import Network, TargetPolicy

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


#: The shortest admin token the config takes (a generated one has 43 characters).
MIN_ADMIN_TOKEN_CHARS = 32
#: Where `[engine] exporter` may run the exporter (`delivery.export_process`).
EXPORTERS = ("process", "thread")


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
    """Whether destinations may be loopback, private or link-local addresses (never cloud metadata ones)."""
    allowed_private_cidrs: tuple[Network, ...] = ()
    """Networks destinations may be in whatever `allow_private_targets` says (`10.1.0.0/16`)."""
    egress_proxy: str | None = None
    """`http://host:port` of an HTTP proxy every delivery goes through (CONNECT for https); None: direct."""
    ca_bundle: Path | None = None
    """PEM file of CA certificates trusted in addition to the system's."""
    admin_token: Secret | None = None
    """Bearer token of the `/admin/*` endpoints, at least 32 characters.

    None: the engine generates one and keeps it in `<data_dir>/admin_token`
    (`delivery.config.admin_token`); the admin API refuses every request
    while it is None."""
    concurrency: int = 64
    """Requests in flight at once, across all destinations."""
    per_destination_concurrency: int = 8
    """Requests in flight at once to any one destination."""
    claim_batch_size: int = 100
    """Jobs a worker claims from the queue in one transaction."""
    claim_ahead: bool = True
    """Also claim up to twice a destination's slots ahead, to start as its requests end (docs/worker.md)."""
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
    exporter: str = "process"
    """Where the exporter runs: "process", its own (off the delivery's GIL), or "thread", the engine's."""
    min_free_bytes: int = 64 * 2**20
    """Free space kept on the queue's disk: below it the tracking API answers 503 (0: no reserve)."""
    dead_letter_days: int = 7
    """Days the events of jobs that ended undelivered are kept for `deliverydash replay` (at least 1)."""

    @property
    def target_policy(self) -> TargetPolicy:
        """Where deliveries may connect: `allow_private_targets` and `allowed_private_cidrs` as one policy."""
        return TargetPolicy(self.allow_private_targets, self.allowed_private_cidrs)


#: The environment variable that overrides `[queue] dsn` (so the password can stay out of the file).
QUEUE_DSN_ENV = "DELIVERYDASH_QUEUE_DSN"


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """The `[queue]` table: where the jobs wait (docs/queue.md)."""

    backend: str = "sqlite"
    """"sqlite": the embedded queue under `data_dir`, one engine; "postgres": a queue a fleet shares."""
    dsn: Secret | None = None
    """The PostgreSQL connection string (`postgresql://user:password@host:5432/db`).

    $DELIVERYDASH_QUEUE_DSN, when set, wins over the file's."""

    @property
    def shared(self) -> bool:
        """Whether several engine processes may use this queue at once."""
        return self.backend == "postgres"

    def postgres_dsn(self) -> str | None:
        """The connection string, in clear, when the queue is on PostgreSQL; None for SQLite."""
        return self.dsn.reveal() if self.backend == "postgres" and self.dsn is not None else None


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The `[log]` table: where the attempt log is written, and how long it is kept (docs/log-store.md)."""

    url: str = ""
    """"" for `data_dir` on local disk; "s3://bucket/prefix" for an object store (endpoint and
    credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION);
    or another local directory."""
    retention_days: int = 0
    """0 keeps everything; otherwise whole days older than this are deleted with their rollups."""
    compact_interval_s: float = 300
    """How often an engine compacts closed hours and applies the retention (one engine of a fleet)."""

    def location(self, data_dir: Path) -> str:
        """Where the log is: `url`, or `data_dir` when it is empty."""
        return self.url or str(data_dir)


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """The `[alerts]` table: notifications about destinations, and when auth failures disable one."""

    webhook_url: Secret | None = None
    """Where each notification is also POSTed as JSON; None: stored only (the URL may hold a token)."""
    webhook_timeout_s: float = 5
    """Timeout of one webhook POST."""
    webhook_max_attempts: int = 10
    """Most POSTs of one notification to the webhook, the first included."""
    webhook_backoff_base_s: float = 2
    """Delay before the webhook's first retry, before jitter; doubles per attempt."""
    webhook_backoff_max_s: float = 300
    """Longest delay between two webhook attempts, and the longest Retry-After honoured."""
    webhook_retry_window_s: float = 3_600
    """No webhook attempt starts later than this long after the notification was raised."""
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
    allowed_origins: tuple[str, ...] = (origins.ANY,)
    """Web pages whose browsers may send its events (`delivery.config.origins` patterns); () for none."""
    enabled: bool = True
    """A disabled source's write key is refused as an unknown one (401); its queued jobs are still sent."""

    def allows_origin(self, origin: str) -> bool:
        """Whether a browser on the page `origin` (its `Origin` header) may send this source's events."""
        return origins.allows(self.allowed_origins, origin)


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
    signing_secret: Secret | None = None
    """``whsec_<base64>``: every request carries Standard Webhooks signature headers (docs/webhooks.md);
    None: unsigned."""
    previous_signing_secret: Secret | None = None
    """The secret `signing_secret` replaced: it signs too, beside it, until
    `previous_signing_secret_expires_at` (a rotation's overlap)."""
    previous_signing_secret_expires_at: dt.datetime | None = None
    """When `previous_signing_secret` stops signing (aware); set exactly when it is."""

    @property
    def origin(self) -> str:
        """Scheme, host and port of `url`: safe to show and to label metrics with."""
        return url_origin(urlsplit(self.url))

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
            f"enabled={self.enabled!r}, signing_secret={self.signing_secret!r}, "
            f"previous_signing_secret={self.previous_signing_secret!r}, "
            f"previous_signing_secret_expires_at={self.previous_signing_secret_expires_at!r})"
        )


def url_origin(parts: SplitResult) -> str:
    """`scheme://host:port` of a split URL, without the path, query or credentials that may hold secrets.

    A port that does not parse is left out rather than raised: the origin is
    also what error messages show of a URL that failed its checks.
    """
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


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
    queue: QueueConfig = field(default_factory=QueueConfig)
    """The `[queue]` table."""
    log: LogConfig = field(default_factory=LogConfig)
    """The `[log]` table."""
    tables: Mapping[str, tuple[Mapping[str, Any], ...]] = field(
        default_factory=dict, repr=False, compare=False
    )
    """The `sources` and `destinations` tables as the file wrote them (secrets in clear: never shown),
    what changes made live are laid over (`delivery.config.live`)."""

    @property
    def log_location(self) -> str:
        """Where the attempt log is: `[log] url`, or `[engine] data_dir`."""
        return self.log.location(self.engine.data_dir)

    _by_write_key: dict[str, Source] = field(init=False, repr=False, compare=False)
    _by_source: dict[str, tuple[Destination, ...]] = field(init=False, repr=False, compare=False)
    _by_id: dict[str, Destination] = field(init=False, repr=False, compare=False)
    _origins: tuple[str, ...] = field(init=False, repr=False, compare=False)

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
        patterns = {
            pattern for source in self.sources if source.enabled for pattern in source.allowed_origins
        }
        object.__setattr__(self, "_origins", (origins.ANY,) if origins.ANY in patterns else tuple(patterns))

    def source_for_write_key(self, write_key: str) -> Source | None:
        """The source a write key belongs to, or None for an unknown key or a disabled source's."""
        source = self._by_write_key.get(write_key)
        return source if source is not None and source.enabled else None

    def any_source_allows_origin(self, origin: str) -> bool:
        """Whether some source takes events from browsers on the page `origin`.

        A CORS preflight is judged by this: it carries no write key, so which
        source the request is for is not known until the request itself.
        """
        return origins.allows(self._origins, origin)

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
