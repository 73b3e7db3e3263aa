"""The lab's one error type, with no imports: the CLI maps it to exit 1 without loading the lab."""


class LabError(RuntimeError):
    """The lab could not do something it must (a netlink call failed, a daemon did not start)."""
