"""A containerlab topology deployed with podman the way containerlab does it (for hosts without
containerlab): `spec` reads the rendered .clab.yml (pure), `podman` creates, wires and removes
the containers (I/O, through lab/net/daemons.py)."""
