"""The router screen driven with Pilot (keystrokes) against a real OVN NB ovsdb-server: the same
router service as the CLI writes, so every step is checked in NB afterwards; and a snapshot at
80x24. The lab version (traffic through SNAT and a floating IP) is tests/e2e/test_router_tui.py."""

from __future__ import annotations

from textual.widgets import Input, OptionList, Select, Static

from virtdeck.backends.ovn import routers as ovn_routers, rows as ovn_rows
from virtdeck.backends.ovn import ports as ovn_ports
from virtdeck.console.services import network as netsvc
from virtdeck.console.services.network import NetworkRequest
from virtdeck.screens.router_editor import RouterEditor

from ovn_helpers import PHYSNETS
from wizard_helpers import WizardHost


class Host(WizardHost):
    """Pushes the screen, collects its results (own name: the snapshot's title shows it)."""


def tenant_nets(api, tenant="demo"):
    inside = netsvc.create_network(api, NetworkRequest(tenant, "inside", "overlay", "10.62.0.0/24"))
    netsvc.create_network(api, NetworkRequest(tenant, "ext", "provider", "172.16.0.0/24", gateway="172.16.0.254",
                                              dhcp=False, physnet="physnet1"), PHYSNETS)
    port = ovn_ports.create_vm_port(api, inside, tenant=tenant, vm="web1", nic=0)
    return inside, port


async def settle(pilot, cond, tries=200, what="condition"):
    for _ in range(tries):
        await pilot.pause(0.05)
        if cond():
            return
    raise AssertionError(f"{what} never met")


def status(ed) -> str:
    return str(ed.query_one("#status", Static).render())


async def act(pilot, ed, *keys, expect: str = "done"):
    """Press ``keys`` and wait until the verb they start has finished (status says ``expect``)."""
    await pilot.press(*keys)
    await settle(pilot, lambda: not ed.busy and expect in status(ed), what=f"{keys} -> {expect!r}")
    await settle(pilot, lambda: ed.loaded_tenant == "demo" and not ed.workers, what="reload")


async def type_into(pilot, ed, wid: str, text: str) -> None:
    w = ed.query_one(f"#{wid}", Input)
    w.focus()
    w.value = ""
    await pilot.press(*text)


async def choose(pilot, ed, wid: str, value: str) -> None:
    """Pick ``value`` in Select ``wid`` with the keyboard: open, move down until it shows, enter."""
    sel = ed.query_one(f"#{wid}", Select)
    sel.focus()
    await pilot.press("enter")
    await pilot.pause()
    for _ in range(10):
        if sel.selection == value:
            break
        await pilot.press("down", "enter")
        await pilot.pause()
        if sel.selection == value:
            break
        await pilot.press("enter")
        await pilot.pause()
    assert sel.selection == value, f"could not choose {value} in {wid}"


