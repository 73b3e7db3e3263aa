"""Second chance on an LB node: applying the rendered forwarding (I/O). The pure parts are
`sim/owners.py` (who owned a flow) and `render/chance.py` (the ruleset)."""
