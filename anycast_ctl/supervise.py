#!/usr/bin/env python3
"""A container's init: runs the node's daemons, restarts one that dies, fails visibly.

    anycast-ctl-supervise PROGRAMS.json      # the container's command (PID 1)
    anycast-ctl-supervise start              # an `exec:` line, once the node's links are up
    anycast-ctl-supervise status             # what runs, since when, how often it restarted

PROGRAMS.json: {"programs": [{"name": "haproxy", "argv": ["haproxy", "-Ws", ...]}, ...]}.

As PID 1 it waits for `start` (containerlab attaches links and runs `exec:` lines after the
command started, and the daemons need their addresses), then starts each program in its own
session, its output on the container's (`docker logs`). A program that exits is restarted after
a backoff (1 s, doubling to 8 s); its process group goes with it, so nothing it forked outlives
it. More than MAX_DEATHS deaths within WINDOW seconds is a node that cannot run: the supervisor
stops everything and exits 1, so the container stops and says so (containers here run with
restart-policy `no`: a restarted container would come back without its links). Orphans are
reaped. SIGTERM/SIGINT stop the programs (SIGTERM, SIGKILL after GRACE seconds) and exit 0.

Standard library only: the router image has Python but not anycast-ctl. The pure part
(`Backoff`, `parse_programs`) is tested without processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Where `start` and `status` read what PID 1 is doing (tests point it elsewhere).
STATUS_FILE = Path(os.environ.get("ANYCAST_SUPERVISE_STATUS", "/run/anycast-ctl-supervise.json"))
FIRST_DELAY = 1.0
MAX_DELAY = 8.0
MAX_DEATHS = 5
WINDOW = 60.0
GRACE = 5.0
START_TIMEOUT = 10.0
SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}


class ProgramsError(ValueError):
    pass


@dataclass(frozen=True)
class Program:
    name: str
    argv: tuple[str, ...]


def parse_programs(text: str, source: str) -> list[Program]:
    """The programs file -> programs; ProgramsError naming the file and field when malformed."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProgramsError(f"{source}: not JSON: {exc}") from None
    items = data.get("programs") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ProgramsError(f"{source}: 'programs' must be a list")
    programs: list[Program] = []
    for i, item in enumerate(items):
        where = f"{source}: programs[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ProgramsError(f"{where}.name must be a non-empty string")
        argv = item.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ProgramsError(f"{where}.argv must be a non-empty list of strings")
        if any(p.name == item["name"] for p in programs):
            raise ProgramsError(f"{where}.name {item['name']!r} appears twice")
        programs.append(Program(item["name"], tuple(argv)))
    return programs


@dataclass
class Backoff:
    """Deaths of one program -> when to restart it, or None: give up (the node fails)."""

    deaths: list[float] = field(default_factory=list)

    def died(self, now: float) -> float | None:
        self.deaths = [t for t in self.deaths if now - t < WINDOW] + [now]
        if len(self.deaths) > MAX_DEATHS:
            return None
        return now + min(FIRST_DELAY * 2.0 ** (len(self.deaths) - 1), MAX_DELAY)


@dataclass
class Running:
    program: Program
    backoff: Backoff = field(default_factory=Backoff)
    pid: int | None = None
    since: float | None = None
    restart_at: float | None = None
    restarts: int = 0


def log(message: str) -> None:
    print(f"anycast-ctl-supervise: {message}", file=sys.stderr, flush=True)


def _spawn(program: Program) -> int:
    # Own session (its process group is killed with it); default signal mask and handlers,
    # not the supervisor's blocked set.
    return os.posix_spawnp(
        program.argv[0],
        list(program.argv),
        os.environ,
        setsid=True,
        setsigmask=(),
        setsigdef=tuple(SIGNALS),
    )


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _write_status(table: dict[int, Running] | list[Running], state: str) -> None:
    rows = table.values() if isinstance(table, dict) else table
    body = {
        "state": state,
        "programs": [
            {"name": r.program.name, "pid": r.pid, "since": r.since, "restarts": r.restarts}
            for r in rows
        ],
    }
    tmp = STATUS_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(body) + "\n")
    tmp.replace(STATUS_FILE)


