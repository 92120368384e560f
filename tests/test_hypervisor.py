"""backends.hypervisor: XML/metadata mapping and units (libvirt's test:///default driver, which
runs libvirt's real client library, event loop and test hypervisor), then the real thing on
the lab (libvirtd through the SSH-forwarded socket)."""

from __future__ import annotations

import queue
import time
import uuid

import libvirt
import pytest

from virtdeck.backends import domain_xml as dx
from virtdeck.backends import hypervisor as hv
from virtdeck.backends.domain_facts import parse

META = dx.InstanceMeta(tenant="acme", template="debian12", seed="seed-1",
                       networks=("vd.acme.web", "vd.acme.db"))


def spec(name: str, **kw) -> dx.DomainSpec:
    return dx.DomainSpec(
        name=name, uuid=kw.pop("uuid", str(uuid.uuid4())), vcpus=kw.pop("vcpus", 2),
        memory_mib=kw.pop("memory_mib", 512), disk_path=f"/var/lib/libvirt/images/{name}.qcow2",
        domain_type="qemu",
        nics=(dx.NicSpec(mac="52:54:00:aa:bb:01", interfaceid=str(uuid.UUID(int=1))),),
        metadata=kw.pop("metadata", META), **kw)


def test_parse_domain_xml_reads_metadata_nics_and_units():
    xml = dx.domain_xml(spec("web1", vcpus=3, memory_mib=1536))
    facts = parse(xml)
    assert facts.name == "web1" and facts.vcpus == 3
    assert facts.memory_mib == 1536 and facts.max_memory_mib == 1536      # KiB → MiB
    assert (facts.tenant, facts.template, facts.seed) == ("acme", "debian12", "seed-1")
    assert facts.networks == ("vd.acme.web", "vd.acme.db")
    assert facts.nics[0].mac == "52:54:00:aa:bb:01"
    assert facts.nics[0].interfaceid == str(uuid.UUID(int=1))
    assert facts.domain_type == "qemu"
    assert any(d.device == "disk" and d.source.endswith("web1.qcow2") for d in facts.disks)


def test_parse_domain_xml_without_metadata_and_other_units():
    xml = """<domain type='kvm'><name>plain</name><uuid>%s</uuid>
      <memory unit='GiB'>2</memory><currentMemory unit='MiB'>1024</currentMemory>
      <vcpu placement='static' current='1'>4</vcpu><os><type arch='aarch64'>hvm</type></os>
      </domain>""" % uuid.uuid4()
    facts = parse(xml)
    assert (facts.tenant, facts.template, facts.networks) == (None, None, ())
    assert facts.max_memory_mib == 2048 and facts.memory_mib == 1024
    assert facts.vcpus == 1 and facts.arch == "aarch64"


@pytest.fixture
def testconn():
    hv.ensure_event_loop()
    conn = libvirt.open("test:///default")
    yield conn
    conn.close()


def test_host_facts_units(testconn):
    facts = hv.host_facts(testconn)
    info = testconn.getInfo()
    assert facts.ram_total_mib == info[1]                                   # getInfo(): MiB
    assert facts.ram_free_mib == testconn.getFreeMemory() // (1024 * 1024)  # bytes → MiB
    assert facts.cores == info[2] and facts.arch and facts.hostname


def test_list_domains_and_events(testconn):
    xml = dx.domain_xml(spec("evt-" + uuid.uuid4().hex[:6]))
    q: queue.Queue = queue.Queue()
    reg = hv.register_events(testconn, "t", q.put_nowait)
    try:
        dom = testconn.defineXML(xml)
        ev = q.get(timeout=2)
        assert ev.kind == "defined" and ev.uuid == dom.UUIDString()
        listing = hv.list_domains(testconn, "t")
        vm = next(v for v in listing.vms if v.uuid == dom.UUIDString())
        assert vm.state == "shutoff" and vm.tenant == "acme" and vm.persistent
        assert vm.memory_mib == 512 and vm.vcpus == 2
        # cached XML is reused: no XMLDesc for known domains
        again = hv.list_domains(testconn, "t", listing.xml)
        assert {v.uuid for v in again.vms} == {v.uuid for v in listing.vms}
        dom.create()
        assert q.get(timeout=2).kind == "started"
        vm2, _ = hv.read_domain(testconn, "t", dom.UUIDString())
        assert vm2.state == "running"
        dom.destroy()
        dom.undefine()
        kinds = {q.get(timeout=2).kind, q.get(timeout=2).kind}
        assert kinds == {"stopped", "undefined"}
        assert hv.read_domain(testconn, "t", dom.UUIDString()) is None
    finally:
        hv.unregister_events(testconn, reg)


# ---------------------------------------------------------------------------------------------
# The lab: libvirtd on a lab hypervisor through Session (SSH-forwarded socket)


@pytest.mark.lab
def test_lab_bulk_listing_and_events(lab):
    from virtdeck.backends.session import Session
    from virtdeck.config import inventory

    inv = inventory.load(lab.inventory)
    host = inv.hypervisors[0].name
    with Session(inv) as s:
        conn = s.libvirt(host)
        facts = hv.host_facts(conn)
        assert facts.cores >= 1 and facts.ram_total_mib > 100 and facts.arch == "x86_64"
        q: queue.Queue = queue.Queue()
        reg = hv.register_events(conn, host, q.put_nowait)
        name = "vdtest-" + uuid.uuid4().hex[:6]
        xml = dx.domain_xml(spec(name, memory_mib=64, vcpus=1))
        # change it from outside, with virsh on the host, as an operator would
        t0 = time.monotonic()
        assert s.run(host, f"cat > /tmp/{name}.xml <<'EOF'\n{xml}\nEOF\nvirsh define /tmp/{name}.xml").ok
        try:
            ev = q.get(timeout=5)
            assert ev.kind == "defined" and ev.name == name
            assert time.monotonic() - t0 < 5
            listing = hv.list_domains(conn, host)
            vm = next(v for v in listing.vms if v.name == name)
            assert vm.state == "shutoff" and vm.tenant == "acme" and vm.host == host
            # the stats call never turns a state into something else when CPU stats fail
            recs, _cpu_ok = hv.bulk_stats(conn)
            assert {r.uuid: r.state for r in recs}[vm.uuid] == "shutoff"
            # one `cat` of the definitions gives what XMLDesc gives for a shut-off domain
            from dataclasses import replace
            configs = hv.fetch_config_xml(lambda argv: s.run(host, argv))
            rpc = parse(conn.lookupByUUIDString(vm.uuid).XMLDesc(0))
            assert configs[vm.uuid] == replace(rpc, xml="")
            listing = hv.list_domains(conn, host, config_xml=lambda: configs, config_min=1)
            assert next(v for v in listing.vms if v.uuid == vm.uuid) == vm
        finally:
            s.run(host, f"virsh undefine {name}; rm -f /tmp/{name}.xml")
            hv.unregister_events(conn, reg)
        assert any(e.kind == "undefined" for e in iter_queue(q, 5))


def iter_queue(q: queue.Queue, timeout: float):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            yield q.get(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            return
