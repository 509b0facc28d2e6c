"""The partner servers over real loopback sockets, and the engine's verdict on each.

`Sender` and `classify` are the engine's own: each failure profile must come
out of them as the error class and code the taxonomy gives it. Partners use
a fake clock where time matters, so nothing here waits for a window or
asserts a duration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from delivery.classify import classify
from delivery.retry import parse_retry_after
from delivery.sender import Sender, SendResult
from deliverydash.partner_simulator.config import PartnerSpec
from deliverydash.partner_simulator.profiles import (
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
from deliverydash.partner_simulator.servers import PartnerSet, partners_in_thread
from deliverydash.partner_simulator.tls import Certificates
from ingest.taxonomy import Classification, ErrorClass

T = TypeVar("T")
EVENT = {
    "type": "track",
    "event": "Signed Up",
    "messageId": "m-1",
    "timestamp": "2026-11-27T10:00:00Z",
    "userId": "ada",
}
BODY = json.dumps(EVENT).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer stale-token-1234"}


class FakeClock:
    """Seconds, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


def send_once(
    profile: Profile,
    *,
    tls: str | None = None,
    body: bytes = BODY,
    timeout_s: float = 2.0,
    trust_ca: bool = True,
    clock: FakeClock | None = None,
) -> SendResult:
    """One request from the engine's Sender to a fresh partner."""

    async def scenario() -> SendResult:
        spec = PartnerSpec("partner", profile, tls=tls)
        async with PartnerSet([spec], control_port=None, clock=clock or FakeClock()) as partners:
            ca = partners.certificates.ca_file if trust_ca else None
            async with Sender(request_timeout_s=timeout_s, ca_bundle=ca) as sender:
                return await sender.send(partners.url("partner") + "v1/track", body, HEADERS)

    return run(scenario)


# -- the engine's classification of every profile ---------------------------------------------

AUTH, VALIDATION, RATE_LIMIT, SERVER = (
    ErrorClass.AUTH,
    ErrorClass.VALIDATION,
    ErrorClass.RATE_LIMIT,
    ErrorClass.SERVER,
)


@pytest.mark.parametrize(
    ("profile", "verdict", "in_body"),
    [
        (Healthy(), Classification(ErrorClass.NONE, "200", False), None),
        (ExpiredCredentials(), Classification(AUTH, "401", False), "token_expired"),
        (Forbidden(), Classification(AUTH, "403", False), "events:write scope"),
        (Flaky(error_rate=1, statuses=[502]), Classification(SERVER, "502", True), "502 Bad Gateway"),
        (Flaky(error_rate=1, statuses=[500]), Classification(SERVER, "500", True), "internal_error"),
        (Outage(period_s=10, down_s=10), Classification(SERVER, "503", True), "maintenance"),
        (Batch(max_events=1), Classification(ErrorClass.NONE, "200", False), None),
    ],
    ids=lambda value: getattr(value, "name", None) or str(value)[:20],
)
def test_status_profiles_classify(profile: Profile, verdict: Classification, in_body: str | None) -> None:
    result = send_once(profile)
    assert classify(result) == verdict
    if in_body is not None:
        assert result.body is not None and in_body in result.body


def test_strict_partner_answers_a_seed_style_400() -> None:
    result = send_once(Strict(), body=json.dumps({**EVENT, "event": "Signed Up!"}).encode())
    assert classify(result) == Classification(VALIDATION, "400", False)
    assert result.body is not None
    assert json.loads(result.body)["error"]["message"].startswith(
        "(#100) Value of param custom_events[0][_eventName] must match regex pattern: /^[0-9a-zA-Z_]"
    )
    assert classify(send_once(Strict())).error_class is ErrorClass.NONE


def test_rate_limited_partner_says_when_to_retry() -> None:
    async def scenario() -> list[SendResult]:
        spec = PartnerSpec("partner", RateLimited(rate=0.5, burst=2))
        async with (
            PartnerSet([spec], control_port=None, clock=FakeClock()) as partners,
            Sender(request_timeout_s=2.0) as sender,
        ):
            return [await sender.send(partners.url("partner"), BODY, HEADERS) for _ in range(3)]

    results = run(scenario)
    assert [r.status for r in results] == [200, 200, 429]
    assert classify(results[2]) == Classification(RATE_LIMIT, "429", True)
    assert parse_retry_after(results[2].retry_after, dt.datetime.now(dt.UTC)) == 2.0


def test_wtf_partner_statuses_are_recorded_with_their_numbers() -> None:
    async def scenario() -> list[SendResult]:
        async with (
            PartnerSet([PartnerSpec("partner", Wtf())], control_port=None) as partners,
            Sender(request_timeout_s=2.0) as sender,
        ):
            return [await sender.send(partners.url("partner"), BODY, HEADERS) for _ in range(102)]

    results = run(scenario)
    assert [r.status for r in results] == [418, *range(1, 102)]
    for result in results:
        assert classify(result) == Classification(ErrorClass.NONSTANDARD, str(result.status), False)


@pytest.mark.parametrize("when", ["mid-response", "before-response"])
def test_reset_partner(when: str) -> None:
    assert classify(send_once(ResetProfile(when=when))) == Classification(
        ErrorClass.NETWORK, "ECONNRESET", True
    )