async def test_router_from_the_screen(api, nb_server):
    inside, port = tenant_nets(api)
    ed = RouterEditor(api, tenant="demo", router="r1", chassis=["hv1", "hv2"])
    app = Host(ed)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, lambda: ed.loaded_tenant == "demo", what="load")
        assert "no router r1 in demo yet" in str(ed.query_one("#summary", Static).render())
        # an action before the router exists is refused, naming the field
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert status(ed).startswith("router: no router 'r1'")
        await act(pilot, ed, "ctrl+n")
        assert ovn_routers.find_router(api, "r1", "demo").networks == ()
        # attach inside: focus the list, move to it, enter
        nets = ed.query_one("#nets", OptionList)
        nets.focus()
        idx = nets.get_option_index("inside")
        nets.highlighted = idx
        await act(pilot, ed, "enter")
        assert ovn_routers.find_router(api, "r1", "demo").networks == ("inside",)
        # SNAT before a gateway: refused naming the router
        await pilot.press("n")
        await settle(pilot, lambda: not ed.busy and "no gateway" in status(ed))
        # gateway: a bad address is refused naming the field and marks it
        await type_into(pilot, ed, "gw-address", "172.16.0.254")
        await choose(pilot, ed, "gw-chassis", "hv2")
        await pilot.press("ctrl+g")
        await settle(pilot, lambda: not ed.busy and "address:" in status(ed))
        assert "gateway of ext itself" in status(ed)
        assert ed.query_one("#gw-address").has_class("invalid")
        await type_into(pilot, ed, "gw-address", "172.16.0.150")
        await act(pilot, ed, "ctrl+g")
        r = ovn_routers.find_router(api, "r1", "demo")
        assert (r.gateway_network, r.gateway_address, r.gateway_chassis) == ("ext", "172.16.0.150/24", "hv2")
        # SNAT on for inside
        nets.focus()
        nets.highlighted = nets.get_option_index("inside")
        await act(pilot, ed, "n")
        assert [(n.kind, n.logical_ip) for n in ovn_routers.find_router(api, "r1", "demo").nat] == [("snat", "10.62.0.0/24")]
        assert "SNAT" in str(nets.get_option("inside").prompt)
        # floating IP for web1's port, chosen from the list (shows VM name and IP)
        fport = ed.query_one("#fip-port", Select)
        [(label, value)] = [(str(p), v) for p, v in fport._options if v == port.name]
        assert "web1" in label and port.ip in label
        await type_into(pilot, ed, "fip-ip", "172.16.0.151")
        await choose(pilot, ed, "fip-port", port.name)
        await act(pilot, ed, "ctrl+f")
        fips = [n for n in ovn_routers.find_router(api, "r1", "demo").nat if n.kind == "fip"]
        assert [(n.external_ip, n.logical_ip, n.port) for n in fips] == [("172.16.0.151", port.ip, port.name)]
        # the same external IP again: refused naming the field
        await pilot.press("ctrl+f")
        await settle(pilot, lambda: not ed.busy and "external_ip:" in status(ed))
        # remove it from the list with x, SNAT off, detach, clear the gateway
        ed.query_one("#fips", OptionList).focus()
        await act(pilot, ed, "x")
        assert not [n for n in ovn_routers.find_router(api, "r1", "demo").nat if n.kind == "fip"]
        nets.focus()
        nets.highlighted = nets.get_option_index("inside")
        await act(pilot, ed, "n")
        assert ovn_routers.find_router(api, "r1", "demo").nat == ()
        await act(pilot, ed, "ctrl+k")
        assert ovn_routers.find_router(api, "r1", "demo").gateway_network is None
        # delete: a confirmation first; "n" keeps it, then "y" deletes
        await pilot.press("ctrl+d")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert ovn_routers.find_router(api, "r1", "demo")
        await pilot.press("ctrl+d")
        await pilot.pause()
        await act(pilot, ed, "y")
        assert ovn_routers.list_routers(api, "demo") == []
        await pilot.press("escape")
        await pilot.pause()
    assert len(app.results) == 1
    netsvc.delete_network(api, "demo", "inside", cascade=True)
    netsvc.delete_network(api, "demo", "ext")
    from virtdeck.console.services import security
    security.delete_security_group(api, "demo", "default")
    assert ovn_rows.virtdeck_rows(api) == {}


def test_router_screen_snapshot(snap_compare, api):
    """80x24: a router with a gateway, SNAT on one network and a floating IP."""
    from virtdeck.console.services import router as rsvc
    inside, port = tenant_nets(api)
    rsvc.create_router(api, "demo", "r1")
    rsvc.attach_network(api, "demo", "r1", "inside")
    rsvc.set_gateway(api, "demo", "r1", "ext", "172.16.0.150", "hv1")
    rsvc.add_snat(api, "demo", "r1", "inside")
    rsvc.add_fip(api, "demo", "r1", "172.16.0.151", ip="10.62.0.50")
    ed = RouterEditor(api, tenant="demo", router="r1", chassis=["hv1", "hv2"])

    async def ready(pilot):
        await settle(pilot, lambda: ed.loaded_tenant == "demo" and not ed.workers)
        pilot.app.screen.query_one("#nets").focus()
        await pilot.pause()

    assert snap_compare(Host(ed), terminal_size=(80, 24), run_before=ready)


