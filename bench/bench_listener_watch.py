"""What the agent's listener watch costs the kernel: connections churned with and without it.

Any subscriber to the sock_diag destroy groups makes the kernel build a message for every TCP
socket it frees in the namespace (on a workqueue), which the agent's socket filter then drops
(agent/sockdiag.py). So the agent does not wake, but the kernel works: this bench churns
loopback connections (connect, accept, close both: two sockets freed each) in a namespace
PREFIX-lw-PID, alone and beside a filtered subscriber opened as the agent opens it, and prints
the churn's rate, the CPU time of the kernel's worker threads (kworker) and what reached the
subscriber (0 messages: the filter works). Rounds alternate, to share the machine's noise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.labs import prefix_from_env

CONNECTIONS, ROUNDS = 20_000, 3
QUICK_CONNECTIONS, QUICK_ROUNDS = 5_000, 1
ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICK = os.sysconf("SC_CLK_TCK")

CHURN = """
import socket, sys, time
n = int(sys.argv[1])
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1024)
address = listener.getsockname()
started = time.monotonic()
for _ in range(n):
    client = socket.create_connection(address)
    accepted, _ = listener.accept()
    accepted.close()
    client.close()
print(n / (time.monotonic() - started))
"""

SUBSCRIBER = """
import select, sys
from anycast_ctl.agent.sockdiag import open_destroy_socket
sock = open_destroy_socket([443])
messages = 0
print("subscribed", flush=True)
while sys.stdin not in select.select([sock, sys.stdin], [], [])[0]:
    sock.recv(65536)
    messages += 1
print(messages, flush=True)
"""


def kworker_seconds() -> float:
    """User + system CPU of every kworker thread now alive (the destroy broadcasts run there)."""
    ticks = 0
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and Path(f"/proc/{pid}/comm").read_text().startswith("kworker"):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue  # a worker that exited meanwhile
    return ticks / CLOCK_TICK


def churn(inside: list[str], n: int) -> tuple[float, float]:
    """(connections per second, kworker CPU seconds while they ran)."""
    before = kworker_seconds()
    out = subprocess.run(
        [*inside, sys.executable, "-c", CHURN, str(n)], capture_output=True, text=True, check=True
    )
    time.sleep(0.5)  # the workqueue drains the last broadcasts
    return float(out.stdout), kworker_seconds() - before


def with_subscriber(inside: list[str], n: int) -> tuple[float, float, int]:
    sub = subprocess.Popen(
        [*inside, sys.executable, "-c", SUBSCRIBER],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sub.stdout is not None and sub.stdin is not None
        if sub.stdout.readline().strip() != "subscribed":
            raise RuntimeError("the subscriber did not start")
        rate, kworker = churn(inside, n)
        sub.stdin.close()
        messages = int(sub.stdout.readline())
    finally:
        if sub.poll() is None:
            sub.kill()  # our own child, by its pid
        sub.wait(5)
    return rate, kworker, messages


def main(quick: bool = False) -> None:
    if os.geteuid() != 0:
        print("skipped: needs root (a namespace)")
        return
    n, rounds = (QUICK_CONNECTIONS, QUICK_ROUNDS) if quick else (CONNECTIONS, ROUNDS)
    netns = f"{prefix_from_env()}-lw-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        inside = ["ip", "netns", "exec", netns]
        print(f"{n} loopback connections a round ({2 * n} sockets freed), {rounds} rounds")
        print(f"{'':16} {'conn/s':>8} {'kworker s':>10} {'us/socket':>10} {'messages':>9}")
        for _ in range(rounds):
            rate, kworker = churn(inside, n)
            print(f"{'no subscriber':16} {rate:>8.0f} {kworker:>10.2f} {'':>10} {'-':>9}")
            rate, kworker_sub, messages = with_subscriber(inside, n)
            extra = (kworker_sub - kworker) / (2 * n) * 1e6
            print(
                f"{'agent filtered':16} {rate:>8.0f} {kworker_sub:>10.2f} {extra:>10.1f}"
                f" {messages:>9}",
                flush=True,
            )
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


if __name__ == "__main__":
    main()
