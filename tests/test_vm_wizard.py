"""The VM wizard (screens/wizard_vm.py) driven with Pilot.

Without the lab: every field checks as you type with the reason beside it, the password is hashed
and wiped, pages refuse to advance with errors. On the lab: review shows the placement table and
the seed (hash only), create shows every step and defines the VM (no boot here; the booting
wizard path is tests/e2e/test_vm_create.py).
"""

from __future__ import annotations

import subprocess
import uuid

import pytest
from textual.app import App
from textual.widgets import DataTable, Input, Select, Static, TextArea

from virtdeck.screens.wizard_vm import VmWizard
from wizard_helpers import INV


@pytest.fixture(scope="module")
def pubkey(tmp_path_factory):
    d = tmp_path_factory.mktemp("k")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id")], check=True)
    return (d / "id.pub").read_text().strip()


class Host(App):
    """A bare app holding the wizard, like the console does (session/inventory attributes)."""

    def __init__(self, wizard, session=None, inventory=INV):
        super().__init__()
        self.wizard, self.session, self.inventory = wizard, session, inventory
        self.closed = "open"

    def on_mount(self) -> None:
        self.push_screen(self.wizard, lambda r: setattr(self, "closed", r))


def why(wiz, field) -> str:
    return str(wiz.query_one(f"#why-{field}", Static).render())


async def type_into(pilot, wiz, field, text):
    w = wiz.query_one(f"#{field}")
    w.focus()
    if isinstance(w, Input):
        w.value = ""
    await pilot.pause()
    await pilot.press(*list(text)) if text else None
    await pilot.pause()


async def pick(pilot, wiz, *names):
    """Pick networks with the keys: focus the list, home + down to each, space."""
    from textual.widgets import SelectionList
    sel = wiz.query_one("#networks", SelectionList)
    sel.focus()
    await pilot.pause()
    for n in names:
        idx = [sel.get_option_at_index(i).value for i in range(sel.option_count)].index(n)
        await pilot.press("home", *["down"] * idx, "space")
        await pilot.pause()


async def test_network_list_shows_facts_and_follows_the_tenant():
    from types import SimpleNamespace as N
    from textual.widgets import SelectionList
    nets = {"demo": [N(name="net1", kind="overlay", vlan=None, cidr="10.0.0.0/24", physnet=None),
                     N(name="pub", kind="provider", vlan=100, cidr="10.100.0.0/24", physnet="physnet1")],
            "other": [N(name="lan", kind="provider", vlan=None, cidr="192.168.5.0/24", physnet="physnet1")]}
    wiz = VmWizard(networks=nets, tenant="demo")
    app = Host(wiz, inventory=INV)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        sel = wiz.query_one("#networks", SelectionList)
        labels = [str(sel.get_option_at_index(i).prompt) for i in range(sel.option_count)]
        assert [l.split() for l in labels] == [["net1", "overlay", "10.0.0.0/24"],
                                               ["pub", "VLAN", "100", "physnet1", "10.100.0.0/24"]]
        await pick(pilot, wiz, "pub")
        await pilot.press("space")  # toggles pub off again
        await pilot.pause()
        assert wiz.form()["networks"] == ""
        await pick(pilot, wiz, "pub", "net1")
        assert wiz.form()["networks"] == "pub,net1"
        await type_into(pilot, wiz, "tenant", "other")  # another tenant: its networks, no picks
        labels = [str(sel.get_option_at_index(i).prompt) for i in range(sel.option_count)]
        assert [l.split()[:3] for l in labels] == [["lan", "flat", "physnet1"]]
        assert wiz.form()["networks"] == ""
        await type_into(pilot, wiz, "tenant", "nobody")
        assert sel.option_count == 0
        assert "tenant nobody has no networks" in str(wiz.query_one("#hint-networks", Static).render())


