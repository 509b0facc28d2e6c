"""How each simulated partner answers one request: pure decisions, no sockets, no clock.

A profile's `decide(request, now)` returns a `Reply`; `now` is seconds since
the partner started, and every random draw comes from the profile's own
`random.Random`, so tests assert exact answers. `deliverydash.partner_simulator.servers`
carries the replies out over real sockets::

    Reply
    ├── Answer(status, body, headers) ... a response, any number from 1 up (418 and 1-101 included)
    ├── Reset(mid_response) ............. an RST, before any byte of a response or inside its body
    └── Hang ............................ the request is read and never answered

The profiles, by name (their knobs are the dataclass fields, documented in
docs/partners.md)::

    healthy ................ 200
    rate-limited ........... token bucket; 429 with Retry-After when empty
    flaky .................. 500/502/503/504 at `error_rate` (and on each event's
                             first `fail_first` tries), else 200
    outage ................. down for `down_s` at the end of every `period_s`:
                             a 503, a reset, or (servers) a closed port
    expired-credentials .... 401 with a JSON error body (unless `valid_token` is presented)
    forbidden .............. 403 with a JSON error body (unless `valid_token` is presented)
    strict ................. 400 with a JSON error body for an event breaking a rule, else 200
    batch .................. up to `max_events` per `{"batch": [...]}` request, else 400 / 413
    wtf .................... 418 and the codes 1-101, in turn ("WTF webhooks")
    reset .................. an RST instead of an answer
    timeout ................ never answers (or only after `answer_after_s`)
    accept-then-timeout .... takes each event's first `times` requests and never answers
                             them, then 200: the sender's retry delivers a second time

Bodies are invented but shaped like real APIs' errors; no profile imitates a
real vendor.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

JSON: Final = {"Content-Type": "application/json"}
HTML: Final = {"Content-Type": "text/html; charset=utf-8"}
TEXT: Final = {"Content-Type": "text/plain; charset=utf-8"}


# -- requests and replies ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One request as a partner sees it."""

    method: str
    """The HTTP method, upper case."""
    path: str
    """The path, without the query."""
    headers: Mapping[str, str]
    """The request headers (a case-insensitive mapping from the server)."""
    body: bytes
    """The whole body."""

    @property
    def events(self) -> list[Any] | None:
        """The events carried: a `{"batch": [...]}` body's items, or the body itself; None if not JSON."""
        return parse_events(self.body)


def parse_events(body: bytes) -> list[Any] | None:
    """The events in a body as the engine sends them (`delivery.payload`); None if it is not JSON."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(document, dict) and isinstance(document.get("batch"), list):
        return list(document["batch"])
    if isinstance(document, dict):
        return [document]
    return None


@dataclass(frozen=True, slots=True)
class Answer:
    """Send a response."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None
    """The reason phrase; None lets the server pick the standard one."""
    close: bool = False
    """Close the connection after the response (for statuses a client reads past, such as 1xx)."""
    delay_s: float = 0.0
    """Wait this long before answering."""


@dataclass(frozen=True, slots=True)
class Reset:
    """Reset the connection (an RST), dropping anything unsent."""

    mid_response: bool = False
    """Send a response head and part of its body first."""


@dataclass(frozen=True, slots=True)
class Hang:
    """Read the request and never answer it."""

    accepted: bool = False
    """The partner took the request's events before going silent (its stats count them accepted)."""


Reply = Answer | Reset | Hang


def json_answer(status: int, document: Any, **headers: str) -> Answer:
    """An answer with a JSON body."""
    return Answer(status, json.dumps(document).encode(), {**JSON, **headers})


OK: Final = json_answer(200, {"success": True})


# -- profiles ------------------------------------------------------------------------------------


@dataclass
class Profile:
    """A partner's behaviour. Subclasses are dataclasses whose fields are the knobs."""

    name: ClassVar[str]
    """The name used in the config (`profile = "..."`)."""

    def decide(self, request: Request, now: float) -> Reply:
        """The reply to `request`, `now` seconds after the partner started."""
        raise NotImplementedError

    def check(self) -> list[tuple[str, str]]:
        """Problems with the knobs' values, as (knob, message) pairs."""
        return []


