"""The per-node agent: checks -> state machine -> ExaBGP lines, loopback VIPs, drain."""
