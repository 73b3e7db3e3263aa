"""The Speaker against in-memory streams: acks, events, EOF and junk, with no real process."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest

from anycast_ctl.agent import speaker as speaker_module
from anycast_ctl.agent.exabgp import Ack, PeerState, Shutdown, Unknown
from anycast_ctl.agent.speaker import Speaker


def in_loop(test):
    import functools

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(test(*args, **kwargs), 10))

    return wrapper


class Pipe:
    """ExaBGP's side: what we wrote (`sent`) and a reader it feeds (`to_agent`)."""

    def __init__(self, limit: int = 2**16):
        self.to_agent = asyncio.StreamReader(limit=limit)
        self.out = io.StringIO()

    @property
    def sent(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def feed(self, *lines: str) -> None:
        for line in lines:
            self.to_agent.feed_data(line.encode() + b"\n")


async def until(predicate, timeout=2.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


async def started(pipe: Pipe, **options) -> tuple[Speaker, asyncio.Task]:
    speaker = Speaker(pipe.to_agent, pipe.out, **options)
    return speaker, asyncio.create_task(speaker.run_reader())


@in_loop
async def test_send_writes_one_line_and_returns_the_ack():
    pipe = Pipe()
    speaker, reader = await started(pipe)
    sending = asyncio.create_task(speaker.send("announce route 192.0.2.10/32 next-hop self"))
    await until(lambda: pipe.sent)
    assert pipe.sent == ["announce route 192.0.2.10/32 next-hop self"]
    assert not sending.done()  # waits for ExaBGP's answer
    pipe.feed("done")
    assert await sending is True
    sending = asyncio.create_task(speaker.send("withdraw route 192.0.2.10/32"))
    await until(lambda: len(pipe.sent) == 2)
    pipe.feed("error")
    assert await sending is False
    reader.cancel()


@in_loop
async def test_concurrent_sends_are_pipelined_and_get_their_own_acks_in_order():
    pipe = Pipe()
    speaker, reader = await started(pipe)
    sends = [
        asyncio.create_task(speaker.send(f"withdraw route 192.0.2.{i}/32")) for i in range(1, 4)
    ]
    # every command is written before ExaBGP has answered the first one
    await until(lambda: len(pipe.sent) == 3)
    assert not any(s.done() for s in sends)
    pipe.feed("done", "error", "done")
    assert [await s for s in sends] == [True, False, True]
    assert pipe.sent == [f"withdraw route 192.0.2.{i}/32" for i in range(1, 4)]
    reader.cancel()


@in_loop
async def test_send_many_writes_a_burst_at_once_and_answers_per_line():
    pipe = Pipe()
    speaker, reader = await started(pipe)
    lines = [f"withdraw route 192.0.2.{i}/32" for i in range(1, 5)]
    burst = asyncio.create_task(speaker.send_many(lines))
    await until(lambda: len(pipe.sent) == 4)
    later = asyncio.create_task(speaker.send("announce route 192.0.2.9/32 next-hop self"))
    await until(lambda: len(pipe.sent) == 5)  # not held back by the burst's missing acks
    pipe.feed("done", "done", "error", "done", "done")
    assert await burst == [True, True, False, True]
    assert await later is True
    assert await speaker.send_many([]) == []
    reader.cancel()


@in_loop
async def test_send_many_refuses_the_whole_burst_if_one_line_has_control_characters():
    pipe = Pipe()
    speaker, reader = await started(pipe)
    with pytest.raises(ValueError):
        await speaker.send_many(["withdraw route 192.0.2.1/32", "withdraw route 1\nshutdown"])
    assert pipe.sent == []
    reader.cancel()


@in_loop
async def test_events_between_a_command_and_its_ack_do_not_confuse_the_match():
    pipe = Pipe()
    seen = []
    speaker, reader = await started(pipe, on_event=seen.append)
    sending = asyncio.create_task(speaker.send("announce route 192.0.2.10/32 next-hop self"))
    await until(lambda: pipe.sent)
    pipe.feed("neighbor 10.0.0.1 up", "some junk", "done")
    assert await sending is True
    assert seen == [PeerState("10.0.0.1", True), Unknown("some junk"), Ack(True)]
    reader.cancel()


@in_loop
async def test_an_ack_timeout_returns_false_and_a_late_ack_is_not_given_to_the_next_command():
    pipe = Pipe()
    speaker, reader = await started(pipe, ack_timeout=0.05)
    assert await speaker.send("announce route 192.0.2.10/32 next-hop self") is False
    assert speaker.ack_timeouts == 1
    second = asyncio.create_task(speaker.send("withdraw route 192.0.2.10/32"))
    await until(lambda: len(pipe.sent) == 2)
    pipe.feed("done")  # the late answer to the first command
    await asyncio.sleep(0.01)
    assert not second.done()
    pipe.feed("error")  # the real answer to the second
    assert await second is False
    reader.cancel()


@in_loop
async def test_without_acks_send_returns_once_written():
    pipe = Pipe()
    speaker, reader = await started(pipe, ack=False)
    assert await speaker.send("announce route 192.0.2.10/32 next-hop self") is True
    assert pipe.sent == ["announce route 192.0.2.10/32 next-hop self"]
    reader.cancel()


@in_loop
async def test_eof_means_exabgp_is_gone():
    pipe = Pipe()
    speaker, reader = await started(pipe)
    waiting = asyncio.create_task(speaker.send("announce route 192.0.2.10/32 next-hop self"))
    await until(lambda: pipe.sent)
    pipe.to_agent.feed_eof()
    await asyncio.wait_for(reader, 1)  # the reader returns on EOF
    assert speaker.alive is False
    assert await waiting is False  # a command in flight fails
    assert (
        await speaker.send("withdraw route 192.0.2.10/32") is False
    )  # and nothing more is written
    assert pipe.sent == ["announce route 192.0.2.10/32 next-hop self"]


@in_loop
async def test_junk_is_logged_and_reading_goes_on(caplog):
    caplog.set_level(logging.INFO, logger="anycast_ctl.agent.speaker")
    pipe = Pipe()
    speaker, reader = await started(pipe)
    pipe.to_agent.feed_data(b"\xff\xfe not utf-8\n{ broken json\n\n")
    pipe.feed("neighbor fd00::1 up")
    await until(lambda: speaker.peers)
    assert speaker.peers == {"fd00::1": True}
    assert "not utf-8" in caplog.text and "broken json" in caplog.text
    assert not reader.done()
    reader.cancel()


@in_loop
async def test_an_over_long_line_is_skipped_whole():
    pipe = Pipe(limit=64)
    speaker, reader = await started(pipe)
    pipe.to_agent.feed_data(b"x" * 500 + b"\n")
    pipe.feed("neighbor 10.0.0.1 up")
    await until(lambda: speaker.peers)
    assert speaker.peers == {"10.0.0.1": True}
    reader.cancel()


@in_loop
async def test_state_tracks_peers_shutdown_and_the_time_of_the_last_line():
    pipe = Pipe()
    now = [100.0]
    speaker, reader = await started(pipe, clock=lambda: now[0])
    assert speaker.last_line_at is None and speaker.peers == {}
    pipe.feed("neighbor 10.0.0.1 up", "neighbor 10.0.0.2 connected")
    await until(lambda: len(speaker.peers) == 2)
    assert speaker.peers == {"10.0.0.1": True, "10.0.0.2": False}
    assert speaker.last_line_at == 100.0
    now[0] = 105.0
    pipe.feed("neighbor 10.0.0.1 down - notification received (6,4)", "shutdown 10 1")
    await until(lambda: speaker.shutting_down)
    assert speaker.peers["10.0.0.1"] is False
    assert speaker.last_line_at == 105.0
    reader.cancel()


@in_loop
async def test_on_event_may_be_set_after_construction_and_its_errors_are_fatal():
    pipe = Pipe()
    speaker, reader = await started(pipe)
    seen = []
    speaker.on_event = seen.append
    pipe.feed("shutdown 1 2")
    await until(lambda: seen)
    assert seen == [Shutdown()]

    def broken(event):
        raise RuntimeError("handler bug")

    speaker.on_event = broken
    pipe.feed("done")
    with pytest.raises(RuntimeError, match="handler bug"):
        await asyncio.wait_for(reader, 1)


@in_loop
async def test_a_broken_pipe_on_write_means_exabgp_is_gone():
    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    speaker = Speaker(asyncio.StreamReader(), Closed())
    assert await speaker.send("withdraw route 192.0.2.10/32") is False
    assert speaker.alive is False


@pytest.mark.parametrize("line", ["a\nb", "a\rb", "a\x00b", "a\x7fb", "a\tb"])
@in_loop
async def test_send_refuses_control_characters(line):
    pipe = Pipe()
    speaker = Speaker(pipe.to_agent, pipe.out)
    with pytest.raises(ValueError):
        await speaker.send(line)
    assert pipe.sent == []


@pytest.mark.parametrize("kind", ["pipe", "file"])
def test_stdio_speaker_reads_our_stdin_whether_a_pipe_or_a_file(kind, tmp_path, monkeypatch):
    import os
    import sys

    from anycast_ctl.agent.speaker import stdio_speaker

    if kind == "pipe":  # what ExaBGP gives us
        read_fd, write_fd = os.pipe()
        os.write(write_fd, b"neighbor 10.0.0.1 up\ndone\n")
        os.close(write_fd)
        stdin = os.fdopen(read_fd, "r")
    else:  # someone running the agent by hand with a file on stdin
        path = tmp_path / "input"
        path.write_bytes(b"neighbor 10.0.0.1 up\ndone\n")
        stdin = path.open("r")
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", out)

    async def body():
        seen = []
        speaker = await stdio_speaker(on_event=seen.append)
        await asyncio.wait_for(speaker.run_reader(), 2)
        return speaker, seen

    try:
        speaker, seen = asyncio.run(body())
    finally:
        stdin.close()
    assert seen == [PeerState("10.0.0.1", True), Ack(True)]
    assert speaker.alive is False  # EOF after the input


def nlri_line(first: int, count: int) -> str:
    prefixes = " ".join(f"198.19.{i // 256}.{i % 256}/32" for i in range(first, first + count))
    return f"withdraw attributes next-hop self nlri {prefixes}"


@in_loop
async def test_a_big_batch_goes_out_as_its_acks_come_back_keeping_the_window_full(monkeypatch):
    monkeypatch.setattr(speaker_module, "WINDOW_PREFIXES", 100)
    pipe = Pipe()
    speaker, reader = await started(pipe)
    lines = [nlri_line(i * 40, 40) for i in range(5)]  # 200 prefixes, a window of 100
    batch = asyncio.create_task(speaker.send_many(lines))
    await until(lambda: len(pipe.sent) == 2)  # 80 prefixes in flight; a third would make 120
    await asyncio.sleep(0.01)
    assert len(pipe.sent) == 2
    pipe.feed("done")  # 40 in flight: the third fits, not the fourth
    await until(lambda: len(pipe.sent) == 3)
    await asyncio.sleep(0.01)
    assert len(pipe.sent) == 3
    pipe.feed("done", "error")  # none in flight: the last two go
    await until(lambda: len(pipe.sent) == 5)
    pipe.feed("done", "done")
    assert await batch == [True, True, False, True, True]
    assert pipe.sent == lines
    reader.cancel()


@in_loop
async def test_a_command_sent_during_a_big_batch_goes_after_all_of_its_lines(monkeypatch):
    monkeypatch.setattr(speaker_module, "WINDOW_PREFIXES", 50)
    pipe = Pipe()
    speaker, reader = await started(pipe)
    lines = [nlri_line(i * 50, 50) for i in range(3)]
    batch = asyncio.create_task(speaker.send_many(lines))
    await until(lambda: len(pipe.sent) == 1)
    later = asyncio.create_task(speaker.send("announce route 192.0.2.9/32 next-hop self"))
    for written in (2, 3, 4):
        pipe.feed("done")
        await until(lambda written=written: len(pipe.sent) == written)
    assert pipe.sent == [*lines, "announce route 192.0.2.9/32 next-hop self"]
    pipe.feed("done")
    assert await batch == [True, True, True]
    assert await later is True
    reader.cancel()


@in_loop
async def test_a_line_bigger_than_the_window_still_goes_when_nothing_is_in_flight(monkeypatch):
    monkeypatch.setattr(speaker_module, "WINDOW_PREFIXES", 10)
    pipe = Pipe()
    speaker, reader = await started(pipe)
    batch = asyncio.create_task(speaker.send_many([nlri_line(0, 30), nlri_line(30, 30)]))
    await until(lambda: len(pipe.sent) == 1)
    pipe.feed("done")
    await until(lambda: len(pipe.sent) == 2)
    pipe.feed("done")
    assert await batch == [True, True]


@in_loop
async def test_a_probe_waits_in_line_and_its_ack_is_not_given_to_the_next_command():
    pipe = Pipe()
    speaker, reader = await started(pipe)
    speaker.probe("#")
    assert pipe.sent == ["#"]
    assert speaker.unanswered_for() is not None  # its age is the watch's measure
    sending = asyncio.create_task(speaker.send("withdraw route 192.0.2.10/32"))
    await until(lambda: len(pipe.sent) == 2)
    pipe.feed("done")  # the probe's answer
    await until(lambda: speaker.last_ack_at is not None)
    assert not sending.done()
    pipe.feed("error")  # the withdraw's own
    assert await sending is False
    assert speaker.unanswered_for() is None
    reader.cancel()


@in_loop
async def test_once_a_line_of_a_batch_times_out_the_rest_goes_at_once(monkeypatch):
    monkeypatch.setattr(speaker_module, "WINDOW_PREFIXES", 50)
    pipe = Pipe()
    speaker, reader = await started(pipe, ack_timeout=0.05)
    lines = [nlri_line(i * 50, 50) for i in range(4)]
    started_at = asyncio.get_running_loop().time()
    assert await speaker.send_many(lines) == [False] * 4
    assert pipe.sent == lines
    # the first timeout, then the other three together: not one timeout a line
    assert asyncio.get_running_loop().time() - started_at < 0.05 * 3
    reader.cancel()


@in_loop
async def test_exabgp_gone_while_a_batch_waits_for_its_window_fails_the_rest(monkeypatch):
    monkeypatch.setattr(speaker_module, "WINDOW_PREFIXES", 50)
    pipe = Pipe()
    speaker, reader = await started(pipe)
    lines = [nlri_line(i * 50, 50) for i in range(3)]
    batch = asyncio.create_task(speaker.send_many(lines))
    await until(lambda: len(pipe.sent) == 1)
    pipe.feed("done")
    await until(lambda: len(pipe.sent) == 2)
    pipe.to_agent.feed_eof()
    assert await batch == [True, False, False]
    assert pipe.sent == lines[:2]


@in_loop
async def test_a_probe_to_a_gone_exabgp_writes_nothing():
    pipe = Pipe()
    speaker, reader = await started(pipe)
    pipe.to_agent.feed_eof()
    await until(lambda: not speaker.alive)
    speaker.probe("#")
    assert pipe.sent == [] and speaker.unanswered_for() is None
    reader.cancel()
