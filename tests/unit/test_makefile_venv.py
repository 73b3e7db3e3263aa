"""`make venv` makes the venv from $(PYTHON) (Debian's /usr/bin/python3 by default, which user
anycast-ctl can run), installs python3-venv first when that interpreter has no ensurepip (and
says so), and makes a venv from another interpreter again.

Runs the real Makefile with stand-ins for the interpreter, its venv's pip and apt-get, each
recording how it was called, so nothing is installed on this host.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# python -c ...: the ensurepip probe, true once apt-get "installed" python3-venv;
# python -m venv [--clear] DIR: a venv whose bin/python is this stand-in and whose pip records;
# anything else (-m compileall) is only recorded.
FAKE_PYTHON = """#!/bin/sh
echo "python $*" >> {log}
case "$1 $2" in
  "-c "*) [ -e {ensurepip} ] ;;
  "-m venv") shift 2; [ "$1" = --clear ] && shift
      mkdir -p "$1/bin" && ln -sf {python} "$1/bin/python"
      printf '#!/bin/sh\\necho "pip $*" >> {log}\\n' > "$1/bin/pip" && chmod 755 "$1/bin/pip" ;;
esac
"""


def make_venv(
    tmp_path: Path, *, ensurepip: bool, root: bool = True
) -> tuple[subprocess.CompletedProcess[str], list[str], Path]:
    bin_dir, log, flag = tmp_path / "bin", tmp_path / "calls.log", tmp_path / "ensurepip"
    bin_dir.mkdir(exist_ok=True)
    log.touch()
    if ensurepip:
        flag.touch()
    python = bin_dir / "python3"
    python.write_text(FAKE_PYTHON.format(log=log, ensurepip=flag, python=python))
    apt = bin_dir / "apt-get"
    apt.write_text(f'#!/bin/sh\necho "apt-get $*" >> {log}\ntouch {flag}\n')
    for tool in (python, apt):
        tool.chmod(0o755)
    venv = tmp_path / "venv"
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT),
            "venv",
            f"VENV={venv}",
            f"PYTHON={python}",
            f"IS_ROOT={'yes' if root else ''}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        timeout=60,
    )
    return done, log.read_text().splitlines(), venv


def test_the_venv_is_made_from_python_and_nothing_is_installed_when_it_has_ensurepip(tmp_path):
    done, calls, venv = make_venv(tmp_path, ensurepip=True)
    assert done.returncode == 0, done.stderr
    python = tmp_path / "bin" / "python3"
    assert f"python -m venv {venv}" in calls
    assert not [c for c in calls if c.startswith("apt-get")]
    assert "pip install -q -e .[test]" in calls
    assert [p.name for p in venv.glob(".installed-*")] == [
        ".installed-" + str(python).lstrip("/").replace("/", "-")
    ]


def test_root_installs_python3_venv_when_the_interpreter_has_no_ensurepip_and_says_so(tmp_path):
    done, calls, venv = make_venv(tmp_path, ensurepip=False)
    assert done.returncode == 0, done.stderr
    install = [c for c in calls if c.startswith("apt-get install")]
    assert install == ["apt-get install -y -qq --no-install-recommends python3-venv"]
    assert "installing with apt-get: python3-venv" in done.stdout
    assert calls.index(install[0]) < calls.index(f"python -m venv {venv}")


def test_anyone_else_is_told_what_to_install(tmp_path):
    done, calls, _ = make_venv(tmp_path, ensurepip=False, root=False)
    assert done.returncode == 2
    assert "cannot make a venv (no ensurepip): install python3-venv as root" in done.stdout
    assert not [c for c in calls if c.startswith(("apt-get", "python -m"))]


def test_a_venv_made_from_another_interpreter_is_made_again(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to("/bin/sh")  # "another interpreter"
    (venv / ".installed").touch()  # the stamp of before: no longer enough
    done, calls, _ = make_venv(tmp_path, ensurepip=True)
    assert done.returncode == 0, done.stderr
    assert f"python -m venv --clear {venv}" in calls
    assert "making it again from" in done.stdout
