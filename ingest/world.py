"""The simulated world: integrations, workspaces, sources and destinations.

Everything here is drawn once from a seed and describes behaviour in
"world units" (events per second at a destination, requests per second a
partner allows) that do not depend on how many attempts are simulated, so a
2-million-attempt day and a 100-million-attempt day tell the same story.

Integration names are descriptive and invented: nothing here claims to be a
real vendor's API.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: (category, share of catalog, batch max events, rate limit req/s, is a system of record)
CATEGORIES: tuple[tuple[str, float, int, float, bool], ...] = (
    ("crm", 0.12, 1, 8.0, True),
    ("email", 0.12, 1, 10.0, True),
    ("support", 0.08, 1, 6.0, True),
    ("marketing-automation", 0.08, 1, 10.0, True),
    ("analytics", 0.14, 100, 200.0, False),
    ("warehouse", 0.06, 500, 100.0, False),
    ("advertising", 0.12, 50, 50.0, False),
    ("attribution", 0.06, 1, 50.0, False),
    ("push", 0.06, 1, 100.0, False),
    ("sms", 0.04, 1, 20.0, True),
    ("experimentation", 0.06, 20, 100.0, False),
    ("personalization", 0.06, 1, 50.0, False),
)
_WORDS = [
    "aurora", "basalt", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo",
    "juniper", "kestrel", "lumen", "meridian", "nimbus", "onyx", "prairie", "quartz", "ripple",
    "summit", "tundra", "umber", "vertex", "willow", "xenon", "yarrow", "zephyr",
]  # fmt: skip

#: Seconds a batching destination waits for more events before sending.
LINGER_S = 5.0

#: Segment call types and how often they are sent.
EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
EVENT_TYPE_WEIGHTS = (0.70, 0.15, 0.10, 0.03, 0.015, 0.005)

#: Track event names. The last ones break the strict partners' name rule
#: (/^[0-9a-zA-Z_][0-9a-zA-Z _-]{0,39}$/), as real tracking plans do.
EVENT_NAMES = (
    "Order Completed",
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Signed Up",
    "Signed In",
    "Page Scrolled",
    "Video Played",
    "Cart Viewed",
    "Subscription Renewed",
    "Trial Started",
    "Feature Used",
    "Search Performed",
    "Coupon Applied",
    "Payment Failed",
    "Invite Sent",
    "Checkout Step 2: Payment (v2)",
    "Added to cart!",
    "Viewed product page - mobile web experience v3",
)
EVENT_NAME_WEIGHTS = (
    0.09,
    0.16,
    0.10,
    0.07,
    0.05,
    0.09,
    0.08,
    0.05,
    0.06,
    0.03,
    0.03,
    0.05,
    0.05,
    0.02,
    0.02,
    0.02,
    0.015,
    0.01,
    0.005,
)
#: Indices of names a strict partner rejects.
INVALID_NAME_INDICES = np.array([16, 17, 18])


@dataclass(frozen=True, slots=True)
class Knobs:
    """Calibration of the world against the seed's day (see docs/simulation.md)."""

    auth_broken_share: float = 0.053
    """Share of request volume at destinations whose credentials are wrong or expire today."""
    strict_share: float = 0.35
    """Share of request volume at partners that reject event names their API does not allow."""
    outage_share: float = 0.08
    """Share of request volume at partners that have an outage of 20-120 minutes in the day."""
    webhook_weird_share: float = 0.06
    """Share of webhook volume at endpoints answering TLS errors, 418, 3xx, 404 or codes 1-101."""
    dead_host_share: float = 0.0012
    """Share of request volume at hosts that do not resolve or refuse connections all day."""
    over_limit_share: float = 0.0102
    """Share of request volume at destinations whose customer is over the partner's limit all day."""
    burst_429_rate: float = 0.0005
    """Per-request chance of a 429 in a burst at other destinations of systems of record."""
    down_backend_share: float = 0.0004
    """Share of request volume at backends that answer 502/503 all day."""
    server_error_rate: float = 0.002
    """Typical per-request chance of a 5xx from a healthy partner."""
    network_error_rate: float = 0.001
    """Per-request chance of a flaky-network failure (reset, refused, DNS timeout)."""
    timeout_rate: float = 0.001
    """Per-request chance of a read timeout."""


