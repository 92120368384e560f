"""Southbound facts in the console on the lab: the live model publishes the SB (``Cloud.sb``), the
Hosts panel shows each hypervisor's chassis, encap IP and bound-port count, and (slow) a started VM
on each hypervisor has its port bound on its own host's chassis, as the VM details say."""

from __future__ import annotations

import time
import uuid

import pytest

from virtdeck.backends import domains, storage
from virtdeck.backends.ovn import networks as ovn_networks
from virtdeck.console.live import LiveModel
from virtdeck.screens import views
from provision_helpers import lab_inventory, lab_session  # noqa: F401 (fixtures)
from vm_lab_helpers import POOL, make_vm

pytestmark = pytest.mark.lab


def _vm(cloud, name):
    return next((v for v in cloud.vms if v.name == name), None)


def _wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout} s")


@pytest.fixture
def live(lab_inventory):
    lm = LiveModel(lab_inventory).start()
    yield lm
    lm.stop()


def test_hosts_panel_shows_each_chassis(live, lab_inventory):
    cloud = _wait(lambda: (c := live.snapshot()).sb is not None and c, 30, "SB in the snapshot")
    rows = {r.key: r.cells for r in views.host_rows(cloud)}
    col = [c.key for c in views.HOST_COLUMNS].index("chassis")
    for h in lab_inventory.hypervisors:
        cell = rows[f"host:{h.name}"][col]
        chassis = cloud.sb.chassis_of_host(h.name)
        assert cell.startswith(f"{chassis.name} {chassis.encap_ip} ("), cell
        text = views.host_details(cloud, cloud.host(h.name)).plain
        assert f"OVN chassis: {chassis.name}" in text and "geneve 172.16.0." in text


def test_status_line_names_the_sb_member_of_a_member_list(live, lab_inventory):
    """cluster-ssl: the SB is the ssl member list and the status line says which member the
    console reads from (``SB via``); standalone (one SB through central's socket): nothing."""
    cloud = _wait(lambda: (c := live.snapshot()).sb is not None and c, 30, "SB in the snapshot")
    members = [m.strip() for m in (lab_inventory.ovn.sb_connection or "").split(",") if m.strip()]
    if len(members) > 1:
        assert cloud.sb_member in members and sorted(cloud.sb.members) == sorted(members)
        assert f"SB via {cloud.sb_member}" in views.status_line(cloud)
    else:
        assert cloud.sb_member is None and " SB " not in views.status_line(cloud)


def test_router_view_shows_the_active_gateway_chassis(live, lab_session):
    """A router with its gateway on a provider network pinned to hv2: the SB binds its
    chassisredirect port on hv2, the router details and the drift chain say so."""
    from virtdeck.backends.ovn import routers as ovn_routers
    tag = f"sbg{uuid.uuid4().hex[:5]}"
    nb = lab_session.nb()
    ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant="demo", name=f"{tag}x", kind="provider", physnet="physnet1", cidr="192.0.2.0/24",
        gateway="192.0.2.1", mtu=1500))
    ovn_routers.create_router(nb, "demo", tag)
    try:
        info = ovn_routers.set_gateway(nb, "demo", tag, f"{tag}x", "192.0.2.50", "hv2")
        cloud = _wait(lambda: (c := live.snapshot()).sb is not None and any(
            g.router == info.router and g.active for g in c.sb.gateways) and c, 60, "gateway binding")
        (gw,) = [g for g in cloud.sb.gateways if g.router == info.router]
        assert gw.active == "hv2" and gw.candidates == ("hv2",)
        router = next(r for r in cloud.routers if r.name == info.router)
        text = views.router_details(cloud, router).plain
        assert "active gateway: hv2 (southbound)" in text, text
    finally:
        ovn_routers.delete_router(nb, "demo", tag)
        ovn_networks.delete_network(nb, "demo", f"{tag}x", cascade=True)


@pytest.mark.slow
def test_started_vm_port_bound_on_its_hosts_chassis(live, lab_session, lab_inventory):
    """One VM per hypervisor, started (TCG): the SB binds each port on that host's chassis and
    the VM details say "its host". Prints the start -> bound time."""
    tag = f"sbl{uuid.uuid4().hex[:5]}"
    s, nb = lab_session, lab_session.nb()
    net = ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant="demo", name=tag, kind="overlay", cidr="10.234.5.0/24", gateway="10.234.5.1", mtu=1400))
    made = []
    try:
        for h in lab_inventory.hypervisors:
            name = f"{tag}-{h.name}"
            lsp = make_vm(s, lab_inventory, net, h.name, name, memory_mib=256)
            made.append((h.name, name))
            t0 = time.monotonic()
            domains.start(domains.lookup(s.libvirt(h.name), h.name, name), h.name)
            cloud = _wait(lambda: (c := live.snapshot()).sb is not None and c.sb.binding(lsp)
                          and c.sb.binding(lsp).chassis and _vm(c, name) is not None and c, 90,
                          f"binding of {name}")
            print(f"{name}: start -> SB binding seen by the console {time.monotonic() - t0:.1f} s")
            b = cloud.sb.binding(lsp)
            assert cloud.sb.host_of_chassis(b.chassis) == h.name
            text = views.vm_details(cloud, _vm(cloud, name)).plain
            assert f"bound: on chassis {b.chassis} (its host)" in text, text
    finally:
        for host, name in made:
            conn = s.libvirt(host)
            try:
                dom = conn.lookupByName(name)
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
            except Exception:  # noqa: BLE001
                pass
            for vol in (f"{name}.qcow2", f"{name}-seed.iso"):
                storage.delete_volume(conn, host, POOL, vol)
        ovn_networks.delete_network(nb, "demo", tag, cascade=True)
