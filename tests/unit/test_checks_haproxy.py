"""HAProxy check: `show stat` parsing on captured HAProxy 2.6 answers, and the socket side."""

import asyncio
import socket
from pathlib import Path

import pytest
from haproxy_fake import FakeHaproxy

from anycast_ctl.agent.checks import build_check, run_check
from anycast_ctl.agent.checks.haproxy_stat import (
    BACKEND,
    FRONTEND,
    SERVER,
    StatRow,
    assess,
    parse_stat_csv,
    rows_of_answer,
    server_is_up,
    split_responses,
    stat_command,
)
from anycast_ctl.agent.health import Health
from anycast_ctl.config.node import HaproxyCheck
from anycast_ctl.errors import UserError

DATA = Path(__file__).parent / "data" / "haproxy"


def captured(name):
    return (DATA / name).read_text()


def test_parse_full_show_stat():
    rows = parse_stat_csv(captured("healthy.csv"))
    assert [(r.proxy, r.name, r.kind, r.status) for r in rows] == [
        ("fe_vip", "FRONTEND", FRONTEND, "OPEN"),
        ("be_app", "s1", SERVER, "UP"),
        ("be_app", "s2", SERVER, "DOWN"),
        ("be_app", "s3", SERVER, "no check"),
        ("be_app", "slow", SERVER, "UP"),
        ("be_app", "up2", SERVER, "DOWN"),
        ("be_app", "BACKEND", BACKEND, "UP"),
        ("both", "FRONTEND", FRONTEND, "OPEN"),
        ("both", "a", SERVER, "UP"),
        ("both", "BACKEND", BACKEND, "UP"),
    ]


@pytest.mark.parametrize(
    "status, up",
    [
        ("UP", True),
        ("UP 1/3", True),
        ("no check", True),
        ("DOWN", False),
        ("DOWN 2/5", False),
        ("MAINT", False),
        ("MAINT (via)", False),
        ("DRAIN", False),
        ("NOLB", False),
        ("", False),
    ],
)
def test_which_server_states_count_as_up(status, up):
    assert server_is_up(status) is up


@pytest.mark.parametrize(
    "capture, frontend, backend, minimum, health, detail",
    [
        (
            "healthy.csv",
            "fe_vip",
            "be_app",
            3,
            Health.OK,
            "frontend fe_vip OPEN, be_app: 3/5 servers UP",
        ),
        ("healthy.csv", "fe_vip", "be_app", 4, Health.SOFT_FAIL, "be_app: 3/5 servers UP, need 4"),
        # "UP 1/3" is still taking traffic while it falls; s1 went DOWN.
        (
            "going_down.csv",
            "fe_vip",
            "be_app",
            3,
            Health.OK,
            "frontend fe_vip OPEN, be_app: 3/5 servers UP",
        ),
        ("going_down.csv", "both", "both", 1, Health.SOFT_FAIL, "both: 0/1 servers UP, need 1"),
        # "DOWN 2/5" is not taking traffic yet while it rises.
        ("going_up.csv", "fe_vip", "be_app", 4, Health.SOFT_FAIL, "be_app: 3/5 servers UP, need 4"),
        (
            "paused_maint_drain.csv",
            "fe_vip",
            "be_app",
            1,
            Health.SOFT_FAIL,
            "frontend fe_vip is PAUSED",
        ),
        (
            "paused_maint_drain.csv",
            "fe_vip",
            "be_app",
            2,
            Health.SOFT_FAIL,
            "frontend fe_vip is PAUSED; be_app: 1/5 servers UP, need 2",
        ),
        (
            "paused_maint_drain.csv",
            "both",
            "be_app",
            1,
            Health.OK,
            "frontend both OPEN, be_app: 1/5 servers UP",
        ),
        ("healthy.csv", "nope", "be_app", 1, Health.SOFT_FAIL, "frontend nope not found"),
        ("healthy.csv", "fe_vip", "nope", 0, Health.SOFT_FAIL, "backend nope not found"),
        (
            "healthy.csv",
            "fe_vip",
            "be_app",
            0,
            Health.OK,
            "frontend fe_vip OPEN, be_app: 3/5 servers UP",
        ),
    ],
)
def test_assess_captured_answers(capture, frontend, backend, minimum, health, detail):
    outcome = assess(parse_stat_csv(captured(capture)), frontend, backend, minimum)
    assert (outcome.health, outcome.detail) == (health, detail)


