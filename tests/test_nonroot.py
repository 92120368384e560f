"""Non-root operator paths that need no lab (issue 11 part 2): the placement lock's shell command
run for real as `nobody` (setpriv) and as root, and the OVS permission sentence. The whole
non-root story against real hosts (libvirt group, bastion, volumes, console) is
tests/lab/test_fleet.py and tests/e2e/test_fleet_lifecycle.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from virtdeck.backends import host_facts, hostlock

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root to run a command as nobody (setpriv)")

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def lock_root(monkeypatch):
    """A stand-in for /run/lock that nobody can reach (under /tmp, not pytest's 0700 tmp_path)."""
    d = tempfile.mkdtemp(prefix="vd-nonroot-", dir="/tmp")
    os.chmod(d, 0o755)
    monkeypatch.setattr(hostlock, "LOCK_DIR", d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _start(argv_prefix: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*argv_prefix, "sh", "-c", hostlock._command(5)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_lock_directory_nobody_made_is_locked_by_root_too(lock_root):
    os.chmod(lock_root, 0o1777)  # as /run/lock is on a stock host
    held = _start(NOBODY)
    try:
        assert held.stdout.readline().strip() == "locked"
        lock = next(os.scandir(lock_root))
        st = os.stat(lock.path)
        assert lock.is_dir() and st.st_uid == 65534 and st.st_mode & 0o777 == 0o755
        # root opens the directory read-only and flocks it: taken while nobody holds it …
        assert subprocess.run(["flock", "-n", lock.path, "true"]).returncode == 1
    finally:
        held.stdin.close()
        held.wait(10)
    # … and free once nobody let go (its channel closed); root's own lock command works on it
    assert subprocess.run(["flock", "-n", lock.path, "true"]).returncode == 0
    mine = _start([])
    assert mine.stdout.readline().strip() == "locked"
    mine.stdin.close()
    mine.wait(10)


def test_a_lock_directory_that_cannot_be_made_is_one_line_naming_it(lock_root):
    p = subprocess.run([*NOBODY, "sh", "-c", hostlock._command(1)], capture_output=True, text=True,
                       input="", timeout=20)
    assert p.returncode == 3
    tag, user, path = p.stdout.split()
    assert (tag, user) == ("@@denied", "nobody") and path.startswith(f"{lock_root}/virtdeck-placement-")


def test_an_ovs_database_the_operator_may_not_read_names_the_socket_and_the_fix():
    err = host_facts.ovs_error("hv1", 1, "ovs-vsctl: unix:/var/run/openvswitch/db.sock: database "
                                         "connection failed (Permission denied)\n")
    msg = str(err)
    assert msg.startswith("hv1: the operator may not read the OVS database (/run/openvswitch/db.sock")
    assert "fix on hv1: give the operator's group read/write access to /run/openvswitch/db.sock" in msg
    assert "\n" not in msg
    other = host_facts.ovs_error("hv1", 1, "first\novs-vsctl: database connection failed (No such file)")
    assert str(other) == "hv1: ovs-vsctl failed (rc 1): ovs-vsctl: database connection failed (No such file)"
