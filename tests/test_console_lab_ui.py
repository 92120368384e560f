"""The console on the live lab: change the lab from outside (virsh on a hypervisor over SSH,
ovn-nbctl against the central's NB over TCP) and see the screen follow within 1 s, with no
key pressed."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import pytest

from virtdeck.console.app import VirtdeckApp
from virtdeck.console.live import LiveModel
from live_helpers import tiny_domain

NB_TCP = "tcp:192.168.100.10:6641"


async def until(pilot, pred, timeout: float, what: str) -> float:
    """Let the app run until ``pred()``; returns the seconds it took (fails after timeout)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        await asyncio.sleep(0.02)
    raise AssertionError(f"screen did not show {what} within {timeout:g} s "
                         f"(model: {[v.name for v in pilot.app.cloud.vms]}, "
                         f"table: {[r.cells[0] for r in pilot.app.screen.table().rows]})")


def shown(app, panel: str) -> list[str]:
    return [r.cells[0] for r in app.screen.table(panel).rows]


@pytest.mark.lab
async def test_screen_follows_virsh_and_ovn_nbctl(lab_inv):
    host = lab_inv.hypervisors[-1].name
    live = LiveModel(lab_inv).start()
    app = VirtdeckApp(live, inventory=lab_inv)
    name = "vdui-" + uuid.uuid4().hex[:6]
    sw = "vdui-" + uuid.uuid4().hex[:6]
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await asyncio.to_thread(live.wait_ready, 20)
            await pilot.press("2")
            await until(pilot, lambda: {h.name for h in app.cloud.hosts if h.up}
                        == {h.name for h in lab_inv.hypervisors}, 5, "both hypervisors up")
            xml = tiny_domain(name)
            cmd = (f"qemu-img create -q -f qcow2 /tmp/{name}.qcow2 16M && cat > /tmp/{name}.xml "
                   f"<<'EOF'\n{xml}\nEOF\nvirsh -q define /tmp/{name}.xml")
            res = await asyncio.to_thread(live.session.run, host, cmd)
            assert res.ok, res.stderr
            took = await until(pilot, lambda: name in shown(app, "vms"), 1.0, "the defined domain")
            print(f"define → screen {took * 1000:.0f} ms")
            await asyncio.to_thread(live.session.run, host, f"virsh -q start {name}")
            idx = lambda: shown(app, "vms").index(name)  # noqa: E731
            await until(pilot, lambda: name in shown(app, "vms") and
                        app.screen.table("vms").rows[idx()].cells[2] == "running", 1.0, "running")
            await asyncio.to_thread(live.session.run, host,
                                    f"virsh -q destroy {name}; virsh -q undefine {name}")
            await until(pilot, lambda: name not in shown(app, "vms"), 1.0, "the domain gone")

            await pilot.press("3")
            subprocess.run(["ovn-nbctl", f"--db={NB_TCP}", "ls-add", sw], check=True)
            await until(pilot, lambda: sw in shown(app, "networks"), 1.0, "the new switch")
            subprocess.run(["ovn-nbctl", f"--db={NB_TCP}", "lsp-add", sw, sw + "-p"], check=True)
            row = lambda: app.screen.table("networks").rows[shown(app, "networks").index(sw)]  # noqa: E731
            await until(pilot, lambda: row().cells[5] == "1", 1.0, "the new port")
            subprocess.run(["ovn-nbctl", f"--db={NB_TCP}", "ls-del", sw], check=True)
            await until(pilot, lambda: sw not in shown(app, "networks"), 1.0, "the switch gone")
    finally:
        subprocess.run(["ovn-nbctl", f"--db={NB_TCP}", "--if-exists", "ls-del", sw])
        live.session.run(host, f"virsh -q destroy {name}; virsh -q undefine {name}; "
                               f"rm -f /tmp/{name}.xml /tmp/{name}.qcow2")
        live.stop()
