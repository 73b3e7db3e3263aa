"""The agent's footprint: CPU and RSS of the agent with its lifeline guardian, at 1, 100 and
1,000 VIPs, at the recommended settings (`render node`: check interval 0.1 s).

Real processes: a HAProxy 2.6 (stats socket in a temp dir, frontends on 127.0.0.1) and a real
ExaBGP 5.0 running the agent as its API process, exactly as in production (the agent starts
its guardian because its parent is ExaBGP). ExaBGP's one neighbor is 10.255.0.2, where nothing
listens: the agent's work does not depend on the session. Everything runs in a network
namespace of its own (so: root) and the agent manages the VIPs on its loopback, as `render
node` configures it.

Two shapes of 1,000 VIPs:
- "shared": VIPs of one service (same port and pool), as `render node` groups them: one
  frontend, one pool, and per tick one stats read and one `listening` check for all VIPs;
- "distinct": every VIP its own frontend and pool on one stats socket (one read a tick for
  all) and its own `listening` check (one kernel dump a tick serves them all, each check
  then looks up its own port). The checks are the kinds `render node` writes.

CPU is utime+stime from /proc/PID/stat over the window (default 60 s, BENCH_FOOTPRINT_SECONDS),
after the VIPs are announced; RSS is VmRSS at the end. Run: `python -m bench footprint`
(`--quick`: 5 s per case, the shared shape only). The namespace is PREFIX-fp-PID
(bench/labs.py: `--lab-prefix`, BENCH_LAB_PREFIX).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anycast_ctl.config.node import load_node_config
from anycast_ctl.lab.net.host_ports import free_ports
from anycast_ctl.render.exabgp import agent_argv, render_exabgp
from anycast_ctl.render.lb_layout import AS_ROOT
from bench.labs import prefix_from_env

SECONDS = float(os.environ.get("BENCH_FOOTPRINT_SECONDS", "60"))
QUICK_SECONDS = 5.0  # 50 of the agent's ticks: enough to see a regression, not to quote
CASES = [("shared", 1), ("shared", 100), ("shared", 1000), ("distinct", 100), ("distinct", 1000)]
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
EXABGP = Path(sys.executable).with_name("exabgp")
AGENT = Path(sys.executable).with_name("anycast-ctl")
TICK = os.sysconf("SC_CLK_TCK")


def haproxy_cfg(stats: Path, fronts: list[int], sink: int) -> str:
    """One frontend and pool per port. The pools' one server is `sink`, a listener of the
    same HAProxy that accepts and closes at once (all a server check needs), checked once
    and tracked elsewhere. Never a frontend: a pool whose server is a frontend forwards
    each connection back into HAProxy, again and again, until maxconn (which the agent's
    TCP probe, one connection a tick, then kept at its 4,096)."""
    lines = [
        "global",
        f"    stats socket {stats} mode 600 level admin",
        "    maxconn 4096",
        "defaults",
        "    mode tcp",
        "    timeout connect 1s",
        "    timeout client 10s",
        "    timeout server 10s",
        "frontend sink",
        f"    bind 127.0.0.1:{sink}",
        "    tcp-request connection reject",
    ]
    for i, port in enumerate(fronts):
        check = "check inter 100ms" if i == 0 else "track pool-0/s1"
        lines += [
            f"frontend vip-{i}",
            f"    bind 127.0.0.1:{port}",
            f"    default_backend pool-{i}",
            f"backend pool-{i}",
            f"    server s1 127.0.0.1:{sink} {check}",
        ]
    return "\n".join(lines) + "\n"


def node_yaml(directory: Path, n: int, shape: str, stats: Path, fronts: list[int]) -> str:
    checks, vips = [], []
    for i in range(n):
        group = 0 if shape == "shared" else i
        vips.append(
            f"  - {{address: 10.123.{i // 250}.{i % 250 + 1}, checks: [h{group}, t{group}]}}"
        )
    for group in range(1 if shape == "shared" else n):
        checks.append(
            f"  h{group}: {{type: haproxy, socket: {stats}, frontend: vip-{group}, "
            f"backend: pool-{group}}}"
        )
        checks.append(f"  t{group}: {{type: listening, port: {fronts[group]}}}")
    return (
        "\n".join(
            [
                "node: bench",
                "bgp:",
                "  local_as: 65101",
                "  router_id: 10.0.0.2",
                # both on the namespace's lo (see measure): the connect is refused, no session
                "  neighbors: [{address: 10.255.0.2, local_address: 10.255.0.1, peer_as: 65000}]",
                "timing: {interval: 0.1, timeout: 0.08, rise: 3, fall: 2}",  # render node's default
                "checks:",
                *checks,
                "vips:",
                *vips,
                "loopback: {manage: true, mode: always}",
                f"control: {{socket: {directory}/agent.sock}}",
                f"drain: {{state_file: {directory}/drain.json}}",
            ]
        )
        + "\n"
    )


def cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise RuntimeError(f"process {pid} died mid-run (its log's tail is above)") from None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def last_complaint(directory: Path) -> str:
    """The case's last critical line (else warning) in ExaBGP's log, which holds the agent's."""
    lines = (directory / "exabgp.log").read_text(errors="replace").splitlines()
    critical = [line for line in lines if " CRITICAL: " in line]
    warnings = [line for line in lines if " WARNING: " in line]
    return (critical or warnings or lines or ["no log"])[-1].split(" ", 2)[-1][-200:]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(pid: int, word: str) -> int | None:
    """The child of `pid` whose command line has `word` (the agent, its guardian)."""
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for kid in (task / "children").read_text().split():
                argv = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
                if any(word.encode() in arg for arg in argv):
                    return int(kid)
    except OSError:
        return None
    return None


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not within {timeout}s")
        time.sleep(0.05)


