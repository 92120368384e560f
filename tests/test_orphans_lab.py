"""Owner marks and reconcile on the lab (issue 16 item 4): a real `vm create` process held after
its ports step is in flight (its owner mark is held: nothing of it is an orphan); once it is killed
outright (SIGKILL: no undo runs) its disk and seed volumes, its LSP and an NVRAM file are listed
as orphans with their fix, `template list` no longer counts its disk as a VM, `check --fix` without
a terminal removes nothing, and `check vm NAME --fix --yes` removes exactly those orphans and the
stale mark — the well-made VM beside it keeps everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import tomllib
import uuid
from pathlib import Path

import pytest
import tomli_w

from virtdeck.backends import owner_marks, storage
from virtdeck.backends.ovn import networks as ovn_networks
from virtdeck.console.services import drift
from provision_helpers import lab_inventory, lab_session  # noqa: F401 (fixtures)
from vm_lab_helpers import KEY, POOL, make_vm

pytestmark = pytest.mark.lab

TAG = f"or{uuid.uuid4().hex[:5]}"
VIRTDECK = str(Path(sys.executable).parent / "virtdeck")   # the installed entry point
TENANT = "demo"

CREATE = textwrap.dedent("""
    import sys, time
    from virtdeck.config.inventory import load
    from virtdeck.backends.session import Session
    from virtdeck.console import cloudinit
    from virtdeck.console.services import provision as pv
    inv = load(sys.argv[1])
    def hook(phase, step, ctx):
        if phase == "after" and step == "ports":
            print("HELD", ctx.host, ctx.ports[0].name, flush=True)
            time.sleep(600)
    s = Session(inv)
    pv.create_vm(s, inv, pv.VmRequest(
        name=sys.argv[2], tenant=sys.argv[3], template="debian12", vcpus=1, ram_mib=128, disk_gib=3,
        networks=(sys.argv[4],), ssh_keys=(sys.argv[5],), password_hash=cloudinit.hash_password("orphan-pass"), host="hv1"),
        hook=hook)
