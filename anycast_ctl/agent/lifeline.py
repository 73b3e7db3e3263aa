"""Fail closed: if the agent dies or hangs, stop ExaBGP, so its BGP sessions close and every
router withdraws this node's VIPs.

ExaBGP 4.2 and 5.0 do not do this themselves: when their API process dies they either respawn
it (the routes it announced stay announced) or, with respawn off, just forget it (the routes
stay announced for good). See docs/exabgp.md for the measurements.

So the agent starts a small guardian process and holds the write end of a pipe to it:

- the agent dies (even by SIGKILL): the kernel closes the pipe, the guardian reads EOF;
- the agent hangs (its event loop stalls, or it is SIGSTOPped): the heartbeats stop;

A heartbeat is the time of the beat (CLOCK_MONOTONIC, one clock for both processes) stored
in a page the two share (a memfd the guardian maps read-only), not a byte on the pipe: a beat
costs the agent a store, no system call and no wake-up of the guardian, ten times a second
for the agent's whole life. The guardian sleeps until the last beat is `limit` old, looks
again, and wakes otherwise only for what the pipe carries (EOF, and the messages below).

either way the guardian SIGKILLs the agent and stops ExaBGP: after a death with SIGTERM
(ExaBGP sends Cease), then SIGKILL after a grace period; after a stall with SIGKILL at once
(a stall usually means a starved host, where ExaBGP would act on SIGTERM late too).
An agent that exits on purpose, after withdrawing its routes, calls `stand_down()` first.

Two stall limits: a loose one from the start (a CPU-starved start-up, imports and the first
checks, is not a hang) and a tight one once the agent has made its first decision for every
VIP (`tighten()`): from then on a stall takes the node out of every FIB within about a second.

The agent also watches ExaBGP (anycast_ctl.agent.exabgp_watch): when ExaBGP stops answering,
it says so (`exabgp_hung()`), and the guardian SIGKILLs ExaBGP at once (a stopped or wedged
process acts on nothing else), so the kernel closes its BGP sessions.
"""

from __future__ import annotations

# The guardian runs this file as a script (`python -I -S lifeline.py`, see Lifeline.start):
# it imports only what it needs at the top, and the agent's side imports the rest where used.
import mmap
import os
import select
import signal
import struct
import sys
import time

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs the guardian ~1 MiB
if TYPE_CHECKING:
    import logging
    import subprocess


def _log() -> logging.Logger:
    import logging

    return logging.getLogger(__name__)


# The monotonic time of the last beat, twice: a reader that finds the copies unequal caught a
# store half done and reads again (a torn time could look like a stall, or like no stall).
BEAT = struct.Struct("=dd")
STAND_DOWN = b"Q"
TIGHTEN = b"T"  # the agent made its first decisions: switch to the tight stall limit
EXABGP_HUNG = b"X"  # the agent saw ExaBGP stop answering: kill it now


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of `pid` from /proc; the start time tells a pid from its reuse."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])  # fields 3 and 22 of the whole line


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot)."""
    stat = _stat(pid)
    return stat[1] if stat else None


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def exabgp_parent() -> int | None:
    """Our parent's pid if it is an ExaBGP (so it is safe to stop), else None."""
    ppid = os.getppid()
    if ppid <= 1:
        return None
    return ppid if any("exabgp" in os.path.basename(arg) for arg in _cmdline(ppid)[:3]) else None


