"""`deliverydash demo`: the whole product on one machine, with a compressed clock.

What runs, all on 127.0.0.1:

* the partner simulator (`deliverydash.partner_simulator`): a healthy webhook, a
  rate-limited system of record, a flaky and an outage-prone API, expired
  credentials, a strict validator, a batch API, a "WTF" webhook answering
  418 and codes 1-101, a webhook behind an expired TLS certificate and one
  that never answers;
* the engine (`delivery.engine`: tracking API, SQLite queue, workers,
  exporter) with three workspaces whose destinations point at those
  partners, its retry schedule compressed `time_scale` times (by default
  120: the seed's 4 hours of retries in 2 minutes; auth alerts and probes
  likewise);
* the real `segment-analytics-python` client sending a stream of events to
  the three workspaces' sources, some of them breaking partners' rules.

It waits until every delivery has a final outcome, stops the engine the
ordinary way (so the exporter writes the last records), and prints the
seed-style day report and the funnel, computed from the real attempt log,
and the notifications the engine raised.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from deliverydash.demo_harness import DemoError, EngineThread, hour_floor

#: The seed's schedule, compressed by the time scale: (key, seconds at scale 1).
SCHEDULE = (
    ("retry_window_s", 14_400),
    ("backoff_base_s", 30),
    ("backoff_max_s", 3_600),
)
ALERT_SCHEDULE = (("disable_after_s", 1_800), ("probe_interval_s", 300))


@dataclass(frozen=True)
class Workspace:
    """A customer: one source and the destinations its events fan out to."""

    id: str
    write_key: str
    share: int
    """Of every ten events sent, how many come from this workspace."""
    destinations: tuple[tuple[str, str, str], ...]
    """(destination id, integration, partner name)."""


#: (name, profile, knobs): the partners the demo's destinations point at.
PARTNERS: tuple[tuple[str, str, Mapping[str, Any]], ...] = (
    ("hooks", "healthy", {"latency_s": 0.01}),
    ("records", "rate-limited", {"rate": 10, "burst": 10}),
    ("mailer", "flaky", {"error_rate": 0.15, "seed": 3}),
    ("tickets", "outage", {"period_s": 20, "down_s": 6, "mode": "status", "status": 503}),
    ("ads", "expired-credentials", {}),
    ("bulk", "batch", {"max_events": 1000}),
    ("homemade", "wtf", {}),
    ("legacy", "healthy", {"tls": "expired"}),
    ("stuck", "timeout", {"answer_after_s": 0}),
)
WORKSPACES = (
    Workspace(
        "acme",
        "wk_demo_acme",
        6,
        (
            ("acme-hook", "webhook", "hooks"),
            ("acme-crm", "crm-records", "records"),
            ("acme-ads", "ads-conversions", "ads"),
        ),
    ),
    Workspace(
        "globex",
        "wk_demo_globex",
        3,
        (
            ("globex-email", "email-campaigns", "mailer"),
            ("globex-warehouse", "warehouse-stream", "bulk"),
            ("globex-tickets", "support-tickets", "tickets"),
        ),
    ),
    Workspace(
        "initech",
        "wk_demo_initech",
        1,
        (
            ("initech-hook", "webhook", "homemade"),
            ("initech-legacy", "webhook", "legacy"),
            ("initech-slow", "webhook", "stuck"),
        ),
    ),
)
#: The workspace of the i-th event is ROUND[i % 10]: most traffic goes to the healthier customers.
ROUND = tuple(index for index, workspace in enumerate(WORKSPACES) for _ in range(workspace.share))
USERS = ("ada", "grace", "alan", "edsger", "barbara", "donald", "margaret", "ken")


def partners_document() -> dict[str, Any]:
    """The partner simulator's config for the demo, on free ports."""
    partners = []
    for name, profile, knobs in PARTNERS:
        partners.append({"name": name, "profile": profile, "port": 0, **knobs})
    return {"control_port": 0, "partners": partners}


def engine_document(
    data_dir: Path, urls: Mapping[str, str], ca_file: Path, time_scale: float
) -> dict[str, Any]:
    """The engine's config: the three workspaces, their destinations, the compressed schedule."""
    engine: dict[str, Any] = {
        "data_dir": str(data_dir.resolve()),
        "allow_private_targets": True,
        "ca_bundle": str(ca_file),
        "max_attempts": 10,
        "request_timeout_s": 2,
        "export_interval_s": 1,
        "shutdown_grace_s": 2,
    }
    engine.update({key: seconds / time_scale for key, seconds in SCHEDULE})
    alerts: dict[str, Any] = {"disable_after_failures": 25}
    alerts.update({key: seconds / time_scale for key, seconds in ALERT_SCHEDULE})
    sources, destinations = [], []
    for workspace in WORKSPACES:
        source = f"{workspace.id}-web"
        sources.append({"id": source, "workspace": workspace.id, "write_key": workspace.write_key})
        for destination_id, integration, partner in workspace.destinations:
            destination: dict[str, Any] = {
                "id": destination_id,
                "source": source,
                "integration": integration,
                "url": urls[partner],
            }
            if integration != "webhook":
                destination["credential"] = f"demo-credential-{destination_id}"
            destinations.append(destination)
    return {"engine": engine, "alerts": alerts, "sources": sources, "destinations": destinations}


