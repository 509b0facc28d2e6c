"""Redaction of response bodies shown to partners: their words stay, customers' data goes."""

from __future__ import annotations

import pytest

from app.redact import body


@pytest.mark.parametrize(
    ("raw", "redacted"),
    [
        (
            '{"error":"Event name \'Order Done!\' must match ^[a-zA-Z]+$"}',
            '{"error":"Event name \'…\' must match ^[a-zA-Z]+$"}',
        ),
        ('{"user":"ann@example.com","id":12345,"name":"bob"}', '{"user":"<email>","id":<n>,"name":"…"}'),
        ('{"message": "token abcdef1234567890abcd expired"}', '{"message": "token <id> expired"}'),
        ("user 0b6a2f40-9f1c-4c4e-9d7e-3f2b1a0c9d8e not found", "user <id> not found"),
        (
            '{"errors":[{"field":"properties.price","value":"12.5 USD"}]}',
            '{"errors":[{"field":"…","value":"<n> USD"}]}',
        ),
        ("Service Unavailable", "Service Unavailable"),
        ('{"message": "value `42` is not allowed"}', '{"message": "value \'…\' is not allowed"}'),
        ("", ""),
    ],
)
def test_redaction(raw: str, redacted: str) -> None:
    assert body(raw) == redacted


def test_nothing_stays_nothing() -> None:
    assert body(None) is None


def test_keys_are_kept_even_when_values_are_keys_lookalikes() -> None:
    # A value followed by a colon elsewhere must not shift the scan onto the wrong quotes.
    assert body('{"a":"b","c":"d: e"}') == '{"a":"…","c":"d: e"}'
