"""The one place where the agent talks netlink: VIP addresses on the loopback (agent/rtnl.py).

Ownership: every address the agent adds carries the address protocol ANYCAST_CTL_ADDR_PROTO
(IFA_PROTO, Linux >= 5.18; `ip address show` prints it as `proto 0x41` or, with an entry in
/etc/iproute2/rt_addrprotos, as its name). The kernel keeps that mark with the address, so
after an agent crash or restart we still know exactly which addresses are ours, with no
state file to lose or get out of step. An address without the mark — added by an operator,
keepalived, another tool — is never removed, even when it carries a VIP.

Each call opens its own netlink socket and closes it. The synchronous methods, called from a
thread whose asyncio loop is running, do their netlink work in a short-lived helper thread
and wait for it (blocking the loop for that time); `reconcile_async` does not block the loop.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from anycast_ctl.agent.rtnl import Rtnl, RtnlError
from anycast_ctl.agent.vips import (
    AddAddress,
    AddressAction,
    RemoveAddress,
    foreign_desired,
    normalize,
    plan_loopback_changes,
)
from anycast_ctl.errors import UserError

log = logging.getLogger(__name__)
T = TypeVar("T")

# 0x41 is ASCII 'A' (anycast). Values 0-3 are the kernel's own (unspec, kernel_lo, kernel_ra,
# kernel_ll); anything else is free for user space and nothing else here uses 0x41.
ANYCAST_CTL_ADDR_PROTO = 0x41


class NetlinkFailure(Exception):
    """The kernel refused a request for a reason that is not the operator's input (EPERM...)."""


@dataclass(frozen=True)
class AddressResult:
    """What happened to one action: ok, and one human line saying what was done or why not."""

    action: AddressAction
    ok: bool
    detail: str


def _parse_prefix(prefix: str) -> tuple[str, int, int]:
    iface = ipaddress.ip_interface(prefix)
    family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
    return str(iface.ip), iface.network.prefixlen, family


