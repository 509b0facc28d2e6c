"""The simulator's TOML config and its command: defaults, errors naming keys, a real run."""

from __future__ import annotations

import json
import random
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from deliverydash.cli import main
from deliverydash.partner_simulator.config import (
    ConfigError,
    PartnersConfig,
    default_config,
    load_partners,
    parse_partners,
)
from deliverydash.partner_simulator.profiles import PROFILES, Flaky, RateLimited
from deliverydash.partner_simulator.tls import TLS_KINDS

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "partners.example.toml"


def shape(config: PartnersConfig) -> list[tuple[str, str, int, str | None]]:
    return [(s.name, s.profile.name, s.port, s.tls) for s in config.partners]


def test_the_example_file_is_the_default_set() -> None:
    example = load_partners(EXAMPLE)
    assert shape(example) == shape(default_config())
    assert example.control_port == default_config().control_port == 9099
    assert {s.profile.name for s in example.partners} == set(PROFILES)
    assert {s.tls for s in example.partners} >= {"valid", "expired", "self-signed", "unknown-ca"}
    assert [s.port for s in example.partners] == list(range(9100, 9116))


def test_knobs_reach_the_profile() -> None:
    config = parse_partners(
        {
            "control_port": 0,
            "partners": [
                {
                    "name": "support-tickets",
                    "profile": "rate-limited",
                    "rate": 5,
                    "burst": 2,
                    "latency_s": 0.1,
                },
                {"name": "email-campaigns", "profile": "flaky", "error_rate": 0.5, "seed": 3, "tls": "valid"},
            ],
        }
    )
    limited, flaky = config.partners
    assert limited.profile == RateLimited(rate=5.0, burst=2)
    assert limited.latency_s == 0.1
    assert isinstance(flaky.profile, Flaky) and flaky.profile.error_rate == 0.5 and flaky.tls == "valid"
    assert flaky.profile.rng.random() == random.Random(3).random()


def problems(document: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_partners(document, "partners.toml")
    return list(caught.value.problems)


def test_every_problem_names_its_key() -> None:
    found = problems(
        {
            "control_port": 70000,
            "colour": "blue",
            "partners": [
                {"name": "a", "profile": "rate-limitd"},
                {"name": "b", "profile": "rate-limited", "rat": 3, "burst": "10", "tls": "old"},
                {"name": "b", "profile": "wtf", "port": 9100, "statuses": [418, 1000]},
                {"name": "c", "profile": "healthy", "port": 9100, "latency_s": -1},
            ],
        }
    )
    assert found == [
        "colour: unknown key (known: 'control_port', 'partners')",
        "control_port: must be a port number from 0 to 65535 (0: any free port), got 70000",
        "partners[0].profile: must name a profile, got 'rate-limitd' (did you mean 'rate-limited'?)",
        "partners[1].rat: unknown key (did you mean 'rate'?)",
        f"partners[1].tls: must be one of {', '.join(map(repr, TLS_KINDS))}, got 'old'",
        "partners[1].burst: must be an integer, got '10' (a string)",
        "partners[2].statuses: must be a non-empty list of numbers from 1 to 999, got [418, 1000]",
        "partners[3].latency_s: must be a number of seconds from 0 to 3600, got -1",
        "partners[2].name: 'b' is used by an earlier partner",
        "partners[3].port: 9100 is already taken by b",
    ]


def test_each_partner_needs_a_name_and_a_known_profile() -> None:
    found = problems(
        {"partners": [{"profile": "healthy"}, {"name": "a b", "profile": "slow"}, {"name": "c"}, 3]}
    )
    assert found == [
        "partners[3]: must be a table, got an integer",
        "partners[0].name: required key is missing",
        "partners[1].name: must be 1-63 letters, digits, '-' or '_', starting with a letter or digit, "
        "got 'a b'",
        f"partners[1].profile: must name a profile, got 'slow' (known: {', '.join(map(repr, PROFILES))})",
        "partners[2].profile: required key is missing",
    ]


def test_a_config_needs_partners() -> None:
    assert problems({}) == ["partners: required: an array of tables ([[partners]]) with at least one partner"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[partners]]\nname = 'x'\nprofile = 'flaky'\nerror_rate = 2\n", "partners[0].error_rate: must be"),
        ("partners = [", "invalid TOML"),
    ],
)
def test_a_bad_config_exits_2_with_one_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "partners.toml"
    path.write_text(text)
    assert main(["partners", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"deliverydash partners: {path}: ")
    assert expected in err
    assert "Traceback" not in err


def test_a_missing_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["partners", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: file not found" in capsys.readouterr().err


def test_the_command_runs_until_sigterm(tmp_path: Path) -> None:
    ready, ca = tmp_path / "ready.json", tmp_path / "ca.pem"
    command = [
        sys.executable,
        "-m",
        "deliverydash",
        "partners",
        "--any-port",
        "--ready-file",
        str(ready),
    ]
    process = subprocess.Popen(
        [*command, "--ca-file", str(ca)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20  # a generous wait on a busy machine, not a measurement
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the simulator did not start"
            time.sleep(0.05)
        listing = json.loads(ready.read_text())
        urls = {p["name"]: p["url"] for p in listing["partners"]}
        assert httpx.post(urls["crm-records"], json={"type": "track"}).status_code == 200
        assert httpx.post(urls["ads-conversions"], json={"type": "track"}).status_code == 401
        stats = httpx.get(listing["control_url"] + "_stats").json()["partners"]
        assert stats["crm-records"]["requests"] == 1
        assert listing["ca_file"] == str(ca) and ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE")
        with httpx.Client(verify=ssl.create_default_context(cafile=ca)) as client:
            assert client.post(urls["secure-hooks"], json={}).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "crm-records" in out and "http://127.0.0.1:" in out and str(ca) in out
    assert "Traceback" not in err
