"""Podman for root tests: the project's CONTAINERS_CONF, and skips that say what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "images" / "containers.conf"
IMAGES = ("anycast-ctl-host", "anycast-ctl-lb", "anycast-ctl-router")
# Written by `make test` when its image build failed: the reason to skip with.
IMAGES_UNAVAILABLE = REPO / "build" / "images" / "unavailable"


def podman_env() -> dict[str, str]:
    return dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def require_images(tag: str = "latest") -> None:
    """Skip (with the reason) unless podman runs here and `make images` has built the images."""
    if os.geteuid() != 0:
        pytest.skip("needs root: rootful podman")
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (make images installs it)")
    missing = [
        f"{name}:{tag}"
        for name in IMAGES
        if podman("image", "exists", f"localhost/{name}:{tag}", check=False).returncode != 0
    ]
    if IMAGES_UNAVAILABLE.is_file():
        pytest.skip(IMAGES_UNAVAILABLE.read_text().strip())
    if missing:
        pytest.skip(f"images missing: {', '.join(missing)} (build them with `make images`)")
