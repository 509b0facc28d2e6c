"""`deliverydash status`: a real engine process asked through its admin API, and the command's errors.

What it shows of the alerts webhook, and the generated token it reads, are tested with the engines
that produce them (tests/delivery/alerts/test_notifications.py, tests/delivery/test_serve.py).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from deliverydash.cli import main
from tests.delivery.engine_process import free_port, start_engine
from tests.delivery.faults import closed_port

TOKEN = "status-token-0123456789-0123456789"


def write_config(path: Path, data_dir: Path, token: str | None) -> Path:
    line = f'admin_token = "{token}"\n' if token else ""
    path.write_text(f'[engine]\ndata_dir = "{data_dir}"\n{line}', encoding="utf-8")
    return path


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An engine with `TOKEN`: (its config, its URL)."""
    config = write_config(tmp_path / "engine.toml", tmp_path / "data", TOKEN)
    port = free_port()
    process = start_engine(config, port)
    try:
        yield config, f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_status_prints_the_engine_s_state_as_text_or_json(
    engine: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, url = engine
    assert main(["status", "--config", str(config), "--url", url]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"engine at {url}, up ")
    assert "queue (sqlite, " in text and "events: 0 accepted, 0 duplicate, 0 rejected" in text
    assert "alerts webhook: not configured" in text
    assert main(["status", "--config", str(config), "--url", url, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["queue"]["backend"] == "sqlite"
    assert answer["alerts_webhook"]["configured"] is False
    assert TOKEN not in text


def test_a_token_the_engine_does_not_take_is_one_clear_line(
    engine: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = engine
    other = write_config(tmp_path / "other.toml", tmp_path / "other", "another-token-0123456789-0123456789")
    assert main(["status", "--config", str(other), "--url", url]) == 2
    error = capsys.readouterr().err
    assert error == (
        f"deliverydash status: {url} refused the admin token ([engine] admin_token of {other}): "
        "is that engine this config's?\n"
    )


def test_without_a_token_anywhere_status_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "engine.toml", tmp_path / "data", None)
    assert main(["status", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(
        f"deliverydash status: no admin token: {tmp_path / 'data' / 'admin_token'}: no such file"
    )
    assert not (tmp_path / "data").exists()  # a reader never creates the token


def test_no_engine_at_the_url_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "engine.toml", tmp_path / "data", TOKEN)
    with closed_port() as port:
        assert main(["status", "--config", str(config), "--url", f"http://127.0.0.1:{port}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"deliverydash status: no answer from http://127.0.0.1:{port}: ")
    assert TOKEN not in error
