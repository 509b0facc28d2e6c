"""Loading and checking the engine's TOML config: every problem named by its key, no secret shown."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import trustme

from delivery.config import (
    QUEUE_DSN_ENV,
    Config,
    ConfigError,
    Destination,
    EngineConfig,
    QueueConfig,
    Secret,
    Source,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "configuration.md"
EXAMPLE = ROOT / "deliverydash.example.toml"

#: The sample from issue 3, section 1, verbatim.
ISSUE_SAMPLE = """\
[engine]
data_dir = "data"
retry_window_s = 14400        # give up on retryable failures after this long (4 h)
max_attempts = 10
backoff_base_s = 30           # first retry delay before jitter; doubles per attempt
backoff_max_s = 3600
request_timeout_s = 10
export_interval_s = 5         # attempt records reach Parquet at least this often
allow_private_targets = false # refuse loopback/private/link-local targets unless true
ca_bundle = ""                # optional PEM file of extra trusted CAs (self-hosted webhooks; tests)
admin_token = "change-me"

[[sources]]
id = "web"
workspace = "acme"
write_key = "wk_live_acme_web"

[[destinations]]
id = "acme-hook"
source = "web"
integration = "webhook"
url = "http://127.0.0.1:9001/hook"
headers = { Authorization = "Bearer s3cret" }   # never written to the attempt log
max_batch_events = 1                            # > 1 where the destination takes batches
"""

#: The problem of an admin token shorter than 32 characters (it never quotes the token).
TOKEN_ADVICE = (
    "; generate one with python3 -c 'import secrets; print(secrets.token_urlsafe(32))', "
    "or leave admin_token out and the engine generates one in data_dir/admin_token"
)
SHORT_TOKEN = "must be at least 32 characters" + TOKEN_ADVICE
ASCII_TOKEN = "must be printable ASCII without spaces (it travels in an Authorization header)" + TOKEN_ADVICE

#: A valid base that the cases below break one key at a time.
BASE = """\
[engine]
admin_token = "tok-0123456789-0123456789-0123456789"

[[sources]]
id = "web"
workspace = "acme"
write_key = "wk_web"

[[sources]]
id = "ios"
workspace = "acme"
write_key = "wk_ios"

[[destinations]]
id = "hook"
source = "web"
integration = "webhook"
url = "https://hooks.example.com/in"
headers = { Authorization = "Bearer xyz" }

