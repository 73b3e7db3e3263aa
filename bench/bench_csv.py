"""CSV flows: `sim predict` and `sim run --flows-file` on a million-row file, as a user runs them.

    .venv/bin/python -m bench.bench_csv              # 1M rows (about 40 MB of CSV)
    .venv/bin/python -m bench.bench_csv --rows 200k  # the quick run's size

Each command runs as the installed console script under /usr/bin/time -v, which reports its
wall time, CPU time and peak RSS; the limit for a million-row `sim predict` is 150 MB. The
file is read in blocks (anycast_ctl.sim.csvflows), so the peak must not grow with --rows.
Under load the wall time stretches; CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("anycast-ctl"))
RSS_LIMIT_MB = 150  # for a million-row sim predict
TOPOLOGY = ROOT / "topologies" / "default.yaml"  # client 198.18.1.0/24, VIP 192.0.2.10:443


def count(text: str) -> int:
    text = text.lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def write_flows(path: Path, rows: int, seed: int = 1) -> None:
    """Flows from the default topology's client to its VIP; protocols as names and numbers."""
    rng = np.random.default_rng(seed)
    host = rng.integers(1, 255, rows)
    sport = rng.integers(1024, 65536, rows)
    proto = rng.choice(np.array(["tcp", "6"]), rows)
    with path.open("w") as out:
        out.write("src,dst,proto,sport,dport\n")
        for start in range(0, rows, 100_000):
            stop = min(rows, start + 100_000)
            out.write(
                "".join(
                    f"198.18.1.{h},192.0.2.10,{p},{s},443\n"
                    for h, p, s in zip(
                        host[start:stop].tolist(),
                        proto[start:stop].tolist(),
                        sport[start:stop].tolist(),
                        strict=True,
                    )
                )
            )


def timed(argv: list[str]) -> dict[str, float]:
    """Wall s, CPU s and peak RSS MB of one run of `anycast-ctl ARGV` (stdout discarded)."""
    timer = shutil.which("time") or "/usr/bin/time"
    done = subprocess.run(
        [timer, "-v", CLI, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"anycast-ctl {' '.join(argv)} failed:\n{done.stderr[-2000:]}")

    def field(name: str) -> str:
        match = re.search(rf"{re.escape(name)}: (.+)", done.stderr)
        assert match, f"no {name!r} in /usr/bin/time's report"
        return match.group(1).strip()

    minutes, _, seconds = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").rpartition(":")
    wall = float(seconds) + 60 * sum(
        float(x) * 60**i for i, x in enumerate(reversed(minutes.split(":"))) if x
    )
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    return {
        "wall": wall,
        "cpu": cpu,
        "rss": int(field("Maximum resident set size (kbytes)")) / 1024,
    }


def main(argv: list[str] | None = None, quick: bool = False) -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_csv", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=count, default=None, help="rows (default 1M; quick 200k)")
    args = parser.parse_args(argv if argv is not None else [])
    rows = args.rows or (200_000 if quick else 1_000_000)
    if not Path("/usr/bin/time").exists() and not shutil.which("time"):
        print("skipped: needs /usr/bin/time (apt-get install time)")
        return
    with tempfile.TemporaryDirectory(prefix="acx-bench-csv-") as tmp:
        path = Path(tmp) / "flows.csv"
        write_flows(path, rows)
        size = path.stat().st_size / 1e6
        print(f"{rows:,} rows, {size:.0f} MB of CSV; figures from /usr/bin/time -v")
        cases = {
            "sim predict": [
                "sim", "predict", "--nexthop", "10.0.0.1", "--nexthop", "10.0.0.2:3",
                "--seed", "7", "--flows", str(path),
            ],
            "sim run --flows-file": [
                "sim", "run", str(TOPOLOGY), "--flows-file", str(path), "--no-events",
            ],
        }  # fmt: skip
        for label, case in cases.items():
            got = timed(case)
            verdict = ""
            if label == "sim predict" and rows >= 1_000_000:
                verdict = "  (limit 150 MB: " + ("ok)" if got["rss"] < RSS_LIMIT_MB else "OVER)")
            print(
                f"{label:22s} wall {got['wall']:6.2f} s  cpu {got['cpu']:6.2f} s  "
                f"{rows / got['cpu'] / 1e6:5.2f} M rows/cpu-s  peak RSS {got['rss']:5.0f} MB"
                f"{verdict}",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
