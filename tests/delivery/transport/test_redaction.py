"""`redact` by example, and the secrets of a destination."""

from __future__ import annotations

import pytest

from delivery.transport.redaction import REDACTED, keep, redact, secrets_of

REDACTIONS = [
    ("configured value", "you sent s3cretvalue!", ["s3cretvalue"], f"you sent {REDACTED}!"),
    ("longest secret first", "abcdef and abcd", ["abcd", "abcdef"], f"{REDACTED} and {REDACTED}"),
    ("short values are not secrets", "value 1 of 12", ["1"], "value 1 of 12"),
    ("bearer token", "Authorization: Bearer abc123DEF456", [], f"Authorization: Bearer {REDACTED}"),
    ("long lower-case token", "Bearer abcdefghijklmnopqrstu", [], f"Bearer {REDACTED}"),
    ("basic credentials", "Authorization: Basic dXNlcjpwYXNz", [], f"Authorization: Basic {REDACTED}"),
    ("words after Basic stay", "Basic authentication failed", [], "Basic authentication failed"),
    ("stripe-like key", "key sk_live_51Habc123 is revoked", [], f"key {REDACTED} is revoked"),
    ("test key", "pk_test_abcdEFGH1234", [], REDACTED),
    ("github token", "ghp_" + "a1" * 18, [], REDACTED),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl", [], REDACTED),
    ("query parameter", "GET /x?api_key=abc123&page=2", [], f"GET /x?api_key={REDACTED}&page=2"),
    ("json value", '{"api_key": "k 1 2", "n": 3}', [], f'{{"api_key": "{REDACTED}", "n": 3}}'),
    ("json escaped quote", '{"password": "a\\"b c"}', [], f'{{"password": "{REDACTED}"}}'),
    (
        "json authorization",
        '{"authorization": "Bearer abc123DEF456"}',
        [],
        f'{{"authorization": "Bearer {REDACTED}"}}',
    ),
    ("header line", "X-Api-Key: abc123", [], f"X-Api-Key: {REDACTED}"),
    ("access_token", "access_token=ya29.a0Af", [], f"access_token={REDACTED}"),
    ("url password", "https://user:hunter2@example.com/x", [], f"https://user:{REDACTED}@example.com/x"),
    ("no false positives", "tokens=5 max_tokens=7 secretary", [], "tokens=5 max_tokens=7 secretary"),
    ("plain text", "Internal Server Error", [], "Internal Server Error"),
]


@pytest.mark.parametrize(
    ("text", "secrets", "expected"), [row[1:] for row in REDACTIONS], ids=[row[0] for row in REDACTIONS]
)
def test_redact(text: str, secrets: list[str], expected: str) -> None:
    assert redact(text, secrets) == expected


def test_secrets_of_a_destination() -> None:
    headers = {"Authorization": "Bearer s3cret", "X-Tenant": "acme-co", "Content-Type": "application/json"}
    secrets = secrets_of(headers, "https://user:pa55word@hooks.example.com/x")
    assert secrets == ["Bearer s3cret", "s3cret", "acme-co", "pa55word"]


def test_a_signed_requests_id_and_timestamp_are_not_secrets_but_its_signature_is() -> None:
    headers = {
        "webhook-id": "01JEV7Q8Z4K0M6N2P4R6S8T0VW",
        "webhook-timestamp": "1790000000",
        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    }
    assert secrets_of(headers) == ["v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="]
    answer = (
        "duplicate 01JEV7Q8Z4K0M6N2P4R6S8T0VW at 1790000000: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
    )
    assert (
        redact(answer, secrets_of(headers))
        == "duplicate 01JEV7Q8Z4K0M6N2P4R6S8T0VW at 1790000000: [REDACTED]"
    )


def test_keep_redacts_before_it_cuts_on_a_character_boundary() -> None:
    assert keep("ab s3cretvalue", ["s3cretvalue"], 6) == "ab [RE"
    assert keep("aé", [], 2) == "a"  # "é" is two bytes: cut whole, never in half
