"""`anycast-ctl drain|undrain|status` against a real control socket served from a thread."""

import asyncio
import json
import os
import re
import textwrap
import threading
import time
from pathlib import Path

import pytest
from cli_support import run_cli

from anycast_ctl.agent.control import serve_control
from anycast_ctl.cli.status_table import format_status

TOPOLOGY_FILE = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"

NOW = 1_700_000_000.0


def status_payload(now: float) -> dict:
    return {
        "node": "lb1",
        "exabgp": {
            "alive": True,
            "last_line_at": now - 2,
            "peers": {"10.0.0.1": True, "10.0.0.5": False},
        },
        "vips": [
            {
                "address": "192.0.2.10/32",
                "state": "up",
                "since": now - 300,
                "announced": True,
                "drain": None,
                "checks": [
                    {
                        "name": "web",
                        "health": "ok",
                        "detail": "connected",
                        "latency_ms": 0.4,
                        "since": now - 300,
                    }
                ],
            },
            {
                "address": "2001:db8::10/128",
                "state": "drained",
                "since": now - 60,
                "announced": False,
                "drain": {"by": "alice", "uid": 1000, "reason": "kernel upgrade", "at": now - 60},
                "checks": [
                    {
                        "name": "web",
                        "health": "soft",
                        "detail": "timeout",
                        "latency_ms": None,
                        "since": None,
                    }
                ],
            },
        ],
    }


class Agent:
    """A control server on its own event loop in a thread, answering like a canned agent."""

    def __init__(self, path, answer=None, allow_uids=None):
        self.path = path
        self.answer = answer
        self.allow_uids = [os.geteuid()] if allow_uids is None else allow_uids
        self.requests = []

    async def handle(self, req, peer):
        self.requests.append(req)
        if self.answer is not None:
            return self.answer
        if req.op.value == "status":
            return status_payload(time.time())
        return {"message": f"{len(req.vips) or 'all'} VIPs {req.op.value}ed"}

    def __enter__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        start = serve_control(
            self.path,
            self.allow_uids,
            [],
            self.handle,
            known_vips=lambda: {"192.0.2.10/32", "2001:db8::10/128"},
        )
        self.server = asyncio.run_coroutine_threadsafe(start, self.loop).result(5)
        return self

    def __exit__(self, *exc):
        async def stop():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def sock(tmp_path):
    return tmp_path / "agent.sock"


def test_status_table_for_people(sock):
    with Agent(sock):
        code, out, err = run_cli("status", "--socket", str(sock))
    assert code == 0, err
    assert "node lb1   exabgp: alive, last line" in out
    assert "peers: 10.0.0.1 up, 10.0.0.5 DOWN" in out
    up = next(line for line in out.splitlines() if line.startswith("192.0.2.10/32"))
    assert re.search(
        r"192\.0\.2\.10/32\s+up\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(5m0\ds ago\)\s+yes\s+-\s+-$", up
    )
    drained = next(line for line in out.splitlines() if line.startswith("2001:db8::10/128"))
    assert re.search(
        r"drained .* no\s+-\s+by alice \(uid 1000\) 1m0\ds ago: kernel upgrade$", drained
    )
    assert re.search(r"^    check web\s+ok\s+0\.4 ms\s+since 5m0\ds ago\s+connected$", out, re.M)
    assert re.search(r"^    check web\s+soft\s+-\s+since -\s+timeout$", out, re.M)


def test_status_json_is_the_raw_response(sock):
    with Agent(sock):
        code, out, _ = run_cli("status", "--json", "--socket", str(sock))
    assert code == 0
    response = json.loads(out)
    expected = status_payload(0.0)
    assert response["ok"] is True and response["node"] == "lb1"
    assert [v["address"] for v in response["vips"]] == [v["address"] for v in expected["vips"]]
    assert response["vips"][1]["drain"]["reason"] == "kernel upgrade"


def test_status_asks_for_the_connections_left_and_a_plain_drain_does_not(sock):
    with Agent(sock) as agent:
        assert run_cli("status", "--socket", str(sock))[0] == 0
        assert run_cli("drain", "--reason", "r", "--socket", str(sock))[0] == 0
    assert [(r.op.value, r.connections) for r in agent.requests] == [
        ("status", True),
        ("drain", False),
    ]


