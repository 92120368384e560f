"""Screenshots of the console conventions at 80x24 and 160x48 (pytest-textual-snapshot; SVGs in
tests/__snapshots__/): the full details view of a VM and of a host, the read-only console, a
sorted table and a filter that matches nothing (on the Networks and Tenants panels, whose
columns move less often than the VMs panel's). Update after an intended change with
``pytest --snapshot-update``. Data: the fixed sample cloud; animations and cursor blink off."""

from __future__ import annotations

import pytest

from virtdeck.console.app import FixedModel, VirtdeckApp
from console_fixtures import sample_cloud

SIZES = [(80, 24), (160, 48)]


@pytest.fixture(autouse=True)
def no_audit(tmp_path, monkeypatch):
    """An empty audit trail: the VM's events read "none recorded"."""
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))


def make_app(**kw) -> VirtdeckApp:
    app = VirtdeckApp(FixedModel(sample_cloud()), **kw)
    app.animation_level = "none"
    return app


async def _settled(pilot) -> None:
    """Let the details view's event reader finish; no blinking cursors."""
    from virtdeck.screens.details import DetailsScreen
    for _ in range(100):
        screen = pilot.app.screen
        if not isinstance(screen, DetailsScreen) or screen.events is not None:
            break
        await pilot.pause(0.02)
    for inp in pilot.app.screen.query("Input"):
        inp.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("keys", [("2", "enter"), ("enter",)], ids=["vm", "host"])
def test_details_view(snap_compare, size, keys):
    assert snap_compare(make_app(), press=keys, terminal_size=size, run_before=_settled)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_readonly_networks(snap_compare, size):
    assert snap_compare(make_app(readonly=True), press=("3",), terminal_size=size, run_before=_settled)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_tenants_sorted_by_ram_descending(snap_compare, size):
    keys = ("4", *["greater_than_sign"] * 5, "tilde")
    assert snap_compare(make_app(), press=keys, terminal_size=size, run_before=_settled)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_filter_without_match(snap_compare, size):
    keys = ("4", "slash", *"nosuch", "enter")
    assert snap_compare(make_app(), press=keys, terminal_size=size, run_before=_settled)
