"""Long-lived connections held through a failover event (the parent side of
lab/programs/longlived_client.py), and what the event broke of them.

    held = LongLived(lab, count=200, first_port=10000, run_id="r1").start()   # all opened
    before = kernel_orders(lab)
    ... event; after = kernel_orders(lab) once it settled ...
    conns = held.stop()                                 # each: its flow, LB, opened, broken
    counts = broken_counts(lab.topology, conns, since, until, "lb1", before, after)

The LB nodes are full TCP proxies: a connection whose flow a router moves to another node is
reset there. So the simulator's prediction of which flows move, from the kernel's next-hop
order before and after the event, is a prediction of which connections break.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments.steady import plan_stream
from anycast_ctl.lab.experiments.traffic import PROTO_TCP, Orders, lb_of_peer
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.observe.expect import address_owners
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.programs.backend import parse_answer
from anycast_ctl.render.node_files import client_cert_file, client_key_file
from anycast_ctl.sim.predict import FlowTuple, predict_held


@dataclass(frozen=True)
class HeldConnection:
    client: str
    src: str
    sport: int
    dst: str
    dport: int
    lb: str | None  # the LB node that carried it when it opened (None: it never opened)
    opened: float | None  # CLOCK_MONOTONIC
    broken: float | None  # when its exchange failed (None: held to the end)
    error: str | None

    @property
    def five_tuple(self) -> FlowTuple:
        return (self.src, self.dst, PROTO_TCP, self.sport, self.dport)


@dataclass(frozen=True)
class BrokenCounts:
    open: int  # open at `since`
    broken: int  # of those, broken in [since, until]
    collateral: int  # broken ones that were on another LB node than the one acted on
    predicted: int  # of the open ones, those whose LB the simulator says the event changes
    mismatch: int  # |broken set  (sym. diff.)  predicted set|


def broken_counts(
    topo: Topology,
    conns: list[HeldConnection],
    since: float,
    until: float,
    node: str,
    before: Orders,
    after: Orders,
    forwarding: str | None = None,
) -> BrokenCounts:
    """Pure: count what an event at `since` broke by `until`, against the prediction.

    forwarding (second chance on): "none" predicts no break (the node acted on still serves
    its connections, the others are forwarded to their owners), "own" the node's own
    connections only; None the simulator's prediction of which flows move."""
    held = [
        c
        for c in conns
        if c.opened is not None and c.opened <= since and (c.broken is None or c.broken >= since)
    ]
    broken = {i for i, c in enumerate(held) if c.broken is not None and c.broken <= until}
    tuples = [c.five_tuple for c in held]
    pred_before = predict_held(topo, tuples, before) if held else []
    pred_after = predict_held(topo, tuples, after) if held else []
    if forwarding == "none":
        predicted: set[int] = set()
    elif forwarding == "own":
        predicted = {i for i, c in enumerate(held) if c.lb == node}
    else:
        predicted = {i for i in range(len(held)) if pred_before[i] != pred_after[i]}
    return BrokenCounts(
        open=len(held),
        broken=len(broken),
        collateral=sum(held[i].lb != node for i in broken),
        predicted=len(predicted),
        mismatch=len(broken ^ predicted),
    )


