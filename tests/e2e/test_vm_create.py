"""Issue 4 end to end on the lab: a VM created through the CLI and another through the TUI wizard
(Pilot) on an overlay network boot for real (Debian 12 + cloud-init under TCG); cloud-init
applies hostname, user, hashed password and SSH key; the VM leases its address from OVN DHCP; the
test logs in over SSH with the key from a probe port on the same switch (tests/probes.py), on the
OTHER hypervisor so the login crosses the GENEVE tunnel. With two hypervisors, placement spreads
the two VMs over both.

Guests run one at a time (2 shared cores): the CLI VM is checked, then stopped (it stays defined,
so its vCPUs/RAM still count for placement) before the wizard VM boots. Figures printed:
submit → domain running, and boot → "cloud-init done" (guest uptime from cloud-init's
final_message, plus the wall-clock from start to the marker on the serial log).
"""

from __future__ import annotations

import io
import json
import re
import uuid

import pytest
from textual.app import App
from textual.widgets import Input, Static, TextArea

from virtdeck.backends.ovn import networks as ovn_networks, ports as ovn_ports, security_groups as ovn_sg
from virtdeck.config.inventory import save
from virtdeck.console.cli import main
from provision_helpers import lab_inventory, lab_session, leftovers, remove_vm  # noqa: F401
from guests import Guest, keypair, wait_cloud_init
from probes import Probe, Via
from virtdeck.screens.wizard_vm import VmWizard

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PASSWORD = "e2e-pass-123"
CIDR, GATEWAY = "10.48.0.0/24", "10.48.0.1"


@pytest.fixture(scope="module")
def env(lab_session, lab_inventory, tmp_path_factory):
    if len([h for h in lab_inventory.hypervisors if h.enabled]) < 2:
        pytest.skip("needs two hypervisors")
    d = tmp_path_factory.mktemp("e2e-vm")
    keypair(d, "id")
    inv_path = d / "inventory.toml"
    save(lab_inventory, inv_path)
    tenant = f"t4e{uuid.uuid4().hex[:6]}"
    nb = lab_session.nb()
    ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=tenant, name="net1", kind="overlay", cidr=CIDR, gateway=GATEWAY))
    made: list[str] = []
    yield {"dir": d, "key": d / "id", "pub": (d / "id.pub").read_text().strip(), "inv": str(inv_path),
           "tenant": tenant, "made": made}
    for vm in made:
        remove_vm(lab_session, lab_inventory, tenant, vm)
    ovn_networks.delete_network(nb, tenant, "net1", cascade=True)
    for sg in ovn_sg.list_security_groups(nb, tenant):
        ovn_sg.delete_security_group(nb, tenant, sg.name)


def login_and_check(session, inventory, env, result: dict, name: str, pw_hash: str) -> dict:
    """From a probe port on the VM's switch, on the other hypervisor: SSH in with the key and read
    what cloud-init applied."""
    nb = session.nb()
    net = ovn_ports.find_network(nb, "net1", env["tenant"])
    other = next(h.name for h in inventory.hypervisors if h.enabled and h.name != result["host"])
    port = ovn_ports.create_vm_port(nb, net, tenant=env["tenant"], vm=f"probe-{name}", nic=0)
    vm_ip = result["ports"][0]["ip"]
    try:
        with Probe.create(other, port.name, port.mac) as probe:
            probe_ip = probe.dhcp()  # the probe leases from OVN DHCP too
            assert probe_ip == port.ip
            guest = Guest(name, vm_ip, env["key"], Via(probe.host, probe.argv()))
            guest.wait_ssh(timeout=90)
            r = guest.sh("hostname; id -un; sudo grep '^debian:' /etc/shadow | cut -d: -f2; "
                         "cat ~/.ssh/authorized_keys; ip -4 -o addr show scope global")
    finally:
        ovn_ports.delete_port(nb, port.name)
    lines = r.stdout.splitlines()
    facts = {"hostname": lines[0], "user": lines[1], "shadow": lines[2],
             "keys": [ln for ln in lines[3:] if ln.startswith("ssh-")],
             "addr": [ln for ln in lines if " inet " in ln]}
    assert facts["hostname"] == name
    assert facts["user"] == "debian"
    assert facts["shadow"] == pw_hash  # the hashed password, applied as is
    assert env["pub"] in facts["keys"]
    assert any(f"inet {vm_ip}/24" in a and "dynamic" in a for a in facts["addr"]), facts["addr"]  # a DHCP lease
    return facts


def stop(session, host: str, name: str) -> None:
    dom = session.libvirt(host).lookupByName(name)
    if dom.isActive():
        dom.destroy()


