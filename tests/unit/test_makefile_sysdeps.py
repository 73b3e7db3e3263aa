"""`make sysdeps` touches a system service only when it has just installed its package.

Runs the real Makefile with stand-ins for dpkg, apt-get and systemctl first on PATH, each
recording how it was called, so nothing on this host is installed, stopped or disabled.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fake_tools(bin_dir: Path, log: Path, installed: set[str]) -> None:
    bin_dir.mkdir()
    known = " ".join(sorted(installed))
    scripts = {
        # dpkg -s PKG: 0 when "installed"
        "dpkg": f'echo "dpkg $*" >> {log}; case " {known} " in *" $2 "*) exit 0;; esac; exit 1',
        "apt-get": f'echo "apt-get $*" >> {log}',
        "systemctl": f'echo "systemctl $*" >> {log}',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)


def run_sysdeps(tmp_path: Path, installed: set[str]) -> tuple[str, list[str]]:
    log = tmp_path / "calls.log"
    log.touch()
    fake_tools(tmp_path / "bin", log, installed)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "sysdeps", "IS_ROOT=yes"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, log.read_text().splitlines()


ALL = {"frr", "haproxy", "iproute2", "procps", "openssl"}


def test_nothing_missing_means_no_service_is_touched(tmp_path):
    out, calls = run_sysdeps(tmp_path, ALL)
    assert not [c for c in calls if c.startswith(("systemctl", "apt-get"))]
    assert out == ""


def test_only_the_service_just_installed_is_disabled_and_it_says_so(tmp_path):
    out, calls = run_sysdeps(tmp_path, ALL - {"haproxy"})
    assert [c for c in calls if c.startswith("systemctl")] == ["systemctl disable --now haproxy"]
    assert "haproxy: installed now" in out and "stopped and disabled" in out
    assert "frr: already installed; its system service left as it was" in out


@pytest.mark.parametrize("missing", [{"openssl"}, {"procps", "openssl"}])
def test_installing_other_packages_leaves_frr_and_haproxy_alone(tmp_path, missing):
    out, calls = run_sysdeps(tmp_path, ALL - missing)
    assert [c for c in calls if c.startswith("apt-get install")]
    assert not [c for c in calls if c.startswith("systemctl")]
    assert "frr: already installed" in out and "haproxy: already installed" in out
