"""Screenshots of the VM wizard at 80x24 and 160x48 (pytest-textual-snapshot; SVGs in
tests/__snapshots__/). Update after an intended change with ``pytest --snapshot-update``."""

from __future__ import annotations

import pytest
from textual.app import App

from screens.wizard_vm import VmWizard
from test_vm_wizard import INV

SIZES = [(80, 24), (160, 48)]
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB op@jump")


class Host(App):
    def __init__(self):
        super().__init__()
        self.session, self.inventory = None, INV
        self.animation_level = "none"

    def on_mount(self) -> None:
        self.push_screen(VmWizard(networks={"demo": ["net1", "net2"]}, vm_names={"web1"}))


async def _no_blink(pilot) -> None:
    for inp in pilot.app.screen.query("Input"):
        inp.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_basics_with_reasons(snap_compare, size):
    async def typed(pilot):
        await pilot.press(*"web1", "tab", "tab", "tab", "tab", "backspace", "0")
        await _no_blink(pilot)
    assert snap_compare(Host(), terminal_size=size, run_before=typed)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_access_page(snap_compare, size):
    async def typed(pilot):
        from textual.widgets import Input, TextArea
        wiz = pilot.app.screen
        wiz.query_one("#name", Input).value = "web2"
        wiz.query_one("#networks", Input).value = "net1"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        wiz.query_one("#ssh_keys", TextArea).text = KEY
        wiz.query_one("#user_data", TextArea).text = "packages: [htop\n"
        await pilot.press(*"short")
        await _no_blink(pilot)
    assert snap_compare(Host(), terminal_size=size, run_before=typed)
