"""The committed containerlab rendering in lab/ is what topologies/default.yaml renders to now."""

from __future__ import annotations

from pathlib import Path

from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.containerlab import render_containerlab

REPO = Path(__file__).resolve().parents[2]
SYNCED = ("default",)  # topologies whose rendering is committed under lab/
REGENERATE = (
    "regenerate it: rm -rf lab/{name} && "
    "python -m anycast_ctl.render.containerlab topologies/{name}.yaml lab/ "
    "(or: anycast-ctl lab render topologies/{name}.yaml --format containerlab --out lab/), "
    "then commit lab/{name}"
)


def _deployed(relative: Path) -> bool:
    """Written by a deployment, not by the rendering (and git-ignored): the certificates the
    backends make in pki/, containerlab's own clab-<name>/ directory."""
    top = relative.parts[0]
    return (top == "pki" and relative.name != ".gitignore") or top.startswith("clab-")


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not _deployed(p.relative_to(root))
    }


def test_committed_lab_matches_a_fresh_rendering(tmp_path: Path) -> None:
    for name in SYNCED:
        render_containerlab(load_topology(REPO / "topologies" / f"{name}.yaml"), tmp_path)
        fresh, committed = _tree(tmp_path / name), _tree(REPO / "lab" / name)
        hint = REGENERATE.format(name=name)
        assert sorted(committed) == sorted(fresh), (
            f"lab/{name} has other files than the rendering; {hint}"
        )
        stale = [rel for rel in fresh if fresh[rel] != committed[rel]]
        assert not stale, f"lab/{name} is out of date ({', '.join(stale)}); {hint}"
