"""The control socket for real: a server on a temporary Unix socket with a fake handler."""

import asyncio
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from anycast_ctl.agent.control import request, serve_control
from anycast_ctl.agent.control_protocol import MAX_REQUEST_BYTES, ControlRequest, PeerCred
from anycast_ctl.errors import UserError

KNOWN = {"192.0.2.10/32", "2001:db8::10/128"}
NOBODY = 65534
# A client that imports nothing of ours: it runs as another user, who cannot read our venv.
RAW_CLIENT = (
    "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
    "s.sendall(sys.argv[2].encode() + b'\\n'); print(s.makefile().readline(), end='')"
)


class FakeHandler:
    def __init__(self, fail: bool = False):
        self.calls: list[tuple[ControlRequest, PeerCred]] = []
        self.fail = fail

    async def __call__(self, req, peer):
        self.calls.append((req, peer))
        if self.fail and len(self.calls) == 1:
            raise RuntimeError("boom")
        return {
            "op": req.op.value,
            "vips": list(req.vips),
            "by": peer.user,
            "uid": peer.uid,
            "pid": peer.pid,
        }


def serve(path, scenario, handler=None, allow_uids=(0,), allow_groups=(), **kw):
    """Run `scenario(server, handler)` against a live server; always close it."""
    handler = handler or FakeHandler()

    async def main():
        server = await serve_control(
            path, allow_uids, allow_groups, handler, known_vips=lambda: KNOWN, **kw
        )
        try:
            return await scenario(server, handler)
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


async def ask(path, payload, timeout=5.0):
    return await asyncio.to_thread(request, path, payload, timeout)


async def raw_lines(path, data: bytes, count: int) -> list[dict]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(data)
    await writer.drain()
    answers = [json.loads(await asyncio.wait_for(reader.readline(), 5)) for _ in range(count)]
    writer.close()
    return answers


def audit_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "anycast_ctl.audit"]


# ---------------------------------------------------------------- accepted requests
def test_allowed_uid_reaches_the_handler_and_is_audited(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="anycast_ctl.audit")
    path = tmp_path / "agent.sock"

    async def scenario(server, handler):
        return await ask(path, {"op": "drain", "vips": ["192.0.2.10"], "reason": "upgrade"})

    uid = os.geteuid()
    response = serve(path, scenario, allow_uids=(uid,))
    assert response == {
        "ok": True,
        "op": "drain",
        "vips": ["192.0.2.10/32"],
        "by": response["by"],
        "uid": uid,
        "pid": os.getpid(),
    }
    line = audit_lines(caplog)[-1]
    assert line.startswith(f"accepted op=drain vips=192.0.2.10/32 reason='upgrade' by uid {uid} (")
    assert f"pid {os.getpid()} -> ok" in line


def test_several_requests_on_one_connection(tmp_path):
    path = tmp_path / "agent.sock"

    async def scenario(server, handler):
        return await raw_lines(path, b'{"op": "status"}\n{"op": "undrain"}\n', 2)

    first, second = serve(path, scenario, allow_uids=(os.geteuid(),))
    assert (first["op"], second["op"]) == ("status", "undrain")


# ---------------------------------------------------------------- bad requests never crash it
BAD = [
    (b"not json\n", "not JSON"),
    (b'{"op": "explode"}\n', "op: must be one of"),
    (
        b'{"op": "drain", "vips": ["198.51.100.1"], "reason": "r"}\n',
        "vips[0]: 198.51.100.1/32 is not a VIP",
    ),
    (b'{"op": "drain", "vips": "192.0.2.10", "reason": "r"}\n', "vips: must be a list"),
]


@pytest.mark.parametrize("line,words", BAD, ids=[w for _, w in BAD])
def test_bad_request_gets_an_error_and_the_server_keeps_serving(tmp_path, caplog, line, words):
    caplog.set_level(logging.INFO, logger="anycast_ctl.audit")
    path = tmp_path / "agent.sock"

    async def scenario(server, handler):
        bad = (await raw_lines(path, line, 1))[0]
        good = await ask(path, {"op": "status"})
        return bad, good, handler.calls

    bad, good, calls = serve(path, scenario, allow_uids=(os.geteuid(),))
    assert bad["ok"] is False and bad["kind"] == "bad_request" and words in bad["error"]
    assert good["ok"] is True and len(calls) == 1
    assert any(line.startswith("rejected bad request by uid") for line in audit_lines(caplog))


def test_oversized_request_is_refused(tmp_path):
    path = tmp_path / "agent.sock"

    async def scenario(server, handler):
        big = b'{"op": "drain", "reason": "' + b"x" * (MAX_REQUEST_BYTES + 10) + b'"}\n'
        answer = (await raw_lines(path, big, 1))[0]
        return answer, await ask(path, {"op": "status"})

    answer, after = serve(path, scenario, allow_uids=(os.geteuid(),))
    assert answer["ok"] is False and "too large" in answer["error"]
    assert after["ok"] is True


