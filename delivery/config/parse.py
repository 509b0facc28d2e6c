"""Reading the engine's config file: `load_config` and `parse_config`, and a reader per table.

Every problem found is collected, each one naming its key::

    deliverydash.toml: 2 problems
      engine.max_atempts: unknown key (did you mean 'max_attempts'?)
      destinations[1].url: must be an http(s) URL, got 'ftp://x'

and raised together as one `ConfigError`, so a config with an error never
starts the engine. The typed getters that collect the problems are in
`delivery.config.toml_table`; what is checked here is what the engine needs:
ids fit for columns and URLs, destinations the catalog knows with the
credential, batch and rate limits their integration takes, URLs that are
http(s) and whose host the target policy permits (`TargetPolicy.permits_host`:
what can be judged before a lookup), the allowed networks and the egress
proxy, sources and destinations that refer to each other. The keys, their
defaults and the rules are documented in `docs/configuration.md`.

No message quotes a secret (write keys, header values, credentials, the
admin token), and a destination URL is shown as its origin only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import os
import re
import ssl
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from delivery import signing
from delivery.catalog import AuthScheme, Integration, Signing, catalog
from delivery.config import origins
from delivery.config.admin_token import TOKEN_FILE, token_problem
from delivery.config.model import (
    EXPORTERS,
    QUEUE_DSN_ENV,
    AlertsConfig,
    Config,
    ConfigError,
    Destination,
    EngineConfig,
    LogConfig,
    QueueConfig,
    Secret,
    Source,
    url_origin,
)
from delivery.config.toml_table import Table, array_of_tables, as_table, kind, reject_unknown, suggest
from delivery.transport import CLIENTS
from delivery.transport.proxy import EgressProxy
from delivery.transport.targets import (
    METADATA_ADDRESSES,
    PRIVATE_ALLOWED,
    Network,
    TargetPolicy,
    is_metadata_target,
)


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and check a TOML config file; relative paths in it are relative to its folder.

    `environ` (the process's environment when None) may override a setting
    the file holds: `$DELIVERYDASH_QUEUE_DSN` the queue's connection string.

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
    return parse_config(mapping, origin, base_dir=path.parent, environ=environ)


def parse_config(
    mapping: Mapping[str, Any],
    origin: str = "<config>",
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Check a parsed TOML document and build the `Config`.

    `origin` names the document in the error; relative `data_dir` and
    `ca_bundle` are taken relative to `base_dir` (the working directory when
    None); `environ` as in `load_config`. Raises `ConfigError` with every
    problem found.
    """
    problems: list[str] = []
    if not isinstance(mapping, Mapping):
        raise ConfigError(origin, [f"the document must be a table, got {kind(mapping)}"])
    # `[dashboard]` belongs to the dashboard and `deliverydash link` (app/settings.py checks it):
    # known here so one file can configure both, and not read by the engine.
    reject_unknown(
        mapping, ("engine", "queue", "log", "sources", "destinations", "alerts", "dashboard"), "", problems
    )
    engine_table = as_table(mapping.get("engine", {}), "engine", problems)
    engine = _engine(Table(engine_table, "engine", _ENGINE_KEYS, problems), base_dir or Path())
    source_tables = array_of_tables(mapping, "sources", problems)
    destination_tables = array_of_tables(mapping, "destinations", problems)
    sources, destinations = read_entries(engine, source_tables, destination_tables, problems)
    queue_table = as_table(mapping.get("queue", {}), "queue", problems)
    queue = _queue(
        Table(queue_table, "queue", _QUEUE_KEYS, problems), os.environ if environ is None else environ
    )
    alerts = _alerts(
        Table(as_table(mapping.get("alerts", {}), "alerts", problems), "alerts", _ALERTS_KEYS, problems)
    )
    log = _log(Table(as_table(mapping.get("log", {}), "log", problems), "log", _LOG_KEYS, problems), base_dir)
    if problems:
        raise ConfigError(origin, problems)
    return Config(
        engine=engine,
        sources=tuple(source for _, source in sources),
        destinations=tuple(destination for _, destination in destinations),
        warnings=_warnings(engine, queue, sources, destinations),
        alerts=alerts,
        queue=queue,
        log=log,
        tables={
            "sources": tuple(table for _, table in source_tables),
            "destinations": tuple(table for _, table in destination_tables),
        },
    )


