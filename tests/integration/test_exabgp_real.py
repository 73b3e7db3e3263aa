"""Real ExaBGP 5.0 and 4.2 (our rendered exabgp.conf/env) against real FRR 8.4 bgpd, in namespaces.

The API process is tests/integration/exabgp_api_helper.py: the agent's ExaBGP side (RouteWriter,
Speaker, Lifeline) driven through a FIFO. Assertions are on the router's kernel FIB, polled with
a deadline. Namespaces are named acx-ex-<pid>-{r,lb}; everything is removed by recorded pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from anycast_ctl.agent.exabgp import DIALECTS
from anycast_ctl.config.node import load_node_config
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.nodes.common import exabgp_program
from anycast_ctl.render.exabgp import agent_argv, exabgp_argv, render_exabgp
from anycast_ctl.render.lb_layout import AS_ROOT

HELPER = Path(__file__).with_name("exabgp_api_helper.py")
EXABGP = Path(sys.executable).with_name("exabgp")
PASSWORD = "s3cret;pw{x}"  # characters that would end an unquoted ExaBGP statement
TAG = f"acx-ex-{os.getpid()}"

NODE_YAML = f"""\
node: lbt
bgp:
  local_as: 65001
  router_id: 10.99.1.2
  neighbors:
    - {{address: 10.99.1.1, local_address: 10.99.1.2, peer_as: 65000, hold_time: 9,
        md5_password: "{PASSWORD}"}}
    - {{address: "fd00:99:1::1", local_address: "fd00:99:1::2", peer_as: 65000, hold_time: 9}}
checks:
  lb: {{type: tcp, port: 443}}
vips:
  - address: 192.0.2.10/32
    checks: [lb]
  - address: 192.0.2.11/32
    checks: [lb]
    med: 100
    communities: ["65001:1", graceful-shutdown]
    large_communities: ["65001:1:2"]
    extended_communities: ["target:65000:100", "origin:192.0.2.1:7", "target:4200000000:5"]
    as_path_prepend: 1
    path_id: 7
  - address: 2001:db8::10/128
    checks: [lb]
  - address: 192.0.2.12/32
    checks: [lb]
  - address: 192.0.2.13/32
    checks: [lb]
  - address: 192.0.2.14/32
    checks: [lb]
    med: 100
    communities: ["65001:1", graceful-shutdown]
    large_communities: ["65001:1:2"]
    extended_communities: ["target:65000:100", "origin:192.0.2.1:7", "target:4200000000:5"]
    as_path_prepend: 1
    path_id: 7
  - address: 2001:db8::12/128
    checks: [lb]
"""

FRR_CONF = f"""\
frr defaults traditional
hostname r
log stdout
no zebra nexthop kernel enable
router bgp 65000
 bgp router-id 10.99.1.1
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 timers bgp 3 9
 neighbor 10.99.1.2 remote-as 65001
 neighbor 10.99.1.2 password {PASSWORD}
 neighbor 10.99.1.2 timers connect 1
 neighbor fd00:99:1::2 remote-as 65001
 neighbor fd00:99:1::2 timers connect 1
 address-family ipv4 unicast
  neighbor 10.99.1.2 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor fd00:99:1::2 activate
 exit-address-family
"""


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def poll(predicate, timeout: float, interval: float = 0.005):
    """Call predicate until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def stop_pid(pid: int | None) -> None:
    if pid and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


@dataclass
class Router:
    ns: str
    dir: Path
    pids: list[int]

    def in_fib(self, prefix: str) -> bool:
        family = "-6" if ":" in prefix else "-4"
        return bool(sh("ip", "-n", self.ns, family, "route", "show", prefix).strip())

    def bgp(self, prefix: str) -> dict:
        afi = "ipv6" if ":" in prefix else "ipv4"
        out = sh("vtysh", "-N", self.ns, "-c", f"show bgp {afi} unicast {prefix} json", check=False)
        try:
            return json.loads(out)
        except ValueError:
            return {}


