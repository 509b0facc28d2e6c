"""The egress proxy, through each HTTP client: a small proxy on loopback, real TLS inside its tunnels.

`Proxy` speaks the two forms a smokescreen-style proxy takes: `CONNECT
host:port` (a tunnel the client runs TLS in) and absolute-form requests
(`POST http://host:port/path`), and resolves destination names from its
own table. The clients' resolver refuses every name but the proxy's, so
each test also shows that the engine never looked a destination up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme

from delivery.transport import CLIENTS, Response, Transport, TransportError, open_transport
from delivery.transport.proxy import EgressProxy
from delivery.transport.targets import TARGET_REFUSED_CODE, TargetPolicy
from tests.delivery.faults import LOOPBACK, FaultServer, keep_alive, server_context

PAYLOAD = b'{"type": "track", "event": "Signed Up"}'
HEADERS = {"Content-Type": "application/json"}
DESTINATION = "hooks.partner.test"
STRICT = TargetPolicy()  # private addresses refused: only the proxy may be on loopback
OK = Response(200, b'{"success":true}')


@pytest.fixture(params=CLIENTS)
def http_client(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


class NoDns:
    """The clients' resolver: the proxy's name only (and IP literals, as getaddrinfo answers them)."""

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        self.names = dict(names or {})
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        with contextlib.suppress(ValueError):
            return [str(ipaddress.ip_address(host))]
        self.lookups.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} looked up by the engine")
        return [self.names[host]]


class Proxy(FaultServer):
    """An HTTP proxy on loopback: CONNECT tunnels and absolute-form requests, names from `names`."""

    def __init__(self, names: Mapping[str, str], *, refusal: bytes | None = None) -> None:
        super().__init__(lambda exchange: self._proxy(exchange.reader, exchange.writer))
        self.names = names
        self.refusal = refusal
        """Sent in answer to CONNECT instead of opening a tunnel, when set."""
        self.request_lines: list[bytes] = []

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line, _, rest = head.partition(b"\r\n")
        self.request_lines.append(line)
        method, target, version = line.split(b" ")
        if method == b"CONNECT":
            if self.refusal is not None:
                writer.write(self.refusal)
                await writer.drain()
                return
            host, _, port = target.decode().rpartition(":")
            upstream = await asyncio.open_connection(self.names[host], int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            url = urlsplit(target.decode())
            assert url.hostname is not None
            upstream = await asyncio.open_connection(self.names[url.hostname], url.port or 80)
            path = url.path + (f"?{url.query}" if url.query else "")
            upstream[1].write(b"%s %s %s\r\n%s" % (method, path.encode(), version, rest))
        self._writers.append(upstream[1])
        await asyncio.gather(_pipe(reader, upstream[1]), _pipe(upstream[0], writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.transport.abort()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_bundle(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def client(name: str, proxy: str, dns: NoDns, ca_bundle: Path | None = None) -> Transport:
    return open_transport(name, ca_bundle=ca_bundle, targets=STRICT, egress_proxy=proxy, resolver=dns.resolve)


async def post(transport: Transport, url: str) -> Response | TransportError:
    try:
        return await transport.post(url, PAYLOAD, HEADERS, timeout_s=2.0, read_limit=1024)
    except TransportError as error:
        return error


def test_https_goes_through_a_connect_tunnel(http_client: str, ca: trustme.CA, ca_bundle: Path) -> None:
    dns = NoDns()
    tls = server_context(ca.issue_cert(DESTINATION))

    async def scenario() -> tuple[list[Response | TransportError], list[bytes], list[bytes], int]:
        async with (
            FaultServer(keep_alive, tls=tls) as destination,
            Proxy({DESTINATION: LOOPBACK}) as proxy,
        ):
            transport = client(http_client, f"http://127.0.0.1:{proxy.port}", dns, ca_bundle)
            try:
                url = f"https://{DESTINATION}:{destination.port}/hook?x=1"
                outcomes = [await post(transport, url) for _ in range(2)]
            finally:
                await transport.close()
            return outcomes, proxy.request_lines, destination.received, destination.port

    outcomes, request_lines, received, port = asyncio.run(scenario())
    assert outcomes == [OK, OK]
    # One tunnel, reused like any pooled connection; TLS inside it checked the destination's name.
    assert request_lines == [f"CONNECT {DESTINATION}:{port} HTTP/1.1".encode()]
    assert received[0].startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert f"\r\nHost: {DESTINATION}:{port}\r\n".encode() in received[0]
    assert dns.lookups == []


def test_http_goes_to_the_proxy_in_absolute_form(http_client: str) -> None:
    dns = NoDns()

    async def scenario() -> tuple[Response | TransportError, list[bytes], list[bytes], int]:
        async with FaultServer(keep_alive) as destination, Proxy({DESTINATION: LOOPBACK}) as proxy:
            transport = client(http_client, f"http://127.0.0.1:{proxy.port}", dns)
            try:
                outcome = await post(transport, f"http://{DESTINATION}:{destination.port}/hook?x=1")
            finally:
                await transport.close()
            return outcome, proxy.request_lines, destination.received, destination.port

    outcome, request_lines, received, port = asyncio.run(scenario())
    assert outcome == OK
    assert request_lines == [f"POST http://{DESTINATION}:{port}/hook?x=1 HTTP/1.1".encode()]
    assert received[0].startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert dns.lookups == []


def test_a_proxy_named_by_a_private_name_is_exempt_from_the_policy(
    http_client: str, ca: trustme.CA, ca_bundle: Path
) -> None:
    dns = NoDns({"smokescreen.internal": LOOPBACK})
    tls = server_context(ca.issue_cert(DESTINATION))

    async def scenario() -> Response | TransportError:
        async with (
            FaultServer(keep_alive, tls=tls) as destination,
            Proxy({DESTINATION: LOOPBACK}) as proxy,
        ):
            transport = client(http_client, f"http://smokescreen.internal:{proxy.port}", dns, ca_bundle)
            try:
                return await post(transport, f"https://{DESTINATION}:{destination.port}/hook")
            finally:
                await transport.close()

    assert asyncio.run(scenario()) == OK
    assert dns.lookups == ["smokescreen.internal"]


REFUSAL_BODY = b"Egress proxying is denied to host 'hooks.partner.test:443': resolves to a private address."
REFUSAL = (
    b"HTTP/1.1 407 Request rejected by proxy\r\nContent-Length: %d\r\nConnection: close\r\n"
    b"X-Smokescreen-Error: denied\r\n\r\n%s" % (len(REFUSAL_BODY), REFUSAL_BODY)
)


def test_a_refused_tunnel_is_the_proxys_response(http_client: str, ca_bundle: Path) -> None:
    async def scenario() -> Response | TransportError:
        async with Proxy({}, refusal=REFUSAL) as proxy:
            transport = client(http_client, f"http://127.0.0.1:{proxy.port}", NoDns(), ca_bundle)
            try:
                return await post(transport, f"https://{DESTINATION}/hook")
            finally:
                await transport.close()

    outcome = asyncio.run(scenario())
    assert isinstance(outcome, Response) and outcome.status == 407
    # aiohttp keeps no body of a refused CONNECT; the built-in client reads it as any response's.
    assert outcome.body == (REFUSAL_BODY if http_client == "builtin" else b"")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://127.0.0.1:8443/hook", TARGET_REFUSED_CODE),
        ("http://[::ffff:10.0.0.1]/hook", TARGET_REFUSED_CODE),
        ("https://169.254.169.254/latest", TARGET_REFUSED_CODE),
        ("http://localhost:8080/hook", TARGET_REFUSED_CODE),
        ("https://hooks.invalid/hook", "ENOTFOUND"),
    ],
)
def test_what_the_engine_can_judge_unresolved_never_reaches_the_proxy(
    http_client: str, url: str, code: str
) -> None:
    async def scenario() -> tuple[Response | TransportError, list[bytes]]:
        async with Proxy({}) as proxy:
            transport = client(http_client, f"http://127.0.0.1:{proxy.port}", NoDns())
            try:
                outcome = await post(transport, url)
            finally:
                await transport.close()
            return outcome, proxy.request_lines

    outcome, request_lines = asyncio.run(scenario())
    assert isinstance(outcome, TransportError) and outcome.code == code
    assert request_lines == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://proxy:3128", "must be an http://host:port URL, got scheme 'https'"),
        ("http://proxy", "must give the proxy's port (http://proxy:port)"),
        ("http://user:secret@proxy:3128", "must not carry credentials"),
        ("http://proxy:3128/path", "must be http://host:port alone, without a path or query"),
        ("http://:3128", "must name the proxy's host"),
        ("http://proxy:99999", "is not a valid URL"),
        ("http://pro xy:3128", "must not contain whitespace"),
    ],
)
def test_a_proxy_url_that_is_not_http_host_port_is_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        EgressProxy.parse(url)


@pytest.mark.parametrize(
    ("url", "proxy"),
    [
        ("http://proxy.internal:3128", EgressProxy("proxy.internal", 3128)),
        ("http://10.0.0.5:4750/", EgressProxy("10.0.0.5", 4750)),
        ("http://[fd00::5]:4750", EgressProxy("fd00::5", 4750)),
    ],
)
def test_a_proxy_url(url: str, proxy: EgressProxy) -> None:
    assert EgressProxy.parse(url) == proxy
    assert EgressProxy.parse(proxy.url) == proxy
