"""Second chance on an LB node, I/O: the overlay devices and the nftables table, applied and
removed (the one place that runs `nft`, `ip` and `bridge` for it).

    apply_plan(plan, netns="acx-sc42-lb2")   # devices first (nft resolves them), then the table
    apply_plan(new, netns, previous=plan)    # the same devices: the table alone
    counters(netns)                            # {"forwarded": packets, "arrived": packets,
                                               #  "forwarded_lb1": ...} (both tables together)
    read_counters(netns)                       # packets and bytes per peer, one nft run
    remove(netns)                              # table and devices gone; safe to call twice

The ruleset replaces the table in one nft transaction (libnftables in this process when the
namespace is its own, chance/nftlib.py; else the `nft` command), so updating the entries
never opens a window without forwarding. A device is recreated only when its VNI, local
address or port differ; its flood list (the live peers) is rewritten each time. Every command
is bounded by `timeout` seconds; a failure raises ChanceError naming the command and nft's or
ip's words.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

from anycast_ctl.chance import nftlib
from anycast_ctl.chance.nft_counters import ChanceCounters, CountersFormatError, parse_counters
from anycast_ctl.render.chance import (
    VXLAN_PORT,
    ChancePlan,
    OverlayDevice,
    device,
    forwarded_counter,
    overlay_devices,
    removal,
    ruleset,
)
from anycast_ctl.sim.chain import HOP_LIMIT_MAX

ZERO_MAC = "00:00:00:00:00:00"
# Loose reverse-path check on the overlay: forwarded packets come from clients the node
# routes elsewhere, so strict rp_filter would drop every one.
RP_FILTER_LOOSE = "2"


class ChanceError(RuntimeError):
    pass


def _run(argv: Sequence[str], netns: str | None, timeout: float, stdin: str | None = None) -> str:
    full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    try:
        done = subprocess.run(
            full, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise ChanceError(f"{' '.join(argv)}: no answer within {timeout} s") from None
    except FileNotFoundError:
        raise ChanceError(
            f"{argv[0]} is not installed (apt-get install nftables iproute2)"
        ) from None
    if done.returncode != 0:
        raise ChanceError(
            f"{' '.join(argv)}: {done.stderr.strip() or 'exit ' + str(done.returncode)}"
        )
    return done.stdout


def _nft(text: str, netns: str | None, timeout: float) -> None:
    """One nft transaction: in this process when it is the namespace's own (no process to
    start: a few ms instead of tens), else `nft -f -` there."""
    if netns is None and nftlib.available():
        try:
            nftlib.run(text)
        except nftlib.NftLibError as exc:
            raise ChanceError(f"nft -f -: {exc}") from None
        return
    _run(["nft", "-f", "-"], netns, timeout, stdin=text)


def _link(name: str, netns: str | None, timeout: float) -> dict[str, object] | None:
    try:
        out = _run(["ip", "-j", "-d", "link", "show", "dev", name], netns, timeout)
    except ChanceError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    links = json.loads(out)
    return links[0] if links else None


def _matches(link: dict[str, object], dev: OverlayDevice) -> bool:
    info = link.get("linkinfo")
    if not isinstance(info, dict) or info.get("info_kind") != "vxlan":
        return False
    data = info.get("info_data")
    return (
        isinstance(data, dict)
        and data.get("id") == dev.vni
        and data.get("local") == dev.local
        and data.get("port") == VXLAN_PORT
    )


def _ensure_device(dev: OverlayDevice, netns: str | None, timeout: float) -> None:
    present = _link(dev.name, netns, timeout)
    if present is not None and not _matches(present, dev):
        _run(["ip", "link", "del", "dev", dev.name], netns, timeout)
        present = None
    if present is None:
        _run(
            [
                "ip", "link", "add", dev.name, "type", "vxlan", "id", str(dev.vni),
                "local", dev.local, "dstport", str(VXLAN_PORT), "nolearning",
            ],
            netns,
            timeout,
        )  # fmt: skip
    _run(["ip", "addr", "replace", dev.address, "dev", dev.name], netns, timeout)
    if dev.address6 is not None:
        # nodad: overlay addresses are unique by construction; DAD would hold them for seconds.
        _run(
            ["ip", "-6", "addr", "replace", dev.address6, "dev", dev.name, "nodad"], netns, timeout
        )
    fdb = json.loads(_run(["bridge", "-j", "fdb", "show", "dev", dev.name], netns, timeout))
    for entry in fdb:
        if entry.get("mac") == ZERO_MAC and entry.get("dst") not in dev.remotes:
            _run(
                ["bridge", "fdb", "del", ZERO_MAC, "dev", dev.name, "dst", str(entry["dst"])],
                netns,
                timeout,
            )
    have = {e.get("dst") for e in fdb if e.get("mac") == ZERO_MAC}
    for remote in dev.remotes:
        if remote not in have:
            _run(
                ["bridge", "fdb", "append", ZERO_MAC, "dev", dev.name, "dst", remote],
                netns,
                timeout,
            )
    _run(["sysctl", "-qw", f"net.ipv4.conf.{dev.name}.rp_filter={RP_FILTER_LOOSE}"], netns, timeout)
    if dev.mtu is not None:
        _run(["ip", "link", "set", "dev", dev.name, "mtu", str(dev.mtu)], netns, timeout)
    _run(["ip", "link", "set", "dev", dev.name, "up"], netns, timeout)


def apply_plan(
    plan: ChancePlan,
    netns: str | None = None,
    timeout: float = 10.0,
    previous: ChancePlan | None = None,
) -> None:
    """Devices for every hop level (extra levels of an earlier plan go), then the table.

    Given the plan applied last, and its devices are the ones wanted (same hop levels, same
    live peers), only the table is replaced: one nft transaction instead of about ten
    commands, so a peer's change of state reaches the table before the routers move flows."""
    wanted = overlay_devices(plan)
    if previous is not None and overlay_devices(previous) == wanted:
        _nft(ruleset(plan), netns, timeout)
        return
    for dev in wanted:
        _ensure_device(dev, netns, timeout)
    _nft(ruleset(plan), netns, timeout)
    for level in range(plan.hop_limit + 1, HOP_LIMIT_MAX + 1):
        if _link(device(level), netns, timeout) is not None:
            _run(["ip", "link", "del", "dev", device(level)], netns, timeout)


