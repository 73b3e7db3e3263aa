"""Namespaces, links and processes: the lab's side effects (netlink in netns.py, processes in
daemons.py)."""
