"""Fast tests of the VM verbs (console/services/vm_ops.py) without the lab.

libvirt is the real libvirt library with its ``test://`` driver (a private node per host, from
a node XML), OVN NB is a real ovsdb-server with the OVN NB schema (``nb_server`` fixture). The
lab tests (tests/test_vm_ops_lab.py) prove the same verbs on real hypervisors.
"""

from __future__ import annotations

import libvirt
import pytest

from virtdeck.console.errors import HostError, ReadOnlyError, ValidationError, VirtdeckError
from virtdeck.console.services import guard, verb, vm_delete, vm_lookup, vm_power, vm_resize
from vm_helpers import DriverSession, lsp_names, make_vm, records


@pytest.fixture
def audit_log(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(path))
    yield path
    guard.set_readonly(False)


@pytest.fixture
def sess(tmp_path, nb_server, audit_log):
    s = DriverSession(tmp_path, nb_server.unix)
    yield s
    s.close()


# ---------------------------------------------------------------------------------------------


def test_lifecycle_idempotent_and_audited(sess, audit_log):
    make_vm(sess, "hv2", "web1")
    r = vm_power.start(sess, "web1")
    assert (r.outcome, r.host) == ("ok", "hv2")
    assert vm_power.start(sess, "web1").outcome == "noop"
    assert vm_power.suspend(sess, "web1").outcome == "ok"
    assert vm_power.suspend(sess, "web1").outcome == "noop"
    assert vm_lookup.status(sess, "web1")["state"] == "paused"
    with pytest.raises(vm_lookup.VmStateError, match="paused"):
        vm_power.shutdown(sess, "web1")
    assert vm_power.resume(sess, "web1").outcome == "ok"
    assert vm_power.resume(sess, "web1").outcome == "noop"
    assert vm_power.reboot(sess, "web1", timeout=0).outcome == "ok"  # the test driver sends no reset event
    assert vm_power.shutdown(sess, "web1", timeout=5).outcome == "ok"
    assert vm_power.shutdown(sess, "web1").outcome == "noop"
    assert vm_power.poweroff(sess, "web1").outcome == "noop"
    with pytest.raises(vm_lookup.VmStateError, match="not running"):
        vm_power.reboot(sess, "web1")
    with pytest.raises(vm_lookup.VmStateError):
        vm_power.resume(sess, "web1")
    recs = records(audit_log)
    assert [r["verb"] for r in recs] == ["vm.start", "vm.start", "vm.suspend", "vm.suspend", "vm.shutdown",
                                        "vm.resume", "vm.resume", "vm.reboot", "vm.shutdown", "vm.shutdown",
                                        "vm.poweroff", "vm.reboot", "vm.resume"]
    assert [r["outcome"] for r in recs[:2]] == ["ok", "noop"]
    assert recs[4]["outcome"].startswith("failed: web1 on hv2 is paused")
    for r in recs:
        assert r["target"] == "vm demo/web1" and r["details"]["host"] == "hv2"
        assert r["time"] and "@" in r["operator"]


def test_not_found_names_hosts_and_unreachable(tmp_path, nb_server, audit_log):
    s = DriverSession(tmp_path, nb_server.unix, hosts=("hv1", "hv2", "hv3"), down=("hv3",))
    try:
        with pytest.raises(vm_lookup.VmNotFound) as ei:
            vm_power.start(s, "ghost")
        assert "no VM named ghost on hv1, hv2" in str(ei.value)
        assert "not reachable: hv3: cannot connect" in str(ei.value)
        with pytest.raises(HostError, match="hv3: cannot connect"):
            vm_power.start(s, "ghost", host="hv3")
        assert records(audit_log)[-1]["outcome"].startswith("failed: hv3: cannot connect")
    finally:
        s.close()


def test_readonly_refuses_and_changes_nothing(sess, audit_log):
    make_vm(sess, "hv1", "ro1")
    guard.set_readonly(True)
    for fn in (vm_power.start, vm_delete.delete, vm_power.poweroff):
        with pytest.raises(ReadOnlyError):
            fn(sess, "ro1")
    assert isinstance(verb.bulk(vm_power.start, sess, ["ro1"])[0], ReadOnlyError)
    guard.set_readonly(False)
    assert vm_lookup.status(sess, "ro1")["state"] == "shutoff"
    assert all(r["outcome"].startswith("failed: vm.") for r in records(audit_log))


def test_delete_removes_domain_volumes_ports_dhcp_nat(sess, audit_log):
    lsp = make_vm(sess, "hv1", "db1", nat="172.24.4.50")
    keep = make_vm(sess, "hv1", "db2", ip="10.0.0.6")
    conn = sess.conns["hv1"]
    pool = conn.storagePoolLookupByName("virtdeck")
    vm_power.start(sess, "db1")
    r = vm_delete.delete(sess, "db1")
    assert r.outcome == "ok"
    assert sorted(r.details["volumes"]) == ["db1-seed.iso", "db1.qcow2"]
    assert r.details["ports"] == [lsp] and len(r.details["dhcp"]) == 1 and len(r.details["nats"]) == 1
    # Nothing of db1 is left, and db2 is untouched.
    assert [d.name() for d in conn.listAllDomains()] == ["db2"]
    assert sorted(pool.listVolumes()) == ["db2-seed.iso", "db2.qcow2"]
    nb = sess.nb()
    assert lsp_names(nb) == {keep}
    assert [r.external_ids for r in nb.tables["DHCP_Options"].rows.values()] == [{"virtdeck:vm": "db2"}]
    assert all(not lr.nat for lr in nb.tables["Logical_Router"].rows.values())
    with pytest.raises(vm_lookup.VmNotFound):
        vm_delete.delete(sess, "db1")
    assert vm_delete.delete(sess, "db1", missing_ok=True).outcome == "noop"