@dataclass(frozen=True)
class World:
    """Arrays describing integrations (prefix `int_`) and destinations (prefix `dest_`)."""

    int_name: np.ndarray
    int_batch_max: np.ndarray
    int_rate_limit: np.ndarray
    int_strict: np.ndarray
    int_latency_ms: np.ndarray
    int_server_error_rate: np.ndarray
    int_outage_start_s: np.ndarray
    int_outage_len_s: np.ndarray
    int_retry_after: np.ndarray
    dest_id: np.ndarray
    dest_workspace: np.ndarray
    dest_source: np.ndarray
    workspace_ids: np.ndarray
    source_ids: np.ndarray
    dest_workspace_index: np.ndarray
    dest_source_index: np.ndarray
    dest_integration: np.ndarray
    dest_rate: np.ndarray
    dest_limit_ratio: np.ndarray
    dest_burst_429: np.ndarray
    dest_auth_since_s: np.ndarray
    dest_auth_code: np.ndarray
    dest_fixed_code: np.ndarray
    dest_fixed_transport: np.ndarray

    @property
    def n_destinations(self) -> int:
        return int(self.dest_id.size)


#: Transport failures a broken endpoint answers with all day, and the TLS ones.
FIXED_TRANSPORT = (
    "",
    "CERT_HAS_EXPIRED",
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    "DEPTH_ZERO_SELF_SIGNED_CERT",
    "ENOTFOUND",
    "ECONNREFUSED",
    "EHOSTUNREACH",
)