def test_drain_normalizes_vips_and_sends_the_reason(sock):
    with Agent(sock) as agent:
        code, out, err = run_cli(
            "drain",
            "192.0.2.10",
            "2001:db8::10",
            "--reason",
            "kernel upgrade",
            "--socket",
            str(sock),
        )
    assert code == 0, err
    assert agent.requests[0].vips == ("192.0.2.10/32", "2001:db8::10/128")
    assert agent.requests[0].reason == "kernel upgrade"
    assert out == "drained 192.0.2.10/32, 2001:db8::10/128: 2 VIPs drained\n"


def test_undrain_whole_node(sock):
    with Agent(sock) as agent:
        code, out, _ = run_cli("undrain", "--socket", str(sock))
    assert code == 0
    assert agent.requests[0].op.value == "undrain" and agent.requests[0].vips == ()
    assert out.startswith("undrained the whole node")


def test_socket_path_comes_from_the_node_config(tmp_path, sock):
    config = tmp_path / "node.yaml"
    config.write_text(
        textwrap.dedent(f"""
        node: lb1
        bgp:
          local_as: 65101
          router_id: 10.0.0.2
          neighbors: [{{address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000}}]
        checks:
          web: {{type: tcp, port: 443}}
        vips:
          - {{address: 192.0.2.10, checks: [web]}}
        control:
          socket: {sock}
        """)
    )
    with Agent(sock) as agent:
        code, _, err = run_cli("undrain", "192.0.2.10/32", "--config", str(config))
    assert code == 0, err
    assert agent.requests[0].vips == ("192.0.2.10/32",)


def test_agent_not_running_exits_2_with_a_clear_message(sock):
    code, out, err = run_cli("status", "--socket", str(sock))
    assert code == 2
    assert err == f"error: <socket>: no agent listening on {sock}: is it running?\n"


def test_refused_caller_exits_2(sock):
    with Agent(sock, allow_uids=[]) as agent:
        code, _, err = run_cli("drain", "--reason", "x", "--socket", str(sock))
    assert code == 2
    assert "is not allowed to drain: add it to control.allow_uids" in err
    assert agent.requests == []


def test_unknown_vip_exits_2_naming_it(sock):
    with Agent(sock):
        code, _, err = run_cli("drain", "198.51.100.1", "--reason", "x", "--socket", str(sock))
    assert code == 2
    assert "vips[0]: 198.51.100.1/32 is not a VIP of this node" in err


def test_bad_vip_argument_exits_2_without_contacting_the_agent(sock):
    with Agent(sock) as agent:
        code, _, err = run_cli(
            "drain", "192.0.2.300", "192.0.2.0/24", "--reason", "x", "--socket", str(sock)
        )
    assert code == 2
    assert err.count("error: <argument>:") == 2
    assert agent.requests == []


def test_missing_reason_is_a_usage_error(sock):
    code, _, err = run_cli("drain", "--socket", str(sock))
    assert code == 2 and "--reason" in err


def test_agent_failure_exits_1(sock):
    with Agent(sock, answer={"ok": False, "error": "cannot write drain file: read-only"}):
        code, _, err = run_cli("undrain", "--socket", str(sock))
    assert code == 1
    assert err == "error: cannot write drain file: read-only\n"


def test_format_status_is_pure_and_tolerates_missing_fields():
    text = format_status({"node": "lb2", "vips": [{"address": "192.0.2.10/32"}]}, now=NOW)
    assert "exabgp: unknown, last line -" in text
    assert re.search(r"^192\.0\.2\.10/32\s+\?\s+-\s+no\s+-\s+-$", text, re.M)
    dead = format_status(
        {"node": "lb2", "exabgp": {"alive": False, "last_line_at": NOW - 7200}}, now=NOW
    )
    assert dead.startswith("node lb2   exabgp: NOT alive, last line 2h00m ago")
    assert dead.endswith("no VIPs configured")


