"""Which VIP addresses belong on the loopback, and what to change to get there (pure).

No netlink here: `netlink.LoopbackAddresses` reads what the interface holds, asks
`plan_loopback_changes` what to do, and applies the answer. Keeping the decision pure lets the
ownership rule ("never touch an address we did not add") be tested with plain tables.

Prefixes are strings such as '192.0.2.10/32' or '2001:db8::10/128'; they are normalized
here (compressed IPv6, explicit prefix length) so that '2001:DB8:0::10/128' read back from
the kernel and '2001:db8::10/128' from the config compare equal.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from anycast_ctl.config.node import LoopbackMode


@dataclass(frozen=True)
class AddAddress:
    prefix: str


@dataclass(frozen=True)
class RemoveAddress:
    prefix: str


AddressAction = AddAddress | RemoveAddress


@lru_cache(maxsize=16_384)
def normalize(prefix: str) -> str:
    """'192.0.2.10' -> '192.0.2.10/32'; '2001:DB8::A/128' -> '2001:db8::a/128'.

    An interface address keeps its host part ('127.0.0.1/8' stays as is), so this uses
    ip_interface rather than ip_network. Cached: every loopback reconcile normalizes each
    VIP and each address present, and with 1,000 VIPs parsing them all took about 100 ms of
    the agent's event loop per withdraw-and-announce (py-spy, 2026-12-02).
    """
    return str(ipaddress.ip_interface(prefix))


def _sort_key(prefix: str) -> tuple[int, int, int]:
    iface = ipaddress.ip_interface(prefix)
    return (iface.version, int(iface.ip), iface.network.prefixlen)


def _normalized(prefixes: Iterable[str]) -> set[str]:
    return {normalize(p) for p in prefixes}


def plan_loopback_changes(
    desired: Iterable[str], present: Iterable[str], owned: Iterable[str]
) -> list[AddressAction]:
    """The actions that turn `present` into `desired`, touching only addresses we own.

    - desired and absent: add it (with our protocol mark, so it becomes owned).
    - desired and present, whoever added it: nothing to do (someone else's copy is kept and
      never added a second time; `foreign_desired` names those, for a log line).
    - owned, present and not desired: remove it.
    - present, not owned, not desired: someone else's; left alone.

    Adds come before removes (a new VIP is in place before an old one goes), each group in
    address order, so the same inputs always give the same list. Applying the plan and
    planning again gives an empty list.
    """
    want = _normalized(desired)
    have = _normalized(present)
    ours = _normalized(owned) & have  # an "owned" address that is gone is not ours to remove
    adds = sorted(want - have, key=_sort_key)
    removes = sorted(ours - want, key=_sort_key)
    return [AddAddress(p) for p in adds] + [RemoveAddress(p) for p in removes]


def foreign_desired(
    desired: Iterable[str], present: Iterable[str], owned: Iterable[str]
) -> set[str]:
    """Desired addresses already on the interface but added by someone else (not ours).

    They serve traffic just as well, but we will never remove them on withdraw or shutdown:
    worth a warning so an operator knows why the VIP stays on the loopback.
    """
    return (_normalized(desired) & _normalized(present)) - _normalized(owned)


def desired_for(
    vip_prefixes_announced: Iterable[str],
    all_vips: Iterable[str],
    mode: LoopbackMode,
    remove_on_withdraw: bool,
    owned: Iterable[str] = (),
) -> set[str]:
    """The VIP addresses that should be on the loopback now.

    - ALWAYS: every configured VIP, announced or not (the node answers for the VIP whether
      or not the routers send it traffic).
    - WHILE_UP: the announced VIPs. With remove_on_withdraw=False a withdrawn VIP's address
      stays once added: `owned` (what we hold now) is kept, as long as the VIP is still
      configured — a VIP deleted from the config on reload is always removed.
    Announced prefixes that are not configured VIPs are ignored: only configured VIPs ever
    reach the loopback.
    """
    configured = _normalized(all_vips)
    if LoopbackMode(mode) is LoopbackMode.ALWAYS:
        return configured
    wanted = _normalized(vip_prefixes_announced) & configured
    if not remove_on_withdraw:
        wanted |= _normalized(owned) & configured
    return wanted