def _integrations(rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
    shares = np.array([c[1] for c in CATEGORIES])
    category = rng.choice(len(CATEGORIES), size=count - 1, p=shares / shares.sum())
    # The head of the popularity curve cycles through the categories in a fixed
    # order, so which kinds of partner carry most traffic does not hang on the seed.
    head = min(2 * len(CATEGORIES), count - 1)
    category[:head] = np.tile(np.arange(len(CATEGORIES)), 2)[:head]
    names = ["webhook"]
    used: set[str] = set()
    for cat in category:
        while True:
            name = f"{CATEGORIES[cat][0]}-{rng.choice(_WORDS)}"
            if name not in used:
                break
            name = f"{name}-{rng.integers(2, 9)}"
            if name not in used:
                break
        used.add(name)
        names.append(name)
    batch = np.array([1] + [CATEGORIES[c][2] for c in category])
    limit = np.array([50.0] + [CATEGORIES[c][3] * rng.lognormal(0, 0.4) for c in category])
    strict = np.zeros(count, dtype=bool)
    latency = np.concatenate([[180.0], rng.lognormal(np.log(150), 0.5, count - 1)])
    server_rate = rng.lognormal(0, 0.5, count)
    retry_after = rng.random(count) < 0.5
    return {
        "int_name": np.array(names),
        "int_batch_max": batch,
        "int_rate_limit": limit,
        "int_strict": strict,
        "int_latency_ms": latency,
        "int_server_error_rate": server_rate,
        "int_retry_after": retry_after,
        "_is_record_system": np.array([False] + [CATEGORIES[c][4] for c in category]),
    }


def _pick_by_volume(
    rng: np.random.Generator, weights: np.ndarray, eligible: np.ndarray, share: float, cap: float = 0.0003
) -> np.ndarray:
    """Pick eligible items in random order until they carry `share` of all volume.

    Items bigger than `cap` of the volume are never picked, so one unlucky
    draw cannot swing the day.
    """
    total = weights.sum()
    candidates = np.flatnonzero(eligible & (weights < cap * total))
    order = rng.permutation(candidates)
    cumulative = np.cumsum(weights[order])
    chosen = order[: int(np.searchsorted(cumulative, share * total))]
    mask = np.zeros(weights.size, dtype=bool)
    mask[chosen] = True
    return mask


def build_world(
    seed: int = 7, knobs: Knobs | None = None, *, workspaces: int = 4_000, integrations: int = 200
) -> World:
    """Draw the world for `seed`.

    The draws happen in a fixed order (integrations, traffic, partners'
    troubles, broken credentials, odd endpoints, rate limits): the same seed
    always draws the same world, and the calibration (docs/simulation.md)
    holds for it.
    """
    knobs = knobs or Knobs()
    rng = np.random.default_rng(seed)
    ints = _integrations(rng, integrations)
    ints["int_server_error_rate"] = ints["int_server_error_rate"] * knobs.server_error_rate
    traffic = _traffic(rng, ints, workspaces, integrations)
    ints["int_strict"], outage_start, outage_len = _partner_troubles(rng, ints, traffic, knobs)
    auth = _broken_credentials(rng, traffic, knobs)
    odd = _odd_endpoints(rng, traffic, auth.broken, knobs)
    # For customers over a partner's limit: the limit over their mean request rate, so
    # 429s peak with the daily curve. Others only meet short bursts.
    record_system = ints["_is_record_system"][traffic.dest_int]
    over = _pick_by_volume(
        rng, traffic.requests, ~auth.broken & ~odd.unusable & record_system, knobs.over_limit_share
    )
    limit_ratio = np.where(over, rng.uniform(0.01, 0.08, traffic.dest_int.size), np.inf)
    burst_429 = knobs.burst_429_rate * np.where(record_system, 3.0, 0.3)

    source_ids = np.array([f"src_{i:05d}" for i in range(traffic.source_ws.size)])
    ws_ids = np.array([f"ws_{i:04d}" for i in range(workspaces)])
    return World(
        int_name=ints["int_name"],
        int_batch_max=ints["int_batch_max"],
        int_rate_limit=ints["int_rate_limit"],
        int_strict=ints["int_strict"],
        int_latency_ms=ints["int_latency_ms"],
        int_server_error_rate=ints["int_server_error_rate"],
        int_outage_start_s=outage_start,
        int_outage_len_s=outage_len,
        int_retry_after=ints["int_retry_after"],
        dest_id=np.array([f"dst_{i:05d}" for i in range(traffic.dest_int.size)]),
        dest_workspace=ws_ids[traffic.source_ws[traffic.dest_source]],
        dest_source=source_ids[traffic.dest_source],
        workspace_ids=ws_ids,
        source_ids=source_ids,
        dest_workspace_index=traffic.source_ws[traffic.dest_source],
        dest_source_index=traffic.dest_source,
        dest_integration=traffic.dest_int,
        dest_rate=traffic.dest_rate,
        dest_limit_ratio=limit_ratio,
        dest_burst_429=burst_429,
        dest_auth_since_s=auth.since,
        dest_auth_code=auth.code.astype(np.int16),
        dest_fixed_code=odd.code.astype(np.int16),
        dest_fixed_transport=odd.transport.astype(np.int8),
    )


@dataclass(frozen=True, slots=True)
class _Traffic:
    """Who sends what where: sources of workspaces, their destinations, and request rates."""

    source_ws: np.ndarray
    """Workspace index of each source."""
    dest_source: np.ndarray
    """Source index of each destination."""
    dest_int: np.ndarray
    """Integration index of each destination."""
    dest_rate: np.ndarray
    """Events/s each destination receives (mean over the day)."""
    mean_batch: np.ndarray
    """Events per request at each destination."""
    requests: np.ndarray
    """Requests/s each destination is sent."""


def _traffic(
    rng: np.random.Generator, ints: dict[str, np.ndarray], workspaces: int, integrations: int
) -> _Traffic:
    # Workspaces: a heavy-tailed event volume, 1-3 sources, each feeding 1-6 destinations.
    ws_volume = rng.lognormal(0.0, 1.6, workspaces)
    n_sources = rng.integers(1, 4, workspaces)
    source_ws = np.repeat(np.arange(workspaces), n_sources)
    source_volume = (
        ws_volume[source_ws]
        * rng.dirichlet(np.ones(3), workspaces)[source_ws, np.concatenate([np.arange(k) for k in n_sources])]
    )
    n_dest = np.minimum(rng.geometric(0.4, source_ws.size), 6)
    dest_source = np.repeat(np.arange(source_ws.size), n_dest)
    popularity = 1.0 / np.arange(1, integrations + 1) ** 1.1
    popularity[0] *= 1.3  # the generic webhook is the most popular destination
    dest_int = rng.choice(integrations, size=dest_source.size, p=popularity / popularity.sum())
    # Each destination subscribes to part of its source's events (events/s, mean over the day).
    dest_rate = source_volume[dest_source] * rng.uniform(0.3, 1.0, dest_source.size) * 2.0
    # Events arriving within a 5-second linger ride in one request, up to the partner's cap.
    mean_batch = np.clip(dest_rate * LINGER_S, 1.0, ints["int_batch_max"][dest_int])
    return _Traffic(source_ws, dest_source, dest_int, dest_rate, mean_batch, dest_rate / mean_batch)


def _partner_troubles(
    rng: np.random.Generator, ints: dict[str, np.ndarray], traffic: _Traffic, knobs: Knobs
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(strict, outage start s, outage length s) per integration; the webhook (0) has neither."""
    integrations = ints["int_name"].size
    int_requests = np.bincount(traffic.dest_int, weights=traffic.requests, minlength=integrations)
    partner = np.arange(integrations) > 0
    # Strict partners take one event per request (a rejected batch would hide which event was bad).
    strict = _pick_by_volume(
        rng, int_requests, partner & (ints["int_batch_max"] == 1), knobs.strict_share, cap=0.03
    )
    has_outage = _pick_by_volume(rng, int_requests, partner, knobs.outage_share, cap=0.01)
    outage_start = np.where(has_outage, rng.uniform(0, 86_400 - 7_200, integrations), -1.0)
    outage_len = np.where(has_outage, rng.uniform(1_200, 7_200, integrations), 0.0)
    return strict, outage_start, outage_len


@dataclass(frozen=True, slots=True)
class _BrokenCredentials:
    broken: np.ndarray
    """Destinations whose credentials are wrong or expire today."""
    since: np.ndarray
    """Second of the day they broke (-1: before the day; inf: never)."""
    code: np.ndarray
    """What the partner answers then: 401 or 403."""


def _broken_credentials(rng: np.random.Generator, traffic: _Traffic, knobs: Knobs) -> _BrokenCredentials:
    is_webhook = traffic.dest_int == 0
    # Credentials break at destinations that take one event per request, so the
    # share of auth failures is the same counted in requests or in events.
    single = traffic.mean_batch < 1.5
    broken = _pick_by_volume(
        rng,
        traffic.requests,
        single & (~is_webhook | (rng.random(is_webhook.size) < 0.3)),
        knobs.auth_broken_share,
    )
    # Half were broken before the day started; the rest expire during it.
    since = np.where(
        broken,
        np.where(rng.random(broken.size) < 0.5, -1.0, rng.uniform(0, 86_400, broken.size)),
        np.inf,
    )
    code = np.where(rng.random(broken.size) < 0.7, 401, 403)
    return _BrokenCredentials(broken, since, code)


@dataclass(frozen=True, slots=True)
class _OddEndpoints:
    code: np.ndarray
    """The status a destination answers all day (0: none fixed)."""
    transport: np.ndarray
    """The `FIXED_TRANSPORT` failure it answers all day (0: none)."""
    unusable: np.ndarray
    """Destinations that never deliver: odd webhooks, dead hosts, backends down all day."""


def _odd_endpoints(
    rng: np.random.Generator, traffic: _Traffic, auth_broken: np.ndarray, knobs: Knobs
) -> _OddEndpoints:
    """The "WTF webhooks" (TLS errors, 418, 3xx, 404, codes 1-101), dead hosts and down backends."""
    requests, size = traffic.requests, traffic.dest_int.size
    is_webhook = traffic.dest_int == 0
    single = traffic.mean_batch < 1.5
    code = np.zeros(size, dtype=np.int16)
    transport = np.zeros(size, dtype=np.int8)
    weird = _pick_by_volume(
        rng,
        requests,
        is_webhook & ~auth_broken,
        knobs.webhook_weird_share * requests[is_webhook].sum() / requests.sum(),
    )
    kinds = rng.choice(5, size=size, p=[0.45, 0.25, 0.1, 0.1, 0.1])
    # Nonstandard answers go round the codes 1..101 and 418 in turn, so every one
    # of them is seen, as the seed saw them.
    nonstandard = np.flatnonzero(weird & (kinds == 0))
    codes = np.append(np.arange(1, 102), 418)
    code[rng.permutation(nonstandard)] = codes[np.arange(nonstandard.size) % codes.size]
    code = np.where(weird & (kinds == 2), rng.choice([301, 302, 307], size), code)
    code = np.where(weird & (kinds == 3), 404, code)
    code = np.where(weird & (kinds == 4), rng.choice([405, 413, 410], size), code)
    transport = np.where(weird & (kinds == 1), rng.integers(1, 4, size), transport)
    dead = _pick_by_volume(rng, requests, single & ~auth_broken & ~weird, knobs.dead_host_share)
    transport = np.where(dead, rng.choice([4, 5, 6], size, p=[0.6, 0.3, 0.1]), transport)
    # Backends down all day behind a proxy that answers 502/503: retried to the end, then dropped.
    down = _pick_by_volume(rng, requests, single & ~auth_broken & ~weird & ~dead, knobs.down_backend_share)
    code = np.where(down, rng.choice([502, 503], size), code)
    return _OddEndpoints(code, transport, weird | dead | down)