""")


@pytest.fixture(scope="module")
def inv_file(lab, tmp_path_factory):
    """The lab's inventory with placement's load filter and ratios out of the way (the shared
    machine is busy; this is not a capacity test)."""
    data = tomllib.loads(lab.inventory.read_text())
    data["allocation"] = {"cpu_ratio": 1000.0, "ram_ratio": 100.0}
    data.setdefault("metrics", {}).update(cpu_threshold=100.0, ram_threshold=100.0)
    path = tmp_path_factory.mktemp("inv") / "inventory.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


@pytest.fixture(scope="module")
def world(lab, lab_session, lab_inventory, inv_file, tmp_path_factory):
    s, inv = lab_session, lab_inventory
    nb = s.nb()
    net = ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=TENANT, name=f"{TAG}n", kind="overlay", cidr="10.233.17.0/24", gateway="10.233.17.1",
        mtu=1400))
    w = {"net": net, "ok": f"{TAG}-ok", "dead": f"{TAG}-dead"}
    env = dict(os.environ, VIRTDECK_AUDIT_LOG=str(tmp_path_factory.mktemp("a") / "audit.jsonl"))
    proc = None
    try:
        w["ok_lsp"] = make_vm(s, inv, net, "hv1", w["ok"])
        proc = subprocess.Popen([sys.executable, "-c", CREATE, str(inv_file), w["dead"], TENANT, f"{TAG}n", KEY],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = proc.stdout.readline()
        assert line.startswith("HELD"), line + proc.stderr.read()
        _, host, lsp = line.split()
        w.update(proc=proc, host=host, dead_lsp=lsp, env=env)
        yield w
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for name in (w["ok"], w["dead"]):
            conn = s.libvirt("hv1")
            try:
                dom = conn.lookupByName(name)
                dom.undefine()
            except Exception:  # noqa: BLE001
                pass
            for vol in (f"{name}.qcow2", f"{name}-seed.iso"):
                storage.delete_volume(conn, "hv1", POOL, vol)
        lab.run_in("hv1", ["rm", "-f", f"{owner_marks.NVRAM_DIR}/{w['dead']}_VARS.fd",
                           owner_marks.path_of(w["dead"])], check=False)
        ovn_networks.delete_network(nb, TENANT, f"{TAG}n", cascade=True)


def _mine(rep, vm):
    return sorted((f.kind, f.subject) for f in rep["_findings"] if f.scope.get("vm") == vm)


def test_in_flight_then_killed_create(world, lab, lab_session, inv_file, capsys):
    s, dead = lab_session, world["dead"]
    # in flight: volumes and LSP exist, the mark is held -> nothing of it is judged
    marks = owner_marks.read_host(s, "hv1")
    (m,) = [m for m in marks.marks if m.vm == dead]
    assert m.busy and m.volumes == (f"{dead}.qcow2", f"{dead}-seed.iso")
    assert _mine(drift.check(s), dead) == []

    world["proc"].send_signal(signal.SIGKILL)          # no undo runs
    world["proc"].wait(30)
    lab.run_in("hv1", ["sh", "-c", f"mkdir -p {owner_marks.NVRAM_DIR} && "
                                   f"head -c 4096 /dev/zero > {owner_marks.NVRAM_DIR}/{dead}_VARS.fd"])
    import time
    deadline = time.monotonic() + 20   # sshd notices the dead client and the flock goes
    while time.monotonic() < deadline and any(m.busy for m in owner_marks.read_host(s, "hv1").marks
                                               if m.vm == dead):
        time.sleep(0.3)
    rep = drift.check(s)
    assert _mine(rep, dead) == sorted([
        ("lsp-orphan", f"LSP {world['dead_lsp']} ({TENANT}/{dead} {dead}-nic0)"),
        ("volume-orphan", f"volume hv1:{POOL}/{dead}-seed.iso"),
        ("volume-orphan", f"volume hv1:{POOL}/{dead}.qcow2"),
        ("nvram-orphan", f"NVRAM hv1:{owner_marks.NVRAM_DIR}/{dead}_VARS.fd"),
    ]), [f.subject for f in rep["_findings"] if f.scope.get("vm") == dead]
    assert _mine(rep, world["ok"]) == []

    # template list: the dead create's disk is no VM
    from virtdeck.console.services import templates
    (row,) = [r for r in templates.list_templates(s, s.inventory) if r.template.name == "debian12"]
    (hv1,) = [h for h in row.hosts if h.host == "hv1"]
    assert world["ok"] in hv1.users and dead not in hv1.users and f"{dead}.qcow2" in hv1.leftovers

    # --fix without a terminal and without --yes: nothing removed, exit 2
    r = subprocess.run([VIRTDECK, "--config", str(inv_file), "check",
                        "vm", dead, "--fix"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       env=world["env"], timeout=120)
    assert r.returncode == 2 and "nothing removed" in r.stderr, r.stderr
    assert f"volume hv1:{POOL}/{dead}.qcow2" in r.stdout and "[--fix removes it]" in r.stdout
    assert storage.find_volume(s.libvirt("hv1"), "hv1", POOL, f"{dead}.qcow2") is not None

    r = subprocess.run([VIRTDECK, "--config", str(inv_file), "check",
                        "vm", dead, "--fix", "--yes", "--json"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, env=world["env"], timeout=180)
    out = json.loads(r.stdout)
    assert r.returncode == 0, r.stderr
    assert len(out["fixed"]["removed"]) == 4 and not out["fixed"]["failed"]
    assert out["fixed"]["marks_dropped"] >= 1

    conn = s.libvirt("hv1")
    for vol in (f"{dead}.qcow2", f"{dead}-seed.iso"):
        assert storage.find_volume(conn, "hv1", POOL, vol) is None
    for vol in (f"{world['ok']}.qcow2", f"{world['ok']}-seed.iso"):
        assert storage.find_volume(conn, "hv1", POOL, vol) is not None
    assert conn.lookupByName(world["ok"]) is not None
    lsps = lab.nbctl("--bare", "--columns=name", "list", "Logical_Switch_Port").split()
    assert world["dead_lsp"] not in lsps and world["ok_lsp"] in lsps
    assert not [m for m in owner_marks.read_host(s, "hv1").marks if m.vm == dead]
    assert f"{dead}_VARS.fd" not in owner_marks.read_host(s, "hv1").nvram
    assert _mine(drift.check(s), dead) == []


def test_marks_outlive_a_create_and_go_with_its_undo(world, lab, inv_file, tmp_path, monkeypatch):
    """A finished create keeps its mark (so a domain undefined behind virtdeck's back leaves
    volumes the check claims); a create that fails after its seed and is undone drops it."""
    from virtdeck.backends.session import Session
    from virtdeck.config.inventory import load
    from virtdeck.console import cloudinit
    from virtdeck.console.services import provision as pv
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    inv = load(inv_file)
    pw = cloudinit.hash_password("orphan-pass")

    def req(name):
        return pv.VmRequest(name=name, tenant=TENANT, template="debian12", vcpus=1, ram_mib=128,
                            disk_gib=3, networks=(f"{TAG}n",), ssh_keys=(KEY,), password_hash=pw,
                            host="hv2", start=False)

    with Session(inv) as s:
        undone = f"{TAG}-undone"

        def fail(phase, step, ctx):
            if phase == "after" and step == "seed":
                raise RuntimeError("injected after seed")
        with pytest.raises(pv.CreateError):
            pv.create_vm(s, inv, req(undone), hook=fail)
        assert not [m for m in owner_marks.read_host(s, "hv2").marks if m.vm == undone]

        kept = f"{TAG}-kept"
        res = pv.create_vm(s, inv, req(kept))
        try:
            (m,) = [m for m in owner_marks.read_host(s, "hv2").marks if m.vm == kept]
            assert not m.busy and m.volumes == (f"{kept}.qcow2", f"{kept}-seed.iso")
            assert _mine(drift.check(s), kept) == []          # a VM with its domain: nothing to say
            lab.run_in("hv2", ["virsh", "-c", "qemu:///system", "undefine", kept])
            rep = drift.check(s)
            assert _mine(rep, kept) == sorted([
                ("lsp-orphan", f"LSP {res.ports[0].name} ({TENANT}/{kept} {kept}-nic0)"),
                ("volume-orphan", f"volume hv2:{POOL}/{kept}-seed.iso"),
                ("volume-orphan", f"volume hv2:{POOL}/{kept}.qcow2")])
            out = drift.fix(s, dict(rep, _findings=[f for f in rep["_findings"]
                                                    if f.scope.get("vm") == kept]))
            assert len(out["removed"]) == 3 and not out["failed"]
            assert not [m for m in owner_marks.read_host(s, "hv2").marks if m.vm == kept]
        finally:
            conn = s.libvirt("hv2")
            try:
                conn.lookupByName(kept).undefine()
            except Exception:  # noqa: BLE001
                pass
            for vol in (f"{kept}.qcow2", f"{kept}-seed.iso"):
                storage.delete_volume(conn, "hv2", POOL, vol)
            lab.run_in("hv2", ["rm", "-f", owner_marks.path_of(kept), owner_marks.path_of(undone)],
                       check=False)


def test_a_move_marks_its_copies_on_the_target_and_delete_drops_it(world, lab, lab_session, lab_inventory, tmp_path, monkeypatch):
    """vm move writes the VM's owner mark on the target before copying (held while it runs): the
    moved VM's volumes there are claimable, a finished move leaves nothing to report, and vm
    delete removes the mark with the volumes."""
    from virtdeck.console.services import vm_move
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    s, name = lab_session, f"{TAG}-mv"
    make_vm(s, lab_inventory, world["net"], "hv1", name)
    try:
        vm_move.move(s, name, "hv2")
        (m,) = [m for m in owner_marks.read_host(s, "hv2").marks if m.vm == name]
        assert not m.busy and set(m.volumes) == {f"{name}.qcow2", f"{name}-seed.iso"}
        assert _mine(drift.check(s), name) == []
        from virtdeck.console.services import vm_delete
        vm_delete.delete(s, name)             # a whole delete drops the mark with the volumes
        assert not [m for m in owner_marks.read_host(s, "hv2").marks if m.vm == name]
    finally:
        for host in ("hv1", "hv2"):
            conn = s.libvirt(host)
            try:
                conn.lookupByName(name).undefine()
            except Exception:  # noqa: BLE001
                pass
            for vol in (f"{name}.qcow2", f"{name}-seed.iso"):
                storage.delete_volume(conn, host, POOL, vol)
            lab.run_in(host, ["rm", "-f", owner_marks.path_of(name)], check=False)
