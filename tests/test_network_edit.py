"""`network edit` against a real OVN NB ovsdb-server: what may change changes in one
transaction, what may not is refused naming the field, and the same edit twice writes nothing.
Rows are read back through ovn-nbctl (an independent reader)."""

from __future__ import annotations

import json

import pytest

from virtdeck.backends.ovn import networks as ovn_networks, rows as ovn_rows
from virtdeck.console.errors import ValidationError
from virtdeck.console.services import network as netsvc
from virtdeck.console.services.network import NetworkRequest

from ovn_helpers import PHYSNETS, add_vm_port, nb_json, nbctl, ovs_map


def dhcp_opts(nb_server) -> list[dict]:
    return [ovs_map(r["options"]) for r in nb_json(nb_server, "DHCP_Options", "options")]


def switch(nb_server, name="vd.t1.web") -> dict:
    [row] = [r for r in nb_json(nb_server, "Logical_Switch", "name", "external_ids", "other_config")
             if r["name"] == name]
    return {"ext": ovs_map(row["external_ids"]), "other": ovs_map(row["other_config"])}


def test_edit_changes_dhcp_rows_and_switch_in_one_go(api, nb_server, audit_log):
    net = netsvc.create_network(api, NetworkRequest("t1", "web", "overlay", "10.0.0.0/24", dns="192.0.2.53"))
    add_vm_port(nb_server, net, "p1", "0a:00:00:00:00:05", "10.0.0.5", api)
    info = netsvc.edit_network(api, "t1", "web", lease_time="900", dns="192.0.2.1, 192.0.2.2", mtu="1300",
                               exclude="10.0.0.100..10.0.0.120")
    assert (info.lease_time, info.dns, info.mtu, info.exclude) == (900, ("192.0.2.1", "192.0.2.2"), 1300,
                                                                   ("10.0.0.100..10.0.0.120",))
    [opts] = dhcp_opts(nb_server)
    assert opts["lease_time"] == "900" and opts["mtu"] == "1300" and opts["dns_server"] == "{192.0.2.1, 192.0.2.2}"
    sw = switch(nb_server)
    assert sw["other"]["exclude_ips"] == "10.0.0.1 10.0.0.100..10.0.0.120"
    assert sw["ext"]["virtdeck:mtu"] == "1300" and sw["ext"]["virtdeck:cidr"] == "10.0.0.0/24"
    # "" clears DNS: the key goes (not left empty), the DHCP option too
    info = netsvc.edit_network(api, "t1", "web", dns="")
    assert info.dns == () and "virtdeck:dns" not in switch(nb_server)["ext"]
    assert "dns_server" not in dhcp_opts(nb_server)[0]
    # the same again: nothing written, audited as noop
    before = nbctl(nb_server, "list", "Logical_Switch")
    netsvc.edit_network(api, "t1", "web", dns="", mtu="1300", lease_time=900)
    assert nbctl(nb_server, "list", "Logical_Switch") == before
    records = [json.loads(l) for l in audit_log.read_text().splitlines() if '"network.edit"' in l]
    assert [r["outcome"] for r in records] == ["ok", "ok", "noop"]
    assert records[0]["details"]["mtu"] == 1300 and records[1]["details"]["dns"] == []


def test_dhcp_off_and_on_again_reattaches_vm_ports(api, nb_server):
    net = netsvc.create_network(api, NetworkRequest("t1", "web", "overlay", "10.0.0.0/24"))
    add_vm_port(nb_server, net, "p1", "0a:00:00:00:00:05", "10.0.0.5", api)
    info = netsvc.edit_network(api, "t1", "web", dhcp=False)
    assert not info.dhcp and info.dhcp_options is None and dhcp_opts(nb_server) == []
    assert nbctl(nb_server, "get", "Logical_Switch_Port", "p1", "dhcpv4_options").strip() == "[]"
    info = netsvc.edit_network(api, "t1", "web", dhcp=True, lease_time=1200)
    assert info.dhcp and info.dhcp_options and dhcp_opts(nb_server)[0]["lease_time"] == "1200"
    assert nbctl(nb_server, "get", "Logical_Switch_Port", "p1", "dhcpv4_options").strip() == info.dhcp_options
    netsvc.delete_network(api, "t1", "web", cascade=True)
    assert ovn_rows.virtdeck_rows(api) == {}


@pytest.mark.parametrize("change, field, words", [
    ({"cidr": "10.9.0.0/24"}, "cidr", "create a new network"),
    ({"kind": "provider"}, "kind", "cannot change"),
    ({"gateway": "10.0.0.254"}, "gateway", "create a new network"),
    ({"vlan": "7"}, "vlan", "create a new network"),
    ({"mtu": "100"}, "mtu", "between 576"),
    ({"lease_time": "5"}, "lease_time", "between 60"),
    ({"dns": "1.2.3"}, "dns", "not an IPv4"),
    ({"exclude": "10.9.0.1"}, "exclude", "outside 10.0.0.0/24"),
    ({"exclude": "10.0.0.2..10.0.0.9"}, "exclude", "held by VM vm1's port p1"),
])
def test_refusals_name_the_field_and_write_nothing(api, nb_server, change, field, words):
    net = netsvc.create_network(api, NetworkRequest("t1", "web", "overlay", "10.0.0.0/24"))
    add_vm_port(nb_server, net, "p1", "0a:00:00:00:00:05", "10.0.0.5", api)
    nbctl(nb_server, "set", "Logical_Switch_Port", "p1", "external_ids:virtdeck\\:vm=vm1")
    before = nbctl(nb_server, "list", "Logical_Switch") + nbctl(nb_server, "list", "DHCP_Options")
    with pytest.raises(ValidationError) as ei:
        netsvc.edit_network(api, "t1", "web", **change)
    assert ei.value.field == field and words in str(ei.value)
    assert nbctl(nb_server, "list", "Logical_Switch") + nbctl(nb_server, "list", "DHCP_Options") == before


