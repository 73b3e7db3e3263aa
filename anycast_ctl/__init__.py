"""anycast-ctl: BGP/ECMP anycast load-balancing controller."""

__version__ = "0.1.0"
