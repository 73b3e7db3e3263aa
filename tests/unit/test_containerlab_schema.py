"""Every shipped topology's containerlab rendering is valid against containerlab's published
JSON schema (vendored in tests/data/containerlab/, see its README): containerlab itself cannot
be installed here, so its schema is the contract we can check."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.containerlab import clab_file_name, containerlab_files

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "tests" / "data" / "containerlab" / "clab.schema.json").read_text())
TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml"))
# Not Draft7Validator.check_schema: the `ports` patterns use ECMAScript's \\p{L}, which Python's
# re cannot compile; jsonschema compiles a pattern only where a document uses it, and the
# rendering has no ports (network-mode none).
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def _errors(document: object) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in VALIDATOR.iter_errors(document)
    ]


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_rendering_is_valid_against_containerlabs_schema(path: Path) -> None:
    topo = load_topology(path)
    document = yaml.safe_load(containerlab_files(topo)[clab_file_name(topo)])
    assert _errors(document) == []


def test_the_committed_lab_is_valid_against_containerlabs_schema() -> None:
    for clab in sorted((REPO / "lab").glob("*/*.clab.yml")):
        assert _errors(yaml.safe_load(clab.read_text())) == [], clab


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("restart-policy", "sometimes"),
        ("restart-policy", False),  # what an unquoted `no` would be in YAML 1.1
        ("network-mode", "bridge"),
        ("sysctls", {"net.ipv4.ip_forward": [1]}),
        ("binds", []),
        ("exec", "ip addr"),
        ("cmd", ["anycast-ctl-supervise"]),
        ("no-such-key", 1),
    ],
)
def test_the_schema_rejects_a_wrong_value_of_each_key_we_render(key: str, value: object) -> None:
    # Proof that the validation bites on the keys the rendering relies on.
    topo = load_topology(TOPOLOGIES[0])
    document = yaml.safe_load(containerlab_files(topo)[clab_file_name(topo)])
    next(iter(document["topology"]["nodes"].values()))[key] = value
    assert _errors(document) != []
