"""The lab: a topology run as a real network in Linux network namespaces (I/O shell).

`topology_up.Lab` is the entry point and the one handle the layers receive (typed as
`handle.LabHandle`). The layers, lowest first:
  net/          namespaces, links, addresses, routes, sysctls (net/netns.py: the lab's only
                netlink user), processes (net/daemons.py: the only place that spawns and
                signals them), build, cleanup by tag, log tails;
  nodes/        what runs on each node: the rendered file map written (nodes/files.py), the lab
                CA, FRR, HAProxy + ExaBGP, the TLS backends;
  observe/      BGP sessions and FIBs, what "converged" means (pure), `lab status`, FIB changes
                over time;
  experiments/  traffic against the simulator's prediction, steady load, failure scenarios,
                the ExaBGP-healthcheck baseline, failover timing and its report;
  programs/     the `python -m` children run inside namespaces (backend, traffic clients).
bringup.py turns a topology into a running lab; state.py keeps the bookkeeping under
/run/anycast-ctl/lab/<tag>/; errors.py holds LabError (exit 1 at the CLI); poll.py bounds
every wait.
Everything a lab creates carries its tag: namespaces are named `<tag>-<node>`.
"""