@dataclass
class Healthy(Profile):
    """Answers 200 `{"success": true}` to everything."""

    name: ClassVar[str] = "healthy"

    def decide(self, request: Request, now: float) -> Reply:
        return OK


@dataclass
class RateLimited(Profile):
    """A token bucket: `burst` requests at once, refilled at `rate` per second; 429 when empty.

    Like systems of record with well-designed low limits: the 429 says how
    long to wait (Retry-After, whole seconds rounded up, at least 1) and
    carries the X-RateLimit-* headers.
    """

    name: ClassVar[str] = "rate-limited"
    rate: float = 10.0
    """Requests per second refilled."""
    burst: int = 10
    """Bucket size: requests accepted at once after a quiet spell."""
    _tokens: float = field(default=-1.0, init=False, repr=False)
    _last: float = field(default=0.0, init=False, repr=False)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not self.rate > 0:
            problems.append(("rate", f"must be a positive number of requests per second, got {self.rate}"))
        if self.burst < 1:
            problems.append(("burst", f"must be at least 1, got {self.burst}"))
        return problems

    def decide(self, request: Request, now: float) -> Reply:
        if self._tokens < 0:  # first request: a full bucket
            self._tokens, self._last = float(self.burst), now
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        limit = {"X-RateLimit-Limit": f"{self.rate:g}"}
        if self._tokens >= 1:
            self._tokens -= 1
            return json_answer(
                200, {"success": True}, **limit, **{"X-RateLimit-Remaining": str(int(self._tokens))}
            )
        wait = max(1, math.ceil((1 - self._tokens) / self.rate))
        message = f"Rate limit of {self.rate:g} requests per second exceeded. Retry after {wait} s."
        return json_answer(
            429,
            {"type": "error.list", "errors": [{"code": "rate_limit_exceeded", "message": message}]},
            **limit,
            **{"X-RateLimit-Remaining": "0", "Retry-After": str(wait)},
        )


_SERVER_ERROR_BODIES: Final = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def server_error(status: int, rng: random.Random) -> Answer:
    """A 5xx the way they come in the field: JSON from the app, HTML from the proxy in front."""
    if status in _SERVER_ERROR_BODIES:
        title = f"{status} {_SERVER_ERROR_BODIES[status]}"
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1><hr>edge-proxy</body></html>"
        return Answer(status, page.encode(), HTML)
    request_id = f"{rng.getrandbits(64):016x}"
    message = f"Something went wrong on our end. Request id: {request_id}"
    return json_answer(status, {"error": "internal_error", "message": message})


@dataclass
class Flaky(Profile):
    """Answers a 5xx drawn from `statuses` with probability `error_rate`, else 200.

    With `fail_first`, the first that many requests carrying an event (by
    `messageId`) fail whatever `error_rate` draws: every event then needs
    retries, so what they recover is certain.
    """

    name: ClassVar[str] = "flaky"
    error_rate: float = 0.2
    """Share of requests that fail, from 0 to 1."""
    statuses: list[int] = field(default_factory=lambda: [500, 502, 503, 504])
    """The failure statuses, drawn uniformly."""
    fail_first: int = 0
    """Requests carrying an event that fail before it can succeed (0: only `error_rate` decides)."""
    rng: random.Random = field(default_factory=random.Random, repr=False, metadata={"knob": False})
    _tries: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not 0 <= self.error_rate <= 1:
            problems.append(("error_rate", f"must be a number from 0 to 1, got {self.error_rate}"))
        if not self.statuses or not all(500 <= s <= 599 for s in self.statuses):
            problems.append(("statuses", f"must be a non-empty list of 5xx statuses, got {self.statuses}"))
        if self.fail_first < 0:
            problems.append(("fail_first", f"must be 0 or more, got {self.fail_first}"))
        return problems

    def decide(self, request: Request, now: float) -> Reply:
        if self.fail_first and self._first_tries(request):
            return server_error(self.rng.choice(self.statuses), self.rng)
        if self.rng.random() < self.error_rate:
            return server_error(self.rng.choice(self.statuses), self.rng)
        return OK

    def _first_tries(self, request: Request) -> bool:
        """Whether an event of `request` has been carried fewer than `fail_first` times before."""
        ids = [e.get("messageId") for e in request.events or () if isinstance(e, dict)]
        tries = [self._tries.get(i, 0) for i in ids if isinstance(i, str)]
        for message_id in ids:
            if isinstance(message_id, str):
                self._tries[message_id] = self._tries.get(message_id, 0) + 1
        return any(n < self.fail_first for n in tries)