def test_timeout_partner() -> None:
    result = send_once(Timeout(), timeout_s=0.2)
    assert classify(result) == Classification(ErrorClass.TIMEOUT, "ETIMEDOUT", True)


@pytest.mark.parametrize(
    ("kind", "trust_ca", "code"),
    [
        ("expired", True, "CERT_HAS_EXPIRED"),
        ("not-yet-valid", True, "CERT_NOT_YET_VALID"),
        ("wrong-host", True, "ERR_TLS_CERT_ALTNAME_INVALID"),
        ("self-signed", True, "DEPTH_ZERO_SELF_SIGNED_CERT"),
        ("unknown-ca", True, "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
        # Without the simulator's CA, OpenSSL stops at the unknown issuer before the dates.
        ("expired", False, "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
    ],
)
def test_tls_partners(kind: str, trust_ca: bool, code: str) -> None:
    result = send_once(Healthy(), tls=kind, trust_ca=trust_ca)
    assert classify(result) == Classification(ErrorClass.TLS, code, False)


def test_a_trusted_tls_partner_works() -> None:
    result = send_once(Healthy(), tls="valid")
    assert (result.status, classify(result).error_class) == (200, ErrorClass.NONE)


def test_outage_refusing_connections_closes_and_reopens_its_port() -> None:
    clock = FakeClock()

    async def scenario() -> list[SendResult]:
        spec = PartnerSpec("partner", Outage(period_s=10, down_s=5, mode="refuse"))
        async with (
            PartnerSet([spec], control_port=None, clock=clock) as partners,
            Sender(request_timeout_s=2.0) as sender,
        ):
            server, url = partners.servers["partner"], partners.url("partner")
            results = [await sender.send(url, BODY, HEADERS)]
            clock.now += 6  # into the outage
            await server.follow_outage()
            assert not server.listening
            # A pooled connection from before is reset; a new one is refused.
            results.append(await sender.send(url, BODY, HEADERS))
            results.append(await sender.send(url, BODY, HEADERS))
            clock.now += 5  # the next cycle
            await server.follow_outage()
            results.append(await sender.send(url, BODY, HEADERS))
            return results

    first, pooled, refused, back = run(scenario)
    assert first.status == 200 and back.status == 200
    assert classify(pooled).error_code in ("ECONNRESET", "ECONNREFUSED")
    assert classify(refused) == Classification(ErrorClass.NETWORK, "ECONNREFUSED", True)


# -- what the partners count -------------------------------------------------------------------


def test_partners_count_requests_events_and_statuses() -> None:
    async def scenario() -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
        specs = [
            PartnerSpec("events-bulk", Batch(max_events=3)),
            PartnerSpec("flaky-network", ResetProfile()),
            PartnerSpec("stuck-webhook", Timeout()),
        ]
        async with PartnerSet(specs) as partners, httpx.AsyncClient(timeout=2.0) as client:
            bulk = partners.url("events-bulk")
            for size in (1, 3, 4):
                await client.post(bulk, json={"batch": [EVENT] * size})
            await client.post(bulk, content=b"not json")
            with pytest.raises(httpx.TransportError):
                await client.post(partners.url("flaky-network"), json=EVENT)
            with pytest.raises(httpx.ReadTimeout):
                await client.post(partners.url("stuck-webhook"), json=EVENT, timeout=0.2)
            own = (await client.get(bulk + "_stats")).json()
            assert partners.control is not None
            control = partners.control.url
            every = (await client.get(control + "_stats")).json()
            one = (await client.get(control + "_stats/stuck-webhook")).json()
            assert (await client.get(control + "_stats/nobody")).status_code == 404
            assert (await client.post(control + "_stats/reset")).status_code == 200
            assert partners.stats("events-bulk").requests == 0
            return own, every, one

    own, every, one = run(scenario)
    assert own == {
        "requests": 4,
        "events": 8,
        "statuses": {"200": 2, "400": 2},
        "resets": 0,
        "unanswered": 0,
        # The same event in every batch: taken twice (and more) by this partner.
        "accepted_events": 1,
        "accepted_more_than_once": 1,
    }
    partners = every["partners"]
    assert isinstance(partners, dict)
    assert partners["events-bulk"]["profile"] == "batch"
    assert partners["flaky-network"]["resets"] == 1
    assert one["unanswered"] == 1 and one["requests"] == 1


def test_partners_in_a_thread_and_a_port_in_use() -> None:
    with partners_in_thread([PartnerSpec("crm-records", Healthy())], control_port=None) as partners:
        url = partners.url("crm-records")
        assert httpx.post(url, json=EVENT).json() == {"success": True}
        assert partners.stats("crm-records").statuses == {200: 1}
        port = partners.servers["crm-records"].port

        async def clash() -> None:
            async with PartnerSet([PartnerSpec("second", Healthy(), port=port)], control_port=None):
                pass

        with pytest.raises(Exception, match=rf"partner 'second' cannot listen on 127.0.0.1:{port}"):
            run(clash)


def test_the_ca_can_be_written_for_the_engine(tmp_path: Path) -> None:
    certificates = Certificates()
    try:
        path = certificates.write_ca(tmp_path / "trust" / "partners-ca.pem")
        assert path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        assert path.read_bytes() == certificates.ca_file.read_bytes()
    finally:
        certificates.close()
    assert not certificates.ca_file.exists()
