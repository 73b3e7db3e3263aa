"""Field types shared by the node config and the topology."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class StrictModel(BaseModel):
    """Unknown fields are errors: a misspelt key must never be silently ignored."""

    # No nan or inf anywhere: every number in a config has a finite documented range.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _no_control_chars(value: str) -> str:
    # A newline in anything that reaches an ExaBGP line would turn one command into two.
    if _CONTROL_CHARS.search(value):
        raise ValueError("must not contain control characters (newlines, tabs, ...)")
    return value


SafeStr = Annotated[str, AfterValidator(_no_control_chars)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")]
ASN = Annotated[int, Field(ge=1, le=4294967295)]
Port = Annotated[int, Field(ge=1, le=65535)]
U32 = Annotated[int, Field(ge=0, le=4294967295)]


def _ip(value: str) -> str:
    return str(ipaddress.ip_address(value))


IPAddr = Annotated[str, AfterValidator(_ip)]


def host_prefix(value: str) -> str:
    """'192.0.2.10' or '192.0.2.10/32' -> '192.0.2.10/32'; anycast VIPs are host routes.
    Used for config fields and for VIPs named on the control socket alike."""
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IP address or prefix: {exc}") from None
    if net.prefixlen != net.max_prefixlen:
        raise ValueError(f"a VIP must be a host route (/{net.max_prefixlen}), not /{net.prefixlen}")
    return str(net)


HostPrefix = Annotated[str, AfterValidator(host_prefix)]

_NOT_UNICAST_V4 = (
    (ipaddress.ip_network("0.0.0.0/8"), "in 0.0.0.0/8 ('this network'), never routed"),
    (ipaddress.ip_network("127.0.0.0/8"), "a loopback address"),
    (ipaddress.ip_network("169.254.0.0/16"), "link-local: routers do not forward it"),
    (ipaddress.ip_network("224.0.0.0/4"), "a multicast address"),
    (ipaddress.ip_network("255.255.255.255/32"), "the broadcast address"),
)
_NOT_UNICAST_V6 = (
    (ipaddress.ip_network("::/128"), "the unspecified address"),
    (ipaddress.ip_network("::1/128"), "the loopback address"),
    (ipaddress.ip_network("::ffff:0:0/96"), "IPv4-mapped: write the IPv4 address instead"),
    (ipaddress.ip_network("fe80::/10"), "link-local: routers do not forward it"),
    (ipaddress.ip_network("ff00::/8"), "a multicast address"),
)


def not_unicast(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why `address` cannot be a routed unicast host address (a VIP, a BGP peer), or None."""
    for net, why in _NOT_UNICAST_V4 if address.version == 4 else _NOT_UNICAST_V6:
        if address in net:
            return why
    return None


def unicast_host_prefix(value: str) -> str:
    """A VIP: a host route to a unicast address that routers forward ('192.0.2.10/32')."""
    prefix = host_prefix(value)
    why = not_unicast(ipaddress.ip_network(prefix).network_address)
    if why:
        raise ValueError(f"{prefix} cannot be an anycast VIP: {why}")
    return prefix


def _unicast_ip(value: str) -> str:
    address = ipaddress.ip_address(value)
    why = not_unicast(address)
    if why:
        raise ValueError(f"{address} is not a unicast host address: {why}")
    return str(address)


def router_id(value: str) -> str:
    """A BGP identifier: four octets, non-zero (RFC 6286), written as an IPv4 address."""
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IPv4 address; a BGP router id is one, even on an IPv6-only node"
        ) from None
    if int(address) == 0:
        raise ValueError("0.0.0.0 is not a router id: it must be non-zero (RFC 6286)")
    return str(address)


RouterId = Annotated[str, AfterValidator(router_id)]


# A VIP (topology and node config alike).
VipPrefix = Annotated[str, AfterValidator(unicast_host_prefix)]
# A BGP peer or next hop: an address packets can be sent to.
UnicastIP = Annotated[str, AfterValidator(_unicast_ip)]

_MD5_KEY = re.compile(r"^[!-~]{1,80}$")


def _md5_key(value: str) -> str:
    # FRR's `password` takes one word, ExaBGP's config one token; the kernel's
    # TCP_MD5SIG_MAXKEYLEN is 80 bytes. Checked at load, so every command names this field.
    if _MD5_KEY.match(value):
        return value
    if not value or len(value) > 80:
        problem = f"is {len(value)} characters long"
    elif _CONTROL_CHARS.search(value):
        problem = "contains control characters (newlines, tabs, ...)"
    elif " " in value:
        problem = "contains a space"
    else:
        problem = "contains a character outside printable ASCII"
    raise ValueError(
        f"a TCP-MD5 password is 1-80 printable ASCII characters without spaces; it {problem}"
    )


# A topology's sessions run on FRR routers: one printable ASCII word.
Md5Password = Annotated[str, AfterValidator(_md5_key)]


def _md5_secret(value: str) -> str:
    # ExaBGP gets it base64-encoded, so any printable character is fine; the kernel's limit holds.
    _no_control_chars(value)
    size = len(value.encode())
    if not 1 <= size <= 80:
        raise ValueError(f"a TCP-MD5 password is 1-80 bytes (the kernel's limit); it is {size}")
    return value


# A node config's neighbor may be any BGP speaker: spaces and quotes are allowed.
Md5Secret = Annotated[str, AfterValidator(_md5_secret)]
