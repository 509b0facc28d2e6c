"""Start local HTTP(S) servers on 127.0.0.1 that answer like partner APIs: healthy, rate-limited,
flaky 5xx, outages, expired credentials, forbidden, strict validation, batches, WTF status codes,
resets, timeouts and TLS failures. Without --config, one partner of each on ports 9100 and up, and the
stats server on 9099. Runs until Ctrl-C or SIGTERM; a bad config or a port in use is one line on
stderr and exit status 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deliverydash.partner_simulator.config import PartnersConfig
    from deliverydash.partner_simulator.servers import PartnerSet

NAME = "partners"
HELP = "run simulated partner APIs on loopback (rate limits, outages, 401s, TLS failures, ...)"
PROG = f"deliverydash {NAME}"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument(
        "--config", help="TOML file of partners (see partners.example.toml and docs/partners.md)"
    )
    parser.add_argument(
        "--any-port",
        action="store_true",
        help="listen on free ports chosen by the system instead of the configured ones",
    )
    parser.add_argument(
        "--ca-file",
        help="write the simulator's CA certificate (PEM) here, to trust as the engine's "
        "ca_bundle (default: a temporary file, printed at startup)",
    )
    parser.add_argument(
        "--ready-file",
        help="once every partner listens, write their names, profiles and URLs here as JSON",
    )


def run(args: argparse.Namespace) -> int:
    """Run the simulator; the exit status."""
    # Imported here, not at the top: every command builds this parser and should not pay for
    # the servers' imports (asyncio alone is some 50 ms).
    import asyncio

    from deliverydash.partner_simulator.config import (
        ConfigError,
        PartnersConfig,
        default_config,
        load_partners,
    )
    from deliverydash.partner_simulator.servers import PartnerStartError

    try:
        config = load_partners(args.config) if args.config else default_config()
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.any_port:
        partners = tuple(dataclasses.replace(spec, port=0) for spec in config.partners)
        control = None if config.control_port is None else 0
        config = PartnersConfig(partners, control)
    try:
        asyncio.run(_serve(config, args.ca_file, args.ready_file))
    except PartnerStartError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:  # not about --ca-file or --ready-file
            raise
        print(f"{PROG}: cannot write {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(config: PartnersConfig, ca_file: str | None, ready_file: str | None) -> None:
    import asyncio

    from deliverydash.partner_simulator.servers import PartnerSet

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with PartnerSet(config.partners, control_port=config.control_port) as partners:
        needs_tls = any(spec.tls for spec in config.partners)
        ca = None
        if needs_tls:
            ca = partners.certificates.write_ca(ca_file) if ca_file else partners.certificates.ca_file
        print(table(partners, ca), flush=True)
        if ready_file:
            _write_ready_file(Path(ready_file), partners, ca)
        await stop.wait()
    print("partners stopped", file=sys.stderr)


def table(partners: PartnerSet, ca: Path | None) -> str:
    """The startup listing: one line per partner, then the stats URL and the CA file."""
    rows = [("NAME", "PROFILE", "URL"), *partners.rows()]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{name:<{widths[0]}}  {profile:<{widths[1]}}  {url}" for name, profile, url in rows]
    if partners.control is not None:
        lines.append(f"\nstats: {partners.control.url}_stats")
    if ca is not None:
        lines.append(f"CA of the TLS partners: {ca} (trust it with the engine's ca_bundle)")
    lines.append("Ctrl-C to stop.")
    return "\n".join(lines)


def _write_ready_file(path: Path, partners: PartnerSet, ca: Path | None) -> None:
    """The partners as JSON, published whole (temporary name, then rename)."""
    document = {
        "control_url": partners.control.url if partners.control else None,
        "ca_file": str(ca) if ca else None,
        "partners": [
            {"name": s.spec.name, "profile": s.spec.profile.name, "tls": s.spec.tls, "url": s.url}
            for s in partners.servers.values()
        ],
    }
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
