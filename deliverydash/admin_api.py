"""Asking a running engine through its admin API (`/admin/*`), for the commands that act on one.

The token is the config's `[engine] admin_token`, else the one the engine
generated in `<data_dir>/admin_token` (so run the command as the engine's
user). Every failure is a `CommandError` that says what to check: no
answer, the token refused, or the engine's own `{"code", "message"}`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from deliverydash import options

#: Where `deliverydash serve` listens by default.
DEFAULT_URL = "http://127.0.0.1:8000"


def add_options(parser: argparse.ArgumentParser) -> None:
    """`--config` (for the token) and `--url` (where the engine listens)."""
    parser.add_argument(
        "--config",
        default="deliverydash.toml",
        help="the engine's TOML config, for its admin token (default: %(default)s)",
    )
    parser.add_argument(
        "--url", default=DEFAULT_URL, help="where the engine listens (default: %(default)s, serve's default)"
    )


def call(
    args: argparse.Namespace, method: str, path: str, body: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON answer of `method path` on the engine at `args.url` (a `CommandError` unless it is 200)."""
    import httpx

    from delivery.config import ConfigError
    from delivery.config.admin_token import admin_token

    config = options.engine_config(args.config)
    try:
        token = admin_token(config)
    except ConfigError as exc:
        raise options.CommandError(f"no admin token: {exc}") from None
    url = args.url.rstrip("/") + path
    try:
        response = httpx.request(
            method, url, json=body, headers={"Authorization": f"Bearer {token.reveal()}"}, timeout=60
        )
    except httpx.HTTPError as exc:
        raise options.CommandError(f"no answer from {args.url}: {exc}") from None
    if response.status_code == 401:
        whence = "[engine] admin_token" if config.engine.admin_token is not None else "the token file"
        raise options.CommandError(
            f"{args.url} refused the admin token ({whence} of {args.config}): is that engine this config's?"
        )
    if response.status_code != 200:
        raise options.CommandError(f"{args.url} answered {response.status_code}: {message(response)}")
    answer: dict[str, Any] = response.json()
    return answer


def message(response: Any) -> str:
    """The `message` of an error answer, else the start of its text."""
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return str(response.text[:200])
