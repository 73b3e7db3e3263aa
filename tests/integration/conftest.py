"""Lab fixtures for root tests: a unique tag per lab, cleaned up and proven clean even on failure.

    def test_something(lab_tag):            # one tag, e.g. "acx-t4242-0"
        ns = netns.create_namespace(lab_tag, "r1")
        ...

    def test_two_labs(make_lab_tag):        # several tags, or your own prefix
        a, b = make_lab_tag("acx-fw-"), make_lab_tag()

Teardown, whatever happened in the test: the daemons' logs are printed when the test failed
(pytest shows them under "Captured stdout teardown"), then `cleanup(tag)`, then an assertion
that `leftovers(tag)` is empty. Tags embed our pid, so concurrent pytest runs never share one.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator

import pytest

from anycast_ctl.lab import state
from anycast_ctl.lab.net.cleanup import cleanup, leftovers
from anycast_ctl.lab.net.daemons import log_tail
from anycast_ctl.lab.net.netns import list_namespaces

_serial = itertools.count()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"lab_report_{report.when}", report)
    return report


def _failed(item) -> bool:
    return any(
        getattr(getattr(item, f"lab_report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


def _print_logs(tag: str) -> None:
    directory = state.state_dir(tag)
    for log in sorted(directory.rglob("*.log")) if directory.exists() else []:
        print(f"----- {log} (last lines)\n{log_tail(log, 40)}")


# Root tests name labs and namespaces acx-<kind><pid>-... or acx-<kind>-<pid>-...; a pid of
# three or more digits keeps by-hand labs such as "acx-adv1" out of the sweep. Runs sharing a
# machine may give `lab_tag` another prefix (ANYCAST_TEST_LAB_PREFIX=cm: cm-t<pid>-0); the
# sweep then looks only at that prefix's labs.
LAB_PREFIX = os.environ.get("ANYCAST_TEST_LAB_PREFIX", "acx")
if not re.fullmatch(r"[a-z]{2,4}", LAB_PREFIX):
    raise pytest.UsageError(
        f"ANYCAST_TEST_LAB_PREFIX: {LAB_PREFIX!r} must be 2 to 4 lowercase letters"
    )
_TEST_TAG = re.compile(rf"^{LAB_PREFIX}-[a-z]+-?(\d{{3,}})(?:-[0-9a-f]+)?$")


def _pid_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


@pytest.fixture(scope="session", autouse=True)
def _sweep_labs_of_dead_test_runs():
    """A test run killed outright (CI timeout, SIGKILL) never reaches its teardown. Its tags
    name its pid, so the next run removes the labs and namespaces (with the daemons living in
    them) of runs that are no longer alive."""
    if os.geteuid() != 0:
        yield
        return
    names = set(state.all_tags()) | {ns.rsplit("-", 1)[0] for ns in list_namespaces()}
    for tag in sorted(names):
        m = _TEST_TAG.match(tag)
        if m and not _pid_alive(int(m.group(1))):
            cleanup(m.group(0))
    yield


@pytest.fixture
def make_lab_tag(request) -> Iterator[Callable[..., str]]:
    tags: list[str] = []

    def make(prefix: str = f"{LAB_PREFIX}-t") -> str:
        tag = f"{prefix}{os.getpid()}-{next(_serial)}"
        cleanup(tag)  # only a dead run with our pid could have left something under this tag
        tags.append(tag)
        return tag

    yield make

    problems = []
    for tag in tags:
        if _failed(request.node):
            _print_logs(tag)
        try:
            cleanup(tag)
        except Exception as exc:  # keep going: every tag must get its chance
            problems.append(f"cleanup({tag}) raised {exc!r}")
        left = leftovers(tag)
        if left:
            problems.append(str(left))
    assert not problems, "; ".join(problems)


@pytest.fixture
def lab_tag(make_lab_tag) -> str:
    return make_lab_tag()
