"""Steady client load during a failover experiment (the parent side of
lab/programs/steady_client.py).

    load = SteadyLoad(lab, rate=50, first_port=30000).start()
    load.wait_flowing(5)          # bounded: at least 5 connections finished
    ... event, measurements ...
    results = load.stop()         # every connection: start time, ok, LB that carried it

One client process per client namespace, each sending rate / C connections per second to the
VIPs of its address families. Every connection has its own (source address, source port), so
no two share a 5-tuple; callers move `first_port` between runs so that a port still in
TIME_WAIT from a timed-out connection is never reused.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments.traffic import lb_of_peer
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.observe.expect import address_owners
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.programs.backend import parse_answer

SOURCES = 8  # source addresses per client: host 1..8 of its prefix


@dataclass(frozen=True)
class Connection:
    client: str
    src: str
    sport: int
    vip: str
    start: float  # CLOCK_MONOTONIC
    ok: bool
    lb: str | None
    error: str | None


def ports_needed(rate: float, seconds: float, clients: int) -> int:
    """How many source ports one run uses (per source address)."""
    per_client = math.ceil(rate / max(1, clients) * seconds)
    return math.ceil(per_client / SOURCES)


def plan_stream(
    topology: Topology, client: str, count: int, first_port: int
) -> list[dict[str, Any]]:
    """Flow i: source host (i % SOURCES) + 1, port first_port + i // SOURCES, VIPs in turn."""
    node = topology.client(client)
    vips = [v for v in topology.vips if node.prefix(v.version) is not None]
    flows = []
    for i in range(count):
        vip = vips[i % len(vips)]
        prefix = node.prefix(vip.version)
        assert prefix is not None  # `vips` holds only VIPs of the client's families
        src = prefix.network_address + 1 + (i % SOURCES)
        flows.append(
            {
                "src": str(src),
                "sport": first_port + i // SOURCES,
                "dst": str(vip.ip),
                "dport": vip.port,
                "server_name": vip.tls_name,
                "vip": vip.name,
            }
        )
    return flows


class SteadyLoad:
    def __init__(
        self,
        lab: LabHandle,
        *,
        rate: float = 50.0,
        max_seconds: float = 60.0,
        timeout: float = 2.0,
        first_port: int = 30000,
        run_id: str = "0",
    ):
        self.lab = lab
        self.rate, self.max_seconds, self.timeout = rate, max_seconds, timeout
        self.first_port = first_port
        self.clients = [
            c.name
            for c in lab.topology.clients
            if any(c.prefix(v.version) is not None for v in lab.topology.vips)
        ]
        if not self.clients:
            raise LabError("steady load: no client can reach any VIP")
        last = first_port + ports_needed(rate, max_seconds, len(self.clients))
        if not first_port >= 1024 or last > 65535:
            raise LabError(
                f"steady load: source ports {first_port}..{last} do not fit in 1024..65535"
            )
        self.dir = lab.dir / "steady" / run_id
        self.stop_file = self.dir / "stop"
        self._threads: list[threading.Thread] = []
        self._errors: list[str] = []
        self._flows: dict[str, list[dict]] = {}

    def _out(self, client: str) -> Path:
        return self.dir / f"{client}.jsonl"

    def start(self) -> SteadyLoad:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stop_file.unlink(missing_ok=True)
        per_client = math.ceil(self.rate / len(self.clients) * self.max_seconds)
        for client in self.clients:
            flows = plan_stream(self.lab.topology, client, per_client, self.first_port)
            self._flows[client] = flows
            flows_file = self.dir / f"{client}.flows.json"
            flows_file.write_text(json.dumps(flows))
            self._out(client).write_text("")
            argv = [
                sys.executable,
                "-m",
                "anycast_ctl.lab.programs.steady_client",
                "--ca",
                str(self.lab.ca_file),
                "--flows",
                str(flows_file),
                "--out",
                str(self._out(client)),
                "--stop-file",
                str(self.stop_file),
                "--rate",
                f"{self.rate / len(self.clients):g}",
                "--timeout",
                f"{self.timeout:g}",
            ]
            thread = threading.Thread(target=self._run, args=(client, argv), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, client: str, argv: list[str]) -> None:
        # daemons.run: tagged like every lab process, not recorded as a daemon (it ends).
        try:
            result = daemons.run(
                self.lab.tag,
                argv,
                netns=self.lab.namespace(client),
                timeout=self.max_seconds + self.timeout + 30,
            )
            if not result.ok:
                self._errors.append(
                    f"{client}: exit {result.returncode}: {result.stderr.strip()[-300:]}"
                )
        except LabError as exc:
            self._errors.append(f"{client}: {exc}")

    def finished(self) -> int:
        """Connections finished so far (all clients)."""
        total = 0
        for client in self.clients:
            with contextlib.suppress(FileNotFoundError):
                total += self._out(client).read_text().count("\n")
        return total

    def wait_flowing(self, connections: int, timeout: float = 10.0) -> None:
        """Bounded wait until `connections` more have finished (the load is really running)."""
        target = self.finished() + connections

        def flowing() -> bool:
            if self._errors:
                raise LabError("steady load failed: " + "; ".join(self._errors))
            return self.finished() >= target

        wait_for(flowing, timeout, what=f"{connections} steady-load connections")

    def stop(self) -> list[Connection]:
        self.stop_file.touch()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 30)
        if self._errors:
            raise LabError("steady load failed: " + "; ".join(self._errors))
        owners = address_owners(self.lab.plan)
        lbs = {lb.name for lb in self.lab.topology.lbs}
        out = []
        for client in self.clients:
            flows = self._flows[client]
            for line in self._out(client).read_text().splitlines():
                r = json.loads(line)
                fields = parse_answer(r.get("line") or "")
                ok = bool(r.get("ok")) and bool(fields)
                out.append(
                    Connection(
                        client=client,
                        src=r["src"],
                        sport=r["sport"],
                        vip=flows[r["i"]]["vip"],
                        start=r["start"],
                        ok=ok,
                        lb=lb_of_peer(fields.get("peer"), owners, lbs) if ok else None,
                        error=r.get("error")
                        or (None if ok else f"unexpected answer {r.get('line')!r}"),
                    )
                )
        return sorted(out, key=lambda c: c.start)
