"""What runs on each lab node: its rendered files written, then FRR, HAProxy + ExaBGP, backends."""
