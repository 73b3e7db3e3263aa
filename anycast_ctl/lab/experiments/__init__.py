"""Experiments on a running lab: traffic vs the simulator, steady load, failover and its report."""