def read_entries(
    engine: EngineConfig,
    source_tables: Sequence[tuple[str, Mapping[str, Any]]],
    destination_tables: Sequence[tuple[str, Mapping[str, Any]]],
    problems: list[str],
) -> tuple[list[tuple[str, Source]], list[tuple[str, Destination]]]:
    """Check `[[sources]]` and `[[destinations]]` tables, each found at its `where`, and how they refer
    to each other; every problem is appended to `problems`.

    The one check of sources and destinations: the file's tables go through it in `parse_config`,
    and the tables the admin API and `deliverydash destinations|sources` change go through it with
    the file's in `delivery.config.live`, so both are held to the same rules with the same messages.
    """
    sources = [_source(Table(table, where, _SOURCE_KEYS, problems)) for where, table in source_tables]
    destinations = [
        _destination(Table(table, where, _DESTINATION_KEYS, problems), engine)
        for where, table in destination_tables
    ]
    problems += _cross_references(sources, destinations)
    return sources, destinations


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
#: The attempt log's `attempt` column is SMALLINT.
_MAX_ATTEMPTS = 32_767
#: The tracking API's largest message (`delivery.api.segment.MAX_MESSAGE_BYTES`): a batch must fit one.
_MIN_BATCH_BYTES = 32 * 1024
_MAX_RATE_PER_S = 10_000


def _engine(table: Table, base_dir: Path) -> EngineConfig:
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
    admin_token = _admin_token(table)
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
        allowed_private_cidrs=_networks(table, "allowed_private_cidrs"),
        egress_proxy=_egress_proxy(table, "egress_proxy"),
        ca_bundle=_ca_bundle(table, ca_bundle, base_dir) if ca_bundle else None,
        admin_token=admin_token,
        concurrency=table.integer("concurrency", defaults.concurrency),
        per_destination_concurrency=table.integer(
            "per_destination_concurrency", defaults.per_destination_concurrency
        ),
        claim_batch_size=table.integer("claim_batch_size", defaults.claim_batch_size),
        claim_ahead=table.boolean("claim_ahead", defaults.claim_ahead),
        lease_s=lease_s,
        shutdown_grace_s=table.seconds("shutdown_grace_s", defaults.shutdown_grace_s, allow_zero=True),
        max_batch_bytes=table.integer("max_batch_bytes", defaults.max_batch_bytes),
        metering=table.boolean("metering", defaults.metering),
        batch_linger_s=table.seconds("batch_linger_s", defaults.batch_linger_s, allow_zero=True),
        http_client=table.choice("http_client", defaults.http_client, CLIENTS),
        exporter=table.choice("exporter", defaults.exporter, EXPORTERS),
        min_free_bytes=table.integer("min_free_bytes", defaults.min_free_bytes, minimum=0),
        dead_letter_days=table.integer("dead_letter_days", defaults.dead_letter_days),
    )


def _admin_token(table: Table) -> Secret | None:
    """`admin_token`: None when absent or empty (the engine generates one); refused when too short."""
    token = table.text("admin_token", "", secret=True, allow_empty=True)
    if not token:
        return None
    if problem := token_problem(token):
        table.problem(
            "admin_token",
            f"{problem}; generate one with python3 -c 'import secrets; print(secrets.token_urlsafe(32))', "
            f"or leave admin_token out and the engine generates one in data_dir/{TOKEN_FILE}",
        )
    return Secret(token)


_LOG_KEYS = tuple(f.name for f in fields(LogConfig))


