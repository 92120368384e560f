"""The network wizard driven with Pilot against a real OVN NB ovsdb-server.

The same service as the CLI does the write, so a network made here is checked in NB afterwards.
"""

from __future__ import annotations

from textual.widgets import Button, Input, Select, Static

from virtdeck.backends.ovn import networks as ovn_networks, rows as ovn_rows
from virtdeck.console.services import network as netsvc
from virtdeck.screens.wizard_network import NetworkWizard
from ovn_helpers import PHYSNETS
from wizard_helpers import WizardHost


async def type_into(pilot, wiz, field: str, text: str) -> None:
    w = wiz.query_one(f"#{field}", Input)
    w.focus()
    w.value = ""
    await pilot.press(*text)
    await pilot.pause()


def why(wiz, field: str) -> str:
    return str(wiz.query_one(f"#why-{field}", Static).render())


async def settle(pilot, wiz, cond, tries=100):
    for _ in range(tries):
        await pilot.pause(0.05)
        if cond():
            return
    raise AssertionError("condition never met")


async def test_overlay_network_from_the_wizard(api):
    netsvc.create_network(api, netsvc.NetworkRequest("demo", "old", "overlay", "10.0.0.0/24"))
    wiz = NetworkWizard(api, tenants=["demo"], physnets=PHYSNETS)
    app = WizardHost(wiz)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, wiz, lambda: wiz.networks)      # existing networks loaded in a worker
        create = wiz.query_one("#create", Button)
        assert wiz.query_one("#tenant", Input).value == "demo"   # the only tenant, preselected
        assert create.disabled                                  # nothing typed yet
        await type_into(pilot, wiz, "name", "web")
        await type_into(pilot, wiz, "cidr", "10.0.0.5/24")
        assert "did you mean 10.0.0.0/24" in why(wiz, "cidr")
        await type_into(pilot, wiz, "cidr", "10.0.0.0/16")
        assert "overlaps 10.0.0.0/24 of network old" in why(wiz, "cidr")
        await type_into(pilot, wiz, "cidr", "10.1.0.0/24")
        assert why(wiz, "cidr") == ""
        await type_into(pilot, wiz, "gateway", "10.2.0.1")
        assert "outside 10.1.0.0/24" in why(wiz, "gateway")
        assert create.disabled
        await type_into(pilot, wiz, "gateway", "10.1.0.254")
        await type_into(pilot, wiz, "dns", "192.0.2.53, 192.0.2.")
        assert "not an IPv4 address" in why(wiz, "dns")
        await type_into(pilot, wiz, "dns", "192.0.2.53")
        await type_into(pilot, wiz, "exclude", "10.1.0.2..10.1.0.9")
        assert not create.disabled and wiz.errors == {}
        await pilot.press("ctrl+s")
        await settle(pilot, wiz, lambda: app.results)
    [info] = app.results
    assert (info.tenant, info.name, info.cidr, info.gateway, info.mtu) == ("demo", "web", "10.1.0.0/24", "10.1.0.254", 1400)
    found = ovn_networks.find_network(api, "web", "demo")
    assert found.dns == ("192.0.2.53",) and found.exclude == ("10.1.0.2..10.1.0.9",) and found.dhcp_options


async def test_provider_vlan_checks_and_create(api):
    netsvc.create_network(api, netsvc.NetworkRequest("demo", "v100", "provider", "10.100.0.0/24",
                                                     physnet="physnet1", vlan=100), PHYSNETS)
    wiz = NetworkWizard(api, tenants=["demo", "other"], physnets=PHYSNETS)
    app = WizardHost(wiz)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, wiz, lambda: wiz.networks)
        assert not wiz.query_one("#row-vlan").display            # overlay: no VLAN row
        wiz.query_one("#kind", Select).value = "provider"
        await pilot.pause()
        assert wiz.query_one("#row-vlan").display and wiz.query_one("#row-physnet").display
        await type_into(pilot, wiz, "tenant", "other")
        await type_into(pilot, wiz, "name", "v101")
        await type_into(pilot, wiz, "vlan", "5000")
        assert "1–4094" in why(wiz, "vlan")
        await type_into(pilot, wiz, "vlan", "100")
        assert "VLAN 100 on physnet1 is already used by network demo/v100" in why(wiz, "vlan")
        await type_into(pilot, wiz, "vlan", "101")
        await type_into(pilot, wiz, "cidr", "10.100.0.0/24")     # same CIDR, other tenant: fine
        assert why(wiz, "vlan") == "" and wiz.errors == {}
        assert "1500" in wiz.query_one("#mtu", Input).placeholder
        wiz.query_one("#create", Button).press()
        await settle(pilot, wiz, lambda: app.results)
    [info] = app.results
    assert (info.kind, info.physnet, info.vlan, info.mtu) == ("provider", "physnet1", 101, 1500)
    ln = [p for p in api.tables["Logical_Switch_Port"].rows.values() if p.name == "ln:vd.other.v101"]
    assert ln and ln[0].tag == [101] and ln[0].type == "localnet"


async def test_submit_with_errors_and_cancel_write_nothing(api):
    wiz = NetworkWizard(api, tenants=["demo"], physnets=PHYSNETS)
    app = WizardHost(wiz)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")                              # empty form
        await pilot.pause()
        status = str(wiz.query_one("#status", Static).render())
        assert "to fix" in status and "Name" in status and "CIDR" in status
        assert "lowercase" in why(wiz, "name")
        # everything visible at 80x24
        assert wiz.query_one("#create", Button).region.bottom <= 24
        await pilot.press("escape")
        await pilot.pause()
    assert app.results == [None]
    assert ovn_rows.virtdeck_rows(api) == {}


async def test_security_group_editor(api):
    from textual.widgets import TextArea

    from virtdeck.screens.sg_editor import SecurityGroupEditor

    ed = SecurityGroupEditor(api, tenant="demo")
    app = WizardHost(ed)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, ed, lambda: ed.loaded)
        area = ed.query_one("#rules", TextArea)
        assert area.text.splitlines() == ["egress any", "ingress any from self"]
        assert "not created yet" in str(ed.query_one("#status", Static).render())
        area.move_cursor(area.document.end)
        await pilot.press(*"ingress tcp 99999")
        await pilot.pause()
        assert "line 3" in str(ed.query_one("#status", Static).render())
        assert ed.query_one("#save", Button).disabled
        for _ in range(5):
            await pilot.press("backspace")
        await pilot.press(*"22 from 10.0.0.0/8")
        await pilot.pause()
        assert ed.error is None and not ed.query_one("#save", Button).disabled
        assert ed.query_one("#save", Button).region.bottom <= 24
        await pilot.press("ctrl+s")
        await settle(pilot, ed, lambda: app.results)
    [info] = app.results
    assert [r.text() for r in info.rules] == ["egress any", "ingress any from self", "ingress tcp 22 from 10.0.0.0/8"]
    acls = {a.match for a in api.tables["ACL"].rows.values()}
    assert "outport == @vdsg_4_demo_default && ip4 && ip4.src == 10.0.0.0/8 && tcp && tcp.dst == 22" in acls