def networks_panel_app(api):
    """The console on its Networks panel: sample_cloud() rows (FixedModel), the real NB as session."""
    from virtdeck.console.app import FixedModel, VirtdeckApp
    from console_fixtures import sample_cloud

    model = FixedModel(sample_cloud())
    model.session = api
    return VirtdeckApp(model, panel="networks")


async def test_keys_from_the_networks_panel(api):
    """``e`` on a network opens the wizard in edit mode, ``o`` on a router opens the router
    screen on it (FixedModel rows; the screens read the real NB given as the session)."""
    from virtdeck.screens.wizard_network import NetworkWizard

    netsvc.create_network(api, NetworkRequest("acme", "web", "overlay", "10.10.0.0/24"))
    app = networks_panel_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        main = app.screen
        main.table("networks").select_key("net:n1")
        await pilot.press("e")
        await settle(pilot, lambda: isinstance(app.screen, NetworkWizard))
        wiz = app.screen
        assert wiz.edit == ("acme", "web")
        await settle(pilot, lambda: wiz.editing is not None, what="network read")
        assert wiz.query_one("#cidr", Input).disabled
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is main)
        main.table("networks").select_key("router:r1")
        await pilot.press("o")
        await settle(pilot, lambda: isinstance(app.screen, RouterEditor))
        ed = app.screen
        assert (ed.tenant, ed.router_name) == ("acme", "edge")
        await settle(pilot, lambda: ed.loaded_tenant == "acme")
        assert [n.name for n in ed.networks] == ["web"]
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is main)
        await pilot.press("1", "o")                          # elsewhere: a hint, no screen
        await pilot.pause()
        assert app.screen is main


async def test_readonly_console_keeps_the_router_screen_shut(api):
    from virtdeck.console.app import FixedModel, VirtdeckApp
    from console_fixtures import sample_cloud

    app = VirtdeckApp(FixedModel(sample_cloud()), panel="networks", readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        main = app.screen
        await pilot.press("o")
        await pilot.pause()
        assert app.screen is main


async def test_delete_and_security_group_from_the_networks_panel(api):
    """``D`` on a network row deletes it (asked first, cascade), on a router row the router;
    ``a`` opens the tenant's security group, whose ``ctrl+d`` deletes it (asked first)."""
    from virtdeck.console.services import router as rsvc
    from virtdeck.console.services import security as sgsvc
    from virtdeck.screens.sg_editor import SecurityGroupEditor
    from virtdeck.screens.vm_actions import ConfirmDialog

    netsvc.create_network(api, NetworkRequest("acme", "web", "overlay", "10.10.0.0/24"))
    rsvc.create_router(api, "acme", "edge")
    rsvc.attach_network(api, "acme", "edge", "web")
    sgsvc.create_security_group(api, "acme", "default")
    app = networks_panel_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        main = app.screen
        main.table("networks").select_key("router:r1")
        await pilot.press("ctrl+d")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "router acme/edge" in app.screen.targets
        await pilot.press("y")
        await settle(pilot, lambda: ovn_routers.list_routers(api, "acme") == [], what="router gone")
        main.table("networks").select_key("net:n1")
        await pilot.press("delete")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")                                  # kept
        await pilot.pause()
        assert netsvc.list_networks(api, "acme")
        await pilot.press("ctrl+d")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await settle(pilot, lambda: netsvc.list_networks(api, "acme") == [], what="network gone")
        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, SecurityGroupEditor))
        ed = app.screen
        await settle(pilot, lambda: ed.loaded, what="group read")
        await pilot.press("ctrl+d")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await settle(pilot, lambda: app.screen is main, what="editor closed")
    assert ovn_rows.virtdeck_rows(api, ["acme"]) == {}
