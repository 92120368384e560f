"""The Templates panel (screens/templates.py) in the real console app, with Pilot."""

from __future__ import annotations

import dataclasses
import subprocess
import uuid

import pytest
from textual.widgets import DataTable, Input

from virtdeck.config.inventory import HostConfig, Inventory, TemplateConfig, load
from virtdeck.console.app import FixedModel, VirtdeckApp
from virtdeck.console.model import Cloud
from provision_helpers import lab_inventory, lab_session  # noqa: F401
from virtdeck.screens.templates import TemplateAddDialog, TemplateDeleteDialog, TemplatesPanel

INV = Inventory(hosts=(HostConfig("hv1", "192.0.2.11"),),
                templates=(TemplateConfig("debian12", "debian12.qcow2", "ab" * 32),))


async def wait(pilot, cond, n=400):
    for _ in range(n):
        if cond():
            return True
        await pilot.pause(0.05)
    return False


async def test_panel_lists_inventory_templates_without_a_session():
    app = VirtdeckApp(FixedModel(Cloud()), inventory=INV)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        table = app.screen.query_one(TemplatesPanel).query_one(DataTable)
        assert table.row_count == 1
        assert table.get_row("debian12")[:5] == ["debian12", "x86_64", "linux", "debian", "abababababab"]


class LabModel(FixedModel):
    def __init__(self, session):
        super().__init__(Cloud())
        self.session = session


@pytest.mark.lab
async def test_add_and_delete_from_the_panel(lab_session, lab_inventory, tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    inv = dataclasses.replace(lab_inventory, path=tmp_path / "inventory.toml")  # never the lab's file
    img = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "1G"], check=True)
    name = f"t4p{uuid.uuid4().hex[:6]}"
    app = VirtdeckApp(LabModel(lab_session), inventory=inv)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("5")
            panel = app.screen.query_one(TemplatesPanel)
            table = panel.query_one(DataTable)
            assert await wait(pilot, lambda: table.row_count >= 1 and "✓" in str(table.get_row("debian12")[5]))
            assert "hv1 ✓" in str(table.get_row("debian12")[5]) and "hv2 ✓" in str(table.get_row("debian12")[5])
            table.focus()
            await pilot.press("a")
            await pilot.pause()
            dlg = app.screen
            assert isinstance(dlg, TemplateAddDialog)
            dlg.query_one("#t-name", Input).value = name
            dlg.query_one("#t-image", Input).value = "/no/such/file"
            await pilot.pause()
            assert "not a readable file" in str(dlg.query_one("#why-image").render())
            dlg.query_one("#t-image", Input).value = str(img)
            await pilot.pause()
            await pilot.press("ctrl+s")
            assert await wait(pilot, lambda: not isinstance(app.screen, TemplateAddDialog))
            assert dlg.bars, "a progress bar per host and file"
            assert all(b.percentage == 1 for b in dlg.bars.values())
            # dismiss() pops the screen first and runs the result callback on a later tick
            assert await wait(pilot, lambda: name in [t.name for t in app.inventory.templates])
            assert name in [t.name for t in load(tmp_path / "inventory.toml").templates]
            assert await wait(pilot, lambda: name in [r.value for r in table.rows] and
                              "hv2 ✓" in str(table.get_row(name)[5]))
            table.move_cursor(row=table.get_row_index(name))
            table.focus()
            await pilot.press("ctrl+d")
            await pilot.pause()
            assert isinstance(app.screen, TemplateDeleteDialog)
            await pilot.press("y")
            assert await wait(pilot, lambda: not isinstance(app.screen, TemplateDeleteDialog))
            assert await wait(pilot, lambda: name not in [t.name for t in app.inventory.templates])
            assert await wait(pilot, lambda: name not in [r.value for r in table.rows])
    finally:
        from virtdeck.backends import storage
        for h in lab_inventory.hypervisors:
            storage.delete_volume(lab_session.libvirt(h.name), h.name, "virtdeck", f"{name}.qcow2")
