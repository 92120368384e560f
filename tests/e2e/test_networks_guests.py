"""Issue 5 end to end with REAL guests: scenarios 1–3 and the spoofing half of 4 from inside
Debian 12 VMs made by the provisioning service (console/services/provision.py, what
``virtdeck vm create`` runs; lab template debian12, real cloud-init, DHCP on the NIC).
tests/e2e/test_networks.py proves the same with probe ports; this module proves it for VMs.

Two guests only (a TCG boot costs ~70–90 s), created together at module start so they boot
concurrently on the two hypervisors:

- guest A on hv1, on a provider network with VLAN 100 (10.100.0.20): the lab's external host
  10.100.0.1 logs into it over SSH (the external host reaches the VM), the guest pings 10.100.0.1
  (the VM reaches the external host); a port on VLAN 200 with the same subnet (a probe) cannot.
  Then, inside the guest, a second address 10.100.0.99 is added and ICMP sent from it: port
  security drops it (the external host never sees it) while the real address works.
- guest B on hv2, on an overlay network behind a router (gateway chassis hv1) with SNAT: a probe
  on hv1 leases from OVN DHCP, pings the guest and moves 1 MiB over TCP to it across GENEVE
  (scenario 1), and is the SSH jump into it; from inside the guest the outside 172.16.0.254
  answers ping and sees the SNAT address; with a floating IP and an SSH ingress rule the outside
  logs into the guest at the floating IP, whose traffic then leaves with that address.

Everything is made through the services with fresh tenant names and removed at the end (domains,
volumes, seeds, LSPs, DHCP rows, routers, NAT, security groups), failures included; the NB must
then hold no row with these tenants' virtdeck external_ids. Figures are printed with the prefix
``[issue 5 figures]``: submit→running, running→first SSH login, cloud-init done (guest uptime)
per guest, each test's time and the module's total.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest

from virtdeck.backends.ovn import rows as ovn_rows
from virtdeck.backends.ovn import ports as ovn_ports
from virtdeck.backends.lab import topology as topo
from virtdeck.backends.session import Session
from virtdeck.config.inventory import load
from virtdeck.console.services import network as netsvc
from virtdeck.console.services import router as rsvc
from virtdeck.console.services import security as sgsvc
from virtdeck.console.services.network import NetworkRequest
from guests import BOOT_TIMEOUT, Guest, boot, keypair, netns_argv, remove, wait_cloud_init
from net_helpers import sniff, sniffed, teardown_tenant, wait_up
from probes import Probe, Via, tcp_transfer
from provision_helpers import leftovers, roomy

pytestmark = [pytest.mark.lab, pytest.mark.slow]

OUT = topo.OUTSIDE_ADDRESS                          # 172.16.0.254, untagged on physnet1
VLAN100_NS, VLAN100_HOST = topo.VLAN_HOSTS[100]     # vd-ext100, 10.100.0.1
VLAN200_NS = topo.VLAN_HOSTS[200][0]
A_IP, A_SPOOF = "10.100.0.20", "10.100.0.99"
INSIDE, INSIDE_GW = "10.68.0.0/24", "10.68.0.1"
SNAT_IP, FIP = "172.16.0.170", "172.16.0.171"       # the probe tests use .150/.151 and .160/.161


@dataclass
class World:
    session: Session
    inventory: object
    key: object
    tenants: dict                  # role -> tenant name
    vms: dict = field(default_factory=dict)        # role -> CreateResult
    running_at: dict = field(default_factory=dict)  # role -> time.monotonic() when running
    guests: dict = field(default_factory=dict)      # role -> Guest (over its jump point)
    reach: dict = field(default_factory=dict)       # role -> Future of running→first SSH login s
    probe: Probe | None = None                      # B's jump point and scenario-1 peer (hv1)
    probe_port: object = None
    figures: list = field(default_factory=list)

    def reached(self, role: str, what: str) -> Guest:
        """Wait for guest ``role``'s first SSH login (polled since the module started), note
        its boot figures and return the Guest."""
        reach = self.reach[role].result(timeout=BOOT_TIMEOUT + 60)
        res = self.vms[role]
        try:
            uptime, _ = wait_cloud_init(self.session, res.host, res.serial_log, timeout=120)
            ci = f"cloud-init done at guest uptime {uptime:.0f} s"
        except AssertionError:
            ci = "cloud-init not done within 120 s of the first login"
        self.figures.append(f"guest {what} on {res.host}: submit→running {res.submit_to_running:.1f} s, "
                            f"running→first SSH login {reach:.0f} s; {ci}")
        return self.guests[role]


def _say(request, lines: list[str]) -> None:
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        print()
        for line in lines:
            print(f"[issue 5 figures] {line}")


def guest_tap(session, host: str, name: str) -> str:
    """The host-side tap device of domain ``name``'s first NIC (libvirt's ``target dev``)."""
    import xml.etree.ElementTree as ET
    xml = session.libvirt(host).lookupByName(name).XMLDesc(0)
    return ET.fromstring(xml).find("devices/interface/target").get("dev")


@pytest.fixture(scope="module")
def world(lab, request, tmp_path_factory):
    """Networks, router and the two guests (booting concurrently); everything removed after."""
    if len(lab.hypervisors) < 2:
        pytest.skip("needs two hypervisors")
    t0 = time.monotonic()
    inv = roomy(load(lab.inventory))      # other engineers' domains must not fill the hosts
    session = Session(inv)
    uid = uuid.uuid4().hex[:5]
    w = World(session, inv, keypair(tmp_path_factory.mktemp("netguests")),
              {"vlan": f"e2g{uid}v", "vlan200": f"e2g{uid}w", "router": f"e2g{uid}r"})
    hv_a, hv_b = lab.hypervisors[0], lab.hypervisors[1]
    names = {"vlan": f"{w.tenants['vlan']}-vm", "router": f"{w.tenants['router']}-vm"}
    pool, stop = concurrent.futures.ThreadPoolExecutor(2), threading.Event()
    try:
        tv, tr = w.tenants["vlan"], w.tenants["router"]
        netsvc.create_network(session, NetworkRequest(
            tv, "v100", "provider", "10.100.0.0/24", gateway=VLAN100_HOST, physnet=topo.PHYSNET_NAME,
            vlan=100, exclude="10.100.0.2..10.100.0.9"))
        netsvc.create_network(session, NetworkRequest(tr, "inside", "overlay", INSIDE))
        netsvc.create_network(session, NetworkRequest(tr, "ext", "provider", topo.PHYSNET_CIDR, gateway=OUT,
                                                      dhcp=False, physnet=topo.PHYSNET_NAME))
        rsvc.create_router(session, tr, "r1")
        rsvc.attach_network(session, tr, "r1", "inside")
        rsvc.set_gateway(session, tr, "r1", "ext", SNAT_IP, hv_a)   # gateway chassis hv1: B's traffic crosses GENEVE
        rsvc.add_snat(session, tr, "r1", "inside")
        for role, host, net, ips in (("vlan", hv_a, "v100", (A_IP,)), ("router", hv_b, "inside", ())):
            w.vms[role] = boot(session, inv, tenant=w.tenants[role], name=names[role], networks=(net,),
                               key=w.key, host=host, ips=ips)
            w.running_at[role] = time.monotonic()
        # The default group drops unsolicited ingress: let the VLAN 100 host log in. B is reached
        # from a probe on its switch (same default group) on the gateway chassis hv1.
        sgsvc.add_rule(session, tv, "default", f"ingress tcp 22 from {VLAN100_HOST}/32")
        w.probe_port = ovn_ports.create_vm_port(session.nb(), ovn_ports.find_network(session.nb(), "inside", tr),
                                                tenant=tr, vm="probe", nic=0)
        w.probe = Probe.create(hv_a, w.probe_port.name, w.probe_port.mac)
        wait_up(session.nb(), w.probe_port.name)
        assert w.probe.dhcp() == w.probe_port.ip
        w.guests["vlan"] = Guest(names["vlan"], A_IP, w.key, Via(None, netns_argv(VLAN100_NS)))
        w.guests["router"] = Guest(names["router"], w.vms["router"].ports[0].ip, w.key,
                                   Via(w.probe.host, w.probe.argv()))
        for role, g in w.guests.items():     # poll both while they boot side by side
            w.reach[role] = pool.submit(g.wait_ssh, since=w.running_at[role], stop=stop)
        yield w
    finally:
        errors = []
        stop.set()
        pool.shutdown(wait=True)             # a poll still running ends after its current try
        if w.probe:
            w.probe.close()
        for role, name in names.items():
            try:
                remove(session, inv, w.tenants[role], name)
            except Exception as exc:  # keep cleaning; reported below
                errors.append(f"remove {name}: {exc}")
        for t in w.tenants.values():
            try:
                teardown_tenant(session, t)
            except Exception as exc:
                errors.append(f"teardown {t}: {exc}")
        rows = ovn_rows.virtdeck_rows(session.nb(), list(w.tenants.values()))
        left = {name: leftovers(session, inv, w.tenants[role], name) for role, name in names.items()}
        session.close()
        _say(request, w.figures + [f"module total (2 guests, set-up to clean-up) {time.monotonic() - t0:.0f} s"])
        assert not errors, errors
        assert rows == {}, f"OVN rows left behind: {rows}"
        assert all(v == {"domains": [], "volumes": [], "ports": []} for v in left.values()), left


def test_guest_vlan100_reaches_external_host_and_cannot_spoof(world):
    """Scenario 2 + spoofing half of 4 with a real guest on VLAN 100 (see module doc)."""
    t_test = time.monotonic()
    w, s = world, world.session
    res = w.vms["vlan"]
    assert res.ports[0].ip == A_IP
    # VLAN 200, same subnet: its frames reach the VLAN 200 host, never 10.100.0.1 (a probe end,
    # checked while the guest still boots).
    tw = w.tenants["vlan200"]
    v200 = netsvc.create_network(s, NetworkRequest(
        tw, "v200", "provider", "10.100.0.0/24", gateway=VLAN100_HOST, physnet=topo.PHYSNET_NAME,
        vlan=200, exclude="10.100.0.2..10.100.0.9"))
    port = ovn_ports.create_vm_port(s.nb(), v200, tenant=tw, vm="p200", nic=0, ip="10.100.0.21")
    with Probe.create(res.host, port.name, port.mac) as p:
        wait_up(s.nb(), port.name)
        assert p.dhcp() == "10.100.0.21"
        dump = sniff(VLAN200_NS, "-e", "ether", "src", port.mac)
        assert not p.ping(VLAN100_HOST, count=4)
        assert port.mac in sniffed(dump), "VLAN 200 frames should reach the VLAN 200 host"

    # The external host on VLAN 100 reaches the VM: SSH from its namespace with the test's key.
    g = w.reached("vlan", "A (provider VLAN 100)")
    facts = g.sh("hostname; ip -4 -o addr show scope global").stdout
    assert facts.splitlines()[0] == res.name
    assert f"inet {A_IP}/24" in facts and "dynamic" in facts, facts        # OVN DHCP on the VLAN
    # … and the VM reaches the external host, from inside the guest.
    assert g.ping(VLAN100_HOST, tries=3), "guest on VLAN 100 cannot ping 10.100.0.1"

    # Spoofing, from inside the guest: a second address on its NIC, ICMP from it is dropped by
    # port security (MAC + IP of the port) before it leaves the hypervisor: the guest's tap shows
    # it was sent, the external host never sees it; the real address gets through.
    ifname = next(ln.split()[1] for ln in facts.splitlines() if f"inet {A_IP}/" in ln)
    g.sh(f"sudo ip addr add {A_SPOOF}/32 dev {ifname}")
    tap = guest_tap(s, res.host, res.name)
    at_tap, at_host = sniff(None, "icmp", iface=tap, host=res.host), sniff(VLAN100_NS, "icmp")
    spoofed_ok = g.ping(VLAN100_HOST, count=3, source=A_SPOOF)
    real_ok = g.ping(VLAN100_HOST, count=3, source=A_IP)
    sent, seen = sniffed(at_tap), sniffed(at_host)
    assert f"{A_SPOOF} > {VLAN100_HOST}" in sent, sent                   # the guest did send it …
    assert not spoofed_ok and A_SPOOF not in seen, seen                  # … and it was dropped
    assert real_ok and f"{A_IP} > {VLAN100_HOST}" in seen, seen
    w.figures.append(f"test VLAN 100 + spoofing: {time.monotonic() - t_test:.0f} s (boot wait included)")


def test_guest_overlay_geneve_snat_and_floating_ip(world):
    """Scenario 1 (real guest + probe across GENEVE) and scenario 3 (SNAT out, floating IP in)
    with a real guest behind a router (see module doc)."""
    t_test = time.monotonic()
    w, s = world, world.session
    tr, res = w.tenants["router"], w.vms["router"]
    vm_ip, vm_lsp = res.ports[0].ip, res.ports[0].name
    p, pp = w.probe, w.probe_port                  # on hv1, the guest on hv2: across GENEVE
    assert p.host != res.host
    g = w.reached("router", "B (overlay behind a router)")
    # Scenario 1: DHCP lease with MTU 1400 from OVN, ping and 1 MiB over TCP across GENEVE.
    facts = g.sh("hostname; ip -4 -o addr show scope global; ip -o link show").stdout
    assert facts.splitlines()[0] == res.name
    assert f"inet {vm_ip}/24" in facts and "dynamic" in facts and "mtu 1400" in facts, facts
    assert p.ping(vm_ip, tries=3)
    out = tcp_transfer(g.via(), p, vm_ip, size=1 << 20)
    assert out["bytes"] == 1 << 20 and out["sent"] == out["received"] and out["peer"] == pp.ip
    # Scenario 3, SNAT: from inside the guest the outside answers and sees the router's address.
    assert g.ping(INSIDE_GW, tries=2), "guest cannot ping its router"
    assert g.ping(OUT, tries=3), "guest cannot reach the outside through SNAT"
    out = tcp_transfer(("outside", None), g.via(), OUT, size=256 << 10, port=5311)
    assert out["peer"] == SNAT_IP and out["sent"] == out["received"], out

    # Floating IP: the outside reaches the VM (SSH to the FIP) once the group lets SSH in.
    rsvc.add_fip(s, tr, "r1", FIP, port=vm_lsp)
    sgsvc.add_rule(s, tr, "default", "ingress tcp 22")
    g_out = Guest(res.name, FIP, w.key, Via("outside", []))
    g_out.wait_ssh(timeout=60)
    assert g_out.sh("hostname").stdout.strip() == res.name
    out = tcp_transfer(("outside", None), g_out.via(), OUT, size=64 << 10, port=5312)
    assert out["peer"] == FIP, out                   # the FIP also carries the VM's outbound traffic
    w.figures.append(f"test overlay/GENEVE + SNAT + floating IP: {time.monotonic() - t_test:.0f} s "
                     "(boot wait included)")