def test_without_socket_or_config_the_installed_node_config_names_the_socket(tmp_path, monkeypatch):
    """`render node` output installed as /etc/anycast-ctl/node.yaml: a bare `status` uses its
    control.socket, the one the agent listens on (not a default of its own)."""
    from anycast_ctl.cli import control_cmd
    from anycast_ctl.config import node

    installed = tmp_path / "node.yaml"
    code, out, err = run_cli(
        "render", "node", str(TOPOLOGY_FILE), "--node", "lb1", "--out", str(tmp_path)
    )
    assert code == 0, err
    monkeypatch.setattr(node, "DEFAULT_CONFIG", installed)
    assert control_cmd.socket_path(None, None) == Path("/run/anycast-ctl/lb1/agent.sock")
    monkeypatch.setattr(node, "DEFAULT_CONFIG", tmp_path / "absent.yaml")
    assert control_cmd.socket_path(None, None) == control_cmd.DEFAULT_SOCKET


class DrainingAgent(Agent):
    """Answers every request with the next count of connections left (the last one repeats)."""

    def __init__(self, path, counts):
        super().__init__(path)
        self.counts = list(counts)

    async def handle(self, req, peer):
        self.requests.append(req)
        left = self.counts.pop(0) if len(self.counts) > 1 else self.counts[0]
        extra = {"connections_error": "ss: no answer"} if left is None else {}
        return {**status_payload(time.time()), "connections_left": left, **extra}


def test_drain_wait_returns_when_no_connection_is_left(sock):
    with DrainingAgent(sock, [2, 1, 0]) as agent:
        code, out, err = run_cli(
            "drain", "--wait", "--timeout", "30", "--reason", "r", "--socket", str(sock)
        )
    assert code == 0, err
    assert [r.op.value for r in agent.requests] == ["drain", "status", "status"]
    assert all(r.connections for r in agent.requests)  # each reply carries a fresh count
    assert "waiting: 2 connections left" in err and "waiting: 1 connection left" in err
    assert out.splitlines()[-1].startswith("no connections left after ")


def test_drain_wait_times_out_with_exit_1_saying_how_many_are_left(sock):
    with DrainingAgent(sock, [1]) as agent:
        started = time.monotonic()
        code, _, err = run_cli(
            "drain", "--wait", "--timeout", "1.2", "--reason", "r", "--socket", str(sock)
        )
        took = time.monotonic() - started
    assert code == 1
    assert err.splitlines()[-1].startswith("error: timed out after 1.")
    assert err.splitlines()[-1].endswith(": 1 connection left")
    assert 1.2 <= took < 20
    assert len(agent.requests) >= 3  # polled, not one long sleep


def test_drain_wait_json_summary_and_an_unknown_count_is_never_done(sock):
    with DrainingAgent(sock, [None]):
        code, out, err = run_cli(
            "drain", "--wait", "--timeout", "0.6", "--json", "--reason", "r", "--socket", str(sock)
        )
    assert code == 1
    summary = json.loads(out)
    assert summary["connections_left"] is None and summary["timed_out"] is True
    assert summary["waited_s"] >= 0.6
    assert "unknown number of connections left" in err
    with DrainingAgent(sock, [0]):
        code, out, err = run_cli(
            "drain", "--wait", "--json", "--reason", "r", "--socket", str(sock)
        )
    assert code == 0, err
    assert json.loads(out) == {
        "connections_left": 0,
        "waited_s": json.loads(out)["waited_s"],
        "timed_out": False,
    }


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "abc", "1e9"])
def test_drain_bad_timeout_exits_2_naming_it(sock, value):
    with DrainingAgent(sock, [0]) as agent:
        code, _, err = run_cli(
            "drain", "--wait", "--timeout", value, "--reason", "r", "--socket", str(sock)
        )
    assert code == 2
    assert "--timeout" in err and "Traceback" not in err
    assert agent.requests == []


def test_drain_timeout_without_wait_is_refused(sock):
    with DrainingAgent(sock, [0]) as agent:
        code, _, err = run_cli("drain", "--timeout", "5", "--reason", "r", "--socket", str(sock))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--timeout" in err and "--wait" in err
    assert agent.requests == []


def test_status_table_shows_connections_left():
    payload = {
        **status_payload(NOW),
        "connections_left": 3,
        "connections_left_by_vip": {"192.0.2.10/32": 3, "2001:db8::10/128": 0},
    }
    assert "connections left: 3 (192.0.2.10/32 3)" in format_status(payload, NOW).splitlines()
    unknown = {**status_payload(NOW), "connections_left": None, "connections_error": "ss: boom"}
    assert "connections left: unknown (ss: boom)" in format_status(unknown, NOW)
    assert "connections left" not in format_status(status_payload(NOW), NOW)
