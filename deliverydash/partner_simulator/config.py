"""The partner simulator's configuration: a TOML file of partners, or the default set.

`load_partners` reads a file such as `partners.example.toml`::

    control_port = 9099            # GET /_stats for every partner (0: any free port)

    [[partners]]
    name = "support-tickets"       # letters, digits, '-' and '_'
    profile = "rate-limited"       # a name from deliverydash.partner_simulator.profiles.PROFILES
    port = 9101                    # 0: any free port
    tls = "valid"                  # optional, one of tls.TLS_KINDS; absent: plain HTTP
    latency_s = 0.02               # optional, added before every answer
    seed = 1                       # optional, for profiles that draw at random
    rate = 10                      # the profile's knobs (docs/partners.md)
    burst = 10

Every problem is collected, each naming its key (`partners[1].rate: must be
...`), and raised together as one `ConfigError`. Everything listens on
127.0.0.1 only.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from delivery.config.toml_table import Table, array_of_tables, describe, reject_unknown, suggest
from deliverydash.partner_simulator.profiles import (
    PROFILES,
    AcceptThenTimeout,
    Batch,
    ExpiredCredentials,
    Flaky,
    Forbidden,
    Healthy,
    Outage,
    Profile,
    RateLimited,
    ResetProfile,
    Strict,
    Timeout,
    Wtf,
)
from deliverydash.partner_simulator.tls import TLS_KINDS

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_NAME_RULE: Final = "must be 1-63 letters, digits, '-' or '_', starting with a letter or digit"
_PARTNER_KEYS: Final = ("name", "profile", "port", "tls", "latency_s", "seed")
DEFAULT_CONTROL_PORT: Final = 9099


@dataclass(frozen=True, slots=True)
class PartnerSpec:
    """One simulated partner: who it is, how it behaves, where it listens."""

    name: str
    """Its name, shown in the table and the stats (an invented, descriptive one)."""
    profile: Profile
    """Its behaviour (one instance per partner: profiles keep state, such as a token bucket)."""
    port: int = 0
    """The loopback port; 0 picks a free one."""
    tls: str | None = None
    """The certificate kind it serves (`tls.TLS_KINDS`), or None for plain HTTP."""
    latency_s: float = 0.0
    """Seconds added before every answer."""


@dataclass(frozen=True, slots=True)
class PartnersConfig:
    """The whole simulator: its partners and the control port."""

    partners: tuple[PartnerSpec, ...]
    control_port: int | None = DEFAULT_CONTROL_PORT
    """The port of the stats server (0: any free one; None: no control server)."""


class ConfigError(Exception):
    """A config with problems; the message names the file and every key at fault."""

    def __init__(self, origin: str, problems: Iterable[str]) -> None:
        self.origin = origin
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return f"{self.origin}: {self.problems[0]}"
        return f"{self.origin}: {len(self.problems)} problems\n" + "\n".join(f"  {p}" for p in self.problems)


def default_config(base_port: int = 9100, control_port: int | None = DEFAULT_CONTROL_PORT) -> PartnersConfig:
    """One partner of each profile (and of each TLS failure) on ports from `base_port` up."""
    partners: list[tuple[str, Profile, str | None]] = [
        ("crm-records", Healthy(), None),
        ("support-tickets", RateLimited(rate=10, burst=10), None),
        ("email-campaigns", Flaky(error_rate=0.2, rng=random.Random(1)), None),
        ("warehouse-loader", Outage(period_s=60, down_s=15), None),
        ("ads-conversions", ExpiredCredentials(), None),
        ("sales-pipeline", Forbidden(), None),
        ("product-analytics", Strict(), None),
        ("events-bulk", Batch(max_events=100), None),
        ("homemade-webhook", Wtf(), None),
        ("flaky-network", ResetProfile(), None),
        ("stuck-webhook", Timeout(), None),
        ("secure-hooks", Healthy(), "valid"),
        ("stale-certificate", Healthy(), "expired"),
        ("homegrown-tls", Healthy(), "self-signed"),
        ("shadow-authority", Healthy(), "unknown-ca"),
        ("double-taker", AcceptThenTimeout(), None),
    ]
    specs = tuple(
        PartnerSpec(name, profile, base_port + index, tls)
        for index, (name, profile, tls) in enumerate(partners)
    )
    return PartnersConfig(specs, control_port)


def load_partners(path: str | os.PathLike[str]) -> PartnersConfig:
    """Read and check a partners TOML file; raises `ConfigError` naming every problem."""
    origin = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(origin, ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(origin, [f"cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(origin, [f"not UTF-8 text (byte {exc.start})"]) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(origin, [f"invalid TOML: {exc}"]) from None
    return parse_partners(document, origin)


def parse_partners(document: Mapping[str, Any], origin: str = "<config>") -> PartnersConfig:
    """Turn a parsed TOML document into a `PartnersConfig`; raises `ConfigError`."""
    problems: list[str] = []
    top = Table(document, "", ("control_port", "partners"), problems)
    control_port = _port(top, "control_port", DEFAULT_CONTROL_PORT)
    if document.get("partners"):
        tables = array_of_tables(document, "partners", problems)
    else:
        tables = []
        problems.append("partners: required: an array of tables ([[partners]]) with at least one partner")
    specs: list[tuple[str, PartnerSpec]] = []
    for where, raw in tables:
        # Which keys are known depends on the profile, so `_partner` checks them once it has read it.
        spec = _partner(Table(raw, where, None, problems))
        if spec is not None:
            specs.append((where, spec))
    problems += _clashes(specs, control_port)
    if problems:
        raise ConfigError(origin, problems)
    return PartnersConfig(tuple(spec for _, spec in specs), control_port)


def _partner(table: Table) -> PartnerSpec | None:
    """One `[[partners]]` table, or None when its problems leave no partner to build."""
    name = table.text("name", pattern=_NAME, rule=_NAME_RULE)
    profile_class = _profile_class(table)
    if profile_class is None:
        return None
    knobs = [f.name for f in dataclasses.fields(profile_class) if f.init and f.metadata.get("knob", True)]
    reject_unknown(table.raw, (*_PARTNER_KEYS, *knobs), table.where, table.problems)
    port = _port(table, "port", 0)
    tls = table.choice("tls", None, TLS_KINDS)
    latency_s = table.get("latency_s", 0.0)
    if not _is_number(latency_s) or not 0 <= latency_s <= 3600:
        table.problem("latency_s", f"must be a number of seconds from 0 to 3600, got {describe(latency_s)}")
    seed = table.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        table.problem("seed", f"must be an integer, got {describe(seed)}")
    profile = _profile(table, profile_class, knobs, seed)
    if not name or port is None:
        return None
    return PartnerSpec(name, profile, port, tls, float(latency_s) if _is_number(latency_s) else 0.0)


def _profile_class(table: Table) -> type[Profile] | None:
    name = table.text("profile")
    profile_class = PROFILES.get(name)
    if profile_class is None and name:
        # A profile's name cannot be guessed from the file, so all are listed when none is close.
        hint = suggest(name, PROFILES) or f" (known: {', '.join(map(repr, PROFILES))})"
        table.problem("profile", f"must name a profile, got {describe(name)}{hint}")
    return profile_class


def _profile(table: Table, profile_class: type[Profile], knobs: list[str], seed: Any) -> Profile:
    """The profile with the knobs the table sets: their types checked here, their values by the profile."""
    defaults = profile_class()
    values: dict[str, Any] = {}
    for key in knobs:
        if key in table.raw:
            value = _knob(table, key, getattr(defaults, key))
            if value is not None:
                values[key] = value
    if "rng" in {f.name for f in dataclasses.fields(profile_class)} and isinstance(seed, int):
        values["rng"] = random.Random(seed)
    profile = profile_class(**values)
    for key, message in profile.check():
        table.problem(key, message)
    return profile


def _knob(table: Table, key: str, default: Any) -> Any:
    """The knob's value if it has the default's type (an integer passes for a float), else None."""
    value = table.raw[key]
    if isinstance(default, bool):
        ok, wanted = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, wanted = _is_number(value), "a number"
    elif isinstance(default, str):
        ok, wanted = isinstance(value, str), "a string"
    elif isinstance(default, list):
        item = type(default[0]) if default else str
        ok = isinstance(value, list) and all(isinstance(v, item) and not isinstance(v, bool) for v in value)
        wanted = f"an array of {'integers' if item is int else 'strings'}"
    else:  # pragma: no cover - a profile with a knob type this reader does not know
        raise TypeError(f"{table.where}.{key}: unsupported knob type {type(default).__name__}")
    if not ok:
        table.problem(key, f"must be {wanted}, got {describe(value)}")
        return None
    return float(value) if isinstance(default, float) else value


def _port(table: Table, key: str, default: int) -> int | None:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        table.problem(key, f"must be a port number from 0 to 65535 (0: any free port), got {describe(value)}")
        return None
    return value


def _clashes(specs: list[tuple[str, PartnerSpec]], control_port: int | None) -> list[str]:
    problems: list[str] = []
    names: set[str] = set()
    ports: dict[int, str] = {control_port: "control_port"} if control_port else {}
    for where, spec in specs:
        if spec.name in names:
            problems.append(f"{where}.name: {spec.name!r} is used by an earlier partner")
        names.add(spec.name)
        if spec.port and spec.port in ports:
            problems.append(f"{where}.port: {spec.port} is already taken by {ports[spec.port]}")
        if spec.port:
            ports[spec.port] = spec.name
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
