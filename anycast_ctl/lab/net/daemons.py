"""The one place the lab (and the root tests) spawn and signal processes.

Every child gets ANYCAST_CTL_LAB=<tag> in its environment. The kernel keeps a process's initial
environment in /proc/<pid>/environ, through fork, exec and self-daemonizing (zebra -d), so
cleanup finds every descendant by scanning for the tag, as munet does; nothing is ever killed
by name. Pids are also recorded, with their start time, in the lab's state.json.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from anycast_ctl.lab import state
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.state import ENV_TAG, DaemonRecord

IP = shutil.which("ip") or "/usr/sbin/ip"

# Children we started, kept so that they are reaped (a zombie would look alive to kill(pid, 0)).
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class Daemon:
    tag: str
    node: str
    name: str
    pid: int
    start_time: int
    argv: tuple[str, ...]
    netns: str | None = None
    log_path: Path | None = None
    pidfile: Path | None = None

    def running(self) -> bool:
        return is_running(self.pid, self.start_time)


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class StopOutcome(StrEnum):
    EXITED = "exited"  # ended after the requested signal
    KILLED = "killed"  # still there at the deadline: SIGKILLed
    NOT_RUNNING = "not-running"


# ---------------------------------------------------------------- /proc
def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot); None when the pid is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after its closing ')'.
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def _proc_state(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2]


def is_running(pid: int, started: int | None = None) -> bool:
    """Alive and not a zombie (and, given `started`, the same process, not a recycled pid)."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)
        return False
    if _proc_state(pid) in (None, "Z", "X"):
        return False
    return started is None or start_time(pid) == started


def is_stopped(pid: int) -> bool:
    """Stopped by a signal (SIGSTOP) or a tracer: alive, but running nothing."""
    return _proc_state(pid) in ("T", "t")


def environ_has(pid: int, key: str, value: str) -> bool:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return f"{key}={value}".encode() in raw.split(b"\0")


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def tagged_pids(tag: str) -> list[int]:
    """Every live process whose environment carries ANYCAST_CTL_LAB=<tag>."""
    return [p for p in all_pids() if environ_has(p, ENV_TAG, tag) and is_running(p)]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


# ---------------------------------------------------------------- spawning
def child_env(tag: str, env: dict[str, str] | None = None) -> dict[str, str]:
    merged = {**os.environ, **(env or {})}
    merged[ENV_TAG] = state.check_name(tag, "tag")
    return merged


def in_netns(netns: str | None, argv: list[str] | tuple[str, ...]) -> list[str]:
    # `ip netns exec` also remounts /sys for the namespace, which some tools read.
    return [IP, "netns", "exec", netns, *argv] if netns else list(argv)


