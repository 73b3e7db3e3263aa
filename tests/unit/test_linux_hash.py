"""The Linux multipath model without a kernel: reference vs vectorized, weights, policies.

Agreement with the running kernel is tests/integration/test_kernel_prediction.py's job.
"""

import ipaddress

import numpy as np
import pytest

from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.linux import (
    LinuxHashSettings,
    flow_hash,
    flow_hash_scalar,
    flow_keys_bytes,
    select_nexthop_scalar,
    select_nexthops,
    upper_bounds,
)

SEED = 0x1234ABCD


def random_rows(family: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        if family == 4:
            src, dst = (str(ipaddress.IPv4Address(int(x))) for x in rng.integers(0, 1 << 32, 2))
        else:
            src, dst = (
                str(
                    ipaddress.IPv6Address(
                        int(rng.integers(0, 1 << 63)) << 65 | int(rng.integers(0, 1 << 62))
                    )
                )
                for _ in range(2)
            )
        if i % 25 == 0:
            dst = src  # equal addresses: consistentify must leave them be
        sport, dport = (int(x) for x in rng.integers(0, 65536, 2))
        rows.append((src, dst, int(rng.choice([6, 17, 1, 47, 132])), sport, dport))
    return rows


SETTINGS = [
    (policy, fields, forwarded)
    for policy, fields in [
        (0, 0x37),
        (1, 0x37),
        (3, 0x37),
        (3, 0x03),
        (3, 0x13),
        (3, 0x24),
        (3, 0x40),
        (3, 0xFFF),
    ]
    for forwarded in (True, False)
]


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("policy,fields,forwarded", SETTINGS)
def test_vectorized_hash_equals_reference(family, policy, fields, forwarded):
    rows = random_rows(family, 400, seed=policy * 7 + fields)
    s = LinuxHashSettings(policy, fields, SEED, forwarded)
    expected = [flow_hash_scalar(*row, s) for row in rows]
    assert flow_hash(FlowArrays.from_tuples(rows), s).tolist() == expected


def test_vectorized_selection_equals_reference_across_chunks():
    rows = random_rows(4, 300, seed=9)
    flows = FlowArrays.from_tuples(rows * 120)  # 36000 flows: more than one internal chunk
    s = LinuxHashSettings(3, 0x37, SEED)
    expected = [select_nexthop_scalar(row, [2, 1, 3], s) for row in rows] * 120
    assert select_nexthops(flows, [2, 1, 3], s).tolist() == expected


def test_flow_keys_layout_for_ipv4():
    # struct flow_keys from 'basic' on: ip_proto at byte 2, ports at 28 (both big-endian,
    # smaller little-endian value first), addresses at 36 (smaller LE u32 first), 48 bytes.
    s = LinuxHashSettings(1, seed=1)
    raw = flow_keys_bytes("10.0.0.2", "10.0.0.1", 6, 0x0102, 0x0201, s)
    assert len(raw) == 48
    assert raw[2] == 6
    assert raw[28:32] == bytes([0x02, 0x01, 0x01, 0x02])  # dport first: 0x0102 < 0x0201 as LE
    assert raw[36:44] == bytes([10, 0, 0, 1, 10, 0, 0, 2])  # 1.0.0.10 < 2.0.0.10 as LE
    assert raw[:2] + raw[3:28] + raw[32:36] + raw[44:] == bytes(48 - 13)


def test_flow_keys_order_addresses_by_little_endian_value_not_by_address():
    s = LinuxHashSettings(0, seed=1)
    # 9.0.0.2 < 10.0.0.1 as addresses, but read little-endian 10.0.0.1 (0x0100000a) is smaller.
    raw = flow_keys_bytes("9.0.0.2", "10.0.0.1", 6, 1, 2, s)
    assert raw[36:44] == bytes([10, 0, 0, 1, 9, 0, 0, 2])


@pytest.mark.parametrize("policy,fields", [(0, 0x37), (1, 0x37), (3, 0x37)])
def test_both_directions_of_a_flow_hash_alike(policy, fields):
    s = LinuxHashSettings(policy, fields, SEED)
    there = FlowArrays.from_tuples([("192.0.2.1", "198.51.100.7", 6, 40000, 443)])
    back = FlowArrays.from_tuples([("198.51.100.7", "192.0.2.1", 6, 443, 40000)])
    assert flow_hash(there, s).tolist() == flow_hash(back, s).tolist()


def test_policy0_ignores_ports_and_policy1_does_not():
    rows = [("192.0.2.1", "198.51.100.7", 6, port, 443) for port in range(1000, 1200)]
    flows = FlowArrays.from_tuples(rows)
    assert len(set(flow_hash(flows, LinuxHashSettings(0, seed=SEED)).tolist())) == 1
    assert len(set(flow_hash(flows, LinuxHashSettings(1, seed=SEED)).tolist())) == 200


def test_policy3_differs_between_forwarded_and_local_but_policy1_does_not():
    flows = FlowArrays.from_tuples(random_rows(4, 200, seed=4))
    for policy, differ in ((3, True), (1, False)):
        fwd = flow_hash(flows, LinuxHashSettings(policy, 0x37, SEED, forwarded=True))
        local = flow_hash(flows, LinuxHashSettings(policy, 0x37, SEED, forwarded=False))
        same_tcp_udp = (fwd == local)[np.isin(flows.proto, [6, 17])]
        assert (not same_tcp_udp.all()) if differ else same_tcp_udp.all()


def test_forwarded_packets_without_ports_hash_port_zero():
    s = LinuxHashSettings(1, seed=SEED)
    icmp = FlowArrays.from_tuples([("192.0.2.1", "198.51.100.7", 1, p, 7) for p in (1, 2, 3)])
    assert len(set(flow_hash(icmp, s).tolist())) == 1
    local = LinuxHashSettings(1, seed=SEED, forwarded=False)
    assert len(set(flow_hash(icmp, local).tolist())) == 3


def test_policy3_with_only_inner_fields_sends_everything_one_way():
    flows = FlowArrays.from_tuples(random_rows(4, 100, seed=5))
    picks = select_nexthops(flows, [1, 1, 1], LinuxHashSettings(3, 0x40, SEED))
    assert len(set(picks.tolist())) == 1


def test_hash_is_31_bits():
    flows = FlowArrays.from_tuples(random_rows(4, 2000, seed=6))
    assert int(flow_hash(flows, LinuxHashSettings(3, seed=SEED)).max()) < 1 << 31


def test_upper_bounds_follow_fib_rebalance():
    # round(w_cum * 2**31 / total) - 1
    assert upper_bounds([1, 1]).tolist() == [(1 << 30) - 1, (1 << 31) - 1]
    assert upper_bounds([1, 2]).tolist() == [round((1 << 31) / 3) - 1, (1 << 31) - 1]
    assert upper_bounds([1, 1, 1]).tolist() == [715827882, 1431655764, 2147483647]


def test_weights_share_the_flows_in_proportion():
    rng = np.random.default_rng(8)
    n = 200_000
    flows = FlowArrays(
        rng.integers(0, 1 << 32, n),
        rng.integers(0, 1 << 32, n),
        np.full(n, 6),
        rng.integers(0, 65536, n),
        rng.integers(0, 65536, n),
    )
    share = (
        np.bincount(
            select_nexthops(flows, [1, 3, 2, 5], LinuxHashSettings(3, seed=SEED)), minlength=4
        )
        / n
    )
    assert np.allclose(share, np.array([1, 3, 2, 5]) / 11, atol=0.005)


def test_single_nexthop_takes_everything_without_hashing():
    flows = FlowArrays.from_tuples(random_rows(4, 10))
    assert select_nexthops(flows, [7], LinuxHashSettings(3, seed=SEED)).tolist() == [0] * 10


def test_seed_decides_the_choice():
    flows = FlowArrays.from_tuples(random_rows(4, 500, seed=10))
    a = select_nexthops(flows, [1, 1, 1, 1], LinuxHashSettings(3, seed=1))
    b = select_nexthops(flows, [1, 1, 1, 1], LinuxHashSettings(3, seed=2))
    assert 0.15 < (a == b).mean() < 0.35  # independent choices agree ~1/4 of the time


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"policy": 2}, "tunnelled"),
        ({"policy": 4}, "0, 1 or 3"),
        ({"fields": 0}, "0x1..0xfff"),
        ({"fields": 0x1000}, "0x1..0xfff"),
        ({"seed": 1 << 32}, "32-bit"),
    ],
)
def test_bad_settings_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        LinuxHashSettings(**kwargs)


