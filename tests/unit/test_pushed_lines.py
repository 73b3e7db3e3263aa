"""PushedLines: ExaBGP's output handed on line by line from the pipe's protocol, in the pass
that reads it; over-long lines skipped whole; EOF and a broken handler end the listening."""

from __future__ import annotations

import asyncio
import io

import pytest

from anycast_ctl.agent.pushed_lines import PushedLines
from anycast_ctl.agent.speaker import Speaker


def test_lines_across_and_within_chunks_come_in_order_with_their_newlines():
    async def main():
        lines = PushedLines(limit=100)
        got: list[bytes] = []
        listening = asyncio.ensure_future(lines.listen(got.append))
        await asyncio.sleep(0)
        lines.data_received(b"do")
        assert got == []
        lines.data_received(b"ne\nerror\nneighbor 10.0.0.1 ")
        assert got == [b"done\n", b"error\n"]  # at once, inside data_received
        lines.data_received(b"up\n")
        lines.eof_received()
        await listening
        return got

    assert asyncio.run(main()) == [b"done\n", b"error\n", b"neighbor 10.0.0.1 up\n"]


def test_lines_before_listen_wait_for_it_and_a_last_line_without_newline_counts():
    async def main():
        lines = PushedLines(limit=100)
        lines.data_received(b"done\nlast")
        lines.eof_received()
        got: list[bytes] = []
        await asyncio.wait_for(lines.listen(got.append), 1)
        return got

    assert asyncio.run(main()) == [b"done\n", b"last"]


@pytest.mark.parametrize("chunks", [[b"x" * 50 + b"\n"], [b"x" * 30, b"x" * 30, b"x\n"]])
def test_an_over_long_line_is_skipped_whole_and_the_next_one_comes(chunks, caplog):
    async def main():
        lines = PushedLines(limit=20)
        got: list[bytes] = []
        listening = asyncio.ensure_future(lines.listen(got.append))
        await asyncio.sleep(0)
        for chunk in [b"done\n", *chunks, b"error\n"]:
            lines.data_received(chunk)
        lines.eof_received()
        await listening
        return got

    assert asyncio.run(main()) == [b"done\n", b"error\n"]
    assert "skipping an over-long line from ExaBGP" in caplog.text


def test_a_broken_handler_ends_listen_with_its_exception():
    def broken(line: bytes) -> None:
        raise KeyError("bug")

    async def main():
        lines = PushedLines(limit=100)
        listening = asyncio.ensure_future(lines.listen(broken))
        await asyncio.sleep(0)
        lines.data_received(b"done\n")
        await listening

    with pytest.raises(KeyError):
        asyncio.run(main())


def test_a_speaker_on_pushed_lines_matches_an_ack_in_the_pass_that_reads_it():
    async def main():
        lines = PushedLines(limit=100)
        speaker = Speaker(lines, io.StringIO())
        reader = asyncio.ensure_future(speaker.run_reader())
        await asyncio.sleep(0)
        speaker.probe("#")
        assert speaker.unanswered_for() is not None
        lines.data_received(b"done\n")
        answered = speaker.unanswered_for() is None  # no task step in between
        lines.eof_received()
        await asyncio.wait_for(reader, 1)
        return answered, speaker.alive

    assert asyncio.run(main()) == (True, False)