def _log(table: Table, base_dir: Path | None) -> LogConfig:
    """The `[log]` table (docs/log-store.md): a local directory (relative to the file) or s3://bucket/prefix."""
    url = table.text("url", "", allow_empty=True)
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme != "s3":
            table.problem("url", f"{url!r}: write s3://bucket/prefix, or a local directory")
        elif not parts.netloc:
            table.problem("url", f"{url!r} names no bucket: write s3://bucket/prefix")
        elif parts.query or parts.fragment or parts.username or parts.password:
            table.problem(
                "url", "s3:// takes a bucket and a prefix only; credentials come from AWS_* variables"
            )
    elif url:
        url = str(((base_dir or Path()) / url).resolve())
    retention = table.integer("retention_days", 0, minimum=0)
    interval = table.seconds("compact_interval_s", LogConfig().compact_interval_s)
    url = url.rstrip("/") if url.startswith("s3://") else url
    return LogConfig(url=url, retention_days=retention, compact_interval_s=interval)


_QUEUE_KEYS = tuple(f.name for f in fields(QueueConfig))
_QUEUE_BACKENDS = ("sqlite", "postgres")
_DSN_SCHEMES = ("postgresql", "postgres")


def _queue(table: Table, environ: Mapping[str, str]) -> QueueConfig:
    """The `[queue]` table (docs/queue.md); the connection string may come from the environment."""
    backend = table.choice("backend", "sqlite", _QUEUE_BACKENDS)
    written = table.text("dsn", "", secret=True, allow_empty=True)
    if backend != "postgres":
        # A dsn with the embedded queue is harmless: `_warnings` says it is unused.
        return QueueConfig(backend=backend, dsn=Secret(written) if written else None)
    from_environment = bool(environ.get(QUEUE_DSN_ENV))
    dsn = environ[QUEUE_DSN_ENV] if from_environment else written
    if not dsn:
        table.problem("dsn", f'backend "postgres" needs a connection string here or in ${QUEUE_DSN_ENV}')
    elif problem := _dsn_problem(dsn):
        table.problem("dsn", f"{problem} (from ${QUEUE_DSN_ENV})" if from_environment else problem)
    return QueueConfig(backend=backend, dsn=Secret(dsn) if dsn else None)


def _dsn_problem(dsn: str) -> str | None:
    """What is wrong with a connection string's form, never quoting it (it holds a password)."""
    if "://" not in dsn:
        # libpq's key=value form: checked by psycopg when the queue connects.
        return None if "=" in dsn else "must be a postgresql:// URL or libpq key=value pairs"
    try:
        parts = urlsplit(dsn)
        _ = parts.port  # raises on a bad port
    except ValueError:
        return "is not a valid URL (check the port, and percent-encode special characters in the password)"
    if parts.scheme not in _DSN_SCHEMES:
        return f"must start with postgresql://, got a {parts.scheme!r} URL"
    return None


_ALERTS_KEYS = tuple(f.name for f in fields(AlertsConfig))
#: Enough for a day of retries at the longest delays; more would only keep a dead receiver's tasks.
_MAX_WEBHOOK_ATTEMPTS = 1_000


def _alerts(table: Table) -> AlertsConfig:
    """The `[alerts]` table (docs/notifications.md)."""
    defaults = AlertsConfig()
    url = table.text("webhook_url", "", secret=True, allow_empty=True)
    # The operator's own endpoint (often an internal alert router), so unlike a
    # destination's URL it may be a private address.
    for problem in _url_problems(url, PRIVATE_ALLOWED, advise=False) if url else ():
        table.problem("webhook_url", problem)
    base_s = table.seconds("webhook_backoff_base_s", defaults.webhook_backoff_base_s)
    max_s = table.seconds("webhook_backoff_max_s", defaults.webhook_backoff_max_s)
    if base_s > max_s:
        table.problem(
            "webhook_backoff_base_s",
            f"must not exceed alerts.webhook_backoff_max_s ({max_s:g}), got {base_s:g}",
        )
    return AlertsConfig(
        webhook_url=Secret(url) if url else None,
        webhook_timeout_s=table.seconds("webhook_timeout_s", defaults.webhook_timeout_s),
        webhook_max_attempts=table.integer(
            "webhook_max_attempts", defaults.webhook_max_attempts, maximum=_MAX_WEBHOOK_ATTEMPTS
        ),
        webhook_backoff_base_s=base_s,
        webhook_backoff_max_s=max_s,
        webhook_retry_window_s=table.seconds("webhook_retry_window_s", defaults.webhook_retry_window_s),
        auto_disable=table.boolean("auto_disable", defaults.auto_disable),
        disable_after_failures=table.integer("disable_after_failures", defaults.disable_after_failures),
        disable_after_s=table.seconds("disable_after_s", defaults.disable_after_s),
        probe_interval_s=table.seconds("probe_interval_s", defaults.probe_interval_s),
    )


