"""Issue 5 scenario 3 done entirely from the TUI on the lab (Pilot, keystrokes): the console on
the live model, the network wizard (``c`` in the Networks panel) makes an overlay and a provider
network, the router screen (``o``) makes the router, attaches, sets the gateway, SNAT and a
floating IP for a port, the security-group editor (``a``) lets ICMP in; traffic then proves the
port reaches the outside 172.16.0.254 through SNAT and the outside reaches it through the FIP,
exactly like tests/e2e/test_networks.py scenario 3. Then everything is deleted from the TUI
(``D`` on the rows, ``ctrl+d`` in the group editor) and no NB row with the tenant's virtdeck
external_ids may be left.

The VM end is a probe port (tests/probes.py) on a VM LSP made by the provisioning backend, as
in scenario 3 (no guest boot). Names are unique per run; the external addresses (.190/.191)
are used by no other test. The untagged physnet1 network is one per lab (OVN would carry two
networks' frames on one wire), so the test waits for another run's to go first.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from virtdeck.backends.ovn import networks as ovn_networks, routers as ovn_routers, rows as ovn_rows
from virtdeck.backends.lab import topology as topo
from virtdeck.console.app import VirtdeckApp
from virtdeck.console.live import LiveModel
from probes import tcp_transfer
from net_helpers import OUT, ping_from_outside, vm_port, wait_up

pytestmark = [pytest.mark.lab]

GW, FIP = "172.16.0.190", "172.16.0.191"


async def until(pilot, pred, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = pred()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"{what} not seen within {timeout:g} s")


async def keys(pilot, screen, wid: str, text: str) -> None:
    """Focus ``#wid`` of ``screen`` and type ``text`` into it (after clearing it)."""
    w = screen.query_one(f"#{wid}")
    w.focus()
    w.value = ""
    await pilot.press(*text)


async def choose(pilot, screen, wid: str, value: str) -> None:
    """Pick ``value`` in a Select with the keyboard (enter opens, down moves, enter picks)."""
    sel = screen.query_one(f"#{wid}")
    sel.focus()
    for _ in range(12):
        if sel.selection == value:
            return
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause()
    assert sel.selection == value, f"could not pick {value} in #{wid}"


def untagged_physnet_taken(nb) -> list[str]:
    return [f"{n.tenant}/{n.name}" for n in ovn_networks.list_networks(nb)
            if n.kind == "provider" and n.physnet == topo.PHYSNET_NAME and n.vlan is None]


def row_key(app, tenant: str, name: str, kind: str = "net") -> str | None:
    rows = app.cloud.networks if kind == "net" else app.cloud.routers
    for x in rows:
        if x.tenant == tenant and x.display_name == name:
            return f"{kind}:{x.uuid}"
    return None


