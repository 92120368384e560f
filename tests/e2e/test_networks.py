"""Issue 5 end to end on the lab: overlay, provider VLANs, router SNAT/floating IP, tenant
isolation + port security, clean delete.

Endpoints are probe ports (tests/probes.py): OVS internal ports on the hypervisors' br-int bound
to VM LSPs made by the provisioning backend (backends/ovn/ports.create_vm_port: UUID name, MAC+IP
port security, DHCP options, tenant default security group) — the real OVN datapath and real
GENEVE tunnels, without paying ~60 s of TCG boot per endpoint. Networks, routers and security
groups are made through the services (console/services/…), exactly as the CLI and TUI do.

Each test uses fresh tenant names and deletes everything it made through the services, then
checks that no NB row carries its tenants' virtdeck external_ids (the lab NB is shared).

The same scenarios with real VMs (made by the provisioning service, booted under TCG) are in
tests/e2e/test_networks_guests.py: scenario 1 (a guest and a probe across GENEVE), 2 (a guest on
VLAN 100 and the external host reach each other), 3 (SNAT and a floating IP for a guest) and the
spoofing half of 4 (a second address inside a guest is dropped).
"""

from __future__ import annotations

import time

import pytest

from virtdeck.backends.ovn import rows as ovn_rows
from virtdeck.backends.lab import topology as topo
from virtdeck.console.services import network as netsvc
from virtdeck.console.services import router as rsvc
from virtdeck.console.services import security as sgsvc
from virtdeck.console.services.network import NetworkRequest
from net_helpers import OUT, ping_from_outside, sniff, sniffed, vm_port, wait_up
from probes import tcp_transfer

pytestmark = [pytest.mark.lab]

VLAN100_HOST = topo.VLAN_HOSTS[100][1]     # 10.100.0.1 behind an access port tag=100


def test_1_overlay_across_hypervisors_dhcp_ping_tcp(session, lab, tenants, probes):
    """Two endpoints on one overlay network on hv1 and hv2: OVN DHCP leases (MTU 1400), ping,
    1 MiB over TCP with the checksum compared, across GENEVE."""
    assert len(lab.hypervisors) >= 2
    t = tenants("o")
    net = netsvc.create_network(session, NetworkRequest(t, "net", "overlay", "10.61.0.0/24",
                                                        dns="192.0.2.53", lease_time=900))
    pa, pb = vm_port(session, net, t, "a"), vm_port(session, net, t, "b")
    a, b = probes("hv1", pa), probes("hv2", pb)
    wait_up(session.nb(), pa.name), wait_up(session.nb(), pb.name)
    assert a.dhcp() == pa.ip and b.dhcp() == pb.ip
    assert a.lease["router"] == "10.61.0.1" and a.lease["mtu"] == "1400" and a.lease["lease"] == "900"
    assert a.lease["dns"] == "192.0.2.53" and a.mtu() == 1400
    assert a.ping(pb.ip, tries=3) and b.ping(pa.ip)
    # The tunnel is really used: hv1 has a GENEVE port to hv2 and the LSPs are bound apart.
    chassis = lab.sbctl("--bare", "--columns=chassis", "find", "Port_Binding", f"logical_port={pa.name}")
    chassis_b = lab.sbctl("--bare", "--columns=chassis", "find", "Port_Binding", f"logical_port={pb.name}")
    assert chassis and chassis_b and chassis != chassis_b
    res = tcp_transfer(b, a, pb.ip, size=1 << 20)
    assert res["bytes"] == 1 << 20 and res["sent"] == res["received"] and res["peer"] == pa.ip


def test_2_provider_vlans(session, tenants, probes):
    """VLAN 100 reaches the external host on VLAN 100; a network on VLAN 200 with the very same
    subnet does not (its frames arrive tagged 200 at the VLAN 200 host instead)."""
    t1, t2 = tenants("v"), tenants("w")
    v100 = netsvc.create_network(session, NetworkRequest(
        t1, "v100", "provider", "10.100.0.0/24", gateway=VLAN100_HOST, physnet=topo.PHYSNET_NAME,
        vlan=100, exclude="10.100.0.2..10.100.0.9"))
    v200 = netsvc.create_network(session, NetworkRequest(
        t2, "v200", "provider", "10.100.0.0/24", gateway=VLAN100_HOST, physnet=topo.PHYSNET_NAME,
        vlan=200, exclude="10.100.0.2..10.100.0.9"))
    assert (v100.vlan, v200.vlan, v100.mtu) == (100, 200, 1500)
    p1, p2 = vm_port(session, v100, t1, "a", ip="10.100.0.20"), vm_port(session, v200, t2, "b", ip="10.100.0.21")
    a, b = probes("hv1", p1), probes("hv2", p2)
    wait_up(session.nb(), p1.name), wait_up(session.nb(), p2.name)
    assert a.dhcp() == "10.100.0.20" and b.dhcp() == "10.100.0.21"
    assert a.ping(VLAN100_HOST, tries=3)
    # VLAN 200: listen on the VLAN 200 external host for the probe's frames while it tries.
    dump = sniff(topo.VLAN_HOSTS[200][0], "-e", "ether", "src", p2.mac)
    assert not b.ping(VLAN100_HOST, count=4)
    seen200 = sniffed(dump)
    assert p2.mac in seen200, "VLAN 200 frames should reach the VLAN 200 host"