def test_filtered_answer_has_two_blocks_with_headers():
    answers = split_responses(captured("filtered.csv"))
    assert len(answers) == 2
    rows = rows_of_answer(answers[0]) + rows_of_answer(answers[1])
    assert [r.name for r in rows] == ["FRONTEND", "s1", "s2", "s3", "slow", "up2", "BACKEND"]
    outcome = assess(rows, "fe_vip", "be_app", 1)
    assert (outcome.health, outcome.extra) == (
        Health.SOFT_FAIL,
        {"servers_up": 1, "servers_total": 5},
    )


def test_unknown_proxy_answer_yields_no_rows():
    assert rows_of_answer("No such proxy.") == []


def test_quoted_field_with_a_comma_is_one_field():
    text = '# pxname,svname,check_desc,status,type\nbe,s1,"Layer7 wrong status, 503",UP,2\n'
    assert parse_stat_csv(text) == [StatRow("be", "s1", SERVER, "UP")]


@pytest.mark.parametrize(
    "text, what",
    [
        ("Unknown command, but maybe one of the following\n", "haproxy said: Unknown command"),
        ("# pxname,svname,type\nbe,s1,2\n", "header lacks status"),
        ("# pxname,svname,status,type\nbe,s1\n", "only 2 fields"),
        ("# pxname,svname,status,type\nbe,s1,UP,x\n", "type 'x' is not a number"),
    ],
)
def test_parse_rejects_what_is_not_show_stat(text, what):
    with pytest.raises(UserError) as info:
        parse_stat_csv(text)
    assert info.value.problems[0].what.startswith(what)


def test_command_asks_for_the_frontend_row_and_the_backend_rows():
    assert stat_command("fe", "be") == b"show stat fe 1 -1; show stat be 6 -1\n"


def test_proxy_name_that_could_inject_a_command_is_a_config_error(tmp_path):
    spec = HaproxyCheck(
        type="haproxy", socket=tmp_path / "s", frontend="fe; shutdown frontend x", backend="be"
    )
    with pytest.raises(UserError) as info:
        build_check("lb", spec)
    assert info.value.problems[0].where == "checks.lb.frontend"


# ---------------------------------------------------------------- the socket side
def haproxy(sock_path, minimum=1):
    spec = HaproxyCheck(
        type="haproxy",
        socket=sock_path,
        frontend="fe_vip",
        backend="be_app",
        min_servers_up=minimum,
    )
    return build_check("lb", spec)


def check_with_fake_haproxy(tmp_path, answer, minimum=1):
    """`answer`: CSV to filter rows from, or a function of each command giving its answer."""
    sock_path = tmp_path / "admin.sock"

    async def main():
        fake = await FakeHaproxy(sock_path, answer).start()
        try:
            return await run_check(haproxy(sock_path, minimum), 1.0), fake.commands
        finally:
            fake.server.close()

    return asyncio.run(main())


def test_answer_over_the_socket(tmp_path):
    answer = "\n".join(split_responses(captured("filtered.csv"))).replace("PAUSED", "OPEN")
    result, commands = check_with_fake_haproxy(tmp_path, answer)
    assert commands == [b"show info; show stat be_app 7 -1; show stat fe_vip 7 -1\n"]
    assert (result.health, result.detail) == (
        Health.OK,
        "frontend fe_vip OPEN, be_app: 1/5 servers UP",
    )
    assert result.extra == {"servers_up": 1, "servers_total": 5}


def test_unknown_frontend_over_the_socket_is_soft(tmp_path):
    be_answer = split_responses(captured("filtered.csv"))[1]
    result, _ = check_with_fake_haproxy(
        tmp_path, lambda command: be_answer if "be_app" in command else "No such proxy."
    )
    assert (result.health, result.detail) == (Health.SOFT_FAIL, "frontend fe_vip not found")


def test_permission_error_answer_is_soft_with_haproxy_words(tmp_path):
    result, _ = check_with_fake_haproxy(tmp_path, lambda command: "Permission denied")
    assert result.health is Health.SOFT_FAIL
    assert result.detail == f"haproxy said: Permission denied: {tmp_path / 'admin.sock'}"


def test_missing_socket_is_hard(tmp_path):
    result = asyncio.run(run_check(haproxy(tmp_path / "absent.sock"), 1.0))
    assert (result.health, result.detail) == (
        Health.HARD_FAIL,
        f"no such file: {tmp_path / 'absent.sock'}",
    )


def test_stale_socket_file_is_hard(tmp_path):
    # What a killed HAProxy leaves behind: the file exists, nobody listens.
    path = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    result = asyncio.run(run_check(haproxy(path), 1.0))
    assert (result.health, result.detail) == (Health.HARD_FAIL, f"connection refused: {path}")
