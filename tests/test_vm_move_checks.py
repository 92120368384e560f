"""`vm move` re-checks placement on the target BEFORE copying anything (lab; domains only defined,
never started): a provider network's physnet missing from the target's bridge mappings, too little
capacity for the allocation ratios, an anti-affinity group member already there.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from virtdeck.backends import storage
from virtdeck.backends.ovn import networks as ovn_networks
from virtdeck.backends.session import Session
from virtdeck.config.inventory import AllocationConfig
from virtdeck.console.errors import VirtdeckError
from virtdeck.console.services import provision as pv
from virtdeck.console.services import vm_move
from virtdeck.backends.ovn import vm_ports
from provision_helpers import lab_inventory, lab_session, remove_vm  # noqa: F401
from vm_lab_helpers import make_vm

pytestmark = pytest.mark.lab

TENANT = "vmops"  # make_vm tags ports with this tenant


@pytest.fixture(scope="module")
def nets(lab_session):
    nb = lab_session.nb()
    sfx = uuid.uuid4().hex[:4]
    over = ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=TENANT, name=f"mvo{sfx}", kind="overlay", cidr="10.67.0.0/24", gateway="10.67.0.1"))
    prov = ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=TENANT, name=f"mvp{sfx}", kind="provider", cidr="10.68.0.0/24", gateway="10.68.0.1",
        physnet="physnet9", vlan=309, mtu=1500))
    yield over, prov
    for n in (over, prov):
        ovn_networks.delete_network(nb, TENANT, n.name, cascade=True)


def _volumes(session, host, name):
    return [v.name for v in storage.list_volumes(session.libvirt(host), host, "virtdeck")
            if v.name in (f"{name}.qcow2", f"{name}-seed.iso")]


def test_move_refuses_before_copying(lab_session, lab_inventory, nets, tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    over, prov = nets
    a, b, c = (f"mvchk-{uuid.uuid4().hex[:4]}" for _ in range(3))
    try:
        # 1. physnet: the VM is on a provider network of physnet9; no lab host maps it
        make_vm(lab_session, lab_inventory, prov, "hv1", a)
        assert vm_ports.vm_physnets(lab_session.nb(), a, ()) == {"physnet9": [prov.switch]}
        with pytest.raises(VirtdeckError) as e:
            vm_move.move(lab_session, a, "hv2")
        msg = str(e.value)
        assert msg.startswith(f"cannot move {a} to hv2: physnet: no bridge mapping for physnet9 "
                              "(host maps: physnet1)") and msg.endswith("nothing was copied"), msg
        assert _volumes(lab_session, "hv2", a) == [] and lab_session.libvirt("hv1").lookupByName(a)

        # 2. capacity: ratios that leave no room on the target
        make_vm(lab_session, lab_inventory, over, "hv1", b, vcpus=2)
        tight = dataclasses.replace(lab_inventory, allocation=AllocationConfig(cpu_ratio=0.01, ram_ratio=100))
        with Session(tight) as s:
            with pytest.raises(VirtdeckError, match=rf"cannot move {b} to hv2: vcpus: \d+ allocated \+ 2 asked"):
                vm_move.move(s, b, "hv2")
        assert _volumes(lab_session, "hv2", b) == []

        # 3. anti-affinity: a member of the VM's group already on the target
        import libvirt
        for name, host in ((c, "hv1"), (f"{c}-peer", "hv2")):
            make_vm(lab_session, lab_inventory, over, host, name)
            dom = lab_session.libvirt(host).lookupByName(name)
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, f'<placement group="db-{c[-4:]}"/>',
                            pv.PLACEMENT_PREFIX, pv.PLACEMENT_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        with pytest.raises(VirtdeckError, match=rf"cannot move {c} to hv2: anti-affinity: already holds a member"):
            vm_move.move(lab_session, c, "hv2")
        assert _volumes(lab_session, "hv2", c) == []
    finally:
        for n in (a, b, c, f"{c}-peer"):
            remove_vm(lab_session, lab_inventory, TENANT, n)
