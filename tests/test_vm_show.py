"""`virtdeck vm show NAME` and the VMs panel's ``v`` key, on the lab: a real domain defined the
way the provisioning service builds one (vm_lab_helpers.make_vm), read back through the verb
registry's CLI subcommand and through the console (Pilot, live model on the lab)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from provision_helpers import lab_inventory, lab_session  # noqa: F401 (fixtures)
from vm_lab_helpers import NET, TENANT, make_vm, net  # noqa: F401 (net: fixture)

pytestmark = pytest.mark.lab

VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))
VM = "vmops-show"


@pytest.fixture(scope="module")
def vm(lab_session, lab_inventory, net):
    """VM ``vmops-show`` defined (not started) on hv1; deleted with its disk, seed and port after."""
    from virtdeck.console import verbs
    lsp = make_vm(lab_session, lab_inventory, net, "hv1", VM, vcpus=1, memory_mib=256)
    yield lsp
    verbs.get("vm delete").service_fn()(lab_session, VM, missing_ok=True)


def cli(inv, tmp_path, *argv):
    env = dict(os.environ, VIRTDECK_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    return subprocess.run([VIRTDECK, "--config", str(inv.path), *argv], capture_output=True, text=True,
                          timeout=120, env=env)


def test_vm_show_cli_json_and_text(lab_inventory, vm, tmp_path):
    p = cli(lab_inventory, tmp_path, "vm", "show", VM, "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert (d["vm"], d["host"], d["state"], d["tenant"], d["template"]) == (VM, "hv1", "shutoff", TENANT, "debian12")
    assert (d["vcpus"], d["memory_mib"]) == (1, 256)
    disk = next(k for k in d["disks"] if k["device"] == "disk")
    assert disk["source"].endswith(f"/{VM}.qcow2") and disk["size_gib"] == 2
    assert d["seed"].endswith(f"/{VM}-seed.iso")
    [nic] = d["nics"]
    assert nic["lsp"] == vm and nic["network"] == NET and nic["switch"] and nic["mac"].startswith("52:54:00")
    assert nic["ips"] and nic["ips"][0].startswith("10.66.0.")
    # the text form: one line of facts, then seed, disks and NICs; read-only: no audit record
    p = cli(lab_inventory, tmp_path, "vm", "show", VM, "--host", "hv1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"{VM} on hv1: shutoff, tenant {TENANT}, template debian12\n")
    assert f"lsp {vm}" in p.stdout and f"on {NET} (" in p.stdout and "2 GiB" in p.stdout
    assert not (tmp_path / "audit.jsonl").exists()


def test_vm_show_unknown_vm_exit_code(lab_inventory, tmp_path):
    p = cli(lab_inventory, tmp_path, "vm", "show", "vmops-no-such-vm")
    assert p.returncode == 3 and "no VM named vmops-no-such-vm" in p.stderr and "Traceback" not in p.stderr


async def test_v_key_shows_the_vm_in_the_console(lab_session, lab_inventory, vm):
    import asyncio
    import time

    from virtdeck.console.app import VirtdeckApp
    from virtdeck.console.live import LiveModel
    from virtdeck.screens.vm_dialogs import DetailsDialog

    live = LiveModel(lab_inventory).start()
    app = VirtdeckApp(live, inventory=lab_inventory)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await asyncio.to_thread(live.wait_ready, 60)
            await pilot.press("2")
            deadline = time.monotonic() + 60
            key = None
            while time.monotonic() < deadline and key is None:
                await asyncio.sleep(0.3)
                key = next((f"vm:{v.host}:{v.uuid}" for v in app.cloud.vms if v.name == VM), None)
            assert key, "the live model never listed the VM"
            app.jump("vms", key)
            await pilot.pause()
            await pilot.press("v")
            while time.monotonic() < deadline and not isinstance(app.screen, DetailsDialog):
                await asyncio.sleep(0.2)
            assert isinstance(app.screen, DetailsDialog), [str(n.message) for n in app._notifications]
            text = "\n".join(app.screen.lines)
            assert text.startswith(f"{VM} on hv1: shutoff") and f"lsp {vm}" in text
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, DetailsDialog)
    finally:
        await asyncio.to_thread(live.stop)
