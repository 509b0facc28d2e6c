"""Fault servers for the delivery tests: real sockets on 127.0.0.1, one misbehaviour each.

A `FaultServer` accepts connections on an ephemeral loopback port and hands
each to a handler (`respond`, `close_without_answer`, `reset_mid_response`,
...). Handlers speak raw bytes, so they can send what no HTTP framework
would: `HTTP/1.1 42 Weird`, an RST after the headers, an endless body.
Leaving the server's `async with` cancels the handlers and closes every
socket, so tests run with warnings as errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK = "127.0.0.1"


class Exchange:
    """One accepted connection, seen from the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: FaultServer):
        self.reader, self.writer, self._server = reader, writer, server

    async def read_request(self) -> bytes:
        """Read one whole request (head and Content-Length body) and count it."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        self._server.requests += 1
        self._server.received.append(head + body)
        return head + body

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        """Close with a FIN, after everything sent."""
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()

    def reset(self) -> None:
        """Close with an RST (SO_LINGER 0), dropping anything unsent."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Handler = Callable[[Exchange], Awaitable[None]]


class FaultServer:
    """A loopback server that runs `handler` for every connection."""

    def __init__(
        self, handler: Handler, *, tls: ssl.SSLContext | None = None, host: str = LOOPBACK, port: int = 0
    ) -> None:
        """Serve on `host` (a loopback address) at `port` (0: an ephemeral one)."""
        self._handler, self._tls = handler, tls
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.requests = 0
        """Requests whose head and body the handler read."""
        self.received: list[bytes] = []
        """Those requests' bytes (head and body), in the order they were read."""
        self.connections = 0
        """Connections accepted."""

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, path: str = "/hook") -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self._host}:{self.port}{path}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, self._host, self._port, ssl=self._tls)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        self.connections += 1
        try:
            await self._handler(Exchange(reader, writer, self))
        except (asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            # Shutdown, or a client that hung up first: neither is the test's subject.
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()


def http_response(status: int | str, reason: str = "X", body: bytes = b"", **headers: str) -> bytes:
    """The bytes of a response; `status` may be anything, `HTTP/1.1 42 Weird` included."""
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def respond(raw: bytes) -> Handler:
    """Read the request, send `raw`, close."""

    async def handler(exchange: Exchange) -> None:
        await exchange.read_request()
        await exchange.send(raw)
        await exchange.close()

    return handler


async def answer_at_once(exchange: Exchange) -> None:
    """Answer 400 to the first bytes, whatever they are (a TLS ClientHello included)."""
    await exchange.reader.read(16)
    await exchange.send(http_response(400, "Bad Request"))
    await exchange.close()


async def keep_alive(exchange: Exchange) -> None:
    """Answer 200 to every request on the connection until the client closes it."""
    while True:
        await exchange.read_request()
        await exchange.send(b'HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{"success":true}')


async def close_without_answer(exchange: Exchange) -> None:
    await exchange.read_request()
    await exchange.close()


async def reset_mid_response(exchange: Exchange) -> None:
    """Send the head and part of a 1000-byte body, then an RST."""
    await exchange.read_request()
    await exchange.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
    exchange.reset()


async def never_answer(exchange: Exchange) -> None:
    await exchange.read_request()
    await asyncio.Event().wait()


async def endless_body(exchange: Exchange) -> None:
    """A 500 whose chunked body never ends (until the client hangs up)."""
    await exchange.read_request()
    await exchange.send(b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"e" * 64 * 1024)
    while True:
        await exchange.send(chunk)


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        yield sock.getsockname()[1]


def server_context(cert: trustme.LeafCert, *, with_root: trustme.CA | None = None) -> ssl.SSLContext:
    """A server TLS context presenting `cert` (and, if given, the root that issued it)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    if with_root is not None:
        chain = cert.private_key_and_cert_chain_pem.bytes() + with_root.cert_pem.bytes()
        with trustme.Blob(chain).tempfile() as path:
            context.load_cert_chain(path)
    return context


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server TLS context whose certificate for 127.0.0.1 signs itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "self-signed.pem", directory / "self-signed.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@contextlib.contextmanager
def running_in_thread(servers: Iterable[FaultServer]) -> Iterator[None]:
    """Run `servers` on an event loop of their own, in a background thread, until the block ends.

    For clients that are not coroutines on the test's loop: a synchronous
    client, or another process such as the engine.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fault-servers", daemon=True)
    thread.start()
    stack = contextlib.AsyncExitStack()

    async def enter() -> None:
        for server in servers:
            await stack.enter_async_context(server)

    try:
        asyncio.run_coroutine_threadsafe(enter(), loop).result(timeout=30)
        yield
    finally:
        asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class HandshakeCounter:
    """Counts the TLS handshakes a server context is asked for (its ClientHellos), failed ones included.

    A handshake the client aborts (an expired or untrusted certificate) never
    reaches the `FaultServer`'s handler, so `requests` and `connections` stay 0;
    this is how such a server still counts what it was sent.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.count = 0
        context.sni_callback = self._hello

    def _hello(self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        # Called for every ClientHello, with or without SNI (None for an IP address).
        self.count += 1
