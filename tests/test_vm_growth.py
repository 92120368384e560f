"""Live growth: VMs from `vm create` get vCPU/RAM ceilings above their size, the scheduler counts
their CURRENT size, and `vm resize` grows a running VM live up to the ceiling (lab, one TCG guest).
"""

from __future__ import annotations

import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

import libvirt
import pytest

from virtdeck.backends import domain_xml as dx
from virtdeck.backends import domains
from virtdeck.backends.ovn import networks as ovn_networks, security_groups as ovn_sg
from virtdeck.console import cloudinit
from virtdeck.console.errors import ValidationError
from virtdeck.console.services import placement, provision_checks
from virtdeck.console.services import provision as pv
from virtdeck.console.services import vm_lookup, vm_resize
from provision_helpers import lab_inventory, lab_session, remove_vm, roomy  # noqa: F401


def _spec(**kw):
    base = dict(name="g1", uuid=str(uuid.uuid4()), vcpus=1, memory_mib=256, disk_path="/d.qcow2",
                domain_type="qemu")
    base.update(kw)
    return dx.DomainSpec(**base)


def test_domain_xml_ceilings():
    root = ET.fromstring(dx.domain_xml(_spec(max_vcpus=4, max_memory_mib=1024)))
    assert root.find("vcpu").text == "4" and root.find("vcpu").get("current") == "1"
    assert root.find("memory").text == "1024" and root.find("currentMemory").text == "256"
    assert root.find("devices/memballoon").get("model") == "virtio"
    flat = ET.fromstring(dx.domain_xml(_spec()))
    assert flat.find("vcpu").text == "1" and flat.find("vcpu").get("current") is None
    assert flat.find("memory").text == "256"
    with pytest.raises(ValueError, match="max_vcpus"):
        dx.domain_xml(_spec(vcpus=2, max_vcpus=1))
    with pytest.raises(ValueError, match="max_memory_mib"):
        dx.domain_xml(_spec(max_memory_mib=128))


def test_growth_rule():
    # vCPUs: 4x the size, capped by the host's cores; RAM: 2x, capped by the host's RAM (128 MiB steps)
    assert provision_checks.growth_limits(1, 512, host_cores=2, host_ram_mib=8192) == (2, 1024)
    assert provision_checks.growth_limits(2, 1024, host_cores=32, host_ram_mib=1536) == (8, 1536)
    assert provision_checks.growth_limits(4, 300, host_cores=2, host_ram_mib=8192) == (4, 512)  # never below the size
    assert provision_checks.growth_limits(40, 4096, 128, 0) == (64, 8192)  # MAX_VCPUS; unknown host RAM
    assert provision_checks.growth_limits(2, 512, 16, 8192, max_vcpus=2, max_ram_mib=512) == (2, 512)  # opt out
    with pytest.raises(ValidationError) as e:
        provision_checks.growth_limits(2, 512, 16, 8192, max_vcpus=1)
    assert e.value.field == "max-vcpus"
    with pytest.raises(ValidationError):
        provision_checks.growth_limits(2, 512, 16, 8192, max_ram_mib=256)


def test_placement_counts_the_current_size():
    xml = dx.domain_xml(_spec(vcpus=2, memory_mib=512, max_vcpus=8, max_memory_mib=2048,
                              metadata=dx.InstanceMeta("t1")))
    brief = domains.parse(xml)  # what placement counts (backends.domains.host_capacity)
    assert (brief.vcpus, brief.memory_mib, brief.tenant) == (2, 512, "t1")
    facts = domains.parse(xml)
    assert (facts.vcpus, facts.max_vcpus, facts.memory_mib, facts.max_memory_mib) == (2, 8, 512, 2048)


# --------------------------------------------------------------------------- lab

@pytest.fixture(scope="module")
def tenant(lab_session):
    t = f"tg{uuid.uuid4().hex[:6]}"
    nb = lab_session.nb()
    ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=t, name="net1", kind="overlay", cidr="10.47.0.0/24", gateway="10.47.0.1"))
    yield t
    ovn_networks.delete_network(nb, t, "net1", cascade=True)
    for pg in ovn_sg.list_security_groups(nb, t):
        ovn_sg.delete_security_group(nb, t, pg.name)


def _wait(pred, timeout: float, step: float = 1.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


@pytest.mark.lab
@pytest.mark.slow
def test_running_vm_grows_live(lab_session, lab_inventory, tenant, tmp_path, monkeypatch):
    """Create a 1 vCPU / 256 MiB VM (booting the template under TCG), grow it live to 2 vCPUs and
    512 MiB and read both back from libvirt; a size above the ceiling is config-only and says a
    restart is needed."""
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")], check=True)
    inv = roomy(lab_inventory)
    req = pv.VmRequest(name=f"grow-{uuid.uuid4().hex[:5]}", tenant=tenant, template="debian12", vcpus=1,
                       ram_mib=256, disk_gib=3, networks=("net1",),
                       ssh_keys=((tmp_path / "id.pub").read_text().strip(),),
                       password_hash=cloudinit.hash_password("grow-pass"))
    try:
        res = pv.create_vm(lab_session, inv, req)
        conn = lab_session.libvirt(res.host)
        cores, ram_total = conn.getInfo()[2], conn.getInfo()[1]
        want_v, want_m = provision_checks.growth_limits(1, 256, cores, ram_total)
        dom = conn.lookupByName(req.name)
        assert dom.maxMemory() == want_m * 1024 and dom.vcpusFlags(libvirt.VIR_DOMAIN_VCPU_MAXIMUM) == want_v
        assert dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE) == 1
        # the scheduler's host facts count the current size, not the ceiling
        snap = placement.host_snapshot(lab_session, inv.host(res.host), None)
        assert [(d.vcpus, d.memory_mib) for d in snap.domains if d.name == req.name] == [(1, 256)]
        if want_v < 2:
            pytest.skip(f"{res.host} has {cores} core(s): no vCPU growth possible")
        # the balloon driver must be up in the guest before RAM can move: with a stats period
        # set, the guest's own figures (unused/available) appear once its driver is loaded
        dom.setMemoryStatsPeriod(2, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        t0 = time.monotonic()
        assert _wait(lambda: "available" in dom.memoryStats(), 240, 2), dom.memoryStats()
        print(f"guest balloon driver up {time.monotonic() - t0:.0f} s after create")
        r = vm_resize.resize(lab_session, req.name, vcpus=2, memory_mib=512)
        assert r.outcome == "ok" and r.details["applied"] == {"vcpus": "now", "memory": "now"}, r
        assert dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE) == 2
        assert len(dom.vcpus()[0]) == 2  # two vCPU threads in QEMU now
        assert _wait(lambda: dom.info()[2] == 512 * 1024, 60), dom.info()  # balloon reports 512 MiB
        assert dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_CONFIG) == 2  # and it persists
        big = want_m + 128
        r = vm_resize.resize(lab_session, req.name, memory_mib=big)
        assert r.details["applied"]["memory"].startswith(f"next boot (live maximum is {want_m} MiB")
        assert "restart" in r.message
        assert dom.info()[2] == 512 * 1024 and dom.maxMemory() == want_m * 1024  # live: unchanged
        inactive = vm_lookup.domain_facts(dom, inactive=True)
        assert inactive.memory_mib == big and inactive.max_memory_mib == big
    finally:
        remove_vm(lab_session, lab_inventory, tenant, req.name)
