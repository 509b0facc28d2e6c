"""The `deliverydash` command: one entry point, a subcommand per job.

Each subcommand imports what it needs when it runs, so `--help` is instant
and a subcommand never pays for another's dependencies.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from queries.log import AttemptLog
    from queries.scope import Scope

DEFAULT_DATA_DIR = os.environ.get("DELIVERYDASH_DATA_DIR", "data")

#: The seed's day: (label, day_report column, seed figure in %).
SEED_EVENT_FIGURES = (
    ("delivered on the first attempt", "delivered_first_attempt", 92.6),
    ("delivered eventually (10 attempts / 4 h)", "delivered_eventually", 93.9),
    ("  of which thanks to retries", "delivered_after_retries", 1.3),
    ("never arrive: terminal errors", "failed", 5.5),
    ("dropped: retries ran out", "dropped", None),
    ("skipped: never sent", "skipped", None),
    ("still retrying", "still_retrying", None),
)
SEED_REQUEST_FIGURES = (
    ("answered 401 or 403", "auth_requests", 3.8),
    ("answered 400", "status_400_requests", 0.51),
    ("answered 429", "status_429_requests", 7.3),
    ("answered 5xx", "status_5xx_requests", 1.3),
    ("failed at the network layer", "network_requests", 1.1),
    ("timed out", "timeout_requests", None),
    ("TLS errors", "tls_requests", None),
    ("nonstandard status (WTF webhooks)", "nonstandard_requests", None),
)


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def cmd_simulate(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from ingest.simulate import simulate_day, simulation_files

    if simulation_files(args.data_dir, args.date) and not args.replace:
        raise CommandError(
            f"{Path(args.data_dir) / 'attempts'} already holds a simulated {args.date} "
            "(pass --replace to overwrite it, or --date for another day)"
        )
    print(
        f"Simulating {args.attempts:,} delivery attempts on {args.date} (seed {args.seed}) "
        f"into {Path(args.data_dir) / 'attempts'}",
        file=sys.stderr,
    )
    with tqdm(total=args.attempts, unit=" attempts", unit_scale=True, file=sys.stderr) as bar:
        result = simulate_day(
            args.attempts,
            args.data_dir,
            date=args.date,
            seed=args.seed,
            progress=bar.update,
            replace=args.replace,
        )
    print(
        f"Wrote {result.attempts:,} attempts for {result.jobs:,} jobs carrying {result.events:,} events "
        f"in {len(result.files)} Parquet files.",
        file=sys.stderr,
    )


def cmd_serve(args: argparse.Namespace) -> None:
    import logging

    from delivery.config import ConfigError, load_config
    from delivery.engine import run

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CommandError(f"the engine did not start: {exc}") from None
    for warning in config.warnings:
        print(f"deliverydash serve: warning: {warning}", file=sys.stderr)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(config, args.host, args.port)


def cmd_demo_engine(args: argparse.Namespace) -> None:
    from deliverydash.engine_demo import DemoError, render, run_demo

    try:
        result = run_demo(Path(args.data_dir), args.events, timeout_s=args.timeout)
    except DemoError as exc:
        raise CommandError(str(exc)) from None
    print(render(result), end="")
    if result.unsettled:
        raise CommandError(
            f"{result.unsettled:,} of {result.jobs:,} deliveries "
            f"had no final outcome after {args.timeout:g} s"
        )


def cmd_demo(args: argparse.Namespace) -> None:
    from deliverydash.engine_demo import DemoError
    from deliverydash.live_demo import render, run_live_demo

    try:
        result = run_live_demo(
            Path(args.data_dir), args.events, time_scale=args.time_scale, send_s=args.send_seconds
        )
    except DemoError as exc:
        raise CommandError(str(exc)) from None
    print(render(result), end="")
    if result.unsettled:
        raise CommandError(f"{result.unsettled:,} of {result.jobs:,} deliveries had no final outcome in time")


def _scope(args: argparse.Namespace) -> Scope:
    from queries.scope import Scope

    if args.workspace:
        return Scope.workspace(args.workspace)
    if args.destination:
        return Scope.destination(args.destination)
    if args.integration:
        return Scope.integration(args.integration)
    return Scope.all()


def _latest_day(log: AttemptLog) -> dt.date | None:
    frame = log.sql("SELECT max(timezone('UTC', received_at))::DATE AS day FROM attempts")
    return frame.item(0, 0) if frame.height else None


def cmd_report(args: argparse.Namespace) -> None:
    from queries import api
    from queries.log import connect

    with connect(args.data_dir) as log:
        day = args.date or _latest_day(log)
        if day is None:
            raise CommandError(
                f"no attempt records under {args.data_dir!s}/attempts yet: run "
                "`deliverydash simulate --attempts 2000000` or start the engine first"
            )
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        scope = _scope(args)
        end = start + dt.timedelta(days=1)
        row = api.day_report(log, scope, start, end).row(0, named=True)
        failures = api.destination_failures(log, scope, start, end)
    label = scope.kind.value if scope.value is None else f"{scope.kind.value} {scope.value}"
    print(render_report(row, day, label) + render_failures(failures, row["events_received"]), end="")


def render_failures(failures: pl.DataFrame, received: int) -> str:
    """The events that never arrived, by outcome and error class: what the customer can act on."""
    import polars as pl

    lines: list[str] = [""]
    totals = failures.group_by("outcome", "error_class").agg(pl.col("events").sum())
    for outcome, title in (
        ("failed", "FAILED, by error class (terminal: fix and resend)"),
        ("dropped", "DROPPED, by error class of the last attempt (retries ran out)"),
        ("skipped", "SKIPPED, by reason (never sent)"),
    ):
        rows = totals.filter(pl.col("outcome") == outcome).sort("events", descending=True)
        if rows.is_empty():
            continue
        lines.append(f"{title:<60}{'events':>16}{'share':>10}")
        for error_class, events in rows.select("error_class", "events").iter_rows():
            share = 100 * events / received if received else 0.0
            lines.append(f"  {error_class:<58}{events:>16,}{share:>9.2f}%")
        lines.append("")
    return "\n".join(lines) if len(lines) > 1 else ""


def render_report(row: dict[str, float], day: dt.date, scope: str) -> str:
    """The day report as a terminal table, next to the seed's figures."""
    lines = [f"Day of HTTP responses: {day} UTC, scope {scope}", ""]

    def section(
        title: str, total_label: str, total: float, figures: Sequence[tuple[str, str, float | None]]
    ) -> None:
        lines.append(f"{title:<44}{'count':>16}{'share':>10}{'seed':>9}")
        lines.append(f"{total_label:<44}{int(total):>16,}{'100.00%':>10}")
        for label, column, seed in figures:
            seed_text = f"{seed:.2f}%" if seed is not None else ""
            lines.append(f"{label:<44}{int(row[column]):>16,}{row[column + '_pct']:>9.2f}%{seed_text:>9}")
        lines.append("")

    section(
        "EVENTS (jobs received this day, by events)",
        "events received",
        row["events_received"],
        SEED_EVENT_FIGURES,
    )
    section("REQUESTS (started this day)", "requests", row["requests"], SEED_REQUEST_FIGURES)
    return "\n".join(lines).rstrip() + "\n"


