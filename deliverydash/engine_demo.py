"""`deliverydash demo-engine`: the engine end to end on one machine, in one process.

Three simulated partners (`deliverydash.partner_simulator`) answer the way
real ones do:

* `healthy` answers 200;
* `flaky` answers 503 to the first request of each event and 200 to the retry;
* `expired-credentials` answers 401 with a JSON error body, every time.

The engine runs on a free loopback port in a background thread
(`deliverydash.demo_harness.EngineThread`). The real
`segment-analytics-python` client sends events to it from a few fake users;
once every delivery job has reached a final outcome (or the timeout passed)
the engine is stopped the ordinary way, so its exporter writes the last
attempt records, and the funnel and the per-destination table are read back
from the Parquet attempt log.

Everything listens on 127.0.0.1 only, and every thread and server started
here is stopped and joined before `run_demo` returns.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from delivery.config import Config, parse_config
from deliverydash.demo_harness import DemoError, EngineThread, hour_floor

WORKSPACE = "demo"
SOURCE = "demo-web"
WRITE_KEY = "wk_demo_web"
#: (destination id = partner name, profile, knobs): the three test destinations, in table order.
PARTNERS: tuple[tuple[str, str, Mapping[str, Any]], ...] = (
    ("healthy", "healthy", {}),
    ("flaky", "flaky", {"error_rate": 0, "fail_first": 1, "statuses": [503]}),
    ("expired-credentials", "expired-credentials", {}),
)
USERS = ("ada", "grace", "alan", "edsger", "barbara", "donald", "margaret", "ken")


def demo_config(data_dir: Path, urls: Mapping[str, str]) -> Config:
    """The engine's config: one source, the three destinations, quick retries."""
    return parse_config(
        {
            "engine": {
                "data_dir": str(data_dir.resolve()),
                "allow_private_targets": True,
                "backoff_base_s": 0.2,
                "backoff_max_s": 1,
                "export_interval_s": 0.5,
                "request_timeout_s": 5,
                "shutdown_grace_s": 2,
            },
            "sources": [{"id": SOURCE, "workspace": WORKSPACE, "write_key": WRITE_KEY}],
            "destinations": [
                {
                    "id": name,
                    "source": SOURCE,
                    "integration": "webhook",
                    "url": urls[name],
                    "headers": {"Authorization": "Bearer demo-token"},
                }
                for name, _, _ in PARTNERS
            ],
        },
        "demo-engine config",
    )


def send_events(host: str, count: int, progress: Callable[[int], object], senders: int = 4) -> None:
    """`count` track/identify/page calls from a few fake users, with the real Segment client.

    `senders` threads share the calls, each with its own client in sync mode,
    so every call has been accepted (and enqueued durably) when this returns.
    """
    from concurrent.futures import ThreadPoolExecutor

    def send(first: int) -> None:
        from segment.analytics.client import Client

        client = Client(WRITE_KEY, host=host, sync_mode=True, max_retries=3, timeout=10)
        for i in range(first, count, senders):
            user = USERS[i % len(USERS)]
            if i % 10 == 0:
                client.identify(
                    user_id=user, traits={"name": user.title(), "plan": "pro" if i % 20 else "free"}
                )
            elif i % 10 in (3, 7):
                client.page(
                    user_id=user, category="Docs", name="Quickstart", properties={"path": "/docs/start"}
                )
            else:
                client.track(
                    user_id=user,
                    event="Order Completed" if i % 3 else "Product Viewed",
                    properties={"order_id": f"o-{i}", "revenue": round(9.99 + i % 7, 2)},
                )
            progress(1)

    with ThreadPoolExecutor(max_workers=senders, thread_name_prefix="demo-client") as pool:
        for future in [pool.submit(send, first) for first in range(senders)]:
            future.result()


@dataclass(frozen=True)
class DemoResult:
    events: int
    jobs: int
    unsettled: int
    start: dt.datetime
    end: dt.datetime
    funnel: pl.DataFrame
    destinations: pl.DataFrame


def run_demo(data_dir: Path, events: int, timeout_s: float = 60) -> DemoResult:
    """Run the whole demo; every server and thread is stopped before this returns."""
    from tqdm import tqdm

    from deliverydash.partner_simulator.config import parse_partners
    from deliverydash.partner_simulator.servers import partners_in_thread
    from queries import api
    from queries.log import connect
    from queries.scope import Scope

    document = {"partners": [{"name": n, "profile": p, "port": 0, **knobs} for n, p, knobs in PARTNERS]}
    specs = parse_partners(document, "demo-engine partners").partners
    jobs = events * len(PARTNERS)
    started = dt.datetime.now(dt.UTC)
    unsettled = jobs
    with partners_in_thread(specs, control_port=None) as partners:
        urls = {name: partners.url(name) for name, _, _ in PARTNERS}
        engine = EngineThread(demo_config(data_dir, urls))
        print(
            f"Engine on {engine.url}, simulated partners {', '.join(urls.values())} "
            f"({', '.join(urls)}); attempt log under {Path(data_dir) / 'attempts'}",
            file=sys.stderr,
        )
        engine.start()
        try:
            with tqdm(total=events, desc="events sent", unit=" events", file=sys.stderr) as bar:
                send_events(engine.url, events, bar.update)
            unsettled = engine.wait_until_settled(jobs, timeout_s)
        finally:
            engine.stop()
    if engine.error is not None:
        raise DemoError(f"the engine failed: {engine.error!r}")

    start = hour_floor(started)
    end = hour_floor(dt.datetime.now(dt.UTC)) + dt.timedelta(hours=1)
    with connect(data_dir) as log:
        scope = Scope.workspace(WORKSPACE)
        funnel = api.funnel(log, scope, start, end)
        destinations = api.by_destination(log, scope, start, end)
    return DemoResult(events, jobs, unsettled, start, end, funnel, destinations)


def render(result: DemoResult) -> str:
    """The funnel and the per-destination table, as terminal text."""
    lines = [
        f"Delivery funnel from real attempts: workspace {WORKSPACE}, "
        f"{result.start:%Y-%m-%d %H:%M} to {result.end:%H:%M} UTC",
        f"({result.events:,} events sent x {len(PARTNERS)} destinations = {result.jobs:,} deliveries)",
        "",
        f"{'stage':<32}{'events':>12}{'share':>10}",
    ]
    for row in result.funnel.iter_rows(named=True):
        lines.append(f"{row['stage']:<32}{int(row['events']):>12,}{row['pct']:>9.2f}%")
    received = int(result.funnel.filter(pl.col("kind") == "received")["events"].sum())
    if received > result.jobs:
        lines.append(f"(these hours also hold {received - result.jobs:,} deliveries of earlier demo runs)")
    lines += [
        "",
        f"{'destination':<22}{'requests':>10}{'received':>10}{'1st try':>10}{'eventually':>12}"
        f"{'failed':>8}{'dropped':>9}{'retrying':>10}{'1st try %':>11}{'eventually %':>14}",
    ]
    for row in result.destinations.iter_rows(named=True):
        lines.append(
            f"{row['destination_id']:<22}{row['requests']:>10,}{row['events_received']:>10,}"
            f"{row['delivered_first_attempt']:>10,}{row['delivered_eventually']:>12,}{row['failed']:>8,}"
            f"{row['dropped']:>9,}{row['still_retrying']:>10,}{row['first_attempt_pct']:>10.2f}%"
            f"{row['eventually_pct']:>13.2f}%"
        )
    return "\n".join(lines) + "\n"