def test_seed_zero_is_refused_with_the_reason():
    flows = FlowArrays.from_tuples(random_rows(4, 3))
    with pytest.raises(ValueError, match="random key chosen at boot"):
        select_nexthops(flows, [1, 1], LinuxHashSettings(3, seed=0))


@pytest.mark.parametrize("weights", [[], [0, 1], [1, 65537]])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ValueError):
        upper_bounds(weights)


def test_flow_arrays_from_tuples_and_back():
    rows = [("2001:db8::1", "2001:db8:ffff::2", 17, 53, 5353), ("::1", "fe80::1", 6, 1, 2)]
    flows = FlowArrays.from_tuples(rows)
    assert flows.family == 6 and len(flows) == 2
    assert flows.address_strings("src") == ["2001:db8::1", "::1"]
    assert flows.address_strings("dst") == ["2001:db8:ffff::2", "fe80::1"]
    assert len(flows.chunk(1, 5)) == 1


@pytest.mark.parametrize(
    "rows,words",
    [
        ([("10.0.0.1", "2001:db8::1", 6, 1, 1)], "row 0: src is IPv4"),
        (
            [("10.0.0.1", "10.0.0.2", 6, 1, 1), ("::1", "::2", 6, 1, 1)],
            "row 1: IPv6 flow among IPv4",
        ),
        ([("10.0.0.1", "10.0.0.300", 6, 1, 1)], "row 0"),
        ([("10.0.0.1", "10.0.0.2", 6, 70000, 1)], "row 0: sport"),
    ],
)
def test_flow_arrays_name_the_bad_row(rows, words):
    with pytest.raises(ValueError, match=words):
        FlowArrays.from_tuples(rows)