OUTAGE_MODES: Final = ("status", "reset", "refuse")


@dataclass
class Outage(Profile):
    """Healthy, except for the last `down_s` seconds of every `period_s`.

    While down it answers `status` (with Retry-After: the seconds left),
    resets each request (`mode = "reset"`), or, with `mode = "refuse"`, the
    server closes its port so connections are refused; a request on a
    connection opened before is reset.
    """

    name: ClassVar[str] = "outage"
    period_s: float = 60.0
    """Length of one up-then-down cycle."""
    down_s: float = 15.0
    """Seconds down at the end of each cycle."""
    mode: str = "status"
    """How it is down: "status", "reset" or "refuse"."""
    status: int = 503
    """The status answered while down in mode "status"."""

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not self.period_s > 0:
            problems.append(("period_s", f"must be a positive number of seconds, got {self.period_s}"))
        if not 0 < self.down_s <= self.period_s:
            problems.append(("down_s", f"must be more than 0 and at most period_s, got {self.down_s}"))
        if self.mode not in OUTAGE_MODES:
            problems.append(("mode", f"must be one of {', '.join(OUTAGE_MODES)}, got {self.mode!r}"))
        if not 100 <= self.status <= 599:
            problems.append(("status", f"must be an HTTP status (100-599), got {self.status}"))
        return problems

    def down_for(self, now: float) -> float:
        """Seconds until the current outage ends; 0 while up."""
        into = now % self.period_s
        up_s = self.period_s - self.down_s
        return self.period_s - into if into >= up_s else 0.0

    def next_change(self, now: float) -> float:
        """When the partner next goes down or comes back up (seconds since it started)."""
        cycle_start = now - now % self.period_s
        down_at = cycle_start + self.period_s - self.down_s
        return down_at if now < down_at else cycle_start + self.period_s

    def decide(self, request: Request, now: float) -> Reply:
        left = self.down_for(now)
        if not left:
            return OK
        if self.mode != "status":
            return Reset()
        page = b"<html><body><h1>Down for maintenance</h1><p>We'll be back shortly.</p></body></html>"
        return Answer(self.status, page, {**HTML, "Retry-After": str(max(1, math.ceil(left)))})


_EXPIRED_CHALLENGE: Final = 'Bearer error="invalid_token", error_description="The access token has expired"'


def _authorized(request: Request, valid_token: str) -> bool:
    return bool(valid_token) and request.headers.get("Authorization", "") == f"Bearer {valid_token}"


@dataclass
class ExpiredCredentials(Profile):
    """Answers 401: the access token expired (unless it is `valid_token`: then 200)."""

    name: ClassVar[str] = "expired-credentials"
    valid_token: str = ""
    """A bearer token that is accepted; empty: none is."""

    def decide(self, request: Request, now: float) -> Reply:
        if _authorized(request, self.valid_token):
            return OK
        message = "The access token has expired. Reconnect the integration to issue a new one."
        return json_answer(
            401,
            {"error": {"status": 401, "code": "token_expired", "message": message}},
            **{"WWW-Authenticate": _EXPIRED_CHALLENGE},
        )


@dataclass
class Forbidden(Profile):
    """Answers 403: the credential lacks the scope (unless it is `valid_token`: then 200)."""

    name: ClassVar[str] = "forbidden"
    valid_token: str = ""
    """A bearer token that is accepted; empty: none is."""

    def decide(self, request: Request, now: float) -> Reply:
        if _authorized(request, self.valid_token):
            return OK
        detail = "This API key does not have the events:write scope for this account."
        return json_answer(
            403, {"errors": [{"status": "403", "code": "forbidden", "title": "Forbidden", "detail": detail}]}
        )


#: The seed's event-name rule.
SEED_EVENT_PATTERN: Final = "^[0-9a-zA-Z_][0-9a-zA-Z _-]{0,39}$"


