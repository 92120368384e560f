"""Screenshots of the console at 80x24 and 160x48 (pytest-textual-snapshot; SVGs committed in
tests/__snapshots__/). Update after an intended change with ``pytest --snapshot-update``.
Data: the fixed sample cloud; animations and cursor blink are off."""

from __future__ import annotations

import pytest

from virtdeck.console.app import FixedModel, VirtdeckApp
from virtdeck.console.live import HostKeyRequest
from console_fixtures import sample_cloud

SIZES = [(80, 24), (160, 48)]


def make_app(**kw) -> VirtdeckApp:
    app = VirtdeckApp(FixedModel(sample_cloud(), **kw))
    app.animation_level = "none"
    return app


async def _no_blink(pilot) -> None:
    for inp in pilot.app.screen.query("Input"):
        inp.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("keys", [(), ("2",), ("2", "down", "down"), ("3",), ("4",), ("question_mark",)],
                         ids=["hosts", "vms", "vm-paused", "networks", "tenants", "help"])
def test_panels(snap_compare, size, keys):
    assert snap_compare(make_app(), press=keys, terminal_size=size, run_before=_no_blink)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_filter_box(snap_compare, size):
    async def typed(pilot):
        await pilot.press("2", "slash", *"web|build")
        await _no_blink(pilot)
    assert snap_compare(make_app(), terminal_size=size, run_before=typed)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_host_key_dialog(snap_compare, size):
    req = HostKeyRequest("hv4", "192.168.100.14", 22,
                         "SHA256:q8hZ7t0nY3mJ5xK2vR9cW1eL6pD4sA0bF7gH3jN5uQ8", "ssh-ed25519 AAAA")
    assert snap_compare(make_app(host_keys=(req,)), terminal_size=size, run_before=_no_blink)


def test_networks_stale(snap_compare):
    from dataclasses import replace

    from virtdeck.console.model import NbStatus
    cloud = replace(sample_cloud(), nb=NbStatus("stale", "central:/run/ovn/ovnnb_db.sock",
                                                "OVN northbound connection lost", since=1795273200.0))
    app = VirtdeckApp(FixedModel(cloud))
    app.animation_level = "none"
    assert snap_compare(app, press=("3",), terminal_size=(80, 24), run_before=_no_blink)