def test_handler_exception_is_an_answer_not_a_crash(tmp_path):
    path = tmp_path / "agent.sock"

    async def scenario(server, handler):
        return await ask(path, {"op": "status"}), await ask(path, {"op": "status"})

    failed, recovered = serve(
        path, scenario, handler=FakeHandler(fail=True), allow_uids=(os.geteuid(),)
    )
    assert failed == {"ok": False, "error": "internal error: boom", "kind": "failed"}
    assert recovered["ok"] is True


# ---------------------------------------------------------------- the socket file
def test_socket_file_mode_parent_dir_and_removal_on_close(tmp_path):
    path = tmp_path / "run" / "anycast-ctl" / "agent.sock"

    async def scenario(server, handler):
        return os.stat(path).st_mode, os.stat(path.parent).st_mode

    sock_mode, dir_mode = serve(path, scenario)
    assert stat.S_ISSOCK(sock_mode) and stat.S_IMODE(sock_mode) == 0o660
    assert stat.S_IMODE(dir_mode) == 0o750
    assert not path.exists()


def test_stale_socket_is_replaced(tmp_path):
    path = tmp_path / "agent.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))  # bound, never listening: what a killed agent leaves behind
    dead.close()

    async def scenario(server, handler):
        return await ask(path, {"op": "status"})

    assert serve(path, scenario, allow_uids=(os.geteuid(),))["ok"] is True


def test_a_regular_file_is_never_replaced(tmp_path):
    path = tmp_path / "agent.sock"
    path.write_text("precious")
    with pytest.raises(UserError) as caught:
        serve(path, None)
    assert "not a socket" in str(caught.value)
    assert path.read_text() == "precious"


def test_a_second_agent_on_the_same_socket_is_refused(tmp_path):
    path = tmp_path / "agent.sock"

    async def scenario(server, handler):
        with pytest.raises(UserError) as caught:
            await serve_control(path, [0], [], handler, known_vips=lambda: KNOWN)
        return str(caught.value), await ask(path, {"op": "status"})

    message, still = serve(path, scenario, allow_uids=(os.geteuid(),))
    assert "already listening" in message and still["ok"] is True


# ---------------------------------------------------------------- the client
def test_client_says_when_no_agent_is_running(tmp_path):
    with pytest.raises(UserError) as caught:
        request(tmp_path / "agent.sock", {"op": "status"})
    assert (
        str(caught.value)
        == f"<socket>: no agent listening on {tmp_path / 'agent.sock'}: is it running?"
    )


# ---------------------------------------------------------------- other users (root only)
@pytest.fixture
def shared_dir():
    """A directory another user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="acx-ctl-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


async def ask_as_nobody(path, payload) -> tuple[int, dict | None, str]:
    proc = await asyncio.create_subprocess_exec(
        "setpriv",
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
        "/usr/bin/python3",
        "-c",
        RAW_CLIENT,
        str(path),
        json.dumps(payload),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None  # communicate() waits for the exit
    return proc.returncode, (json.loads(out) if out.strip() else None), err.decode()


@pytest.mark.root
def test_another_uid_is_refused_and_the_refusal_is_audited(shared_dir, caplog):
    caplog.set_level(logging.INFO, logger="anycast_ctl.audit")
    path = shared_dir / "agent.sock"

    async def scenario(server, handler):
        # 0666 so the caller gets past file permissions and SO_PEERCRED is what stops it.
        os.chmod(path, 0o666)
        return await ask_as_nobody(path, {"op": "drain", "reason": "let me in"}), handler.calls

    (rc, answer, err), calls = serve(path, scenario, allow_uids=(0,))
    assert rc == 0, err
    assert answer == {
        "ok": False,
        "kind": "refused",
        "error": f"uid {NOBODY} (nobody) is not allowed to drain: "
        "add it to control.allow_uids or a group in control.allow_groups",
    }
    assert calls == []
    refused = [line for line in audit_lines(caplog) if line.startswith("refused")]
    assert len(refused) == 1
    assert "op=drain vips=whole-node reason='let me in'" in refused[0]
    assert f"by uid {NOBODY} (nobody) pid " in refused[0]


@pytest.mark.root
def test_a_member_of_an_allowed_group_gets_in_through_a_group_owned_socket(shared_dir):
    path = shared_dir / "agent.sock"

    async def scenario(server, handler):
        st = os.stat(path)
        return st, await ask_as_nobody(path, {"op": "status"})

    st, (rc, answer, err) = serve(path, scenario, allow_uids=(0,), allow_groups=("nogroup",))
    assert st.st_gid == NOBODY and stat.S_IMODE(st.st_mode) == 0o660
    assert rc == 0, err
    assert answer["ok"] is True and answer["uid"] == NOBODY and answer["by"] == "nobody"


@pytest.mark.root
def test_file_permissions_stop_other_users_before_they_connect(shared_dir):
    path = shared_dir / "agent.sock"

    async def scenario(server, handler):
        return await ask_as_nobody(path, {"op": "status"}), handler.calls

    (rc, answer, err), calls = serve(path, scenario, allow_uids=(0,))
    assert rc != 0 and "PermissionError" in err
    assert calls == []
