"""Which web pages may send a source's events from a browser: origin patterns, checked and matched.

A browser says which page a request comes from in its `Origin` header
(`https://shop.example.com`, `http://localhost:3000`: scheme, host and a
port unless it is the scheme's default). A source's `allowed_origins`
(docs/configuration.md) lists patterns, each one of:

- `*`: any page, including sandboxed ones (`Origin: null`);
- an origin, `https://shop.example.com` or `http://localhost:3000`: that one
  exactly (the scheme's default port may be written or not);
- `https://*.example.com`: any subdomain of `example.com`, at any depth, with
  that scheme and port; not `example.com` itself (list it as well).

`parse_pattern` checks what the config file holds and returns the form
`matches` compares with what browsers send: lower case, no default port.
Requests without an `Origin` header are not from a page and are not judged
here (`delivery.api.cors`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

#: The pattern that allows every page.
ANY = "*"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_EXAMPLE = "'*' or an origin such as 'https://shop.example.com'"


def parse_pattern(text: str) -> str:
    """`text` as a pattern `matches` takes; ValueError saying what is wrong, for a config problem."""
    if text == ANY:
        return ANY
    if not text.isascii() or any(char.isspace() or not char.isprintable() for char in text):
        raise ValueError(
            f"{text!r}: write {_EXAMPLE}, ASCII without spaces (an international domain in its "
            "xn-- form, as browsers send it)"
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} is not an origin: write {_EXAMPLE}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{text!r} is not an origin: write {_EXAMPLE}")
    host = parts.hostname.lower()  # urlsplit lowers it too; said here because matching relies on it
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{text!r}: an origin carries no user name or password")
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        shown = f"{scheme}://{_netloc(host, port, scheme)}"
        raise ValueError(f"{text!r}: an origin has no path, query or fragment; write {shown!r}")
    if "*" in host:
        suffix = host.removeprefix("*.")
        if not host.startswith("*.") or "*" in suffix or "." not in suffix:
            raise ValueError(
                f"{text!r}: a wildcard stands for subdomains, first and alone, over a domain of "
                "two labels or more, as in 'https://*.example.com'"
            )
    return f"{scheme}://{_netloc(host, port, scheme)}"


def _netloc(host: str, port: int | None, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None or port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"


def matches(pattern: str, origin: str) -> bool:
    """Whether a browser's `Origin` header value is one `pattern` (from `parse_pattern`) allows."""
    if pattern == ANY:
        return True
    origin = origin.lower()
    if origin == pattern:
        return True
    scheme, separator, wildcard_rest = pattern.partition("://*.")
    if not separator or not origin.startswith(f"{scheme}://"):
        return False
    # `*.example.com:8443` against the origin's `shop.example.com:8443`: a longer host
    # ending in "." + the pattern's rest, which holds its port when it has one.
    rest = origin.removeprefix(f"{scheme}://")
    if "/" in rest or "@" in rest:
        return False  # not an origin a browser sends
    label, dot, tail = rest.partition(".")
    return bool(label) and bool(dot) and (tail == wildcard_rest or tail.endswith("." + wildcard_rest))


def allows(patterns: tuple[str, ...], origin: str) -> bool:
    """Whether any of `patterns` allows `origin`."""
    return any(matches(pattern, origin) for pattern in patterns)
