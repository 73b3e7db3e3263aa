"""What every lab command shares (`lab ...`, `lab failover`, `demo`): the exit code of a
failed lab and the root check. Lab failures themselves (LabError) become that exit code in one
place, `anycast_ctl.cli.main`."""

from __future__ import annotations

import os

from anycast_ctl.lab.errors import LabError

EXIT_FAILED = 1  # the lab failed: did not come up, left something behind, disagreed


def need_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, FRR, HAProxy, ExaBGP); try sudo")