def _networks(table: Table, key: str) -> tuple[Network, ...]:
    """An array of networks in CIDR notation (a bare address is its /32 or /128)."""
    raw = table.get(key, [])
    if not isinstance(raw, list):
        table.problem(key, f'must be an array of networks such as ["10.1.0.0/16"], got {kind(raw)}')
        return ()
    networks: list[Network] = []
    for index, item in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(item, str):
            table.problem(where, f'must be a network such as "10.1.0.0/16", got {kind(item)}')
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError:
            table.problem(where, _network_problem(item))
    return tuple(networks)


def _network_problem(text: str) -> str:
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f'{text!r} is not a network in CIDR notation (such as "10.1.0.0/16" or "fd12:3456::/48")'
    return f"{text!r} has bits set after the prefix length; did you mean {str(loose)!r}?"


def _egress_proxy(table: Table, key: str) -> str | None:
    url = table.text(key, "", allow_empty=True)
    if not url:
        return None
    try:
        return EgressProxy.parse(url).url
    except ValueError as problem:
        table.problem(key, str(problem))
        return None


def _data_dir(table: Table, default: Path, base_dir: Path) -> Path:
    text = table.text("data_dir", str(default))
    path = base_dir / text
    if text and path.exists() and not path.is_dir():
        table.problem("data_dir", f"{text!r} exists and is not a directory")
    return path


def _ca_bundle(table: Table, text: str, base_dir: Path) -> Path:
    path = base_dir / text
    if not path.is_file():
        table.problem("ca_bundle", f"no such file: {str(path)!r}")
        return path
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        table.problem("ca_bundle", f"{str(path)!r} is not a PEM file of CA certificates ({exc})")
    return path


def _source(table: Table) -> tuple[str, Source]:
    write_key = table.text("write_key", secret=True)
    if ":" in write_key:
        table.problem("write_key", "must not contain ':' (clients send it as the Basic-auth username)")
    if any(char.isspace() or not char.isprintable() for char in write_key):
        table.problem("write_key", "must not contain whitespace or control characters")
    source = Source(
        id=table.text("id", pattern=_ID, rule=_ID_RULE),
        workspace=table.text("workspace", pattern=_ID, rule=_ID_RULE),
        write_key=Secret(write_key),
        allowed_origins=_allowed_origins(table),
        enabled=table.boolean("enabled", True),
    )
    return table.where, source


def _allowed_origins(table: Table) -> tuple[str, ...]:
    """`allowed_origins`: patterns of `delivery.config.origins`, in the form browsers send, each once."""
    key = "allowed_origins"
    raw = table.get(key, [origins.ANY])
    if not isinstance(raw, list):
        table.problem(key, f'must be an array such as ["https://shop.example.com"], got {kind(raw)}')
        return ()
    patterns: list[str] = []
    for index, item in enumerate(raw):
        if not isinstance(item, str):
            table.problem(f"{key}[{index}]", f"must be a string, got {kind(item)}")
            continue
        try:
            pattern = origins.parse_pattern(item)
        except ValueError as problem:
            table.problem(f"{key}[{index}]", str(problem))
            continue
        if pattern not in patterns:
            patterns.append(pattern)
    if origins.ANY in patterns and len(patterns) > 1:
        table.problem(key, '"*" allows every page already; list it alone or list the origins without it')
    return tuple(patterns)