def _off_the_loop(func: Callable[..., T], *args) -> T:
    """Call func(*args) here, or in a helper thread if this thread runs an asyncio loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return func(*args)
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, func(*args)))
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append((False, exc))

    helper = threading.Thread(target=run, name="anycast-ctl-netlink")
    helper.start()
    helper.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _where(interface: str, netns: str | None) -> str:
    return f"{interface!r} in network namespace {netns!r}" if netns else f"{interface!r}"


class LoopbackAddresses:
    """Add, remove and reconcile the VIP addresses we own on one interface (default `lo`)."""

    def __init__(
        self, interface: str = "lo", netns: str | None = None, proto: int = ANYCAST_CTL_ADDR_PROTO
    ):
        self.interface = interface
        self.netns = netns
        self.proto = proto
        # Warn once per address about a VIP someone else holds, not on every reconcile.
        self._warned_foreign: set[str] = set()

    # ------------------------------------------------------------ plumbing
    @contextmanager
    def _session(self) -> Iterator[tuple[Rtnl, int]]:
        try:
            ipr = Rtnl(netns=self.netns)
        except OSError as exc:
            raise NetlinkFailure(
                f"cannot open netlink for {_where(self.interface, self.netns)}: {exc}"
            ) from exc
        try:
            found = ipr.link_index(self.interface)
            if found is None:
                raise UserError.single(
                    "<netlink>",
                    "loopback.interface",
                    f"no interface named {_where(self.interface, self.netns)}",
                )
            yield ipr, found
        finally:
            ipr.close()

    def _dump(self, ipr: Rtnl, index: int) -> tuple[set[str], set[str]]:
        present, owned = set(), set()
        for address, prefixlen, proto in ipr.addresses(index):
            prefix = normalize(f"{address}/{prefixlen}")
            present.add(prefix)
            if proto == self.proto:
                owned.add(prefix)
        return present, owned

    def _add(self, ipr: Rtnl, index: int, prefix: str) -> AddressResult:
        action = AddAddress(prefix)
        address, prefixlen, family = _parse_prefix(prefix)
        try:
            # A VIP is shared by every node on purpose: duplicate address detection would
            # only delay it (and a DAD failure would leave it unusable).
            nodad = family == socket.AF_INET6
            ipr.add(index, address, prefixlen, proto=self.proto, nodad=nodad)
        except RtnlError as exc:
            if exc.code == errno.EEXIST:
                return AddressResult(action, True, f"{prefix} already on {self.interface}")
            return AddressResult(action, False, f"cannot add {prefix} to {self.interface}: {exc}")
        return AddressResult(action, True, f"added {prefix} to {self.interface}")

    def _remove(self, ipr: Rtnl, index: int, prefix: str, owned: set[str]) -> AddressResult:
        action = RemoveAddress(prefix)
        if prefix not in owned:
            # The kernel deletes by address, whatever its protocol: the ownership check is ours.
            return AddressResult(
                action,
                False,
                f"not removing {prefix} from {self.interface}: not added by anycast-ctl",
            )
        address, prefixlen, _ = _parse_prefix(prefix)
        try:
            ipr.delete(index, address, prefixlen)
        except RtnlError as exc:
            if exc.code == errno.EADDRNOTAVAIL:
                return AddressResult(action, True, f"{prefix} already gone from {self.interface}")
            return AddressResult(
                action, False, f"cannot remove {prefix} from {self.interface}: {exc}"
            )
        return AddressResult(action, True, f"removed {prefix} from {self.interface}")

    def _apply(
        self,
        ipr: Rtnl,
        index: int,
        actions: Iterable[AddressAction],
        owned: set[str] | None = None,
    ) -> list[AddressResult]:
        if owned is None:
            owned = self._dump(ipr, index)[1]
        results = []
        for action in actions:
            prefix = normalize(action.prefix)
            if isinstance(action, AddAddress):
                results.append(self._add(ipr, index, prefix))
            else:
                results.append(self._remove(ipr, index, prefix, owned))
        for result in results:
            (log.info if result.ok else log.error)("%s", result.detail)
        return results

    # ------------------------------------------------------------ public
    def _present_and_owned(self) -> tuple[set[str], set[str]]:
        with self._session() as (ipr, index):
            return self._dump(ipr, index)

    def present(self) -> set[str]:
        """Every address on the interface, ours or not, as normalized prefixes."""
        return _off_the_loop(self._present_and_owned)[0]

    def owned(self) -> set[str]:
        """The addresses on the interface that carry our protocol mark."""
        return _off_the_loop(self._present_and_owned)[1]

    def add(self, prefix: str) -> AddressResult:
        return self.apply([AddAddress(prefix)])[0]

    def remove(self, prefix: str) -> AddressResult:
        """Remove `prefix` if we own it; someone else's address is refused (ok=False)."""
        return self.apply([RemoveAddress(prefix)])[0]

    def apply(self, actions: Iterable[AddressAction]) -> list[AddressResult]:
        """Apply each action; one failure does not stop the others. Never raises for a
        per-address kernel error (see each result); raises UserError if the interface is
        missing and NetlinkFailure if netlink itself cannot be opened."""
        return _off_the_loop(self._apply_all, list(actions))

    def _apply_all(self, actions: list[AddressAction]) -> list[AddressResult]:
        with self._session() as (ipr, index):
            return self._apply(ipr, index, actions)

    def reconcile(self, desired: Iterable[str]) -> list[AddressResult]:
        """Make our addresses on the interface exactly `desired`; returns what was done
        (empty when nothing had to change). `reconcile(set())` removes every address we own."""
        return _off_the_loop(self._reconcile, {normalize(p) for p in desired})

    def _reconcile(self, want: set[str]) -> list[AddressResult]:
        with self._session() as (ipr, index):
            present, owned = self._dump(ipr, index)
            for prefix in sorted(foreign_desired(want, present, owned) - self._warned_foreign):
                log.warning(
                    "%s is already on %s but was not added by anycast-ctl: using it,"
                    " and never removing it",
                    prefix,
                    self.interface,
                )
                self._warned_foreign.add(prefix)
            actions = plan_loopback_changes(want, present, owned)
            return self._apply(ipr, index, actions, owned) if actions else []

    async def reconcile_async(self, desired: Iterable[str]) -> list[AddressResult]:
        """`reconcile` from asyncio code: runs in a worker thread, never blocks the loop."""
        return await asyncio.to_thread(self._reconcile, {normalize(p) for p in desired})
