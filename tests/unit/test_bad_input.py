"""Bad input of every kind, through the console script as a user runs it.

Each case runs `anycast-ctl ARGS` and must end with exit 2, no traceback, every stderr line
an `error: ...` line, and the file (or argument) and field named. The cases are what people
get wrong: files that are not what they seem, YAML that parses to something else, values a
network engineer mistypes, numbers that are not finite, paths that cannot be used, and
answers on the control socket from something that is not our agent.

Every case runs through `anycast_ctl.cli:main`, the console script's entry point, in this
process (300 interpreter start-ups would cost a minute on a shared machine); the cases in
CONSOLE_SAMPLE, at least one of each kind, also run as the installed `anycast-ctl`
executable in a subprocess, concurrently.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_support import run_cli

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("anycast-ctl"))
TOPOLOGY = (ROOT / "topologies" / "default.yaml").read_text()

NODE = """\
node: lb1
bgp:
  local_as: 65101
  router_id: 10.0.0.2
  neighbors:
    - {address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000}
checks:
  web: {type: tcp, port: 443}
vips:
  - address: 192.0.2.10
    checks: [web]
control:
  socket: /run/anycast-ctl/test-bad-input.sock
loopback: {manage: false}  # should a case fail to break it, the agent leaves the host's lo alone
"""


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # "{d}" is the case directory
    expect: tuple[str, ...]  # substrings of stderr: the file/argument and the field
    stdin: str = ""


# ---------------------------------------------------------------- files
# (name, bytes) of files that are not YAML configs, and what the message must say.
def _bomb() -> bytes:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


BAD_FILES: dict[str, tuple[bytes | None, str]] = {
    "missing": (None, "file not found"),
    "empty": (b"", "empty file"),
    "comments": (b"# nothing here\n", "no YAML document"),
    "binary": (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary file"),
    "utf16": ("node: lb1\n".encode("utf-16"), "UTF-16"),
    "latin1": ("node: lb\xe9\n".encode("latin-1"), "not UTF-8"),
    "invalid": (b"node: [lb1\n", "invalid YAML"),
    "tabs": (b"node: lb1\n\tbgp: 1\n", "invalid YAML"),
    "bomb": (_bomb(), "aliases"),
    "list": (b"- node: lb1\n", "found a list"),
    "scalar": (b"just some text\n", "found a single value"),
    "deep": (b"[" * 400 + b"]" * 400, "nested too deep"),
}
# Commands that read a node config or a topology file given as FILE.
NODE_COMMANDS = {
    "config-check": ("config", "check", "FILE"),
    "agent-run": ("agent", "run", "FILE"),
    "render-exabgp": ("render", "exabgp", "FILE", "--out", "{d}/out"),
    "drain": ("drain", "--config", "FILE", "--reason", "test"),
    "status": ("status", "--config", "FILE"),
}
TOPOLOGY_COMMANDS = {
    "sim-run": ("sim", "run", "FILE", "--flows", "1k"),
    "sim-compare": ("sim", "compare", "FILE", "--flows", "1k"),
    "render-node": ("render", "node", "FILE", "--node", "lb1", "--out", "-"),
    "render-frr": ("render", "frr", "FILE", "--router", "r1", "--out", "-"),
    "render-haproxy": ("render", "haproxy", "FILE", "--node", "lb1", "--out", "-"),
    "lab-render": ("lab", "render", "FILE", "--format", "containerlab", "--out", "{d}/clab"),
}


def file_cases() -> list[Case]:
    cases = []
    for kind, (_, what) in BAD_FILES.items():
        for name, args in {**NODE_COMMANDS, **TOPOLOGY_COMMANDS}.items():
            path = "{d}/" + f"{kind}.yaml"
            argv = tuple(path if a == "FILE" else a for a in args)
            cases.append(Case(f"{kind}-{name}", argv, (f"{kind}.yaml", what)))
    for name, args in {**NODE_COMMANDS, **TOPOLOGY_COMMANDS}.items():
        if name in ("config-check", "agent-run", "render-exabgp", "sim-run"):
            argv = tuple("{d}" if a == "FILE" else a for a in args)  # a directory
            cases.append(Case(f"directory-{name}", argv, ("directory",)))
    return cases


# ---------------------------------------------------------------- node config values
# (id, text replaced, replacement, field named, what is said)
NODE_EDITS = [
    ("dup-key", "checks:\n", "vips: []\nchecks:\n", "line", "duplicate key 'vips'"),
    (
        "dup-nested",
        "  local_as: 65101\n",
        "  local_as: 65101\n  local_as: 65102\n",
        "line 4",
        "duplicate key 'local_as'",
    ),
    ("vip-zero", "address: 192.0.2.10", "address: 0.0.0.0", "vips[0].address", "0.0.0.0/8"),
    ("vip-this-net", "address: 192.0.2.10", "address: 0.1.2.3", "vips[0].address", "0.0.0.0/8"),
    (
        "vip-broadcast",
        "address: 192.0.2.10",
        "address: 255.255.255.255",
        "vips[0].address",
        "broadcast",
    ),
    ("vip-multicast", "address: 192.0.2.10", "address: 239.1.1.1", "vips[0].address", "multicast"),
    ("vip-loopback", "address: 192.0.2.10", "address: 127.0.0.1", "vips[0].address", "loopback"),
    ("vip-v6-loopback", "address: 192.0.2.10", "address: '::1'", "vips[0].address", "loopback"),
    (
        "vip-v6-multicast",
        "address: 192.0.2.10",
        "address: 'ff02::1'",
        "vips[0].address",
        "multicast",
    ),
    (
        "vip-link-local",
        "address: 192.0.2.10",
        "address: 169.254.1.1",
        "vips[0].address",
        "link-local",
    ),
    ("vip-subnet", "address: 192.0.2.10", "address: 192.0.2.0/24", "vips[0].address", "host route"),
    ("vip-octet", "address: 192.0.2.10", "address: 192.0.2.256", "vips[0].address", "not an IP"),
    (
        "vip-leading-zero",
        "address: 192.0.2.10",
        "address: 192.0.2.010",
        "vips[0].address",
        "not an IP",
    ),
    ("vip-is-peer", "address: 192.0.2.10", "address: 10.0.0.1", "vips[0].address", "peering"),
    ("vip-is-local", "address: 192.0.2.10", "address: 10.0.0.2", "vips[0].address", "router-id"),
    ("router-id-zero", "router_id: 10.0.0.2", "router_id: 0.0.0.0", "bgp.router_id", "non-zero"),
    ("router-id-v6", "router_id: 10.0.0.2", "router_id: '2001:db8::1'", "bgp.router_id", "IPv4"),
    ("router-id-short", "router_id: 10.0.0.2", "router_id: 10.0.2", "bgp.router_id", "IPv4"),
    (
        "peer-is-self",
        "address: 10.0.0.1,",
        "address: 10.0.0.2,",
        "bgp.neighbors[0]",
        "the node itself",
    ),
    (
        "peer-is-router-id",
        "router_id: 10.0.0.2",
        "router_id: 10.0.0.1",
        "bgp.neighbors[0].address",
        "itself",
    ),
    (
        "peer-multicast",
        "address: 10.0.0.1,",
        "address: 224.0.0.5,",
        "bgp.neighbors[0].address",
        "multicast",
    ),
    (
        "peer-twice",
        "    - {address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000}\n",
        "    - {address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000}\n" * 2,
        "bgp.neighbors[1].address",
        "already",
    ),
    (
        "v6-vip-v4-peers",
        "address: 192.0.2.10",
        "address: '2001:db8::10'",
        "vips[0].address",
        "no neighbor of IPv6",
    ),
    ("asdot", "local_as: 65101", "local_as: 1.10", "bgp.local_as", "integer"),
    ("asn-zero", "local_as: 65101", "local_as: 0", "bgp.local_as", "greater than or equal to 1"),
    (
        "asn-too-big",
        "peer_as: 65000",
        "peer_as: 4294967296",
        "bgp.neighbors[0].peer_as",
        "less than",
    ),
    ("port-zero", "port: 443", "port: 0", "checks.web", "port"),
    ("port-service", "port: 443", "port: 443/tcp", "checks.web", "port"),
    (
        "md5-long",
        "peer_as: 65000}",
        "peer_as: 65000, md5_password: " + "x" * 81 + "}",
        "bgp.neighbors[0].md5_password",
        "1-80 bytes",
    ),
    (
        "md5-newline",
        "peer_as: 65000}",
        'peer_as: 65000, md5_password: "a\\nb"}',
        "bgp.neighbors[0].md5_password",
        "control characters",
    ),
    (
        "hold-time",
        "peer_as: 65000}",
        "peer_as: 65000, hold_time: 2}",
        "bgp.neighbors[0].hold_time",
        "3",
    ),
    (
        "interval-nan",
        "checks:\n",
        "timing: {interval: .nan}\nchecks:\n",
        "timing.interval",
        "finite",
    ),
    (
        "interval-inf",
        "checks:\n",
        "timing: {interval: .inf}\nchecks:\n",
        "timing.interval",
        "finite",
    ),
    (
        "timeout-over-interval",
        "checks:\n",
        "timing: {interval: 1, timeout: 2}\nchecks:\n",
        "timing",
        "must not exceed",
    ),
    (
        "graceful-nan",
        "checks:\n",
        "drain: {graceful_shutdown_seconds: .nan}\nchecks:\n",
        "drain.graceful_shutdown_seconds",
        "finite",
    ),
    (
        "socket-relative",
        "socket: /run/anycast-ctl/test-bad-input.sock",
        "socket: agent.sock",
        "control.socket",
        "absolute",
    ),
    (
        "socket-empty",
        "socket: /run/anycast-ctl/test-bad-input.sock",
        "socket: ''",
        "control.socket",
        "empty",
    ),
    (
        "socket-long",
        "socket: /run/anycast-ctl/test-bad-input.sock",
        "socket: /run/" + "s" * 120 + ".sock",
        "control.socket",
        "107",
    ),
    (
        "state-file-dir",
        "checks:\n",
        "drain: {state_file: /var/lib/anycast-ctl/}\nchecks:\n",
        "drain.state_file",
        "directory",
    ),
    (
        "community",
        "checks: [web]\n",
        "checks: [web]\n    communities: ['65000:70000']\n",
        "vips[0].communities",
        "not a community",
    ),
    ("check-type", "{type: tcp, port: 443}", "{type: icmp, port: 443}", "checks.web", "tag"),
    (
        "check-missing",
        "checks: [web]",
        "checks: [wbe]",
        "vips[0].checks[0]",
        "no check named 'wbe'",
    ),
    ("misspelt-key", "checks:\n", "timming: {interval: 1}\nchecks:\n", "timming", "unknown field"),
    ("norway", "node: lb1", "node: no", "node", "string"),
    (
        "interface",
        "loopback: {manage: false}",
        "loopback: {manage: false, interface: 'lo 0'}",
        "loopback.interface",
        "pattern",
    ),
    *(
        (
            f"chance-{name}",
            "loopback: {manage: false}",
            "second_chance:\n  enabled: true\n  index: 0\n  underlay: 10.0.0.2\n"
            f"  vips: {vips}\n  peers: [{{name: lb2, index: 1, underlay: 10.0.0.6{peer}}}]\n"
            "loopback: {manage: false}",
            field,
            what,
        )
        for name, vips, peer, field, what in [
            (
                "vip6-link-local",
                '[{address: "fe80::1"}]',
                "",
                "second_chance.vips[0].address",
                "cannot be a VIP",
            ),
            (
                "vip6-not-an-address",
                '[{address: "2001:db8::zz"}]',
                "",
                "second_chance.vips[0].address",
                "not an IPv4 or IPv6 address",
            ),
            (
                "vip6-twice",
                '[{address: "2001:db8::10"}, {address: "2001:DB8:0::10"}]',
                "",
                "second_chance",
                "vips[1] (2001:db8::10 port 443) is vips[0] again",
            ),
            (
                "overlay6-wrong",
                '[{address: "2001:db8::10"}]',
                ', overlay6: "fd00:ac5c:1::9"',
                "second_chance.peers[0]",
                "overlay6 fd00:ac5c:1::9 is not node index 1's (fd00:ac5c:1::2)",
            ),
        ]
    ),
]

# ---------------------------------------------------------------- topology values
TOPOLOGY_EDITS = [
    ("dup-hashing", "bgp:\n", "hashing: {seed: 1}\nbgp:\n", "line", "duplicate key 'hashing'"),
    ("dup-vips", "links:\n", "vips: []\nlinks:\n", "line", "duplicate key 'vips'"),
    (
        "vip-in-link-pool",
        "address: 192.0.2.10",
        "address: 100.64.0.1",
        "vips[0].address",
        "addressing.ipv4",
    ),
    (
        "vip-in-loopback-pool",
        "address: 192.0.2.10",
        "address: 100.64.255.1",
        "vips[0].address",
        "addressing.ipv4",
    ),
    (
        "vip-in-client-prefix",
        "address: 192.0.2.10",
        "address: 198.18.1.7",
        "vips[0].address",
        "clients[0].prefixes[0]",
    ),
    ("vip-zero", "address: 192.0.2.10", "address: 0.0.0.0", "vips[0].address", "0.0.0.0/8"),
    (
        "vip-broadcast",
        "address: 192.0.2.10",
        "address: 255.255.255.255",
        "vips[0].address",
        "broadcast",
    ),
    ("vip-multicast", "address: 192.0.2.10", "address: 224.0.0.1", "vips[0].address", "multicast"),
    (
        "md5-space",
        "md5_password: anycast-lab",
        "md5_password: anycast lab",
        "bgp.md5_password",
        "space",
    ),
    (
        "md5-long",
        "md5_password: anycast-lab",
        "md5_password: " + "y" * 81,
        "bgp.md5_password",
        "81 characters",
    ),
    ("seed-negative", "seed: 0x5eed", "seed: -1", "hashing.seed", "greater than or equal to 0"),
    ("seed-zero", "seed: 0x5eed", "seed: 0", "hashing.seed", "seed 0"),
    ("fields-too-big", "fields: 0x37", "fields: 0x10000", "hashing.fields", "less than"),
    ("policy-2", "policy: 3 ", "policy: 2 ", "hashing.policy", "policy 2"),
    (
        "pool-too-small",
        "bgp:\n",
        "addressing: {ipv4: 10.0.0.0/30}\nbgp:\n",
        "addressing.ipv4",
        "too small",
    ),
    (
        "pool-not-network",
        "bgp:\n",
        "addressing: {ipv4: 10.0.0.1/16}\nbgp:\n",
        "addressing.ipv4",
        "not a network",
    ),
    (
        "client-weight-inf",
        "prefixes: [198.18.1.0/24]}",
        "prefixes: [198.18.1.0/24], weight: .inf}",
        "clients[0].weight",
        "finite",
    ),
    (
        "client-prefix-host-bits",
        "198.18.1.0/24",
        "198.18.1.1/24",
        "clients[0].prefixes[0]",
        "host bits",
    ),
    ("link-self", "{a: c1, b: r1}", "{a: r1, b: r1}", "links[0]", "itself"),
    ("link-unknown", "{a: lb3, b: be2}", "{a: lb3, b: be3}", "links[9].b", "no node named 'be3'"),
    (
        "table-size",
        "seed: 0x5eed",
        "seed: 0x5eed\n  table_size: 65536",
        "hashing.table_size",
        "prime",
    ),
]


def value_cases() -> list[Case]:
    cases = []
    for name, old, _new, field, what in NODE_EDITS:
        assert old in NODE, name
        for command in ("config", "agent"):
            args = ("config", "check") if command == "config" else ("agent", "run")
            cases.append(
                Case(
                    f"node-{name}-{command}",
                    (*args, "{d}/" + f"node-{name}.yaml"),
                    (f"node-{name}.yaml", field, what),
                )
            )
    for name, old, _new, field, what in TOPOLOGY_EDITS:
        assert old in TOPOLOGY, name
        path = "{d}/" + f"topo-{name}.yaml"
        cases.append(
            Case(
                f"topo-{name}-sim",
                ("sim", "run", path, "--flows", "1k"),
                (f"topo-{name}.yaml", field, what),
            )
        )
        cases.append(
            Case(
                f"topo-{name}-render",
                ("render", "node", path, "--node", "lb1", "--out", "-"),
                (f"topo-{name}.yaml", field, what),
            )
        )
    return cases


# ---------------------------------------------------------------- arguments
GOOD_TOPO = "{d}/good-topology.yaml"
ARG_CASES = [
    Case("flows-inf", ("sim", "run", GOOD_TOPO, "--flows", "inf"), ("--flows", "finite")),
    Case("flows-nan", ("sim", "run", GOOD_TOPO, "--flows", "nan"), ("--flows", "finite")),
    Case("flows-huge", ("sim", "run", GOOD_TOPO, "--flows", "1e15"), ("--flows", "upper bound")),
    Case("flows-negative", ("sim", "run", GOOD_TOPO, "--flows", "-5"), ("--flows", "at least 1")),
    Case("flows-word", ("sim", "run", GOOD_TOPO, "--flows", "lots"), ("--flows", "not a count")),
    Case("zipf-nan", ("sim", "run", GOOD_TOPO, "--zipf", "nan"), ("--zipf", "finite")),
    Case("zipf-inf", ("sim", "compare", GOOD_TOPO, "--zipf", "inf"), ("--zipf", "finite")),
    Case("zipf-one", ("sim", "run", GOOD_TOPO, "--zipf", "1"), ("--zipf", "greater than 1")),
    Case("seed-negative", ("sim", "run", GOOD_TOPO, "--seed", "-1"), ("--seed",)),
    Case(
        "csv-no-dir",
        ("sim", "run", GOOD_TOPO, "--flows", "1k", "--csv", "/no/such/dir/x.csv"),
        ("--csv", "/no/such/dir"),
    ),
    Case("csv-is-dir", ("sim", "run", GOOD_TOPO, "--csv", "{d}"), ("--csv", "directory")),
    Case(
        "plot-under-file",
        ("sim", "run", GOOD_TOPO, "--plot", "{d}/good-topology.yaml/sub"),
        ("--plot", "is a file"),
    ),
    Case(
        "event-bogus", ("sim", "run", GOOD_TOPO, "--event", "explode:lb1"), ("--event", "explode")
    ),
    Case(
        "event-unknown-lb", ("sim", "run", GOOD_TOPO, "--event", "withdraw:lb9"), ("--event", "lb9")
    ),
    Case("algorithm", ("sim", "run", GOOD_TOPO, "--algorithm", "ecmp"), ("--algorithm",)),
    Case(
        "flows-file-missing",
        ("sim", "run", GOOD_TOPO, "--flows-file", "{d}/nope.csv"),
        ("nope.csv",),
    ),
    Case(
        "flows-file-binary",
        ("sim", "run", GOOD_TOPO, "--flows-file", "{d}/binary.yaml"),
        ("binary.yaml",),
    ),
    Case(
        "flows-file-utf16",
        ("sim", "run", GOOD_TOPO, "--flows-file", "{d}/flows-utf16.csv"),
        ("flows-utf16.csv", "UTF-16"),
    ),
    Case(
        "flows-file-empty",
        ("sim", "run", GOOD_TOPO, "--flows-file", "{d}/empty.yaml"),
        ("empty.yaml", "row 1"),
    ),
    Case(
        "flows-file-bad-row",
        ("sim", "run", GOOD_TOPO, "--flows-file", "{d}/flows-bad.csv"),
        ("flows-bad.csv", "row 3, field sport"),
    ),
    Case(
        "predict-seed-zero",
        ("sim", "predict", "--nexthop", "10.0.0.1", "--seed", "0", "--flows", "{d}/flows-bad.csv"),
        ("--seed",),
    ),
    Case(
        "predict-nexthop",
        ("sim", "predict", "--nexthop", "10.0.0.300", "--seed", "1", "--flows", "-"),
        ("--nexthop", "10.0.0.300"),
    ),
    Case(
        "predict-policy-nan",
        (
            "sim",
            "predict",
            "--nexthop",
            "10.0.0.1",
            "--seed",
            "1",
            "--policy",
            "nan",
            "--flows",
            "-",
        ),
        ("--policy",),
    ),
    Case(
        "predict-flows-dir",
        ("sim", "predict", "--nexthop", "10.0.0.1", "--seed", "1", "--flows", "{d}"),
        ("directory",),
    ),
    Case(
        "predict-bad-row",
        ("sim", "predict", "--nexthop", "10.0.0.1", "--seed", "1", "--flows", "{d}/flows-bad.csv"),
        ("flows-bad.csv", "row 3, field sport"),
    ),
    Case(
        "predict-binary-stdin",
        ("sim", "predict", "--nexthop", "10.0.0.1", "--seed", "1", "--flows", "-"),
        ("<stdin>",),
        stdin="src,dst\x00\n",
    ),
    Case(
        "timeout-nan",
        ("status", "--socket", "/tmp/x.sock", "--timeout", "nan"),
        ("--timeout", "finite"),
    ),
    Case(
        "timeout-inf",
        ("status", "--socket", "/tmp/x.sock", "--timeout", "inf"),
        ("--timeout", "finite"),
    ),
    Case("timeout-zero", ("status", "--socket", "/tmp/x.sock", "--timeout", "0"), ("--timeout",)),
    Case(
        "socket-under-file",
        ("status", "--socket", "/etc/hostname/a.sock"),
        ("/etc/hostname/a.sock", "a file"),
    ),
    Case(
        "socket-regular-file",
        ("status", "--socket", "{d}/good-topology.yaml"),
        ("good-topology.yaml", "not a socket"),
    ),
    Case("socket-too-long", ("status", "--socket", "/tmp/" + "a" * 120), ("--socket", "107")),
    Case("socket-empty", ("status", "--socket", ""), ("--socket", "empty")),
    Case(
        "socket-nobody",
        ("status", "--socket", "{d}/nobody.sock"),
        ("nobody.sock", "no agent listening"),
    ),
    Case("drain-no-reason", ("drain", "--socket", "{d}/nobody.sock"), ("--reason",)),
    Case(
        "drain-empty-reason",
        ("drain", "--socket", "{d}/nobody.sock", "--reason", " "),
        ("--reason", "empty"),
    ),
    Case(
        "drain-subnet",
        ("drain", "192.0.2.0/24", "--socket", "{d}/nobody.sock", "--reason", "x"),
        ("192.0.2.0/24", "host route"),
    ),
    Case(
        "drain-bad-ip",
        ("drain", "192.0.2.300", "--socket", "{d}/nobody.sock", "--reason", "x"),
        ("192.0.2.300",),
    ),
    Case("undrain-typo", ("undrain", "192.0.2,10", "--socket", "{d}/nobody.sock"), ("192.0.2,10",)),
    Case(
        "render-node-unknown",
        ("render", "node", GOOD_TOPO, "--node", "lb9", "--out", "-"),
        ("--node", "lb9"),
    ),
    Case(
        "render-frr-unknown",
        ("render", "frr", GOOD_TOPO, "--router", "r9", "--out", "-"),
        ("--router", "r9"),
    ),
    Case(
        "render-profile",
        ("render", "node", GOOD_TOPO, "--node", "lb1", "--profile", "fast", "--out", "-"),
        ("--profile",),
    ),
    Case(
        "render-run-dir-long",
        ("render", "node", GOOD_TOPO, "--node", "lb1", "--run-dir", "/" + "r" * 110, "--out", "-"),
        ("run_dir", "107"),
    ),
    Case(
        "render-out-under-file",
        ("render", "node", GOOD_TOPO, "--node", "lb1", "--out", "{d}/good-topology.yaml/x"),
        ("good-topology.yaml/x",),
    ),
    Case(
        "render-exabgp-out-under-file",
        ("render", "exabgp", "{d}/good-node.yaml", "--out", "{d}/good-topology.yaml/x"),
        ("good-topology.yaml/x",),
    ),
    Case(
        "stall-after-nan",
        ("agent", "run", "{d}/good-node.yaml", "--stall-after", "nan"),
        ("--stall-after", "finite"),
    ),
    Case(
        "stall-after-below-floor",
        ("agent", "run", "{d}/good-node.yaml", "--stall-after", "0.1"),
        ("--stall-after", "0.3"),
    ),
    Case("config-check-nothing", ("config", "check"), ("FILES",)),
    Case("unknown-command", ("sim", "rnu"), ("rnu",)),
    Case("unknown-option", ("status", "--sockett", "/tmp/x"), ("--sockett",)),
]


# ---------------------------------------------------------------- socket answers
# Answers of something on the control socket that is not (this version of) our agent.
ANSWERS = {
    "not-json": b"hello\n",
    "json-list": b"[1, 2]\n",
    "no-ok": b'{"vips": []}\n',
    "ok-not-bool": b'{"ok": "yes"}\n',
    "vips-number": b'{"ok": true, "vips": 7}\n',
    "vip-string": b'{"ok": true, "vips": ["192.0.2.10"]}\n',
    "since-huge": b'{"ok": true, "vips": [{"address": "192.0.2.10/32", "since": 1e300}]}\n',
    "checks-dict": b'{"ok": true, "vips": [{"address": "192.0.2.10/32", "checks": {"a": 1}}]}\n',
    "exabgp-list": b'{"ok": true, "exabgp": [], "vips": []}\n',
    "silent-close": b"",
    "binary": b"\xff\xfe\x00\n",
}
ANSWER_FIELDS = {
    "vips-number": "vips",
    "vip-string": "vips[0]",
    "since-huge": "vips[0].since",
    "checks-dict": "vips[0].checks",
    "exabgp-list": "exabgp",
}


def answer_cases() -> list[Case]:
    return [
        Case(
            f"answer-{name}",
            ("status", "--socket", "{d}/" + f"{name}.sock"),
            ("<socket>", f"{name}.sock", ANSWER_FIELDS.get(name, "")),
        )
        for name in ANSWERS
    ]


class FakeAgents:
    """One Unix socket per canned answer, each answering every request with it."""

    def __init__(self, directory: Path):
        self.sockets = []
        for name, answer in ANSWERS.items():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(str(directory / f"{name}.sock"))
            sock.listen(8)
            self.sockets.append(sock)
            threading.Thread(target=self._serve, args=(sock, answer), daemon=True).start()

    @staticmethod
    def _serve(sock: socket.socket, answer: bytes) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    conn.sendall(answer)
                except OSError:
                    pass

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


# ---------------------------------------------------------------- the sweep
ALL_CASES = file_cases() + value_cases() + ARG_CASES + answer_cases()
assert len({c.id for c in ALL_CASES}) == len(ALL_CASES)


def write_inputs(d: Path) -> None:
    for kind, (data, _) in BAD_FILES.items():
        if data is not None:
            (d / f"{kind}.yaml").write_bytes(data)
    for name, old, new, _, _ in NODE_EDITS:
        (d / f"node-{name}.yaml").write_text(NODE.replace(old, new, 1))
    for name, old, new, _, _ in TOPOLOGY_EDITS:
        (d / f"topo-{name}.yaml").write_text(TOPOLOGY.replace(old, new, 1))
    (d / "good-topology.yaml").write_text(TOPOLOGY)
    (d / "good-node.yaml").write_text(NODE)
    header = "src,dst,proto,sport,dport\n"
    (d / "flows-bad.csv").write_text(
        header + "198.18.1.1,192.0.2.10,tcp,1000,443\n198.18.1.2,192.0.2.10,tcp,70000,443\n"
    )
    (d / "flows-utf16.csv").write_bytes(
        (header + "198.18.1.1,192.0.2.10,tcp,1000,443\n").encode("utf-16")
    )


# One case of every kind also runs as the real executable.
CONSOLE_SAMPLE = {
    *(f"{kind}-config-check" for kind in ("missing", "binary", "utf16", "bomb", "list")),
    "directory-sim-run",
    "node-dup-key-agent",
    "node-v6-vip-v4-peers-agent",
    "topo-vip-in-link-pool-render",
    "flows-inf",
    "csv-no-dir",
    "predict-bad-row",
    "timeout-nan",
    "socket-under-file",
    "answer-vips-number",
}


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> Iterator[dict[str, Path]]:
    d = tmp_path_factory.mktemp("bad")
    short = Path("/tmp") / f"acx-bad-{os.getpid()}"  # socket paths must stay under 108 bytes
    short.mkdir()
    write_inputs(d)
    agents = FakeAgents(short)
    try:
        yield {"d": d, "short": short}
    finally:
        agents.close()
        shutil.rmtree(short, ignore_errors=True)


def argv_of(case: Case, places: dict[str, Path]) -> list[str]:
    d = places["short"] if case.id.startswith("answer-") else places["d"]
    return [a.replace("{d}", str(d)) for a in case.args]


def guard_agent_run(argv: list[str]) -> None:
    """A config the case fails to break would start a real agent: refuse to run it."""
    if argv[:2] == ["agent", "run"] and "--stall-after" not in argv:
        code, _, _ = run_cli("config", "check", argv[2])
        assert code == 2, f"config check accepts {argv[2]}: the case does not break it"


@pytest.fixture(scope="module")
def console(places) -> dict[str, Outcome]:
    """The sample, run as the installed console script, a few at a time."""
    sample = [c for c in ALL_CASES if c.id in CONSOLE_SAMPLE]
    assert len(sample) == len(CONSOLE_SAMPLE)

    def run(case: Case) -> Outcome:
        argv = argv_of(case, places)
        done = subprocess.run(
            [CLI, *argv], input=case.stdin, capture_output=True, text=True, timeout=60
        )
        return Outcome(done.returncode, done.stdout, done.stderr)

    for case in sample:
        guard_agent_run(argv_of(case, places))
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip([c.id for c in sample], pool.map(run, sample), strict=True))


def assert_refused(case: Case, done: Outcome) -> None:
    err = done.stderr
    assert "Traceback" not in err, err
    assert done.code == 2, (done.code, err, done.stdout[-500:])
    lines = err.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), err
    for needle in case.expect:
        assert needle in err, f"{needle!r} not in {err!r}"


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_bad_input_exits_2_with_one_error_line_per_problem(places, case):
    argv = argv_of(case, places)
    guard_agent_run(argv)
    assert_refused(case, Outcome(*run_cli(*argv, stdin=case.stdin)))


@pytest.mark.parametrize("case_id", sorted(CONSOLE_SAMPLE))
def test_the_installed_console_script_refuses_them_alike(console, case_id):
    case = next(c for c in ALL_CASES if c.id == case_id)
    assert_refused(case, console[case_id])


def test_unreadable_file_is_named_even_for_root(tmp_path):
    """Root reads any file, so the case runs as `nobody` (when we are root)."""
    path = tmp_path / "secret.yaml"
    path.write_text(NODE)
    path.chmod(0o000)
    argv = [CLI, "config", "check", str(path)]
    if os.geteuid() == 0:
        tmp_path.chmod(0o755)
        for parent in tmp_path.parents:
            if not os.access(parent, os.X_OK, effective_ids=False):
                pytest.skip("the test directory is not reachable by nobody")
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if "Permission denied" in done.stderr and "secret.yaml" not in done.stderr:
        pytest.skip("nobody cannot run the venv here")
    assert done.returncode == 2, done.stderr
    assert re.fullmatch(
        rf"error: {re.escape(str(path))}: permission denied: cannot read it\n", done.stderr
    )


def test_agent_run_exits_2_before_it_writes_anything_to_exabgp(tmp_path):
    """What config check rejects, agent run refuses before its first line on stdout."""
    path = tmp_path / "node.yaml"
    path.write_text(NODE.replace("address: 192.0.2.10", "address: '2001:db8::10'"))
    check = subprocess.run([CLI, "config", "check", str(path)], capture_output=True, text=True)
    run = subprocess.run([CLI, "agent", "run", str(path)], capture_output=True, text=True, input="")
    assert check.returncode == run.returncode == 2
    assert run.stdout == ""
    assert check.stderr == run.stderr


def test_good_inputs_of_the_sweep_are_accepted(tmp_path):
    """The sweep's baselines are valid: each bad case differs from a good input by its edit."""
    write_inputs(tmp_path)
    node = subprocess.run(
        [CLI, "config", "check", str(tmp_path / "good-node.yaml")], capture_output=True, text=True
    )
    assert node.returncode == 0, node.stderr
    topo = subprocess.run(
        [
            CLI,
            "render",
            "node",
            str(tmp_path / "good-topology.yaml"),
            "--node",
            "lb1",
            "--out",
            "-",
        ],
        capture_output=True,
        text=True,
    )
    assert topo.returncode == 0, topo.stderr
