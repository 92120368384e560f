"""A fixed, realistic Cloud for screen tests and snapshots (rendering only: the data is what
the live model would publish; the live model itself is tested against real components)."""

from __future__ import annotations

from virtdeck.console.model import (Cloud, Dhcp, Disk, Host, Nat, NbStatus, Network, Nic, Port, Router,
                           RouterPort, Vm, derive_tenants, frozen_map)
from virtdeck.backends.ovn import names
from virtdeck.config.inventory import TenantConfig

P1 = "6f1c3a52-0d44-4c1e-9a39-0b1f3c2d4e01"
P2 = "6f1c3a52-0d44-4c1e-9a39-0b1f3c2d4e02"
P3 = "6f1c3a52-0d44-4c1e-9a39-0b1f3c2d4e03"


def _ext(**kw) -> dict:
    return frozen_map({names.PREFIX + k: v for k, v in kw.items()})


def _tags(**kw) -> dict:
    """Keyword arguments of a tagged model row: its external_ids and the tag fields the OVN
    backend would fill from them (``name`` is the ``label``)."""
    fields = {"label" if k == "name" else k: v for k, v in kw.items()}
    return {"external_ids": _ext(**kw), **fields}


def sample_cloud(generation: int = 1) -> Cloud:
    hosts = (
        Host("hv1", "192.168.100.11", state="up", hostname="hv1", arch="x86_64", cores=8,
             ram_total_mib=32000, ram_free_mib=24100, libvirt_version="9.0.0",
             domain_types=("qemu", "kvm"), bridge_mappings=(("physnet1", "br-phys"),)),
        Host("hv2", "192.168.100.12", state="up", hostname="hv2", arch="x86_64", cores=8,
             ram_total_mib=32000, ram_free_mib=30500, libvirt_version="9.0.0",
             domain_types=("qemu", "kvm"), bridge_mappings=(("physnet1", "br-phys"),)),
        Host("hv3", "192.168.100.13", state="unreachable", hostname="hv3", arch="aarch64",
             cores=4, ram_total_mib=16000, ram_free_mib=9000,
             error="libvirt connection closed (keepalive timeout) (retrying)"),
    )
    vms = (
        Vm("hv1", "web-1", "11111111-0000-4000-8000-000000000001", state="running", vcpus=2,
           memory_mib=2048, max_memory_mib=2048, domain_type="kvm", arch="x86_64",
           tenant="acme", template="debian12", seed="web-1-seed", networks=("web",),
           nics=(Nic("52:54:00:00:00:01", "bridge", "br-int", P1, "virtio", "vnet0"),),
           disks=(Disk("disk", "vda", "/var/lib/libvirt/images/web-1.qcow2", "qcow2", "virtio"),
                  Disk("cdrom", "hdc", "/var/lib/libvirt/images/web-1-seed.iso", "raw", "ide")),
           ips=("10.10.0.11",), cpu_percent=12.5, rss_mib=1630),
        Vm("hv1", "db-1", "11111111-0000-4000-8000-000000000002", state="shutoff", vcpus=4,
           memory_mib=8192, max_memory_mib=8192, domain_type="kvm", arch="x86_64",
           tenant="acme", template="debian12", networks=("db",),
           nics=(Nic("52:54:00:00:00:02", "bridge", "br-int", P2, "virtio"),)),
        Vm("hv2", "build", "11111111-0000-4000-8000-000000000003", state="paused", vcpus=1,
           memory_mib=1024, max_memory_mib=1024, domain_type="qemu", arch="x86_64",
           tenant="ci", template="debian12", networks=("vlan100",),
           nics=(Nic("52:54:00:00:00:03", "bridge", "br-int", P3, "virtio", "vnet1"),),
           ips=("192.168.50.20",)),
        Vm("hv2", "legacy", "11111111-0000-4000-8000-000000000004", state="running", vcpus=1,
           memory_mib=512, max_memory_mib=512, domain_type="qemu", arch="x86_64"),
    )
    dhcp = Dhcp("d1", "10.10.0.0/24", frozen_map({"router": "10.10.0.1", "lease_time": "3600",
                                                   "mtu": "1400"}), _ext(network="web"))
    networks = (
        Network("n1", "vd.acme.web", "overlay", subnet="10.10.0.0/24", dhcp=dhcp,
                ports=(P1, "lsp:vd.acme.edge:web"), **_tags(tenant="acme", name="web")),
        Network("n2", "vd.acme.db", "overlay", subnet="10.20.0.0/24", ports=(P2,),
                **_tags(tenant="acme", name="db")),
        Network("n3", "vd.ci.vlan100", "provider", vlan=100, physnet="physnet1",
                subnet="192.168.50.0/24", ports=("ln:vd.ci.vlan100", P3),
                **_tags(tenant="ci", name="vlan100")),
    )
    ports = (
        Port("p1", P1, "vd.acme.web", addresses=("52:54:00:00:00:01 10.10.0.11",), up=True,
             **_tags(tenant="acme", vm="web-1", name="web-1-eth0")),
        Port("p2", P2, "vd.acme.db", addresses=("52:54:00:00:00:02 10.20.0.12",), up=False,
             **_tags(tenant="acme", vm="db-1", name="db-1-eth0")),
        Port("p3", P3, "vd.ci.vlan100", addresses=("52:54:00:00:00:03 192.168.50.20",), up=True,
             **_tags(tenant="ci", vm="build", name="build-eth0")),
        Port("p4", "ln:vd.ci.vlan100", "vd.ci.vlan100", type="localnet", addresses=("unknown",),
             tag=100, options=frozen_map({"network_name": "physnet1"})),
        Port("p5", "lsp:vd.acme.edge:web", "vd.acme.web", type="router", addresses=("router",),
             options=frozen_map({"router-port": "lrp:vd.acme.edge:web"})),
    )
    routers = (
        Router("r1", "vd.acme.edge",
               ports=(RouterPort("rp1", "lrp:vd.acme.edge:web", "02:00:00:00:01:01",
                                 ("10.10.0.1/24",), peer_switch="vd.acme.web"),),
               nats=(Nat("nat1", "snat", "192.168.100.50", "10.10.0.0/24"),),
               **_tags(tenant="acme", name="edge")),
    )
    tenants = derive_tenants((TenantConfig("acme", max_vcpus=16, max_ram_mib=32768, max_vms=10),
                              TenantConfig("demo")), vms, networks, routers, ports)
    return Cloud(hosts=hosts, vms=vms, networks=networks, ports=ports, routers=routers,
                 tenants=tenants, nb=NbStatus("up", "central:/run/ovn/ovnnb_db.sock"),
                 generation=generation)


async def palette_pick(pilot, query: str) -> None:
    """Open the command palette (``:``), type ``query``, let the hits settle (0.3 s) and pick
    the first one (``enter``). The caller pauses after, as long as its action needs."""
    await pilot.press("colon")
    await pilot.pause()
    await pilot.press(*query)
    await pilot.pause(0.3)
    await pilot.press("enter")