async def test_fields_check_as_you_type(pubkey):
    wiz = VmWizard(networks={"demo": ["net1", "net2"]}, vm_names={"taken"})
    app = Host(wiz)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "1/3 basics" in str(wiz.query_one("#title", Static).render())
        await type_into(pilot, wiz, "name", "Bad_Name")
        assert "lowercase" in why(wiz, "name")
        await type_into(pilot, wiz, "name", "taken")
        assert "exists already" in why(wiz, "name")
        await type_into(pilot, wiz, "name", "web1")
        assert why(wiz, "name") == ""
        await type_into(pilot, wiz, "vcpus", "0")
        assert "1 to 64" in why(wiz, "vcpus")
        await type_into(pilot, wiz, "vcpus", "2")
        assert why(wiz, "vcpus") == ""
        await type_into(pilot, wiz, "ram", "12")
        assert "MiB" in why(wiz, "ram")
        await type_into(pilot, wiz, "ram", "512")
        await type_into(pilot, wiz, "disk", "x")
        assert "whole number" in why(wiz, "disk")
        await type_into(pilot, wiz, "disk", "4")
        # networks: a keyboard multi-select of the tenant's networks; Next refuses with none picked
        await pilot.press("ctrl+n")
        assert wiz.page == "basics" and "Networks" in str(wiz.query_one("#status", Static).render())
        assert "pick at least one network" in why(wiz, "networks")
        await pick(pilot, wiz, "net2", "net1")  # NICs in the order picked
        assert why(wiz, "networks") == "" and wiz.form()["networks"] == "net2,net1"
        assert "NICs in order: 1 net2, 2 net1" in str(wiz.query_one("#hint-networks", Static).render())
        # each row starts with its pick number, unpicked rows blank: no colour needed to tell
        sel = wiz.query_one("#networks")
        drawn = {str(sel.get_option_at_index(i).value): sel.render_line(i).text
                 for i in range(sel.option_count)}
        assert drawn["net2"].startswith(" 1  net2") and drawn["net1"].startswith(" 2  net1")
        assert all(line.startswith("    ") and "X" not in line[:3]
                   for name, line in drawn.items() if name not in ("net1", "net2"))
        assert "▐" not in "".join(drawn.values())
        # the anti-affinity group the CLI has
        await type_into(pilot, wiz, "anti_affinity", "Web Tier")
        assert "lowercase" in why(wiz, "anti_affinity")
        await type_into(pilot, wiz, "anti_affinity", "web")
        assert why(wiz, "anti_affinity") == ""
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert wiz.page == "access"

        # access page: keys, YAML, password
        wiz.query_one("#ssh_keys", TextArea).text = "not a key"
        await pilot.pause()
        assert "line 1" in why(wiz, "ssh_keys")
        wiz.query_one("#ssh_keys", TextArea).text = pubkey + "\n"
        await pilot.pause()
        assert why(wiz, "ssh_keys") == ""
        wiz.query_one("#user_data", TextArea).text = "packages: [htop\n"
        await pilot.pause()
        assert "not valid YAML: line" in why(wiz, "user_data")
        wiz.query_one("#user_data", TextArea).text = "password: hunter2222\n"
        await pilot.pause()
        assert "clear text" in why(wiz, "user_data")
        wiz.query_one("#user_data", TextArea).text = "packages: [htop]\n"
        await pilot.pause()
        assert why(wiz, "user_data") == ""
        await type_into(pilot, wiz, "user", "root")
        assert "system account" in why(wiz, "user")
        await type_into(pilot, wiz, "user", "")
        assert why(wiz, "user") == ""  # the template's default user
        await type_into(pilot, wiz, "password", "short")
        assert "8 characters" in why(wiz, "password")
        await type_into(pilot, wiz, "password", "correct horse")
        assert why(wiz, "password") == ""
        # leaving the field hashes the password and wipes the clear text
        wiz.query_one("#user", Input).focus()
        await pilot.pause()
        pw = wiz.query_one("#password", Input)
        assert pw.value == "" and wiz.password_hash.startswith("$6$")
        assert "hashed: $6$" in pw.placeholder
        assert "correct horse" not in repr(wiz.form())
        req = wiz.request()
        assert req.password_hash == wiz.password_hash and req.networks == ("net2", "net1")
        assert req.anti_affinity == "web"
        assert req.vcpus == 2 and req.ram_mib == 512 and req.disk_gib == 4 and req.host is None
        # no session: review says so instead of hanging
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert wiz.page == "review"
        assert "not connected" in str(wiz.query_one("#status", Static).render())
        await pilot.press("ctrl+b")
        assert wiz.page == "access"
        await pilot.press("escape")
        await pilot.pause()
    assert app.closed is None