@dataclass
class Strict(Profile):
    """Validates every event; the first broken rule is answered 400, like the seed's regex error.

    Rules, in order, for event `i`: the body is JSON; each of
    `required_fields` is present; with `require_identity`, `userId` or
    `anonymousId` is; a track event's name matches `event_pattern`; no
    string in `properties`, `traits` or `context` is longer than
    `max_string_length`.
    """

    name: ClassVar[str] = "strict"
    event_pattern: str = SEED_EVENT_PATTERN
    """Regular expression a track event's name must match."""
    required_fields: list[str] = field(default_factory=lambda: ["type", "messageId", "timestamp"])
    """Top-level fields every event must have."""
    require_identity: bool = True
    """Whether `userId` or `anonymousId` is required."""
    max_string_length: int = 255
    """Longest string accepted in properties, traits and context."""

    def check(self) -> list[tuple[str, str]]:
        problems = []
        try:
            re.compile(self.event_pattern)
        except re.error as exc:
            problems.append(("event_pattern", f"not a regular expression: {exc}"))
        if self.max_string_length < 1:
            problems.append(("max_string_length", f"must be at least 1, got {self.max_string_length}"))
        return problems

    def decide(self, request: Request, now: float) -> Reply:
        problem = self.problem(request.events)
        return OK if problem is None else validation_error(problem)

    def problem(self, events: list[Any] | None) -> str | None:
        """The first broken rule, as the message a partner would give; None if all events pass."""
        if events is None:
            return "Request body is not a valid JSON object"
        for index, event in enumerate(events):
            param = f"custom_events[{index}]"
            if not isinstance(event, dict):
                return f"Param {param} must be an object"
            if (message := self._event_problem(event, param)) is not None:
                return message
        return None

    def _event_problem(self, event: dict[str, Any], param: str) -> str | None:
        for name in self.required_fields:
            if event.get(name) in (None, ""):
                return f"The parameter {param}[{name}] is required"
        if self.require_identity and not (event.get("userId") or event.get("anonymousId")):
            return f"One of the parameters {param}[userId] or {param}[anonymousId] is required"
        if event.get("type") == "track":
            event_name = event.get("event")
            if not isinstance(event_name, str) or not re.fullmatch(self.event_pattern, event_name):
                pattern = self.event_pattern
                return f"Value of param {param}[_eventName] must match regex pattern: /{pattern}/"
        for key in ("properties", "traits", "context"):
            if (where := _long_string(event.get(key), f"{param}[{key}]", self.max_string_length)) is not None:
                return f"Value of param {where} must be at most {self.max_string_length} characters long"
        return None


def _long_string(value: Any, where: str, limit: int) -> str | None:
    """The path of the first string longer than `limit` inside `value`, if any."""
    if isinstance(value, str):
        return where if len(value) > limit else None
    items: Sequence[tuple[Any, Any]] = ()
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        if (found := _long_string(item, f"{where}[{key}]", limit)) is not None:
            return found
    return None


def validation_error(message: str) -> Answer:
    """The 400 of a strict partner, shaped like the seed's example."""
    return json_answer(
        400, {"error": {"message": f"(#100) {message}", "type": "InvalidParameterException", "code": 100}}
    )


@dataclass
class Batch(Profile):
    """A batch endpoint: one event, or up to `max_events` in a `{"batch": [...]}` body.

    A body over `max_bytes` is answered 413, a batch over `max_events` 400.
    """

    name: ClassVar[str] = "batch"
    max_events: int = 100
    """Most events accepted in one request."""
    max_bytes: int = 512_000
    """Largest body accepted, in bytes."""

    def check(self) -> list[tuple[str, str]]:
        return [
            (knob, f"must be at least 1, got {value}")
            for knob, value in (("max_events", self.max_events), ("max_bytes", self.max_bytes))
            if value < 1
        ]

    def decide(self, request: Request, now: float) -> Reply:
        if len(request.body) > self.max_bytes:
            message = f"A request body holds at most {self.max_bytes} bytes; got {len(request.body)}."
            return json_answer(413, {"error": {"code": "payload_too_large", "message": message}})
        events = request.events
        if events is None:
            return json_answer(
                400, {"error": {"code": "invalid_json", "message": "The body is not a JSON object."}}
            )
        if len(events) > self.max_events:
            message = f"A batch holds at most {self.max_events} events; got {len(events)}."
            return json_answer(400, {"error": {"code": "batch_too_large", "message": message}})
        return json_answer(200, {"success": True, "accepted": len(events)})


