"""Golden files for `render exabgp` and for the API lines of every VIP, in both dialects.

Input: tests/golden/exabgp/node.yaml. Regenerate with UPDATE_GOLDEN=1 after an intended change,
and read the diff: these files are what ExaBGP will be told.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from anycast_ctl.agent.exabgp import DIALECTS, RouteWriter
from anycast_ctl.cli import cli
from anycast_ctl.config.node import NodeConfig, load_node_config
from anycast_ctl.errors import UserError
from anycast_ctl.render.bfdd import render_bfdd
from anycast_ctl.render.exabgp import agent_argv, exabgp_argv, render_exabgp
from anycast_ctl.render.lb_layout import AS_ROOT

HERE = Path(__file__).parent / "exabgp"
NODE = HERE / "node.yaml"
# Fixed paths, so the goldens do not depend on where the checkout lives.
CONFIG_PATH = Path("/etc/anycast-ctl/lb1.yaml")
AGENT = agent_argv(["/usr/local/bin/anycast-ctl"], CONFIG_PATH)


def check_golden(name: str, text: str) -> None:
    golden = HERE / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no {golden}; run with UPDATE_GOLDEN=1 and review it"
    assert text == golden.read_text(), (
        f"{name} differs from its golden file (UPDATE_GOLDEN=1 to accept)"
    )


@pytest.mark.parametrize("name", ["exabgp.conf", "exabgp.env"])
def test_render_matches_golden(name):
    files = render_exabgp(load_node_config(NODE), CONFIG_PATH, AGENT)
    assert sorted(files) == ["exabgp.conf", "exabgp.env"]
    check_golden(name, files[name])


@pytest.mark.parametrize("name", ["exabgp.conf", "exabgp.env"])
def test_render_for_exabgp_4_2_matches_golden(name):
    config = load_node_config(NODE)
    config = config.model_copy(
        update={"exabgp": config.exabgp.model_copy(update={"dialect": "4.2"})}
    )
    check_golden(f"4.2-{name}", render_exabgp(config, CONFIG_PATH, AGENT)[name])


def test_the_env_names_the_service_user_and_binds_nothing():
    env = render_exabgp(load_node_config(NODE), CONFIG_PATH, AGENT)["exabgp.env"]
    assert "user = 'anycast-ctl'" in env and "user = 'root'" not in env
    assert "[exabgp.tcp]\n# no address: ExaBGP connects out to its routers" in env
    assert "\nbind = ''\n" in env
    root = render_exabgp(load_node_config(NODE), CONFIG_PATH, AGENT, AS_ROOT)["exabgp.env"]
    assert "user = 'root'" in root


def test_each_version_is_started_its_own_way():
    env, conf = Path("/etc/x/exabgp.env"), Path("/etc/x/exabgp.conf")
    assert exabgp_argv("exabgp", "5.0", env, conf) == [
        "exabgp",
        "--env-file",
        str(env),
        "server",
        str(conf),
    ]
    assert exabgp_argv("exabgp", "4.2", env, conf) == ["exabgp", "--env", str(env), str(conf)]
    with pytest.raises(ValueError, match="unknown ExaBGP version '4.1'"):
        exabgp_argv("exabgp", "4.1", env, conf)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_api_lines_match_golden(dialect):
    config = load_node_config(NODE)
    config = config.model_copy(
        update={"exabgp": config.exabgp.model_copy(update={"dialect": dialect})}
    )
    writer = RouteWriter(config)
    lines = []
    for prefix in writer.prefixes:
        lines += [
            writer.announce(prefix),
            writer.announce(prefix, graceful_shutdown=True),
            writer.withdraw(prefix),
        ]
    check_golden(f"lines-{dialect}.txt", "\n".join(lines) + "\n")


def _config(**changes) -> NodeConfig:
    data = load_node_config(NODE).model_dump(mode="json")
    data.update(changes)
    return NodeConfig.model_validate(data)


def test_each_neighbor_carries_only_the_families_its_vips_need():
    conf = render_exabgp(
        _config(vips=[{"address": "192.0.2.10/32", "checks": ["haproxy"]}]), CONFIG_PATH, AGENT
    )["exabgp.conf"]
    v4, _, v6 = conf.partition("neighbor fd00:1::1 {")
    assert "ipv4 unicast;" in v4 and "ipv6 unicast;" not in v4
    assert (
        "ipv6 unicast;" in v6 and "ipv4 unicast;" not in v6
    )  # its own family, even with nothing to carry
    assert "add-path" not in conf  # no VIP has a path-id


def test_a_vip_no_neighbor_can_carry_is_a_user_error_naming_the_field():
    config = _config(
        bgp={
            **load_node_config(NODE).bgp.model_dump(mode="json"),
            "neighbors": load_node_config(NODE).bgp.model_dump(mode="json")["neighbors"][:1],
        }
    )
    with pytest.raises(UserError) as caught:
        render_exabgp(config, CONFIG_PATH, AGENT)
    assert caught.value.lines() == [
        "/etc/anycast-ctl/lb1.yaml: vips[2].address: no neighbor of IPv6 to announce it to "
        "(add one, or give the VIP an explicit next_hop)"
    ]


@pytest.mark.parametrize(
    "argv",
    [agent_argv(["/opt/my tools/anycast-ctl"], CONFIG_PATH), ["anycast-ctl;", "x"], []],
)
def test_api_commands_exabgp_cannot_run_are_refused(argv):
    with pytest.raises(UserError, match="api-command"):
        render_exabgp(load_node_config(NODE), CONFIG_PATH, argv)


def test_cli_writes_every_file_and_says_so(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "render",
            "exabgp",
            str(NODE),
            "--out",
            str(out),
            "--agent-command",
            "/usr/bin/python3 -m anycast_ctl",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"wrote {out / 'exabgp.conf'}",
        f"wrote {out / 'exabgp.env'}",
        f"wrote {out / 'bfdd.conf'}",
    ]
    conf = (out / "exabgp.conf").read_text()
    assert f"run /usr/bin/python3 -m anycast_ctl agent run {NODE.resolve()};" in conf
    assert (out / "exabgp.env").read_text() == render_exabgp(
        load_node_config(NODE), CONFIG_PATH, AGENT
    )["exabgp.env"]


def test_cli_bad_config_exits_2_with_the_field_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(NODE.read_text().replace("hold_time: 30", "hold_time: 1"))
    from anycast_ctl.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["render", "exabgp", str(bad), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert not (tmp_path / "out").exists()


def _many_vips_config(dialect: str) -> NodeConfig:
    """node.yaml's VIPs plus VIPs that share their attributes: what batching must group."""
    data = load_node_config(NODE).model_dump(mode="json", exclude_unset=True)
    data["exabgp"] = {"dialect": dialect}
    vips = data["vips"]
    with_path_id = next(v for v in vips if v.get("path_id") is not None)
    vips += [{"address": f"192.0.2.{20 + i}/32", "checks": ["haproxy"]} for i in range(4)]
    vips += [{**with_path_id, "address": f"192.0.2.{30 + i}/32"} for i in range(2)]
    vips += [{"address": "2001:db8::20/128", "checks": ["haproxy"], "med": 5}]
    return NodeConfig.model_validate(data)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_batched_api_lines_match_golden(dialect):
    writer = RouteWriter(_many_vips_config(dialect))
    lines = [
        *writer.announce_many(writer.prefixes),
        *writer.announce_many(writer.prefixes, graceful_shutdown=True),
        *writer.withdraw_many(writer.prefixes),
    ]
    check_golden(f"lines-batch-{dialect}.txt", "\n".join(lines) + "\n")