[[destinations]]
id = "batch"
source = "ios"
integration = "webhook"
url = "https://batch.example.com/in"
"""


def document(**changes: dict[str, Any]) -> dict[str, Any]:
    """BASE with keys changed: `engine={...}`, `source0={...}`, `destination1={...}`; None deletes a key."""
    doc = tomllib.loads(BASE)
    for name, keys in changes.items():
        if name == "engine":
            table = doc["engine"]
        else:
            kind, index = name[:-1], int(name[-1])
            table = doc[f"{kind}s"][index]
        for key, value in keys.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
    return doc


def problems(mapping: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(mapping, "test.toml")
    return caught.value.problems


def write(tmp_path: Path, text: str | bytes, name: str = "deliverydash.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- loading -------------------------------------------------------------------------------------


def test_the_base_document_is_valid() -> None:
    config = parse_config(tomllib.loads(BASE))
    assert [source.id for source in config.sources] == ["web", "ios"]
    assert config.destinations[0] == Destination(
        id="hook",
        source="web",
        integration="webhook",
        url="https://hooks.example.com/in",
        headers={"Authorization": Secret("Bearer xyz")},
    )
    assert config.engine == EngineConfig(admin_token=Secret("tok-0123456789-0123456789-0123456789"))
    assert config.warnings == ()


def test_an_empty_document_is_all_defaults() -> None:
    config = parse_config({})
    assert config == Config()
    assert config.engine == EngineConfig()
    assert config.engine.admin_token is None  # no default: the engine generates one (test_admin_token.py)
    assert config.warnings == ("sources: none configured; every write key will be refused",)


def test_every_engine_key_is_read(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(pem))
    engine = {
        "data_dir": "var/dd",
        "retry_window_s": 600,
        "max_attempts": 4,
        "backoff_base_s": 0.5,
        "backoff_max_s": 8,
        "backoff_jitter": 1,
        "retry_after_max_s": 0,
        "request_timeout_s": 2.5,
        "export_interval_s": 1,
        "allow_private_targets": True,
        "ca_bundle": "ca.pem",
        "admin_token": "t" * 32,
        "concurrency": 4,
        "per_destination_concurrency": 2,
        "claim_batch_size": 10,
        "claim_ahead": False,
        "lease_s": 30,
        "shutdown_grace_s": 0,
        "max_batch_bytes": 1000,
        "metering": False,
        "batch_linger_s": 0,
        "http_client": "aiohttp",
        "exporter": "thread",
        "min_free_bytes": 0,
        "dead_letter_days": 3,
        "allowed_private_cidrs": ["10.1.0.0/16", "fd12:3456::/48", "192.168.7.7"],
        "egress_proxy": "http://smokescreen.internal:4750/",
    }
    assert set(engine) == {f.name for f in dataclasses.fields(EngineConfig)}
    loaded = parse_config({"engine": engine}, base_dir=tmp_path).engine
    assert loaded == EngineConfig(
        data_dir=tmp_path / "var/dd",
        retry_window_s=600.0,
        max_attempts=4,
        backoff_base_s=0.5,
        backoff_max_s=8.0,
        backoff_jitter=1.0,
        retry_after_max_s=0.0,
        request_timeout_s=2.5,
        export_interval_s=1.0,
        allow_private_targets=True,
        ca_bundle=tmp_path / "ca.pem",
        admin_token=Secret("t" * 32),
        concurrency=4,
        per_destination_concurrency=2,
        claim_batch_size=10,
        claim_ahead=False,
        lease_s=30.0,
        shutdown_grace_s=0.0,
        max_batch_bytes=1000,
        metering=False,
        batch_linger_s=0,
        http_client="aiohttp",
        exporter="thread",
        min_free_bytes=0,
        dead_letter_days=3,
        allowed_private_cidrs=(
            ipaddress.ip_network("10.1.0.0/16"),
            ipaddress.ip_network("fd12:3456::/48"),
            ipaddress.ip_network("192.168.7.7/32"),
        ),
        egress_proxy="http://smokescreen.internal:4750",
    )
    assert isinstance(loaded.retry_window_s, float)


def test_relative_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(folder, '[engine]\ndata_dir = "state"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config(path).engine.data_dir == folder / "state"
    assert load_config(write(folder, '[engine]\ndata_dir = "/abs/dd"\n', "b.toml")).engine.data_dir == Path(
        "/abs/dd"
    )


def test_the_example_file_loads_with_the_documented_defaults() -> None:
    config = load_config(EXAMPLE)
    defaults = dataclasses.asdict(EngineConfig(data_dir=EXAMPLE.parent / "data", allow_private_targets=True))
    assert dataclasses.asdict(config.engine) == defaults
    assert config.source_for_write_key("wk_live_acme_web") == config.sources[0]
    assert [d.id for d in config.destinations_for("web")] == ["acme-hook", "acme-warehouse", "acme-crm"]
    assert config.destination("acme-warehouse") == dataclasses.replace(
        config.destinations[1], max_batch_events=100, enabled=False
    )
    crm = config.destination("acme-crm")
    assert crm is not None and crm.credential is not None
    assert (crm.integration, crm.max_batch_events, crm.rate_limit_per_s, crm.enabled) == (
        "crm-records",
        100,
        5,
        False,
    )
    assert config.warnings == ()


def test_the_issue_sample_is_refused_for_its_public_admin_token_and_loopback_url_and_only_those(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, ISSUE_SAMPLE))
    assert caught.value.problems == (
        f"engine.admin_token: {SHORT_TOKEN}",
        "destinations[0].url: host '127.0.0.1' is a loopback, private or link-local address; "
        "set engine.allow_private_targets = true, or list its network in engine.allowed_private_cidrs, "
        "to deliver to it",
    )
    allowed = ISSUE_SAMPLE.replace("allow_private_targets = false", "allow_private_targets = true")
    allowed = allowed.replace('admin_token = "change-me"\n', "")
    config = load_config(write(tmp_path, allowed))
    assert config.destinations[0].request_headers() == {"Authorization": "Bearer s3cret"}
    assert config.engine.retry_window_s == 14400 and config.engine.max_attempts == 10


def test_lookups() -> None:
    config = parse_config(tomllib.loads(BASE))
    assert config.source_for_write_key("wk_ios") == config.sources[1]
    assert config.source_for_write_key("wk_nope") is None
    assert config.source_for_write_key("") is None
    assert config.destinations_for("web") == (config.destinations[0],)
    assert config.destinations_for("nope") == ()
    assert config.destination("batch") == config.destinations[1]
    assert config.destination("nope") is None


def test_a_source_without_destinations_is_a_warning() -> None:
    doc = tomllib.loads(BASE)
    del doc["destinations"][1]
    config = parse_config(doc)
    assert config.destinations_for("ios") == ()
    assert config.warnings == (
        "sources[1]: source 'ios' has no destinations; its events are accepted and go nowhere",
    )


def test_an_allowed_network_holding_a_metadata_address_is_a_warning() -> None:
    doc = tomllib.loads(BASE)
    doc.setdefault("engine", {})["allowed_private_cidrs"] = ["10.1.0.0/16", "169.254.0.0/16", "::/0"]
    config = parse_config(doc)
    assert config.warnings == (
        "engine.allowed_private_cidrs: 169.254.0.0/16 lets deliveries reach the cloud metadata "
        "address 169.254.169.254; list narrower networks",
        "engine.allowed_private_cidrs: ::/0 lets deliveries reach the cloud metadata "
        "address fd00:ec2::254; list narrower networks",
    )


def test_an_allowed_network_lets_its_literal_destinations_load() -> None:
    doc = tomllib.loads(BASE)
    doc.setdefault("engine", {})["allowed_private_cidrs"] = ["10.1.0.0/16"]
    doc["destinations"][0]["url"] = "http://10.1.2.3:8080/hook"
    assert parse_config(doc).destinations[0].url == "http://10.1.2.3:8080/hook"
    doc["destinations"][0]["url"] = "http://10.2.0.1:8080/hook"
    with pytest.raises(ConfigError) as caught:
        parse_config(doc)
    assert caught.value.problems[0].startswith(
        "destinations[0].url: host '10.2.0.1' is a loopback, private or link-local address"
    )


def test_the_alerts_webhook_may_be_private_but_not_a_metadata_address() -> None:
    doc = tomllib.loads(BASE)
    doc["alerts"] = {"webhook_url": "http://10.0.0.7:9093/alerts"}
    assert parse_config(doc).alerts.webhook_url == Secret("http://10.0.0.7:9093/alerts")
    doc["alerts"] = {"webhook_url": "http://[::ffff:169.254.169.254]/alerts"}
    assert problems(doc) == ("alerts.webhook_url: host '::ffff:169.254.169.254' is a cloud metadata address",)


def test_configs_built_in_code_keep_their_lookups_sound() -> None:
    web = Source("web", "acme", Secret("k"))
    hook = Destination("d", "web", "webhook", "https://x.example")
    with pytest.raises(ValueError, match="unique"):
        Config(sources=(web, dataclasses.replace(web, write_key=Secret("other"))))
    with pytest.raises(ValueError, match="unique"):
        Config(sources=(web, dataclasses.replace(web, id="web2")))
    with pytest.raises(ValueError, match="unknown source"):
        Config(sources=(web,), destinations=(dataclasses.replace(hook, source="nope"),))
    with pytest.raises(ValueError, match="unique"):
        Config(sources=(web,), destinations=(hook, hook))


# -- the file ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[engine]\nmax_attempts = \n", "invalid TOML: Invalid value (at line 2, column 16)"),
        (
            '[engine]\nadmin_token = "x"\nadmin_token = "y"\n',
            "invalid TOML: Cannot overwrite a value (at line 3, column 18)",
        ),
        (
            "[[sources]\n",
            "invalid TOML: Expected ']]' at the end of an array declaration (at line 1, column 10)",
        ),
        (b'[engine]\ndata_dir = "\xff"\n', "not UTF-8 text (byte 21)"),
    ],
)
def test_an_unreadable_file_is_one_problem(tmp_path: Path, content: str | bytes, problem: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == (problem,)
    assert str(caught.value) == f"{path}: {problem}"


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found$"):
        load_config(tmp_path / "nope.toml")


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file: Is a directory"):
        load_config(tmp_path)


# -- one problem at a time -----------------------------------------------------------------------


#: (name, changes to BASE, the problem or problems reported)
CASES: list[tuple[str, dict[str, Any], str | tuple[str, ...]]] = [
    # Unknown keys, with a suggestion.
    (
        "engine typo",
        {"engine": {"max_atempts": 3}},
        "engine.max_atempts: unknown key (did you mean 'max_attempts'?)",
    ),
    (
        "source typo",
        {"source0": {"writekey": "x"}},
        "sources[0].writekey: unknown key (did you mean 'write_key'?)",
    ),
    (
        "destination typo",
        {"destination0": {"header": {}}},
        "destinations[0].header: unknown key (did you mean 'headers'?)",
    ),
    (
        "no close match",
        {"source1": {"colour": "red"}},
        "sources[1].colour: unknown key "
        "(known: 'id', 'workspace', 'write_key', 'allowed_origins', 'enabled')",
    ),
    # Types.
    (
        "bool is not an int",
        {"engine": {"max_attempts": True}},
        "engine.max_attempts: must be an integer, got true (a boolean)",
    ),
    (
        "string is not an int",
        {"engine": {"concurrency": "10"}},
        "engine.concurrency: must be an integer, got '10' (a string)",
    ),
    (
        "float is not an int",
        {"engine": {"max_attempts": 2.5}},
        "engine.max_attempts: must be an integer, got 2.5",
    ),
    (
        "bool is not seconds",
        {"engine": {"lease_s": False}},
        "engine.lease_s: must be a number of seconds, got false (a boolean)",
    ),
    (
        "string is not seconds",
        {"engine": {"request_timeout_s": "10s"}},
        "engine.request_timeout_s: must be a number of seconds, got '10s'",
    ),
    (
        "table is not seconds",
        {"engine": {"retry_window_s": {"hours": 4}}},
        "engine.retry_window_s: must be a number of seconds, got a table",
    ),
    (
        "string is not a bool",
        {"engine": {"allow_private_targets": "yes"}},
        "engine.allow_private_targets: must be true or false, got 'yes'",
    ),
    (
        "an HTTP client there is not",
        {"engine": {"http_client": "curl"}},
        "engine.http_client: must be one of 'builtin', 'aiohttp', got 'curl'",
    ),
    (
        "an exporter place there is not",
        {"engine": {"exporter": "fork"}},
        "engine.exporter: must be one of 'process', 'thread', got 'fork'",
    ),
    (
        "int is not a bool",
        {"destination1": {"enabled": 1}},
        "destinations[1].enabled: must be true or false, got 1",
    ),
    ("int is not a path", {"engine": {"data_dir": 5}}, "engine.data_dir: must be a string, got 5"),
    (
        "array is not a string",
        {"source0": {"workspace": ["a"]}},
        "sources[0].workspace: must be a string, got an array",
    ),
    # Ranges.
    ("zero attempts", {"engine": {"max_attempts": 0}}, "engine.max_attempts: must be at least 1, got 0"),
    (
        "attempts beyond SMALLINT",
        {"engine": {"max_attempts": 40_000}},
        "engine.max_attempts: must be at most 32767, got 40000",
    ),
    ("zero concurrency", {"engine": {"concurrency": 0}}, "engine.concurrency: must be at least 1, got 0"),
    (
        "negative per-destination concurrency",
        {"engine": {"per_destination_concurrency": -2}},
        "engine.per_destination_concurrency: must be at least 1, got -2",
    ),
    (
        "zero claim batch",
        {"engine": {"claim_batch_size": 0}},
        "engine.claim_batch_size: must be at least 1, got 0",
    ),
    (
        "zero batch bytes",
        {"engine": {"max_batch_bytes": 0}},
        "engine.max_batch_bytes: must be at least 1, got 0",
    ),
    (
        "zero batch events",
        {"destination0": {"max_batch_events": 0}},
        "destinations[0].max_batch_events: must be at least 1, got 0",
    ),
    (
        "zero timeout",
        {"engine": {"request_timeout_s": 0}},
        "engine.request_timeout_s: must be a positive number of seconds, got 0",
    ),
    (
        "negative window",
        {"engine": {"retry_window_s": -1.5}},
        "engine.retry_window_s: must be a positive number of seconds, got -1.5",
    ),
    (
        "negative grace",
        {"engine": {"shutdown_grace_s": -1}},
        "engine.shutdown_grace_s: must be zero or more seconds, got -1",
    ),
    (
        "negative retry-after cap",
        {"engine": {"retry_after_max_s": -5}},
        "engine.retry_after_max_s: must be zero or more seconds, got -5",
    ),
    (
        "infinite export interval",
        {"engine": {"export_interval_s": float("inf")}},
        "engine.export_interval_s: must be a finite number of seconds, got inf",
    ),
    (
        "nan window",
        {"engine": {"retry_window_s": float("nan")}},
        "engine.retry_window_s: must be a finite number of seconds, got nan",
    ),
    (
        "absurd window",
        {"engine": {"retry_window_s": 10**9}},
        "engine.retry_window_s: must be at most 31622400 seconds (366 days), got 1e+09",
    ),
    (
        "jitter above 1",
        {"engine": {"backoff_jitter": 1.5}},
        "engine.backoff_jitter: must be a number from 0 to 1, got 1.5",
    ),
    (
        "negative jitter",
        {"engine": {"backoff_jitter": -0.1}},
        "engine.backoff_jitter: must be a number from 0 to 1, got -0.1",
    ),
    # Relations.
    (
        "base above max",
        {"engine": {"backoff_base_s": 7200}},
        "engine.backoff_base_s: must not exceed engine.backoff_max_s (3600), got 7200",
    ),
    (
        "lease no longer than the timeout",
        {"engine": {"lease_s": 10}},
        "engine.lease_s: must be longer than engine.request_timeout_s (10), got 10",
    ),
    # Required and shaped strings.
    ("missing write key", {"source0": {"write_key": None}}, "sources[0].write_key: required key is missing"),
    ("missing url", {"destination0": {"url": None}}, "destinations[0].url: required key is missing"),
    (
        "missing integration",
        {"destination1": {"integration": None}},
        "destinations[1].integration: required key is missing",
    ),
    (
        "empty id",
        {"source0": {"id": ""}},
        ("sources[0].id: must not be empty", "destinations[0].source: unknown source 'web' (known: 'ios')"),
    ),
    ("empty data dir", {"engine": {"data_dir": ""}}, "engine.data_dir: must not be empty"),
    ("short admin token", {"engine": {"admin_token": "x" * 31}}, f"engine.admin_token: {SHORT_TOKEN}"),
    (
        "admin token with a space",
        {"engine": {"admin_token": "x" * 16 + " " + "x" * 16}},
        f"engine.admin_token: {ASCII_TOKEN}",
    ),
    (
        "admin token with a non-ASCII letter",
        {"engine": {"admin_token": "é" * 32}},
        f"engine.admin_token: {ASCII_TOKEN}",
    ),
    (
        "id with a space",
        {"destination1": {"id": "my hook"}},
        "destinations[1].id: must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, "
        "got 'my hook'",
    ),
    (
        "workspace with a slash",
        {"source1": {"workspace": "acme/eu"}},
        "sources[1].workspace: must be 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit, got 'acme/eu'",
    ),
    (
        "write key with a colon",
        {"source0": {"write_key": "wk:live"}},
        "sources[0].write_key: must not contain ':' (clients send it as the Basic-auth username)",
    ),
    (
        "write key with a space",
        {"source0": {"write_key": "wk live"}},
        "sources[0].write_key: must not contain whitespace or control characters",
    ),
    # Uniqueness and references.
    (
        "duplicate source id",
        {"source1": {"id": "web"}},
        (
            "sources[1].id: duplicate source id 'web' (also sources[0])",
            "destinations[1].source: unknown source 'ios' (known: 'web')",
        ),
    ),
    (
        "duplicate write key",
        {"source1": {"write_key": "wk_web"}},
        "sources[1].write_key: same write key as sources[0]",
    ),
    (
        "duplicate destination id",
        {"destination1": {"id": "hook"}},
        "destinations[1].id: duplicate destination id 'hook' (also destinations[0])",
    ),
    (
        "unknown source, close",
        {"destination0": {"source": "webb"}},
        "destinations[0].source: unknown source 'webb' (did you mean 'web'?)",
    ),
    (
        "unknown source, far",
        {"destination0": {"source": "android"}},
        "destinations[0].source: unknown source 'android' (known: 'web', 'ios')",
    ),
    # URLs.
    (
        "ftp",
        {"destination1": {"url": "ftp://x"}},
        "destinations[1].url: must be an http(s) URL, got 'ftp://x'",
    ),
    (
        "no scheme",
        {"destination1": {"url": "hooks.example.com/in"}},
        "destinations[1].url: must be an http(s) URL, got ':///…'",
    ),
    (
        "no host",
        {"destination1": {"url": "http:///hook"}},
        "destinations[1].url: must name a host, got 'http:///…'",
    ),
    (
        "bad port",
        {"destination1": {"url": "http://example.com:99999/"}},
        "destinations[1].url: is not a valid URL (Port out of range 0-65535)",
    ),
    (
        "bad IPv6",
        {"destination1": {"url": "http://[::1/"}},
        "destinations[1].url: is not a valid URL (Invalid IPv6 URL)",
    ),
    (
        "whitespace",
        {"destination1": {"url": "https://example.com/a b"}},
        "destinations[1].url: must not contain whitespace or control characters",
    ),
    (
        "credentials",
        {"destination1": {"url": "https://user:hunter2@example.com/"}},
        "destinations[1].url: must not carry credentials (user:password@host); put them in headers",
    ),
    (
        "cloud metadata",
        {"destination1": {"url": "http://169.254.169.254/latest/meta-data"}},
        "destinations[1].url: host '169.254.169.254' is a cloud metadata address; "
        "list it in engine.allowed_private_cidrs to deliver to it",
    ),
    (
        "localhost",
        {"destination1": {"url": "http://localhost:8080/"}},
        "destinations[1].url: host 'localhost' is a loopback, private or link-local address; "
        "set engine.allow_private_targets = true, or list its network in engine.allowed_private_cidrs, "
        "to deliver to it",
    ),
    (
        "IPv6 loopback",
        {"destination1": {"url": "http://[::1]:8080/"}},
        "destinations[1].url: host '::1' is a loopback, private or link-local address; "
        "set engine.allow_private_targets = true, or list its network in engine.allowed_private_cidrs, "
        "to deliver to it",
    ),
    (
        "link-local",
        {"destination1": {"url": "http://[fe80::1]:8080/"}},
        "destinations[1].url: host 'fe80::1' is a loopback, private or link-local address; "
        "set engine.allow_private_targets = true, or list its network in engine.allowed_private_cidrs, "
        "to deliver to it",
    ),
    (
        "Azure's wire server, publicly routable",
        {"engine": {"allow_private_targets": True}, "destination1": {"url": "http://168.63.129.16/"}},
        "destinations[1].url: host '168.63.129.16' is a cloud metadata address; "
        "list it in engine.allowed_private_cidrs to deliver to it",
    ),
    (
        "allowed networks not an array",
        {"engine": {"allowed_private_cidrs": "10.0.0.0/8"}},
        'engine.allowed_private_cidrs: must be an array of networks such as ["10.1.0.0/16"], got a string',
    ),
    (
        "allowed network not a string",
        {"engine": {"allowed_private_cidrs": [10]}},
        'engine.allowed_private_cidrs[0]: must be a network such as "10.1.0.0/16", got an integer',
    ),
    (
        "allowed network with host bits",
        {"engine": {"allowed_private_cidrs": ["10.1.0.0/16", "10.1.2.3/16"]}},
        "engine.allowed_private_cidrs[1]: '10.1.2.3/16' has bits set after the prefix length; "
        "did you mean '10.1.0.0/16'?",
    ),
    (
        "allowed network not a network",
        {"engine": {"allowed_private_cidrs": ["10.1.0.0/33"]}},
        "engine.allowed_private_cidrs[0]: '10.1.0.0/33' is not a network in CIDR notation "
        '(such as "10.1.0.0/16" or "fd12:3456::/48")',
    ),
    (
        "egress proxy over https",
        {"engine": {"egress_proxy": "https://smokescreen.internal:4750"}},
        "engine.egress_proxy: must be an http://host:port URL, got scheme 'https' (the engine speaks "
        "plain HTTP to the proxy; https deliveries go through it in CONNECT tunnels)",
    ),
    (
        "egress proxy without a port",
        {"engine": {"egress_proxy": "http://smokescreen.internal"}},
        "engine.egress_proxy: must give the proxy's port (http://smokescreen.internal:port)",
    ),
    (
        "egress proxy with credentials",
        {"engine": {"egress_proxy": "http://user:hunter2@smokescreen.internal:4750"}},
        "engine.egress_proxy: must not carry credentials (user:password@host): "
        "proxy authentication is not supported",
    ),
    (
        "egress proxy not a string",
        {"engine": {"egress_proxy": 4750}},
        "engine.egress_proxy: must be a string, got 4750",
    ),
    # Headers.
    (
        "headers not a table",
        {"destination0": {"headers": "Authorization: x"}},
        "destinations[0].headers: must be a table of header names to strings, got a string",
    ),
    (
        "header value not a string",
        {"destination0": {"headers": {"X-Retries": 3}}},
        "destinations[0].headers.X-Retries: must be a string, got an integer",
    ),
    (
        "header name invalid",
        {"destination0": {"headers": {"X Api Key": "k"}}},
        "destinations[0].headers: 'X Api Key' is not a valid HTTP header name",
    ),
    (
        "header injection",
        {"destination0": {"headers": {"X-Api-Key": "k\r\nX-Evil: 1"}}},
        "destinations[0].headers.X-Api-Key: must not contain line breaks or control characters",
    ),
    (
        "header the client owns",
        {"destination0": {"headers": {"content-length": "5"}}},
        "destinations[0].headers.content-length: is set by the HTTP client and cannot be configured",
    ),
    (
        "header twice",
        {"destination0": {"headers": {"X-Key": "a", "x-key": "b"}}},
        "destinations[0].headers.x-key: same header as destinations[0].headers.X-Key",
    ),
    # Allowed origins.
    (
        "allowed origins not an array",
        {"source0": {"allowed_origins": "https://shop.example.com"}},
        'sources[0].allowed_origins: must be an array such as ["https://shop.example.com"], got a string',
    ),
    (
        "allowed origin not a string",
        {"source0": {"allowed_origins": [443]}},
        "sources[0].allowed_origins[0]: must be a string, got an integer",
    ),
    (
        "allowed origin with a path",
        {"source0": {"allowed_origins": ["https://shop.example.com/cart"]}},
        "sources[0].allowed_origins[0]: 'https://shop.example.com/cart': an origin has no path, query or "
        "fragment; write 'https://shop.example.com'",
    ),
    (
        "allowed origin with a trailing slash",
        {"source1": {"allowed_origins": ["https://a.example.com", "https://shop.example.com:443/"]}},
        "sources[1].allowed_origins[1]: 'https://shop.example.com:443/': an origin has no path, query or "
        "fragment; write 'https://shop.example.com'",
    ),
    (
        "allowed origin without a scheme",
        {"source0": {"allowed_origins": ["shop.example.com"]}},
        "sources[0].allowed_origins[0]: 'shop.example.com' is not an origin: write '*' or an origin "
        "such as 'https://shop.example.com'",
    ),
    (
        "allowed origin with credentials",
        {"source0": {"allowed_origins": ["https://me:pw@shop.example.com"]}},
        "sources[0].allowed_origins[0]: 'https://me:pw@shop.example.com': an origin carries no user name "
        "or password",
    ),
    (
        "allowed origin over a top-level domain",
        {"source0": {"allowed_origins": ["https://*.com"]}},
        "sources[0].allowed_origins[0]: 'https://*.com': a wildcard stands for subdomains, first and "
        "alone, over a domain of two labels or more, as in 'https://*.example.com'",
    ),
    (
        "allowed origin wildcard inside",
        {"source0": {"allowed_origins": ["https://shop*.example.com"]}},
        "sources[0].allowed_origins[0]: 'https://shop*.example.com': a wildcard stands for subdomains, "
        "first and alone, over a domain of two labels or more, as in 'https://*.example.com'",
    ),
    (
        "allowed origin not ASCII",
        {"source0": {"allowed_origins": ["https://bücher.example"]}},
        "sources[0].allowed_origins[0]: 'https://bücher.example': write '*' or an origin such as "
        "'https://shop.example.com', ASCII without spaces (an international domain in its xn-- form, "
        "as browsers send it)",
    ),
    (
        "any origin beside others",
        {"source0": {"allowed_origins": ["*", "https://shop.example.com"]}},
        'sources[0].allowed_origins: "*" allows every page already; list it alone or list the origins '
        "without it",
    ),
]


@pytest.mark.parametrize(
    ("changes", "problem"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_each_problem_names_its_key(
    changes: dict[str, dict[str, Any]], problem: str | tuple[str, ...]
) -> None:
    assert problems(document(**changes)) == (problem if isinstance(problem, tuple) else (problem,))


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        ({"engin": {}}, "engin: unknown key (did you mean 'engine'?)"),
        ({"source": []}, "source: unknown key (did you mean 'sources'?)"),
        ({"engine": [1]}, "engine: must be a table ([engine]), got an array"),
        ({"sources": {"id": "web"}}, "sources: must be an array of tables ([[sources]]), got a table"),
        ({"destinations": [1]}, "destinations[0]: must be a table, got an integer"),
    ],
)
def test_the_shape_of_the_document(mapping: dict[str, Any], problem: str) -> None:
    assert problems(mapping) == (problem,)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = BASE.replace(
        'admin_token = "tok-0123456789-0123456789-0123456789"', "max_atempts = 3\nrequest_timeout_s = 0"
    ).replace('url = "https://batch.example.com/in"', 'url = "ftp://x"')
    text = text.replace('source = "ios"', 'source = "iso"')
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: 4 problems\n"
        "  engine.max_atempts: unknown key (did you mean 'max_attempts'?)\n"
        "  engine.request_timeout_s: must be a positive number of seconds, got 0\n"
        "  destinations[1].url: must be an http(s) URL, got 'ftp://x'\n"
        "  destinations[1].source: unknown source 'iso' (did you mean 'ios'?)"
    )


def test_private_targets_are_allowed_when_asked() -> None:
    doc = document(engine={"allow_private_targets": True}, destination0={"url": "http://127.0.0.1:9001/hook"})
    assert parse_config(doc).destinations[0].origin == "http://127.0.0.1:9001"


# -- ca_bundle and data_dir ----------------------------------------------------------------------


def test_ca_bundle_must_exist(tmp_path: Path) -> None:
    assert problems(document(engine={"ca_bundle": str(tmp_path / "ca.pem")})) == (
        f"engine.ca_bundle: no such file: {str(tmp_path / 'ca.pem')!r}",
    )


def test_ca_bundle_must_hold_certificates(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    (found,) = problems(document(engine={"ca_bundle": str(tmp_path / "ca.pem")}))
    assert found.startswith(
        f"engine.ca_bundle: {str(tmp_path / 'ca.pem')!r} is not a PEM file of CA certificates ("
    )


def test_a_pem_ca_bundle_relative_to_the_config_file(tmp_path: Path) -> None:
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = load_config(write(tmp_path, BASE.replace("[engine]\n", '[engine]\nca_bundle = "ca.pem"\n')))
    assert config.engine.ca_bundle == tmp_path / "ca.pem"


def test_data_dir_must_not_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    assert problems(document(engine={"data_dir": str(tmp_path / "data")})) == (
        f"engine.data_dir: {str(tmp_path / 'data')!r} exists and is not a directory",
    )


# -- secrets -------------------------------------------------------------------------------------

SECRETS = (
    "wk_SECRET_web",
    "wk_SECRET_ios",
    "Bearer SECRET_header",
    "tok_SECRET_admin_0123456789_0123456789",
    "SECRET_path_token",
)


def secret_document() -> dict[str, Any]:
    return document(
        engine={"admin_token": SECRETS[3]},
        source0={"write_key": SECRETS[0]},
        source1={"write_key": SECRETS[1]},
        destination0={
            "headers": {"Authorization": SECRETS[2]},
            "url": f"https://hooks.example.com/{SECRETS[4]}",
        },
    )


def assert_no_secret(text: str) -> None:
    assert "SECRET" not in text, text


def test_secrets_do_not_show_in_repr_or_str() -> None:
    config = parse_config(secret_document())
    for shown in (config, config.engine, *config.sources, *config.destinations):
        assert_no_secret(repr(shown))
        assert_no_secret(str(shown))
        assert_no_secret(f"{shown}")
    assert repr(config.sources[0].write_key) == "Secret('**********')"
    assert "origin='https://hooks.example.com'" in repr(config.destinations[0])
    assert config.destinations[0].request_headers() == {"Authorization": SECRETS[2]}
    assert config.source_for_write_key(SECRETS[1]) == config.sources[1]


@pytest.mark.parametrize(
    "changes",
    [
        {"source0": {"write_key": "wk:SECRET"}},
        {"source0": {"write_key": "wk SECRET"}},
        {"source1": {"write_key": "wk_SECRET_web"}},  # duplicate of source 0
        {"source0": {"write_kee": "wk_SECRET"}},
        {"destination0": {"headers": {"Authorization": "SECRET\n"}}},
        {"destination0": {"headers": {"Host": "SECRET"}}},
        {"destination0": {"url": "ftp://files.example.com/SECRET?key=SECRET"}},
        {"destination0": {"url": "https://user:SECRET@example.com/"}},
        {"destination0": {"url": "https://127.0.0.1/SECRET"}},
        {"destination0": {"url": "https://example.com:99999/SECRET"}},
    ],
)
def test_secrets_do_not_show_in_errors(changes: dict[str, dict[str, Any]]) -> None:
    doc = secret_document()
    for name, keys in changes.items():
        kind, index = name[:-1], int(name[-1])
        doc[f"{kind}s"][index].update(keys)
    doc["engine"]["admin_token"] = 12345  # type errors on secrets do not echo the value either
    found = problems(doc)
    assert "engine.admin_token: must be a string, got an integer" in found
    assert "12345" not in "\n".join(found)
    assert_no_secret("\n".join(found))


def test_secret() -> None:
    secret = Secret("hunter2")
    assert secret.reveal() == "hunter2"
    assert (repr(secret), str(secret), f"{secret}") == ("Secret('**********')", "**********", "**********")
    assert secret.matches("hunter2") and not secret.matches("hunter3") and not secret.matches("")
    assert secret == Secret("hunter2") and secret != Secret("x") and secret != "hunter2"
    assert len({secret, Secret("hunter2")}) == 1


# -- docs ----------------------------------------------------------------------------------------


def doc_table(heading: str) -> dict[str, str]:
    """The key -> default cells of the table under a heading of docs/configuration.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"## `{heading}`\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|", section, re.MULTILINE))