class Supervisor:
    def __init__(self, programs: list[Program]) -> None:
        self.running = [Running(p) for p in programs]
        self.started = False
        self.failed = False  # a program is out of restarts: the node cannot run

    def _by_pid(self, pid: int) -> Running | None:
        return next((r for r in self.running if r.pid == pid), None)

    def start_all(self) -> None:
        if self.started:
            return
        self.started = True
        for r in self.running:
            self._start(r)

    def _start(self, r: Running) -> None:
        try:
            r.pid = _spawn(r.program)
        except OSError as exc:
            log(f"{r.program.name}: cannot start {r.program.argv[0]}: {exc}")
            r.pid = None
            self._died(r, time.monotonic())
            return
        r.since, r.restart_at = time.time(), None
        log(f"{r.program.name}: started, pid {r.pid}")

    def _died(self, r: Running, now: float) -> None:
        """Schedule the restart, or mark the node failed when the program's budget is spent."""
        at = r.backoff.died(now)
        if at is None:
            log(f"{r.program.name}: died {MAX_DEATHS + 1} times in {WINDOW:.0f} s; giving up")
            self.failed = True
            return
        r.restart_at = at
        log(f"{r.program.name}: restart in {at - now:.1f} s")

    def reap(self) -> None:
        """Collect every exited child; schedule restarts of the programs among them."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            r = self._by_pid(pid)
            if r is None:
                continue  # an orphan reparented to us
            log(f"{r.program.name}: pid {pid} {_describe(status)}")
            _kill_group(pid, signal.SIGKILL)  # what it forked goes with it
            r.pid, r.since = None, None
            self._died(r, time.monotonic())

    def restart_due(self, now: float) -> None:
        for r in self.running:
            if r.pid is None and r.restart_at is not None and r.restart_at <= now:
                r.restarts += 1
                self._start(r)

    def next_timeout(self, now: float) -> float | None:
        due = [r.restart_at for r in self.running if r.pid is None and r.restart_at is not None]
        return max(0.0, min(due) - now) if due else None

    def stop(self) -> None:
        alive = [r for r in self.running if r.pid is not None]
        for r in alive:
            assert r.pid is not None
            _kill_group(r.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while any(r.pid is not None for r in alive) and time.monotonic() < deadline:
            signal.sigtimedwait({signal.SIGCHLD}, 0.1)
            while True:
                try:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    pid = 0
                    for r in alive:
                        r.pid = None
                if pid == 0:
                    break
                done = self._by_pid(pid)
                if done is not None:
                    done.pid = None
        for r in alive:
            if r.pid is not None:
                _kill_group(r.pid, signal.SIGKILL)

    def status(self, state: str) -> None:
        try:
            _write_status(self.running, state)
        except OSError as exc:
            log(f"cannot write {STATUS_FILE}: {exc}")


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def run(programs: list[Program]) -> int:
    # Handlers (even empty ones) make sure a PID 1 receives the signals at all; blocking them
    # turns delivery into sigtimedwait's return value, one signal at a time, no races.
    for sig in SIGNALS:
        signal.signal(sig, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    sup = Supervisor(programs)
    sup.status("waiting")
    log(f"{len(programs)} programs; waiting for `anycast-ctl-supervise start`")
    while True:
        timeout = sup.next_timeout(time.monotonic())
        info = signal.sigtimedwait(SIGNALS, 3600.0 if timeout is None else timeout)
        signum = info.si_signo if info else None
        if signum in (signal.SIGTERM, signal.SIGINT):
            log("stopping")
            sup.stop()
            sup.status("stopped")
            return 0
        if signum == signal.SIGUSR1:
            sup.start_all()
        sup.reap()
        sup.restart_due(time.monotonic())
        if sup.failed:
            sup.stop()
            sup.status("failed")
            return 1
        sup.status("running" if sup.started else "waiting")


def start(timeout: float = START_TIMEOUT) -> int:
    """Tell PID 1 to start its programs; wait (bounded) until it says they run."""
    try:
        cmdline = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    except OSError as exc:
        log(f"cannot read /proc/1/cmdline: {exc}")
        return 1
    if not any(b"anycast-ctl-supervise" in part for part in cmdline[:2]):
        log("PID 1 is not anycast-ctl-supervise (is this one of anycast-ctl's images?)")
        return 1
    os.kill(1, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(STATUS_FILE.read_text()).get("state") != "waiting":
                return 0
        except (OSError, ValueError):
            pass
        time.sleep(0.05)  # bounded by the deadline: the status file is the only signal back
    log(f"PID 1 did not start its programs within {timeout:.0f} s")
    return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["start"]:
        return start()
    if args == ["status"]:
        try:
            print(STATUS_FILE.read_text(), end="")
        except OSError as exc:
            log(f"no status: {exc}")
            return 1
        return 0
    if len(args) != 1 or args[0].startswith("-"):
        print(
            "usage: anycast-ctl-supervise PROGRAMS.json | start | status",
            file=sys.stderr,
        )
        return 2
    try:
        programs = parse_programs(Path(args[0]).read_text(), args[0])
    except OSError as exc:
        print(f"error: {args[0]}: {exc.strerror}", file=sys.stderr)
        return 2
    except ProgramsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run(programs)


if __name__ == "__main__":
    sys.exit(main())
