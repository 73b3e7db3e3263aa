"""A fake HAProxy stats socket (an asyncio unix server) that speaks like HAProxy 2.6: one
command line, commands split on ";", and in interactive mode (`prompt`) the prompt "\\n> "
after the answer to each command; without it, the answers and then EOF."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

INFO = "Name: HAProxy\nVersion: 2.6.12\nPid: 4242\nStopping: {stopping}\nJobs: 3\n"


class FakeHaproxy:
    def __init__(self, path: Path, answer: str | Callable[[str], str] = ""):
        """`answer`: the CSV every `show stat` filters its rows from, or a function of the
        command giving the answer text."""
        self.path = path
        self.answer = answer
        self.stopping = 0
        self.commands: list[bytes] = []  # every line but `prompt`
        self.held: list[asyncio.StreamWriter] = []  # interactive connections
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> FakeHaproxy:
        self.server = await asyncio.start_unix_server(self._serve, str(self.path))
        return self

    def _block(self, command: str) -> str:
        if command == "show info":
            return INFO.format(stopping=self.stopping)
        if callable(self.answer):
            return self.answer(command)
        words = command.split()
        if words[:2] != ["show", "stat"] or len(words) < 3:
            return "Unknown command."
        header, *rows = self.answer.strip().splitlines()
        if words[2] == "-1":
            return "\n".join([header, *rows])
        mine = [row for row in rows if row.startswith(words[2] + ",")]
        return "\n".join([header, *mine]) if mine else "No such proxy."

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        interactive = False
        while line := await reader.readline():
            text = line.decode().strip()
            if text == "prompt":
                interactive = True
                self.held.append(writer)
                writer.write(b"\n> ")
                continue
            self.commands.append(line)
            for command in text.split(";"):
                writer.write((self._block(command.strip()).strip("\n") + "\n\n").encode())
                if interactive:
                    writer.write(b"> ")
            if not interactive:
                break
        await writer.drain()
        writer.close()

    def die(self) -> None:
        """What the kernel does when HAProxy is killed: the listener and every connection go."""
        if self.server is not None:
            self.server.close()
        for writer in self.held:
            writer.transport.abort()
