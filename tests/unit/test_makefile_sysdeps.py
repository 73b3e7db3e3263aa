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


def fake_tools(bin_dir: Path, log: Path, installed: set[str], policy: Path) -> None:
    bin_dir.mkdir()
    known = " ".join(sorted(installed))
    scripts = {
        # dpkg -s PKG: 0 when "installed"
        "dpkg": f'echo "dpkg $*" >> {log}; case " {known} " in *" $2 "*) exit 0;; esac; exit 1',
        # apt-get also records whether a policy-rc.d forbade service starts while it ran
        "apt-get": f'echo "apt-get $*" >> {log}; [ -x {policy} ] && cat {policy} >> {log}; true',
        "systemctl": f'echo "systemctl $*" >> {log}',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)


def run_sysdeps(
    tmp_path: Path, installed: set[str], promtool: bool = True
) -> tuple[str, list[str]]:
    log = tmp_path / "calls.log"
    log.touch()
    policy = tmp_path / "policy-rc.d"
    fake_tools(tmp_path / "bin", log, installed, policy)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    tool = "true" if promtool else str(tmp_path / "no-promtool")
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT),
            "sysdeps",
            "IS_ROOT=yes",
            f"PROMTOOL={tool}",
            f"POLICY_RC_D={policy}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, log.read_text().splitlines()


ALL = {"frr", "haproxy", "iproute2", "procps", "openssl", "nftables"}


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


def test_promtool_missing_installs_prometheus_with_service_starts_forbidden(tmp_path):
    out, calls = run_sysdeps(tmp_path, ALL, promtool=False)
    install = calls.index("apt-get install -y -qq --no-install-recommends prometheus")
    assert calls[install + 1 : install + 3] == ["#!/bin/sh", "exit 101"]  # policy-rc.d in force
    assert not (tmp_path / "policy-rc.d").exists()  # ours, so removed again
    assert "kept from starting by policy-rc.d" in out


def test_a_policy_rc_d_of_the_host_is_left_alone(tmp_path):
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\n# the host's own\nexit 101\n")
    policy.chmod(0o755)
    run_sysdeps(tmp_path, ALL, promtool=False)
    assert policy.read_text() == "#!/bin/sh\n# the host's own\nexit 101\n"
