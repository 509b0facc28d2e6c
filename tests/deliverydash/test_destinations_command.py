"""`deliverydash destinations` and `deliverydash sources`: changes checked and stored without an engine,
and taken up by a running one within 5 s (docs/live-config.md)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from deliverydash.cli import main
from tests.delivery.engine_process import free_port, serving, start_engine
from tests.delivery.test_live_config import ADMIN_TOKEN, WRITE_KEY, Sink, within, write_config

SECRET = "crm-token-cli-4be91"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "engine.toml", tmp_path / "data")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_destinations_are_added_changed_disabled_and_listed_without_their_secrets(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TOKEN", SECRET)
    c = ("--config", str(config))
    status, out, _ = run(
        capsys, "destinations", "add", "crm", *c, "--set", "source=web", "--set", "integration=crm-records",
        "--set", "url=http://127.0.0.1:9/v1", "--set-from-env", "credential=CRM_TOKEN",
        "--set", "max_batch_events=10",
    )  # fmt: skip
    assert status == 0
    assert "destination 'crm' added" in out and "credential: set" in out and SECRET not in out
    status, out, _ = run(capsys, "destinations", "disable", "crm", *c)
    assert status == 0 and "destination 'crm' disabled" in out
    status, out, _ = run(capsys, "destinations", "list", *c, "--json")
    [shown] = json.loads(out)["destinations"]
    assert (shown["enabled"], shown["credential"], shown["max_batch_events"]) == (False, "set", 10)
    assert SECRET not in out
    assert run(capsys, "destinations", "enable", "crm", *c)[0] == 0
    assert run(capsys, "destinations", "update", "crm", *c, "--unset", "max_batch_events")[0] == 0
    [shown] = json.loads(run(capsys, "destinations", "list", *c, "--json")[1])["destinations"]
    assert (shown["enabled"], shown["max_batch_events"], shown["managed"]) == (True, 100, "live")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("destinations", "update", "nope", "--set", "enabled=false"), "no destination 'nope' is configured"),
        (
            ("destinations", "add", "d", "--set", "source=web", "--set", "integration=webhook", "--set", "url=ftp://x"),
            "destinations[d].url: must be an http(s) URL, got 'ftp://x'",
        ),
        (
            ("destinations", "add", "d", "--set", "source=wbe", "--set", "integration=webhook", "--set", "url=http://x.example"),
            "destinations[d].source: unknown source 'wbe' (did you mean 'web'?)",
        ),
        (("destinations", "update", "d"), "nothing to change"),
        (
            ("destinations", "add", "d", "--set-from-env", "credential=NOT_SET_ANYWHERE"),
            "$NOT_SET_ANYWHERE is not set",
        ),
        (
            ("sources", "add", "web", "--set", "workspace=acme", "--set", "write_key=k2"),
            "source 'web' exists already",
        ),
        (
            ("sources", "update", "web", "--set", "write_key=a:b"),
            "sources[web].write_key: must not contain ':'",
        ),
        (
            ("sources", "add", "s2", "--set", "workspace=acme", "--set", f"write_key={WRITE_KEY}"),
            "same write key as sources[0]",
        ),
    ],
)  # fmt: skip
def test_a_refused_change_is_one_line_and_exit_status_2(
    config: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    status, _, err = run(capsys, *args, "--config", str(config))
    assert status == 2
    assert err.count("\n") == 1 and message in err, err
    assert WRITE_KEY not in err


def test_sources_are_listed_with_their_write_key_shown_as_set(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origins = 'allowed_origins=["https://shop.example.com"]'
    c = ("--config", str(config))
    status, out, _ = run(
        capsys,
        "sources",
        "add",
        "shop",
        *c,
        "--set",
        "workspace=acme",
        "--set",
        origins,
        "--set",
        "write_key=wk_83",
    )
    assert status == 0
    status, out, _ = run(capsys, "sources", "list", "--config", str(config))
    assert status == 0 and "wk_83" not in out and WRITE_KEY not in out
    assert run(capsys, "sources", "disable", "shop", *c)[0] == 0
    status, out, _ = run(capsys, "sources", "list", *c)
    assert out.splitlines()[1:] == [
        "web   acme       set        *                         yes      file",
        "shop  acme       set        https://shop.example.com  no       live",
    ]


def test_a_running_engine_takes_a_change_of_the_command_up_within_5_s(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    engine = start_engine(config, port)
    try:
        with serving(Sink()) as sink:
            status, _, err = run(
                capsys, "destinations", "add", "hook", "--config", str(config), "--set", "source=web",
                "--set", "integration=webhook", "--set", f"url={sink.url}/in",
            )  # fmt: skip
            assert status == 0, err

            def track() -> None:
                body = {"type": "track", "userId": "u", "event": "E", "messageId": str(uuid.uuid4())}
                httpx.post(f"http://127.0.0.1:{port}/v1/track", json=body, auth=(WRITE_KEY, ""), timeout=5)

            within(lambda: any(path == "/in" for path, _ in sink.seen()), track)
            shown = httpx.get(
                f"http://127.0.0.1:{port}/admin/destinations/hook",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=5,
            ).json()
            assert shown["managed"] == "live"
    finally:
        engine.terminate()
        engine.communicate(timeout=30)
