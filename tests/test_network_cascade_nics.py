"""`network delete --cascade` also detaches the domains' NICs bound to the deleted ports: live +
config on a running domain (a real TCG guest answers the PCI unplug), config on a stopped one;
the switch leaves the domains' <virtdeck:instance> networks metadata. Lab, one guest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import libvirt
import pytest

from virtdeck.backends import domain_xml as dx
from virtdeck.backends.ovn import networks as ovn_networks
from virtdeck.console.services import vm_lookup
from provision_helpers import lab_inventory, lab_session, remove_vm  # noqa: F401
from vm_lab_helpers import make_vm

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TENANT = "vmops"
VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))


def _wait(pred, timeout, step=1.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_cascade_detaches_nics(lab_session, lab_inventory, tmp_path):
    nb = lab_session.nb()
    net_name = f"casc{uuid.uuid4().hex[:4]}"
    keep_name = f"keep{uuid.uuid4().hex[:4]}"
    net = ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=TENANT, name=net_name, kind="overlay", cidr="10.69.0.0/24", gateway="10.69.0.1"))
    keep = ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=TENANT, name=keep_name, kind="overlay", cidr="10.70.0.0/24", gateway="10.70.0.1"))
    stopped, running, bystander = (f"casc-{uuid.uuid4().hex[:4]}" for _ in range(3))
    try:
        lsp_s = make_vm(lab_session, lab_inventory, net, "hv1", stopped)
        lsp_r = make_vm(lab_session, lab_inventory, net, "hv2", running)
        make_vm(lab_session, lab_inventory, keep, "hv1", bystander)  # another network: untouched
        dom_s = lab_session.libvirt("hv1").lookupByName(stopped)
        dom_r = lab_session.libvirt("hv2").lookupByName(running)
        dom_b = lab_session.libvirt("hv1").lookupByName(bystander)
        dom_r.create()
        # the guest's kernel must be up to answer the PCI unplug: its balloon driver reporting
        # its own figures is the sign
        dom_r.setMemoryStatsPeriod(2, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        assert _wait(lambda: "available" in dom_r.memoryStats(), 240, 2), dom_r.memoryStats()

        env = dict(os.environ, VIRTDECK_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
        p = subprocess.run([VIRTDECK, "--config", str(lab_inventory.path), "--json", "network", "delete",
                            net_name, "--tenant", TENANT, "--cascade"], capture_output=True, text=True,
                           timeout=120, env=env)
        assert p.returncode == 0, (p.stdout, p.stderr)
        out = json.loads(p.stdout)
        got = sorted((d["vm"], d["host"], d["lsp"], d["live"]) for d in out["nics_detached"])
        assert got == sorted([(stopped, "hv1", lsp_s, False), (running, "hv2", lsp_r, True)]), out
        assert out["nic_problems"] == []

        inactive = lambda d: vm_lookup.domain_facts(d, inactive=True)  # noqa: E731
        assert inactive(dom_s).nics == () and inactive(dom_r).nics == ()
        assert _wait(lambda: vm_lookup.domain_facts(dom_r).nics == (), 60), dom_r.XMLDesc(0)  # gone live
        assert dom_r.isActive()
        for d in (dom_s, dom_r):
            assert net.switch not in dx.parse_metadata(d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).networks
        assert len(inactive(dom_b).nics) == 1
        assert keep.switch in dx.parse_metadata(dom_b.XMLDesc(0)).networks
        audit = [json.loads(l) for l in (tmp_path / "audit.jsonl").read_text().splitlines()]
        rec = audit[-1]
        assert rec["verb"] == "network.delete" and rec["outcome"] == "ok"
        assert sorted(rec.get("details", rec)["nics_detached"]) == sorted(
            f"{d['vm']}@{d['host']}:{d['mac']}" for d in out["nics_detached"])
    finally:
        for n in (stopped, running, bystander):
            remove_vm(lab_session, lab_inventory, TENANT, n)
        for n in (net_name, keep_name):
            try:
                ovn_networks.delete_network(nb, TENANT, n, cascade=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
