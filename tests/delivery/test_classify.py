"""`delivery.classify.classify`: a `SendResult` judged by the taxonomy, by table."""

from __future__ import annotations

import pytest

from delivery.classify import classify
from delivery.sender import SendResult
from ingest.taxonomy import TRANSPORT_CODES, Classification, ErrorClass

STATUSES = [
    (200, ErrorClass.NONE, False),
    (204, ErrorClass.NONE, False),
    (1, ErrorClass.NONSTANDARD, False),
    (42, ErrorClass.NONSTANDARD, False),
    (100, ErrorClass.NONSTANDARD, False),
    (101, ErrorClass.NONSTANDARD, False),
    (301, ErrorClass.REDIRECT, False),
    (400, ErrorClass.VALIDATION, False),
    (401, ErrorClass.AUTH, False),
    (404, ErrorClass.CLIENT, False),
    (408, ErrorClass.TIMEOUT, True),
    (418, ErrorClass.NONSTANDARD, False),
    (429, ErrorClass.RATE_LIMIT, True),
    (500, ErrorClass.SERVER, True),
    (501, ErrorClass.SERVER, False),
    (503, ErrorClass.SERVER, True),
    (505, ErrorClass.SERVER, False),
    (600, ErrorClass.NONSTANDARD, False),
    (1000, ErrorClass.NONSTANDARD, False),
]


@pytest.mark.parametrize(("status", "error_class", "retryable"), STATUSES)
def test_status(status: int, error_class: ErrorClass, retryable: bool) -> None:
    result = SendResult(3.0, status=status, body="", retry_after=None)
    assert classify(result) == Classification(error_class, str(status), retryable)


@pytest.mark.parametrize("code", sorted(TRANSPORT_CODES))
def test_transport_code(code: str) -> None:
    error_class, retryable = TRANSPORT_CODES[code]
    result = SendResult(12.5, error_code=code, error_message="ConnectionRefusedError: refused")
    assert classify(result) == Classification(error_class, code, retryable)


def test_an_unknown_transport_code_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="unknown transport error code 'ENOPE'"):
        classify(SendResult(1.0, error_code="ENOPE"))