def _destination(table: Table, engine: EngineConfig) -> tuple[str, Destination]:
    url = table.text("url")
    if url:
        for problem in _url_problems(url, engine.target_policy):
            table.problem("url", problem)
    name = table.text("integration", pattern=_ID, rule=_ID_RULE)
    integration = catalog().get(name)
    if integration is None and _ID.fullmatch(name):
        table.problem("integration", catalog().unknown(name))
    headers = _headers(table)
    max_batch_events, max_batch_bytes = _batch_limits(table, integration, engine)
    rate_limit_per_s, rate_limit_burst = _rate_limit(table, integration)
    signing_secret, previous_secret, previous_expires_at = _signing(table, integration, headers)
    destination = Destination(
        id=table.text("id", pattern=_ID, rule=_ID_RULE),
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
        signing_secret=signing_secret,
        previous_signing_secret=previous_secret,
        previous_signing_secret_expires_at=previous_expires_at,
    )
    return table.where, destination


def _credential(
    table: Table, integration: Integration | None, headers: Mapping[str, Secret]
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


def _signing(
    table: Table, integration: Integration | None, headers: Mapping[str, Secret]
) -> tuple[Secret | None, Secret | None, dt.datetime | None]:
    """`signing_secret`, and the previous secret with its expiry during a rotation (docs/webhooks.md)."""
    if "signing_secret" not in table.raw:
        for key in ("previous_signing_secret", "previous_signing_secret_expires_at"):
            if key in table.raw:
                table.problem(key, "needs signing_secret, the secret that replaces the previous one")
        return None, None, None
    if integration is not None and integration.signing is Signing.NONE:
        signed = ", ".join(
            repr(name) for name, entry in catalog().items() if entry.signing is not Signing.NONE
        )
        table.problem(
            "signing_secret",
            f"integration {integration.name!r} takes no signed requests (it checks its credential); "
            f"integrations that do: {signed}",
        )
    for name in headers:
        if name.lower() in signing.HEADERS:
            table.problems.append(
                f"{table.where}.headers.{name}: set from signing_secret on each request; "
                "remove it from headers"
            )
    secret = _signing_secret(table, "signing_secret")
    if "previous_signing_secret" not in table.raw:
        if "previous_signing_secret_expires_at" in table.raw:
            table.problem(
                "previous_signing_secret_expires_at", "only with previous_signing_secret, whose end it sets"
            )
        return secret, None, None
    previous = _signing_secret(table, "previous_signing_secret")
    # Keys, not texts: base64 ignores the unused bits of its last character, so two texts may hold one key.
    if (
        secret is not None
        and previous is not None
        and signing.secret_key(secret.reveal()) == signing.secret_key(previous.reveal())
    ):
        table.problem(
            "previous_signing_secret", "is the same secret as signing_secret; a rotation needs a new one"
        )
    return secret, previous, _expiry(table, "previous_signing_secret_expires_at")


def _signing_secret(table: Table, key: str) -> Secret | None:
    """A ``whsec_`` secret whose key is 24 to 64 bytes of strict base64 (`delivery.signing.secret_key`)."""
    text = table.text(key, secret=True)
    if not text:
        return None
    try:
        signing.secret_key(text)
    except ValueError as problem:
        table.problem(key, str(problem))
        return None
    return Secret(text)


def _expiry(table: Table, key: str) -> dt.datetime | None:
    """A moment with its UTC offset: a TOML offset date-time, or an RFC 3339 string; as UTC."""
    example = "such as 2026-12-08T12:00:00Z"
    if key not in table.raw:
        table.problem(
            key, f"required with previous_signing_secret: when the previous secret stops signing ({example})"
        )
        return None
    value = table.raw[key]
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            table.problem(key, f"must be an RFC 3339 date-time ({example}), got {value!r}")
            return None
    if not isinstance(value, dt.datetime):
        table.problem(key, f"must be a date-time with its UTC offset ({example}), got {kind(value)}")
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        table.problem(key, f"must carry its UTC offset ({example}), got a local date-time")
        return None
    return value.astimezone(dt.UTC)


_AUTH_FORMS = {
    AuthScheme.BEARER: "Bearer <credential>",
    AuthScheme.BASIC: "Basic base64(<credential>), credential = 'user:password' or an API key",
    AuthScheme.API_KEY: "<credential>",
}


def _batch_limits(table: Table, integration: Integration | None, engine: EngineConfig) -> tuple[int, int]:
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


def _rate_limit(table: Table, integration: Integration | None) -> tuple[float | None, int | None]:
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


def _headers(table: Table) -> dict[str, Secret]:
    raw = table.get("headers", {})
    where = f"{table.where}.headers"
    if not isinstance(raw, Mapping):
        table.problem("headers", f"must be a table of header names to strings, got {kind(raw)}")
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
            table.problems.append(f"{where}.{name}: must be a string, got {kind(value)}")
        elif any((ord(char) < 0x20 and char != "\t") or ord(char) == 0x7F for char in value):
            table.problems.append(f"{where}.{name}: must not contain line breaks or control characters")
        else:
            headers[name] = Secret(value)
        seen.setdefault(name.lower(), name)
    return headers


def _url_problems(url: str, policy: TargetPolicy, *, advise: bool = True) -> list[str]:
    """What is wrong with a URL to POST to; `advise`: say which engine setting would allow a refused host
    (the alerts webhook's client does not read them)."""
    if any(char.isspace() or not char.isprintable() for char in url):
        return ["must not contain whitespace or control characters"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port is the check
    except ValueError as exc:
        return [f"is not a valid URL ({exc})"]
    if "@" in parts.netloc:
        return ["must not carry credentials (user:password@host); put them in headers"]
    shown = url_origin(parts) + ("/…" if parts.path.strip("/") or parts.query or parts.fragment else "")
    if parts.scheme not in ("http", "https"):
        return [f"must be an http(s) URL, got {shown!r}"]
    if not parts.hostname:
        return [f"must name a host, got {shown!r}"]
    if not policy.permits_host(parts.hostname):
        if is_metadata_target(parts.hostname):
            advice = "; list it in engine.allowed_private_cidrs to deliver to it" if advise else ""
            return [f"host {parts.hostname!r} is a cloud metadata address{advice}"]
        return [
            f"host {parts.hostname!r} is a loopback, private or link-local address; "
            "set engine.allow_private_targets = true, or list its network in "
            "engine.allowed_private_cidrs, to deliver to it"
        ]
    return []


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
            suggestion = suggest(destination.source, [known for known in source_ids if known])
            problems.append(f"{where}.source: unknown source {destination.source!r}{suggestion}")
    return problems


def _warnings(
    engine: EngineConfig,
    queue: QueueConfig,
    sources: list[tuple[str, Source]],
    destinations: list[tuple[str, Destination]],
) -> tuple[str, ...]:
    warnings = []
    if queue.backend == "sqlite" and queue.dsn is not None:
        warnings.append('queue.dsn: unused while backend is "sqlite"; set backend = "postgres" to use it')
    if queue.shared and engine.admin_token is None:
        warnings.append(
            f"engine.admin_token: not set, so each machine's engines generate their own in "
            f"data_dir/{TOKEN_FILE}; set one token for a fleet that spans machines (docs/fleet.md)"
        )
    for network in engine.allowed_private_cidrs:
        reached = sorted(str(address) for address in METADATA_ADDRESSES if address in network)
        if reached:
            warnings.append(
                f"engine.allowed_private_cidrs: {network} lets deliveries reach the cloud metadata "
                f"address {', '.join(reached)}; list narrower networks"
            )
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
