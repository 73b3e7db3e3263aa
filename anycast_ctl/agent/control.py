"""The control socket (Unix only, never TCP): the agent's server and the CLI's client.

Two gates, both required. File permissions: the socket is mode 0660, group-owned by the
first group of control.allow_groups that exists (else the agent's own group), so other
users cannot even connect. Then SO_PEERCRED: the kernel tells us the caller's pid/uid/gid,
which must match control.allow_uids or control.allow_groups (see `is_allowed`).

Every request — accepted, refused or malformed — is logged on the "anycast_ctl.audit"
logger with who (uid, user, pid), what (op, VIPs) and why (the reason, or why refused).
The protocol itself (pure) is in `control_protocol.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

from anycast_ctl.agent.control_protocol import (
    MAX_REQUEST_BYTES,
    ControlRequest,
    ErrorKind,
    PeerCred,
    error_response,
    error_text,
    is_allowed,
    parse_request,
    peek_op,
    refusal,
)
from anycast_ctl.agent.dirs import make_dirs
from anycast_ctl.errors import UserError

AUDIT = logging.getLogger("anycast_ctl.audit")
log = logging.getLogger(__name__)

DEFAULT_SOCKET = Path("/run/anycast-ctl/agent.sock")
SOCKET_MODE = 0o660
# A directory the agent creates for its socket: the agent's user and group only (docs/systemd.md).
SOCKET_DIR_MODE = 0o750
IDLE_TIMEOUT = 30.0  # a connection that sends nothing for this long is closed
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL

Handler = Callable[[ControlRequest, PeerCred], Awaitable[dict]]


# ---------------------------------------------------------------- who is calling
def peer_identity(pid: int, uid: int, gid: int) -> PeerCred:
    """Complete SO_PEERCRED's numbers from the user database: name and supplementary groups."""
    try:
        user, known = pwd.getpwuid(uid).pw_name, True
    except KeyError:
        user, known = str(uid), False
    gids = {gid}
    if known:
        gids.update(os.getgrouplist(user, gid))
    names = set()
    for g in gids:
        with contextlib.suppress(KeyError):
            names.add(grp.getgrgid(g).gr_name)
    return PeerCred(
        pid=pid,
        uid=uid,
        gid=gid,
        user=user,
        gids=frozenset(gids),
        groups=frozenset(names),
        user_known=known,
    )


def _peer_of(sock: socket.socket) -> PeerCred:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return peer_identity(pid, uid, gid)


def _socket_gid(allow_groups: Collection[int | str]) -> int | None:
    for entry in allow_groups:
        try:
            return (
                grp.getgrgid(entry).gr_gid if isinstance(entry, int) else grp.getgrnam(entry).gr_gid
            )
        except KeyError:
            log.warning("control.allow_groups: no group %r on this host", entry)
    return None


