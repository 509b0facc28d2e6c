"""The admin token the engine generates and keeps under data_dir: real files, real processes.

The engine end to end (the file created by `deliverydash serve`, reused on
restart, the log naming it) is in tests/delivery/test_serve.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.config import Config, ConfigError, EngineConfig, Secret
from delivery.config.admin_token import admin_token, ensure_admin_token, token_file

CONFIGURED = "a-configured-token-0123456789-0123456789"


def config_for(data_dir: Path, token: str | None = None) -> Config:
    return Config(engine=EngineConfig(data_dir=data_dir, admin_token=Secret(token) if token else None))


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that takes nothing off (0o000): the file's mode must not depend on it."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_token_is_generated_readable_by_its_owner_only_and_reused(tmp_path: Path, open_umask: None) -> None:
    data_dir = tmp_path / "new" / "data"  # created on the way
    config, path = ensure_admin_token(config_for(data_dir))
    assert path == token_file(data_dir) == data_dir / "admin_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = config.engine.admin_token
    assert token is not None and len(token.reveal()) == 43
    assert path.read_text() == token.reveal() + "\n"
    assert config.engine.data_dir == data_dir  # nothing else changed
    assert not list((data_dir / "_tmp").iterdir())

    inode = path.stat().st_ino
    again, same_path = ensure_admin_token(config_for(data_dir))
    assert again.engine.admin_token == token and same_path == path
    assert path.stat().st_ino == inode  # read, not written again
    # Callers of the admin API read the same token, and never create one.
    assert admin_token(config_for(data_dir)) == token
    other = tmp_path / "other"
    with pytest.raises(ConfigError) as caught:
        admin_token(config_for(other))
    assert str(caught.value).startswith(
        f"{other / 'admin_token'}: no such file: [engine] admin_token is not set"
    )
    assert not other.exists()


def test_each_data_dir_has_its_own_token(tmp_path: Path) -> None:
    first = ensure_admin_token(config_for(tmp_path / "a"))[0].engine.admin_token
    second = ensure_admin_token(config_for(tmp_path / "b"))[0].engine.admin_token
    assert first is not None and second is not None and first != second


def test_a_configured_token_wins_and_no_file_is_written(tmp_path: Path) -> None:
    config = config_for(tmp_path, CONFIGURED)
    assert ensure_admin_token(config) == (config, None)
    assert admin_token(config) == Secret(CONFIGURED)
    assert not token_file(tmp_path).exists()


#: An engine's start, as far as the token goes: wait for the go file, then read or create the token.
_AT_ONCE = """
import sys, time
from pathlib import Path
from delivery.config import Config, EngineConfig
from delivery.config.admin_token import ensure_admin_token
data_dir, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.001)
config = Config(engine=EngineConfig(data_dir=data_dir))
print(ensure_admin_token(config)[0].engine.admin_token.reveal())
"""


def test_engines_starting_at_once_agree_on_one_token(tmp_path: Path) -> None:
    # Real processes, released together once all have started (as `serve --processes` and
    # several engines on one data_dir start), each reading or creating the token file.
    data_dir, go = tmp_path / "data", tmp_path / "go"
    data_dir.mkdir()
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", _AT_ONCE, str(data_dir), str(tmp_path / f"ready-{n}"), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in range(4)) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    tokens = [start.communicate(timeout=60)[0].strip() for start in starts]
    assert [start.returncode for start in starts] == [0, 0, 0, 0]
    assert len(set(tokens)) == 1 and len(tokens[0]) >= 32
    assert token_file(data_dir).read_text() == tokens[0] + "\n"
    assert not list((data_dir / "_tmp").iterdir())


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not a usable admin token: it must be at least 32 characters"),
        (b"short\n", "not a usable admin token: it must be at least 32 characters"),
        ("é".encode() * 32, "not a usable admin token: it must be printable ASCII without spaces"),
        (b"x" * 20 + b" " + b"x" * 20, "not a usable admin token: it must be printable ASCII without spaces"),
        (b"x" * 5000, "not a usable admin token: it must be one short line"),
    ],
)
def test_a_file_without_a_usable_token_is_refused_and_kept(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = token_file(tmp_path)
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        ensure_admin_token(config_for(tmp_path))
    assert str(caught.value).startswith(f"{path}: {problem}")
    assert str(caught.value).endswith("; delete the file to have a new one generated")
    assert path.read_bytes() == content


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o666])
def test_a_file_others_may_read_or_change_is_refused(tmp_path: Path, mode: int) -> None:
    path = token_file(tmp_path)
    path.write_text("t" * 43)
    path.chmod(mode)
    with pytest.raises(ConfigError) as caught:
        ensure_admin_token(config_for(tmp_path))
    assert str(caught.value) == (
        f"{path}: holds the admin token but others may read or change it (mode {mode:04o}): "
        f"chmod 600 {path}, or delete it to have a new token generated"
    )
    assert "t" * 43 not in str(caught.value)
    path.chmod(0o600)
    assert ensure_admin_token(config_for(tmp_path))[0].engine.admin_token == Secret("t" * 43)


def test_an_operator_may_put_a_token_of_their_own_in_the_file(tmp_path: Path) -> None:
    path = token_file(tmp_path)
    path.write_text(CONFIGURED + "\n")
    path.chmod(0o400)
    assert ensure_admin_token(config_for(tmp_path))[0].engine.admin_token == Secret(CONFIGURED)