def toml_value(cell: str) -> Any:
    return tomllib.loads(f"v = {cell.strip().strip('`')}")["v"]


#: Destination keys whose default is the integration's (delivery/catalog.toml), documented as such.
CATALOG_DEFAULTS = frozenset({"max_batch_events", "max_batch_bytes", "rate_limit_per_s", "rate_limit_burst"})


def test_the_docs_list_every_engine_key_with_its_default() -> None:
    table = doc_table("[engine]")
    assert list(table) == [f.name for f in dataclasses.fields(EngineConfig)]
    as_toml = {
        "data_dir": "data",
        "allowed_private_cidrs": [],
        "egress_proxy": "",
        "ca_bundle": "",
        "admin_token": "",
    }
    for f in dataclasses.fields(EngineConfig):
        assert toml_value(table[f.name]) == as_toml.get(f.name, f.default), f.name
    assert EngineConfig().admin_token is None  # documented as "": none, so the engine generates one


@pytest.mark.parametrize(("heading", "record"), [("[[sources]]", Source), ("[[destinations]]", Destination)])
def test_the_docs_list_every_source_and_destination_key(heading: str, record: type) -> None:
    table = doc_table(heading)
    assert list(table) == [f.name for f in dataclasses.fields(record)]
    for f in dataclasses.fields(record):
        cell = table[f.name].strip()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            assert cell == "required", f.name
        elif cell == "from the integration":
            assert f.name in CATALOG_DEFAULTS, f.name
        elif cell == "none":
            assert f.default is None, f.name
        else:
            factory: Any = f.default_factory
            default = f.default if factory is dataclasses.MISSING else factory()
            # TOML has arrays where the records hold tuples.
            expected = list(default) if isinstance(default, tuple) else default
            assert toml_value(table[f.name]) == expected, f.name