async def test_growth_ceilings_check_as_you_type_and_reach_the_request(pubkey):
    """Max vCPUs / Max RAM: empty = automatic (the rule as placeholder); typed values are checked
    by provision.check_max_vcpus/check_max_ram (the service's and `vm create --max-*`'s rule)
    and land in the VmRequest; review shows them."""
    import argparse
    from virtdeck.console import cli_vm
    from virtdeck.console.errors import ValidationError
    from virtdeck.console.services import provision as pv
    from virtdeck.console.services import provision_checks
    from virtdeck.screens.wizard_vm import ceilings_text
    wiz = VmWizard(networks={"demo": ["net1"]})
    app = Host(wiz)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "automatic: 4×" in wiz.query_one("#max_vcpus", Input).placeholder
        assert "MiB; automatic: 2×" in wiz.query_one("#max_ram", Input).placeholder
        await type_into(pilot, wiz, "name", "web1")
        await type_into(pilot, wiz, "vcpus", "2")
        await type_into(pilot, wiz, "max_vcpus", "1")
        assert why(wiz, "max_vcpus") == "2 (the vCPUs) to 64 whole vCPUs"
        with pytest.raises(ValidationError) as e:  # the service says the same
            provision_checks.growth_limits(2, 512, 0, 0, max_vcpus=1)
        assert e.value.field == "max-vcpus" and e.value.reason == why(wiz, "max_vcpus")
        await type_into(pilot, wiz, "max_vcpus", "65")
        assert "to 64" in why(wiz, "max_vcpus")
        await type_into(pilot, wiz, "max_vcpus", "x")
        assert why(wiz, "max_vcpus") == "must be a whole number"
        await type_into(pilot, wiz, "max_ram", "256")
        assert why(wiz, "max_ram") == "512 (the RAM) to 1048576 MiB"
        await type_into(pilot, wiz, "max_ram", "1.5")
        assert why(wiz, "max_ram") == "must be a whole number"
        await pick(pilot, wiz, "net1")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert wiz.page == "basics"
        assert "fix: Max vCPUs, Max RAM" in str(wiz.query_one("#status", Static).render())
        await type_into(pilot, wiz, "max_vcpus", "")  # empty again = automatic, no complaint
        assert why(wiz, "max_vcpus") == ""
        await type_into(pilot, wiz, "max_ram", "2000")  # any whole MiB from the size up
        assert why(wiz, "max_ram") == ""
        await type_into(pilot, wiz, "vcpus", "4")
        await type_into(pilot, wiz, "max_vcpus", "8")
        assert why(wiz, "max_vcpus") == ""
        await type_into(pilot, wiz, "vcpus", "9")  # the size grows past the ceiling typed
        assert why(wiz, "max_vcpus") == "9 (the vCPUs) to 64 whole vCPUs"
        await type_into(pilot, wiz, "vcpus", "4")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert wiz.page == "access"
        wiz.query_one("#ssh_keys", TextArea).text = pubkey
        await type_into(pilot, wiz, "password", "correct horse")
        wiz._hash_now()
        req = wiz.request()
        assert (req.vcpus, req.max_vcpus, req.ram_mib, req.max_ram_mib) == (4, 8, 512, 2000)
        # the same request from `vm create --max-vcpus 8 --max-ram 2000`
        args = argparse.Namespace(
            name="web1", tenant="demo", template="debian12", vcpus=4, ram=512, disk=4, network=["net1"],
            ip=None, ssh_key=[pubkey], user=None, password_stdin=False, password_hash=wiz.password_hash,
            user_data=None, host=None, weigher="spread", anti_affinity=None, max_vcpus=8, max_ram=2000,
            no_start=False)
        cli = cli_vm.build_request(args)
        assert (cli.max_vcpus, cli.max_ram_mib) == (req.max_vcpus, req.max_ram_mib)
        assert provision_checks.growth_limits(req.vcpus, req.ram_mib, 2, 8192, req.max_vcpus, req.max_ram_mib) == (8, 2000)
        # review (no session here): the ceilings typed, RAM/vCPUs "automatic" when left empty
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert wiz.page == "review"
        assert str(wiz.query_one("#ceilings", Static).render()) == "growth ceilings: vCPUs 8, RAM 2000 MiB"
        await pilot.press("ctrl+b", "ctrl+b")
        await type_into(pilot, wiz, "max_vcpus", "")
        await type_into(pilot, wiz, "max_ram", "")
        assert wiz.request().max_vcpus is None and wiz.request().max_ram_mib is None
        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert wiz.page == "review"
        assert str(wiz.query_one("#ceilings", Static).render()) == \
            "growth ceilings: vCPUs automatic (4×, ≤ host), RAM automatic (2×, ≤ host)"
    # once placed: the values the domain gets on the chosen host (Preview.limits)
    assert ceilings_text(pv.VmRequest("a", "t", "x", 1, 512, 4, ("n",), (), "", max_vcpus=8),
                         (8, 1024), "hv1") == "growth ceilings: vCPUs 8 (given), RAM 1024 MiB (automatic) on hv1"


