"""The target policy: which addresses and hosts are refused, and the names never looked up."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from delivery.transport.targets import (
    METADATA_ADDRESSES,
    PRIVATE_ALLOWED,
    TargetPolicy,
    TargetRefused,
    is_metadata_target,
    is_private_target,
    refuse_special_use,
)
from ingest.taxonomy import TRANSPORT_CODES, ErrorClass


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
        ("64:ff9b:1::808:808", True),  # local-use NAT64 (RFC 8215), counted global by ipaddress
        ("168.63.129.16", True),  # Azure's wire server: publicly routable, still refused
        ("192.0.0.192", True),  # Oracle's metadata, counted global by ipaddress
        ("100.100.100.200", True),
        ("fd00:ec2::254", True),
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


STRICT = TargetPolicy()
ALLOW_10_1 = TargetPolicy(allowed_networks=(ipaddress.ip_network("10.1.0.0/16"),))

#: (address, strict, private allowed, 10.1.0.0/16 allowed), from the module docstring's order.
ADDRESSES = [
    ("93.184.215.14", True, True, True),
    ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True, True, True),
    ("::ffff:93.184.215.14", True, True, True),
    ("127.0.0.1", False, True, False),
    ("::1", False, True, False),
    ("::ffff:127.0.0.1", False, True, False),
    ("64:ff9b::7f00:1", False, True, False),
    ("2002:7f00:1::", False, True, False),
    ("0.0.0.0", False, True, False),
    ("::", False, True, False),
    ("10.0.0.1", False, True, False),
    ("10.1.2.3", False, True, True),
    ("::ffff:10.1.2.3", False, True, True),  # judged by the IPv4 address it carries, allow-list included
    ("172.16.0.1", False, True, False),
    ("192.168.1.1", False, True, False),
    ("100.64.0.1", False, True, False),
    ("fd12:3456::1", False, True, False),
    ("fe80::1%eth0", False, True, False),
    ("224.0.0.1", False, True, False),
    ("ff02::1", False, True, False),
    ("169.254.169.254", False, False, False),
    ("::ffff:169.254.169.254", False, False, False),
    ("64:ff9b::a9fe:a9fe", False, False, False),
    ("fd00:ec2::254", False, False, False),
    ("100.100.100.200", False, False, False),
    ("192.0.0.192", False, False, False),
    ("168.63.129.16", False, False, False),
    ("::ffff:168.63.129.16", False, False, False),
]


@pytest.mark.parametrize(("address", "strict", "private_allowed", "listed"), ADDRESSES)
def test_the_policy_judges_each_address(
    address: str, strict: bool, private_allowed: bool, listed: bool
) -> None:
    assert STRICT.permits(address) is strict
    assert PRIVATE_ALLOWED.permits(address) is private_allowed
    assert ALLOW_10_1.permits(address) is listed


def test_every_metadata_address_is_refused_unless_its_network_is_listed() -> None:
    for address in METADATA_ADDRESSES:
        assert not PRIVATE_ALLOWED.permits(str(address)), address
        listed = TargetPolicy(allowed_networks=(ipaddress.ip_network(address),))
        assert listed.permits(str(address)), address


def test_refused_addresses_are_left_out_of_an_answer() -> None:
    answer = ["127.0.0.1", "93.184.215.14", "::ffff:169.254.169.254", "2606:4700:4700::1111"]
    assert STRICT.permitted("hooks.example.com", answer) == ["93.184.215.14", "2606:4700:4700::1111"]


def test_an_answer_with_nothing_permitted_is_refused_naming_its_addresses() -> None:
    with pytest.raises(TargetRefused) as raised:
        STRICT.permitted("rebind.example.com", ["127.0.0.1", "::ffff:10.0.0.1"])
    assert raised.value.refused == ("127.0.0.1", "::ffff:10.0.0.1")
    assert str(raised.value) == (
        "rebind.example.com resolved only to addresses the target policy refuses: 127.0.0.1, ::ffff:10.0.0.1"
    )


def test_an_empty_answer_is_not_a_refusal() -> None:
    assert STRICT.permitted("empty.example.com", []) == []


@pytest.mark.parametrize(
    ("host", "strict", "listed"),
    [
        ("hooks.example.com", True, True),  # a name: judged on its addresses when connecting
        ("93.184.215.14", True, True),
        ("[2606:4700:4700::1111]", True, True),
        ("127.0.0.1", False, False),
        ("127.1", False, False),
        ("10.1.2.3", False, True),
        ("0x0a.1.2.3", False, True),
        ("localhost", False, False),
        ("API.localhost.", False, False),
        ("169.254.169.254", False, False),
    ],
)
def test_a_host_as_written(host: str, strict: bool, listed: bool) -> None:
    assert STRICT.permits_host(host) is strict
    assert ALLOW_10_1.permits_host(host) is listed
    assert PRIVATE_ALLOWED.permits_host(host) is (host != "169.254.169.254")


def test_localhost_passes_where_a_loopback_network_is_listed() -> None:
    assert TargetPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),)).permits_host("localhost")


@pytest.mark.parametrize(
    ("host", "metadata"),
    [
        ("169.254.169.254", True),
        ("[::ffff:169.254.169.254]", True),
        ("168.63.129.16", True),
        ("169.254.169.253", False),
        ("metadata.google.internal", False),  # a name: refused on its address when connecting
    ],
)
def test_is_metadata_target(host: str, metadata: bool) -> None:
    assert is_metadata_target(host) is metadata


def test_a_refused_target_is_a_precheck_code_that_is_not_retried() -> None:
    assert TRANSPORT_CODES["private_target"] == (ErrorClass.PRECHECK, False)
