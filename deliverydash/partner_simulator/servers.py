"""The partner simulator's sockets: one loopback aiohttp server per partner, and a stats server.

`PartnerSet` starts every partner of a config and stops them all on exit::

    async with PartnerSet(default_config().partners, control_port=0) as partners:
        url = partners.url("crm-records")            # http://127.0.0.1:PORT/
        partners.stats("crm-records").requests       # what arrived
        partners.certificates.write_ca("ca.pem")     # for the engine's ca_bundle

`partners_in_thread` runs the same in a background thread, for callers
without an event loop of their own (the demo, synchronous tests).

A partner answers on any path. It counts what it received (`Stats`) and
shows the counts at `GET /_stats`; the control server shows every
partner's at `GET /_stats` and `GET /_stats/{name}`, and zeroes them on
`POST /_stats/reset`.

aiohttp writes any status number, those below 100 included, so no raw
server is needed: a "WTF" answer of 42 goes out as `HTTP/1.1 42 Whatever`.
Resets set SO_LINGER to 0 before aborting the transport, so the client gets
an RST rather than a FIN.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web

from deliverydash.partner_simulator.config import PartnerSpec
from deliverydash.partner_simulator.profiles import Answer, Hang, Outage, Request, Reset
from deliverydash.partner_simulator.tls import LOOPBACK, Certificates

#: Largest request body read (the engine's batches stay far below).
MAX_BODY: Final = 16 * 1024 * 1024


class PartnerStartError(Exception):
    """A partner could not listen (a port in use, say); the message names it."""


@dataclass(slots=True)
class Stats:
    """What one partner received and how it answered."""

    requests: int = 0
    """Requests read (the stats endpoint's own excluded)."""
    events: int = 0
    """Events in those requests: a batch's items, 1 for a single event, 0 for a body that is not JSON."""
    statuses: Counter[int] = field(default_factory=Counter)
    """Answers sent, by status."""
    resets: int = 0
    """Requests answered with a connection reset."""
    unanswered: int = 0
    """Requests that were never answered."""
    accepted: Counter[str] = field(default_factory=Counter)
    """Per `messageId`, the requests carrying it the partner took: answered 2xx, or left
    unanswered after taking them (accept-then-timeout). Above 1: the event arrived twice."""

    @property
    def accepted_more_than_once(self) -> int:
        """Events (message ids) the partner took more than once."""
        return sum(1 for n in self.accepted.values() if n > 1)

    def as_dict(self) -> dict[str, Any]:
        """The counts as JSON-ready data (statuses keyed by their number as text)."""
        return {
            "requests": self.requests,
            "events": self.events,
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
            "resets": self.resets,
            "unanswered": self.unanswered,
            "accepted_events": len(self.accepted),
            "accepted_more_than_once": self.accepted_more_than_once,
        }

    def clear(self) -> None:
        """Zero every count."""
        self.requests = self.events = self.resets = self.unanswered = 0
        self.statuses.clear()
        self.accepted.clear()


def _reset(transport: asyncio.Transport | None) -> None:
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class PartnerServer:
    """One simulated partner on 127.0.0.1: the spec's profile carried out over a socket."""

    def __init__(
        self,
        spec: PartnerSpec,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.stats = Stats()
        self._tls = tls
        self._clock = clock
        self._started = clock()
        self._port = spec.port
        self._web = web.Server(self._handle, handler_cancellation=True)
        self._listener: asyncio.Server | None = None
        self._closing = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        return self._port

    @property
    def url(self) -> str:
        """Its base URL; it answers on every path."""
        return f"{'https' if self._tls else 'http'}://{LOOPBACK}:{self._port}/"

    @property
    def listening(self) -> bool:
        """Whether its port accepts connections (an outage in mode "refuse" closes it)."""
        return self._listener is not None

    async def start(self) -> None:
        """Listen; raises `PartnerStartError` if the port cannot be had."""
        self._started = self._clock()
        try:
            await self._listen()
        except OSError as exc:
            raise PartnerStartError(
                f"partner {self.spec.name!r} cannot listen on {LOOPBACK}:{self.spec.port}: "
                f"{exc.strerror or exc}"
            ) from None
        profile = self.spec.profile
        if isinstance(profile, Outage) and profile.mode == "refuse":
            self._scheduler = asyncio.create_task(self._outages(profile))

    async def close(self) -> None:
        """Stop listening, end hanging requests with a reset, close every connection."""
        self._closing.set()
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
        self._stop_listening()
        await self._web.shutdown(timeout=1.0)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._web, LOOPBACK, self._port, ssl=self._tls, reuse_address=True
        )
        self._port = self._listener.sockets[0].getsockname()[1]

    def _stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    async def _outages(self, profile: Outage) -> None:
        """Close the port for each outage and open it again after (mode "refuse")."""
        while True:
            now = self._clock() - self._started
            await asyncio.sleep(max(0.0, profile.next_change(now) - now))
            await self.follow_outage()

    async def follow_outage(self) -> None:
        """Close or reopen the port as the outage schedule says at this moment (mode "refuse")."""
        profile = self.spec.profile
        if not isinstance(profile, Outage) or profile.mode != "refuse":
            return
        if profile.down_for(self._clock() - self._started):
            self._stop_listening()
        elif self._listener is None:
            await self._listen()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/_stats":
            return web.json_response(self.stats.as_dict())
        body = await request.content.read(MAX_BODY)
        incoming = Request(request.method, request.path, request.headers, body)
        self.stats.requests += 1
        self.stats.events += len(incoming.events or ())
        reply = self.spec.profile.decide(incoming, self._clock() - self._started)
        delay = self.spec.latency_s + (reply.delay_s if isinstance(reply, Answer) else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        if isinstance(reply, Answer):
            self.stats.statuses[reply.status] += 1
            if 200 <= reply.status < 300:
                self._count_accepted(incoming)
            return self._response(reply)
        if isinstance(reply, Hang):
            self.stats.unanswered += 1
            if reply.accepted:
                self._count_accepted(incoming)
            await self._closing.wait()
            _reset(request.transport)
            return web.Response()  # never written: the connection is gone
        assert isinstance(reply, Reset)
        self.stats.resets += 1
        return await self._reset_reply(request, reply)

    def _count_accepted(self, request: Request) -> None:
        for event in request.events or ():
            if isinstance(event, dict) and isinstance(event.get("messageId"), str):
                self.stats.accepted[event["messageId"]] += 1

    @staticmethod
    def _response(answer: Answer) -> web.Response:
        response = web.Response(
            status=answer.status, reason=answer.reason, body=answer.body, headers=dict(answer.headers)
        )
        if answer.close:
            response.force_close()
        return response

    @staticmethod
    async def _reset_reply(request: web.BaseRequest, reset: Reset) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        if reset.mid_response:
            response.content_length = 1000
            await response.prepare(request)
            await response.write(b"x" * 100)
        _reset(request.transport)
        # aiohttp finds the transport gone when it finishes the response, and lets it be.
        return response


class ControlServer:
    """`GET /_stats` for every partner, `GET /_stats/{name}` for one, `POST /_stats/reset` to zero them."""

    def __init__(self, partners: Sequence[PartnerServer], port: int = 0) -> None:
        self._partners = {p.spec.name: p for p in partners}
        self._port = port
        self._web = web.Server(self._handle)
        self._listener: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://{LOOPBACK}:{self._port}/"

    async def start(self) -> None:
        """Listen; raises `PartnerStartError` if the port cannot be had."""
        loop = asyncio.get_running_loop()
        try:
            self._listener = await loop.create_server(self._web, LOOPBACK, self._port, reuse_address=True)
        except OSError as exc:
            raise PartnerStartError(
                f"the control server cannot listen on {LOOPBACK}:{self._port}: {exc.strerror or exc}"
            ) from None
        self._port = self._listener.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and close its connections."""
        if self._listener is not None:
            self._listener.close()
        await self._web.shutdown(timeout=1.0)

    def snapshot(self) -> dict[str, Any]:
        """Every partner's profile, URL and counts."""
        return {
            name: {"profile": p.spec.profile.name, "url": p.url, **p.stats.as_dict()}
            for name, p in self._partners.items()
        }

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "/_stats":
            return web.json_response({"partners": self.snapshot()})
        if request.method == "GET" and path.startswith("/_stats/"):
            name = path.removeprefix("/_stats/")
            if name in self._partners:
                return web.json_response(self.snapshot()[name])
            return web.json_response({"error": f"no partner named {name!r}"}, status=404)
        if request.method == "POST" and path == "/_stats/reset":
            for partner in self._partners.values():
                partner.stats.clear()
            return web.json_response({"reset": len(self._partners)})
        return web.json_response(
            {"error": "GET /_stats, GET /_stats/{name} or POST /_stats/reset"}, status=404
        )


class PartnerSet:
    """Starts a set of partners (and, unless `control_port` is None, the stats server) on loopback.

    Use as `async with PartnerSet(specs) as partners:`. Ports of 0 get a
    free port each; `url(name)` gives the address. TLS partners share one
    `Certificates` (the simulator's CA), made only if one of them needs it.
    """

    def __init__(
        self,
        specs: Sequence[PartnerSpec],
        *,
        control_port: int | None = 0,
        certificates: Certificates | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` gives the partners' time in seconds (tests pass a fake one)."""
        self.specs = tuple(specs)
        self._clock = clock
        self._control_port = control_port
        self._own_certificates = certificates is None
        self._certificates = certificates
        self.servers: dict[str, PartnerServer] = {}
        """The running partners, by name."""
        self.control: ControlServer | None = None
        """The stats server, if one was asked for."""

    @property
    def certificates(self) -> Certificates:
        """The simulator's CA and server certificates (made on first use)."""
        if self._certificates is None:
            self._certificates = Certificates()
        return self._certificates

    def url(self, name: str) -> str:
        """The base URL of the partner called `name`."""
        return self.servers[name].url

    def stats(self, name: str) -> Stats:
        """What the partner called `name` has received so far."""
        return self.servers[name].stats

    def rows(self) -> list[tuple[str, str, str]]:
        """(name, profile with its TLS kind, URL) for each partner, in config order."""
        rows = []
        for server in self.servers.values():
            profile = server.spec.profile.name + (f" (tls: {server.spec.tls})" if server.spec.tls else "")
            rows.append((server.spec.name, profile, server.url))
        return rows

    async def start(self) -> None:
        """Start every partner, then the control server; on failure, stop what started and raise."""
        try:
            for spec in self.specs:
                tls = self.certificates.server_context(spec.tls) if spec.tls else None
                server = PartnerServer(spec, tls, self._clock)
                await server.start()
                self.servers[spec.name] = server
            if self._control_port is not None:
                self.control = ControlServer(list(self.servers.values()), self._control_port)
                await self.control.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop every server and remove the certificate files made here."""
        if self.control is not None:
            await self.control.close()
            self.control = None
        await asyncio.gather(*(server.close() for server in self.servers.values()))
        self.servers.clear()
        if self._own_certificates and self._certificates is not None:
            self._certificates.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


@contextlib.contextmanager
def partners_in_thread(
    specs: Sequence[PartnerSpec], *, control_port: int | None = 0, certificates: Certificates | None = None
) -> Iterator[PartnerSet]:
    """A `PartnerSet` running in a background thread with its own event loop, until the block ends.

    Read its URLs and stats from the caller's thread; counts are plain
    integers, so a read sees a recent value without locking.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="deliverydash-partners", daemon=True)
    thread.start()

    async def start() -> PartnerSet:
        partners = PartnerSet(specs, control_port=control_port, certificates=certificates)
        await partners.start()
        return partners

    try:
        partners = asyncio.run_coroutine_threadsafe(start(), loop).result()
        try:
            yield partners
        finally:
            asyncio.run_coroutine_threadsafe(partners.close(), loop).result()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
