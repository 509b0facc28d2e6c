"""The target policy at connect time: real loopback sockets, through each HTTP client.

A `Rebinder` is a customer's DNS: it answers one thing to the first lookup
and another to every later one. 127.0.0.2 plays the public address (it is
in the test policy's allowed networks, so nothing leaves the machine), and
a server on 127.0.0.1, at the same port, is what a rebound name must never
reach: each test asserts it accepted no connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from delivery.classify import classify
from delivery.precheck import PRIVATE_TARGET
from delivery.sender import Sender
from delivery.transport import CLIENTS, Response, Transport, TransportError, open_transport
from delivery.transport.aiohttp_client import _PolicyConnector
from delivery.transport.targets import TARGET_REFUSED_CODE, TargetPolicy, TargetRefused
from ingest.taxonomy import Classification
from tests.delivery.faults import Exchange, FaultServer, Handler, http_response, keep_alive, respond

PAYLOAD = b'{"type": "track", "event": "Signed Up"}'
HEADERS = {"Content-Type": "application/json"}
STANDS_IN_FOR_PUBLIC = "127.0.0.2"
#: Private addresses refused, 127.0.0.2 allowed as if it were public.
POLICY = TargetPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),))
#: Private addresses allowed: only cloud metadata addresses are refused.
PRIVATE_OK = TargetPolicy(allow_private=True)
OK = http_response(200, "OK", b"ok")  # with Connection: close, so each request opens a connection


@pytest.fixture(params=CLIENTS)
def http_client(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


class Rebinder:
    """A resolver that answers `first` to the first lookup and `later` to every other one."""

    def __init__(self, first: list[str], later: list[str] | None = None) -> None:
        self.first, self.later = first, later if later is not None else first
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.first if len(self.lookups) == 1 else self.later


async def refuse_everything(exchange: Exchange) -> None:
    """What a rebound name must not reach (the test checks it accepted nothing)."""
    await exchange.read_request()
    await exchange.send(http_response(200, "OK", b"internal secrets"))
    await exchange.close()


@asynccontextmanager
async def servers(handler: Handler) -> AsyncIterator[tuple[FaultServer, FaultServer]]:
    """(the server on 127.0.0.2, the one on 127.0.0.1), at one port."""
    async with (
        FaultServer(refuse_everything, host="127.0.0.1") as internal,
        FaultServer(handler, host=STANDS_IN_FOR_PUBLIC, port=internal.port) as public,
    ):
        yield public, internal


def client(name: str, dns: Rebinder, targets: TargetPolicy = POLICY) -> Transport:
    return open_transport(name, targets=targets, resolver=dns.resolve)


async def post(transport: Transport, url: str) -> Response | TransportError:
    try:
        return await transport.post(url, PAYLOAD, HEADERS, timeout_s=2.0, read_limit=1024)
    except TransportError as error:
        return error


def refused(outcome: Response | TransportError) -> TransportError:
    assert isinstance(outcome, TransportError), outcome
    assert outcome.code == TARGET_REFUSED_CODE
    assert isinstance(outcome.__cause__, TargetRefused)
    return outcome


#: Every form of "this machine" a customer's DNS may answer the second time.
REBOUND_TO_LOOPBACK = [
    "127.0.0.1",
    "::ffff:127.0.0.1",  # IPv4-mapped: a dual-stack socket reaches 127.0.0.1 with it
    "0.0.0.0",  # connecting to the unspecified address reaches this machine
    "::ffff:0.0.0.0",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "::1",
]


@pytest.mark.parametrize("address", REBOUND_TO_LOOPBACK)
def test_a_name_rebound_to_this_machine_never_reaches_it(http_client: str, address: str) -> None:
    dns = Rebinder([STANDS_IN_FOR_PUBLIC], [address])

    async def scenario() -> tuple[Response | TransportError, Response | TransportError, int, int]:
        async with servers(respond(OK)) as (public, internal):
            transport = client(http_client, dns)
            try:
                url = f"http://hooks.customer.test:{public.port}/hook"
                first = await post(transport, url)
                second = await post(transport, url)  # a new connection: the first one was closed
            finally:
                await transport.close()
            return first, second, public.requests, internal.connections

    first, second, public_requests, internal_connections = asyncio.run(scenario())
    assert first == Response(200, b"ok") and public_requests == 1
    assert address in str(refused(second))
    assert internal_connections == 0
    assert dns.lookups == ["hooks.customer.test"] * 2  # judged on the lookup of each new connection


#: Cloud metadata addresses, as a rebound name may answer them: refused even where private ones
#: are allowed. Only forms that are not routed from a test machine: the policy's whole list is
#: in test_targets.py.
METADATA_FORMS = ["64:ff9b::a9fe:a9fe", "fd00:ec2::254"]


@pytest.mark.parametrize("address", METADATA_FORMS)
def test_a_metadata_address_is_refused_even_where_private_ones_are_allowed(
    http_client: str, address: str
) -> None:
    dns = Rebinder([STANDS_IN_FOR_PUBLIC], [address])

    async def scenario() -> tuple[Response | TransportError, Response | TransportError]:
        async with servers(respond(OK)) as (public, _):
            transport = client(http_client, dns, PRIVATE_OK)
            try:
                url = f"http://hooks.customer.test:{public.port}/hook"
                return await post(transport, url), await post(transport, url)
            finally:
                await transport.close()

    first, second = asyncio.run(scenario())
    assert first == Response(200, b"ok")
    assert address in str(refused(second))


def test_refused_addresses_are_left_out_and_the_others_tried(http_client: str) -> None:
    dns = Rebinder(["127.0.0.1", "::ffff:127.0.0.1", STANDS_IN_FOR_PUBLIC])

    async def scenario() -> tuple[Response | TransportError, int]:
        async with servers(respond(OK)) as (public, internal):
            transport = client(http_client, dns)
            try:
                outcome = await post(transport, f"http://mixed.customer.test:{public.port}/")
            finally:
                await transport.close()
            return outcome, internal.connections

    outcome, internal_connections = asyncio.run(scenario())
    assert outcome == Response(200, b"ok")
    assert internal_connections == 0


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost", "LocalHost.", "api.localhost", "0.0.0.0"]
)
def test_a_refused_host_as_written_is_not_connected_nor_looked_up(http_client: str, host: str) -> None:
    dns = Rebinder([STANDS_IN_FOR_PUBLIC])

    async def scenario() -> tuple[Response | TransportError, int, int]:
        async with servers(respond(OK)) as (public, internal):
            transport = client(http_client, dns)
            try:
                outcome = await post(transport, f"http://{host}:{public.port}/hook")
            finally:
                await transport.close()
            return outcome, public.connections, internal.connections

    outcome, public_connections, internal_connections = asyncio.run(scenario())
    refused(outcome)
    assert public_connections == internal_connections == 0
    assert dns.lookups == []


def test_an_allowed_network_is_reached_by_literal_and_by_name(http_client: str) -> None:
    allowed = TargetPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/30"),))
    dns = Rebinder(["127.0.0.1"])

    async def scenario() -> tuple[Response | TransportError, Response | TransportError, int]:
        async with servers(respond(OK)) as (public, internal):
            transport = client(http_client, dns, allowed)
            try:
                by_literal = await post(transport, f"http://127.0.0.2:{public.port}/hook")
                by_name = await post(transport, f"http://internal.test:{public.port}/hook")
            finally:
                await transport.close()
            return by_literal, by_name, internal.requests

    by_literal, by_name, internal_requests = asyncio.run(scenario())
    assert by_literal == Response(200, b"ok")
    assert by_name == Response(200, b"internal secrets")
    assert internal_requests == 1


def test_a_pooled_connection_is_not_judged_again(http_client: str) -> None:
    dns = Rebinder([STANDS_IN_FOR_PUBLIC], ["127.0.0.1"])

    async def scenario() -> tuple[list[Response | TransportError], int]:
        async with servers(keep_alive) as (public, _):
            transport = client(http_client, dns)
            try:
                url = f"http://hooks.customer.test:{public.port}/hook"
                outcomes = [await post(transport, url) for _ in range(3)]
            finally:
                await transport.close()
            return outcomes, public.connections

    outcomes, public_connections = asyncio.run(scenario())
    assert outcomes == [Response(200, b'{"success":true}')] * 3
    # One connection, one lookup, one check: the success path pays it once per connection.
    assert public_connections == 1
    assert dns.lookups == ["hooks.customer.test"]


def test_a_redirect_to_a_refused_address_is_not_followed(http_client: str) -> None:
    async def redirect(exchange: Exchange) -> None:
        await exchange.read_request()
        port = exchange.writer.get_extra_info("sockname")[1]
        await exchange.send(http_response(302, "Found", Location=f"http://127.0.0.1:{port}/"))
        await exchange.close()

    async def scenario() -> tuple[Response | TransportError, int]:
        async with servers(redirect) as (public, internal):
            transport = client(http_client, Rebinder([STANDS_IN_FOR_PUBLIC]))
            try:
                outcome = await post(transport, f"http://hooks.customer.test:{public.port}/")
            finally:
                await transport.close()
            return outcome, internal.connections

    outcome, internal_connections = asyncio.run(scenario())
    assert isinstance(outcome, Response) and outcome.status == 302
    assert internal_connections == 0


def test_a_refused_target_is_recorded_as_the_precheck_records_it(http_client: str) -> None:
    dns = Rebinder(["127.0.0.1"])

    async def scenario() -> tuple[str | None, Classification]:
        sender = Sender(request_timeout_s=2.0, transport=client(http_client, dns))
        async with servers(respond(OK)) as (public, _), sender:
            result = await sender.send(f"http://hooks.customer.test:{public.port}/", PAYLOAD, HEADERS)
        return result.error_message, classify(result)

    message, verdict = asyncio.run(scenario())
    assert verdict == PRIVATE_TARGET
    assert message is not None and "hooks.customer.test" in message and "127.0.0.1" in message


def test_the_aiohttp_connector_judges_the_peer_it_connected_to() -> None:
    # The backstop behind the resolver: a resolver that does not judge (aiohttp's own, say)
    # still cannot lead a request to a refused peer.
    class Unjudged(aiohttp.abc.AbstractResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[aiohttp.abc.ResolveResult]:
            answer: aiohttp.abc.ResolveResult = {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            return [answer]

        async def close(self) -> None:
            pass

    async def scenario() -> tuple[BaseException | None, int]:
        async with servers(respond(OK)) as (public, internal):
            connector = _PolicyConnector(POLICY, resolver=Unjudged())
            async with aiohttp.ClientSession(connector=connector) as session:
                try:
                    await session.post(f"http://hooks.customer.test:{public.port}/", data=PAYLOAD)
                except TargetRefused as error:
                    return error, internal.requests
                return None, internal.requests

    error, internal_requests = asyncio.run(scenario())
    assert isinstance(error, TargetRefused) and error.refused == ("127.0.0.1",)
    assert internal_requests == 0  # connected (that is how the peer is known), but nothing sent
