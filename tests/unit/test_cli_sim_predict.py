"""`anycast-ctl sim predict` through `main`, checked against the plain-Python kernel model."""

import csv
import io
import ipaddress
import json
from collections import Counter

import numpy as np
import pytest
from cli_support import run_cli

from anycast_ctl.cli import sim_predict_cmd
from anycast_ctl.sim.linux import LinuxHashSettings, select_nexthop_scalar
from anycast_ctl.sim.router_predict import parse_nexthop

HEADER = "src,dst,proto,sport,dport"
PROTO_TEXT = {
    6: ["6", "tcp", "TCP"],
    17: ["17", "udp"],
    1: ["1", "icmp"],
    132: ["132"],
    47: ["gre"],
}


def random_rows(seed: int, n: int, families=(4, 6)) -> list[tuple[str, str, str, str, str]]:
    """CSV cells of random flows; protocols written both as numbers and as names."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        family = int(rng.choice(families))
        src, dst = (str(ipaddress.ip_address(random_address(rng, family))) for _ in range(2))
        proto = int(rng.choice(list(PROTO_TEXT)))
        sport, dport = (str(int(x)) for x in rng.integers(0, 65536, 2))
        rows.append((src, dst, str(rng.choice(PROTO_TEXT[proto])), sport, dport))
    return rows


def random_address(rng, family: int):
    if family == 4:
        return ipaddress.IPv4Address(int(rng.integers(1, 2**32)))
    high, low = (int(x) for x in rng.integers(0, 2**63, 2))
    return ipaddress.IPv6Address((1 << 125) | (high << 64) | low)  # in 2000::/3


def write_csv(path, rows, header=HEADER) -> str:
    path.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return str(path)


def expected_hops(
    rows, hops: list[str], weights: list[int], settings: LinuxHashSettings
) -> list[str]:
    names = {"tcp": 6, "udp": 17, "icmp": 1, "gre": 47}
    out = []
    for src, dst, proto, sport, dport in rows:
        number = names[proto.lower()] if proto.lower() in names else int(proto)
        flow = (src, dst, number, int(sport), int(dport))
        out.append(hops[select_nexthop_scalar(flow, weights, settings)])
    return out


def parse_output(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


HOPS = ["10.0.1.2", "10.0.2.2", "2001:db8::7"]
WEIGHTS = [1, 3, 2]
HOP_ARGS = ["--nexthop", "10.0.1.2", "--nexthop", "10.0.2.2:3", "--nexthop", "[2001:db8::7]:2"]


@pytest.mark.parametrize(
    "policy,fields,local",
    [
        (3, 0x37, False),
        (3, 0x37, True),
        (3, 0x13, False),
        (1, 0x37, False),
        (0, 0x37, False),
        (1, 0x37, True),
    ],
)
def test_predicted_nexthops_match_scalar_model_for_mixed_families(tmp_path, policy, fields, local):
    rows = random_rows(policy * 1000 + fields + local, 300)
    path = write_csv(tmp_path / "flows.csv", rows)
    args = [
        "sim",
        "predict",
        *HOP_ARGS,
        "--policy",
        str(policy),
        "--fields",
        hex(fields),
        "--seed",
        "0x5eed",
        "--flows",
        path,
    ]
    code, out, err = run_cli(*args, *(["--local"] if local else []))
    assert code == 0, err
    got = parse_output(out)
    assert got[0] == HEADER.split(",") + ["nexthop"]
    assert [tuple(r[:5]) for r in got[1:]] == rows  # every row, in input order, values untouched
    settings = LinuxHashSettings(policy, fields, 0x5EED, forwarded=not local)
    assert [r[5] for r in got[1:]] == expected_hops(rows, HOPS, WEIGHTS, settings)


def test_local_flag_changes_policy_3_answers(tmp_path):
    rows = random_rows(5, 200, families=(4,))
    path = write_csv(tmp_path / "flows.csv", rows)
    base = ["sim", "predict", *HOP_ARGS, "--seed", "7", "--flows", path]
    forwarded, local = run_cli(*base), run_cli(*base, "--local")
    assert forwarded[0] == local[0] == 0
    assert [r[5] for r in parse_output(local[1])[1:]] == expected_hops(
        rows, HOPS, WEIGHTS, LinuxHashSettings(3, 0x37, 7, forwarded=False)
    )
    assert forwarded[1] != local[1]  # the jhash step of forwarded packets is really applied or not


def test_stdin_keeps_header_spelling_quotes_bytes_and_skips_blank_lines():
    text = (
        "Src, DST ,proto,sport,dport,bytes\n"
        '"198.51.100.7",203.0.113.1,tcp,40000,443,1500\n'
        "\n"
        "2001:db8::1,2001:db8::2,17,53,53,10\n"
    )
    code, out, err = run_cli(
        "sim",
        "predict",
        "--nexthop",
        "10.0.0.1",
        "--nexthop",
        "10.0.0.2",
        "--seed",
        "42",
        "--flows",
        "-",
        stdin=text,
    )
    assert code == 0, err
    got = parse_output(out)
    assert got[0] == ["Src", " DST ", "proto", "sport", "dport", "bytes", "nexthop"]
    assert [r[:6] for r in got[1:]] == [
        ["198.51.100.7", "203.0.113.1", "tcp", "40000", "443", "1500"],
        ["2001:db8::1", "2001:db8::2", "17", "53", "53", "10"],
    ]
    settings = LinuxHashSettings(3, 0x37, 42)
    rows = [
        ("198.51.100.7", "203.0.113.1", "tcp", "40000", "443"),
        ("2001:db8::1", "2001:db8::2", "17", "53", "53"),
    ]
    assert [r[6] for r in got[1:]] == expected_hops(
        rows, ["10.0.0.1", "10.0.0.2"], [1, 1], settings
    )


def test_json_is_a_list_of_the_rows_with_their_nexthop(tmp_path):
    rows = random_rows(11, 50)
    path = write_csv(tmp_path / "flows.csv", rows)
    base = ["sim", "predict", *HOP_ARGS, "--seed", "9", "--flows", path]
    (_, as_csv, _), (code, as_json, err) = run_cli(*base), run_cli(*base, "--json")
    assert code == 0, err
    objects = json.loads(as_json)
    assert objects == [
        dict(zip(HEADER.split(",") + ["nexthop"], r, strict=True)) for r in parse_output(as_csv)[1:]
    ]


@pytest.mark.parametrize("fmt", [[], ["--json"]])
def test_output_written_in_small_batches_is_identical(tmp_path, monkeypatch, fmt):
    path = write_csv(tmp_path / "flows.csv", random_rows(13, 50))
    args = ["sim", "predict", *HOP_ARGS, "--seed", "9", "--flows", path, *fmt]
    whole = run_cli(*args)
    monkeypatch.setattr(sim_predict_cmd, "OUTPUT_BATCH", 7)
    assert run_cli(*args) == whole


def test_summary_counts_flows_per_nexthop_on_stderr(tmp_path):
    rows = random_rows(12, 400)
    path = write_csv(tmp_path / "flows.csv", rows)
    code, out, err = run_cli(
        "sim", "predict", *HOP_ARGS, "--seed", "9", "--flows", path, "--summary"
    )
    assert code == 0, err
    counts = Counter(r[5] for r in parse_output(out)[1:])
    table = {line.split()[0]: line.split() for line in err.splitlines()[1:]}
    for hop, weight in zip(HOPS, WEIGHTS, strict=True):
        assert table[hop][1] == str(weight)
        assert int(table[hop][3]) == counts[hop]
    assert table["total"][3] == "400"


def test_single_nexthop_takes_every_flow_and_header_only_file_gives_header_only(tmp_path):
    path = write_csv(tmp_path / "flows.csv", random_rows(3, 20))
    code, out, _ = run_cli(
        "sim", "predict", "--nexthop", "192.0.2.1", "--seed", "1", "--flows", path
    )
    assert code == 0
    assert {r[5] for r in parse_output(out)[1:]} == {"192.0.2.1"}
    code, out, _ = run_cli(
        "sim",
        "predict",
        "--nexthop",
        "192.0.2.1",
        "--seed",
        "1",
        "--flows",
        write_csv(tmp_path / "e.csv", []),
    )
    assert (code, out) == (0, HEADER + ",nexthop\n")


@pytest.mark.parametrize(
    "text,address,weight",
    [
        ("10.0.0.1", "10.0.0.1", 1),
        ("10.0.0.1:256", "10.0.0.1", 256),
        ("2001:db8::1:3", "2001:db8::1:3", 1),  # unbracketed: all address
        ("[2001:DB8::1]:3", "2001:db8::1", 3),
        ("[2001:db8::1]", "2001:db8::1", 1),
    ],
)
def test_parse_nexthop_accepts(text, address, weight):
    hop = parse_nexthop(text)
    assert (hop.address, hop.weight) == (address, weight)


# (row text, where, what) -- rows are numbered as file lines, the header being row 1
BAD_ROWS = [
    ("1.2.3.4,5.6.7.8,tcp,70000,80", "row 3, field sport", "'70000' is not a port 0-65535"),
    ("1.2.3.4,5.6.7.8,tcp,80,-1", "row 3, field dport", "'-1' is not a port"),
    ("1.2.3.4,5.6.7.8,quic,80,80", "row 3, field proto", "'quic' is not a protocol number"),
    ("1.2.3.4,5.6.7.8,256,80,80", "row 3, field proto", "'256' is not a protocol number"),
    ("1.2.3.999,5.6.7.8,6,80,80", "row 3, field src", "'1.2.3.999' is not an IP address"),
    ("1.2.3.4,2001:db8::1,6,80,80", "row 3, field dst", "IPv6 destination for an IPv4 source"),
    ("1.2.3.4,5.6.7.8,6,80", "row 3", "4 fields, the header has 5"),
]


@pytest.mark.parametrize("row,where,what", BAD_ROWS)
def test_bad_row_names_file_row_and_field_and_exits_2(tmp_path, row, where, what):
    path = tmp_path / "flows.csv"
    path.write_text(f"{HEADER}\n10.0.0.9,10.0.0.10,udp,1,2\n{row}\n")
    code, out, err = run_cli(
        "sim", "predict", "--nexthop", "10.0.0.1", "--seed", "7", "--flows", str(path)
    )
    assert code == 2
    assert f"error: {path}: {where}: {what}" in err
    assert "Traceback" not in err and out == ""


def test_bad_header_and_unreadable_file_exit_2(tmp_path):
    code, _, err = run_cli(
        "sim",
        "predict",
        "--nexthop",
        "10.0.0.1",
        "--seed",
        "7",
        "--flows",
        "-",
        stdin="src,dst,proto,sport\n",
    )
    assert code == 2 and "error: <stdin>: row 1: missing column 'dport'" in err
    missing = tmp_path / "absent.csv"
    code, _, err = run_cli(
        "sim", "predict", "--nexthop", "10.0.0.1", "--seed", "7", "--flows", str(missing)
    )
    assert code == 2 and f"error: {missing}: cannot read: No such file or directory" in err
    (tmp_path / "bin.csv").write_bytes(HEADER.encode() + b"\n\xff\xfe,1\n")
    code, _, err = run_cli(
        "sim",
        "predict",
        "--nexthop",
        "10.0.0.1",
        "--seed",
        "7",
        "--flows",
        str(tmp_path / "bin.csv"),
    )
    assert code == 2 and "not UTF-8 text" in err


BAD_ARGS = [
    (
        ["--nexthop", "10.0.0.1:257"],
        "error: --nexthop: #1 '10.0.0.1:257': weight 257 is outside 1..256",
    ),
    (["--nexthop", "10.0.0.1:0"], "weight 0 is outside 1..256"),
    (["--nexthop", "10.0.0.1:x"], "weight 'x' is not a whole number"),
    (
        ["--nexthop", "10.0.0.300"],
        "error: --nexthop: #1 '10.0.0.300': '10.0.0.300' is not an IP address",
    ),
    (
        ["--nexthop", "2001:db8::1:3:x"],
        "is not an IP address (an IPv6 next hop with a weight is written [ADDR]:WEIGHT)",
    ),
    (["--nexthop", "[2001:db8::1"], "missing ']'"),
    (["--nexthop", "[10.0.0.1]:2"], "brackets are for IPv6 addresses"),
    (
        ["--nexthop", "10.0.0.1", "--policy", "2"],
        "error: --policy: policy 2 hashes the inner headers",
    ),
    (["--nexthop", "10.0.0.1", "--policy", "4"], "error: --policy: 4 is out of range"),
    (["--nexthop", "10.0.0.1", "--fields", "0x1000"], "error: --fields: 0x1000 is out of range"),
    (["--nexthop", "10.0.0.1", "--fields", "zz"], "error: --fields: 'zz' is not a number"),
    (
        ["--nexthop", "10.0.0.1", "--seed", "0"],
        "error: --seed: seed 0 makes the kernel use a random key",
    ),
    (
        ["--nexthop", "10.0.0.1", "--seed", "0x100000000"],
        "error: --seed: 0x100000000 is out of range",
    ),
]


@pytest.mark.parametrize("args,message", BAD_ARGS)
def test_bad_argument_names_its_option_and_exits_2(tmp_path, args, message):
    path = write_csv(tmp_path / "flows.csv", random_rows(1, 3))
    seed = [] if "--seed" in args else ["--seed", "7"]
    code, out, err = run_cli("sim", "predict", *args, *seed, "--flows", path)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and out == ""


def test_missing_required_options_are_all_reported():
    code, _, err = run_cli("sim", "predict")
    assert code == 2
    for option in ("--nexthop", "--seed", "--flows"):
        assert f"error: {option}: " in err
