"""`vm delete` never reports a delete that did not happen (issue 16, item 1).

A VM is defined on the lab's hv2 (domain, two volumes, an LSP). The CLI then runs with a throwaway
copy of the lab's inventory in which hv2 does not answer, while hv1 does:

- unreachable: hv2's address is one nothing answers on in the lab range (192.168.100.19);
- frozen libvirtd: hv2 is a real sshd on 127.0.0.1 whose ``libvirt_socket`` is a unix socket that
  accepts connections and never answers (what a SIGSTOPped libvirtd looks like to a client).

Either way the delete must fail (non-zero exit) within a bounded time, name hv2, leave the domain,
its volumes and its LSP in place, and write a "failed" audit record. The shared lab's daemons are
never touched: only the CLI's view of hv2 is cut.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from provision_helpers import lab_inventory, lab_session  # noqa: F401 (fixtures)
from vm_lab_helpers import leftovers, make_vm, net  # noqa: F401 (net: fixture)

pytestmark = pytest.mark.lab

VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))
CONNECT_TIMEOUT = 3   # VIRTDECK_CONNECT_TIMEOUT for the CLI: locate waits 2*3+10 s at most
BOUND = 40.0          # seconds: lookup wait (16 s) + start-up, NB connect and slack on a busy box


def _inventory_with_hv2(lab_inventory, tmp_path: Path, **hv2) -> Path:
    """A copy of the lab's inventory with hv2's entry changed by ``hv2`` (address, port, …)."""
    data = tomllib.loads(Path(lab_inventory.path).read_text())
    for h in data["hosts"]:
        if h["name"] == "hv2":
            h.update(hv2)
    path = tmp_path / "inventory.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def _delete(inv_path: Path, audit_log: Path, name: str) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, VIRTDECK_AUDIT_LOG=str(audit_log), VIRTDECK_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT))
    t0 = time.monotonic()
    p = subprocess.run([VIRTDECK, "--config", str(inv_path), "vm", "delete", name, "--yes"],
                       capture_output=True, text=True, timeout=150, env=env)
    return p, time.monotonic() - t0


def _audit(audit_log: Path) -> list[dict]:
    return [json.loads(line) for line in audit_log.read_text().splitlines()] if audit_log.exists() else []


@pytest.fixture
def vm_on_hv2(lab_session, lab_inventory, net):
    """A defined VM on hv2 (``(name, lsp)``), deleted through the real lab afterwards."""
    name = f"truth{os.getpid() % 10000}"
    lsp = make_vm(lab_session, lab_inventory, net, "hv2", name)
    yield name, lsp
    from virtdeck.console.services import vm_delete
    vm_delete.delete(lab_session, name, missing_ok=True)
    assert leftovers(lab_session, lab_inventory, name, [lsp]) == []


def _assert_untouched(lab_session, lab_inventory, name, lsp):
    left = leftovers(lab_session, lab_inventory, name, [lsp])
    assert sorted(left) == sorted([f"hv2: domain {name}", f"hv2: volume {name}.qcow2",
                                   f"hv2: volume {name}-seed.iso", f"LSP {lsp}"]), left


def test_delete_with_the_vms_host_unreachable_fails_and_removes_nothing(
        lab_session, lab_inventory, vm_on_hv2, tmp_path):
    name, lsp = vm_on_hv2
    inv = _inventory_with_hv2(lab_inventory, tmp_path, address="192.168.100.19")
    audit_log = tmp_path / "audit.jsonl"
    for argv_extra in ((), ("--missing-ok",)):
        env = dict(os.environ, VIRTDECK_AUDIT_LOG=str(audit_log), VIRTDECK_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT))
        t0 = time.monotonic()
        p = subprocess.run([VIRTDECK, "--config", str(inv), "vm", "delete", name, "--yes", *argv_extra],
                           capture_output=True, text=True, timeout=150, env=env)
        took = time.monotonic() - t0
        print(f"unreachable hv2 {argv_extra}: rc {p.returncode} after {took:.1f} s: {p.stderr.strip()}")
        assert p.returncode != 0, p.stdout
        assert "hv2" in p.stderr and "not deleted" in p.stderr and "Traceback" not in p.stderr
        assert took < BOUND
        _assert_untouched(lab_session, lab_inventory, name, lsp)
    recs = _audit(audit_log)
    assert [r["verb"] for r in recs] == ["vm.delete", "vm.delete"]
    assert all(r["outcome"].startswith("failed") and "hv2" in r["outcome"] for r in recs), recs


def test_delete_with_the_vms_libvirtd_frozen_fails_within_a_bound(
        lab_session, lab_inventory, vm_on_hv2, sshd, tmp_path):
    name, lsp = vm_on_hv2
    # A socket that accepts (the kernel's backlog) and never answers: a frozen libvirtd.
    sock_path = tmp_path / "frozen-libvirt.sock"
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(sock_path))
    silent.listen(16)
    try:
        inv = _inventory_with_hv2(lab_inventory, tmp_path, address=sshd.address, port=sshd.port,
                                  user=sshd.user, identity=str(sshd.client_key),
                                  known_hosts=str(sshd.known_hosts), libvirt_socket=str(sock_path))
        audit_log = tmp_path / "audit.jsonl"
        p, took = _delete(inv, audit_log, name)
        print(f"frozen libvirtd on hv2: rc {p.returncode} after {took:.1f} s: {p.stderr.strip()}")
        assert p.returncode != 0, p.stdout
        assert "hv2" in p.stderr and "no answer" in p.stderr and "Traceback" not in p.stderr
        assert took < BOUND
        _assert_untouched(lab_session, lab_inventory, name, lsp)
        recs = _audit(audit_log)
        assert len(recs) == 1 and recs[0]["outcome"].startswith("failed") and "hv2" in recs[0]["outcome"]
    finally:
        silent.close()


def test_delete_with_the_vms_host_disabled_removes_nothing(lab_session, lab_inventory, vm_on_hv2, tmp_path):
    """A host in maintenance (enabled = false) is not searched, but its VMs run and hold ports:
    "not found on the enabled hosts" must not remove the VM's OVN rows."""
    name, lsp = vm_on_hv2
    inv = _inventory_with_hv2(lab_inventory, tmp_path, enabled=False)
    audit_log = tmp_path / "audit.jsonl"
    p, took = _delete(inv, audit_log, name)
    print(f"disabled hv2: rc {p.returncode} after {took:.1f} s: {p.stderr.strip()}")
    assert p.returncode != 0, p.stdout
    assert "hv2" in p.stderr and "not deleted" in p.stderr and "--host hv2" in p.stderr
    _assert_untouched(lab_session, lab_inventory, name, lsp)
    assert [r["outcome"].startswith("failed") for r in _audit(audit_log)] == [True]
