"""`virtdeck host add | disable | enable | drain | remove` against the lab, always on a temporary
copy of the lab's inventory (never the lab's own inventory.toml), plus the registry's Hosts
panel keys.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import replace

import pytest

from virtdeck.config.inventory import load, save
from virtdeck.console import verbs
from virtdeck.console.cli import main
from provision_helpers import lab_inventory, lab_session, roomy  # noqa: F401


def test_hosts_panel_keys_come_from_the_registry():
    assert {(v.key, v.action) for v in verbs.all_verbs() if v.panel == "hosts" and v.key} == {
        ("C", "host_check"), ("M", "host_disable"), ("E", "host_enable")}
    assert verbs.for_key("hosts", "C").name == "host check"
    assert verbs.for_key("vms", "C") is None


@pytest.fixture
def inv_copy(lab_inventory, tmp_path, monkeypatch):
    """A copy of the lab's inventory in tmp (roomy ratios: other people's domains on the shared lab
    must not fill the hosts), audit records in tmp."""
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    path = tmp_path / "inventory.toml"
    save(roomy(lab_inventory), path)
    return path


def audit(tmp_path):
    return [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]


@pytest.mark.lab
def test_add_writes_a_valid_inventory_after_the_check(inv_copy, tmp_path, capsys):
    inv = load(inv_copy)
    hv2 = inv.host("hv2")
    save(replace(inv, hosts=tuple(h for h in inv.hosts if h.name != "hv2")), inv_copy)
    before = inv_copy.read_text()
    rc = main(["--config", str(inv_copy), "host", "add", "hv2", hv2.address, "--user", "root",
               "--port", "22", "--domain-type", "qemu"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.splitlines()[-1] == (f"added hv2 to {inv_copy} (previous file: {inv_copy}.bak)")
    assert "hv2: ok" in out and "  ok    sb chassis       chassis hv2 in" in out
    again = load(inv_copy)  # valid: the loader's own checks
    assert again.host("hv2") == replace(hv2, libvirt_socket=again.host("hv2").libvirt_socket)
    assert (tmp_path / "inventory.toml.bak").read_text() == before
    assert [(a["verb"], a["outcome"]) for a in audit(tmp_path)] == [("host.add", "ok")]
    rc = main(["--config", str(inv_copy), "host", "add", "hv2", hv2.address])
    assert rc == 4 and "already has a host named 'hv2'" in capsys.readouterr().err


@pytest.mark.lab
def test_add_refused_when_the_check_fails_unless_forced(inv_copy, tmp_path, capsys):
    before = inv_copy.read_text()
    # a loopback port nobody listens on: SSH fails at once
    argv = ["--config", str(inv_copy), "host", "add", "hvx", "127.0.0.1", "--port", "1"]
    assert main(argv) == 1
    cap = capsys.readouterr()
    assert "  fail  ssh" in cap.out and "hvx failed the host check (ssh); the inventory is unchanged" in cap.err
    assert inv_copy.read_text() == before
    assert main([*argv, "--force", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["forced"] is True and load(inv_copy).host("hvx").port == 1
    assert [a["outcome"] for a in audit(tmp_path)] == ["failed: the host check has fail lines (not written)", "ok"]
    # a host nothing lives on (it does not answer: --force) goes again
    assert main(["--config", str(inv_copy), "host", "remove", "hvx"]) == 5
    assert main(["--config", str(inv_copy), "host", "remove", "hvx", "--force"]) == 0
    assert [h.name for h in load(inv_copy).hosts] == [h.name for h in load(inv_copy.with_suffix(".toml.bak")).hosts
                                                       if h.name != "hvx"]


@pytest.mark.lab
def test_disable_makes_placement_refuse_with_the_reason(inv_copy, lab_session, tmp_path, capsys, monkeypatch):
    from virtdeck.backends.ovn import networks as ovn_networks, security_groups as ovn_sg
    assert main(["--config", str(inv_copy), "host", "disable", "hv1", "--reason", "disk swap"]) == 0
    assert capsys.readouterr().out == "hv1 disabled (disk swap): placement skips it\n"
    hv1 = load(inv_copy).host("hv1")
    assert (hv1.enabled, hv1.disabled_reason) == (False, "disk swap")
    assert main(["--config", str(inv_copy), "host", "disable", "hv1", "--reason", "disk swap"]) == 0
    assert "already disabled (nothing to do)" in capsys.readouterr().out

    t = f"t11{uuid.uuid4().hex[:6]}"
    nb = lab_session.nb()
    ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=t, name="net1", kind="overlay", cidr="10.47.0.0/24", gateway="10.47.0.1"))
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    create = ["--config", str(inv_copy), "vm", "create", f"t11-{t[3:]}", "--tenant", t, "--template",
              "debian12", "--ram", "256", "--disk", "3", "--network", "net1", "--ssh-key", f"{key}.pub",
              "--password-hash", "$6$salt$" + "x" * 86, "--dry-run", "--json"]
    try:
        assert main([*create, "--host", "hv1"]) == 2
        rows = {r["host"]: r for r in json.loads(capsys.readouterr().out)["placement"]}
        assert "enabled: host is disabled in the inventory (disk swap)" in rows["hv1"]["reasons"]
        assert main(["--config", str(inv_copy), "host", "enable", "hv1"]) == 0
        assert capsys.readouterr().out == "hv1 enabled: placement may pick it\n"
        assert main([*create, "--host", "hv1"]) == 0
        assert json.loads(capsys.readouterr().out)["host"] == "hv1"
    finally:
        ovn_networks.delete_network(nb, t, "net1", cascade=True)
        for sg in ovn_sg.list_security_groups(nb, t):
            ovn_sg.delete_security_group(nb, t, sg.name)
    assert [(a["verb"], a["outcome"], a["details"].get("reason")) for a in audit(tmp_path)] == [
        ("host.disable", "ok", "disk swap"), ("host.disable", "noop", "disk swap"), ("host.enable", "ok", None)]


@pytest.mark.lab
def test_drain_lists_and_remove_is_refused_while_domains_live_there(inv_copy, lab_session, capsys):
    """A shut-off domain of our own on hv2 (defined only, no disk): drain lists it with the command
    that moves it; remove is refused naming it."""
    name = f"t11drain-{uuid.uuid4().hex[:6]}"
    conn = lab_session.libvirt("hv2")
    dom = conn.defineXML(f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
                         "<os><type>hvm</type></os></domain>")
    try:
        assert main(["--config", str(inv_copy), "host", "drain", "hv2", "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        mine = next(r for r in res["left"] if r["name"] == name)
        assert mine == {"name": name, "state": "shutoff", "fix": "virtdeck host drain hv2 --move-to HOST"}
        assert main(["--config", str(inv_copy), "host", "remove", "hv2"]) == 4
        err = capsys.readouterr().err
        assert f"{name} (shutoff)" in err and "virtdeck host drain hv2" in err
        assert load(inv_copy).host("hv2")
    finally:
        dom.undefine()


async def test_hosts_panel_keys_run_the_verbs_on_the_highlighted_host(monkeypatch):
    """C shows the check's lines in a dialog, M asks then disables, E enables — through the
    registry's service functions (replaced here by recorders: the lab run is the CLI tests')."""
    from types import SimpleNamespace

    from virtdeck.console.app import FixedModel, VirtdeckApp
    from virtdeck.console.services import host_admin, host_check
    from virtdeck.screens.vm_dialogs import DetailsDialog
    from virtdeck.screens.vm_actions import ConfirmDialog
    from console_fixtures import sample_cloud

    calls = []
    line = {"fact": "ovn-controller", "status": "fail", "detail": "ovn-controller is not running",
            "fix": "on hv1: sudo systemctl start ovn-controller"}
    monkeypatch.setattr(host_check, "check", lambda s, name: calls.append(("check", name)) or
                        {"ok": False, "hosts": [{"host": name, "status": "fail", "lines": [line]}]})
    monkeypatch.setattr(host_admin, "disable", lambda s, name: calls.append(("disable", name)) or
                        {"host": name, "enabled": False, "reason": "maintenance", "outcome": "ok"})
    monkeypatch.setattr(host_admin, "enable", lambda s, name: calls.append(("enable", name)) or
                        {"host": name, "enabled": True, "reason": None, "outcome": "ok"})
    model = FixedModel(sample_cloud())
    model.session = SimpleNamespace(inventory="inv")
    app = VirtdeckApp(model)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("1", "C")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, DetailsDialog)
        text = "\n".join(app.screen.lines)
        assert "fail  ovn-controller   ovn-controller is not running" in text
        assert "fix: on hv1: sudo systemctl start ovn-controller" in text
        await pilot.press("escape", "M")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.press("E")
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert calls == [("check", "hv1"), ("disable", "hv1"), ("enable", "hv1")]


def test_a_disabled_host_shows_its_reason_in_the_hosts_panel(tmp_path):
    """The live model's Host for a host in maintenance: state "disabled", the reason as its line."""
    from virtdeck.config.inventory import HostConfig, Inventory
    from virtdeck.console.live import LiveModel
    inv = Inventory(hosts=(HostConfig("hv1", "192.0.2.1", enabled=False, disabled_reason="disk swap"),
                           HostConfig("hv2", "192.0.2.2", enabled=False)))
    model = LiveModel(inv, session=object())
    hosts = {h.name: h for h in model._build().hosts}
    assert (hosts["hv1"].state, hosts["hv1"].error) == ("disabled", "disabled in the inventory: disk swap")
    assert hosts["hv2"].error == "disabled in the inventory: no reason given"