def cmd_sql(args: argparse.Namespace) -> None:
    import polars as pl

    from queries.errors import QueryError
    from queries.log import connect

    with (
        connect(args.data_dir) as log,
        pl.Config(tbl_rows=args.max_rows, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=200),
    ):
        if args.query:
            try:
                print(log.sql(args.query))
            except QueryError as exc:
                raise CommandError(str(exc)) from None
            return
        _sql_prompt(log, QueryError)


def _sql_prompt(log: AttemptLog, query_error: type[Exception]) -> None:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    print(
        "Query the attempt log: the view is `attempts` (docs/sql.md). End a query with ';'. Ctrl-D quits.",
        file=sys.stderr,
    )
    buffer: list[str] = []
    while True:
        try:
            line = input("deliverydash> " if not buffer else "          ...> ")
        except EOFError:
            print(file=sys.stderr)
            return
        except KeyboardInterrupt:
            buffer.clear()
            print(file=sys.stderr)
            continue
        buffer.append(line)
        text = "\n".join(buffer).strip()
        if not text.endswith(";"):
            continue
        buffer.clear()
        try:
            print(log.sql(text.rstrip(";")))
        except query_error as exc:
            print(f"error: {exc}", file=sys.stderr)


def _dashboard_secret(config_path: str | None) -> str | None:
    from app.access import resolve_secret
    from app.settings import SettingsError, dashboard_settings

    try:
        settings = dashboard_settings(config_path)
        return resolve_secret(settings.secret)
    except (SettingsError, ValueError) as exc:
        raise CommandError(str(exc)) from None


