"""The pack's second net: what the queries' redaction leaves (bare words in a body: another
customer's id, an echoed secret) the scrub takes out; and the secrets a config holds."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import plotly.offline
import pytest

from app.evidence import build_pack, config_secrets, dashboard_secrets
from app.evidence.scrub import CONFIG_ENV, REDACTED, SECRET_ENVS, Scrubber
from delivery.config.store import SqliteSettings
from queries import connect
from tests.queries.conftest import D1, at, job, publish

SECRET = "opensesamekey"
#: The body of an answer to acme's request: it names another customer and echoes a secret, unquoted.
BODY = f"globex account frozen, {SECRET} was refused for dst_globex_hook"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    answer = {
        "started_at": at(D1, "10:00:01"),
        "status_code": 400,
        "error_class": "validation",
        "outcome": "failed",
        "response_body": BODY,
    }
    rows = [
        *job("E1", "dst_acme_hook", at(D1, "10:00"), [answer]),
        *job(
            "E2",
            "dst_globex_hook",
            at(D1, "11:00"),
            [
                {
                    "started_at": at(D1, "11:00:01"),
                    "status_code": 200,
                    "outcome": "delivered",
                    "duration_ms": 90.0,
                }
            ],
        ),
    ]
    directory = tmp_path_factory.mktemp("scrub")
    publish(rows, directory)
    return directory


def texts(zipped: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        joined = "\n".join(archive.read(name).decode() for name in archive.namelist())
    return joined.replace(plotly.offline.get_plotlyjs(), "")


def test_what_the_query_redaction_leaves_the_scrub_takes(data_dir: Path) -> None:
    with connect(data_dir) as log:
        bare = texts(build_pack(log, "webhook", D1, D1.replace(day=11)))
        scrubbed = texts(build_pack(log, "webhook", D1, D1.replace(day=11), secrets=[SECRET]))
    assert SECRET in bare  # the queries leave a bare word: only the configured secret names it
    assert "globex" not in bare and "dst_globex_hook" not in bare  # every workspace and destination id
    assert SECRET not in scrubbed and REDACTED in scrubbed
    assert "frozen" in scrubbed  # the rest of the body stays: it is the evidence


def test_the_scrubber_replaces_longest_first_and_keeps_short_values() -> None:
    scrub = Scrubber(["ws_1", "ws_12", "ab"], keep=["ws_1"])
    assert scrub("ws_12 ws_1 ab") == f"{REDACTED} ws_1 ab"


def test_a_config_s_secrets_and_customer_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "from-the-environment")
    config = tmp_path / "deliverydash.toml"
    config.write_text(
        '[engine]\ndata_dir = "data"\nadmin_token = "admin-token-0123456789abcdef0123456789"\n'
        '[dashboard]\nsecret = "dash-secret"\n'
        '[[sources]]\nid = "web"\nworkspace = "northwind"\nwrite_key = "wk_live_1"\n'
        '[[destinations]]\nid = "nw-crm"\nsource = "web"\nintegration = "crm-records"\n'
        'url = "https://crm.example.com/v1/tok_abcdefgh12?key=querysecret9"\ncredential = "user:pass"\n'
        'headers = { X-Extra = "header-value" }\ncredential_env = "HOOK_TOKEN"\n'
    )
    found = config_secrets(config)
    for value in (
        "admin-token-0123456789abcdef0123456789",
        "dash-secret",
        "northwind",
        "wk_live_1",
        "nw-crm",
        "tok_abcdefgh12",
        "querysecret9",
        "user:pass",
        base64.b64encode(b"user:pass").decode(),
        "header-value",
        "from-the-environment",
    ):
        assert value in found
    assert "crm-records" not in found and "data" not in found


def test_the_dashboard_keeps_out_the_secrets_of_destinations_added_live(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destination added live (stored beside the queue, not in the file) has its secrets scrubbed too."""
    engine_dir = tmp_path / "engine"
    config = tmp_path / "deliverydash.toml"
    config.write_text(
        f'[engine]\ndata_dir = "{engine_dir}"\n'
        '[[sources]]\nid = "web"\nworkspace = "northwind"\nwrite_key = "wk_live_1"\n'
    )
    store = SqliteSettings(engine_dir)
    live = {
        "source": "web",
        "integration": "webhook",
        "url": "https://hooks.example.com/in/livepathtoken1?sig=livequerytoken",
        "headers": {"X-Api-Key": SECRET},
    }
    store.change("destinations", "nw-live-hook", lambda patches: live, now=0.0)
    store.close()
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.setenv("DELIVERYDASH_DATA_DIR", str(engine_dir))
    for name in SECRET_ENVS:
        monkeypatch.delenv(name, raising=False)

    found = dashboard_secrets()
    for value in (SECRET, "livepathtoken1", "livequerytoken", "nw-live-hook", "wk_live_1", "northwind"):
        assert value in found, value
    assert "webhook" not in found
    with connect(data_dir) as log:
        scrubbed = texts(build_pack(log, "webhook", D1, D1.replace(day=11), secrets=found))
    assert SECRET not in scrubbed and "frozen" in scrubbed
