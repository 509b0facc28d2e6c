"""The integration catalog: the packaged entries load, the loader refuses broken ones, the docs agree."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from delivery.catalog import (
    CATALOG_FILE,
    Auth,
    AuthScheme,
    CatalogError,
    RequestShape,
    Signing,
    catalog,
    load_catalog,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "catalog.md"
PACKAGED = (ROOT / "delivery" / CATALOG_FILE).read_text(encoding="utf-8")


def test_every_packaged_entry_loads() -> None:
    entries = catalog()
    assert "webhook" in entries
    assert len(entries) >= 6
    for name, entry in entries.items():
        assert entry.name == name
        assert entry.title and entry.description
        assert (entry.batching is None) == (entry.request is RequestShape.EVENT), name
        if entry.batching is not None:
            assert 1 <= entry.batching.default_events <= entry.batching.max_events
        if entry.auth.scheme is AuthScheme.API_KEY:
            assert entry.auth.header.lower() != "authorization"
        assert len(set(entry.rules.codes)) == len(entry.rules.codes)


def test_the_webhook_is_segments_format_without_rules() -> None:
    webhook = catalog()["webhook"]
    assert webhook.request is RequestShape.EVENT_OR_BATCH
    assert webhook.auth.scheme is AuthScheme.NONE
    assert webhook.batching is not None and webhook.batching.default_events == 1
    assert webhook.rate_limit is None
    assert webhook.rules.empty
    assert webhook.signing is Signing.STANDARD_WEBHOOKS


def test_only_the_webhook_signs_and_an_entry_without_the_key_does_not() -> None:
    assert [name for name, entry in catalog().items() if entry.signing is not Signing.NONE] == ["webhook"]
    assert load_catalog(WEBHOOK)["webhook"].signing is Signing.NONE


def test_the_partner_entries_exercise_every_behaviour() -> None:
    entries = [entry for name, entry in catalog().items() if name != "webhook"]
    assert len(entries) >= 5
    assert {entry.auth.scheme for entry in entries} >= {
        AuthScheme.BEARER,
        AuthScheme.BASIC,
        AuthScheme.API_KEY,
    }
    assert {entry.request for entry in entries} >= {RequestShape.EVENT, RequestShape.BATCH}
    assert all(entry.rate_limit is not None for entry in entries)
    rules = [entry.rules for entry in entries]
    assert any(r.event_name and r.event_name.fix for r in rules)
    assert any(r.string_max_length and r.string_max_length.fix for r in rules)
    assert any(r.string_max_length and not r.string_max_length.fix for r in rules)
    assert {"missing_user_id", "missing_email"} <= {code for r in rules for code in r.codes}


def test_the_strict_crm_entry() -> None:
    crm = catalog()["crm-records"]
    assert crm.batching is not None and crm.batching.max_events == 100
    assert crm.rate_limit is not None and crm.rate_limit.per_s == 10
    assert crm.rules.event_name is not None and crm.rules.event_name.pattern == "^[A-Za-z0-9_]{1,40}$"


@pytest.mark.parametrize(
    ("auth", "credential", "header", "value"),
    [
        (Auth(AuthScheme.BEARER), "tok-123", "Authorization", "Bearer tok-123"),
        (
            Auth(AuthScheme.BASIC),
            "user:pw",
            "Authorization",
            "Basic " + base64.b64encode(b"user:pw").decode(),
        ),
        (Auth(AuthScheme.BASIC), "key-1", "Authorization", "Basic " + base64.b64encode(b"key-1:").decode()),
        (Auth(AuthScheme.API_KEY, "X-Api-Key"), "k", "X-Api-Key", "k"),
    ],
)
def test_auth_header_values(auth: Auth, credential: str, header: str, value: str) -> None:
    assert auth.header == header
    assert auth.header_value(credential) == value


def test_no_auth_takes_no_credential() -> None:
    with pytest.raises(ValueError, match="no credential"):
        Auth(AuthScheme.NONE).header_value("x")


def test_unknown_names_suggest_the_nearest() -> None:
    assert catalog().unknown("crm-record") == "unknown integration 'crm-record' (did you mean 'crm-records'?)"
    assert "known: 'webhook'" in catalog().unknown("zzz")


WEBHOOK = """
[integrations.webhook]
title = "W"
description = "w"
request = "event_or_batch"
auth = { scheme = "none" }
batching = { max_events = 10, max_bytes = 100000 }
"""

#: An entry `x` taking one event per request, without auth, to which each case adds its flaw.
X_EVENT = '[integrations.x]\ntitle = "X"\ndescription = "x"\nrequest = "event"\nauth = { scheme = "none" }\n'


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            '[integrations.x]\ntitle = "X"\ndescription = "x"\nrequest = "event"',
            "integrations.x.auth: required",
        ),
        (
            '[integrations.x]\ntitle = "X"\ndescription = "x"\nrequest = "evnt"\nauth = { scheme = "none" }',
            "integrations.x.request: must be one of 'event', 'batch', 'event_or_batch', got 'evnt'",
        ),
        (
            '[integrations.x]\ntitle = "X"\ndescription = "x"\nrequest = "batch"\nauth = { scheme = "none" }',
            "integrations.x.batching: required with request = 'batch'",
        ),
        (
            X_EVENT + "batching = { max_events = 5, max_bytes = 100000 }",
            "takes no batches",
        ),
        (
            X_EVENT.replace('"none"', '"api_key"'),
            "integrations.x.auth.header: required key is missing",
        ),
        (
            X_EVENT + "rate_limit = { per_s = 0, burst = 1 }",
            "integrations.x.rate_limit.per_s: must be a number above 0",
        ),
        (
            X_EVENT + '[integrations.x.rules]\nevent_name = { allowed = "a-z", max_length = 5, fix = true }',
            "must allow '_'",
        ),
        (
            X_EVENT + '[integrations.x.rules]\ntypes = ["track", "purchase"]',
            "integrations.x.rules.types: must be a non-empty array of call types",
        ),
        (
            X_EVENT + '[[integrations.x.rules.required]]\ncode = "Missing"\npaths = ["userId"]\nwhat = "w"',
            "integrations.x.rules.required[0].code: 'Missing' does not match",
        ),
        (
            X_EVENT + "rate_limt = { per_s = 1, burst = 1 }",
            "integrations.x.rate_limt: unknown key (did you mean 'rate_limit'?)",
        ),
        (
            X_EVENT.replace("integrations.x", "integrations.X_Y"),
            "X_Y",
        ),
        (
            X_EVENT + 'signing = "hmac"',
            "integrations.x.signing: must be one of 'none', 'standard-webhooks', got 'hmac'",
        ),
    ],
)
def test_the_loader_refuses_broken_entries(extra: str, problem: str) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(WEBHOOK + extra)
    assert any(problem in line for line in caught.value.problems), caught.value.problems


def test_the_webhook_must_be_in_the_catalog() -> None:
    with pytest.raises(CatalogError, match="generic webhook"):
        load_catalog(WEBHOOK.replace("webhook", "hook"))


def test_a_minimal_catalog_loads() -> None:
    assert list(load_catalog(WEBHOOK)) == ["webhook"]


def test_the_packaged_file_is_the_one_loaded() -> None:
    assert list(load_catalog(PACKAGED)) == list(catalog())


def test_the_docs_table_matches_the_catalog() -> None:
    """docs/catalog.md's summary table: one row per entry, with its shape, auth, batching and rate limit."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("<!-- test: catalog-table -->\n", 1)[1].split("\n\n", 1)[0]
    rows = {
        cells[0].strip("` "): [cell.strip() for cell in cells[1:]]
        for line in section.splitlines()[2:]
        for cells in [line.strip("|").split("|")]
    }
    assert list(rows) == list(catalog())
    for name, entry in catalog().items():
        shape, auth, batching, rate, rules = rows[name]
        assert shape == f"`{entry.request.value}`", name
        assert auth.startswith(f"`{entry.auth.scheme.value}`"), name
        if entry.auth.scheme is AuthScheme.API_KEY:
            assert f"`{entry.auth.header}`" in auth, name
        expected_batching = (
            f"{entry.batching.max_events} events, {entry.batching.max_bytes} bytes"
            if entry.batching
            else "\N{EN DASH}"
        )
        assert batching.startswith(expected_batching), name
        expected_rate = (
            f"{entry.rate_limit.per_s:g}/s, burst {entry.rate_limit.burst}"
            if entry.rate_limit
            else "\N{EN DASH}"
        )
        assert rate == expected_rate, name
        documented = set(re.findall(r"`([a-z_]+)`", rules))
        assert documented == set(entry.rules.codes), name