def remove(netns: str | None = None, timeout: float = 10.0) -> None:
    """The table first (no rule may point at a device being deleted), then every device."""
    _nft(removal(), netns, timeout)
    for level in range(1, HOP_LIMIT_MAX + 1):
        if _link(device(level), netns, timeout) is not None:
            _run(["ip", "link", "del", "dev", device(level)], netns, timeout)


def read_counters(netns: str | None = None, timeout: float = 10.0) -> ChanceCounters:
    """Packets and bytes of each named counter of both tables, in one `nft` read (in this
    process when it is the namespace's own, as table updates are: no process per metrics
    scrape); not `present` when neither table is there."""
    if netns is None and nftlib.available():
        try:
            out = nftlib.list_json("list counters")
        except nftlib.NftLibError as exc:
            raise ChanceError(f"nft -j list counters: {exc}") from None
    else:
        out = _run(["nft", "-j", "list", "counters"], netns, timeout)
    try:
        return parse_counters(out)
    except CountersFormatError as exc:
        raise ChanceError(str(exc)) from None


def counters(netns: str | None = None, timeout: float = 10.0) -> dict[str, int]:
    """Packets through the counters: "forwarded" (to every peer), "arrived", and
    "forwarded_<peer>" for each peer; {} when neither table is there."""
    read = read_counters(netns, timeout)
    if not read.present:
        return {}
    return {
        "forwarded": read.forwarded_total.packets,
        "arrived": read.arrived.packets,
        **{forwarded_counter(peer): c.packets for peer, c in read.forwarded.items()},
    }


def present(netns: str | None = None, timeout: float = 10.0) -> bool:
    """Whether any of it is left: the table or a device."""
    return bool(counters(netns, timeout)) or any(
        _link(device(level), netns, timeout) is not None for level in range(1, HOP_LIMIT_MAX + 1)
    )
