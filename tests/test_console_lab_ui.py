"""The console on the live lab: change the lab from outside (virsh on a hypervisor over SSH,
ovn-nbctl against the lab's NB: tcp, or the ssl member list of a cluster-ssl lab) and see the
screen follow within 1 s, with no key pressed."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from virtdeck.console.app import VirtdeckApp
from virtdeck.console.live import LiveModel
from live_helpers import tiny_domain, until


def shown(app, panel: str) -> list[str]:
    return [r.cells[0] for r in app.screen.table(panel).rows]


@pytest.mark.lab
async def test_screen_follows_virsh_and_ovn_nbctl(lab, lab_inv):
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
            await asyncio.to_thread(lab.nbctl, "ls-add", sw)
            await until(pilot, lambda: sw in shown(app, "networks"), 1.0, "the new switch")
            await asyncio.to_thread(lab.nbctl, "lsp-add", sw, sw + "-p")
            row = lambda: app.screen.table("networks").rows[shown(app, "networks").index(sw)]  # noqa: E731
            await until(pilot, lambda: row().cells[5] == "1", 1.0, "the new port")
            await asyncio.to_thread(lab.nbctl, "ls-del", sw)
            await until(pilot, lambda: sw not in shown(app, "networks"), 1.0, "the switch gone")
    finally:
        lab.nbctl("--if-exists", "ls-del", sw, check=False)
        live.session.run(host, f"virsh -q destroy {name}; virsh -q undefine {name}; "
                               f"rm -f /tmp/{name}.xml /tmp/{name}.qcow2")
        live.stop()


@pytest.mark.lab
async def test_live_console_opens_at_the_top_and_enter_follows_a_nic_to_its_lsp_and_switch(lab, lab_inv):
    """On the lab: the VMs table opens at its top while the hosts answer (nothing pressed), and
    enter on a domain defined from outside with a NIC bound to an LSP made by ovn-nbctl shows
    NIC → LSP → switch → IPs in the details view (the domain is only defined: no guest boots)."""
    from virtdeck.backends import domain_xml as dx
    from virtdeck.screens.details import DetailsScreen
    host = lab_inv.hypervisors[0].name
    tag = uuid.uuid4().hex[:6]
    name, sw, lsp = f"tui-{tag}", f"tui-sw-{tag}", str(uuid.uuid4())
    mac = "52:54:00:7e:%s:%s" % (tag[:2], tag[2:4])
    live = LiveModel(lab_inv).start()
    app = VirtdeckApp(live, inventory=lab_inv, panel="vms")
    try:
        lab.nbctl("ls-add", sw, "--", "lsp-add", sw, lsp, "--",
                  "lsp-set-addresses", lsp, f"{mac} 10.99.{int(tag[:2], 16)}.7")
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.screen.table("vms")
            await until(pilot, lambda: {h.name for h in app.cloud.hosts if h.up}
                        == {h.name for h in lab_inv.hypervisors}, 20, "every hypervisor up")
            await asyncio.sleep(0.3)
            assert table.cursor == 0 and table.scroll_offset.y == 0 and not table.moved
            assert table.cursor_key == (table.rows[0].key if table.rows else None)
            xml = dx.domain_xml(dx.DomainSpec(
                name=name, uuid=str(uuid.uuid4()), vcpus=1, memory_mib=32, domain_type="qemu",
                disk_path=f"/tmp/{name}.qcow2", nics=(dx.NicSpec(mac, lsp),),
                metadata=dx.InstanceMeta(tenant="livetest")))
            res = await asyncio.to_thread(
                live.session.run, host, f"cat > /tmp/{name}.xml <<'EOF'\n{xml}\nEOF\nvirsh -q define /tmp/{name}.xml")
            assert res.ok, res.stderr
            await until(pilot, lambda: name in shown(app, "vms"), 5, "the defined domain")
            await pilot.press("slash", *f"^{name}", "enter")
            await until(pilot, lambda: shown(app, "vms") == [name], 2, "the filter")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailsScreen), 2, "the details view")
            text = lambda: str(app.screen.query_one("#details-body").render())  # noqa: E731
            await until(pilot, lambda: f"→ switch {sw}" in text(), 3, "the NIC's switch")
            assert f"{mac}" in text() and f"→ LSP {lsp}" in text() and "→ IPs 10.99." in text()
            await pilot.press("escape")
    finally:
        lab.nbctl("--if-exists", "ls-del", sw, check=False)
        live.session.run(host, f"virsh -q undefine {name}; rm -f /tmp/{name}.xml")
        live.stop()
