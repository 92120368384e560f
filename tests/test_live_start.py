"""console.live_start: the console's first frame does not wait for libvirt, asyncssh or ovsdbapp;
the deferred live model shows the inventory's hosts at once, then becomes the live model."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from virtdeck.console.live_start import DeferredLive
from virtdeck.console.model import HOST_CONNECTING, HOST_UP, NB_UP
from live_helpers import isolated_user_known_hosts  # noqa: F401 (autouse fixture)


def test_first_frame_imports_leave_out_asyncssh_and_ovsdbapp():
    """What the console imports before its first frame (the App and the deferred model) holds
    neither asyncssh nor ovsdbapp nor python-ovs: those load on the live model's thread."""
    code = ("import sys, virtdeck.console.app, virtdeck.console.live_start; "
            "print(' '.join(m for m in ('asyncssh', 'ovsdbapp', 'ovs') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.lab
def test_deferred_live_shows_inventory_hosts_then_the_lab(lab_inv):
    live = DeferredLive(lab_inv)
    told = threading.Event()
    live.subscribe(told.set)             # before the model exists: handed on when it does
    live.start()
    try:
        first = live.snapshot()
        assert [h.name for h in first.hosts] == [h.name for h in lab_inv.hypervisors]
        assert live.live is not None or all(h.state == HOST_CONNECTING for h in first.hosts)
        assert live.wait_ready(30)
        assert told.wait(5)
        cloud = live.snapshot()
        assert all(h.state == HOST_UP for h in cloud.hosts)
        assert cloud.nb.state == NB_UP
        assert live.session is live.live.session
    finally:
        live.stop()