def test_delete_cleans_ovn_leftovers_without_domain(sess):
    make_vm(sess, "hv1", "half")
    sess.conns["hv1"].lookupByName("half").undefine()
    r = vm_delete.delete(sess, "half")
    assert r.outcome == "ok" and "leftover" in r.message
    assert lsp_names(sess.nb()) == set()


def test_delete_keeps_template_volume(sess):
    conn = sess.conns["hv1"]
    pool = conn.storagePoolLookupByName("virtdeck")
    base = pool.createXML("<volume><name>debian12.qcow2</name><capacity>1048576</capacity></volume>", 0)
    conn.defineXML(f"""<domain type='test'><name>raw1</name><memory>262144</memory><vcpu>1</vcpu>
      <os><type>hvm</type></os><devices><disk type='file' device='disk'><source file='{base.path()}'/>
      <target dev='vda'/></disk></devices></domain>""")
    r = vm_delete.delete(sess, "raw1")
    assert r.details["kept"] == [base.path()] and r.details["volumes"] == []
    assert pool.listVolumes() == ["debian12.qcow2"]


def test_ip_from_ovn(sess):
    lsp = make_vm(sess, "hv2", "app1", ip="10.0.0.9", mac="52:54:00:aa:bb:cc")
    out = vm_lookup.ip(sess, "app1")
    assert out == [{"mac": "52:54:00:aa:bb:cc", "lsp": lsp, "switch": "net1",
                    "addresses": ["52:54:00:aa:bb:cc 10.0.0.9"], "dynamic_addresses": None,
                    "ips": ["10.0.0.9"], "up": None}]


def test_resize_offline_and_placement(sess, audit_log):
    make_vm(sess, "hv1", "big", vcpus=1, max_vcpus=2, mem=256, max_mem=512)
    r = vm_resize.resize(sess, "big", vcpus=4, memory_mib=1024)
    assert r.outcome == "ok" and r.details["applied"] == {"vcpus": "next boot", "memory": "next boot"}
    st = vm_lookup.status(sess, "big")
    assert (st["vcpus"], st["max_vcpus"], st["memory_mib"], st["max_memory_mib"]) == (4, 4, 1024, 1024)
    assert vm_resize.resize(sess, "big", vcpus=4).outcome == "noop"
    # 2 cores x cpu_ratio 4 = 8 vCPUs; the node has 4096 MiB.
    with pytest.raises(VirtdeckError, match=r"hv1 cannot hold big .*vcpus: 0 allocated \+ 9 asked > 8"):
        vm_resize.resize(sess, "big", vcpus=9)
    with pytest.raises(VirtdeckError, match="ram:"):
        vm_resize.resize(sess, "big", memory_mib=8192)
    with pytest.raises(ValidationError):
        vm_resize.resize(sess, "big", vcpus=0)
    st = vm_lookup.status(sess, "big")
    assert (st["vcpus"], st["memory_mib"]) == (4, 1024)
    assert [r["outcome"][:6] for r in records(audit_log)] == ["ok", "noop", "failed", "failed"]


def test_resize_live_within_maximum(sess):
    make_vm(sess, "hv1", "live1", vcpus=1, max_vcpus=2, mem=256, max_mem=512)
    vm_power.start(sess, "live1")
    # The test driver reports no free host memory: a running VM may shrink (its own share is
    # counted back), growing is proven on the lab.
    r = vm_resize.resize(sess, "live1", memory_mib=200)
    assert r.details["applied"] == {"memory": "now"}
    assert vm_lookup.status(sess, "live1")["memory_mib"] == 200
    with pytest.raises(VirtdeckError, match="only 200 MiB free now, 1024 asked"):
        vm_resize.resize(sess, "live1", memory_mib=1024)


def test_bulk(sess, audit_log):
    make_vm(sess, "hv1", "b1")
    make_vm(sess, "hv2", "b2")
    out = verb.bulk(vm_power.start, sess, ["b1", "b2", "nope"])
    assert [o.outcome for o in out[:2]] == ["ok", "ok"]
    assert isinstance(out[2], vm_lookup.VmNotFound)
    out = verb.bulk(vm_delete.delete, sess, ["b1", "b2"])
    assert all(o.outcome == "ok" for o in out)
    assert len(records(audit_log)) == 5


def test_instance_metadata_is_accepted_by_libvirt_setmetadata():
    """libvirt's own test driver: setMetadata refuses an element declaring the namespace, so
    metadata_xml must give it bare (vm edit-config and network delete --cascade write it)."""
    from virtdeck.backends import domain_xml as dx
    from virtdeck.backends import domains

    meta = dx.InstanceMeta("t1", "debian12", "iid-1", ("vd.t1.a", "vd.t1.b"))
    dom = libvirt.open("test:///default").lookupByName("test")
    domains.set_instance_meta(dom, "test", meta, live=True)
    assert dx.parse_metadata(dom.XMLDesc(0)) == meta
    assert dx.parse_metadata(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, dx.NS)) == meta
