"""Helpers for VM tests on the lab: define a VM the way the provisioning service builds one
(qcow2 overlay on the lab's debian12 template, NoCloud seed ISO, LSP named by a UUID, direct
kernel boot, type 'qemu') without starting it, and list what a VM left behind.

Used by tests/test_vm_ops_lab.py, test_vm_actions_tui.py, test_vm_move_checks.py and
test_network_cascade_nics.py.
"""

from __future__ import annotations

import time
import uuid

import pytest

from virtdeck.backends import domain_xml, seed, storage
from virtdeck.backends.ovn import networks as ovn_networks, ports as ovn_ports
from virtdeck.console import cloudinit

TENANT = "vmops"        # every VM and port these helpers make is this tenant's
NET = "net1"            # the overlay network the lab VM tests share
POOL = "virtdeck"       # the libvirt storage pool on each lab hypervisor
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@vmops")
HASH = "$6$rounds=656000$abcdefgh$" + "x" * 86   # SHA-512 crypt in shape only (the seed wants a hash)


@pytest.fixture(scope="module")
def net(lab_session):
    """The overlay network ``NET`` (10.66.0.0/24, gateway .1) of tenant ``TENANT`` on the lab's NB,
    created for the importing module (create_network is idempotent: a leftover one is reused)."""
    nb = lab_session.nb()
    spec = ovn_networks.NetworkSpec(tenant=TENANT, name=NET, kind="overlay", cidr="10.66.0.0/24",
                                    gateway="10.66.0.1")
    return ovn_networks.create_network(nb, spec)


def make_vm(session, inv, net, host, name, vcpus=1, memory_mib=256, max_vcpus=None, max_memory_mib=None,
            serial_log=None):
    """Define a VM on ``host`` like the provisioning service does; returns its LSP name."""
    conn = session.libvirt(host)
    nb = session.nb()
    t = inv.template("debian12")
    for vol in (f"{name}.qcow2", f"{name}-seed.iso"):
        storage.delete_volume(conn, host, POOL, vol)
    port = ovn_ports.create_vm_port(nb, net, tenant=TENANT, vm=name, nic=0)
    disk = storage.create_overlay(conn, host, POOL, f"{name}.qcow2", t.volume, 2)
    sd = cloudinit.build_seed(name, "debian", HASH, [KEY], [port.mac])
    iso = storage.upload_volume(conn, host, POOL, f"{name}-seed.iso",
                                seed.build_nocloud_iso(sd.meta_data, sd.user_data, sd.network_config))
    path = lambda v: storage.find_volume(conn, host, POOL, v).path()  # noqa: E731
    spec = domain_xml.DomainSpec(
        name=name, uuid=str(uuid.uuid4()), vcpus=vcpus, memory_mib=memory_mib, disk_path=disk.path,
        seed_path=iso.path, domain_type="qemu", kernel=path(t.kernel), initrd=path(t.initrd),
        cmdline=t.cmdline, nics=(domain_xml.NicSpec(port.mac, port.name, mtu=net.mtu),),
        metadata=domain_xml.InstanceMeta(TENANT, "debian12", f"{name}-seed.iso", (net.switch,)),
        serial_log=serial_log)
    xml = domain_xml.domain_xml(spec)
    if max_vcpus:
        xml = xml.replace(f"<vcpu placement=\"static\">{vcpus}</vcpu>",
                          f"<vcpu placement=\"static\" current=\"{vcpus}\">{max_vcpus}</vcpu>")
    if max_memory_mib:
        xml = xml.replace(f"<memory unit=\"MiB\">{memory_mib}</memory>",
                          f"<memory unit=\"MiB\">{max_memory_mib}</memory>")
    conn.defineXML(xml)
    return port.name


def leftovers(session, inv, name, lsps=()):
    """Everything of VM ``name`` still in libvirt (domains, volumes) or OVN (LSPs, NAT, DHCP)."""
    out = []
    for h in inv.hypervisors:
        conn = session.libvirt(h.name)
        out += [f"{h.name}: domain {d.name()}" for d in conn.listAllDomains(0) if d.name() == name]
        out += [f"{h.name}: volume {v.name}" for v in storage.list_volumes(conn, h.name, POOL)
                if v.name.startswith(name + ".") or v.name.startswith(name + "-")]
    nb = session.nb()
    time.sleep(0.3)  # let the IDL catch up with the CLI's transaction
    for r in nb.tables["Logical_Switch_Port"].rows.values():
        if r.name in lsps or r.external_ids.get("virtdeck:vm") == name:
            out.append(f"LSP {r.name}")
    for r in nb.tables["NAT"].rows.values():
        if r.external_ids.get("virtdeck:port") in lsps or r.external_ids.get("virtdeck:vm") == name:
            out.append(f"NAT {r.external_ip}")
    for r in nb.tables["DHCP_Options"].rows.values():
        if r.external_ids.get("virtdeck:vm") == name:
            out.append(f"DHCP {r.cidr}")
    return out