class Lifeline:
    """The agent's end of the pipe to its guardian."""

    def __init__(self, fd: int, guardian: subprocess.Popen, page: mmap.mmap | bytearray) -> None:
        self._fd = fd
        self.guardian = guardian
        self._page = page  # shared with the guardian: the time of the last beat

    @classmethod
    def start(
        cls,
        target_pid: int,
        *,
        stall_after: float = 0.6,
        startup_stall_after: float | None = None,
        grace: float = 1.0,
        remove_chance: bool = False,
    ) -> Lifeline:
        """Start a guardian that stops `target_pid` (ExaBGP) when this process dies or stalls:
        no heartbeat for `startup_stall_after` (default: `stall_after`) until `tighten()`,
        then for `stall_after`."""
        target_start = process_start_time(target_pid)
        if target_start is None:
            raise ProcessLookupError(f"no process {target_pid} to guard")
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        beat_fd = os.memfd_create("anycast-ctl-heartbeat")
        os.ftruncate(beat_fd, BEAT.size)
        page = mmap.mmap(beat_fd, BEAT.size)
        now = time.monotonic()
        BEAT.pack_into(page, 0, now, now)  # the guardian's first deadline counts from here
        argv = [
            # -I -S: no site-packages, no environment, not even this file's directory on
            # sys.path: the guardian imports only the standard library it needs (~10 MiB).
            sys.executable, "-I", "-S", os.path.abspath(__file__),
            "--fd", str(read_fd),
            "--beat-fd", str(beat_fd),
            "--agent", str(os.getpid()),
            "--target", str(target_pid),
            "--target-start", str(target_start),
            "--stall-after", str(stall_after),
            "--startup-stall-after", str(startup_stall_after or stall_after),
            "--grace", str(grace),
            *(["--remove-chance"] if remove_chance else []),
        ]  # fmt: skip
        import subprocess

        guardian = subprocess.Popen(
            argv,
            pass_fds=(read_fd, beat_fd),
            stdin=subprocess.DEVNULL,  # never hold ExaBGP's pipes: it must see our EOF
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # survive a signal sent to the agent's process group
        )
        os.close(read_fd)
        os.close(beat_fd)  # the mapping stays
        return cls(write_fd, guardian, page)

    def beat(self) -> None:
        now = time.monotonic()
        BEAT.pack_into(self._page, 0, now, now)

    def tighten(self) -> None:
        """Every VIP has had its first decision: from now on use the tight stall limit."""
        self._say(TIGHTEN)

    def exabgp_hung(self) -> None:
        """ExaBGP stopped answering: the guardian kills it at once, closing its sessions."""
        self._say(EXABGP_HUNG)

    def _say(self, message: bytes) -> None:
        try:
            os.write(self._fd, message)
        except BlockingIOError:
            # The pipe is full (a guardian stopped along with us, say): wait for it, bounded:
            # this message must not be lost.
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                select.select([], [self._fd], [], 0.05)
                try:
                    os.write(self._fd, message)
                    return
                except BlockingIOError:
                    continue
            _log().error("lifeline guardian is not reading; could not tell it %r", message)
        except OSError:
            _log().error("lifeline guardian is gone")

    def stand_down(self) -> None:
        """We are exiting on purpose with nothing announced: the guardian must not stop ExaBGP."""
        import contextlib  # the agent's side only: the guardian never imports it

        with contextlib.suppress(OSError):  # a guardian gone already needs telling nothing
            os.write(self._fd, STAND_DOWN)
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def guardian_alive(self) -> bool:
        return self.guardian.poll() is None

    async def heartbeat(self, interval: float) -> None:
        """Beat from the event loop, so that a stalled loop stops the beats. Returns if the
        guardian dies: the caller must treat that as fatal (nothing would fail us closed)."""
        import asyncio

        while self.guardian_alive():
            self.beat()
            await asyncio.sleep(interval)
        _log().error("lifeline guardian exited with %s", self.guardian.returncode)

    async def guardian_exit(self, poll: float = 0.1) -> None:
        """Return when the guardian exits, without a timer: the loop watches a pidfd of it
        (Linux 5.3+). Where there is none, poll every `poll` seconds. The agent's beats come
        from another wake-up (ExabgpWatch's `on_look`): this task only waits."""
        import asyncio

        try:
            pidfd = os.pidfd_open(self.guardian.pid)
        except (AttributeError, OSError):
            while self.guardian_alive():
                await asyncio.sleep(poll)
        else:
            loop = asyncio.get_running_loop()
            exited: asyncio.Future[None] = loop.create_future()

            def readable() -> None:  # a pidfd turns readable once, when the process exits
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(pidfd, readable)
            try:
                if self.guardian_alive():  # it may have exited before the reader was added
                    await exited
            finally:
                loop.remove_reader(pidfd)
                os.close(pidfd)
            self.guardian.poll()  # reap it, for its returncode
        _log().error("lifeline guardian exited with %s", self.guardian.returncode)


# ---------------------------------------------------------------- the guardian process
# The second chance's table and overlay devices (render/chance.py: TABLE, device(); a unit
# test keeps these in step): the guardian cannot import the package (-I -S).
CHANCE_REMOVAL = (
    "table ip anycast_chance {}\ndelete table ip anycast_chance\n"
    "table ip6 anycast_chance {}\ndelete table ip6 anycast_chance\n"
)
CHANCE_DEVICES = ("acxch1", "acxch2", "acxch3")


def remove_chance() -> None:
    """Forwarding state must not outlive the agent that keeps it true: table, then devices."""
    import subprocess

    for argv, stdin in [
        (["nft", "-f", "-"], CHANCE_REMOVAL),
        *((["ip", "link", "del", "dev", name], None) for name in CHANCE_DEVICES),
    ]:
        try:
            subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"anycast-ctl lifeline: {' '.join(argv)}: {exc}", file=sys.stderr, flush=True)


def _same_process(pid: int, start: int | None) -> bool:
    """Still the process we were told about, and not yet a zombie."""
    stat = _stat(pid)
    return start is not None and stat is not None and stat[1] == start and stat[0] != "Z"