def spawn(
    tag: str,
    node: str,
    argv: list[str] | tuple[str, ...],
    *,
    netns: str | None = None,
    env: dict[str, str] | None = None,
    log_path: str | Path | None = None,
    pidfile: str | Path | None = None,
    name: str | None = None,
    pidfile_timeout: float = 10.0,
) -> Daemon:
    """Start argv (inside netns), tagged, detached from our terminal, output to log_path.

    With `pidfile`, wait (bounded) until it names a live process and track that pid: this
    follows programs that daemonize themselves. Without, the pid is the child's own.
    """
    name = name or Path(argv[0]).name
    spawned_at = time.time()
    # A new log is root's alone (0600): each daemon writes the descriptor it inherits, so none
    # needs the file, whatever user it runs as (ExaBGP and the agent: lab/net/privilege.py).
    with open(log_path or os.devnull, "ab", opener=_private) as log:  # the child keeps its copy
        proc = subprocess.Popen(
            in_netns(netns, argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(tag, env),
            start_new_session=True,  # a Ctrl-C at the terminal must not kill the lab
        )
    _CHILDREN[proc.pid] = proc
    pid = proc.pid
    _record(tag, node, name, pid, argv, netns, log_path, pidfile)
    if pidfile:
        pid = _await_pidfile(Path(pidfile), proc, name, log_path, pidfile_timeout, spawned_at)
        if pid != proc.pid:
            _record(tag, node, name, pid, argv, netns, log_path, pidfile)
    started = start_time(pid)
    if started is None:
        raise LabError(f"{name} exited at once{_log_hint(log_path)}")
    return Daemon(
        tag=tag,
        node=node,
        name=name,
        pid=pid,
        start_time=started,
        argv=tuple(argv),
        netns=netns,
        log_path=Path(log_path) if log_path else None,
        pidfile=Path(pidfile) if pidfile else None,
    )


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _record(tag, node, name, pid, argv, netns, log_path, pidfile) -> None:
    started = start_time(pid)
    if started is None:
        return
    state.record_daemon(
        tag,
        DaemonRecord(
            node=node,
            name=name,
            pid=pid,
            start_time=started,
            argv=list(argv),
            netns=netns,
            log=str(log_path) if log_path else None,
            pidfile=str(pidfile) if pidfile else None,
        ),
    )


def _await_pidfile(
    pidfile: Path, proc: subprocess.Popen, name: str, log_path, timeout: float, spawned_at: float
) -> int:
    def named_pid() -> int | None:
        try:
            # A pid file older than this spawn is a previous run's: its pid may be recycled.
            fresh = pidfile.stat().st_mtime >= spawned_at - 1
            pid = int(pidfile.read_text().split()[0]) if fresh else None
        except (FileNotFoundError, ValueError, IndexError):
            pid = None
        if pid and is_running(pid):
            return pid
        code = proc.poll()
        if code not in (None, 0):  # a launcher that daemonizes exits 0; anything else failed
            raise LabError(f"{name} exited with status {code}{_log_hint(log_path)}")
        return None

    try:
        pid = wait_for(named_pid, timeout, what=f"{name} pid file {pidfile}")
    except TimeoutError as exc:
        raise LabError(f"{exc}{_log_hint(log_path)}") from None
    assert pid is not None  # wait_for returns only a truthy value
    return pid


def _log_hint(log_path) -> str:
    return f"; see {log_path}:\n{log_tail(log_path)}" if log_path else ""


def log_tail(path: str | Path, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def signal_pid(pid: int, sig: int) -> None:
    """Signal one process by pid: one the lab recorded, or found among a recorded daemon's
    descendants (ExaBGP's API process). Never by name."""
    os.kill(pid, sig)


def send_signal(daemon: Daemon, sig: int) -> bool:
    """Signal the daemon if it is still the process we started; False when it is gone."""
    if not daemon.running():
        return False
    os.kill(daemon.pid, sig)
    return True


def stop(daemon: Daemon, sig: int = signal.SIGTERM, timeout: float = 5.0) -> StopOutcome:
    """Send `sig`, wait up to `timeout` for the process to end, then SIGKILL it."""
    if not send_signal(daemon, sig):
        return StopOutcome.NOT_RUNNING
    try:
        wait_for(
            lambda: not daemon.running(), timeout, what=f"{daemon.name} ({daemon.pid}) to exit"
        )
        return StopOutcome.EXITED
    except TimeoutError:
        if send_signal(daemon, signal.SIGKILL):
            wait_for(
                lambda: not daemon.running(), 5.0, what=f"{daemon.name} ({daemon.pid}) SIGKILL"
            )
        return StopOutcome.KILLED


def run(
    tag: str,
    argv: list[str] | tuple[str, ...],
    *,
    netns: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = 30.0,
    capture: bool = True,
    stdin: str | None = None,
) -> CommandResult:
    """Run a command to completion (tagged, inside netns). capture=False passes our terminal
    through and timeout=None waits for ever: `lab exec NODE -- bash`."""
    full = in_netns(netns, argv)
    try:
        done = subprocess.run(
            full,
            env=child_env(tag, env),
            timeout=timeout,
            text=True,
            input=stdin,
            capture_output=capture,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)} did not finish within {timeout}s") from None
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: command not found") from None
    return CommandResult(tuple(full), done.returncode, done.stdout or "", done.stderr or "")
