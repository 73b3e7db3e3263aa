"""Exec check: run a command (argv, no shell); exit status 0 is healthy.

The command gets its own session (start_new_session), so its process group holds it and
every child it forks. When it ends, or when the timeout cancels us, the whole group is
killed and the command reaped: no zombies, no orphans left behind by a check.
Exit status != 0 or death by a signal is soft; a program that is missing or not
executable is hard (the check can never pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from anycast_ctl.agent.checks.outcome import Outcome, one_line
from anycast_ctl.config.node import ExecCheck

OUTPUT_CAP = 4096  # last bytes of stdout+stderr kept; their last line goes into the detail


class _Output(asyncio.Protocol):
    """Collects the command's output from our end of its stdout/stderr pipe, until EOF."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        # Keep the tail: a failing command says why at the end.
        self.data += data
        if len(self.data) > OUTPUT_CAP:
            del self.data[: len(self.data) - OUTPUT_CAP]

    def eof_received(self) -> None:
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def last_line(self) -> str:
        lines = [
            line
            for line in self.data.decode("utf-8", errors="replace").splitlines()
            if line.strip()
        ]
        return one_line(lines[-1]) if lines else ""


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group may already be empty
        os.killpg(pgid, signal.SIGKILL)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class ExecChecker:
    def __init__(self, name: str, spec: ExecCheck) -> None:
        self.name = name
        self.argv = tuple(spec.command)
        self.target = spec.command[0]

    async def probe(self) -> Outcome:
        loop = asyncio.get_running_loop()
        read_end, write_end = os.pipe()
        try:
            # Missing or non-executable program: FileNotFoundError/PermissionError -> hard.
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_end,
                stderr=write_end,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # only the command's processes hold the write end now
        # Our own pipe, not asyncio's PIPE: Process.wait() would otherwise also wait for
        # every child that inherited the pipe to close it.
        pipe = os.fdopen(read_end, "rb", buffering=0)  # owns read_end from here on
        output = _Output()
        transport = None
        try:
            transport, _ = await loop.connect_read_pipe(lambda: output, pipe)
            returncode = await process.wait()
            _kill_group(process.pid)  # background children it left behind
            await output.closed  # every writer is gone: all output has been read
        finally:
            if transport is None:
                pipe.close()
            else:
                transport.close()
            if process.returncode is None:  # cancelled (timeout) while it runs
                _kill_group(process.pid)
                await process.wait()
        status = describe_exit(returncode)
        last = output.last_line()
        detail = f"{status}: {last}" if last else status
        if returncode == 0:
            return Outcome.ok(detail, returncode=returncode)
        return Outcome.soft(detail, returncode=returncode)
