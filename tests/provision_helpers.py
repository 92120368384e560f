"""Helpers for the VM-create tests (issue 4): the lab's inventory/session, leftovers listing.

``lab_inventory`` uses the session ``lab`` fixture when tests/conftest.py provides one (it reuses
or brings up the lab); otherwise it loads the running lab's inventory and skips when there is none.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from virtdeck.config.inventory import Inventory, load


def _lab_inventory(request) -> Inventory:
    try:
        lab = request.getfixturevalue("lab")
    except pytest.FixtureLookupError:
        lab = None
    if isinstance(lab, Inventory):
        return lab
    inv = getattr(lab, "inventory", None) if lab is not None else None
    if isinstance(inv, Inventory):
        return inv
    if isinstance(inv, (str, Path)):
        return load(inv)  # tests/fixtures_lab.py: Lab.inventory is the TOML path
    if lab is not None and isinstance(lab, (str, Path)):
        return load(lab)
    from virtdeck.backends.lab.state import lab_dir
    path = lab_dir() / "inventory.toml"
    if not path.exists():
        pytest.skip("the lab is not up (virtdeck lab up)")
    return load(path)


@pytest.fixture(scope="module")
def lab_inventory(request) -> Inventory:
    """The lab's Inventory (module scope)."""
    return _lab_inventory(request)


def roomy(inventory: Inventory, cpu_ratio: float = 1000.0, ram_ratio: float = 100.0) -> Inventory:
    """``inventory`` with allocation ratios so generous that other engineers' domains on the shared
    lab (a bench defines 1000s of shut-off domains) do not fill the hosts for tests that are not
    about capacity. Real free RAM is still checked."""
    from dataclasses import replace
    from virtdeck.config.inventory import AllocationConfig
    return replace(inventory, allocation=AllocationConfig(cpu_ratio=cpu_ratio, ram_ratio=ram_ratio))


@pytest.fixture(scope="module")
def roomy_inventory(lab_inventory) -> Inventory:
    """:func:`roomy` of the lab's inventory (module scope)."""
    return roomy(lab_inventory)


@pytest.fixture(scope="module")
def lab_session(lab_inventory):
    """A Session on the lab (module scope), closed afterwards."""
    from virtdeck.backends.session import Session
    s = Session(lab_inventory)
    yield s
    s.close()


def leftovers(session, inventory, tenant: str, vm: str) -> dict:
    """What a VM named ``vm`` left behind: domains, volumes starting with ``vm``, LSPs."""
    from virtdeck.backends.ovn import ports as ovn_ports
    out: dict = {"domains": [], "volumes": [], "ports": []}
    for h in inventory.hypervisors:
        conn = session.libvirt(h.name)
        out["domains"] += [f"{h.name}:{d.name()}" for d in conn.listAllDomains(0) if d.name() == vm]
        for t in {t.pool for t in inventory.templates} or {"virtdeck"}:
            pool = conn.storagePoolLookupByName(t)
            pool.refresh(0)
            out["volumes"] += [f"{h.name}:{v.name()}" for v in pool.listAllVolumes(0)
                               if v.name().startswith(vm + ".") or v.name().startswith(vm + "-")]
    out["ports"] = [p.name for p in ovn_ports.ports_of_vm(session.nb(), tenant, vm)]
    return out


def remove_vm(session, inventory, tenant: str, vm: str) -> None:
    """Test clean-up: destroy + undefine domain ``vm`` wherever it is, delete its volumes
    (``vm.qcow2``, ``vm-seed.iso``) and its LSPs. Idempotent."""
    import libvirt
    from virtdeck.backends import storage
    from virtdeck.backends.ovn import ports as ovn_ports
    for h in inventory.hypervisors:
        conn = session.libvirt(h.name)
        try:
            dom = conn.lookupByName(vm)
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        except libvirt.libvirtError:
            pass
        for pool in {t.pool for t in inventory.templates} or {"virtdeck"}:
            for name in (f"{vm}.qcow2", f"{vm}-seed.iso"):
                storage.delete_volume(conn, h.name, pool, name)
    nb = session.nb()
    for p in ovn_ports.ports_of_vm(nb, tenant, vm):
        ovn_ports.delete_port(nb, p.name)
