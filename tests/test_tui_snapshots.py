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


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_audit_view(snap_compare, size, tmp_path, monkeypatch):
    import json
    path = tmp_path / "trail.jsonl"
    recs = [("2026-11-28T10:00:00.000+00:00", "ann@jump", "vm.create", "vm acme/web-1", "ok"),
            ("2026-11-28T10:05:00.000+00:00", "bob@jump", "network.delete", "network acme/db", "ok"),
            ("2026-11-28T10:10:00.000+00:00", "bob@jump", "vm.reboot", "vm web-1",
             "failed: the guest ignored the power button after 60 s; --hard resets it")]
    path.write_text("".join(json.dumps(dict(zip(("time", "operator", "verb", "target", "outcome"), r))) + "\n"
                            for r in recs))
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(path))

    async def opened(pilot):
        from virtdeck.screens.audit import AuditScreen
        pilot.app.screen.action_audit_view()
        for _ in range(100):
            if isinstance(pilot.app.screen, AuditScreen) and pilot.app.screen.records is not None:
                break
            await pilot.pause(0.02)
        await pilot.pause()
    assert snap_compare(make_app(), terminal_size=size, run_before=opened)