@pytest.fixture(scope="module")
def router() -> Iterator[Router]:
    r, lb = f"{TAG}-r", f"{TAG}-lb"
    workdir = Path(tempfile.mkdtemp(prefix=f"{TAG}-"))
    workdir.chmod(0o755)
    shutil.chown(
        workdir, "frr", "frr"
    )  # FRR drops to user frr before it reads its config and writes pids
    pids: list[int] = []
    try:
        for ns in (r, lb):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        veth_r, veth_lb = f"h2r{os.getpid() % 100000}", f"h2l{os.getpid() % 100000}"
        sh(
            "ip",
            "link",
            "add",
            veth_r,
            "netns",
            r,
            "type",
            "veth",
            "peer",
            "name",
            veth_lb,
            "netns",
            lb,
        )
        for ns, dev, v4, v6 in (
            (r, veth_r, "10.99.1.1/30", "fd00:99:1::1/64"),
            (lb, veth_lb, "10.99.1.2/30", "fd00:99:1::2/64"),
        ):
            sh("ip", "-n", ns, "addr", "add", v4, "dev", dev)
            sh("ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        conf = workdir / "frr.conf"
        conf.write_text(FRR_CONF)
        shutil.chown(conf, "frr", "frr")
        for daemon in ("zebra", "bgpd"):
            pidfile = workdir / f"{daemon}.pid"
            sh(
                "ip",
                "netns",
                "exec",
                r,
                f"/usr/lib/frr/{daemon}",
                "-d",
                "-N",
                r,
                "-f",
                str(conf),
                "-i",
                str(pidfile),
            )
            pids.append(int(poll(lambda p=pidfile: p.exists() and p.read_text().strip(), 10)))
        yield Router(r, workdir, pids)
    finally:
        for pid in pids:
            stop_pid(pid)
        for ns in (r, lb):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(f"/var/run/frr/{r}", ignore_errors=True)


def listening_on_bgp(ns: str) -> list[str]:
    """TCP sockets listening on port 179 in the namespace (`ss`), one line each."""
    out = sh("ip", "netns", "exec", ns, "ss", "-Htln", "sport = :179")
    return [line for line in out.splitlines() if line.strip()]


@dataclass
class Node:
    exabgp: subprocess.Popen
    report: Path
    fifo: Path
    version: str

    def lines(self) -> list[str]:
        return self.report.read_text().splitlines() if self.report.exists() else []

    def command(self, text: str) -> None:
        with self.fifo.open("w") as fifo:
            fifo.write(text + "\n")

    def agent_pid(self) -> int:
        ready = poll(lambda: [line for line in self.lines() if line.startswith("ready ")], 15)[-1]
        return int(ready.split()[1].removeprefix("pid="))

    def guardian_pid(self) -> int:
        ready = [line for line in self.lines() if line.startswith("ready ")][-1]
        return int(ready.split()[2].removeprefix("guardian="))

    def result(self, text: str, timeout: float = 10) -> str:
        """Send a command and return the helper's verdict (done / error / refused)."""
        seen = len(self.lines())
        self.command(text)
        answer = poll(
            lambda: [line for line in self.lines()[seen:] if line.startswith(text + " ")], timeout
        )[0]
        return answer.removeprefix(text + " ")


def exabgp_for(version: str) -> str:
    """ExaBGP 5.0 from this venv, 4.2 from `make venv-exabgp42`'s (a skip says how to get it)."""
    if version == "5.0":
        return str(EXABGP)
    try:
        return exabgp_program(version)
    except LabError as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=DIALECTS, ids=lambda v: f"exabgp-{v}")
def node(request, router, tmp_path):
    """ExaBGP with the rendered config, its agent (the helper) up, both sessions established."""
    version = request.param
    program = exabgp_for(version)
    tmp_path.chmod(0o755)
    config_path = tmp_path / "node.yaml"
    config_path.write_text(NODE_YAML + f'exabgp: {{dialect: "{version}"}}\n')
    os.mkfifo(tmp_path / "node.cmd")
    files = render_exabgp(  # as root: the helper writes its report into root's tmp_path
        load_node_config(config_path),
        config_path,
        agent_argv([sys.executable, str(HELPER)], config_path),
        AS_ROOT,
    )
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    log = (tmp_path / "exabgp.log").open("w")
    exabgp = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            f"{TAG}-lb",
            *exabgp_argv(program, version, tmp_path / "exabgp.env", tmp_path / "exabgp.conf"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )  # `ip netns exec` execs ExaBGP: this pid is ExaBGP's
    node = Node(exabgp, tmp_path / "node.log", tmp_path / "node.cmd", version)
    agent = guardian = None
    try:
        agent, guardian = node.agent_pid(), None
        guardian = node.guardian_pid()
        poll(lambda: {"peer 10.99.1.1 up", "peer fd00:99:1::1 up"} <= set(node.lines()), 20)
        assert listening_on_bgp(f"{TAG}-lb") == [], "ExaBGP must not listen (exabgp.tcp.bind)"
        yield node
    finally:
        if exabgp.poll() is None:
            exabgp.terminate()
            try:
                exabgp.wait(5)
            except subprocess.TimeoutExpired:
                exabgp.kill()
                exabgp.wait(5)
        for pid in (agent, guardian):
            stop_pid(pid)
        log.close()


