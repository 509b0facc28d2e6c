"""Simulate a day of delivery attempts, vectorized, through the attempt-log writer.

Jobs are drawn hour by hour from the world (`ingest.world`): a destination
in proportion to its request volume, a time on the daily curve, the events
it carries. Then every job is played through the retry policy, one
*attempt round* at a time over all live jobs at once (at most
`MAX_ATTEMPTS` rounds), so the cost is a few numpy passes per hour, not a
Python loop per row.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest import ids
from ingest.bodies import TRANSPORT_MESSAGES, Template, templates_for
from ingest.files import ATTEMPTS_DIR
from ingest.rollup import ROLLUPS, rollup_root
from ingest.schema import ATTEMPT_SCHEMA, EVENT_TYPE, UTC_MICROS, conform
from ingest.taxonomy import ErrorClass, Outcome, classify_status, classify_transport
from ingest.world import (
    EVENT_NAME_WEIGHTS,
    EVENT_NAMES,
    EVENT_TYPE_WEIGHTS,
    EVENT_TYPES,
    FIXED_TRANSPORT,
    INVALID_NAME_INDICES,
    LINGER_S,
    Knobs,
    World,
    build_world,
)
from ingest.writer import write_partitioned


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The schedule the simulated engine follows (the seed's: 4 h, 10 attempts)."""

    window_s: float = 14_400.0
    max_attempts: int = 10
    backoff_base_s: float = 30.0
    backoff_max_s: float = 3_600.0
    jitter: float = 0.2
    request_timeout_ms: float = 10_000.0


@dataclass
class SimulationResult:
    """What a simulation wrote."""

    attempts: int = 0
    jobs: int = 0
    events: int = 0
    files: list[Path] = field(default_factory=list)


def diurnal(t_s: np.ndarray) -> np.ndarray:
    """Relative traffic at second-of-day `t_s` (mean 1, peak at 17:00 UTC)."""
    return 1.0 + 0.55 * np.sin(2 * np.pi * (t_s / 3_600.0 - 11.0) / 24.0)


# Status-code and transport lookups built once from the taxonomy, so the
# simulator and the engine classify with the same table.
_CLASSES = list(ErrorClass)
_STATUS_CLASS = np.zeros(1_000, dtype=np.int8)
_STATUS_RETRYABLE = np.zeros(1_000, dtype=bool)
for _code in range(1, 1_000):
    _c = classify_status(_code)
    _STATUS_CLASS[_code] = _CLASSES.index(_c.error_class)
    _STATUS_RETRYABLE[_code] = _c.retryable
# The fixed answers of broken endpoints first (world.py's indices), then the flaky ones.
TRANSPORT = (*FIXED_TRANSPORT, "ECONNRESET", "ECONNABORTED", "EAI_AGAIN", "ETIMEDOUT")
_T_CLASS = np.array(
    [0] + [_CLASSES.index(classify_transport(c).error_class) for c in TRANSPORT[1:]], dtype=np.int8
)
_T_RETRYABLE = np.array([False] + [classify_transport(c).retryable for c in TRANSPORT[1:]])
_T_ECONNRESET, _T_ETIMEDOUT = TRANSPORT.index("ECONNRESET"), TRANSPORT.index("ETIMEDOUT")
_FLAKY_NETWORK = np.array(
    [
        TRANSPORT.index(c)
        for c in ("ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EAI_AGAIN", "EHOSTUNREACH", "ENOTFOUND")
    ]
)
_FLAKY_NETWORK_P = np.array([0.45, 0.2, 0.1, 0.12, 0.05, 0.08])
_FIVE_XX = np.array([500, 502, 503, 504, 501])
_FIVE_XX_P = np.array([0.3, 0.32, 0.24, 0.13, 0.01])