def measure(shape: str, n: int, seconds: float) -> dict:
    netns = f"{prefix_from_env()}-fp-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        for address in ("10.255.0.1/32", "10.255.0.2/32"):
            subprocess.run(["ip", "-n", netns, "addr", "add", address, "dev", "lo"], check=True)
        return _measure(shape, n, seconds, ["ip", "netns", "exec", netns])
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


def _measure(shape: str, n: int, seconds: float, inside: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="acx-bench-fp-") as tmp:
        directory = Path(tmp)
        stats = directory / "haproxy.sock"
        groups = 1 if shape == "shared" else n
        sink, *fronts = free_ports(groups + 1)
        (directory / "haproxy.cfg").write_text(haproxy_cfg(stats, fronts, sink))
        (directory / "node.yaml").write_text(node_yaml(directory, n, shape, stats, fronts))
        config_path = directory / "node.yaml"
        files = render_exabgp(  # as root: its temporary directory and sockets are root's
            load_node_config(config_path),
            config_path,
            agent_argv([str(AGENT)], config_path),
            AS_ROOT,
        )
        for name, text in files.items():
            (directory / name).write_text(text)
        log = (directory / "exabgp.log").open("w")
        env = {**os.environ, "ANYCAST_CTL_LAB": f"{prefix_from_env()}-fp-{os.getpid()}"}
        haproxy = subprocess.Popen(
            [*inside, HAPROXY, "-db", "-f", str(directory / "haproxy.cfg")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        exabgp = None
        try:
            wait_for(stats.exists, 10, "HAProxy's stats socket")
            exabgp = subprocess.Popen(
                [
                    *inside,
                    str(EXABGP),
                    "--env-file",
                    str(directory / "exabgp.env"),
                    "server",
                    str(directory / "exabgp.conf"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
            agent = wait_for(lambda: child(exabgp.pid, "agent"), 20, "the agent")
            guardian = wait_for(lambda: child(agent, "lifeline"), 20, "the guardian")
            # every VIP announced (ExaBGP logs a "route added" per prefix)
            wait_for(
                lambda: (directory / "exabgp.log").read_text().count("route added") >= n,
                60,
                f"all {n} VIPs announced",
            )
            time.sleep(1.0)  # let start-up settle
            try:
                before = {pid: cpu_seconds(pid) for pid in (agent, guardian, exabgp.pid)}
                started = time.monotonic()
                time.sleep(seconds)
                elapsed = time.monotonic() - started
                used = {pid: cpu_seconds(pid) - t for pid, t in before.items()}
            except FileNotFoundError:  # /proc/<pid> gone: the case's figures mean nothing
                raise RuntimeError(f"a process exited: {last_complaint(directory)}") from None
            return {
                "shape": shape,
                "vips": n,
                "agent_cpu_pct": 100 * used[agent] / elapsed,
                "guardian_cpu_pct": 100 * used[guardian] / elapsed,
                "exabgp_cpu_pct": 100 * used[exabgp.pid] / elapsed,
                "agent_rss_mib": rss_mib(agent),
                "guardian_rss_mib": rss_mib(guardian),
                "exabgp_rss_mib": rss_mib(exabgp.pid),
                "seconds": elapsed,
            }
        except Exception:
            tail = (directory / "exabgp.log").read_text().splitlines()
            print(
                "\n".join(line for line in tail if "netlink INFO" not in line)[-1500:],
                file=sys.stderr,
            )
            raise
        finally:
            if exabgp is not None and exabgp.poll() is None:
                exabgp.terminate()
                try:
                    exabgp.wait(10)
                except subprocess.TimeoutExpired:
                    exabgp.kill()
                    exabgp.wait(5)
            haproxy.kill()  # by its pid
            haproxy.wait(5)
            log.close()


def main(quick: bool = False) -> None:
    seconds = min(SECONDS, QUICK_SECONDS) if quick else SECONDS
    cases = [c for c in CASES if c[0] == "shared"] if quick else CASES
    if os.geteuid() != 0 or not (
        os.access(HAPROXY, os.X_OK) and EXABGP.exists() and AGENT.exists()
    ):
        print("skipped: needs root (a namespace), haproxy, and exabgp + anycast-ctl in this venv")
        return
    print(f"recommended settings (interval 0.1 s), {seconds:g} s per case; CPU % of one core")
    print(f"{'shape':9} {'VIPs':>5} {'agent+guardian CPU':>19} {'RSS MiB':>8}   (ExaBGP)")
    for shape, n in cases:
        try:
            r = measure(shape, n, seconds)
        except RuntimeError as exc:  # e.g. 1,000 TCP probes a tick cannot finish in time
            print(f"{shape:9} {n:>5}   not measured: {exc}", flush=True)
            continue
        cpu = r["agent_cpu_pct"] + r["guardian_cpu_pct"]
        rss = r["agent_rss_mib"] + r["guardian_rss_mib"]
        print(
            f"{shape:9} {n:>5} {cpu:>7.2f} % ({r['agent_cpu_pct']:.2f} + "
            f"{r['guardian_cpu_pct']:.2f}) {rss:>6.1f} ({r['agent_rss_mib']:.1f} + "
            f"{r['guardian_rss_mib']:.1f})   ({r['exabgp_cpu_pct']:.2f} %, "
            f"{r['exabgp_rss_mib']:.1f} MiB)",
            flush=True,
        )


if __name__ == "__main__":
    main()