def test_the_docs_example_is_valid() -> None:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- test: example -->\n```toml\n(.*?)```", text, re.DOTALL)
    assert match, "docs/configuration.md lost its example"
    config = parse_config(tomllib.loads(match[1]))
    assert config.warnings == ()
    assert config.destinations[0].origin == "https://hooks.acme.example"


def test_the_example_file_lists_every_engine_key() -> None:
    engine = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["engine"]
    assert list(engine) == [f.name for f in dataclasses.fields(EngineConfig)]


# -- [queue] -------------------------------------------------------------------------------------

PASSWORD = "pw_SECRET_queue"
DSN = f"postgresql://dd:{PASSWORD}@db.internal:5432/deliverydash"


def queue_document(**queue: Any) -> dict[str, Any]:
    return {**document(), "queue": queue}


def queue_problems(mapping: dict[str, Any], environ: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(mapping, "test.toml", environ=environ or {})
    return caught.value.problems


def test_the_queue_is_embedded_unless_the_file_says_postgres() -> None:
    config = parse_config(document(), environ={})
    assert config.queue == QueueConfig(backend="sqlite", dsn=None)
    assert not config.queue.shared
    config = parse_config(queue_document(backend="postgres", dsn=DSN), environ={})
    assert config.queue.backend == "postgres" and config.queue.shared
    assert config.queue.dsn is not None and config.queue.dsn.reveal() == DSN
    assert config.warnings == ()


def test_the_environment_overrides_the_files_connection_string() -> None:
    other = "postgresql://dd:other@10.0.0.5/deliverydash"
    config = parse_config(queue_document(backend="postgres", dsn=DSN), environ={QUEUE_DSN_ENV: other})
    assert config.queue.dsn == Secret(other)
    # The password can live in the environment alone.
    config = parse_config(queue_document(backend="postgres"), environ={QUEUE_DSN_ENV: other})
    assert config.queue.dsn == Secret(other)
    # The environment never switches the backend by itself.
    assert parse_config(document(), environ={QUEUE_DSN_ENV: other}).queue.backend == "sqlite"


def test_load_config_reads_the_connection_string_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "engine.toml"
    path.write_text(BASE + '\n[queue]\nbackend = "postgres"\n', encoding="utf-8")
    monkeypatch.setenv(QUEUE_DSN_ENV, DSN)
    assert load_config(path).queue.dsn == Secret(DSN)
    monkeypatch.delenv(QUEUE_DSN_ENV)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == (
        f'queue.dsn: backend "postgres" needs a connection string here or in ${QUEUE_DSN_ENV}',
    )


@pytest.mark.parametrize(
    ("queue", "environ", "expected"),
    [
        ({"backend": "redis"}, {}, "queue.backend: must be one of 'sqlite', 'postgres', got 'redis'"),
        ({"backend": "postgres", "dsn": ""}, {}, 'queue.dsn: backend "postgres" needs a connection string'),
        ({"backend": "postgres", "dsn": f"mysql://u:{PASSWORD}@h/db"}, {}, "must start with postgresql://"),
        ({"backend": "postgres", "dsn": f"postgresql://u:{PASSWORD}@h:99999/db"}, {}, "is not a valid URL"),
        ({"backend": "postgres", "dsn": PASSWORD}, {}, "must be a postgresql:// URL or libpq key=value"),
        ({"backend": "postgres"}, {QUEUE_DSN_ENV: f"http://u:{PASSWORD}@h/db"}, f"(from ${QUEUE_DSN_ENV})"),
        ({"backend": "postgres", "dsn": 5432}, {}, "queue.dsn: must be a string, got an integer"),
        ({"backend": "postgres", "pool": 4}, {QUEUE_DSN_ENV: DSN}, "queue.pool: unknown key"),
    ],
)
def test_queue_problems_name_the_key_and_never_the_password(
    queue: dict[str, Any], environ: dict[str, str], expected: str
) -> None:
    found = "\n".join(queue_problems(queue_document(**queue), environ))
    assert expected in found
    assert "SECRET" not in found


def test_a_connection_string_with_the_embedded_queue_is_a_warning() -> None:
    config = parse_config(queue_document(backend="sqlite", dsn=DSN), environ={})
    assert config.queue.backend == "sqlite"
    assert config.warnings == (
        'queue.dsn: unused while backend is "sqlite"; set backend = "postgres" to use it',
    )


def test_a_shared_queue_without_an_admin_token_is_a_warning() -> None:
    # Engines on other machines have other data directories, so other generated tokens.
    mapping = {**document(engine={"admin_token": None}), "queue": {"backend": "postgres", "dsn": DSN}}
    assert parse_config(mapping, environ={}).warnings == (
        "engine.admin_token: not set, so each machine's engines generate their own in "
        "data_dir/admin_token; set one token for a fleet that spans machines (docs/fleet.md)",
    )
    assert parse_config(document(engine={"admin_token": None}), environ={}).warnings == ()


def test_the_queues_connection_string_never_shows() -> None:
    config = parse_config(queue_document(backend="postgres", dsn=DSN), environ={})
    for shown in (config, config.queue):
        assert PASSWORD not in repr(shown) and PASSWORD not in str(shown)


def test_the_docs_and_the_example_file_list_every_queue_key() -> None:
    assert list(doc_table("[queue]")) == [f.name for f in dataclasses.fields(QueueConfig)]
    queue = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["queue"]
    assert queue == {"backend": "sqlite", "dsn": ""}


# -- allowed origins -----------------------------------------------------------------------------


def test_a_source_takes_events_from_every_page_unless_told() -> None:
    config = parse_config(tomllib.loads(BASE))
    assert config.sources[0].allowed_origins == ("*",)
    assert config.sources[0].allows_origin("https://anything.example")
    assert config.any_source_allows_origin("null")


def test_allowed_origins_are_kept_as_browsers_send_them_and_judged_per_source() -> None:
    config = parse_config(
        document(
            source0={"allowed_origins": ["HTTPS://Shop.Example.com:443", "https://*.example.org"]},
            source1={"allowed_origins": []},
        )
    )
    web, ios = config.sources
    assert web.allowed_origins == ("https://shop.example.com", "https://*.example.org")
    assert ios.allowed_origins == ()
    assert web.allows_origin("https://shop.example.com") and web.allows_origin("https://eu.example.org")
    assert not web.allows_origin("https://example.org") and not web.allows_origin("null")
    assert not ios.allows_origin("https://shop.example.com")
    # A preflight carries no write key: it is judged by every source's origins at once.
    assert config.any_source_allows_origin("https://eu.example.org")
    assert not config.any_source_allows_origin("https://elsewhere.example")


def test_an_origin_written_twice_is_kept_once() -> None:
    config = parse_config(
        document(source0={"allowed_origins": ["https://shop.example.com", "https://shop.example.com:443"]})
    )
    assert config.sources[0].allowed_origins == ("https://shop.example.com",)
