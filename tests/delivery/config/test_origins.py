"""Origin patterns: what the config file may say (`parse_pattern`) and what each allows (`matches`)."""

from __future__ import annotations

import pytest

from delivery.config.origins import ANY, allows, matches, parse_pattern


@pytest.mark.parametrize(
    ("written", "pattern"),
    [
        ("*", ANY),
        ("https://shop.example.com", "https://shop.example.com"),
        ("HTTPS://Shop.Example.COM", "https://shop.example.com"),
        # Browsers leave the scheme's default port out of `Origin`.
        ("https://shop.example.com:443", "https://shop.example.com"),
        ("http://localhost:80", "http://localhost"),
        ("https://shop.example.com:80", "https://shop.example.com:80"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("https://*.example.com", "https://*.example.com"),
        ("https://*.Example.com:8443", "https://*.example.com:8443"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
    ],
)
def test_a_pattern_is_kept_in_the_form_browsers_send(written: str, pattern: str) -> None:
    assert parse_pattern(written) == pattern


@pytest.mark.parametrize(
    "written",
    [
        "",
        "null",
        "**",
        "shop.example.com",
        "ftp://shop.example.com",
        "https://",
        "https://shop.example.com/",
        "https://shop.example.com?",
        "https://shop.example.com#top",
        "https://shop.example.com:99999",
        "https://me@shop.example.com",
        "https://*",
        "https://*.com",
        "https://*.*.example.com",
        "https://a.*.example.com",
        "https://shop example.com",
        "https://bücher.example",
    ],
)
def test_what_is_not_an_origin_is_refused(written: str) -> None:
    with pytest.raises(ValueError):
        parse_pattern(written)


@pytest.mark.parametrize(
    ("pattern", "origin", "allowed"),
    [
        (ANY, "https://anything.example", True),
        (ANY, "null", True),
        ("https://shop.example.com", "https://shop.example.com", True),
        ("https://shop.example.com", "https://SHOP.example.com", True),
        ("https://shop.example.com", "http://shop.example.com", False),
        ("https://shop.example.com", "https://shop.example.com:8443", False),
        ("https://shop.example.com", "https://shop.example.com.evil.example", False),
        ("https://shop.example.com", "https://www.shop.example.com", False),
        ("https://shop.example.com", "null", False),
        ("http://localhost:3000", "http://localhost:3000", True),
        ("http://localhost:3000", "http://localhost:3001", False),
        ("https://*.example.com", "https://shop.example.com", True),
        ("https://*.example.com", "https://eu.shop.example.com", True),
        ("https://*.example.com", "https://example.com", False),
        ("https://*.example.com", "https://.example.com", False),
        ("https://*.example.com", "https://evilexample.com", False),
        ("https://*.example.com", "https://shop.example.com.evil.example", False),
        ("https://*.example.com", "http://shop.example.com", False),
        ("https://*.example.com", "https://shop.example.com:8443", False),
        ("https://*.example.com", "https://evil.example/x.example.com", False),
        ("https://*.example.com", "https://a@x.example.com", False),
        ("https://*.example.com:8443", "https://shop.example.com:8443", True),
        ("https://*.example.com:8443", "https://shop.example.com", False),
    ],
)
def test_which_origins_a_pattern_allows(pattern: str, origin: str, allowed: bool) -> None:
    assert matches(pattern, origin) is allowed


def test_no_pattern_allows_nothing() -> None:
    assert not allows((), "https://shop.example.com")
    assert allows(("https://a.example.com", "https://*.shop.example"), "https://eu.shop.example")
