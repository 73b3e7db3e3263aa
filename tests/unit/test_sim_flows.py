"""Flow generation and CSV reading: deterministic, inside the clients' prefixes, precise errors."""

import ipaddress
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from anycast_ctl.config.loading import validate
from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.sim.csvflows import read_flows_csv
from anycast_ctl.sim.flows import BLOCK, generate
from anycast_ctl.sim.run import csv_batches

TOPOLOGIES = Path(__file__).parents[2] / "topologies"


def dual_stack() -> Topology:
    data = yaml.safe_load((TOPOLOGIES / "default.yaml").read_text())
    data["clients"][0]["prefixes"].append("2001:db8:c1::/64")
    data["vips"].append(
        {"name": "web6", "address": "2001:db8::10", "port": 8443, "backends": ["be1"]}
    )
    for lb in data["lbs"]:
        lb["vips"].append("web6")
    return validate(Topology, data, "t.yaml")


def test_generated_flows_come_from_client_prefixes_to_vips():
    t = load_topology(TOPOLOGIES / "two-routers.yaml")
    batches = list(generate(t, 5_000, seed=9))
    assert sum(len(b) for b in batches) == 5_000
    for b in batches:
        for src, client in zip(b.flows.address_strings("src"), b.client, strict=True):
            assert ipaddress.ip_address(src) in t.clients[client].prefix(4)
        vips = [str(t.vips[v].ip) for v in b.vip]
        assert b.flows.address_strings("dst") == vips
        assert (b.flows.proto == 6).all() and (b.flows.sport >= 1024).all()


def test_generation_is_deterministic_per_seed():
    t = load_topology(TOPOLOGIES / "default.yaml")
    a, b, c = (next(generate(t, 1_000, seed=s)) for s in (5, 5, 6))
    assert (a.flows.sport == b.flows.sport).all() and (a.flows.src == b.flows.src).all()
    assert not (a.flows.sport == c.flows.sport).all()


def test_streaming_blocks_bound_the_batch_size():
    t = load_topology(TOPOLOGIES / "default.yaml")
    sizes = [len(b) for b in generate(t, 2 * BLOCK + 5, zipf=0)]
    assert sizes == [BLOCK, BLOCK, 5]


def test_ipv6_vips_get_ipv6_flows_from_the_ipv6_prefix():
    t = dual_stack()
    batches = {b.flows.family: b for b in generate(t, 4_000)}
    v6 = batches[6]
    assert 1_700 < len(v6) < 2_300  # the client spreads over its two VIPs
    assert all(
        ipaddress.ip_address(s) in ipaddress.ip_network("2001:db8:c1::/64")
        for s in v6.flows.address_strings("src")[:200]
    )
    assert set(v6.flows.address_strings("dst")) == {"2001:db8::10"} and set(
        v6.flows.dport.tolist()
    ) == {8443}


def test_zipf_bytes_put_most_bytes_on_few_flows():
    t = load_topology(TOPOLOGIES / "default.yaml")
    b = next(generate(t, 50_000, zipf=1.5))
    top = np.sort(b.bytes)[::-1][: len(b) // 100].sum() / b.bytes.sum()
    assert top > 0.3  # the top 1% of flows carry more than 30% of the bytes
    assert len(set(next(generate(t, 1_000, zipf=0)).bytes.tolist())) == 1


def write(tmp_path, text) -> Path:
    p = tmp_path / "flows.csv"
    p.write_text(textwrap.dedent(text).lstrip())
    return p


def test_csv_with_mixed_families_protocol_names_and_bytes(tmp_path):
    path = write(
        tmp_path,
        """
        src,dst,proto,sport,dport,bytes
        198.18.1.7,192.0.2.10,tcp,40000,443,1500
        2001:db8:c1::9,2001:db8::10,17,5000,53,10

        198.18.1.8,192.0.2.10,6,40001,443,3000
    """,
    )
    got = read_flows_csv(path)
    v4, v6 = got.parts
    assert got.total == 3 and v4.rows.tolist() == [2, 5] and v6.rows.tolist() == [3]
    assert v4.flows.address_strings("src") == [
        "198.18.1.7",
        "198.18.1.8",
    ] and v4.bytes.tolist() == [1500, 3000]
    assert v6.flows.proto.tolist() == [17]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "src,dst,proto,sport\n",
            ["row 1: missing column 'dport' (header: src,dst,proto,sport,dport[,bytes])"],
        ),
        (
            "src,dst,proto,sport,dport,byts\n",
            ["row 1: unknown column 'byts' (header: src,dst,proto,sport,dport[,bytes])"],
        ),
        (
            "src,dst,proto,sport,dport\n1.2.3.4,192.0.2.10,tcp,70000,443\n",
            ["row 2, field sport: '70000' is not a port 0-65535"],
        ),
        (
            "src,dst,proto,sport,dport\n1.2.3.4,192.0.2.10,tcp,1,443\n1.2.3.4,192.0.2.10,bogus,1,x\n",
            [
                "row 3, field proto: 'bogus' is not a protocol number 0-255"
                " or a name (tcp, udp, ...)",
                "row 3, field dport: 'x' is not a port 0-65535",
            ],
        ),
        (
            "src,dst,proto,sport,dport\n1.2.3.4,192.0.2.10,tcp,1\n",
            ["row 2: 4 fields, the header has 5"],
        ),
        (
            "src,dst,proto,sport,dport\n1.2.3.4,2001:db8::1,tcp,1,2\n",
            ["row 2, field dst: IPv6 destination for an IPv4 source"],
        ),
        ("", ["row 1: empty file: expected the header src,dst,proto,sport,dport[,bytes]"]),
    ],
)
def test_bad_csv_names_row_and_field(tmp_path, text, expected):
    path = tmp_path / "flows.csv"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        read_flows_csv(path)
    assert info.value.lines() == [f"{path}: {line}" for line in expected]


def test_csv_flows_must_fit_the_topology(tmp_path):
    t = load_topology(TOPOLOGIES / "default.yaml")
    path = write(
        tmp_path,
        """
        src,dst,proto,sport,dport
        198.18.1.7,192.0.2.10,tcp,40000,443
        198.18.1.7,192.0.2.99,tcp,40000,443
    """,
    )
    with pytest.raises(UserError) as info:
        list(csv_batches(t, path))  # a generator: the flows stream
    assert info.value.lines() == [
        f"{path}: row 3, field dst: 192.0.2.99 is not a VIP of the topology (192.0.2.10)"
    ]


def test_too_many_bad_rows_stop_at_a_readable_number(tmp_path):
    path = tmp_path / "flows.csv"
    path.write_text("src,dst,proto,sport,dport\n" + "x,192.0.2.10,tcp,1,2\n" * 500)
    with pytest.raises(UserError) as info:
        read_flows_csv(path)
    assert len(info.value.lines()) == 20