def send_stream(host: str, events: int, seconds: float, progress: Callable[[int], object]) -> None:
    """`events` calls spread over about `seconds`, shared by the workspaces, with the real client.

    Every tenth track call is anonymous and every seventh has a name the
    strict integrations rewrite, so the prechecks have work.
    """
    from segment.analytics.client import Client

    clients = [Client(w.write_key, host=host, sync_mode=True, max_retries=3, timeout=10) for w in WORKSPACES]
    started = time.monotonic()
    for i in range(events):
        client = clients[ROUND[i % len(ROUND)]]
        user = USERS[i % len(USERS)]
        email = f"{user}@example.com"
        if i % 10 == 0:
            client.identify(user_id=user, traits={"email": email, "plan": "pro" if i % 20 else "free"})
        elif i % 10 == 5:
            client.track(anonymous_id=f"anon-{i}", event="Page Scrolled", properties={"depth": i % 100})
        else:
            name = "Order Completed!" if i % 7 == 0 else "Order Completed"
            client.track(
                user_id=user, event=name, properties={"email": email, "order_id": f"o-{i}", "revenue": 9.99}
            )
        progress(1)
        # Pace the stream: outages and rate limits only show over time.
        ahead = started + seconds * (i + 1) / events - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


@dataclass(frozen=True)
class LiveDemoResult:
    events: int
    jobs: int
    unsettled: int
    start: dt.datetime
    end: dt.datetime
    report: dict[str, Any]
    funnel: pl.DataFrame
    notifications: list[Any]
    partner_stats: dict[str, Any]


def run_live_demo(
    data_dir: Path,
    events: int,
    *,
    time_scale: float = 120,
    send_s: float = 30,
    timeout_s: float | None = None,
) -> LiveDemoResult:
    """Run the whole demo; every server and thread is stopped before this returns."""
    from tqdm import tqdm

    from delivery.config import parse_config
    from deliverydash.partner_simulator.config import parse_partners
    from deliverydash.partner_simulator.servers import partners_in_thread
    from ingest.notifications import read_notifications
    from queries import Scope, api, connect

    partners = parse_partners(partners_document(), "demo partners")
    # Each event fans out to its workspace's destinations (three each).
    jobs = sum(len(WORKSPACES[ROUND[i % len(ROUND)]].destinations) for i in range(events))
    window_s = SCHEDULE[0][1] / time_scale
    timeout_s = timeout_s if timeout_s is not None else send_s + window_s + 60
    started = dt.datetime.now(dt.UTC)
    with partners_in_thread(partners.partners, control_port=0) as running:
        ca_file = running.certificates.write_ca(Path(data_dir) / "demo-partners-ca.pem")
        urls = {name: running.url(name) for name, _, _ in PARTNERS}
        config = parse_config(engine_document(Path(data_dir), urls, ca_file, time_scale), "demo config")
        engine = EngineThread(config)
        print(
            f"Engine on {engine.url}; {len(PARTNERS)} simulated partners; {len(WORKSPACES)} workspaces; "
            f"retry window {window_s:g} s (the seed's 4 h, {time_scale:g}x faster); "
            f"attempt log under {Path(data_dir) / 'attempts'}",
            file=sys.stderr,
        )
        engine.start()
        unsettled = jobs
        try:
            with tqdm(total=events, desc="events sent", unit=" events", file=sys.stderr) as bar:
                send_stream(engine.url, events, send_s, bar.update)
            unsettled = engine.wait_until_settled(jobs, timeout_s, poll_s=0.2)
        finally:
            engine.stop()
        stats = {name: running.stats(name) for name, _, _ in PARTNERS}
    if engine.error is not None:
        raise DemoError(f"the engine failed: {engine.error!r}")

    start = hour_floor(started)
    end = hour_floor(dt.datetime.now(dt.UTC)) + dt.timedelta(hours=1)
    with connect(data_dir) as log:
        report = api.day_report(log, Scope.all(), start, end).row(0, named=True)
        funnel = api.funnel(log, Scope.all(), start, end)
    # The data directory outlives a run, and so does a disabled destination: show this
    # run's notifications and any still open from an earlier one.
    notifications = [
        n for n in read_notifications(data_dir, state="all") if n.created_at >= started or n.state == "open"
    ]
    return LiveDemoResult(events, jobs, unsettled, start, end, report, funnel, notifications, stats)


def render(result: LiveDemoResult) -> str:
    """The seed-style report, the funnel and the notifications, as terminal text."""
    from deliverydash.day_report import render_report

    lines = [
        render_report(
            result.report,
            result.start.date(),
            f"all demo workspaces, {result.start:%H:%M} to {result.end:%H:%M} UTC",
        )
    ]
    received = int(result.report["events_received"])
    if received > result.jobs:
        lines.append(f"(these hours also hold {received - result.jobs:,} deliveries of earlier demo runs)")
    lines.append("Delivery funnel (events)")
    for row in result.funnel.iter_rows(named=True):
        lines.append(f"  {row['stage']:<30}{int(row['events']):>10,}{row['pct']:>9.2f}%")
    lines.append("")
    lines.append(f"Notifications: raised in this run, or still open ({len(result.notifications)})")
    for note in result.notifications:
        where = f"{note.workspace_id}/{note.destination_id}"
        lines.append(f"  {note.created_at:%H:%M:%S} {note.kind:<13} {where}: {note.message}")
    return "\n".join(lines) + "\n"