async def test_scenario_3_from_the_tui(session, lab, tenants, probes):  # noqa: F811
    from virtdeck.screens.router_editor import RouterEditor
    from virtdeck.screens.sg_editor import SecurityGroupEditor
    from virtdeck.screens.vm_actions import ConfirmDialog
    from virtdeck.screens.wizard_network import NetworkWizard

    t = tenants("t")
    nb = session.nb()
    inv = session.inventory
    start = time.monotonic()
    live = LiveModel(inv).start()
    app = VirtdeckApp(live, inventory=inv, panel="networks")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await asyncio.to_thread(live.wait_ready, 30)
            main = app.screen

            # --- the network wizard, twice ------------------------------------------------
            async def wizard(fields: dict, provider: bool = False, dhcp_off: bool = False):
                main.table("networks").focus()
                await pilot.press("c")
                wiz = await until(pilot, lambda: isinstance(app.screen, NetworkWizard) and app.screen, 5, "wizard")
                await pilot.pause()
                if provider:
                    await choose(pilot, wiz, "kind", "provider")
                for field, text in fields.items():
                    if field == "physnet" and wiz.query_one("#physnet").__class__.__name__ == "Select":
                        await choose(pilot, wiz, "physnet", text)
                    else:
                        await keys(pilot, wiz, field, text)
                if dhcp_off:
                    wiz.query_one("#dhcp").focus()
                    await pilot.press("space")
                await pilot.pause()
                assert wiz.errors == {}, wiz.errors
                await pilot.press("ctrl+s")
                try:
                    await until(pilot, lambda: app.screen is main, 60, "the wizard closing")
                except AssertionError:
                    raise AssertionError(f"wizard did not close: {wiz.query_one('#status').render()}") from None

            await wizard({"name": "inside", "tenant": t, "cidr": "10.69.0.0/24"})
            t0 = time.monotonic()
            print(f"\nfirst network through the wizard {t0 - start:.1f} s after the console started")
            while untagged_physnet_taken(nb):              # another run's untagged network
                assert time.monotonic() - t0 < 600, f"physnet1 untagged held by {untagged_physnet_taken(nb)}"
                await asyncio.sleep(2)
            await wizard({"name": "ext", "tenant": t, "physnet": topo.PHYSNET_NAME, "cidr": topo.PHYSNET_CIDR,
                          "gateway": OUT}, provider=True, dhcp_off=True)
            print(f"waited {time.monotonic() - t0:.1f} s for the untagged physnet")
            inside = ovn_networks.find_network(nb, "inside", t)
            assert inside.mtu == 1400 and ovn_networks.find_network(nb, "ext", t).vlan is None

            # the VM's port (a probe stands in for the guest), not on the gateway chassis
            port = await asyncio.to_thread(vm_port, session, inside, t, "vm")
            p = await asyncio.to_thread(probes, lab.hypervisors[-1], port)

            # --- the router screen, from the inside network's row -------------------------
            key = await until(pilot, lambda: row_key(app, t, "inside"), 10, "the inside network row")
            main.table("networks").select_key(key)
            main.table("networks").focus()
            await pilot.press("o")
            ed = await until(pilot, lambda: isinstance(app.screen, RouterEditor) and app.screen, 5, "router screen")
            assert ed.tenant == t
            await until(pilot, lambda: ed.loaded_tenant == t, 15, "tenant read")
            assert {p_.lsp for p_ in ed.ports} == {port.name}

            async def act(*k, expect="done"):
                await pilot.press(*k)
                await until(pilot, lambda: not ed.busy and expect in str(ed.query_one("#status").render()),
                            30, f"{k} -> {expect}")
                await until(pilot, lambda: not ed.workers, 15, "reload")

            await keys(pilot, ed, "router", "r1")
            await act("ctrl+n")
            nets = ed.query_one("#nets")
            nets.focus()
            nets.highlighted = nets.get_option_index("inside")
            await act("enter")
            await keys(pilot, ed, "gw-address", GW)
            await choose(pilot, ed, "gw-chassis", lab.hypervisors[0])
            await act("ctrl+g")
            nets.focus()
            nets.highlighted = nets.get_option_index("inside")
            await act("n")

            # --- traffic: out through SNAT (the router screen still open) ----------------
            await asyncio.to_thread(wait_up, nb, port.name)
            assert await asyncio.to_thread(p.dhcp) == port.ip
            assert await asyncio.to_thread(p.ping, "10.69.0.1", tries=3)
            assert await asyncio.to_thread(p.ping, OUT, tries=5)
            res = await asyncio.to_thread(tcp_transfer, ("outside", None), p, OUT, 256 << 10, 5311)
            assert res["peer"] == GW and res["sent"] == res["received"]
            print(f"SNAT traffic proven {time.monotonic() - start:.1f} s after start")

            # --- a floating IP for the port, chosen from the list ------------------------
            await keys(pilot, ed, "fip-ip", FIP)
            await choose(pilot, ed, "fip-port", port.name)
            await act("ctrl+f")
            r = ovn_routers.find_router(nb, "r1", t)
            assert (r.networks, r.gateway_network, r.gateway_address, r.gateway_chassis) == \
                (("inside",), "ext", f"{GW}/24", lab.hypervisors[0])
            assert sorted((n.kind, n.external_ip, n.logical_ip) for n in r.nat) == \
                [("fip", FIP, port.ip), ("snat", GW, "10.69.0.0/24")]
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is main, 5, "router screen closed")
            # the Networks panel follows through the live model
            await until(pilot, lambda: row_key(app, t, "r1", "router"), 10, "the router row")

            # --- the security group lets ICMP in, from its editor (a) ---------------------
            assert not await asyncio.to_thread(ping_from_outside, FIP, 2)
            main.table("networks").select_key(row_key(app, t, "inside"))
            main.table("networks").focus()
            await pilot.press("a")
            sg = await until(pilot, lambda: isinstance(app.screen, SecurityGroupEditor) and app.screen, 5, "sg editor")
            await until(pilot, lambda: sg.loaded, 15, "group read")
            area = sg.query_one("#rules")
            area.focus()
            area.move_cursor(area.document.end)
            await pilot.press(*"ingress icmp")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: app.screen is main, 15, "group saved")
            ok = False
            for _ in range(3):
                if await asyncio.to_thread(ping_from_outside, FIP):
                    ok = True
                    break
            assert ok, "outside should reach the port through its floating IP"
            res = await asyncio.to_thread(tcp_transfer, ("outside", None), p, OUT, 64 << 10, 5312)
            assert res["peer"] == FIP                # the FIP also carries its outbound traffic

            # --- delete everything from the TUI -------------------------------------------
            async def delete_row(key: str) -> None:
                main.table("networks").select_key(key)
                main.table("networks").focus()
                await pilot.press("ctrl+d")
                await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 5, "confirmation")
                await pilot.press("y")

            await delete_row(row_key(app, t, "r1", "router"))
            await until(pilot, lambda: not ovn_routers.list_routers(nb, t), 20, "router deleted")
            for name in ("inside", "ext"):
                k = await until(pilot, lambda: row_key(app, t, name), 10, f"row {name}")
                if name == "ext":            # the tenant's group, from its last network's row (a)
                    main.table("networks").select_key(k)
                    main.table("networks").focus()
                    await pilot.press("a")
                    sg = await until(pilot, lambda: isinstance(app.screen, SecurityGroupEditor) and app.screen,
                                     5, "sg editor")
                    await until(pilot, lambda: sg.loaded, 15, "group read")
                    await pilot.press("ctrl+d")
                    await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 5, "confirmation")
                    await pilot.press("y")
                    await until(pilot, lambda: app.screen is main, 15, "group deleted")
                await delete_row(k)
                await until(pilot, lambda: not any(n.name == name for n in ovn_networks.list_networks(nb, t)), 20,
                            f"network {name} deleted")
            assert ovn_rows.virtdeck_rows(nb, [t]) == {}
            print(f"everything deleted, no rows left: {time.monotonic() - start:.1f} s after start")
    finally:
        await asyncio.to_thread(live.stop)