def _stop(pid: int, start: int | None, grace: float, first: int = signal.SIGTERM) -> None:
    if not _same_process(pid, start):
        return
    try:
        os.kill(pid, first)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _same_process(pid, start):
            return
        time.sleep(0.01)
    try:
        if _same_process(pid, start):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def last_beat(page: mmap.mmap | bytes | bytearray) -> float:
    """The time of the agent's last beat; a beat being stored as we read is read again. A pair
    that stays unequal (an agent killed between its two stores) counts as the older time: each
    copy is one aligned 8-byte store, so each is a real beat, and the older errs toward a
    stall, never away from one."""
    for _ in range(100):
        first, second = BEAT.unpack_from(page, 0)
        if first == second:
            return first
    return min(first, second)


def guard(
    fd: int,
    beat_fd: int,
    agent: int,
    target: int,
    target_start: int,
    stall_after: float,
    grace: float,
    startup_stall_after: float | None = None,
    chance: bool = False,
) -> str:
    """Wait for the agent to die, stall, report ExaBGP hung, or stand down; stop ExaBGP
    unless it stood down. The loose `startup_stall_after` applies until the agent sends
    TIGHTEN. The agent's last beat is the time in the page at `beat_fd`."""
    agent_start = process_start_time(agent)
    page = mmap.mmap(beat_fd, BEAT.size, access=mmap.ACCESS_READ)
    os.close(beat_fd)
    limit = startup_stall_after or stall_after
    hung = stalled = False
    while True:
        left = last_beat(page) + limit - time.monotonic()
        if left <= 0:
            reason, stalled = f"agent {agent} sent no heartbeat for {limit}s", True
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue  # the last beat may be newer than when we went to sleep: look again
        data = os.read(fd, 4096)
        if not data:
            reason = f"agent {agent} is gone"
            break
        if STAND_DOWN in data:
            return "agent stood down"
        if EXABGP_HUNG in data:
            reason, hung = f"agent {agent} reports that ExaBGP stopped answering", True
            break
        if TIGHTEN in data:
            limit = stall_after
    print(
        f"anycast-ctl lifeline: {reason}; stopping ExaBGP (pid {target})",
        file=sys.stderr,
        flush=True,
    )
    if hung:
        # ExaBGP is stopped or wedged: SIGTERM would wait for it. SIGKILL closes its sockets
        # now. The agent stays: it sees EOF, removes its VIPs from lo and exits by itself.
        _stop(target, target_start, 0.0, signal.SIGKILL)
        return reason
    _stop(agent, agent_start, 0.0, signal.SIGKILL)
    if stalled:
        # A stall is often a starved host: ExaBGP would act on SIGTERM late too. SIGKILL
        # closes its sessions now (the routers see the TCP close, not a Cease).
        _stop(target, target_start, 0.0, signal.SIGKILL)
    else:
        _stop(target, target_start, grace)  # the agent died: ExaBGP is well, let it send Cease
    if chance:  # after ExaBGP: the routers first, then the forwarding the dead agent kept
        remove_chance()
    return reason


# The guardian's options (Lifeline.start writes them): name -> (type, default; None: required).
OPTIONS: dict[str, tuple[type, object]] = {
    "--fd": (int, None),
    "--beat-fd": (int, None),
    "--agent": (int, None),
    "--target": (int, None),
    "--target-start": (int, None),
    "--stall-after": (float, None),
    "--startup-stall-after": (float, 0.0),
    "--grace": (float, 1.0),
}
FLAGS = ("--remove-chance",)


class UsageError(ValueError):
    pass


def parse_args(argv: list[str]) -> dict[str, object]:
    """Pure: the guardian's argv -> its settings, keyed as in OPTIONS and FLAGS (without
    the dashes). Read by hand: argparse would cost the guardian most of a MiB for good."""
    values: dict[str, object] = {flag: False for flag in FLAGS}
    words = iter(argv)
    for word in words:
        if word in FLAGS:
            values[word] = True
            continue
        if word not in OPTIONS or word in values:
            raise UsageError(f"unknown or repeated option {word!r}")
        kind, _ = OPTIONS[word]
        value = next(words, None)
        try:
            values[word] = kind(value)
        except (TypeError, ValueError):
            raise UsageError(f"{word} needs a {kind.__name__}, not {value!r}") from None
    for name, (_, default) in OPTIONS.items():
        if name not in values:
            if default is None:
                raise UsageError(f"{name} is required")
            values[name] = default
    return {name[2:]: value for name, value in values.items()}


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"anycast-ctl lifeline: {exc}", file=sys.stderr)
        return 2
    # Signals meant for the agent's terminal or group are not for us: only the pipe decides.
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    guard(
        args["fd"],  # type: ignore[arg-type]
        args["beat-fd"],  # type: ignore[arg-type]
        args["agent"],  # type: ignore[arg-type]
        args["target"],  # type: ignore[arg-type]
        args["target-start"],  # type: ignore[arg-type]
        args["stall-after"],  # type: ignore[arg-type]
        args["grace"],  # type: ignore[arg-type]
        args["startup-stall-after"] or None,  # type: ignore[arg-type]
        bool(args["remove-chance"]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
