"""Start a lab backend: the TLS server of lab/programs/backend.py in the backend's namespace,
with the certificate the lab CA issued it (lab/nodes/files.py).

It accepts connections only from the LB nodes' addresses and only with a PROXY v2 header
(HAProxy's `send-proxy-v2`); a backend serving `client_certificates: required` VIPs requires a
client certificate issued by the lab CA.
"""

from __future__ import annotations

from pathlib import Path

from anycast_ctl.lab.net.daemons import Daemon
from anycast_ctl.lab.nodes.common import start_program

PROGRAM = "anycast_ctl.lab.programs.backend"


def start_backend(
    tag: str,
    backend: str,
    netns: str,
    listen: str,
    cert: Path,
    key: Path,
    proxy_from: list[str],
    client_ca: Path | None = None,
    timeout: float = 10.0,
) -> Daemon:
    return start_program(
        tag,
        backend,
        netns,
        PROGRAM,
        [
            "--name",
            backend,
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--listen",
            listen,
            *(arg for address in proxy_from for arg in ("--proxy-from", address)),
            *(("--client-ca", str(client_ca)) if client_ca is not None else ()),
        ],
        "backend",
        timeout,
        f"backend {backend} ({listen})",
    )