def test_3_router_snat_and_floating_ip(session, lab, tenants, probes):
    """Overlay behind a router with its gateway on the untagged physnet (chassis hv1): SNAT to
    the outside; a floating IP lets the outside in once the security group allows it."""
    t = tenants("r")
    inside = netsvc.create_network(session, NetworkRequest(t, "inside", "overlay", "10.62.0.0/24"))
    netsvc.create_network(session, NetworkRequest(t, "ext", "provider", topo.PHYSNET_CIDR, gateway=OUT,
                                                  dhcp=False, physnet=topo.PHYSNET_NAME))
    rsvc.create_router(session, t, "r1")
    rsvc.attach_network(session, t, "r1", "inside")
    rsvc.set_gateway(session, t, "r1", "ext", "172.16.0.150", lab.hypervisors[0])
    rsvc.add_snat(session, t, "r1", "inside")
    port = vm_port(session, inside, t, "vm")
    p = probes(lab.hypervisors[-1], port)          # not on the gateway chassis: crosses GENEVE
    wait_up(session.nb(), port.name)
    assert p.dhcp() == port.ip
    assert p.ping("10.62.0.1", tries=3)             # the router port
    assert p.ping(OUT, tries=5)                     # out through SNAT
    res = tcp_transfer(("outside", None), p, OUT, size=256 << 10, port=5301)
    assert res["peer"] == "172.16.0.150" and res["sent"] == res["received"]
    # Floating IP: unsolicited ingress is still dropped by the default group …
    assert not ping_from_outside("172.16.0.151")
    rsvc.add_fip(session, t, "r1", "172.16.0.151", port=port.name)
    assert not ping_from_outside("172.16.0.151", count=2)
    # … until the group allows ICMP in.
    sgsvc.add_rule(session, t, "default", "ingress icmp")
    ok = any(ping_from_outside("172.16.0.151") for _ in range(3))
    assert ok, "outside should reach the VM through its floating IP"
    res = tcp_transfer(("outside", None), p, OUT, size=64 << 10, port=5302)
    assert res["peer"] == "172.16.0.151"            # the FIP also carries its outbound traffic


def test_4_tenant_isolation_and_port_security(session, tenants, probes):
    """Same CIDR in two tenants stays apart; a source address the port does not own is dropped
    even when the security group would let it in."""
    ta, tb = tenants("a"), tenants("b")
    na = netsvc.create_network(session, NetworkRequest(ta, "net", "overlay", "10.63.0.0/24"))
    nbn = netsvc.create_network(session, NetworkRequest(tb, "net", "overlay", "10.63.0.0/24"))
    a1, a2 = vm_port(session, na, ta, "a1", "10.63.0.10"), vm_port(session, na, ta, "a2", "10.63.0.11")
    b1 = vm_port(session, nbn, tb, "b1", "10.63.0.12")
    pa1, pa2, pb1 = probes("hv1", a1), probes("hv2", a2), probes("hv1", b1)
    for x in (a1, a2, b1):
        wait_up(session.nb(), x.name)
    assert pa1.dhcp() == "10.63.0.10" and pa2.dhcp() == "10.63.0.11" and pb1.dhcp() == "10.63.0.12"
    assert pa1.ping("10.63.0.11", tries=3)
    assert not pb1.ping("10.63.0.11", count=2) and not pb1.ping("10.63.0.10", count=2)
    # Even with a static neighbour entry (no ARP needed), tenant B cannot reach tenant A.
    pb1.sh("ip", "neigh", "replace", "10.63.0.11", "lladdr", a2.mac, "dev", pb1.ifname)
    assert not pb1.ping("10.63.0.11", count=2)

    # Port security: let any ICMP in to tenant A, then send from an address a1 does not own.
    sgsvc.add_rule(session, ta, "default", "ingress icmp")
    pa1.sh("ip", "addr", "add", "10.63.0.99/32", "dev", pa1.ifname)
    pa1.sh("ip", "neigh", "replace", "10.63.0.11", "lladdr", a2.mac, "dev", pa1.ifname)
    dump = pa2.popen("timeout", "10", "tcpdump", "-i", pa2.ifname, "-n", "-l", "icmp")
    time.sleep(1.5)
    spoofed_ok = pa1.ping("10.63.0.11", count=3, source="10.63.0.99")
    real_ok = pa1.ping("10.63.0.11", count=3, source="10.63.0.10")
    seen = dump.communicate(timeout=30)[0]
    assert real_ok and "10.63.0.10 > 10.63.0.11" in seen
    assert not spoofed_ok and "10.63.0.99" not in seen


