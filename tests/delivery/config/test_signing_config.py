"""A destination's signing secrets in the config file: what loads, and the error naming each bad one."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from pathlib import Path
from typing import Any

import pytest

from delivery.config import ConfigError, Secret, load_config, parse_config
from delivery.signing import SECRET_RULE

from .test_config import BASE, document, problems, write

#: Base64 that spells SECRET, so a message quoting any part of a secret is caught.
NEW = "whsec_SECRETnewSECRETnewSECRETnewSECRETnew"  # 36 characters of base64: 27 bytes
OLD = "whsec_SECREToldSECREToldSECREToldxxxxx"  # 32 characters: 24 bytes
EXPIRES = "2026-12-08T12:00:00Z"


def test_the_test_secrets_are_valid() -> None:
    assert len(base64.b64decode(NEW.removeprefix("whsec_"), validate=True)) == 27
    assert len(base64.b64decode(OLD.removeprefix("whsec_"), validate=True)) == 24


def test_a_signed_destination_loads_with_its_secrets_held_as_secrets() -> None:
    config = parse_config(document(destination0={"signing_secret": NEW}))
    hook, batch = config.destinations
    assert hook.signing_secret == Secret(NEW)
    assert (hook.previous_signing_secret, hook.previous_signing_secret_expires_at) == (None, None)
    assert (batch.signing_secret, batch.previous_signing_secret) == (None, None)


def test_a_rotation_from_a_file_takes_a_toml_date_time_with_offset(tmp_path: Path) -> None:
    text = BASE.replace(
        'headers = { Authorization = "Bearer xyz" }',
        f'signing_secret = "{NEW}"\n'
        f'previous_signing_secret = "{OLD}"\n'
        "previous_signing_secret_expires_at = 2026-12-08T14:00:00+02:00\n",
    )
    hook = load_config(write(tmp_path, text)).destinations[0]
    assert hook.signing_secret == Secret(NEW)
    assert hook.previous_signing_secret == Secret(OLD)
    assert hook.previous_signing_secret_expires_at == dt.datetime(2026, 12, 8, 12, tzinfo=dt.UTC)
    assert hook.previous_signing_secret_expires_at.tzinfo is dt.UTC


def test_the_expiry_may_be_an_rfc_3339_string() -> None:
    rotation = {"signing_secret": NEW, "previous_signing_secret": OLD}
    hook = parse_config(
        document(destination0={**rotation, "previous_signing_secret_expires_at": EXPIRES})
    ).destinations[0]
    assert hook.previous_signing_secret_expires_at == dt.datetime(2026, 12, 8, 12, tzinfo=dt.UTC)


def test_the_secrets_never_show_in_repr_or_str() -> None:
    rotation = {"signing_secret": NEW, "previous_signing_secret": OLD}
    config = parse_config(document(destination0={**rotation, "previous_signing_secret_expires_at": EXPIRES}))
    for shown in (repr(config), str(config), repr(config.destinations[0])):
        assert "SECRET" not in shown
    assert "signing_secret=Secret('**********')" in repr(config.destinations[0])


WHERE = "destinations[0]"
ROTATION = {"signing_secret": NEW, "previous_signing_secret": OLD}
CASES: list[tuple[str, dict[str, Any], str | tuple[str, ...]]] = [
    (
        "no prefix",
        {"signing_secret": NEW.removeprefix("whsec_")},
        f"{WHERE}.signing_secret: does not start with 'whsec_'; {SECRET_RULE}",
    ),
    (
        "not base64",
        {"signing_secret": NEW.replace("new", "n-w")},
        f"{WHERE}.signing_secret: the part after 'whsec_' is not valid base64; {SECRET_RULE}",
    ),
    (
        "padding missing",
        {"signing_secret": "whsec_SECRETxxSECRETxxSECRETxxSECRETxx"[:-1]},
        f"{WHERE}.signing_secret: the part after 'whsec_' is not valid base64; {SECRET_RULE}",
    ),
    (
        "too short",
        {"signing_secret": "whsec_SECRETxxSECRETxxSECRETxx"},  # 24 characters: 18 bytes
        f"{WHERE}.signing_secret: holds a key of 18 bytes; {SECRET_RULE}",
    ),
    (
        "too long",
        {"signing_secret": "whsec_" + "SECRET" * 15 + "xxxxxx"},  # 96 characters of base64
        f"{WHERE}.signing_secret: holds a key of 72 bytes; {SECRET_RULE}",
    ),
    ("empty", {"signing_secret": ""}, f"{WHERE}.signing_secret: must not be empty"),
    ("not a string", {"signing_secret": 42}, f"{WHERE}.signing_secret: must be a string, got an integer"),
    (
        "previous malformed",
        {**ROTATION, "previous_signing_secret": "SECRET", "previous_signing_secret_expires_at": EXPIRES},
        f"{WHERE}.previous_signing_secret: does not start with 'whsec_'; {SECRET_RULE}",
    ),
    (
        "previous without the new",
        {"previous_signing_secret": OLD, "previous_signing_secret_expires_at": EXPIRES},
        (
            f"{WHERE}.previous_signing_secret: needs signing_secret, "
            "the secret that replaces the previous one",
            f"{WHERE}.previous_signing_secret_expires_at: needs signing_secret, "
            "the secret that replaces the previous one",
        ),
    ),
    (
        "previous same as the new",
        {**ROTATION, "previous_signing_secret": NEW, "previous_signing_secret_expires_at": EXPIRES},
        f"{WHERE}.previous_signing_secret: is the same secret as signing_secret; a rotation needs a new one",
    ),
    (
        "previous the same key in other base64",  # the last character's unused bits differ
        {
            **ROTATION,
            "signing_secret": "whsec_SECRETxxSECRETxxSECRETxxSECRETxxAA==",
            "previous_signing_secret": "whsec_SECRETxxSECRETxxSECRETxxSECRETxxAB==",
            "previous_signing_secret_expires_at": EXPIRES,
        },
        f"{WHERE}.previous_signing_secret: is the same secret as signing_secret; a rotation needs a new one",
    ),
    (
        "previous without expiry",
        ROTATION,
        f"{WHERE}.previous_signing_secret_expires_at: required with previous_signing_secret: "
        "when the previous secret stops signing (such as 2026-12-08T12:00:00Z)",
    ),
    (
        "expiry without previous",
        {"signing_secret": NEW, "previous_signing_secret_expires_at": EXPIRES},
        f"{WHERE}.previous_signing_secret_expires_at: only with previous_signing_secret, whose end it sets",
    ),
    (
        "expiry without offset",
        {**ROTATION, "previous_signing_secret_expires_at": dt.datetime(2026, 12, 8, 12)},
        f"{WHERE}.previous_signing_secret_expires_at: must carry its UTC offset "
        "(such as 2026-12-08T12:00:00Z), got a local date-time",
    ),
    (
        "expiry string without offset",
        {**ROTATION, "previous_signing_secret_expires_at": "2026-12-08T12:00:00"},
        f"{WHERE}.previous_signing_secret_expires_at: must carry its UTC offset "
        "(such as 2026-12-08T12:00:00Z), got a local date-time",
    ),
    (
        "expiry a date",
        {**ROTATION, "previous_signing_secret_expires_at": dt.date(2026, 12, 8)},
        f"{WHERE}.previous_signing_secret_expires_at: must be a date-time with its UTC offset "
        "(such as 2026-12-08T12:00:00Z), got a date/time",
    ),
    (
        "expiry not a time",
        {**ROTATION, "previous_signing_secret_expires_at": "next tuesday"},
        f"{WHERE}.previous_signing_secret_expires_at: must be an RFC 3339 date-time "
        "(such as 2026-12-08T12:00:00Z), got 'next tuesday'",
    ),
    (
        "a signature header configured",
        {"signing_secret": NEW, "headers": {"Webhook-Signature": "v1,x"}},
        f"{WHERE}.headers.Webhook-Signature: set from signing_secret on each request; remove it from headers",
    ),
]


@pytest.mark.parametrize(
    ("changes", "problem"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_each_bad_secret_is_a_problem_naming_its_key_and_never_the_secret(
    changes: dict[str, Any], problem: str | tuple[str, ...]
) -> None:
    found = problems(document(destination0=changes))
    assert found == (problem if isinstance(problem, tuple) else (problem,))
    assert "SECRET" not in "\n".join(found)


def test_a_secret_too_long_is_refused_at_65_bytes_and_not_at_64() -> None:
    def secret(size: int) -> str:
        return "whsec_" + base64.b64encode(secrets.token_bytes(size)).decode()

    assert parse_config(document(destination0={"signing_secret": secret(64)}))
    assert problems(document(destination0={"signing_secret": secret(65)})) == (
        f"{WHERE}.signing_secret: holds a key of 65 bytes; {SECRET_RULE}",
    )


def test_an_integration_that_checks_its_credential_takes_no_signing_secret() -> None:
    crm = {"integration": "crm-records", "credential": "tok", "headers": None, "signing_secret": NEW}
    assert problems(document(destination0=crm)) == (
        f"{WHERE}.signing_secret: integration 'crm-records' takes no signed requests (it checks its "
        "credential); integrations that do: 'webhook'",
    )


def test_a_bad_secret_stops_load_config_with_the_key_named(tmp_path: Path) -> None:
    text = BASE.replace('headers = { Authorization = "Bearer xyz" }', 'signing_secret = "whsec_SECRET"')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert str(caught.value).startswith(f"{tmp_path / 'deliverydash.toml'}: {WHERE}.signing_secret: ")
    assert "SECRET" not in str(caught.value)


def test_the_example_files_webhook_is_signed() -> None:
    example = load_config(Path(__file__).resolve().parents[3] / "deliverydash.example.toml")
    hook = example.destination("acme-hook")
    assert hook is not None and hook.signing_secret is not None
    assert hook.previous_signing_secret is None