@pytest.mark.root
def test_announce_and_withdraw_reach_the_router_fib(node, router):
    for prefix in ("192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"):
        assert router.in_fib(prefix) is False
        assert node.result(f"announce {prefix}") == "done"
        poll(lambda prefix=prefix: router.in_fib(prefix), 5)
    path = router.bgp("192.0.2.11/32")["paths"][0]
    assert path["aspath"]["string"] == "65001 65001"  # prepended once
    assert path["community"]["string"] == "65001:1 graceful-shutdown"
    assert path["largeCommunity"]["string"] == "65001:1:2"
    assert path["extendedCommunity"]["string"] == "RT:65000:100 SoO:192.0.2.1:7 RT:4200000000:5"
    assert path["metric"] == 100
    assert path["addpathRxId"] == 7
    for prefix in ("192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"):
        assert node.result(f"withdraw {prefix}") == "done"
        poll(lambda prefix=prefix: not router.in_fib(prefix), 5)


@pytest.mark.root
def test_batched_pipelined_announces_and_withdraws_reach_the_router_fib(node, router):
    # two attribute sets and two families: 3 lines for 7 VIPs, written before any ack; 4.2
    # cannot batch VIPs with a path-id (agent/exabgp.py), so its two such VIPs take a line each
    lines = {"5.0": 3, "4.2": 4}[node.version]
    v4 = ["192.0.2.10/32", "192.0.2.12/32", "192.0.2.13/32", "192.0.2.11/32", "192.0.2.14/32"]
    v6 = ["2001:db8::10/128", "2001:db8::12/128"]
    every = ",".join(v4 + v6)
    assert node.result(f"announce-many {every}") == f"done lines={lines}"
    for prefix in v4 + v6:
        poll(lambda p=prefix: router.in_fib(p), 5)
    for prefix in ("192.0.2.11/32", "192.0.2.14/32"):  # each VIP keeps its own attributes
        path = router.bgp(prefix)["paths"][0]
        assert path["aspath"]["string"] == "65001 65001"
        assert path["community"]["string"] == "65001:1 graceful-shutdown"
        assert path["metric"] == 100 and path["addpathRxId"] == 7
    assert "metric" not in router.bgp("192.0.2.12/32")["paths"][0]
    assert node.result(f"withdraw-many {every}") == f"done lines={lines}"
    for prefix in v4 + v6:
        poll(lambda p=prefix: not router.in_fib(p), 5)
    assert router.bgp("192.0.2.14/32") == {}


@pytest.mark.root
def test_a_prefix_not_in_the_node_config_cannot_be_announced(node, router):
    assert node.result("announce 192.0.2.99/32") == "refused"
    assert node.result("announce 192.0.2.10/32") == "done"  # the pipe still works
    poll(lambda: router.in_fib("192.0.2.10/32"), 5)
    assert router.bgp("192.0.2.99/32") == {} and not router.in_fib("192.0.2.99/32")


@pytest.mark.root
def test_agent_sigkill_withdraws_every_vip(node, router):
    for prefix in ("192.0.2.10/32", "2001:db8::10/128"):
        assert node.result(f"announce {prefix}") == "done"
        poll(lambda prefix=prefix: router.in_fib(prefix), 5)
    started = time.monotonic()
    os.kill(node.agent_pid(), signal.SIGKILL)
    poll(lambda: not router.in_fib("192.0.2.10/32") and not router.in_fib("2001:db8::10/128"), 3)
    elapsed_ms = (time.monotonic() - started) * 1000
    print(f"\nagent SIGKILL -> VIPs gone from the router's FIB in {elapsed_ms:.0f} ms")
    node.exabgp.wait(5)  # the lifeline stopped ExaBGP


@pytest.mark.root
def test_a_hung_agent_withdraws_every_vip(node, router):
    assert node.result("announce 192.0.2.10/32") == "done"
    poll(lambda: router.in_fib("192.0.2.10/32"), 5)
    agent = node.agent_pid()
    started = time.monotonic()
    os.kill(agent, signal.SIGSTOP)  # a frozen agent: its heartbeats stop
    poll(lambda: not router.in_fib("192.0.2.10/32"), 1.0 + 3)  # stall_after=1.0 in the helper
    elapsed_ms = (time.monotonic() - started) * 1000
    print(f"\nagent SIGSTOP -> VIP gone from the router's FIB in {elapsed_ms:.0f} ms")
    poll(lambda: not pid_alive(agent), 3)  # and the guardian killed it


def test_rendered_config_is_accepted_by_exabgp(tmp_path):
    config_path = tmp_path / "node.yaml"
    config_path.write_text(NODE_YAML)
    files = render_exabgp(
        load_node_config(config_path),
        config_path,
        agent_argv([sys.executable, str(HELPER)], config_path),
    )
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [
            str(EXABGP),
            "--env-file",
            str(tmp_path / "exabgp.env"),
            "validate",
            str(tmp_path / "exabgp.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
