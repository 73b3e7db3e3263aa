"""ECMP simulator: flows through a topology's routers to the LB nodes; balance and disruption.

Pure: numpy in, numbers out. `run.simulate()` and `run.compare()` are the entry points;
`predict.predict_lbs()` answers "which LB does each of these flows reach".
"""
