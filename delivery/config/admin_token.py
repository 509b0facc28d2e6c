"""The admin API's bearer token: the configured one, or one the engine generates and keeps under `data_dir`.

There is no default token. `[engine] admin_token` absent or empty means
"generate one": the first engine to start on a data directory draws 256
random bits (`secrets.token_urlsafe(32)`) and publishes them as
`<data_dir>/admin_token`, mode 0600 from the moment the file exists (its
temporary name included) and linked into place so that it never replaces a
file another engine published first. Every later start, and every other
engine process on the same data directory (`serve --processes N`, the
demos), reads that file: they all answer to one token. The commands that
call the admin API (`deliverydash status`) read it the same way.

`ensure_admin_token(config)` is the engine's side (create or read, and
refuse a file others may read); `admin_token(config)` the callers' (read
only). Neither ever logs or shows the token: only where it is.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import stat
from pathlib import Path

from delivery.config.model import MIN_ADMIN_TOKEN_CHARS, Config, ConfigError, Secret

#: The generated token's file name under `data_dir`.
TOKEN_FILE = "admin_token"
#: Bytes of randomness in a generated token (43 URL-safe characters).
TOKEN_BYTES = 32
#: What a bearer token may hold here: printable ASCII without spaces (RFC 6750's b64token and more).
_TOKEN = re.compile(r"[!-~]+")
#: Largest token file read: a token is a line, not a document.
_MAX_FILE_BYTES = 4096


def token_file(data_dir: Path) -> Path:
    """Where the generated token of an engine with this `data_dir` is kept."""
    return Path(data_dir) / TOKEN_FILE


def token_problem(token: str) -> str | None:
    """What makes `token` unfit as the admin token, or None; never quotes it."""
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        return f"must be at least {MIN_ADMIN_TOKEN_CHARS} characters"
    if not _TOKEN.fullmatch(token):
        return "must be printable ASCII without spaces (it travels in an Authorization header)"
    return None


def ensure_admin_token(config: Config) -> tuple[Config, Path | None]:
    """The config with its admin token set, and the file it came from (None: configured).

    With no configured token, reads `<data_dir>/admin_token`, or generates and
    publishes it when there is none (creating `data_dir`). Two processes
    starting at once agree: the one whose file is linked first wins and the
    other reads it. Raises `ConfigError` naming the file when it is readable
    or writable by others, unreadable, or holds no fit token.
    """
    if config.engine.admin_token is not None:
        return config, None
    path = token_file(config.engine.data_dir)
    token = _read(path, owner_only=True)
    if token is None:
        # Here, not at the top: `ingest.files` imports pyarrow, and reading a config should not.
        from ingest.files import publish_bytes

        path.parent.mkdir(parents=True, exist_ok=True)
        generated = secrets.token_urlsafe(TOKEN_BYTES)
        # `exclusive`: linked into place, so a file another process published first is kept.
        publish_bytes(f"{generated}\n".encode(), path, exclusive=True, mode=0o600)
        token = _read(path, owner_only=True)
        if token is None:  # removed between the two calls: nothing sensible to retry
            raise ConfigError(str(path), ["was removed while the engine was creating it"])
    engine = dataclasses.replace(config.engine, admin_token=token)
    return dataclasses.replace(config, engine=engine), path


def admin_token(config: Config) -> Secret:
    """The token the engine of `config` answers to: configured, or read from its data directory.

    For the callers of the admin API: never creates the file. Raises
    `ConfigError` naming the file when there is none yet (no engine started
    on that data directory) or it cannot be read.
    """
    if config.engine.admin_token is not None:
        return config.engine.admin_token
    path = token_file(config.engine.data_dir)
    token = _read(path, owner_only=False)
    if token is None:
        raise ConfigError(
            str(path),
            [
                "no such file: [engine] admin_token is not set, and no engine has generated a token "
                "in this data_dir yet (start the engine once, or set the token in the config)"
            ],
        )
    return token


def _read(path: Path, *, owner_only: bool) -> Secret | None:
    """The token in `path`, None when there is no such file; `owner_only`: refuse a file others may read."""
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            raw = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the admin token: {exc.strerror or exc}"]) from None
    if owner_only and os.name == "posix" and stat.S_IMODE(mode) & 0o077:
        raise ConfigError(
            str(path),
            [
                f"holds the admin token but others may read or change it (mode {stat.S_IMODE(mode):04o}): "
                f"chmod 600 {path}, or delete it to have a new token generated"
            ],
        )
    token = raw.decode("ascii", errors="replace").strip()  # a replaced byte fails `token_problem`
    problem = "must be one short line" if len(raw) > _MAX_FILE_BYTES else token_problem(token)
    if problem:
        raise ConfigError(
            str(path),
            [f"not a usable admin token: it {problem}; delete the file to have a new one generated"],
        )
    return Secret(token)
