"""`anycast-ctl sim run|compare` through `main`, as the console script runs them."""

import csv
import json
from pathlib import Path

import pytest
from cli_support import run_cli

ROOT = Path(__file__).parents[2]
DEFAULT = str(ROOT / "topologies/default.yaml")
LEAF_SPINE = str(ROOT / "topologies/leaf-spine.yaml")


def test_run_prints_a_table_for_people():
    code, out, err = run_cli("sim", "run", DEFAULT, "--flows", "20k")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "topology default: 20000 flows; routers use linux"
    assert [line.split()[0] for line in lines[2:6]] == ["LB", "lb1", "lb2", "lb3"]
    assert any(line.startswith("withdraw lb1") for line in lines)
    assert "polarization: none" in out


def test_run_json_for_scripts_with_chosen_events():
    code, out, err = run_cli(
        "sim",
        "run",
        DEFAULT,
        "--flows",
        "5000",
        "--json",
        "--event",
        "withdraw:lb2",
        "--event",
        "add:lb9",
    )
    assert code == 0, err
    data = json.loads(out)
    assert [e["event"] for e in data["events"]] == ["withdraw lb2", "add lb9"]
    assert sum(lb["flows"] for lb in data["lbs"]) == 5000
    assert data["parameters"] == {
        "generated": 5000,
        "seed": 1,
        "zipf": 1.5,
        "same_seed": False,
        "algorithm": None,
    }


def test_same_seed_shows_polarization_in_the_table():
    code, out, _ = run_cli("sim", "run", LEAF_SPINE, "--flows", "20k", "--same-seed", "--no-events")
    assert code == 0
    assert "POLARIZATION" in out and "s1 (web): unused next hops lb5, lb6, lb7, lb8" in out


def test_compare_puts_every_algorithm_side_by_side(tmp_path):
    out_csv = tmp_path / "cmp.csv"
    code, out, err = run_cli(
        "sim",
        "compare",
        DEFAULT,
        "--flows",
        "10k",
        "--csv",
        str(out_csv),
        "--event",
        "withdraw:lb1",
    )
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[3:9]}
    assert list(rows) == ["modulo", "hash-threshold", "rendezvous", "resilient", "maglev", "linux"]
    with out_csv.open() as f:
        table = list(csv.DictReader(f))
    moved = {
        r["algorithm"]: float(r["value"])
        for r in table
        if r["section"] == "event" and r["metric"] == "moved"
    }
    assert moved["rendezvous"] < moved["hash-threshold"] < moved["modulo"]


def test_plots_are_written_as_png_and_svg(tmp_path):
    code, out, err = run_cli(
        "sim", "run", DEFAULT, "--flows", "3000", "--plot", str(tmp_path / "plots")
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "disruption.png",
        "disruption.svg",
        "nexthops.png",
        "nexthops.svg",
        "shares.png",
        "shares.svg",
    ]
    assert (tmp_path / "plots/shares.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flows_from_csv(tmp_path):
    flows = tmp_path / "f.csv"
    flows.write_text(
        "src,dst,proto,sport,dport\n"
        + "".join(f"198.18.1.{i},192.0.2.10,tcp,{40000 + i},443\n" for i in range(1, 101))
    )
    code, out, err = run_cli(
        "sim", "run", DEFAULT, "--flows-file", str(flows), "--json", "--no-events"
    )
    assert code == 0, err
    assert json.loads(out)["flows"] == 100


@pytest.mark.parametrize(
    "args, message",
    [
        (["--flows", "lots"], "Invalid value for '--flows'"),
        (["--flows", "0"], "must be at least 1"),
        (
            ["--event", "withdraw:r1"],
            "error: --event: withdraw:r1: withdraw needs an LB node: one of lb1, lb2, lb3",
        ),
        (["--event", "link:r1-c9"], "error: --event: link:r1-c9: link needs two linked nodes"),
        (["--zipf", "0.5"], "error: --zipf: must be greater than 1"),
        (["--algorithm", "ecmp"], "Invalid value for '--algorithm'"),
        (["--no-events", "--event", "add"], "error: --no-events: cannot be combined with --event"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args, message):
    code, out, err = run_cli("sim", "run", DEFAULT, "--flows", "1000", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_bad_topology_and_bad_csv_exit_2(tmp_path):
    code, _, err = run_cli("sim", "run", str(tmp_path / "missing.yaml"))
    assert code == 2 and err == f"error: {tmp_path / 'missing.yaml'}: file not found\n"
    bad = tmp_path / "f.csv"
    bad.write_text("src,dst,proto,sport,dport\n198.18.1.1,192.0.2.10,tcp,99999,443\n")
    code, _, err = run_cli("sim", "compare", DEFAULT, "--flows-file", str(bad))
    assert code == 2 and err == f"error: {bad}: row 2, field sport: '99999' is not a port 0-65535\n"


def test_forcing_linux_on_a_topology_with_seed_0_is_refused(tmp_path):
    topo = tmp_path / "t.yaml"
    topo.write_text(
        (ROOT / "topologies/default.yaml")
        .read_text()
        .replace("algorithm: linux", "algorithm: maglev")
        .replace("seed: 0x5eed", "seed: 0")
    )
    code, _, err = run_cli("sim", "run", str(topo), "--flows", "1000", "--no-events")
    assert code == 0, err  # maglev does not care about a zero seed
    code, _, err = run_cli("sim", "run", str(topo), "--flows", "1000", "--algorithm", "linux")
    assert code == 2 and err.startswith(
        "error: <arguments>: r1: cannot use the linux model: seed 0 means"
    )