class _Rows:
    """Columns of attempt rows, gathered round by round."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, **columns: np.ndarray) -> None:
        for name, values in columns.items():
            self.parts.setdefault(name, []).append(values)

    def select(self, index: np.ndarray) -> None:
        """Keep the rows `index` (a mask or positions over all rows so far), in that order."""
        self.parts = {name: [np.concatenate(parts)[index]] for name, parts in self.parts.items()}

    def __len__(self) -> int:
        return sum(part.size for part in self.parts.get("job", []))

    def column(self, name: str) -> np.ndarray:
        return np.concatenate(self.parts[name])


def _exactly(rows: _Rows, n_jobs: int, target: int, rng: np.random.Generator) -> np.ndarray:
    """Pick whole jobs, in random order, whose attempts add up to exactly `target`.

    Returns the kept jobs' mask. Jobs are taken while they fit; the last few
    rows (fewer than one job's attempts) are filled from the remaining jobs
    that still fit, most of which make a single attempt.
    """
    per_job = np.bincount(rows.column("job"), minlength=n_jobs)
    order = rng.permutation(n_jobs)
    fits = np.cumsum(per_job[order]) <= target
    keep = np.zeros(n_jobs, dtype=bool)
    keep[order[fits]] = True
    gap = target - int(per_job[keep].sum())
    for job in order[~fits]:
        if gap == 0:
            break
        if per_job[job] <= gap:
            keep[job] = True
            gap -= int(per_job[job])
    if gap:
        raise RuntimeError(f"drew too few jobs to fill {target} attempts exactly ({gap} short)")
    rows.select(keep[rows.column("job")])
    return keep


class _Hour:
    """One hour's jobs and their attempts."""

    def __init__(
        self, world: World, knobs: Knobs, policy: RetryPolicy, rng: np.random.Generator, day_start_us: int
    ) -> None:
        self.world, self.knobs, self.policy, self.rng = world, knobs, policy, rng
        self.day_start_us = day_start_us
        w = world
        self.d_int = w.dest_integration
        self.d_batch_cap = w.int_batch_max[self.d_int]
        self.d_webhook = self.d_int == 0

    def mean_batch(self, t_s: float) -> np.ndarray:
        return np.clip(self.world.dest_rate * diurnal(np.array(t_s)) * LINGER_S, 1.0, self.d_batch_cap)

    def draw_jobs(self, hour: int, n_jobs: int) -> dict[str, np.ndarray]:
        rng, w = self.rng, self.world
        t_mid = hour * 3_600.0 + 1_800.0
        batch = self.mean_batch(t_mid)
        weight = w.dest_rate / batch
        dest = rng.choice(w.n_destinations, size=n_jobs, p=weight / weight.sum())
        mean = batch[dest]
        count = np.minimum(1 + rng.poisson(mean - 1.0), self.d_batch_cap[dest]).astype(np.int32)
        received = hour * 3_600.0 + rng.random(n_jobs) * 3_600.0
        linger = np.where(count > 1, rng.uniform(0.0, 5.0, n_jobs), 0.0)
        first_start = received + linger + rng.lognormal(np.log(0.15), 0.8, n_jobs)
        return {"dest": dest, "count": count, "received": received, "first_start": first_start}

    def draw_events(self, jobs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rng = self.rng
        count = jobs["count"]
        n = int(count.sum())
        job_of_event = np.repeat(np.arange(count.size), count)
        etype = rng.choice(len(EVENT_TYPES), size=n, p=EVENT_TYPE_WEIGHTS).astype(np.int8)
        name = rng.choice(len(EVENT_NAMES), size=n, p=EVENT_NAME_WEIGHTS).astype(np.int8)
        is_track = etype == 0
        invalid = is_track & np.isin(name, INVALID_NAME_INDICES)
        # The index, inside the request, of the first event a strict partner rejects.
        position = np.arange(n) - np.repeat(np.cumsum(count) - count, count)
        first_bad = np.full(count.size, np.iinfo(np.int32).max, dtype=np.int64)
        np.minimum.at(first_bad, job_of_event[invalid], position[invalid])
        event_bytes = rng.lognormal(np.log(650), 0.45, n)
        return {
            "type": etype,
            "name": np.where(is_track, name, -1).astype(np.int8),
            "bad_index": first_bad,
            "bytes": (np.bincount(job_of_event, weights=event_bytes, minlength=count.size) + 60).astype(
                np.int32
            ),
        }

    def respond(
        self, dest: np.ndarray, t: np.ndarray, bad_index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Status code (0 = none) and transport code index for each request."""
        rng, w, k = self.rng, self.world, self.knobs
        n = dest.size
        d_int = self.d_int[dest]
        status = np.zeros(n, dtype=np.int16)
        transport = np.zeros(n, dtype=np.int8)
        decided = np.zeros(n, dtype=bool)

        fixed_t = w.dest_fixed_transport[dest]
        transport[fixed_t > 0] = fixed_t[fixed_t > 0]
        decided |= fixed_t > 0
        auth = ~decided & (t >= w.dest_auth_since_s[dest])
        status[auth] = w.dest_auth_code[dest][auth]
        decided |= auth
        fixed_c = ~decided & (w.dest_fixed_code[dest] > 0)
        status[fixed_c] = w.dest_fixed_code[dest][fixed_c]
        decided |= fixed_c

        # Transient trouble: rate limits over the partner's limit, 5xx (more in an
        # outage), a flaky network, read timeouts.
        p429 = np.clip(1.0 - w.dest_limit_ratio[dest] / diurnal(t), w.dest_burst_429[dest], 0.97)
        in_outage = (t >= w.int_outage_start_s[d_int]) & (
            t < w.int_outage_start_s[d_int] + w.int_outage_len_s[d_int]
        )
        p5xx = np.where(in_outage, 0.7, w.int_server_error_rate[d_int])
        webhook = self.d_webhook[dest]
        pnet = np.where(webhook, 2.0, 0.5) * k.network_error_rate
        ptime = np.where(webhook, 3.0, 1.0) * k.timeout_rate
        u = rng.random(n)
        c1 = p429
        c2 = c1 + p5xx
        c3 = c2 + pnet
        c4 = c3 + ptime
        is429 = ~decided & (u < c1)
        is5xx = ~decided & (u >= c1) & (u < c2)
        isnet = ~decided & (u >= c2) & (u < c3)
        istime = ~decided & (u >= c3) & (u < c4)
        status[is429] = 429
        status[is5xx] = rng.choice(_FIVE_XX, size=int(is5xx.sum()), p=_FIVE_XX_P)
        transport[isnet] = rng.choice(_FLAKY_NETWORK, size=int(isnet.sum()), p=_FLAKY_NETWORK_P)
        # One in ten timeouts is the partner's own 408.
        status[istime] = np.where(rng.random(int(istime.sum())) < 0.1, 408, 0)
        transport[istime & (status == 0)] = _T_ETIMEDOUT
        decided |= is429 | is5xx | isnet | istime

        strict = w.int_strict[d_int] & (bad_index < np.iinfo(np.int32).max)
        rejected = ~decided & strict
        status[rejected] = np.where(d_int[rejected] % 5 == 0, 422, 400)
        decided |= rejected
        ok = ~decided
        status[ok] = rng.choice([200, 201, 202, 204], size=int(ok.sum()), p=[0.86, 0.04, 0.08, 0.02])
        return status, transport

    def latency(self, dest: np.ndarray, status: np.ndarray, transport: np.ndarray) -> np.ndarray:
        rng = self.rng
        base = self.world.int_latency_ms[self.d_int[dest]]
        ms = rng.lognormal(np.log(base), 0.6)
        ms = np.where(status == 429, ms * 0.3, ms)
        ms = np.where(status == 504, np.minimum(rng.lognormal(np.log(6_000), 0.3), 9_900), ms)
        fast = np.isin(transport, [TRANSPORT.index(c) for c in ("ENOTFOUND", "ECONNREFUSED")])
        ms = np.where(fast, rng.lognormal(np.log(3), 0.8), ms)
        ms = np.where(transport == TRANSPORT.index("EAI_AGAIN"), 5_000 + rng.random(ms.size) * 20, ms)
        ms = np.where(transport == TRANSPORT.index("EHOSTUNREACH"), rng.lognormal(np.log(3_000), 0.2), ms)
        ms = np.where((transport >= 1) & (transport <= 3), rng.lognormal(np.log(35), 0.4), ms)
        ms = np.where(transport == _T_ECONNRESET, ms * 0.5, ms)
        ms = np.where(transport == _T_ETIMEDOUT, self.policy.request_timeout_ms + rng.random(ms.size) * 5, ms)
        return ms.astype(np.float32)

    def play(self, jobs: dict[str, np.ndarray], events: dict[str, np.ndarray]) -> _Rows:
        """Run every job through the retry policy; collect one row per request."""
        rng, p = self.rng, self.policy
        rows = _Rows()
        alive = np.arange(jobs["dest"].size)
        t = jobs["first_start"].copy()
        # Each job's first request's class, carried on all its rows (`first_error_class`).
        first_eclass = np.zeros(alive.size, dtype=np.int8)
        for attempt in range(1, p.max_attempts + 1):
            dest = jobs["dest"][alive]
            status, transport = self.respond(dest, t, events["bad_index"][alive])
            duration = self.latency(dest, status, transport)
            has_status = status > 0
            eclass = np.where(has_status, _STATUS_CLASS[status], _T_CLASS[transport])
            retryable = np.where(has_status, _STATUS_RETRYABLE[status], _T_RETRYABLE[transport])
            retry_after = self.retry_after(dest, status)
            delay = np.minimum(p.backoff_base_s * 2.0 ** (attempt - 1), p.backoff_max_s)
            delay = delay * rng.uniform(1 - p.jitter, 1 + p.jitter, alive.size)
            delay = np.where(np.isnan(retry_after), delay, np.maximum(delay, retry_after))
            next_t = t + duration / 1_000.0 + delay
            in_window = next_t - jobs["received"][alive] <= p.window_s
            delivered = eclass == _CLASSES.index(ErrorClass.NONE)
            again = retryable & in_window & (attempt < p.max_attempts)
            outcome = np.select([delivered, again, retryable], [0, 1, 3], default=2).astype(np.int8)
            if attempt == 1:
                first_eclass[alive] = eclass
            rows.add(
                job=alive,
                attempt=np.full(alive.size, attempt, dtype=np.int16),
                t=t,
                duration=duration,
                status=status,
                transport=transport,
                eclass=eclass,
                first_eclass=first_eclass[alive],
                retryable=retryable,
                outcome=outcome,
                retry_after=retry_after,
                next_t=np.where(again, next_t, np.nan),
            )
            alive, t = alive[again], next_t[again]
            if alive.size == 0:
                break
        return rows

    def retry_after(self, dest: np.ndarray, status: np.ndarray) -> np.ndarray:
        asks = self.world.int_retry_after[self.d_int[dest]] & ((status == 429) | (status == 503))
        seconds = self.rng.choice([1.0, 2.0, 5.0, 10.0, 30.0, 60.0], size=dest.size)
        return np.where(asks, seconds, np.nan).astype(np.float32)


_OUTCOMES = [Outcome.DELIVERED, Outcome.RETRY, Outcome.FAILED, Outcome.DROPPED]


def _dictionary(
    indices: np.ndarray, values: Sequence[str] | np.ndarray, null: np.ndarray | None = None
) -> pa.Array:
    """Strings picked from `values` by index (NULL where `null`), dictionary-encoded."""
    codes = pa.array(np.maximum(indices, 0), type=pa.int32(), mask=null)
    return pa.DictionaryArray.from_arrays(codes, pa.array(values, pa.string()))


def _variable_parts(
    var: str, rng: np.random.Generator, rows: _Rows, sel: np.ndarray, bad_index: np.ndarray, dest: np.ndarray
) -> pa.Array:
    n = sel.size
    if var == "request_id":
        hex_chars = np.frombuffer(b"0123456789abcdef", np.uint8)[rng.integers(0, 16, (n, 12), dtype=np.uint8)]
        prefix = np.frombuffer(b"req_", np.uint8)
        return ids.fixed_width_strings(np.hstack([np.tile(prefix, (n, 1)), hex_chars]))
    if var == "seconds":
        ra = rows.column("retry_after")[sel]
        return pa.array(np.where(np.isnan(ra), 30, ra).astype(np.int64)).cast(pa.string())
    if var == "index":
        return pa.array(np.clip(bad_index, 0, 10_000)).cast(pa.string())
    return pa.array(10_000 + dest.astype(np.int64) * 7_919 % 90_000).cast(pa.string())


def _bodies(
    rows: _Rows, job_dest: np.ndarray, world: World, events: dict[str, np.ndarray], rng: np.random.Generator
) -> pa.Array:
    """Response bodies for non-2xx responses, one template per (integration, status)."""
    job_int = world.dest_integration[job_dest]
    status = rows.column("status")
    n = status.size
    has_body = (status > 0) & ((status < 200) | (status >= 300))
    job = rows.column("job")
    pieces: list[pa.Array] = []
    positions: list[np.ndarray] = []
    for code in np.unique(status[has_body]):
        options = templates_for(int(code))
        at = np.flatnonzero(status == code)
        choice = job_int[job[at]] % len(options)
        for k, template in enumerate(options):
            sel = at[choice == k]
            if sel.size == 0:
                continue
            pieces.append(
                _render(template, sel, rows, events["bad_index"][job[sel]], job_dest[job[sel]], rng)
            )
            positions.append(sel)
    index = np.full(n, -1, dtype=np.int64)
    if positions:
        order = np.concatenate(positions)
        index[order] = np.arange(order.size)
    values = pa.concat_arrays(pieces) if pieces else pa.array([], pa.string())
    return values.take(pa.array(index, mask=index < 0))


def _render(
    template: Template,
    sel: np.ndarray,
    rows: _Rows,
    bad_index: np.ndarray,
    dest: np.ndarray,
    rng: np.random.Generator,
) -> pa.Array:
    if not template.var:
        return pa.array([template.prefix] * sel.size, pa.string())
    middle = _variable_parts(template.var, rng, rows, sel, bad_index, dest)
    return pc.binary_join_element_wise(template.prefix, middle, template.suffix, "")


def _to_table(
    hour: _Hour,
    jobs: dict[str, np.ndarray],
    events: dict[str, np.ndarray],
    rows: _Rows,
    rng: np.random.Generator,
) -> pa.Table:
    """Contract rows in the writer's order: hour, then destination (which sorts like
    workspace, destination), then start time."""
    w = hour.world
    t = rows.column("t")
    # One int64 key, (hour: 10 bits, destination: 21, microsecond of the hour: 32),
    # sorts faster than a lexsort of three.
    key = (t // 3_600.0).astype(np.int64) << 53 | jobs["dest"][rows.column("job")].astype(np.int64) << 32
    rows.select(np.argsort(key | (t % 3_600.0 * 1e6).astype(np.int64)))
    job = rows.column("job")
    dest = jobs["dest"][job]
    us = hour.day_start_us
    started_us = us + (rows.column("t") * 1e6).astype(np.int64)
    received_us = us + (jobs["received"] * 1e6).astype(np.int64)
    next_t = rows.column("next_t")
    next_us = us + np.nan_to_num(next_t * 1e6).astype(np.int64)

    count = jobs["count"]
    job_ids = ids.id_chars(received_us // 1_000, rng)
    status = rows.column("status")
    transport = rows.column("transport")
    code_labels = [str(c) for c in range(1_000)] + list(TRANSPORT)
    error_code = np.where(status > 0, status.astype(np.int32), 1_000 + transport.astype(np.int32))
    message_idx = np.array(
        [list(TRANSPORT_MESSAGES).index(c) if c in TRANSPORT_MESSAGES else 0 for c in TRANSPORT]
    )[transport]
    columns = {
        "attempt_id": ids.ids_for(started_us // 1_000, rng),
        "job_id": ids.fixed_width_strings(job_ids[job]),
        "attempt": rows.column("attempt"),
        # Dictionaries of distinct values: Parquet keeps an Arrow dictionary as
        # it is, and one with repeated values would be written plain.
        "workspace_id": _dictionary(w.dest_workspace_index[dest], w.workspace_ids),
        "source_id": _dictionary(w.dest_source_index[dest], w.source_ids),
        "destination_id": _dictionary(dest, w.dest_id),
        "integration": _dictionary(w.dest_integration[dest], w.int_name),
        "event_count": count[job],
        "events": _events(job, count, events, rng),
        "received_at": pa.array(received_us[job], type=pa.int64()).cast(UTC_MICROS),
        "started_at": pa.array(started_us, type=pa.int64()).cast(UTC_MICROS),
        "duration_ms": rows.column("duration"),
        "status_code": pa.array(status, mask=status == 0),
        "error_class": _dictionary(rows.column("eclass"), [c.value for c in _CLASSES]),
        "error_code": _dictionary(error_code, code_labels),
        "retryable": rows.column("retryable"),
        "outcome": _dictionary(rows.column("outcome"), [o.value for o in _OUTCOMES]),
        "retry_after_s": pa.array(rows.column("retry_after"), from_pandas=True),
        "next_attempt_at": pa.array(next_us, type=pa.int64(), mask=np.isnan(next_t)).cast(UTC_MICROS),
        "request_bytes": events["bytes"][job],
        "response_body": _bodies(rows, jobs["dest"], w, events, rng),
        "error_message": _dictionary(message_idx, list(TRANSPORT_MESSAGES.values()), null=transport == 0),
        "first_error_class": _dictionary(rows.column("first_eclass"), [c.value for c in _CLASSES]),
        "replay_of": pa.nulls(len(started_us), pa.string()),  # a simulated day has no replays
    }
    return conform(pa.table({f.name: columns[f.name] for f in ATTEMPT_SCHEMA}))


def _events(
    job: np.ndarray, count: np.ndarray, events: dict[str, np.ndarray], rng: np.random.Generator
) -> pa.ListArray:
    """The `events` list of each row: its job's events, repeated on every retry.

    Gathered as numpy arrays (message ids as raw bytes) and formatted once per
    row, which is several times faster than taking from an Arrow list array.
    """
    job_start = np.cumsum(count) - count
    row_count = count[job]
    row_offsets = np.concatenate([[0], np.cumsum(row_count)]).astype(np.int32)
    n = int(row_offsets[-1])
    # Position of each row's k-th event among the job's events.
    index = np.arange(n) - np.repeat(row_offsets[:-1] - job_start[job], row_count)
    raw_ids = np.frombuffer(rng.bytes(int(count.sum()) * 16), dtype=np.uint8).reshape(-1, 16)
    name = events["name"][index]
    struct = pa.StructArray.from_arrays(
        [
            ids.uuid4_strings(raw_ids[index]),
            _dictionary(events["type"][index], EVENT_TYPES).cast(pa.string()),
            _dictionary(name, EVENT_NAMES, null=name < 0).cast(pa.string()),
        ],
        fields=list(EVENT_TYPE),
    )
    return pa.ListArray.from_arrays(pa.array(row_offsets), struct)


class SimulationExists(Exception):
    """The data directory already holds a simulated day for this date."""


def simulation_prefix(date: dt.date) -> str:
    """File-name prefix of a simulated day's files (retries spill into the next day's folder)."""
    return f"sim-{date.isoformat()}-"


def simulation_files(data_dir: str | os.PathLike[str], date: dt.date) -> list[Path]:
    return list(Path(data_dir, ATTEMPTS_DIR).glob(f"date=*/hour=*/{simulation_prefix(date)}*.parquet"))


def remove_simulation(data_dir: str | os.PathLike[str], date: dt.date) -> int:
    """Delete the files of the simulated day `date`; return how many."""
    files = simulation_files(data_dir, date)
    attempts = Path(data_dir, ATTEMPTS_DIR)
    for path in files:
        path.unlink()
        for rollup in ROLLUPS:  # rollups sit at the same relative path under rollups/<name>/
            (rollup_root(data_dir, rollup) / path.relative_to(attempts)).unlink(missing_ok=True)
    return len(files)


def simulate_day(
    attempts: int,
    data_dir: str | os.PathLike[str],
    *,
    date: dt.date = dt.date(2026, 11, 27),
    seed: int = 7,
    knobs: Knobs | None = None,
    policy: RetryPolicy | None = None,
    progress: Callable[[int], None] | None = None,
    replace: bool = False,
    workers: int | None = None,
) -> SimulationResult:
    """Write exactly `attempts` attempt records for `date` under `data_dir`.

    Refuses (`SimulationExists`) when that day was simulated there before,
    unless `replace`, which removes the earlier files first: appending a
    second copy of a day would double every figure. Hours are played by
    `workers` processes (default: one per core); the day does not depend on
    how many.
    """
    if replace:
        remove_simulation(data_dir, date)
    elif simulation_files(data_dir, date):
        raise SimulationExists(
            f"{Path(data_dir) / ATTEMPTS_DIR} already holds a simulated {date}; "
            "replace it or pick another date"
        )
    knobs, policy = knobs or Knobs(), policy or RetryPolicy()
    day_start_us = int(dt.datetime.combine(date, dt.time(), dt.UTC).timestamp() * 1_000_000)
    hour_share = diurnal(np.arange(24) * 3_600.0 + 1_800.0)
    cumulative = np.round(attempts * np.cumsum(hour_share) / hour_share.sum()).astype(np.int64)
    targets = np.diff(cumulative, prepend=0)
    tasks = [
        _HourTask(
            hour, int(target), seed, knobs, policy, day_start_us, str(data_dir), simulation_prefix(date)
        )
        for hour, target in enumerate(targets)
        if target > 0
    ]
    workers = workers or min(os.cpu_count() or 1, len(tasks))
    result = SimulationResult()
    if workers <= 1 or attempts < _PARALLEL_FROM:
        done: Iterable[SimulationResult] = map(_simulate_hour, tasks)
    else:
        # Hours are independent (each has its own random stream), so processes
        # can play them side by side and the day is the same for any `workers`.
        # fork, not spawn: spawn re-imports the caller's __main__, which a
        # script without a main guard cannot survive.
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
        done = _as_completed(pool, tasks)
    for part in done:
        result.attempts += part.attempts
        result.jobs += part.jobs
        result.events += part.events
        result.files.extend(part.files)
        if progress:
            progress(part.attempts)
    result.files.sort()
    return result


#: Below this many attempts, starting worker processes costs more than it saves.
_PARALLEL_FROM = 1_000_000


def _as_completed(pool: ProcessPoolExecutor, tasks: list[_HourTask]) -> Iterator[SimulationResult]:
    # Largest hours first: the small night hours then fill in at the end,
    # instead of the peak hour running alone on one core while the other idles.
    by_size = sorted(tasks, key=lambda task: task.attempts, reverse=True)
    with pool:
        futures = [pool.submit(_simulate_hour, task) for task in by_size]
        for future in as_completed(futures):
            yield future.result()


@dataclass(frozen=True)
class _HourTask:
    hour: int
    attempts: int
    seed: int
    knobs: Knobs
    policy: RetryPolicy
    day_start_us: int
    data_dir: str
    prefix: str


_SPARE_JOBS = 64


@cache
def _world(seed: int, knobs: Knobs) -> World:
    return build_world(seed, knobs)


def _simulate_hour(task: _HourTask) -> SimulationResult:
    """Draw the jobs received in one hour, play them, and publish exactly `task.attempts` rows."""
    # The world is the seed's; each day's traffic has a stream of its own, so the days of a month
    # simulated with one seed share customers, destinations and partners but not their events.
    rng = np.random.default_rng([task.seed, task.day_start_us // 86_400_000_000, task.hour])
    hour_sim = _Hour(_world(task.seed, task.knobs), task.knobs, task.policy, rng, task.day_start_us)
    # Every job makes at least one attempt, so `attempts` jobs always cover the
    # target, and a few spares fill the last rows: whole jobs worth exactly
    # `attempts` rows are kept.
    jobs = hour_sim.draw_jobs(task.hour, task.attempts + _SPARE_JOBS)
    events = hour_sim.draw_events(jobs)
    rows = hour_sim.play(jobs, events)
    kept = _exactly(rows, jobs["dest"].size, task.attempts, rng)
    table = _to_table(hour_sim, jobs, events, rows, rng)
    files = write_partitioned(table, task.data_dir, presorted=True, prefix=task.prefix)
    return SimulationResult(len(rows), int(kept.sum()), int(jobs["count"][kept].sum()), files)
