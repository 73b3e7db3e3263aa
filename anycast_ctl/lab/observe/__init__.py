"""Looking at a running lab: BGP sessions, FIBs, convergence, status, FIB changes over time."""
