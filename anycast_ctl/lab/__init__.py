"""The lab: a topology run as a real network in Linux network namespaces.

I/O shell only. One chokepoint per side effect:
  netns.py   - the one place that talks netlink (pyroute2): namespaces, veths, addresses,
               routes, sysctls, FIB dumps.
  daemons.py - the one place that spawns processes; every child carries ANYCAST_CTL_LAB=<tag>.
  state.py   - the lab's bookkeeping under /run/anycast-ctl/lab/<tag>/ (state.json).
  cleanup.py - remove everything a tag owns, and prove nothing is left.
  frr.py     - FRR (zebra + bgpd) per router namespace, and vtysh queries.
  poll.py    - bounded polling for assertions (no bare sleeps).
Everything a lab creates carries its tag: namespaces are named `<tag>-<node>`.
"""
