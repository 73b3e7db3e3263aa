"""Who the lab runs ExaBGP and the agent as (lab/net/privilege.py) and the modes of an LB node's
files (lab/nodes/files.py): the pure parts, and the fall back to root with its one line."""

from __future__ import annotations

from pathlib import Path

from anycast_ctl.lab.net.privilege import (
    CAP_NET_ADMIN,
    ROOT,
    fallback_line,
    import_probe,
    script_interpreter,
    service_identity,
    setpriv_prefix,
)
from anycast_ctl.lab.nodes.files import LB_FILE_MODE, lb_dir_mode, lb_file_access
from anycast_ctl.render.lb_layout import AS_ROOT, RunAs


def test_setpriv_keeps_cap_net_admin_alone_in_every_set_and_no_new_privileges():
    prefix = setpriv_prefix("svc", "svcgrp", "/usr/bin/setpriv")
    assert prefix[0] == "/usr/bin/setpriv"
    assert {"--reuid=svc", "--regid=svcgrp", "--init-groups", "--no-new-privs"} <= set(prefix)
    for option in ("--inh-caps", "--ambient-caps", "--bounding-set"):
        assert f"{option}=-all,+net_admin" in prefix
    assert CAP_NET_ADMIN == 12  # linux/capability.h; the root test compares /proc's masks


def test_a_scripts_interpreter_is_its_shebang(tmp_path: Path):
    script = tmp_path / "exabgp"
    script.write_text("#!/opt/venv/bin/python3 -E\nimport sys\n")
    assert script_interpreter(str(script)) == "/opt/venv/bin/python3"
    binary = tmp_path / "tool"
    binary.write_bytes(b"\x7fELF...")
    assert script_interpreter(str(binary)) == str(binary)
    assert script_interpreter(str(tmp_path / "missing")) == str(tmp_path / "missing")


def test_the_probe_reads_the_interpreter_and_the_program_and_imports_its_modules(tmp_path: Path):
    script = tmp_path / "anycast-ctl"
    script.write_text("#!/v/bin/python\n")
    interpreter, code = import_probe(str(script), ["a.b", "c"])
    assert interpreter == "/v/bin/python"
    assert code == (
        "import os, sys; open(os.path.realpath(sys.executable), 'rb').close(); "
        f"open({str(script)!r}, 'rb').close(); import a.b; import c"
    )


def test_a_missing_user_falls_back_to_root_with_one_line_naming_it():
    identity = service_identity([], RunAs(user="no-such-user-acx", group=None))
    assert identity.run_as == AS_ROOT and (identity.uid, identity.gid) == (ROOT.uid, ROOT.gid)
    assert identity.prefix == () and not identity.unprivileged
    assert identity.fallback is not None and "\n" not in identity.fallback
    assert identity.fallback.startswith(fallback_line("no-such-user-acx", ""))


def test_lb_files_are_readable_by_who_reads_them_and_no_one_else():
    service, frr = 995, 101
    assert lb_file_access("haproxy.cfg", service, frr) == (0, 0o600)
    assert lb_file_access("bfdd.conf", service, frr) == (frr, LB_FILE_MODE)
    for name in ("exabgp.conf", "exabgp.env", "node.yaml", "topology.yaml", "healthcheck.conf"):
        assert lb_file_access(name, service, frr) == (service, LB_FILE_MODE)
    assert LB_FILE_MODE == 0o640


def test_an_lb_directory_is_sticky_group_writable_and_searchable_by_others_only_for_bfdd():
    assert lb_dir_mode(frr_reads=False) == 0o1770
    assert lb_dir_mode(frr_reads=True) == 0o1771