def test_unchanged_immutables_are_fine(api, nb_server):
    netsvc.create_network(api, NetworkRequest("t1", "v7", "provider", "10.7.0.0/24", physnet="physnet1", vlan=7),
                          PHYSNETS)
    info = netsvc.edit_network(api, "t1", "v7", kind="provider", cidr="10.7.0.0/24", gateway="10.7.0.1",
                               physnet="physnet1", vlan="7", mtu="9000")
    assert info.mtu == 9000 and info.vlan == 7
    with pytest.raises(ValidationError) as ei:
        netsvc.edit_network(api, "t1", "v7", vlan="")            # untagged is another VLAN
    assert ei.value.field == "vlan"


def test_cli_network_edit(nb_server, tmp_path, audit_log, capsys):
    from virtdeck.console.cli import main
    inv = tmp_path / "inventory.toml"
    inv.write_text(f'[ovn]\nconnection = "{nb_server.unix}"\n')
    base = ["--config", str(inv)]
    assert main(base + ["network", "create", "web", "-t", "demo", "--cidr", "10.0.0.0/24"]) == 0
    capsys.readouterr()
    assert main(base + ["--json", "network", "edit", "web", "-t", "demo", "--dhcp-lease", "600",
                        "--dns", "192.0.2.53", "--mtu", "1350", "--exclude", "10.0.0.200..10.0.0.210"]) == 0
    n = json.loads(capsys.readouterr().out)
    assert (n["lease_time"], n["dns"], n["mtu"], n["exclude"]) == (600, ["192.0.2.53"], 1350, ["10.0.0.200..10.0.0.210"])
    assert main(base + ["network", "edit", "web", "-t", "demo", "--no-dhcp"]) == 0
    assert "DHCP off" in capsys.readouterr().out
    assert main(base + ["network", "edit", "web", "-t", "demo", "--cidr", "10.1.0.0/24"]) == 2
    err = capsys.readouterr().err
    assert "cidr:" in err and "create a new network" in err
    assert main(base + ["network", "edit", "nope", "-t", "demo", "--mtu", "1400"]) == 3
    assert main(base + ["--readonly", "network", "edit", "web", "-t", "demo", "--dhcp"]) == 7
    from virtdeck.console.services import guard
    guard.set_readonly(False)


async def test_edit_from_the_wizard(api, nb_server):
    """The wizard in edit mode: filled from NB, immutable fields read-only, saves through
    edit_network (one transaction), then dismisses with the edited network."""
    from textual.app import App
    from textual.widgets import Button, Checkbox, Input, Static

    from virtdeck.screens.wizard_network import IMMUTABLE_FIELDS, NetworkWizard

    netsvc.create_network(api, NetworkRequest("t1", "v7", "provider", "10.7.0.0/24", physnet="physnet1", vlan=7,
                                              dns="192.0.2.53"), PHYSNETS)
    netsvc.create_network(api, NetworkRequest("t1", "web", "overlay", "10.0.0.0/24"))

    class Host(App):
        def __init__(self, wiz):
            super().__init__()
            self.wiz, self.results = wiz, []

        def on_mount(self):
            self.push_screen(self.wiz, self.results.append)

    wiz = NetworkWizard(api, tenants=["t1"], physnets=PHYSNETS, edit=("t1", "v7"))
    app = Host(wiz)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if wiz.editing is not None:
                break
        assert wiz.query_one("#cidr", Input).value == "10.7.0.0/24" and wiz.query_one("#vlan", Input).value == "7"
        assert wiz.query_one("#dns", Input).value == "192.0.2.53" and wiz.query_one("#mtu", Input).value == "1500"
        assert all(wiz.query_one(f"#{f}").disabled for f in IMMUTABLE_FIELDS)
        assert "cannot change" in str(wiz.query_one("#status", Static).render())
        assert wiz.errors == {} and not wiz.query_one("#create", Button).disabled
        # typing into a read-only field does nothing; the mutable ones take keys
        wiz.query_one("#cidr", Input).focus()
        await pilot.press("9")
        assert wiz.query_one("#cidr", Input).value == "10.7.0.0/24"
        wiz.query_one("#mtu", Input).focus()
        await pilot.press("backspace", "backspace", "backspace", "backspace", *"1450")
        wiz.query_one("#dns", Input).focus()
        wiz.query_one("#dns", Input).value = ""
        await pilot.press(*"192.0.2.1")
        wiz.query_one("#dhcp", Checkbox).focus()
        await pilot.press("space")              # DHCP off
        await pilot.pause()
        assert not wiz.query_one("#row-lease_time").display
        await pilot.press("ctrl+s")
        for _ in range(100):
            await pilot.pause(0.05)
            if app.results:
                break
    [info] = app.results
    assert (info.mtu, info.dns, info.dhcp, info.vlan, info.cidr) == (1450, ("192.0.2.1",), False, 7, "10.7.0.0/24")
    assert ovn_networks.find_network(api, "v7", "t1").dhcp_options is None and dhcp_opts(nb_server) != []  # web's row stays
