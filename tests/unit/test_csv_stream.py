"""The streamed CSV reader: its numpy fast path and its exact row-by-row path agree on every
row, chunk boundaries change nothing, and a bad row far into a file prints nothing."""

from __future__ import annotations

import io
import ipaddress

import numpy as np
import pytest
from cli_support import run_cli

from anycast_ctl.errors import UserError
from anycast_ctl.sim import csvflows
from anycast_ctl.sim.csvfast import parse_block
from anycast_ctl.sim.csvflows import FAST_PROTOCOLS, iter_csv_chunks, read_flows_csv

HEADER = "src,dst,proto,sport,dport"
COL = {name: i for i, name in enumerate(HEADER.split(","))}


def rows(seed: int, n: int) -> list[str]:
    """Plain rows, and rows only the exact reader takes (spaces, IPv6, names in any case,
    leading zeros in ports), mixed."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = (str(ipaddress.IPv4Address(int(x))) for x in rng.integers(0, 2**32, 2))
        proto = str(rng.choice(["tcp", "UDP", "6", "17", "Tcp", "icmp", "255", "0"]))
        sport, dport = (str(int(x)) for x in rng.integers(0, 65536, 2))
        kind = rng.integers(0, 20)
        if kind == 0:
            a, b = f"2001:db8::{rng.integers(1, 9999):x}", "2001:db8::1"
        elif kind == 1:
            sport = f" {sport}"
        elif kind == 2:
            dport = "0" + dport
        out.append(",".join((a, b, proto, sport, dport)))
    return out


def as_tuples(flows: csvflows.CsvFlows) -> list[tuple[object, ...]]:
    got: list[tuple[object, ...]] = []
    for part in flows.parts:
        f = part.flows
        src = f.src.tolist() if f.family == 4 else [tuple(x) for x in f.src.tolist()]
        dst = f.dst.tolist() if f.family == 4 else [tuple(x) for x in f.dst.tolist()]
        got += zip(
            part.rows.tolist(),
            src,
            dst,
            f.proto.tolist(),
            f.sport.tolist(),
            f.dport.tolist(),
            strict=True,
        )
    return sorted(got)


def read(text: str) -> csvflows.CsvFlows:
    return read_flows_csv("t.csv", stream=io.BytesIO(text.encode()))


@pytest.mark.parametrize("block", [64, 1000, 1 << 20])
def test_fast_and_exact_paths_read_the_same_flows_whatever_the_block_size(monkeypatch, block):
    text = HEADER + "\n" + "\n".join(rows(1, 3000)) + "\n"
    monkeypatch.setattr(csvflows, "BLOCK_BYTES", block)
    fast = as_tuples(read(text))
    monkeypatch.setattr(csvflows, "parse_block", lambda *a, **k: None)
    exact = as_tuples(read(text))
    assert fast == exact and len(fast) == 3000


def test_fast_path_takes_plain_blocks_and_refuses_what_only_the_exact_reader_may_judge():
    ok = b"1.2.3.4,5.6.7.8,tcp,80,00443\n10.0.0.1,10.0.0.2,17,0,65535\n"
    got = parse_block(ok, 5, COL, FAST_PROTOCOLS)
    assert got is not None
    assert got.src.tolist() == [0x01020304, 0x0A000001] and got.dport.tolist() == [443, 65535]
    for bad in [
        b"01.2.3.4,5.6.7.8,tcp,80,80\n",  # a leading zero: ipaddress refuses it
        b"1.2.3.256,5.6.7.8,tcp,80,80\n",
        b"1.2.3,5.6.7.8,tcp,80,80\n",
        b"1.2.3.4.5,5.6.7.8,tcp,80,80\n",
        b"1.2..4,5.6.7.8,tcp,80,80\n",
        b"1.2.3.4,5.6.7.8,quic,80,80\n",
        b"1.2.3.4,5.6.7.8,Tcp,80,80\n",  # the exact reader lowercases
        b"1.2.3.4,5.6.7.8,256,80,80\n",
        b"1.2.3.4,5.6.7.8,6,70000,80\n",
        b"1.2.3.4,5.6.7.8,6,8a,80\n",
        b"1.2.3.4,5.6.7.8,6,,80\n",
        b" 1.2.3.4,5.6.7.8,6,80,80\n",
        b"1.2.3.4,5.6.7.8,6,80\n",
        b"1.2.3.4,5.6.7.8,6,80,80,1\n",
        b"1.2.3.4,5.6.7.8,6,80,80\n\n",  # a blank line
        b"::1,::2,6,80,80\n",
    ]:
        assert parse_block(bad, 5, COL, FAST_PROTOCOLS) is None, bad


def test_crlf_line_ends_read_like_lf():
    text = HEADER + "\n" + "\n".join(rows(2, 200)) + "\n"
    assert as_tuples(read(text.replace("\n", "\r\n"))) == as_tuples(read(text))


def test_chunks_stream_in_bounded_size(monkeypatch):
    monkeypatch.setattr(csvflows, "BLOCK_BYTES", 4096)
    text = HEADER + "\n" + "1.2.3.4,5.6.7.8,tcp,1000,443\n" * 5000
    chunks = list(iter_csv_chunks("t.csv", io.BytesIO(text.encode())))
    assert len(chunks) > 30 and max(c.count for c in chunks) <= 4096 // 20
    assert sum(c.count for c in chunks) == 5000


def test_a_bad_row_in_a_late_block_names_its_line(monkeypatch):
    monkeypatch.setattr(csvflows, "BLOCK_BYTES", 4096)
    good = "1.2.3.4,5.6.7.8,tcp,1000,443\n"
    text = HEADER + "\n" + good * 3000 + "1.2.3.4,5.6.7.8,tcp,1000,99999\n" + good
    with pytest.raises(UserError) as info:
        read(text)
    assert info.value.lines() == ["t.csv: row 3002, field dport: '99999' is not a port 0-65535"]


def test_predict_prints_nothing_when_a_row_far_into_the_file_is_bad(tmp_path, monkeypatch):
    monkeypatch.setattr(csvflows, "BLOCK_BYTES", 4096)
    path = tmp_path / "flows.csv"
    good = "198.18.1.1,192.0.2.10,tcp,1000,443\n"
    path.write_text(HEADER + "\n" + good * 2000 + "198.18.1.1,192.0.2.10,tcp,1000,x\n")
    code, out, err = run_cli(
        "sim", "predict", "--nexthop", "10.0.0.1", "--seed", "7", "--flows", str(path)
    )
    assert (code, out) == (2, "")
    assert f"error: {path}: row 2002, field dport: 'x' is not a port" in err
