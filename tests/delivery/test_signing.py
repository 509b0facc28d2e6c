"""Standard Webhooks signatures, checked against the `standardwebhooks` package a receiver uses.

The signer (`delivery.signing`) and the per-request headers (`delivery.payload`)
are pure: these tests give them fixed times and keys. The engine's deliveries
are verified end to end in `test_signed_webhooks.py`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import textwrap
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from delivery.config import ConfigError, Destination, Secret, parse_config
from delivery.payload import signed, signer
from delivery.signing import HEADERS, SECRET_RULE, Signer, secret_key

BODY = json.dumps({"type": "track", "event": "Order Completed", "messageId": "m-1"}).encode()
JOB_ID = "01JEV7Q8Z4K0M6N2P4R6S8T0VW"


Tamper = Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]


def whsec(size: int = 32) -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(size)).decode()


def now() -> int:
    """The present second: the receiver's library refuses timestamps five minutes away from it."""
    return int(time.time())


def test_a_signature_is_the_one_the_receivers_library_computes() -> None:
    secret = whsec()
    timestamp = now()
    signature = Signer.from_secrets(secret).signature(JOB_ID, timestamp, BODY)
    expected = Webhook(secret).sign(JOB_ID, dt.datetime.fromtimestamp(timestamp, dt.UTC), BODY)
    assert signature == expected