async def test_pinned_host_and_template_select():
    wiz = VmWizard(networks={"demo": ["net1"]})
    app = Host(wiz)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        wiz.query_one("#host", Select).value = "hv2"
        await pilot.pause()
        assert wiz.form()["host"] == "hv2"
        wiz.query_one("#host", Select).value = "__auto__"
        await pilot.pause()
        assert wiz.form()["host"] == ""
        assert wiz.query_one("#template", Select).value == "debian12"
        assert wiz.query_one("#user", Input).placeholder == "debian"


def test_screens_import_no_backend_libraries():
    """screens/ goes through console/services; the wizard itself names no backend library."""
    from pathlib import Path
    import virtdeck.screens.wizard_vm as mod
    src = Path(mod.__file__).read_text()
    for lib in ("libvirt", "ovsdbapp", "asyncssh"):
        assert f"import {lib}" not in src and f"from {lib}" not in src


# --------------------------------------------------------------------------- on the lab

@pytest.mark.lab
async def test_review_and_create_on_the_lab(lab_session, lab_inventory, pubkey, monkeypatch, tmp_path):
    from virtdeck.backends.ovn import networks as ovn_networks, security_groups as ovn_sg
    from provision_helpers import leftovers, remove_vm, roomy
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    tenant = f"t4w{uuid.uuid4().hex[:6]}"
    nb = lab_session.nb()
    ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=tenant, name="net1", kind="overlay", cidr="10.47.0.0/24", gateway="10.47.0.1"))
    name = f"t4-{uuid.uuid4().hex[:6]}"
    wiz = VmWizard(tenant=tenant)
    app = Host(wiz, session=lab_session, inventory=roomy(lab_inventory))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            for _ in range(100):  # networks are read in a worker
                if wiz.networks is not None:
                    break
                await pilot.pause(0.05)
            assert "net1" in wiz.networks.get(tenant, [])
            await type_into(pilot, wiz, "name", name)
            await type_into(pilot, wiz, "ram", "256")
            await type_into(pilot, wiz, "disk", "3")
            await pick(pilot, wiz, "net1")
            await pilot.press("ctrl+n")
            await pilot.pause()
            wiz.query_one("#ssh_keys", TextArea).text = pubkey
            await type_into(pilot, wiz, "password", "wizard-pass")
            wiz.query_one("#start").value = False  # boot is the e2e test's job
            await pilot.press("ctrl+n")
            for _ in range(200):
                await pilot.pause(0.05)
                if wiz.preview is not None or not wiz.busy:
                    break
            assert wiz.preview is not None, str(wiz.query_one("#status", Static).render())
            table = wiz.query_one("#placement", DataTable)
            assert table.row_count == len(lab_inventory.hypervisors)
            assert wiz.preview.limits is not None  # growth ceilings on the chosen host
            assert f"on {wiz.preview.placement.host}" in str(wiz.query_one("#ceilings", Static).render())
            seed = wiz.query_one("#seed", TextArea).text
            assert wiz.password_hash in seed and "wizard-pass" not in seed
            assert f"local-hostname: {name}" in seed
            await pilot.press("ctrl+s")
            for _ in range(400):
                await pilot.pause(0.05)
                if wiz.done:
                    break
            steps = str(wiz.query_one("#steps", Static).render())
            assert wiz.result is not None, steps + str(wiz.query_one("#status", Static).render())
            from virtdeck.console.services.provision import STEPS
            for _step, label in STEPS:
                assert f"✓ {label}" in steps  # every step reported
            # the seed created is the seed shown (same instance-id and MAC)
            assert wiz.result.instance_id == wiz.preview.seed.instance_id
            assert wiz.result.ports[0].mac == wiz.preview.macs[0]
            await pilot.press("escape")
            await pilot.pause()
        assert app.closed is wiz.result
    finally:
        remove_vm(lab_session, lab_inventory, tenant, name)
        assert leftovers(lab_session, lab_inventory, tenant, name) == {"domains": [], "volumes": [], "ports": []}
        ovn_networks.delete_network(nb, tenant, "net1", cascade=True)
        for sg in ovn_sg.list_security_groups(nb, tenant):
            ovn_sg.delete_security_group(nb, tenant, sg.name)


from provision_helpers import lab_inventory, lab_session  # noqa: E402,F401 (fixtures)


async def test_c_in_the_vms_panel_opens_the_wizard():
    """The console's binding: VMs panel, `c` → VmWizard() (session/inventory from the app)."""
    from virtdeck.console.app import FixedModel, VirtdeckApp
    from virtdeck.console.model import Cloud
    app = VirtdeckApp(FixedModel(Cloud()), inventory=INV)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, VmWizard)
        assert app.screen.inventory is INV and app.screen.session is None
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, VmWizard)
