"""Renderers (pure): topology and plans -> exabgp.conf, frr.conf, haproxy.cfg, containerlab."""