@pytest.mark.parametrize("size", [24, 32, 64])
def test_the_receiver_verifies_keys_of_every_allowed_size(size: int) -> None:
    secret = whsec(size)
    headers = Signer.from_secrets(secret).headers(JOB_ID, now(), BODY)
    assert set(headers) == set(HEADERS)
    assert headers["webhook-id"] == JOB_ID
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body, headers: (body.replace(b"Completed", b"Cancelled"), headers), id="body"),
        pytest.param(lambda body, headers: (body + b" ", headers), id="body-trailing-space"),
        pytest.param(
            lambda body, headers: (body, {**headers, "webhook-id": "01JEV7Q8Z4K0M6N2P4R6S8T0VX"}), id="id"
        ),
        pytest.param(
            lambda body, headers: (
                body,
                {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1)},
            ),
            id="timestamp",
        ),
    ],
)
def test_a_tampered_request_fails_verification(tamper: Tamper) -> None:
    secret = whsec()
    headers = Signer.from_secrets(secret).headers(JOB_ID, now(), BODY)
    Webhook(secret).verify(BODY, headers)
    body, changed = tamper(BODY, headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(body, changed)


def test_another_secret_fails_verification() -> None:
    headers = Signer.from_secrets(whsec()).headers(JOB_ID, now(), BODY)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(whsec()).verify(BODY, headers)


def test_during_a_rotation_both_secrets_sign_until_the_previous_one_expires() -> None:
    new, old = whsec(), whsec(48)
    expires = now() + 60
    rotating = Signer.from_secrets(new, old, float(expires))

    overlap = rotating.headers(JOB_ID, expires - 1, BODY)
    assert len(overlap["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        Webhook(secret).verify(BODY, overlap)

    after = rotating.headers(JOB_ID, expires, BODY)
    assert len(after["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(BODY, after)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(old).verify(BODY, after)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "does not start with 'whsec_'"),
        ("WHSEC_" + base64.b64encode(b"k" * 32).decode(), "does not start with 'whsec_'"),
        ("whsec_", "holds a key of 0 bytes"),
        ("whsec_" + base64.b64encode(b"k" * 23).decode(), "holds a key of 23 bytes"),
        ("whsec_" + base64.b64encode(b"k" * 65).decode(), "holds a key of 65 bytes"),
        ("whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("="), "is not valid base64"),
        ("whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(), "is not valid base64"),
        ("whsec_ " + base64.b64encode(b"k" * 32).decode(), "is not valid base64"),
        ("whsec_" + base64.b64encode(b"k" * 32).decode() + "\n", "is not valid base64"),
        ("whsec_" + "é" * 44, "is not valid base64"),
    ],
)
def test_a_secret_must_be_whsec_and_the_strict_base64_of_24_to_64_bytes(secret: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        secret_key(secret)
    message = str(caught.value)
    assert problem in message and message.endswith(SECRET_RULE)
    encoded = secret.removeprefix("whsec_").strip()
    assert not encoded or encoded not in message


def test_secret_key_decodes_the_base64() -> None:
    key = secrets.token_bytes(40)
    assert secret_key("whsec_" + base64.b64encode(key).decode()) == key


def test_a_signer_never_shows_its_keys() -> None:
    key = b"k" * 32
    shown = repr(Signer(key, b"p" * 32, 1_800_000_000.0))
    assert shown == "Signer(key=**********, previous until 1.8e+09)"
    assert "k" * 8 not in shown and base64.b64encode(key).decode() not in shown


def test_a_previous_key_needs_its_expiry() -> None:
    with pytest.raises(ValueError, match="needs the time it stops signing"):
        Signer(b"k" * 32, b"p" * 32)
    with pytest.raises(ValueError, match="needs the time it stops signing"):
        Signer(b"k" * 32, previous_until=1.0)


# -- the headers of a request (delivery.payload) ---------------------------------------------------


def hook(**signing: object) -> Destination:
    return Destination(
        id="hook",
        source="web",
        integration="webhook",
        url="https://hooks.example.com/in",
        headers={"Content-Type": Secret("application/json")},
        **signing,  # type: ignore[arg-type]
    )


def test_an_unsigned_destination_gets_its_headers_unchanged() -> None:
    static = {"Content-Type": "application/json"}
    assert signer(hook()) is None
    assert signed(static, None, JOB_ID, time.time(), BODY) is static


def test_a_signed_destination_adds_the_three_headers_at_the_attempts_second() -> None:
    secret = whsec()
    destination = hook(signing_secret=Secret(secret))
    static = {"Content-Type": "application/json"}
    sent_at = now() + 0.9
    headers = signed(static, signer(destination), JOB_ID, sent_at, BODY)
    assert static == {"Content-Type": "application/json"}  # the destination's own headers are shared
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == JOB_ID
    assert headers["webhook-timestamp"] == str(int(sent_at))
    Webhook(secret).verify(BODY, dict(headers))


def test_a_rotating_destination_signs_with_both_secrets_until_the_expiry() -> None:
    new, old = whsec(), whsec()
    expires_at = dt.datetime.fromtimestamp(now() + 30, dt.UTC)
    destination = hook(
        signing_secret=Secret(new),
        previous_signing_secret=Secret(old),
        previous_signing_secret_expires_at=expires_at,
    )
    before = signed({}, signer(destination), JOB_ID, expires_at.timestamp() - 0.5, BODY)
    after = signed({}, signer(destination), JOB_ID, expires_at.timestamp(), BODY)
    for secret in (new, old):
        Webhook(secret).verify(BODY, dict(before))
    Webhook(new).verify(BODY, dict(after))
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(BODY, dict(after))


# -- docs/webhooks.md ----------------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def doc_code(marker: str) -> dict[str, Any]:
    """The namespace of the Python block after `<!-- test: marker -->` in docs/webhooks.md, run."""
    match = re.search(
        rf"<!-- test: {marker} -->\n```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL
    )
    assert match, f"docs/webhooks.md lost its {marker} example"
    namespace: dict[str, Any] = {}
    exec(compile(match[1], f"docs/webhooks.md ({marker})", "exec"), namespace)
    return namespace


def doc_secrets() -> list[str]:
    return re.findall(r"whsec_[A-Za-z0-9+/=]+", DOC.read_text(encoding="utf-8"))


def test_the_docs_secrets_are_valid() -> None:
    found = doc_secrets()
    assert len(set(found)) == 2
    for secret in found:
        secret_key(secret)


@pytest.mark.parametrize("marker", ["receiver", "raw"])
def test_the_docs_receivers_accept_deliveries_and_refuse_the_others(marker: str) -> None:
    namespace = doc_code(marker)
    verify = namespace["receive"] if marker == "receiver" else namespace["verified"]
    documented, other = doc_secrets()[0], whsec()
    signed_now = Signer.from_secrets(documented).headers(JOB_ID, now(), BODY)
    rotating = Signer.from_secrets(other, documented, now() + 60.0).headers(JOB_ID, now(), BODY)
    for headers in (signed_now, rotating, {name.upper(): value for name, value in signed_now.items()}):
        assert verify(BODY, headers)
    refused = [
        (BODY + b" ", signed_now),
        (BODY, {**signed_now, "webhook-id": "other"}),
        (BODY, Signer.from_secrets(other).headers(JOB_ID, now(), BODY)),
        (BODY, Signer.from_secrets(documented).headers(JOB_ID, now() - 301, BODY)),
        (BODY, {name: value for name, value in signed_now.items() if name != "webhook-timestamp"}),
        (BODY, {**signed_now, "webhook-timestamp": "soon"}),
    ]
    for body, headers in refused:
        assert not verify(body, headers)


def test_the_docs_configuration_and_error_are_the_engines() -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, re.DOTALL)
    destination = tomllib.loads(blocks[0])["destinations"][0]
    rotation = tomllib.loads(textwrap.dedent(blocks[1]))
    document = {
        "sources": [{"id": "web", "workspace": "acme", "write_key": "wk_web"}],
        "destinations": [{**destination, **rotation}],
    }
    hook = parse_config(document).destinations[0]
    assert hook.previous_signing_secret == Secret(destination["signing_secret"])
    error = "deliverydash.toml: destinations[0].signing_secret: holds a key of 16 bytes; " + SECRET_RULE
    assert error in text
    short = {**destination, "signing_secret": "whsec_" + base64.b64encode(b"k" * 16).decode()}
    with pytest.raises(ConfigError) as caught:
        parse_config({**document, "destinations": [short]}, "deliverydash.toml")
    assert str(caught.value) == error