def wtf_statuses() -> list[int]:
    """The seed's "WTF webhook" statuses: 418, then every number from 1 to 101."""
    return [418, *range(1, 102)]


@dataclass
class Wtf(Profile):
    """A webhook that answers the statuses in `statuses` in turn (or at random), with a short body.

    The connection is closed after each answer: a client reads past an
    interim 1xx status waiting for a final one, which never comes.
    """

    name: ClassVar[str] = "wtf"
    statuses: list[int] = field(default_factory=wtf_statuses)
    """The statuses answered."""
    order: str = "cycle"
    """"cycle" through `statuses` in order, or draw them at "random"."""
    rng: random.Random = field(default_factory=random.Random, repr=False, metadata={"knob": False})
    _next: int = field(default=0, init=False, repr=False)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not self.statuses or not all(1 <= s <= 999 for s in self.statuses):
            problems.append(
                ("statuses", f"must be a non-empty list of numbers from 1 to 999, got {self.statuses}")
            )
        if self.order not in ("cycle", "random"):
            problems.append(("order", f"must be 'cycle' or 'random', got {self.order!r}"))
        return problems

    def decide(self, request: Request, now: float) -> Reply:
        if self.order == "random":
            status = self.rng.choice(self.statuses)
        else:
            status, self._next = self.statuses[self._next % len(self.statuses)], self._next + 1
        if status == 418:
            return Answer(418, b"I'm a teapot", TEXT, reason="I'm a teapot", close=True)
        return Answer(status, b"ok", TEXT, reason="Whatever", close=True)


@dataclass
class ResetProfile(Profile):
    """Resets the connection instead of answering: before the response, or inside its body."""

    name: ClassVar[str] = "reset"
    when: str = "mid-response"
    """"before-response" or "mid-response"."""

    def check(self) -> list[tuple[str, str]]:
        if self.when not in ("before-response", "mid-response"):
            return [("when", f"must be 'before-response' or 'mid-response', got {self.when!r}")]
        return []

    def decide(self, request: Request, now: float) -> Reply:
        return Reset(mid_response=self.when == "mid-response")


@dataclass
class Timeout(Profile):
    """Reads the request and never answers, or answers 200 only after `answer_after_s`."""

    name: ClassVar[str] = "timeout"
    answer_after_s: float = 0.0
    """Seconds before answering 200; 0: never answer."""

    def check(self) -> list[tuple[str, str]]:
        if self.answer_after_s < 0:
            return [("answer_after_s", f"must be zero or more seconds, got {self.answer_after_s}")]
        return []

    def decide(self, request: Request, now: float) -> Reply:
        if self.answer_after_s > 0:
            return Answer(OK.status, OK.body, OK.headers, delay_s=self.answer_after_s)
        return Hang()


@dataclass
class AcceptThenTimeout(Profile):
    """Takes an event, then never answers: the first `times` requests carrying each event (by
    `messageId`) are accepted and left unanswered, later ones get 200. A sender that retries
    after its timeout delivers the event again, which is what a double delivery looks like.
    """

    name: ClassVar[str] = "accept-then-timeout"
    times: int = 1
    """Requests per event accepted without an answer before the partner answers 200."""
    _tries: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def check(self) -> list[tuple[str, str]]:
        if self.times < 0:
            return [("times", f"must be 0 or more, got {self.times}")]
        return []

    def decide(self, request: Request, now: float) -> Reply:
        ids = [e.get("messageId") for e in request.events or () if isinstance(e, dict)]
        tries = [self._tries.get(i, 0) for i in ids if isinstance(i, str)]
        for message_id in ids:
            if isinstance(message_id, str):
                self._tries[message_id] = self._tries.get(message_id, 0) + 1
        if any(n < self.times for n in tries):
            return Hang(accepted=True)
        return OK


PROFILES: Final[dict[str, type[Profile]]] = {
    profile.name: profile
    for profile in (
        Healthy,
        RateLimited,
        Flaky,
        Outage,
        ExpiredCredentials,
        Forbidden,
        Strict,
        Batch,
        Wtf,
        ResetProfile,
        Timeout,
        AcceptThenTimeout,
    )
}
