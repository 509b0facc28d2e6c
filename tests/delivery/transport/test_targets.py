"""The target policy: which hosts are private, and the names never looked up."""

from __future__ import annotations

import socket

import pytest

from delivery.transport.targets import is_private_target, refuse_special_use


@pytest.mark.parametrize(
    ("host", "private"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("172.31.255.255", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),
        ("255.255.255.255", True),
        ("224.0.0.1", True),
        ("192.0.2.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::", True),
        ("fe80::1", True),
        ("fe80::1%eth0", True),
        ("fd00::1", True),
        ("ff02::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", True),
        ("2002:7f00:1::", True),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", True),  # NAT64 of 169.254.169.254
        ("localhost", True),
        ("LOCALHOST.", True),
        ("api.localhost", True),
        ("127.1", True),
        ("0x7f.0.0.1", True),
        ("2130706433", True),
        ("017700000001", True),
        ("8.8.8.8", False),
        ("172.32.0.1", False),
        ("1.1.1.1", False),
        ("2606:4700:4700::1111", False),
        ("::ffff:8.8.8.8", False),
        ("2002:808:808::", False),
        ("64:ff9b::808:808", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("internal", False),  # a name: checked on its addresses when sent
        ("", False),
    ],
)
def test_is_private_target(host: str, private: bool) -> None:
    assert is_private_target(host) is private


@pytest.mark.parametrize("host", ["invalid", "hooks.invalid", "a.b.invalid"])
def test_special_use_names_fail_before_any_lookup(host: str) -> None:
    with pytest.raises(socket.gaierror) as raised:
        refuse_special_use(host)
    assert raised.value.errno == socket.EAI_NONAME


@pytest.mark.parametrize("host", ["example.com", "invalid.example.com", "notinvalid"])
def test_other_names_pass(host: str) -> None:
    refuse_special_use(host)
