"""Print a dashboard URL carrying a signed token: a customer link sees only its workspace, a
partner link only its integration's aggregates, an engineer link everything including the SQL
console."""

from __future__ import annotations

import argparse
import sys

from deliverydash import options

NAME = "link"
HELP = "print a signed, expiring dashboard link for a workspace, a partner or an engineer"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--workspace", help="a customer link for this workspace")
    who.add_argument("--partner", metavar="INTEGRATION", help="a partner link for this integration")
    who.add_argument("--engineer", action="store_true", help="an engineer link (everything, SQL console)")
    parser.add_argument(
        "--ttl", default="7d", help="how long the link works: 30m, 12h, 7d, 2w (default: %(default)s)"
    )
    parser.add_argument(
        "--base-url",
        default="http://127.0.0.1:8501",
        help="the dashboard's address as its users reach it (default: %(default)s)",
    )
    parser.add_argument("--config", help="TOML config whose [dashboard] table holds the secret (optional)")


def run(args: argparse.Namespace) -> None:
    """Print the link on stdout, and what it grants until when on stderr."""
    import time

    from app.access import Viewer, ViewerKind, parse_ttl, sign

    secret = options.dashboard_secret(args.config)
    if secret is None:
        raise options.CommandError(
            "no dashboard secret is set: set DELIVERYDASH_SECRET (16+ characters) or `secret` under "
            "[dashboard] in the config, for both `deliverydash link` and `deliverydash dashboard`"
        )
    try:
        ttl_s = parse_ttl(args.ttl)
    except ValueError as exc:
        raise options.CommandError(f"--ttl: {exc}") from None
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
