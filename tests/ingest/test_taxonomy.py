"""The taxonomy tree of `ingest.taxonomy`, leaf by leaf and boundary by boundary."""

from __future__ import annotations

import dataclasses

import pytest

from ingest.taxonomy import (
    FINAL_OUTCOMES,
    TRANSPORT_CODES,
    Classification,
    ErrorClass,
    Outcome,
    classify_status,
    classify_transport,
)

NONE, AUTH, VALIDATION, CLIENT = "none", "auth", "validation", "client"
RATE_LIMIT, SERVER, TIMEOUT, NETWORK = "rate_limit", "server", "timeout", "network"
TLS, NONSTANDARD, REDIRECT, PRECHECK = "tls", "nonstandard", "redirect", "precheck"

#: (status, error_class, retryable), written from the module docstring's tree.
STATUS_TABLE = [
    (200, NONE, False),
    (204, NONE, False),
    (299, NONE, False),
    (1, NONSTANDARD, False),
    (42, NONSTANDARD, False),
    (99, NONSTANDARD, False),
    (101, NONSTANDARD, False),
    (199, NONSTANDARD, False),
    (300, REDIRECT, False),
    (301, REDIRECT, False),
    (302, REDIRECT, False),
    (307, REDIRECT, False),
    (399, REDIRECT, False),
    (400, VALIDATION, False),
    (401, AUTH, False),
    (402, CLIENT, False),
    (403, AUTH, False),
    (404, CLIENT, False),
    (405, CLIENT, False),
    (408, TIMEOUT, True),
    (410, CLIENT, False),
    (413, CLIENT, False),
    (418, NONSTANDARD, False),
    (422, VALIDATION, False),
    (429, RATE_LIMIT, True),
    (499, CLIENT, False),
    (500, SERVER, True),
    (501, SERVER, False),
    (502, SERVER, True),
    (503, SERVER, True),
    (504, SERVER, True),
    (505, SERVER, False),
    (506, SERVER, True),
    (599, SERVER, True),
    (600, NONSTANDARD, False),
    (999, NONSTANDARD, False),
]

#: Every transport code and its verdict, written from the docstring's tree.
TRANSPORT_TABLE = {
    "ETIMEDOUT": (TIMEOUT, True),
    "ESOCKETTIMEDOUT": (TIMEOUT, True),
    "ECONNECTTIMEOUT": (TIMEOUT, True),
    "ENOTFOUND": (NETWORK, True),
    "EAI_AGAIN": (NETWORK, True),
    "ECONNREFUSED": (NETWORK, True),
    "ECONNRESET": (NETWORK, True),
    "ECONNABORTED": (NETWORK, True),
    "EHOSTUNREACH": (NETWORK, True),
    "ENETUNREACH": (NETWORK, True),
    "EPIPE": (NETWORK, True),
    "ESERVERDISCONNECT": (NETWORK, True),
    "EBADRESPONSE": (NONSTANDARD, False),
    "private_target": (PRECHECK, False),
    "EUNCLASSIFIED": (NETWORK, True),
    "CERT_HAS_EXPIRED": (TLS, False),
    "CERT_NOT_YET_VALID": (TLS, False),
    "DEPTH_ZERO_SELF_SIGNED_CERT": (TLS, False),
    "SELF_SIGNED_CERT_IN_CHAIN": (TLS, False),
    "UNABLE_TO_GET_ISSUER_CERT_LOCALLY": (TLS, False),
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE": (TLS, False),
    "ERR_TLS_CERT_ALTNAME_INVALID": (TLS, False),
    "EPROTO": (TLS, False),
}


@pytest.mark.parametrize(
    ("status", "error_class", "retryable"), STATUS_TABLE, ids=[str(row[0]) for row in STATUS_TABLE]
)
def test_classify_status(status: int, error_class: str, retryable: bool) -> None:
    verdict = classify_status(status)
    assert verdict == Classification(ErrorClass(error_class), str(status), retryable)
    assert verdict.error_class == error_class  # StrEnum compares equal to its literal value
    assert verdict.error_code == str(status)
    assert verdict.retryable is retryable


def test_status_table_reaches_every_response_leaf() -> None:
    response_leaves = {NONE, REDIRECT, AUTH, VALIDATION, TIMEOUT, RATE_LIMIT, NONSTANDARD, CLIENT, SERVER}
    assert {row[1] for row in STATUS_TABLE} == response_leaves


@pytest.mark.parametrize("code", sorted(TRANSPORT_TABLE))
def test_classify_transport(code: str) -> None:
    error_class, retryable = TRANSPORT_TABLE[code]
    assert classify_transport(code) == Classification(ErrorClass(error_class), code, retryable)


def test_transport_table_is_the_modules() -> None:
    # A new transport code must be added to this test's table with its verdict.
    assert set(TRANSPORT_CODES) == set(TRANSPORT_TABLE)


@pytest.mark.parametrize("code", ["EWHATEVER", "econnreset", "", "500"])
def test_classify_transport_rejects_unknown_code_by_name(code: str) -> None:
    with pytest.raises(ValueError, match=f"unknown transport error code '{code}'"):
        classify_transport(code)


def test_error_class_values_are_the_contracts() -> None:
    assert [c.value for c in ErrorClass] == [
        "none",
        "auth",
        "validation",
        "client",
        "rate_limit",
        "server",
        "timeout",
        "network",
        "tls",
        "nonstandard",
        "redirect",
        "precheck",
        "disabled",
    ]
    assert all(c.value == c.name.lower() for c in ErrorClass)


def test_outcome_values_are_the_contracts() -> None:
    assert [o.value for o in Outcome] == ["delivered", "retry", "failed", "dropped", "skipped"]
    assert all(o.value == o.name.lower() for o in Outcome)


def test_final_outcomes_are_all_but_retry() -> None:
    assert frozenset({"delivered", "failed", "dropped", "skipped"}) == FINAL_OUTCOMES


def test_enum_members_format_as_their_values() -> None:
    assert f"{ErrorClass.RATE_LIMIT}" == "rate_limit"
    assert str(Outcome.DROPPED) == "dropped"
    assert ErrorClass("tls") is ErrorClass.TLS


def test_classification_is_frozen() -> None:
    verdict = classify_status(200)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.retryable = True  # type: ignore[misc]