def test_5_delete_everything_leaves_no_rows(session, lab, tenants, probes):
    """Build one of everything, delete through the services in the order an operator might,
    and check NB holds no row with the tenant's virtdeck external_ids."""
    t = tenants("d")
    nb = session.nb()
    net = netsvc.create_network(session, NetworkRequest(t, "web", "overlay", "10.64.0.0/24", dns="192.0.2.53"))
    netsvc.create_network(session, NetworkRequest(t, "ext", "provider", topo.PHYSNET_CIDR, gateway=OUT,
                                                  dhcp=False, physnet=topo.PHYSNET_NAME))
    vlan = netsvc.create_network(session, NetworkRequest(t, "v300", "provider", "10.30.0.0/24",
                                                         physnet=topo.PHYSNET_NAME, vlan=300))
    rsvc.create_router(session, t, "r1")
    rsvc.attach_network(session, t, "r1", "web")
    rsvc.set_gateway(session, t, "r1", "ext", "172.16.0.160", lab.hypervisors[0])
    rsvc.add_snat(session, t, "r1", "web")
    port = vm_port(session, net, t, "vm1")
    vm_port(session, vlan, t, "vm2")
    rsvc.add_fip(session, t, "r1", "172.16.0.161", port=port.name)
    sgsvc.create_security_group(session, t, "web", ["ingress tcp 80", "egress any"])
    sgsvc.add_port(session, t, "web", port.name)
    rows = ovn_rows.virtdeck_rows(nb, [t])
    assert {"Logical_Switch", "Logical_Switch_Port", "DHCP_Options", "Logical_Router", "Logical_Router_Port",
            "NAT", "Logical_Router_Static_Route", "Port_Group", "ACL"} <= set(rows)
    with pytest.raises(Exception) as ei:
        netsvc.delete_network(session, t, "web")
    assert "cascade" in str(ei.value)
    netsvc.delete_network(session, t, "web", cascade=True)
    netsvc.delete_network(session, t, "v300", cascade=True)
    rsvc.delete_router(session, t, "r1")
    netsvc.delete_network(session, t, "ext")
    sgsvc.delete_security_group(session, t, "web")
    sgsvc.delete_security_group(session, t, "default")
    assert ovn_rows.virtdeck_rows(nb, [t]) == {}
    # and nothing of it is left in the southbound either (northd removed the datapaths)
    time.sleep(1)
    sb = lab.sbctl("--bare", "--columns=external_ids", "list", "Datapath_Binding")
    assert f"vd.{t}." not in sb


async def test_6_wizard_made_networks_carry_traffic(session, lab, tenants, probes):
    """The same from the TUI: the network wizard (Pilot, keystrokes) creates an overlay network
    and a VLAN 100 provider network on the lab NB (physnets read from the hosts over SSH);
    endpoints on them lease, cross GENEVE and reach the VLAN 100 host."""
    from textual.app import App
    from textual.widgets import Input, Select

    from virtdeck.screens.wizard_network import NetworkWizard

    t = tenants("u")

    class Host(App):
        def __init__(self, wizard):
            super().__init__()
            self.wizard, self.results = wizard, []

        def on_mount(self):
            self.push_screen(self.wizard, self.results.append)

    async def fill(values: dict, provider: bool = False):
        wiz = NetworkWizard(session, tenants=[t])
        app = Host(wiz)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            if provider:
                wiz.query_one("#kind", Select).value = "provider"
                await pilot.pause()
            for field, text in values.items():
                wiz.query_one(f"#{field}", Input).focus()
                await pilot.press(*text)
            await pilot.pause()
            await pilot.press("ctrl+s")
            for _ in range(300):
                await pilot.pause(0.05)
                if app.results:
                    break
        assert app.results and app.results[0] is not None, "wizard did not create the network"
        return app.results[0]

    net = await fill({"name": "web", "cidr": "10.65.0.0/24"})
    v100 = await fill({"name": "v100", "physnet": "physnet1", "vlan": "100", "cidr": "10.100.0.0/24",
                       "gateway": VLAN100_HOST, "exclude": "10.100.0.2..10.100.0.9"}, provider=True)
    assert (net.mtu, v100.vlan, v100.physnet) == (1400, 100, "physnet1")
    pa, pb = vm_port(session, net, t, "a"), vm_port(session, net, t, "b")
    pv = vm_port(session, v100, t, "c")
    a, b, c = probes("hv1", pa), probes("hv2", pb), probes("hv2", pv)
    for x in (pa, pb, pv):
        wait_up(session.nb(), x.name)
    assert a.dhcp() == pa.ip and b.dhcp() == pb.ip and c.dhcp() == pv.ip
    assert a.ping(pb.ip, tries=3)
    assert c.ping(VLAN100_HOST, tries=3)
