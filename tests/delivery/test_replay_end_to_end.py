"""Replay, end to end over real sockets: a destination answering 401 is disabled and its events
skipped; the partner's credential is fixed; `deliverydash replay` delivers every failed and skipped
event exactly once; the customer page shows them as recovered by replay; the same replay again
delivers nothing new, from the command line or the dashboard."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from streamlit.testing.v1 import AppTest

from app.access import ViewerKind
from deliverydash.cli import main
from deliverydash.partner_simulator.profiles import ExpiredCredentials
from deliverydash.partner_simulator.servers import PartnerSet
from queries import Scope, api, connect
from tests.app.conftest import MAIN, SECRET, metrics, token
from tests.delivery.alerts.test_notifications import (
    ADMIN,
    CREDENTIAL,
    Engine,
    engines,
    partners,
    send_until,
    write_config,
)
from tests.delivery.engine_process import wait_for

__all__ = ["engines", "partners"]  # the fixtures, shared with the notifications' end-to-end tests

HOOK = "expired-hook"


def records(data_dir: Path) -> list[dict[str, Any]]:
    """The hook's attempt records: outcome, error code, the job it replays, its one event's id."""
    if not list(data_dir.glob("attempts/date=*/hour=*/*.parquet")):
        return []
    with duckdb.connect() as db:
        cursor = db.execute(
            "SELECT outcome, error_code, job_id, replay_of, events[1].message_id AS message_id "
            "FROM read_parquet($glob) WHERE destination_id = $hook",
            {"glob": str(data_dir / "attempts/date=*/hour=*/*.parquet"), "hook": HOOK},
        )
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def replay(config: Path, engine: Engine, capsys: pytest.CaptureFixture[str], *more: str) -> str:
    status = main(["replay", "--config", str(config), "--url", engine.url, "--destination", HOOK, *more])
    out, err = capsys.readouterr()
    assert status in (0, None), err
    return out


class CountingEngine(Engine):
    """An engine that counts the events sent to it."""

    sent = 0

    def send(self, n: int = 1) -> None:
        super().send(n)
        self.sent += n


def disabled_with_dead_letters(
    tmp_path: Path, partners: PartnerSet, engines: list[Engine]
) -> tuple[Path, CountingEngine, set[str]]:
    """An engine whose hook answered 401 until it was disabled, then skipped 5 events: every event's
    one record is in the log. Returns the config, the engine and the message ids of those events."""
    # No probe during the test: the destination stays disabled until it is enabled by hand.
    config = write_config(tmp_path, partners, "disable_after_failures = 3\nprobe_interval_s = 3600\n")
    engine = CountingEngine(config, "expired")
    engines.append(engine)
    send_until(engine, lambda: "disabled" in engine.kinds(HOOK))
    engine.send(5)
    wait_for(lambda: engine.idle(HOOK) and len(records(tmp_path / "data")) == engine.sent)
    original = records(tmp_path / "data")
    assert {r["outcome"] for r in original} == {"failed", "skipped"}
    assert {r["error_code"] for r in original if r["outcome"] == "failed"} == {"401"}
    assert Counter(r["error_code"] for r in original if r["outcome"] == "skipped")["auto_disabled"] >= 5
    sent = {r["message_id"] for r in original}
    assert len(sent) == engine.sent  # one record per event: failed (401, terminal) or skipped
    return config, engine, sent


def test_a_disabled_destination_s_events_are_replayed_once_its_credential_is_fixed(
    tmp_path: Path,
    partners: PartnerSet,
    engines: list[Engine],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, engine, sent = disabled_with_dead_letters(tmp_path, partners, engines)
    data_dir = tmp_path / "data"
    original = records(data_dir)

    # The credential is fixed at the partner, the destination enabled, the dead letters replayed.
    profile = partners.servers["expired"].spec.profile
    assert isinstance(profile, ExpiredCredentials)
    profile.valid_token = CREDENTIAL
    assert engine.enable(HOOK).status_code == 200
    counted = replay(config, engine, capsys, "--outcome", "failed,skipped", "--dry-run")
    assert f"would replay {len(sent)} events" in counted
    assert engine.idle(HOOK)  # a dry run enqueues nothing
    delivered_before = partners.stats("expired").statuses[200]
    out = replay(config, engine, capsys, "--outcome", "failed,skipped")
    assert f"{len(sent)} events enqueued for {HOOK}" in out

    def replays() -> list[dict[str, Any]]:
        return [r for r in records(data_dir) if r["replay_of"] is not None]

    wait_for(lambda: len(replays()) >= len(sent))
    wait_for(lambda: engine.idle(HOOK))
    delivered = replays()
    # Every failed or skipped event exactly once, each naming the job whose dead letter it was.
    assert Counter(r["message_id"] for r in delivered) == Counter(sent)
    assert {r["outcome"] for r in delivered} == {"delivered"}
    by_message = {r["message_id"]: r["job_id"] for r in original}
    assert all(r["replay_of"] == by_message[r["message_id"]] for r in delivered)
    assert partners.stats("expired").statuses[200] == delivered_before + len(sent)

    # The same replay by mistake: nothing is enqueued, and the command says why.
    again = replay(config, engine, capsys, "--outcome", "failed,skipped")
    assert "0 events enqueued" in again
    assert f"{len(sent)} selected events were replayed before" in again
    assert engine.idle(HOOK)

    # The figures: received once, recovered by replay apart from first-attempt and retry deliveries.
    day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with connect(data_dir) as log:
        report = api.day_report(log, Scope.workspace("acme"), day, day + dt.timedelta(days=1)).row(
            0, named=True
        )
        funnel = api.funnel(log, Scope.workspace("acme"), day, day + dt.timedelta(days=1))
    assert report["events_received"] == len(sent)
    assert report["recovered_by_replay"] == len(sent)
    assert report["delivered_eventually"] == 0
    stages = dict(
        zip(funnel.get_column("stage").to_list(), funnel.get_column("events").to_list(), strict=True)
    )
    assert stages["events received"] == len(sent)
    assert stages["delivered after replay"] == len(sent)
    assert main(["report", "--data-dir", str(data_dir), "--workspace", "acme"]) in (0, None)
    text = capsys.readouterr().out
    assert re.search(rf"^recovered later by a replay\s+{len(sent)}\s", text, re.MULTILINE), text

    # The customer page shows them, and its replay finds nothing new to send.
    monkeypatch.setenv("DELIVERYDASH_DATA_DIR", str(data_dir))
    monkeypatch.delenv("DELIVERYDASH_SECRET", raising=False)
    monkeypatch.setenv("DELIVERYDASH_ENGINE_URL", engine.url)
    monkeypatch.setenv("DELIVERYDASH_ADMIN_TOKEN", ADMIN)
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    at.switch_page("views/customer.py").run()
    assert not at.exception
    assert metrics(at)["Events received"] == f"{len(sent):,}"
    assert metrics(at)["Recovered by replay"] == f"{len(sent):,}"
    next(b for b in at.button if b.label == "Count what can be replayed").click().run()
    assert any(f"{len(sent)} replayed before are left alone" in i.value for i in at.info), [
        i.value for i in at.info
    ]
    assert not [b for b in at.button if b.label.startswith("Replay ")]
    assert ADMIN not in json.dumps([str(e.proto) for e in at.main])
    assert httpx.get(f"{engine.url}/healthz").status_code == 200
    assert CREDENTIAL not in engine.stop()


def dashboard(monkeypatch: pytest.MonkeyPatch, data_dir: Path, engine: Engine, link: str) -> AppTest:
    """The dashboard as `deliverydash dashboard --config` starts it, opened with a signed link."""
    monkeypatch.setenv("DELIVERYDASH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DELIVERYDASH_SECRET", SECRET)
    monkeypatch.setenv("DELIVERYDASH_ENGINE_URL", engine.url)
    monkeypatch.setenv("DELIVERYDASH_ADMIN_TOKEN", ADMIN)
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["token"] = link
    at.run()
    return at


def buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def test_a_customer_link_replays_its_own_workspace_after_a_count_and_a_partner_link_cannot(
    tmp_path: Path, partners: PartnerSet, engines: list[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, engine, sent = disabled_with_dead_letters(tmp_path, partners, engines)
    data_dir = tmp_path / "data"
    profile = partners.servers["expired"].spec.profile
    assert isinstance(profile, ExpiredCredentials)
    profile.valid_token = CREDENTIAL
    assert engine.enable(HOOK).status_code == 200

    # A partner's link shows the partner's pages only: no replay anywhere.
    at = dashboard(monkeypatch, data_dir, engine, token(ViewerKind.PARTNER, "webhook"))
    assert not at.exception
    assert "Count what can be replayed" not in buttons(at)

    # The customer counts first; the confirmation names the count; then the replay runs.
    at = dashboard(monkeypatch, data_dir, engine, token(ViewerKind.WORKSPACE, "acme"))
    at.switch_page("views/customer.py").run()
    assert "Replay" not in " ".join(buttons(at)).replace("Count what can be replayed", "")
    next(b for b in at.button if b.label == "Count what can be replayed").click().run()
    assert [w.value for w in at.warning if "can be replayed" in w.value] == [
        f"{len(sent)} events can be replayed."
    ]
    assert engine.idle(HOOK)  # counting enqueued nothing
    next(b for b in at.button if b.label == f"Replay {len(sent)} events").click().run()
    assert any(f"{len(sent)} events enqueued" in s.value for s in at.success), [s.value for s in at.success]
    wait_for(lambda: len([r for r in records(data_dir) if r["replay_of"]]) == len(sent))
    assert Counter(r["message_id"] for r in records(data_dir) if r["replay_of"]) == Counter(sent)

    # A customer of another workspace never reaches acme's dead letters: its page is its own.
    at = dashboard(monkeypatch, data_dir, engine, token(ViewerKind.WORKSPACE, "globex"))
    at.switch_page("views/customer.py").run()
    assert "Count what can be replayed" not in buttons(at)