def cmd_dashboard(args: argparse.Namespace) -> None:
    import app

    secret = _dashboard_secret(args.config)
    data_dir = Path(args.data_dir).resolve()
    if not (data_dir / "attempts").is_dir():
        print(
            f"deliverydash dashboard: no attempt log under {data_dir} yet; the dashboard will say so "
            "until `deliverydash simulate` or the engine writes one",
            file=sys.stderr,
        )
    env = dict(os.environ, DELIVERYDASH_DATA_DIR=str(data_dir))
    if secret is not None:
        env["DELIVERYDASH_SECRET"] = secret
    access = (
        "links from `deliverydash link` required" if secret else "no secret: open to anyone who reaches it"
    )
    print(
        f"Dashboard on http://{args.host}:{args.port}/ over {data_dir} ({access}). Ctrl-C stops it.",
        file=sys.stderr,
    )
    entry = Path(app.__file__).parent / "main.py"
    command = [
        sys.executable, "-m", "streamlit", "run", str(entry),
        "--server.port", str(args.port),
        "--server.address", args.host,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    sys.stdout.flush()
    sys.stderr.flush()
    # Streamlit owns the process from here: its own Ctrl-C handling and exit status.
    os.execve(sys.executable, command, env)


def cmd_link(args: argparse.Namespace) -> None:
    import time

    from app.access import Viewer, ViewerKind, parse_ttl, sign

    secret = _dashboard_secret(args.config)
    if secret is None:
        raise CommandError(
            "no dashboard secret is set: set DELIVERYDASH_SECRET (16+ characters) or `secret` under "
            "[dashboard] in the config, for both `deliverydash link` and `deliverydash dashboard`"
        )
    try:
        ttl_s = parse_ttl(args.ttl)
    except ValueError as exc:
        raise CommandError(f"--ttl: {exc}") from None
    expires_at = int(time.time()) + ttl_s
    if args.workspace:
        viewer = Viewer(ViewerKind.WORKSPACE, args.workspace, expires_at)
    elif args.partner:
        viewer = Viewer(ViewerKind.PARTNER, args.partner, expires_at)
    else:
        viewer = Viewer(ViewerKind.ENGINEER, None, expires_at)
    expiry = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires_at))
    # Every viewer's home page (customer dashboard, partner page, day page) is the root.
    print(f"{args.base_url.rstrip('/')}/?token={sign(viewer, secret)}")
    print(f"grants: {viewer.label}; expires {expiry}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deliverydash",
        description="Deliver events to HTTP destinations reliably, and see how delivery went.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            default=DEFAULT_DATA_DIR,
            help="data root holding attempts/ (default: %(default)s, or $DELIVERYDASH_DATA_DIR)",
        )

    p = sub.add_parser(
        "serve",
        help="run the engine: Segment tracking API, durable queue, delivery workers",
        description="Accept events over Segment's HTTP tracking API and deliver them to every "
        "destination of their source, retrying for hours, with one attempt record per request "
        "in the Parquet log. Stops cleanly on SIGTERM or Ctrl-C.",
    )
    p.add_argument(
        "--config",
        default="deliverydash.toml",
        help="TOML config (default: %(default)s; see deliverydash.example.toml and docs/configuration.md)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "demo",
        help="the live demo: partner simulator, engine, a stream of events, then the report",
        description="Start simulated partners (healthy, rate-limited, flaky, outage, expired "
        "credentials, batch, WTF codes, expired TLS, never answering), run the engine with the "
        "seed's retry schedule compressed --time-scale times, send a stream of events to three "
        "workspaces with the real segment-analytics-python client, wait until every delivery has a "
        "final outcome, and print the seed-style report, the funnel and the notifications, all "
        "from the real attempt log under --data-dir.",
    )
    p.add_argument("--events", type=_positive_int, default=600, help="events to send (default: %(default)s)")
    p.add_argument(
        "--time-scale",
        type=float,
        default=120.0,
        help="how many times faster than the seed's schedule retries run: 120 puts 4 h of retries "
        "in 2 minutes (default: %(default)s)",
    )
    p.add_argument(
        "--send-seconds",
        type=float,
        default=30.0,
        help="spread the events over this many seconds (default: %(default)s)",
    )
    data_dir(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "demo-engine",
        help="run the engine against local test destinations and print the funnel",
        description="Start three loopback test destinations (healthy, flaky: 503 then 200, "
        "expired-credentials: 401), run the engine in-process, send events with the real "
        "segment-analytics-python client, wait until every delivery has a final outcome, and "
        "print the funnel and the per-destination table from the real attempt log.",
    )
    p.add_argument("--events", type=_positive_int, default=200, help="events to send (default: %(default)s)")
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for every delivery to settle (default: %(default)s)",
    )
    data_dir(p)
    p.set_defaults(func=cmd_demo_engine)

    p = sub.add_parser(
        "simulate",
        help="write a realistic simulated day of delivery attempts",
        description="Simulate a day of delivery attempts, calibrated to the seed study, "
        "into the partitioned Parquet attempt log.",
    )
    p.add_argument("--attempts", type=_positive_int, required=True, help="attempt records to write")
    p.add_argument("--date", type=_date, default=dt.date(2026, 11, 27), help="UTC day (default: %(default)s)")
    p.add_argument(
        "--seed", type=int, default=7, help="random seed of the simulated world (default: %(default)s)"
    )
    p.add_argument("--replace", action="store_true", help="overwrite this date's earlier simulation")
    data_dir(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "report",
        help="print the day report (events and requests) in the terminal",
        description="The seed-style day report computed from the attempt log.",
    )
    p.add_argument("--date", type=_date, help="UTC day (default: the latest day in the log)")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--workspace", help="only this workspace")
    scope.add_argument("--destination", help="only this destination")
    scope.add_argument("--integration", help="only this integration")
    data_dir(p)
    p.set_defaults(func=cmd_report)

    from deliverydash.partner_simulator import cli as partners_cli

    p = sub.add_parser(
        "partners",
        help="run simulated partner APIs on loopback (rate limits, outages, 401s, TLS failures, ...)",
    )
    partners_cli.configure_parser(p)
    p.set_defaults(func=partners_cli.run)

    from deliverydash.commands import notifications as notifications_cli

    p = sub.add_parser(
        "notifications",
        help="list notifications about destinations (auth failures, auto-disable, recoveries)",
    )
    notifications_cli.configure_parser(p)
    p.set_defaults(func=notifications_cli.run)

    p = sub.add_parser(
        "dashboard",
        help="open the delivery dashboard (Streamlit) over the attempt log",
        description="Start the Streamlit dashboard: a day of HTTP responses, customer and partner "
        "pages, retries, an error explorer and a SQL console. With a secret set (DELIVERYDASH_SECRET "
        "or [dashboard] secret in the config), pages need a link from `deliverydash link`.",
    )
    p.add_argument("--port", type=int, default=8501, help="port to listen on (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--config", help="TOML config whose [dashboard] table holds the secret (optional)")
    data_dir(p)
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser(
        "link",
        help="print a signed, expiring dashboard link for a workspace, a partner or an engineer",
        description="Print a dashboard URL carrying a signed token: a customer link sees only its "
        "workspace, a partner link only its integration's aggregates, an engineer link everything "
        "including the SQL console.",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--workspace", help="a customer link for this workspace")
    who.add_argument("--partner", metavar="INTEGRATION", help="a partner link for this integration")
    who.add_argument("--engineer", action="store_true", help="an engineer link (everything, SQL console)")
    p.add_argument(
        "--ttl", default="7d", help="how long the link works: 30m, 12h, 7d, 2w (default: %(default)s)"
    )
    p.add_argument(
        "--base-url",
        default="http://127.0.0.1:8501",
        help="the dashboard's address as its users reach it (default: %(default)s)",
    )
    p.add_argument("--config", help="TOML config whose [dashboard] table holds the secret (optional)")
    p.set_defaults(func=cmd_link)

    p = sub.add_parser(
        "sql",
        help="query the attempt log with DuckDB SQL (view `attempts`)",
        description="Run read-only DuckDB SQL against the view `attempts`: one query given "
        "as an argument, or an interactive prompt without one.",
    )
    p.add_argument("query", nargs="?", help="one SELECT statement; omit for a prompt")
    p.add_argument("--max-rows", type=int, default=50, help="rows to print (default: %(default)s)")
    data_dir(p)
    p.set_defaults(func=cmd_sql)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int | None = args.func(args)
    except CommandError as exc:
        print(f"deliverydash {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    raise SystemExit(main())
