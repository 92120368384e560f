"""The console screens with Pilot: panels, keys, filter, details, host-key dialog, pushed
changes. Data comes from a FixedModel (rendering only); tests/test_console_lab_ui.py drives the
same app from the live lab."""

from __future__ import annotations

from dataclasses import replace

import pytest

from virtdeck.console.app import FixedModel, VirtdeckApp
from virtdeck.console.live import HostKeyRequest
from virtdeck.console.model import Vm
from virtdeck.screens.dialogs import HelpScreen, HostKeyDialog
from virtdeck.screens.main import MainScreen
from console_fixtures import palette_pick, sample_cloud


def keys_of(app) -> list[str]:
    return [r.key for r in app.screen.table().rows]


def cells(app, col: int = 0) -> list[str]:
    return [r.cells[col] for r in app.screen.table().rows]


async def test_panels_by_number_and_tab():
    app = VirtdeckApp(FixedModel(sample_cloud()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert app.screen.panel == "hosts"
        assert cells(app) == ["hv1", "hv2", "hv3"]
        await pilot.press("2")
        assert app.screen.panel == "vms"
        assert cells(app) == ["web-1", "db-1", "build", "legacy"]
        await pilot.press("tab")
        assert app.screen.panel == "networks"
        assert cells(app) == ["web", "db", "vlan100", "edge"]
        assert cells(app, 2) == ["overlay", "overlay", "provider VLAN 100", "router"]
        await pilot.press("tab")
        assert app.screen.panel == "tenants"
        assert cells(app) == ["acme", "ci", "demo"]
        await pilot.press("shift+tab", "shift+tab", "1")
        assert app.screen.panel == "hosts"
        await pilot.press("5")
        assert app.screen.panel == "templates"


async def test_vm_details_show_xml_facts_ports_and_switch():
    app = VirtdeckApp(FixedModel(sample_cloud()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        text = str(app.screen.query_one("#detail-vms").render())
        assert "web-1 on hv1" in text and "vda" in text and "52:54:00:00:00:01" in text
        assert "web-1-eth0 10.10.0.11 up on web (overlay, 10.10.0.0/24)" in text
        await pilot.press("down")
        await pilot.pause()
        text = str(app.screen.query_one("#detail-vms").render())
        assert "db-1 on hv1" in text and "4 / 8192 MiB" in text


async def test_host_row_shows_allocation_against_ratio_and_physnets():
    app = VirtdeckApp(FixedModel(sample_cloud()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        row = app.screen.table().rows[0].cells
        # hv1: web-1 running (2 vCPU, 2048 MiB); db-1 off (4 vCPU, 8192 MiB) still counts, as
        # placement counts it (domains.host_capacity: every defined domain); 8 cores × 4.0
        assert row[:6] == ("hv1", "up", "x86_64", "8", "24100/32000", "1/2")
        assert row[6:8] == ("6/32", "10240/32000") and row[-1] == "physnet1"
        assert row[8:12] == ("-", "", "-", "-")      # measured figures: none in a fixed model
        assert app.screen.table().rows[2].cells[1] == "unreachable"


async def test_regex_filter_and_escape():
    app = VirtdeckApp(FixedModel(sample_cloud()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "slash")
        await pilot.press(*"^(web|db)-")
        await pilot.pause()
        assert cells(app) == ["web-1", "db-1"]
        await pilot.press("enter")
        assert app.screen.filters == {"vms": "^(web|db)-"}
        assert app.focused is app.screen.table()
        await pilot.press("slash", "end", "left_square_bracket")
        await pilot.pause()
        assert app.screen.query_one("#filter").has_class("-invalid")   # bad regex: kept old rows
        assert cells(app) == ["web-1", "db-1"]
        await pilot.press("escape")
        await pilot.pause()
        assert cells(app) == ["web-1", "db-1", "build", "legacy"]
        # a filter belongs to its panel
        await pilot.press("1", "slash", "h", "v", "3", "enter", "2")
        assert cells(app) == ["web-1", "db-1", "build", "legacy"]
        await pilot.press("1")
        assert cells(app) == ["hv3"]


async def test_pushed_change_redraws_without_a_key_press():
    model = FixedModel(sample_cloud())
    app = VirtdeckApp(model)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        c = sample_cloud(generation=2)
        new = Vm("hv2", "fresh", "22222222-0000-4000-8000-000000000009", state="running",
                 vcpus=1, memory_mib=256)
        model.set(replace(c, vms=c.vms + (new,)))
        await pilot.pause()
        assert "fresh" in cells(app)
        assert "VMs 4/5 running" in str(app.screen.query_one("#status").render())


async def test_host_key_dialog_trust_and_refuse():
    reqs = (HostKeyRequest("hv4", "192.168.100.14", 22, "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                           "ssh-ed25519 AAAA"),
            HostKeyRequest("hv5", "192.168.100.15", 22, "SHA256:ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut",
                           "ssh-ed25519 BBBB"))
    model = FixedModel(sample_cloud(), host_keys=reqs)
    app = VirtdeckApp(model)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, HostKeyDialog)
        shown = {app.screen.host}
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, HostKeyDialog)
        shown.add(app.screen.host)
        await pilot.press("n")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert shown == {"hv4", "hv5"}
        assert sorted(model.answers) == [("hv4", True), ("hv5", False)] or \
            sorted(model.answers) == [("hv4", False), ("hv5", True)]
        # Enter on the focused default button refuses (never trusts by accident)
        model.host_keys = [reqs[0]]
        model.set(sample_cloud(generation=3))
        await pilot.pause()
        assert isinstance(app.screen, HostKeyDialog)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        assert model.answers[-1] == ("hv4", False)


async def test_help_lists_every_binding_and_quit():
    app = VirtdeckApp(FixedModel(sample_cloud()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(str(s.render()) for s in app.screen.query("Static"))
        for key in ("q", "?", ":", "/", "tab", "shift+tab", "1", "5", "c", "r", "escape",
                    "up / k", "pageup", "home / g", "enter", "y", "n / escape"):
            assert f"  {key} " in text, key
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_create_key_opens_wizard_hook():
    opened = []

    class Probe(VirtdeckApp):
        def open_vm_wizard(self):
            opened.append("vm")

        def open_network_wizard(self):
            opened.append("net")

    app = Probe(FixedModel(sample_cloud()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c", "2", "c", "3", "c")
    assert opened == ["vm", "net"]


async def test_command_palette_jumps_to_a_vm():
    app = VirtdeckApp(FixedModel(sample_cloud()))
    async with app.run_test(size=(80, 24)) as pilot:
        await palette_pick(pilot, "vm legacy")
        await pilot.pause()
        assert app.screen.panel == "vms"
        assert app.screen.table().cursor_key == "vm:hv2:11111111-0000-4000-8000-000000000004"


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_many_rows_scroll_with_keys(size):
    c = sample_cloud()
    many = tuple(Vm("hv1", f"vm-{i:04d}", f"u-{i}", state="shutoff", vcpus=1, memory_mib=64)
                 for i in range(3000))
    app = VirtdeckApp(FixedModel(replace(c, vms=many)))
    async with app.run_test(size=size) as pilot:
        await pilot.press("2", "end")
        assert app.screen.table().cursor_key == "vm:hv1:u-2999"
        await pilot.press("pageup", "home", "down")
        assert app.screen.table().cursor_key == "vm:hv1:u-1"


async def test_nb_stale_banner_in_networks_panel():
    from virtdeck.console.model import NbStatus
    model = FixedModel(sample_cloud())
    app = VirtdeckApp(model)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        banner = app.screen.query_one("#nb-banner")
        assert not banner.display
        c = sample_cloud(generation=2)
        model.set(replace(c, nb=NbStatus("stale", "central:/run/ovn/ovnnb_db.sock",
                                         "connection lost", since=0.0)))
        await pilot.pause()
        assert banner.display
        assert "stale: showing the last known networks" in str(banner.render())
        assert cells(app) == ["web", "db", "vlan100", "edge"]          # the data stays
        assert "NB stale (stale data)" in str(app.screen.query_one("#status").render())
        model.set(sample_cloud(generation=3))
        await pilot.pause()
        assert not banner.display