class Host(App):
    def __init__(self, wizard, session, inventory):
        super().__init__()
        self.wizard, self.session, self.inventory = wizard, session, inventory
        self.closed = "open"

    def on_mount(self) -> None:
        self.push_screen(self.wizard, lambda r: setattr(self, "closed", r))


async def test_cli_and_wizard_vms_boot_and_spread(env, lab_session, lab_inventory, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    figures = []
    # Spread is only decidable when the hosts carry the same foreign load (a clean lab, as in CI).
    from virtdeck.console.services import placement
    from virtdeck.console.services import provision as pv
    loads = {sn.facts.name: (sn.facts.alloc_vcpus, sn.facts.alloc_ram_mib)
             for sn in placement.gather(lab_session, lab_inventory, lab_inventory.template("debian12"))}
    even = len(set(loads.values())) == 1

    # ---- 1. through the CLI
    name_a = f"e2e-cli-{uuid.uuid4().hex[:4]}"
    env["made"].append(name_a)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    rc = main(["--config", env["inv"], "vm", "create", name_a, "--tenant", env["tenant"], "--template", "debian12",
               "--vcpus", "1", "--ram", "512", "--disk", "4", "--network", "net1",
               "--ssh-key", str(env["key"]) + ".pub", "--password-stdin", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err + out.out
    res_a = json.loads(out.out)
    assert res_a["running"] is True
    uptime, wall = wait_cloud_init(lab_session, res_a["host"], res_a["serial_log"])
    figures.append(("cli", res_a["host"], res_a["submit_to_running_s"], uptime, wall))
    # the password hash in the guest is the one the CLI made (read it from the seed on the host)
    seed_path = f"/var/lib/libvirt/images/virtdeck/{res_a['seed_volume']}"
    iso = lab_session.run(res_a["host"], ["sh", "-c", f"base64 -w0 {seed_path}"], timeout=30).stdout
    import base64
    from virtdeck.backends.seed import read_nocloud_iso
    ud = read_nocloud_iso(base64.b64decode(iso))["user-data"]
    pw_hash_a = re.search(r"hashed_passwd: (\S+)", ud).group(1)
    assert PASSWORD not in ud
    login_and_check(lab_session, lab_inventory, env, res_a, name_a, pw_hash_a)
    stop(lab_session, res_a["host"], name_a)  # one TCG guest at a time; it stays defined

    # ---- 2. through the wizard (Pilot)
    name_b = f"e2e-tui-{uuid.uuid4().hex[:4]}"
    env["made"].append(name_b)
    wiz = VmWizard(tenant=env["tenant"])
    app = Host(wiz, lab_session, lab_inventory)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            if wiz.networks is not None:
                break
            await pilot.pause(0.05)
        wiz.query_one("#name", Input).value = name_b
        wiz.pick_networks("net1")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert wiz.page == "access", str(wiz.query_one("#status", Static).render())
        wiz.query_one("#ssh_keys", TextArea).text = env["pub"]
        wiz.query_one("#password", Input).value = PASSWORD
        await pilot.pause()
        await pilot.press("ctrl+n")
        for _ in range(300):
            await pilot.pause(0.05)
            if wiz.preview is not None or not wiz.busy:
                break
        assert wiz.preview is not None, str(wiz.query_one("#status", Static).render())
        # spread: the CLI VM's host has less headroom, the wizard picks the other one
        if even:
            assert wiz.preview.placement.host != res_a["host"], wiz.preview.placement.explain()
        await pilot.press("ctrl+s")
        for _ in range(1200):
            await pilot.pause(0.05)
            if wiz.done:
                break
        assert wiz.result is not None, str(wiz.query_one("#status", Static).render())
        res_b = wiz.result.to_dict()
        pw_hash_b = wiz.password_hash
        await pilot.press("escape")
        await pilot.pause()
    if even:
        assert res_b["host"] != res_a["host"]
    else:
        with capsys.disabled():
            print(f"\n[issue 4] hosts carried uneven foreign load {loads}: spread over both not asserted")
    uptime, wall = wait_cloud_init(lab_session, res_b["host"], res_b["serial_log"])
    figures.append(("tui", res_b["host"], res_b["submit_to_running_s"], uptime, wall))
    login_and_check(lab_session, lab_inventory, env, res_b, name_b, pw_hash_b)

    with capsys.disabled():
        print()
        for path, host, run_s, up_s, wall_s in figures:
            print(f"[issue 4 figures] {path} VM on {host}: submit→running {run_s:.2f} s; "
                  f"boot→cloud-init done {up_s:.1f} s guest uptime ({wall_s:.0f} s wall from start)")
    for vm in (name_a, name_b):
        remove_vm(lab_session, lab_inventory, env["tenant"], vm)
        assert leftovers(lab_session, lab_inventory, env["tenant"], vm) == {"domains": [], "volumes": [], "ports": []}
