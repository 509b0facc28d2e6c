"""The target policy: which hosts the engine may send to.

`is_private_target` judges a URL's host as written (config and pre-send
checks); `refuse_special_use` fails names that must never be looked up
(RFC 6761's `.invalid`) before any resolver is asked.
"""

from __future__ import annotations

import ipaddress
import re
import socket


def is_private_target(host: str) -> bool:
    """Whether a URL host is an address the engine must not reach unless allowed.

    True for `localhost` (and `*.localhost`) and for IP literals that are not
    globally reachable: loopback, private, link-local, shared (CGNAT),
    unspecified, reserved, documentation, multicast; IPv4 addresses inside
    IPv6 (mapped, 6to4, NAT64) are judged by the IPv4 address. Legacy IPv4
    spellings the resolver accepts (`127.1`, `0x7f.1`, `2130706433`) count
    as literals. Any other name is False: it is checked again on the
    addresses it resolves to when the request is sent.
    """
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _ip_literal(name)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        address = _embedded_ipv4(address) or address
    return address.is_multicast or not address.is_global


def refuse_special_use(host: str) -> None:
    """Raise `socket.gaierror` for a name under `.invalid` (`host` lower-case, no trailing dot).

    RFC 6761 asks resolvers to answer those negatively without a query; glibc
    asks the DNS servers anyway, which can wait for a timeout where there is no network.
    """
    if host == "invalid" or host.endswith(".invalid"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (RFC 6761 .invalid)")


def _ip_literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])  # drop an IPv6 zone id (fe80::1%eth0)
    except ValueError:
        pass
    # The resolver takes inet_aton's legacy forms as literals: 127.1, 0x7f.0.0.1, 2130706433.
    if name and re.fullmatch(r"[0-9a-fx.]+", name):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None
