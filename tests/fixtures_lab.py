"""The lab as a pytest fixture (plugin loaded by tests/conftest.py).

``lab`` (session scope) -> :class:`Lab`. It reuses a lab that is already up and ready with at
least 2 hypervisors (so a developer or another test session can keep one running), or brings one
up with 2 hypervisors (building the template image first on a fresh machine, ~1 min) and takes it
down at the end of the session — unless another live test session registered as a user of it
meanwhile, or ``VIRTDECK_LAB_KEEP=1`` is set. Tests that need it carry ``@pytest.mark.lab``;
without root they are skipped.

Ends of a session (issue 17, backends/lab/owners.py): a lab this session brings up records the
session as its owner. SIGTERM and SIGHUP then interrupt the session like Ctrl-C does, so the
teardown takes the lab down; a session killed outright (SIGKILL) leaves an orphan, which the
next session adopts (it reuses the lab and takes it down at its end) and `virtdeck lab status`
reports.

Tests marked ``lab_cycle`` (tests/lab/cycle_inner.py: they take the lab down and up again) run
first in their session and only on a lab that session brought up itself; the normal suite runs
them in a sandbox (tests/lab/test_lab_cycle.py), never on the shared lab.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Lab:
    """A ready lab. ``hypervisors``: names (hv1..); ``addresses``: host name -> underlay IPv4;
    ``brought_up``: this session started it (and will take it down)."""

    hypervisors: list[str]
    addresses: dict[str, str]
    lab_dir: Path
    brought_up: bool
    users_file: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def identity(self) -> Path:
        return self.lab_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.lab_dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.lab_dir / "inventory.toml"

    def ssh_argv(self, host: str, argv: list[str]) -> list[str]:
        from virtdeck.backends.lab.status import ssh_argv
        return ssh_argv(self.addresses[host], argv)

    def ssh(self, host: str, argv: list[str], check: bool = True, timeout: float = 60):
        """Run ``argv`` on lab ``host`` over real SSH (lab key, strict known_hosts)."""
        return subprocess.run(self.ssh_argv(host, argv), capture_output=True, text=True,
                              check=check, timeout=timeout)

    def run_in(self, host: str, argv: list[str], check: bool = True):
        """Run ``argv`` inside lab ``host`` via nsenter (no SSH)."""
        from virtdeck.backends.lab.hosts import run_in
        return run_in(host, argv, check=check)

    @property
    def flavour(self) -> str:
        """The lab's OVN flavour ("standalone" or "cluster-ssl", from its state.json)."""
        from virtdeck.backends.lab.central import flavour
        return flavour()

    def nbctl(self, *args: str, timeout: int = 10, check: bool = True) -> str:
        """``ovn-nbctl ARGS`` against the lab's NB whatever its flavour (tcp, or the ssl member
        list with the operator's certificate: backends/lab/central.ctl); its stdout, stripped.
        LabError (command and stderr) when ``check`` and it fails."""
        from virtdeck.backends.lab.central import ctl
        return ctl("nb", list(args), timeout=timeout, check=check).stdout.strip()

    def sbctl(self, *args: str, timeout: int = 10, check: bool = True) -> str:
        """``ovn-sbctl ARGS`` against the lab's SB, like :meth:`nbctl`."""
        from virtdeck.backends.lab.central import ctl
        return ctl("sb", list(args), timeout=timeout, check=check).stdout.strip()

    def libvirt_uri(self, host: str) -> str:
        """``qemu+libssh://`` URI of ``host``'s libvirtd: the lab key, host key checked against
        the lab's known_hosts (libvirt's ``qemu+ssh://`` runs the ssh binary, which ignores
        ``known_hosts=``; its ``no_verify=1`` writes keys into ~/.ssh/known_hosts)."""
        from virtdeck.backends.lab.status import libvirt_ssh_uri
        return libvirt_ssh_uri(self.addresses[host])


def _users_dir() -> Path:
    from virtdeck.backends.lab.state import lab_dir
    return lab_dir().parent / "lab-users"


def _other_users() -> list[int]:
    from virtdeck.backends.lab.state import pid_alive
    out = []
    d = _users_dir()
    if d.is_dir():
        for f in d.iterdir():
            if not f.name.isdigit() or int(f.name) == os.getpid():
                continue
            if pid_alive(int(f.name)):
                out.append(int(f.name))
            else:
                f.unlink(missing_ok=True)  # a session that crashed before its teardown
    return out


def _describe(n: int, brought_up: bool) -> Lab:
    from virtdeck.backends.lab import topology as topo
    from virtdeck.backends.lab.state import lab_dir
    hvs = topo.hypervisors(n)
    addrs = {"central": topo.CENTRAL_ADDRESS, **{h.name: h.address for h in hvs}}
    return Lab([h.name for h in hvs], addrs, lab_dir(), brought_up)


def pytest_configure(config):
    config.addinivalue_line("markers", "lab_cycle: takes the lab down and up (runs first, only on "
                                       "a lab this session brought up)")


def pytest_collection_modifyitems(session, config, items):
    cycle = [i for i in items if i.get_closest_marker("lab_cycle")]
    rest = [i for i in items if not i.get_closest_marker("lab_cycle")]
    items[:] = cycle + rest


@pytest.fixture(scope="session")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    import signal

    from virtdeck.backends.lab.owners import interrupt_on_signals, is_orphan, owner_record
    from virtdeck.backends.lab.state import lab_lock, load_state, save_state
    from virtdeck.backends.lab.status import check
    from virtdeck.backends.lab.up import up
    st = check()
    brought_up = False
    if not st.ready or st.hypervisors < 2:  # tests may assume two hypervisors
        state = load_state()
        had_lab = bool(state.get("holders")) and not is_orphan(state.get("owner"))
        st = up(max(st.hypervisors, 2), log=lambda m: None, owner=os.getpid())
        brought_up = not had_lab
    elif is_orphan(load_state().get("owner")):
        with lab_lock():  # adopt a lab whose session was killed: this one takes it down
            state = load_state()
            if is_orphan(state.get("owner")):
                state["owner"] = owner_record(os.getpid())
                save_state(state)
                brought_up = True
    users = _users_dir()
    users.mkdir(parents=True, exist_ok=True)
    me = users / str(os.getpid())
    me.write_text("")
    info = _describe(st.hypervisors, brought_up)
    info.users_file = me
    try:
        # SIGTERM/SIGHUP end the session like Ctrl-C (teardown runs) while it owns a lab.
        with interrupt_on_signals((signal.SIGTERM, signal.SIGHUP)):
            yield info
    finally:
        me.unlink(missing_ok=True)
        if info.brought_up and not os.environ.get("VIRTDECK_LAB_KEEP") and not _other_users():
            from virtdeck.backends.lab.down import down
            down(log=lambda m: None)
