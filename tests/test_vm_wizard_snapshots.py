"""Screenshots of the VM wizard at 80x24 and 160x48 (pytest-textual-snapshot; SVGs in
tests/__snapshots__/). Update after an intended change with ``pytest --snapshot-update``."""

from __future__ import annotations

from types import SimpleNamespace as N

import pytest
from textual.app import App

from virtdeck.screens.wizard_vm import VmWizard
from wizard_helpers import INV

SIZES = [(80, 24), (160, 48)]
NETS = {"demo": [N(name="net1", kind="overlay", vlan=None, cidr="10.0.0.0/24", physnet=None),
                 N(name="net2", kind="overlay", vlan=None, cidr="10.0.1.0/24", physnet=None),
                 N(name="pub", kind="provider", vlan=100, cidr="10.100.0.0/24", physnet="physnet1")]}
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB op@jump")


class Host(App):
    def __init__(self):
        super().__init__()
        self.session, self.inventory = None, INV
        self.animation_level = "none"

    def on_mount(self) -> None:
        self.push_screen(VmWizard(networks=NETS, vm_names={"web1"}))


async def _no_blink(pilot) -> None:
    for inp in pilot.app.screen.query("Input"):
        inp.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_basics_with_reasons(snap_compare, size):
    async def typed(pilot):
        await pilot.press(*"web1", "tab", "tab", "tab", "tab", "backspace", "0")
        pilot.app.screen.pick_networks("pub", "net1")
        from textual.widgets import Input
        pilot.app.screen.query_one("#anti_affinity", Input).value = "Web"
        await _no_blink(pilot)
    assert snap_compare(Host(), terminal_size=size, run_before=typed)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_access_page(snap_compare, size):
    async def typed(pilot):
        from textual.widgets import Input, TextArea
        wiz = pilot.app.screen
        wiz.query_one("#name", Input).value = "web2"
        wiz.pick_networks("net1")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        wiz.query_one("#ssh_keys", TextArea).text = KEY
        wiz.query_one("#user_data", TextArea).text = "packages: [htop\n"
        await pilot.press(*"short")
        await _no_blink(pilot)
    assert snap_compare(Host(), terminal_size=size, run_before=typed)
