"""The images `make images` builds: the daemons the namespace lab runs, at its versions, with
anycast-ctl-supervise as PID 1 and the project's ulimits (skipped without podman or images)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from podman_support import podman, require_images

pytestmark = pytest.mark.root


def _in(image: str, script: str) -> str:
    name = f"acx-img-{os.getpid()}-{image.rsplit('-', 1)[-1]}"
    try:
        return podman(
            "run",
            "--rm",
            "--name",
            name,
            "--network",
            "none",
            f"localhost/{image}:latest",
            "sh",
            "-c",
            script,
        ).stdout
    finally:
        podman("rm", "-f", "--ignore", name, check=False)


def _host(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_lb_image_runs_the_namespace_labs_daemons_and_anycast_ctl() -> None:
    require_images()
    out = _in(
        "anycast-ctl-lb",
        "haproxy -v | head -1; exabgp version | head -1; test -x /usr/lib/frr/bfdd && echo bfdd;"
        " anycast-ctl --help >/dev/null && echo anycast-ctl; ulimit -n",
    ).splitlines()
    host_haproxy = _host("haproxy", "-v").splitlines()[0]
    assert out[0].split()[2] == host_haproxy.split()[2], (out[0], host_haproxy)
    venv_exabgp = _host(os.path.join(os.path.dirname(sys.executable), "exabgp"), "version")
    assert out[1] == venv_exabgp.splitlines()[0]
    assert out[2:4] == ["bfdd", "anycast-ctl"]
    assert out[4] == "16384"  # containers.conf, not podman's default above the hard limit


def test_router_image_runs_the_namespace_labs_frr() -> None:
    require_images()
    out = _in("anycast-ctl-router", "/usr/lib/frr/zebra --version | head -1")
    host = _host("/usr/lib/frr/zebra", "--version").splitlines()[0]
    assert out.strip() == host.strip()
    assert re.match(r"zebra version 8\.4\.", out)


@pytest.mark.parametrize("image", ["anycast-ctl-host", "anycast-ctl-lb", "anycast-ctl-router"])
def test_every_image_starts_the_supervisor_as_pid_1(image: str) -> None:
    require_images()
    inspect = podman("image", "inspect", "--format", "{{json .Config.Cmd}}", image).stdout
    assert inspect.strip() == '["anycast-ctl-supervise","/etc/anycast-ctl/programs.json"]'
    assert _in(image, "command -v anycast-ctl-supervise").strip()
