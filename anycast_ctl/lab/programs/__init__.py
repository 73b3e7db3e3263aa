"""Programs the lab runs inside namespaces with `python -m` (they import only the standard
library and each other)."""
