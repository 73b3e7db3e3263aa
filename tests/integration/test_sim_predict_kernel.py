"""`anycast-ctl sim predict`, run as the console script, against the running kernel (root only).

A namespace ``acx-sp<pid>-*`` gets a default route over four weighted next hops (veths whose
peers stay in the namespace; no ``dummy`` module here), a hash seed and a policy. 1000
random flows go through the CLI as CSV, and every row's ``nexthop`` must be the next hop
``ip route get ... iif`` answers for it (via ``ip -batch``). IPv4 ``ip route get`` answers
like a forwarded packet; ``ip -6 route get`` like a locally generated one (see
test_kernel_prediction.py), so IPv6 rows are predicted with ``--local``.

The flow generator and the ``ip -batch`` reader are imported from test_kernel_prediction
(this directory is on sys.path under pytest's rootdir imports).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from test_kernel_prediction import configure, random_flows, route_get, sh

from anycast_ctl.sim.flowarrays import FlowArrays

pytestmark = pytest.mark.root

CLI = Path(__file__).parents[2] / ".venv" / "bin" / "anycast-ctl"
WEIGHTS = [2, 5, 1, 3]
SEED = 0x9E3779B1
N_FLOWS = 1000
HOPS4 = [f"10.1.{i}.2" for i in range(len(WEIGHTS))]
HOPS6 = [
    str(ipaddress.ip_address(f"2001:db8:1:{i}::2")) for i in range(len(WEIGHTS))
]  # as the CLI prints them
PROTO_NAMES = {6: "tcp", 17: "udp"}  # the CSV spells these by name, the rest by number


@pytest.fixture(scope="module")
def router():
    """The router namespace with weighted IPv4 and IPv6 multipath default routes.

    Removed even on failure.
    """
    ns = f"acx-sp{os.getpid()}-{uuid.uuid4().hex[:8]}"
    sh("ip", "netns", "add", ns)
    try:
        ip = ("ip", "-n", ns)
        sh(
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            f"net.ipv4.fib_multipath_hash_seed={SEED}",
        )
        sh(*ip, "link", "set", "lo", "up")
        for i in range(len(WEIGHTS)):
            sh(*ip, "link", "add", f"r{i}", "type", "veth", "peer", "name", f"p{i}")
            sh(*ip, "addr", "add", f"10.1.{i}.1/24", "dev", f"r{i}")
            sh(*ip, "addr", "add", f"2001:db8:1:{i}::1/64", "dev", f"r{i}", "nodad")
            sh(*ip, "link", "set", f"r{i}", "up")
            sh(*ip, "link", "set", f"p{i}", "up")
        sh(*ip, "link", "add", "cin", "type", "veth", "peer", "name", "cpeer")
        sh(*ip, "addr", "add", "10.9.0.1/24", "dev", "cin")
        sh(*ip, "addr", "add", "2001:db8:9::1/64", "dev", "cin", "nodad")
        sh(*ip, "link", "set", "cin", "up")
        sh(*ip, "link", "set", "cpeer", "up")
        for family, hops in (("-4", HOPS4), ("-6", HOPS6)):
            spec = []
            for i, (gw, weight) in enumerate(zip(hops, WEIGHTS, strict=True)):
                spec += ["nexthop", "via", gw, "dev", f"r{i}", "weight", str(weight)]
            sh(*ip, family, "route", "add", "default", *spec)
        yield {"ns": ns}
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def nexthop_args(hops: list[str]) -> list[str]:
    args = []
    for gw, weight in zip(hops, WEIGHTS, strict=True):
        args += ["--nexthop", f"[{gw}]:{weight}" if ":" in gw else f"{gw}:{weight}"]
    return args


def csv_rows(flows: FlowArrays) -> list[list[str]]:
    return [
        [s, d, PROTO_NAMES.get(int(p), str(int(p))), str(int(sp)), str(int(dp))]
        for s, d, p, sp, dp in zip(
            flows.address_strings("src"),
            flows.address_strings("dst"),
            flows.proto,
            flows.sport,
            flows.dport,
            strict=True,
        )
    ]


def run_predict(
    rows: list[list[str]], *args: str, via_stdin: bool = False, tmp_path: Path
) -> list[list[str]]:
    """The CLI's output rows (header dropped), after checking it kept every input row as given."""
    text = "src,dst,proto,sport,dport\n" + "".join(",".join(r) + "\n" for r in rows)
    if via_stdin:
        flows_arg, stdin = "-", text
    else:
        (tmp_path / "flows.csv").write_text(text)
        flows_arg, stdin = str(tmp_path / "flows.csv"), None
    done = subprocess.run(
        [str(CLI), "sim", "predict", *args, "--seed", hex(SEED), "--flows", flows_arg],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = list(csv.reader(io.StringIO(done.stdout)))
    assert out[0] == ["src", "dst", "proto", "sport", "dport", "nexthop"]
    assert [r[:5] for r in out[1:]] == rows
    return out[1:]


def mismatches(rows: list[list[str]], predicted: list[str], kernel: list[str]) -> list[str]:
    return [
        f"{' '.join(r)}: predicted {p}, kernel {k}"
        for r, p, k in zip(rows, predicted, kernel, strict=True)
        if p != k
    ]


@pytest.mark.parametrize("policy,fields", [(0, 0x37), (1, 0x37), (3, 0x37), (3, 0x13), (3, 0x26)])
def test_predict_matches_ip_route_get_for_forwarded_ipv4(router, tmp_path, policy, fields):
    configure(router, 4, policy, fields)
    flows = random_flows(np.random.default_rng(900 + policy * 100 + fields), 4, N_FLOWS)
    rows = csv_rows(flows)
    out = run_predict(
        rows,
        *nexthop_args(HOPS4),
        "--policy",
        str(policy),
        "--fields",
        hex(fields),
        tmp_path=tmp_path,
    )
    kernel = [HOPS4[i] for i in route_get(router, flows, iif="cin")]
    assert len(set(kernel)) == len(WEIGHTS)  # every next hop is exercised
    assert mismatches(rows, [r[5] for r in out], kernel) == []


@pytest.mark.parametrize("policy,fields", [(1, 0x37), (3, 0x37), (3, 0x13)])
def test_predict_local_matches_ip6_route_get(router, tmp_path, policy, fields):
    configure(router, 6, policy, fields)
    flows = random_flows(np.random.default_rng(960 + policy * 100 + fields), 6, N_FLOWS, icmp=False)
    rows = csv_rows(flows)
    out = run_predict(
        rows,
        *nexthop_args(HOPS6),
        "--policy",
        str(policy),
        "--fields",
        hex(fields),
        "--local",
        via_stdin=True,
        tmp_path=tmp_path,
    )
    kernel = [HOPS6[i] for i in route_get(router, flows, iif="cin")]
    assert mismatches(rows, [r[5] for r in out], kernel) == []


def test_mixed_family_file_is_predicted_per_family_and_merged_in_input_order(router, tmp_path):
    """Policy 1 over TCP/UDP hashes forwarded and local packets alike, so one run covers
    both kernels' answers; the IPv4 labels name the IPv6 rows' next hops too."""
    configure(router, 4, 1, 0x37)
    configure(router, 6, 1, 0x37)
    rng = np.random.default_rng(977)
    v4 = random_flows(rng, 4, N_FLOWS // 2, icmp=False)
    v6 = random_flows(rng, 6, N_FLOWS // 2, icmp=False)
    family_of = rng.permutation([4] * len(v4) + [6] * len(v6))
    queues = {4: iter(csv_rows(v4)), 6: iter(csv_rows(v6))}
    rows = [next(queues[f]) for f in family_of]
    out = run_predict(rows, *nexthop_args(HOPS4), "--policy", "1", tmp_path=tmp_path)
    kernel = {4: iter(route_get(router, v4, iif="cin")), 6: iter(route_get(router, v6, iif="cin"))}
    expected = [HOPS4[next(kernel[f])] for f in family_of]
    assert mismatches(rows, [r[5] for r in out], expected) == []
