"""The target policy: which addresses the engine may connect to.

A webhook's host name is the customer's: its DNS may answer a public
address to one lookup and `127.0.0.1` or a cloud metadata address to the
next (DNS rebinding). So the policy is applied where it holds, by each
client to the addresses it is about to connect to, after its own lookup,
on every new connection (`TargetPolicy.permitted`); a pooled connection is
not checked again, it was checked when it was made. Each address is
judged in this order::

    address (an IP literal in the URL, or one the host name resolved to)
    ├── inside engine.allowed_private_cidrs .... allowed (the operator named it)
    ├── a cloud metadata address ............... refused, even with allow_private_targets
    │   (METADATA_ADDRESSES)
    ├── allow_private_targets = true ........... allowed
    ├── not globally reachable, or multicast ... refused: loopback, private, link-local,
    │                                            unique-local, shared (CGNAT), unspecified,
    │                                            reserved, documentation, multicast
    └── anything else .......................... allowed

IPv4 addresses inside IPv6 (`::ffff:127.0.0.1`, 6to4 `2002:7f00:1::`,
NAT64 `64:ff9b::7f00:1`) are judged by the IPv4 address they carry.
Addresses the policy refuses are left out of a host's answer; a host with
no address left fails with `TargetRefused`, recorded as class `precheck`,
code `private_target` (`TARGET_REFUSED_CODE`, not retried), like the
pre-send check that refuses a private IP literal.

`is_private_target` judges a URL's host as written (config and pre-send
checks); `refuse_special_use` fails names that must never be looked up
(RFC 6761's `.invalid`) before any resolver is asked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The transport code of a refused target; `ingest.taxonomy` classes it `precheck`, not retryable.
TARGET_REFUSED_CODE: Final = "private_target"

#: Cloud metadata and platform endpoints (credentials, instance identity), refused even where
#: private targets are allowed: AWS, GCP, Azure IMDS, OpenStack (169.254.169.254), AWS over
#: IPv6 (fd00:ec2::254), Alibaba (100.100.100.200), Oracle (192.0.0.192), and Azure's wire
#: server (168.63.129.16), which is publicly routable and so passes the other rules.
METADATA_ADDRESSES: Final[frozenset[IPAddress]] = frozenset(
    ipaddress.ip_address(text)
    for text in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192", "168.63.129.16")
)

#: Ranges `ipaddress` counts as global that are not: NAT64 for local use (RFC 8215), whose
#: IPv4 address is not at a fixed place to judge it by.
_NOT_GLOBAL: Final = (ipaddress.IPv6Network("64:ff9b:1::/48"),)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

#: Resolves a host name and port to the IP addresses to try, in order (tests inject their own).
Resolve = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to now, by the system resolver (getaddrinfo, in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class TargetRefused(Exception):
    """The target policy refused a host: nothing was connected to it.

    Both clients raise it (and map it to `TARGET_REFUSED_CODE` in their tables).
    """

    def __init__(self, host: str, refused: Sequence[str] = ()) -> None:
        if refused:
            text = f"{host} resolved only to addresses the target policy refuses: {', '.join(refused)}"
        else:
            text = f"{host} is an address the target policy refuses"
        super().__init__(text)
        self.host = host
        self.refused = tuple(refused)


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Which addresses a client may connect to (see the module docstring for the order of the rules)."""

    allow_private: bool = False
    """`[engine] allow_private_targets`: loopback, private, link-local, ... allowed (not metadata)."""
    allowed_networks: tuple[Network, ...] = ()
    """`[engine] allowed_private_cidrs`: networks allowed whatever the other rules say."""

    def permits(self, address: str) -> bool:
        """Whether a client may connect to `address` (an IP address as text, a zone id allowed)."""
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
        judged = _judged(parsed)
        if any(parsed in network or judged in network for network in self.allowed_networks):
            return True
        if judged in METADATA_ADDRESSES:
            return False
        return self.allow_private or not _private(judged)

    def permitted(self, host: str, addresses: Sequence[str]) -> list[str]:
        """The `addresses` of `host` the policy permits, in order; `TargetRefused` if it permits none."""
        allowed = [address for address in addresses if self.permits(address)]
        if addresses and not allowed:
            raise TargetRefused(host, addresses)
        return allowed

    def permits_host(self, host: str) -> bool:
        """Whether `host` as written may be connected to, before any lookup.

        An IP literal (legacy IPv4 spellings included) is judged as an
        address, and `localhost` names as the loopback addresses they name;
        any other name is True here and judged on its addresses when a
        client connects.
        """
        name = _bare(host)
        if _is_localhost(name):
            return self.permits("127.0.0.1") or self.permits("::1")
        address = _ip_literal(name)
        return address is None or self.permits(str(address))


#: The policy of a client opened without one (`open_transport`): the operator's own endpoints,
#: such as the alerts webhook, may be private; cloud metadata addresses are still refused.
PRIVATE_ALLOWED: Final = TargetPolicy(allow_private=True)


def is_private_target(host: str) -> bool:
    """Whether a URL host is an address the engine must not reach unless allowed.

    True for `localhost` (and `*.localhost`), for cloud metadata addresses
    (`METADATA_ADDRESSES`) and for IP literals that are not globally
    reachable: loopback, private, link-local, shared (CGNAT), unspecified,
    reserved, documentation, multicast; IPv4 addresses inside IPv6 (mapped,
    6to4, NAT64) are judged by the IPv4 address. Legacy IPv4 spellings the
    resolver accepts (`127.1`, `0x7f.1`, `2130706433`) count as literals.
    Any other name is False: it is checked on the addresses it resolves to
    when a client connects.
    """
    name = _bare(host)
    if _is_localhost(name):
        return True
    address = _ip_literal(name)
    if address is None:
        return False
    judged = _judged(address)
    return judged in METADATA_ADDRESSES or _private(judged)


def is_metadata_target(host: str) -> bool:
    """Whether a URL host is an IP literal of a cloud metadata address (`METADATA_ADDRESSES`), in any form."""
    address = _ip_literal(_bare(host))
    return address is not None and _judged(address) in METADATA_ADDRESSES


def refuse_special_use(host: str) -> None:
    """Raise `socket.gaierror` for a name under `.invalid` (`host` lower-case, no trailing dot).

    RFC 6761 asks resolvers to answer those negatively without a query; glibc
    asks the DNS servers anyway, which can wait for a timeout where there is no network.
    """
    if host == "invalid" or host.endswith(".invalid"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (RFC 6761 .invalid)")


def _bare(host: str) -> str:
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name


def _is_localhost(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")


def _private(address: IPAddress) -> bool:
    """Not globally reachable, or multicast (`address` already judged by its embedded IPv4)."""
    if any(address in network for network in _NOT_GLOBAL):
        return True
    return address.is_multicast or not address.is_global


def _ip_literal(name: str) -> IPAddress | None:
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


def _judged(address: IPAddress) -> IPAddress:
    """The address the rules judge: the IPv4 address inside an IPv6 one (mapped, 6to4, NAT64), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address
