"""Signed dashboard links: what a token grants, and every way one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.access import (
    AccessDenied,
    Viewer,
    ViewerKind,
    parse_ttl,
    resolve_secret,
    sign,
    verify,
)
from queries import Scope

SECRET = "s3cret-s3cret-s3cret-s3cret"
NOW = 1_800_000_000


def _token(kind: ViewerKind, value: str | None, expires_at: int = NOW + 3600) -> str:
    return sign(Viewer(kind, value, expires_at), SECRET)


@pytest.mark.parametrize(
    ("kind", "value", "scope"),
    [
        (ViewerKind.WORKSPACE, "acme", Scope.workspace("acme")),
        (ViewerKind.PARTNER, "crm-records", Scope.integration("crm-records")),
        (ViewerKind.ENGINEER, None, Scope.all()),
    ],
)
def test_a_signed_token_grants_its_scope_until_it_expires(
    kind: ViewerKind, value: str | None, scope: Scope
) -> None:
    viewer = verify(_token(kind, value), SECRET, now=NOW)
    assert viewer == Viewer(kind, value, NOW + 3600)
    assert viewer.scope == scope
    assert viewer.sees_everything is (kind is ViewerKind.ENGINEER)


def test_a_missing_token_is_refused() -> None:
    for token in (None, ""):
        with pytest.raises(AccessDenied, match="needs a link"):
            verify(token, SECRET, now=NOW)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    forged = sign(Viewer(ViewerKind.ENGINEER, None, NOW + 3600), "another-secret-another-secret")
    with pytest.raises(AccessDenied, match="not valid"):
        verify(forged, SECRET, now=NOW)


def test_a_token_whose_payload_was_changed_is_refused() -> None:
    version, payload, signature = _token(ViewerKind.WORKSPACE, "acme").split(".")
    # Widen the scope by re-encoding the claims: the signature no longer matches.
    other = sign(Viewer(ViewerKind.ENGINEER, None, NOW + 3600), "x" * 20).split(".")[1]
    for tampered in (f"{version}.{other}.{signature}", f"{version}.{payload[:-1]}A.{signature}"):
        with pytest.raises(AccessDenied, match="not valid"):
            verify(tampered, SECRET, now=NOW)


@pytest.mark.parametrize("token", ["garbage", "v1.only-two", "v2.a.b", "v1..", "a.b.c.d"])
def test_a_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(AccessDenied):
        verify(token, SECRET, now=NOW)


def test_an_expired_token_is_refused_with_its_expiry() -> None:
    token = _token(ViewerKind.WORKSPACE, "acme", expires_at=NOW)
    with pytest.raises(AccessDenied, match="expired on 2027-01-15 08:00 UTC"):
        verify(token, SECRET, now=NOW)
    assert verify(token, SECRET, now=NOW - 1).value == "acme"


def test_local_viewers_and_nameless_scopes_cannot_be_signed() -> None:
    with pytest.raises(ValueError, match="only engineer"):
        sign(Viewer(ViewerKind.LOCAL), SECRET)
    with pytest.raises(ValueError, match="needs a name"):
        sign(Viewer(ViewerKind.WORKSPACE, "", NOW), SECRET)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), (" 2w ", 1209600)]
)
def test_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "0d", "-1d", "7y", "d7", "1.5h"])
def test_a_bad_ttl_names_the_value(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_ttl(text)


def test_the_environment_secret_wins_and_short_secrets_are_refused() -> None:
    assert resolve_secret(None, {}) is None
    assert resolve_secret("c" * 16, {}) == "c" * 16
    assert resolve_secret("c" * 16, {"DELIVERYDASH_SECRET": "e" * 16}) == "e" * 16
    with pytest.raises(ValueError, match="at least 16"):
        resolve_secret("short", {})


def test_one_config_file_serves_the_engine_and_the_dashboard(tmp_path: Path) -> None:
    from app.settings import dashboard_settings
    from delivery.config import load_config

    example = Path(__file__).resolve().parents[2] / "deliverydash.example.toml"
    config = tmp_path / "deliverydash.toml"
    config.write_text(example.read_text() + '\n[dashboard]\nsecret = "0123456789abcdef0123"\n')
    assert load_config(config).sources  # the engine accepts, and ignores, the dashboard's table
    assert dashboard_settings(config).secret == "0123456789abcdef0123"


def test_a_bad_dashboard_table_names_the_key(tmp_path: Path) -> None:
    from app.settings import SettingsError, dashboard_settings

    config = tmp_path / "bad.toml"
    config.write_text('[dashboard]\nsecrets = "x"\n')
    with pytest.raises(SettingsError, match=r"dashboard\.secrets: unknown key"):
        dashboard_settings(config)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[dashboard]\nsecret = 1234567890123456\n", "dashboard.secret: must be a string, got an integer"),
        (b"dashboard = 3\n", "dashboard: must be a table ([dashboard]), got an integer"),
        (b"[dashboard\n", "invalid TOML"),
        (b'[dashboard]\nsecret = "\xff\xfe"\n', "not UTF-8 text (byte 22)"),
    ],
)
def test_a_bad_settings_file_is_named_like_the_engine_names_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    from app.settings import SettingsError, dashboard_settings

    config = tmp_path / "bad.toml"
    config.write_bytes(content)
    with pytest.raises(SettingsError) as raised:
        dashboard_settings(config)
    assert str(raised.value).startswith(f"{config}: ")
    assert message in str(raised.value)
    assert "1234567890123456" not in str(raised.value)


def test_a_missing_settings_file_is_named(tmp_path: Path) -> None:
    from app.settings import SettingsError, dashboard_settings

    with pytest.raises(SettingsError, match=r"nope\.toml: file not found"):
        dashboard_settings(tmp_path / "nope.toml")
