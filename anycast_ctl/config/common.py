"""Field types shared by the node config and the topology."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class StrictModel(BaseModel):
    """Unknown fields are errors: a misspelt key must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
