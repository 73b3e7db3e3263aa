"""Node config validation: path-precise errors, one line each, no side effects."""

import textwrap

import pytest

from anycast_ctl.config.node import load_node_config
from anycast_ctl.errors import UserError

GOOD = """
node: lb1
bgp:
  local_as: 65101
  router_id: 10.0.0.2
  neighbors:
    - {address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000, md5_password: s3cret}
checks:
  web: {type: tcp, port: 443}
vips:
  - address: 192.0.2.10
    checks: [web]
    communities: ["65000:100"]
  - address: 2001:db8::10/128
    checks: [web]
"""


def write(tmp_path, text):
    p = tmp_path / "node.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def errors_of(path):
    with pytest.raises(UserError) as info:
        load_node_config(path)
    return info.value.lines()


def test_good_config_normalizes_vips_to_host_prefixes(tmp_path):
    cfg = load_node_config(write(tmp_path, GOOD))
    assert [v.address for v in cfg.vips] == ["192.0.2.10/32", "2001:db8::10/128"]


def test_bad_timeout_names_file_and_field_path(tmp_path):
    text = GOOD.replace(
        "checks: [web]\n    communities",
        "checks: [web]\n    timing: {interval: 1, timeout: -1}\n    communities",
    )
    path = write(tmp_path, text)
    lines = errors_of(path)
    assert lines == [f"{path}: vips[0].timing.timeout: Input should be greater than 0"]


def test_unknown_check_reference_is_reported_at_its_index(tmp_path):
    path = write(
        tmp_path,
        GOOD.replace("checks: [web]\n    communities", "checks: [web, nope]\n    communities"),
    )
    assert errors_of(path) == [f"{path}: vips[0].checks[1]: no check named 'nope' (known: web)"]


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    text = GOOD.replace("port: 443", "port: 70000").replace("65000:100", "65000:999999")
    lines = errors_of(write(tmp_path, text))
    assert len(lines) == 2
    assert any("checks.web.port" in line for line in lines)
    assert any("vips[0].communities" in line for line in lines)


def test_non_host_prefix_vip_is_refused(tmp_path):
    lines = errors_of(write(tmp_path, GOOD.replace("192.0.2.10", "192.0.2.0/24")))
    assert lines and "vips[0].address" in lines[0] and "host route" in lines[0]


def test_newline_in_an_attribute_is_refused(tmp_path):
    text = GOOD.replace("md5_password: s3cret", 'md5_password: "a\\nannounce route 0.0.0.0/0"')
    lines = errors_of(write(tmp_path, text))
    assert "bgp.neighbors[0].md5_password" in lines[0] and "control characters" in lines[0]


def test_misspelt_key_is_an_error(tmp_path):
    lines = errors_of(
        write(tmp_path, GOOD.replace("combine", "x").replace("node: lb1", "node: lb1\ntimming: {}"))
    )
    assert lines == [f"{tmp_path / 'node.yaml'}: timming: unknown field (check its spelling)"]


def test_invalid_yaml_names_the_line(tmp_path):
    lines = errors_of(write(tmp_path, "node: [unclosed\n"))
    assert "line 2" in lines[0] and "invalid YAML" in lines[0]


def test_missing_file(tmp_path):
    assert errors_of(tmp_path / "absent.yaml") == [f"{tmp_path / 'absent.yaml'}: file not found"]


def test_check_timeout_longer_than_a_users_interval_is_refused(tmp_path):
    text = GOOD.replace("web: {type: tcp, port: 443}", "web: {type: tcp, port: 443, timeout: 5}")
    lines = errors_of(write(tmp_path, text))
    assert lines[0].endswith(
        "checks.web.timeout: 5.0s exceeds the interval of vips[0] (1.0s): runs would overlap"
    )


def test_config_check_cli_reports_an_unloadable_ca_file_with_exit_2(tmp_path):
    from click.testing import CliRunner

    from anycast_ctl.cli import cli

    text = GOOD.replace(
        "web: {type: tcp, port: 443}",
        "web: {type: tls, server_name: w.test, ca_file: /nonexistent/ca.pem}",
    )
    path = write(tmp_path, text)
    result = CliRunner().invoke(cli, ["config", "check", str(path)], standalone_mode=False)
    assert result.exception is not None
    assert f"{path}: checks.web.ca_file: cannot load CA bundle" in str(result.exception)


def test_config_check_cli_reports_a_vip_no_neighbor_can_carry(tmp_path):
    from click.testing import CliRunner

    from anycast_ctl.cli import cli

    path = write(tmp_path, GOOD)  # GOOD has an IPv6 VIP but only an IPv4 neighbor
    result = CliRunner().invoke(cli, ["config", "check", str(path)], standalone_mode=False)
    assert result.exception is not None
    assert f"{path}: vips[1]" in str(result.exception)