BFDD_CASES = {"bfdd.conf": {}, "bfdd-multihop.conf": {"interval_ms": 100, "multihop": True}}


@pytest.mark.parametrize("name", sorted(BFDD_CASES))
def test_bfdd_matches_golden(name):
    text = render_bfdd(_config(bfd=BFDD_CASES[name]))
    assert text is not None
    check_golden(name, text)


@pytest.mark.skipif(shutil.which("vtysh") is None, reason="vtysh (FRR) not installed")
@pytest.mark.parametrize("name", sorted(BFDD_CASES))
def test_frr_accepts_bfdd_golden(name):
    done = subprocess.run(
        ["vtysh", "-C", "-f", str(HERE / name)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_bfdd_has_one_session_per_neighbor_from_its_local_address():
    text = render_bfdd(_config(bfd={"multihop": True}))
    assert text is not None
    peers = [line.strip() for line in text.splitlines() if line.startswith(" peer ")]
    assert peers == [
        "peer 10.0.1.1 multihop local-address 10.0.1.11",
        "peer 10.0.2.1 multihop local-address 10.0.2.11",
        "peer fd00:1::1 multihop local-address fd00:1::11",
    ]
    assert "interface" not in text  # bfdd runs without zebra: it knows no interfaces


def test_bfd_off_renders_no_bfdd_and_the_cli_writes_none(tmp_path):
    assert render_bfdd(_config(bfd={"enabled": False})) is None
    node = tmp_path / "node.yaml"
    node.write_text(NODE.read_text() + "bfd:\n  enabled: false\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["render", "exabgp", str(node), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["exabgp.conf", "exabgp.env"]


@pytest.mark.parametrize(
    ("bfd", "line"),
    [
        (
            "bfd:\n  interval_ms: 5\n",
            "bfd.interval_ms: Input should be greater than or equal to 10",
        ),
        ("bfd:\n  multiplier: 1\n", "bfd.multiplier: Input should be greater than or equal to 2"),
        (
            "bfd:\n  interval_ms: 3000\n",
            "bfd.interval_ms: BFD detects a dead peer in 9000 ms (interval_ms x multiplier), "
            "not before bgp.neighbors[0].hold_time (9 s) would",
        ),
    ],
)
def test_bad_bfd_settings_exit_2_naming_the_field(tmp_path, capsys, bfd, line):
    bad = tmp_path / "bad.yaml"
    bad.write_text(NODE.read_text() + bfd)
    from anycast_ctl.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["render", "exabgp", str(bad), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{bad}: {line}" in err, err
    assert "Traceback" not in err
