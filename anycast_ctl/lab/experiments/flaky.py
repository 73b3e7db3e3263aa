"""The `flaky` scenario's check target: an LB node's own TCP check of its VIPs answers late on
a fraction of requests, for a fixed period, while the service itself stays healthy.

Both health checkers probe the node's VIPs from inside the node: our agent's `tcp` check and
the ExaBGP healthcheck's `/dev/tcp` probe each open a new connection to VIP:port over `lo`.
(The agent's rendered VIP check is a `listening` one, which makes no connection: for the
period the scenario turns it into a `tcp` check of the same address, connect_checks.py.)
An nftables rule in the node's namespace drops the opening SYN of such a local connection
with probability `percent` (nft `numgen random`, one draw per connection): that connect is
answered only when the kernel retransmits the SYN, one second later, far past either
checker's 80 ms timeout. So each check is late independently with the same probability,
whichever implementation sends it, and client traffic (arriving on the router links, not on
`lo`) is untouched: nothing the node serves is wrong, only its check is late.

    apply(lab, "lb1", 5)     # from now on 5 % of the checks of lb1's VIPs answer late
    remove(lab, "lb1")       # idempotent
"""

from __future__ import annotations

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.net import daemons

TABLE = "acx_late_checks"


def late_ruleset(topology: Topology, lb: str, percent: int) -> str:
    """Pure: the nft script that makes `percent` % of `lb`'s local connects to its VIPs late."""
    if not 0 < percent < 100:
        raise ValueError(f"percent {percent}: expected 1..99")
    rules = []
    for name in topology.lb(lb).vips:
        vip = topology.vip(name)
        family = "ip" if vip.version == 4 else "ip6"
        rules.append(
            f'    iifname "lo" {family} daddr {vip.ip} tcp dport {vip.port} '
            f"tcp flags & (fin|syn|rst|ack) == syn numgen random mod 100 < {percent} "
            "counter drop"
        )
    if not rules:
        raise ValueError(f"{lb} announces no VIP: no check to make late")
    return "\n".join(
        [
            f"table inet {TABLE} {{",
            "  chain input {",
            "    type filter hook input priority -10; policy accept;",
            *rules,
            "  }",
            "}",
            "",
        ]
    )


def apply(lab: LabHandle, lb: str, percent: int) -> None:
    text = late_ruleset(lab.topology, lb, percent)
    _nft(lab, lb, ["-f", "-"], stdin=text)


def remove(lab: LabHandle, lb: str) -> None:
    # `destroy` is newer than bookworm's nft 1.0.6: add (a no-op when present), then delete.
    _nft(lab, lb, ["-f", "-"], stdin=f"table inet {TABLE}\ndelete table inet {TABLE}\n")


def dropped(lab: LabHandle, lb: str) -> int:
    """How many SYNs the rules delayed so far (0 when the table is gone)."""
    result = daemons.run(
        lab.tag, ["nft", "list", "table", "inet", TABLE], netns=lab.namespace(lb), timeout=10
    )
    if not result.ok:
        return 0
    return sum(
        int(line.split("packets", 1)[1].split()[0])
        for line in result.stdout.splitlines()
        if "counter packets" in line
    )


def _nft(lab: LabHandle, lb: str, args: list[str], stdin: str) -> None:
    result = daemons.run(lab.tag, ["nft", *args], netns=lab.namespace(lb), timeout=10, stdin=stdin)
    if not result.ok:
        raise LabError(f"nft in {lb}: exit {result.returncode}: {result.stderr.strip()}")
