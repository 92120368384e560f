"""`vm reboot` says what happened (issue 16 item 10), on real libvirt in the lab.

Fast part (shared lab, no guest OS): a diskless domain whose SeaBIOS finds nothing to boot
cannot act on the ACPI power button — exactly the guest that made `vm reboot` report success
while nothing happened. Now: exit 6 and "the guest ignored the power button after N s; --hard
resets it"; ``--hard`` resets it, and libvirt's reset event reaches virtdeck over the forwarded
libvirt socket (what the ACPI path waits for).

The guest that does act on the button (the lab template with dbus and acpid) is the slow test
in tests/faults/test_power_guest.py (a sandbox lab builds the new template).
"""

from __future__ import annotations

import time
import uuid

import pytest

from virtdeck.backends import domains
from virtdeck.console.cli import main
from virtdeck.console.services import vm_power
from provision_helpers import lab_inventory, lab_session  # noqa: F401

pytestmark = pytest.mark.lab


def _tiny_xml(name: str) -> str:
    # SeaBIOS with no disk: "No bootable device", retried after 60 s; never sees the power button
    return (f"<domain type='qemu'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>"
            "<memory unit='MiB'>32</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>"
            "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>")


@pytest.fixture
def tiny(lab_session, lab_inventory):
    host = lab_inventory.hypervisors[0].name
    name = f"faults-pw-{uuid.uuid4().hex[:6]}"
    conn = lab_session.libvirt(host)
    dom = conn.defineXML(_tiny_xml(name))
    dom.create()
    yield host, name, dom
    domains.remove(conn, host, dom.UUIDString(), name)


def test_reboot_of_a_guest_that_ignores_the_button(lab_session, lab_inventory, tiny, tmp_path, monkeypatch, capsys):
    host, name, dom = tiny
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    t0 = time.monotonic()
    with pytest.raises(vm_power.RebootIgnored) as exc:
        vm_power.reboot(lab_session, name, timeout=3)
    waited = time.monotonic() - t0
    assert str(exc.value) == f"{name} on {host}: the guest ignored the power button after 3 s; --hard resets it"
    assert exc.value.exit_code == 6 and 3 <= waited < 15
    # the CLI: exit 6, that one sentence
    inv = tmp_path / "inventory.toml"
    from virtdeck.config.inventory import save
    save(lab_inventory, inv)
    assert main(["--config", str(inv), "vm", "reboot", name, "--timeout", "2"]) == 6
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"virtdeck: {name} on {host}: the guest ignored the power button after 2 s; --hard resets it"], err
    # --hard resets it, and the reset is seen as libvirt's REBOOT event over the forwarded socket
    with domains.PowerWatch(dom, host) as watch:
        res = vm_power.reboot(lab_session, name, hard=True)
        assert res.outcome == "ok" and res.message == f"{name} on {host} reset"
        assert watch.came_back.wait(10), "no REBOOT event from libvirt after a reset"
    print(f"\nreboot report: ignored after {waited:.1f} s (timeout 3 s); reset event after --hard seen")