class LongLived:
    def __init__(
        self,
        lab: LabHandle,
        *,
        count: int,
        first_port: int,
        run_id: str,
        interval: float = 0.05,
        stall: float = 3.0,
        timeout: float = 5.0,
    ):
        self.lab, self.count, self.first_port = lab, count, first_port
        self.interval, self.stall, self.timeout = interval, stall, timeout
        self.clients = [
            c.name
            for c in lab.topology.clients
            if any(c.prefix(v.version) is not None for v in lab.topology.vips)
        ]
        if not self.clients:
            raise LabError("long-lived connections: no client can reach any VIP")
        self.dir = lab.dir / "longlived" / run_id
        self.stop_file = self.dir / "stop"
        self._threads: list[threading.Thread] = []
        self._errors: list[str] = []
        self._flows: dict[str, list[dict]] = {}

    def start(self, ready_timeout: float = 30.0) -> LongLived:
        """Open every connection (each client's from its namespace); bounded wait until every
        client has tried all of its own. LabError when a client fails or more than a tenth of
        the connections did not open (the lab is not in a state worth measuring)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stop_file.unlink(missing_ok=True)
        share, extra = divmod(self.count, len(self.clients))
        for k, client in enumerate(self.clients):
            n = share + (k < extra)
            if n == 0:
                continue
            flows = plan_stream(self.lab.topology, client, n, self.first_port)
            self._flows[client] = flows
            flows_file = self.dir / f"{client}.flows.json"
            flows_file.write_text(json.dumps(flows))
            cert = self.lab.dir / client_cert_file(client)
            key = self.lab.dir / client_key_file(client)
            identity = ["--cert", str(cert), "--key", str(key)] if cert.exists() else []
            argv = [
                sys.executable,
                "-m",
                "anycast_ctl.lab.programs.longlived_client",
                "--ca",
                str(self.lab.ca_file),
                "--flows",
                str(flows_file),
                "--out",
                str(self.dir / f"{client}.json"),
                "--ready-file",
                str(self.dir / f"{client}.ready"),
                "--stop-file",
                str(self.stop_file),
                "--interval",
                f"{self.interval:g}",
                "--stall",
                f"{self.stall:g}",
                "--timeout",
                f"{self.timeout:g}",
                *identity,
            ]
            thread = threading.Thread(target=self._run, args=(client, argv), daemon=True)
            thread.start()
            self._threads.append(thread)

        def ready() -> bool:
            if self._errors:
                raise LabError("long-lived connections failed: " + "; ".join(self._errors))
            return all((self.dir / f"{c}.ready").exists() for c in self._flows)

        try:
            wait_for(ready, ready_timeout, what=f"{self.count} long-lived connections to open")
        except BaseException:
            self.stop_file.touch()
            raise
        readies = {c: json.loads((self.dir / f"{c}.ready").read_text()) for c in self._flows}
        opened = sum(r["opened"] for r in readies.values())
        if opened < 0.9 * self.count:
            self.stop()
            why = "; ".join(  # which client failed how: a refused SYN is not a timeout
                f"{c}: {n} x {reason}"
                for c, r in readies.items()
                for reason, n in r.get("reasons", {}).items()
            )
            raise LabError(
                f"only {opened} of {self.count} long-lived connections opened"
                f" ({why or 'no reason given'})"
            )
        return self

    def _run(self, client: str, argv: list[str]) -> None:
        try:
            # Bounded like every lab child: a run lasts well under this.
            result = daemons.run(self.lab.tag, argv, netns=self.lab.namespace(client), timeout=900)
            if not result.ok:
                self._errors.append(
                    f"{client}: exit {result.returncode}: {result.stderr.strip()[-300:]}"
                )
        except LabError as exc:
            self._errors.append(f"{client}: {exc}")

    def stop(self) -> list[HeldConnection]:
        self.stop_file.touch()
        for thread in self._threads:
            thread.join(timeout=30)
        if any(thread.is_alive() for thread in self._threads):
            self._errors.append("a client did not stop within 30 s of its stop file")
        if self._errors:
            raise LabError("long-lived connections failed: " + "; ".join(self._errors))
        owners = address_owners(self.lab.plan)
        lbs = {lb.name for lb in self.lab.topology.lbs}
        out = []
        for client, flows in self._flows.items():
            for r in json.loads((self.dir / f"{client}.json").read_text()):
                flow = flows[r["i"]]
                fields = parse_answer(r.get("line") or "")
                out.append(
                    HeldConnection(
                        client=client,
                        src=flow["src"],
                        sport=flow["sport"],
                        dst=flow["dst"],
                        dport=flow["dport"],
                        lb=lb_of_peer(fields.get("peer"), owners, lbs) if r["ok"] else None,
                        opened=r["opened"] if r["ok"] else None,
                        broken=r["broken"],
                        error=r["error"],
                    )
                )
        return out