# ---------------------------------------------------------------- server
class ControlServer(asyncio.AbstractServer):
    """asyncio's server plus what Python 3.11 lacks: closing open connections and removing
    the socket file on close (only if it is still ours, not a newer agent's)."""

    def __init__(
        self,
        server: asyncio.AbstractServer,
        path: Path,
        identity: tuple[int, int],
        writers: set[asyncio.StreamWriter],
    ):
        self._server = server
        self.path = path
        self._identity = identity
        self._writers = writers  # open connections, shared with the connection callback

    def close(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._server.get_loop()

    def is_serving(self) -> bool:
        return self._server.is_serving()

    async def start_serving(self) -> None:
        await self._server.start_serving()

    async def serve_forever(self) -> None:
        await self._server.serve_forever()

    async def wait_closed(self) -> None:
        await self._server.wait_closed()


def _claim_path(path: Path) -> None:
    """Create the parent directory, replace a stale socket, refuse to clobber anything else."""
    if len(os.fsencode(path)) > _UNIX_PATH_MAX:
        raise UserError.single(
            str(path),
            "control.socket",
            f"path too long for a Unix socket (max {_UNIX_PATH_MAX} bytes)",
        )
    make_dirs(path.parent, SOCKET_DIR_MODE)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise UserError.single(
            str(path), "control.socket", "exists and is not a socket: refusing to replace it"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # stale: left by an agent that died
        return
    finally:
        probe.close()
    raise UserError.single(str(path), "control.socket", "another agent is already listening on it")


async def serve_control(
    path: str | Path,
    allow_uids: Collection[int],
    allow_groups: Collection[int | str],
    handler: Handler,
    *,
    known_vips: Callable[[], Collection[str]] | None = None,
    mode: int = SOCKET_MODE,
) -> ControlServer:
    """Listen on `path`; for each request line call `handler(request, peer)` if the peer is
    allowed, and answer with its dict (ok=True is added when missing). Malformed requests,
    refusals and handler exceptions get {"ok": false, ...}; the server keeps serving.
    `known_vips` (called per request, so a config reload takes effect at once) makes a VIP
    that is not configured a bad request naming it; without it the handler must check."""
    path = Path(path)
    _claim_path(path)
    allow_uids, allow_groups = frozenset(allow_uids), tuple(allow_groups)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        # Permissions before listen(): nobody can connect in between with looser ones.
        os.chmod(path, mode)
        gid = _socket_gid(allow_groups)
        if gid is not None:
            os.chown(path, -1, gid)
        st = os.lstat(path)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    writers: set[asyncio.StreamWriter] = set()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            peer = _peer_of(writer.get_extra_info("socket"))
            while True:
                try:
                    line = await asyncio.wait_for(reader.readuntil(b"\n"), IDLE_TIMEOUT)
                except asyncio.IncompleteReadError as exc:
                    line = exc.partial  # a last request without its newline still counts
                    if not line.strip():
                        return
                except asyncio.LimitOverrunError:
                    AUDIT.warning(
                        "rejected request from %s pid %d: larger than %d bytes",
                        peer.who,
                        peer.pid,
                        MAX_REQUEST_BYTES,
                    )
                    await _reply(
                        writer,
                        error_response(
                            ErrorKind.BAD_REQUEST,
                            f"request too large (at most {MAX_REQUEST_BYTES} bytes per line)",
                        ),
                    )
                    return
                except TimeoutError:
                    return
                await _reply(writer, await _answer(line.strip(), peer))
                if reader.at_eof():
                    return
        except (ConnectionError, OSError) as exc:
            log.debug("control connection ended: %s", exc)
        finally:
            writers.discard(writer)
            writer.close()

    async def _answer(line: bytes, peer: PeerCred) -> dict:
        if not is_allowed(peer, allow_uids, allow_groups):
            why = refusal(peer, peek_op(line))
            AUDIT.warning("refused %s by %s pid %d: %s", _what(line), peer.who, peer.pid, why)
            return error_response(ErrorKind.REFUSED, why)
        try:
            request = parse_request(line, _known())
        except UserError as exc:
            AUDIT.warning(
                "rejected bad request by %s pid %d: %s", peer.who, peer.pid, error_text(exc)
            )
            return error_response(ErrorKind.BAD_REQUEST, error_text(exc))
        try:
            result = await handler(request, peer)
            response = {"ok": True, **result}
            json.dumps(response)  # fail here, inside the try, not while writing
        except UserError as exc:
            response = error_response(ErrorKind.BAD_REQUEST, error_text(exc))
        except Exception as exc:  # a bug in the handler must not take the socket down
            log.exception("control handler failed on %s", request.describe())
            response = error_response(ErrorKind.FAILED, f"internal error: {exc}")
        outcome = "ok" if response.get("ok") else f"failed: {response.get('error')}"
        AUDIT.info(
            "accepted %s by %s pid %d -> %s", request.describe(), peer.who, peer.pid, outcome
        )
        return response

    def _known() -> Collection[str] | None:
        return None if known_vips is None else set(known_vips())

    def _what(line: bytes) -> str:
        try:
            return parse_request(line, _known()).describe()
        except UserError:
            op = peek_op(line)
            return f"op={op} (malformed)" if op else "an unreadable request"

    server = await asyncio.start_unix_server(on_connection, sock=sock, limit=MAX_REQUEST_BYTES + 1)
    control = ControlServer(server, path, (st.st_dev, st.st_ino), writers)
    log.info("control socket listening on %s (mode %o)", path, mode)
    return control


async def _reply(writer: asyncio.StreamWriter, response: dict) -> None:
    writer.write(json.dumps(response, separators=(",", ":")).encode() + b"\n")
    await writer.drain()


# ---------------------------------------------------------------- client
def _not_a_socket(path: Path) -> str | None:
    """Why `path` cannot be an agent's socket, said before connect() gives a vaguer error."""
    if len(os.fsencode(path)) > _UNIX_PATH_MAX:
        return f"is longer than the {_UNIX_PATH_MAX} bytes a Unix socket path may have"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None  # connect() says "no agent listening"
    except NotADirectoryError:
        return "cannot exist: a part of it is a file, not a directory"
    except OSError:
        return None
    if stat.S_ISSOCK(st.st_mode):
        return None
    kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a regular file"
    return f"is {kind}, not a socket: is this the agent's control.socket?"


def request(path: str | Path, payload: dict, timeout: float = 5.0) -> dict:
    """Send one request to the agent and return its response (blocking; for the CLI)."""
    path = Path(path)
    source = "<socket>"  # the path is in each message: where the agent should be listening
    not_socket = _not_a_socket(path)
    if not_socket:
        raise UserError.single(source, "", f"{path} {not_socket}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise UserError.single(
                source, "", f"no agent listening on {path}: is it running?"
            ) from None
        except PermissionError:
            raise UserError.single(
                source,
                "",
                f"permission denied on {path}: it is for root and the groups in"
                " control.allow_groups",
            ) from None
        except OSError as exc:  # a path too long, a file where a directory should be, ...
            raise UserError.single(
                source, "", f"cannot connect to {path}: {exc.strerror or exc}"
            ) from None
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_RESPONSE_BYTES:
                raise UserError.single(
                    source, "", f"the answer from {path} is larger than {MAX_RESPONSE_BYTES} bytes"
                )
    except TimeoutError:
        raise UserError.single(
            source, "", f"the agent on {path} did not answer within {timeout:g}s"
        ) from None
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise UserError.single(
            source, "", f"the agent on {path} closed the connection: {exc}"
        ) from None
    except OSError as exc:
        raise UserError.single(source, "", f"talking to {path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    if not data:
        raise UserError.single(
            source, "", f"the agent on {path} closed the connection without answering"
        )
    try:
        response = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError.single(source, "", f"the answer from {path} is not JSON: {exc}") from None
    if not isinstance(response, dict) or not isinstance(response.get("ok"), bool):
        raise UserError.single(source, "", f"the answer from {path} has no boolean 'ok'")
    return response
