"""The VM verbs on the lab, through the `virtdeck vm …` CLI (a real process per verb).

VMs here are built the way the provisioning service builds them (qcow2 overlay on the lab's
debian12 template, NoCloud seed ISO, LSP named by a UUID on an overlay network, domain XML with
direct kernel boot, type 'qemu') but only DEFINED: a test starts at most one TCG guest at a time
and powers it off before the next.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from virtdeck.backends import storage
from virtdeck.backends.ovn import routers as ovn_routers
from provision_helpers import lab_inventory, lab_session  # noqa: F401 (fixtures)
from vm_lab_helpers import NET, POOL, TENANT, leftovers, make_vm, net  # noqa: F401 (net: fixture)

pytestmark = pytest.mark.lab

VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))


@pytest.fixture
def audit_log(tmp_path):
    return tmp_path / "audit.jsonl"


def cli(inv, audit_log, *argv, input=None, timeout=120, env=None):
    """Run `virtdeck --config LAB …` as a process; returns CompletedProcess (text)."""
    e = dict(os.environ, VIRTDECK_AUDIT_LOG=str(audit_log), **(env or {}))
    return subprocess.run([VIRTDECK, "--config", str(inv.path), *argv], capture_output=True, text=True,
                          input=input, timeout=timeout, env=e)


def cli_json(inv, audit_log, *argv, rc=0, **kw):
    p = cli(inv, audit_log, *argv, "--json", **kw)
    assert p.returncode == rc, (p.returncode, p.stdout, p.stderr)
    return json.loads(p.stdout) if p.stdout.strip() else None


def audit(audit_log):
    return [json.loads(l) for l in audit_log.read_text().splitlines()] if audit_log.exists() else []


def roomy_host(session, inv, vcpus, ram_mib, exclude=()):
    """A hypervisor whose allocations leave room for ``vcpus``/``ram_mib`` (other engineers'
    benchmarks may fill a lab host with defined domains); skips the test when none has."""
    from virtdeck.console.services.vm_resize import host_facts
    alloc = inv.allocation
    for h in inv.hypervisors:
        if h.name in exclude:
            continue
        f = host_facts(session, h.name)
        if f.reachable and f.alloc_vcpus + vcpus <= f.cores * alloc.cpu_ratio and \
                f.alloc_ram_mib + ram_mib <= f.ram_total_mib * alloc.ram_ratio:
            return h.name
    pytest.skip("no lab hypervisor has room for the test VM (other tests' domains fill them)")


@pytest.fixture
def cleanup(lab_session):
    names: list[str] = []
    yield names
    from virtdeck.console.services import vm_delete
    for n in names:
        try:
            vm_delete.delete(lab_session, n, missing_ok=True)
        except Exception as exc:  # noqa: BLE001 - best effort, report
            print(f"cleanup of {n}: {exc}")


# ---------------------------------------------------------------------------------------------


def test_lifecycle_verbs_through_cli(lab_session, lab_inventory, net, audit_log, cleanup):
    inv = lab_inventory
    cleanup.append("vmops-life")
    make_vm(lab_session, inv, net, "hv2", "vmops-life")
    r = cli_json(inv, audit_log, "vm", "start", "vmops-life")
    assert r[0]["outcome"] == "ok" and r[0]["host"] == "hv2" and r[0]["details"]["state"] == "running"
    assert cli_json(inv, audit_log, "vm", "start", "vmops-life")[0]["outcome"] == "noop"
    assert cli_json(inv, audit_log, "vm", "suspend", "vmops-life")[0]["details"]["state"] == "paused"
    assert cli_json(inv, audit_log, "vm", "suspend", "vmops-life")[0]["outcome"] == "noop"
    p = cli(inv, audit_log, "vm", "shutdown", "vmops-life", "--timeout", "1")
    assert p.returncode == 4 and "paused" in p.stderr and "Traceback" not in p.stderr
    assert cli_json(inv, audit_log, "vm", "resume", "vmops-life")[0]["outcome"] == "ok"
    assert cli_json(inv, audit_log, "vm", "reboot", "vmops-life", "--hard")[0]["details"]["hard"] is True
    # --timeout 0: the button only (a guest in early boot ignores it; tests/test_power_report.py)
    assert cli_json(inv, audit_log, "vm", "reboot", "vmops-life", "--timeout", "0")[0]["details"]["waited"] is False
    # The guest is still in early boot: it ignores the power button, so the timeout path shows.
    p = cli(inv, audit_log, "vm", "shutdown", "vmops-life", "--timeout", "1")
    assert p.returncode == 6, p.stderr
    assert "still running 1 s after the ACPI power button" in p.stderr and "vm poweroff vmops-life" in p.stderr
    r = cli_json(inv, audit_log, "vm", "shutdown", "vmops-life", "--timeout", "1", "--force")
    assert r[0]["outcome"] == "ok" and r[0]["details"]["forced"] is True
    assert cli_json(inv, audit_log, "vm", "poweroff", "vmops-life")[0]["outcome"] == "noop"
    assert cli_json(inv, audit_log, "vm", "shutdown", "vmops-life")[0]["outcome"] == "noop"
    p = cli(inv, audit_log, "vm", "resume", "vmops-life")
    assert p.returncode == 4 and p.stderr.count("\n") == 1
    recs = audit(audit_log)
    assert [(r["verb"], r["outcome"].split(":")[0]) for r in recs] == [
        ("vm.start", "ok"), ("vm.start", "noop"), ("vm.suspend", "ok"), ("vm.suspend", "noop"),
        ("vm.shutdown", "failed"), ("vm.resume", "ok"), ("vm.reboot", "ok"), ("vm.reboot", "ok"),
        ("vm.shutdown", "failed"), ("vm.shutdown", "ok"), ("vm.poweroff", "noop"), ("vm.shutdown", "noop"),
        ("vm.resume", "failed")]
    assert all(r["target"] == f"vm {TENANT}/vmops-life" and r["details"]["host"] == "hv2" for r in recs)


def test_delete_leaves_nothing_in_libvirt_or_ovn(lab_session, lab_inventory, net, audit_log, cleanup):
    inv = lab_inventory
    cleanup.append("vmops-del")
    log = "/var/log/libvirt/qemu/vmops-del-serial.log"
    lsp = make_vm(lab_session, inv, net, "hv1", "vmops-del", serial_log=log)
    nb = lab_session.nb()
    try:
        ovn_routers.create_router(nb, TENANT, "r1")
    except Exception:  # noqa: BLE001 - left by an interrupted run
        pass
    ip = [r for r in nb.tables["Logical_Switch_Port"].rows.values() if r.name == lsp][0].addresses[0].split()[1]
    ovn_routers.add_fip(nb, TENANT, "r1", "172.16.0.201", ip, port=lsp)
    assert len(leftovers(lab_session, inv, "vmops-del", [lsp])) == 5  # domain, 2 volumes, LSP, NAT
    cli_json(inv, audit_log, "vm", "start", "vmops-del")
    p = cli(inv, audit_log, "vm", "delete", "vmops-del")  # not a tty and no --yes: refused
    assert p.returncode == 2 and "--yes" in p.stderr
    r = cli_json(inv, audit_log, "vm", "delete", "vmops-del", "--yes")[0]
    assert r["outcome"] == "ok", r
    assert sorted(r["details"]["volumes"]) == ["vmops-del-seed.iso", "vmops-del.qcow2"]
    assert r["details"]["ports"] == [lsp] and len(r["details"]["nats"]) == 1
    assert leftovers(lab_session, inv, "vmops-del", [lsp]) == []
    assert r["details"]["serial_log"] == log and not lab_session.run("hv1", ["test", "-e", log]).ok
    # the template and its volumes are still there
    assert storage.find_volume(lab_session.libvirt("hv1"), "hv1", POOL, "debian12.qcow2") is not None
    p = cli(inv, audit_log, "vm", "delete", "vmops-del", "--yes")
    assert p.returncode == 3 and "no VM named vmops-del on hv1, hv2" in p.stderr
    assert cli_json(inv, audit_log, "vm", "delete", "vmops-del", "--yes", "--missing-ok")[0]["outcome"] == "noop"
    ovn_routers.delete_router(nb, TENANT, "r1")


def test_resize_ip_list_readonly(lab_session, lab_inventory, net, audit_log, cleanup):
    inv = lab_inventory
    cleanup.append("vmops-rs")
    host = roomy_host(lab_session, inv, 2, 1024)
    lsp = make_vm(lab_session, inv, net, host, "vmops-rs", vcpus=1, memory_mib=256, max_vcpus=2, max_memory_mib=512)
    r = cli_json(inv, audit_log, "vm", "resize", "vmops-rs", "--vcpus", "2", "--memory", "768")
    assert r["details"]["applied"] == {"vcpus": "next boot", "memory": "next boot"}
    dom = lab_session.libvirt(host).lookupByName("vmops-rs")
    assert dom.info()[3] == 2 and dom.info()[1] == 768 * 1024
    cores = lab_session.libvirt(host).getInfo()[2]
    p = cli(inv, audit_log, "vm", "resize", "vmops-rs", "--vcpus", str(cores * 4 + 1))
    assert p.returncode == 1 and f"{host} cannot hold vmops-rs" in p.stderr and "vcpus:" in p.stderr
    assert dom.info()[3] == 2
    # live: within the maximum now, beyond it at next boot
    cli_json(inv, audit_log, "vm", "resize", "vmops-rs", "--vcpus", "1", "--memory", "256")
    cli_json(inv, audit_log, "vm", "start", "vmops-rs")
    try:
        r = cli_json(inv, audit_log, "vm", "resize", "vmops-rs", "--memory", "384")
        assert r["details"]["applied"] == {"memory": "now"}, r
        r = cli_json(inv, audit_log, "vm", "resize", "vmops-rs", "--vcpus", "2")  # hot-plug up to <vcpu>
        assert r["details"]["applied"] == {"vcpus": "now"}, r
        assert dom.vcpusFlags(1) == 2  # VIR_DOMAIN_AFFECT_LIVE
        r = cli_json(inv, audit_log, "vm", "resize", "vmops-rs", "--memory", "1024")
        assert r["details"]["applied"]["memory"].startswith("next boot (live maximum is")
    finally:
        cli(inv, audit_log, "vm", "poweroff", "vmops-rs")
    # ip from OVN, list
    nics = cli_json(inv, audit_log, "vm", "ip", "vmops-rs")
    assert nics[0]["lsp"] == lsp and nics[0]["ips"] and nics[0]["ips"][0].startswith("10.66.0.")
    p = cli(inv, audit_log, "vm", "ip", "vmops-rs")
    assert p.returncode == 0 and nics[0]["ips"][0] in p.stdout
    rows = cli_json(inv, audit_log, "vm", "list", "--tenant", TENANT)
    assert [(v["host"], v["ips"]) for v in rows["vms"] if v["name"] == "vmops-rs"] == [(host, nics[0]["ips"])]
    # read-only refuses and changes nothing
    n = len(audit(audit_log))
    p = cli(inv, audit_log, "--readonly", "vm", "start", "vmops-rs")
    assert p.returncode == 7 and "--readonly" in p.stderr
    p = cli(inv, audit_log, "--readonly", "vm", "delete", "vmops-rs", "--yes")
    assert p.returncode == 7
    assert lab_session.libvirt(host).lookupByName("vmops-rs").state()[0] == 5  # shut off
    assert [r["outcome"][:7] for r in audit(audit_log)[n:]] == ["failed:", "failed:"]


def test_unreachable_host_fails_fast(lab_inventory, audit_log, tmp_path):
    """A verb aimed at a host that does not answer fails within the connect timeout, naming it."""
    text = Path(lab_inventory.path).read_text()
    text += ('\n[[hosts]]\nname = "hv9"\naddress = "192.168.100.19"\nuser = "root"\nport = 22\n'
             'domain_type = "qemu"\n')
    inv_path = tmp_path / "inventory.toml"
    inv_path.write_text(text)
    t0 = time.monotonic()
    p = subprocess.run([VIRTDECK, "--config", str(inv_path), "vm", "start", "ghost", "--host", "hv9"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, VIRTDECK_AUDIT_LOG=str(audit_log), VIRTDECK_CONNECT_TIMEOUT="3"))
    took = time.monotonic() - t0
    print(f"unreachable host: failed after {took:.1f} s: {p.stderr.strip()}")
    assert p.returncode == 5 and p.stderr.startswith("virtdeck: hv9") and "Traceback" not in p.stderr
    assert took < 15
    # searching every host: the VM is not on the reachable ones and hv9 is named as unreachable
    p = subprocess.run([VIRTDECK, "--config", str(inv_path), "vm", "start", "ghost"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, VIRTDECK_AUDIT_LOG=str(audit_log), VIRTDECK_CONNECT_TIMEOUT="3"))
    # not on the hosts that answered, but hv9 did not: absence not established (5, not 3)
    assert p.returncode == 5 and "no VM named ghost on hv1, hv2" in p.stderr and "hv9" in p.stderr


def console_capture(inv, audit_log, name, until: bytes, timeout: float, escape_after: float | None = None):
    """Run `virtdeck vm console NAME` in a pseudo-terminal, collect what the guest prints until
    ``until`` shows (or ``timeout``), then type Ctrl-]. Returns (output, exit code, detach s)."""
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.environ["VIRTDECK_AUDIT_LOG"] = str(audit_log)
        os.execv(VIRTDECK, [VIRTDECK, "--config", str(inv.path), "vm", "console", name])
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end and until not in buf:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                buf += os.read(fd, 65536)
            except OSError:
                break
    t0 = time.monotonic()
    os.write(fd, b"\x1d")
    while time.monotonic() - t0 < 10:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            buf += data
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return buf, os.waitstatus_to_exitcode(status), time.monotonic() - t0


def test_console_attach_and_detach(lab_session, lab_inventory, net, audit_log, cleanup):
    inv = lab_inventory
    cleanup.append("vmops-con")
    make_vm(lab_session, inv, net, "hv1", "vmops-con")
    p = cli(inv, audit_log, "vm", "console", "vmops-con")
    assert p.returncode == 4 and "start it to use its console" in p.stderr
    cli_json(inv, audit_log, "vm", "start", "vmops-con")
    try:
        out, rc, took = console_capture(inv, audit_log, "vmops-con", b"\n[", 90)
        print(f"console: detached {took:.1f} s after Ctrl-]")
        assert b"Ctrl-] to come back" in out
        assert b"\n[" in out.split(b"Ctrl-] to come back", 1)[1]  # a guest kernel/systemd line
        assert rc == 0 and took < 5
    finally:
        cli(inv, audit_log, "vm", "poweroff", "vmops-con")
    assert [r["verb"] for r in audit(audit_log)].count("vm.console") == 2
    p = cli(inv, audit_log, "--readonly", "vm", "console", "vmops-con")
    assert p.returncode == 7


def test_edit_config_rebuilds_seed(lab_session, lab_inventory, net, audit_log, cleanup):
    from virtdeck.backends import seed as seedmod
    inv = lab_inventory
    cleanup.append("vmops-cfg")
    make_vm(lab_session, inv, net, "hv2", "vmops-cfg")
    p = cli(inv, audit_log, "vm", "edit-config", "vmops-cfg", "--show")
    assert p.returncode == 0 and p.stdout.startswith("#cloud-config") and "hashed_passwd" in p.stdout
    before = p.stdout
    new = before + "runcmd:\n  - [sh, -c, 'echo VMOPS-EDITED > /dev/ttyS0']\n"
    r = cli_json(inv, audit_log, "vm", "edit-config", "vmops-cfg", "--file", "-", input=new)
    iid = r["details"]["instance_id"]
    assert r["outcome"] == "ok" and iid["from"] != iid["to"] and iid["to"].startswith("i-")
    conn = lab_session.libvirt("hv2")
    vol = storage.find_volume(conn, "hv2", POOL, "vmops-cfg-seed.iso")
    from virtdeck.console.services.vm_seed import _download
    docs = seedmod.read_nocloud_iso(_download(conn, vol, "hv2", "seed"))
    assert docs["user-data"] == new and f"instance-id: {iid['to']}" in docs["meta-data"]
    assert "local-hostname: vmops-cfg" in docs["meta-data"] and "macaddress" in docs["network-config"]
    # bad input changes nothing
    for bad, why in (("runcmd: [", "#cloud-config"), ("#cloud-config\nfoo: [", "line 2"),
                     ("#cloud-config\npassword: hunter2hunter2\n", "clear text")):
        p = cli(inv, audit_log, "vm", "edit-config", "vmops-cfg", "--file", "-", input=bad)
        assert p.returncode == 2 and why in p.stderr, p.stderr
    assert cli(inv, audit_log, "vm", "edit-config", "vmops-cfg", "--show").stdout == new
    assert cli_json(inv, audit_log, "vm", "edit-config", "vmops-cfg", "--file", "-", input=new)["outcome"] == "noop"
    # through $EDITOR (a script standing in for the operator): valid edit applied, invalid refused
    ed = audit_log.parent / "ed.py"
    ed.write_text("import sys\nopen(sys.argv[1], 'a').write(sys.argv[0] and \"bootcmd: [[true]]\\n\")\n")
    p = cli(inv, audit_log, "vm", "edit-config", "vmops-cfg", env={"EDITOR": f"{sys.executable} {ed}"})
    assert p.returncode == 0 and "new seed with instance-id" in p.stdout, p.stderr
    assert cli(inv, audit_log, "vm", "edit-config", "vmops-cfg", "--show").stdout.endswith("bootcmd: [[true]]\n")
    bad = audit_log.parent / "bad.py"
    bad.write_text("import sys\nopen(sys.argv[1], 'a').write('foo: [\\n')\n")
    p = cli(inv, audit_log, "vm", "edit-config", "vmops-cfg", env={"EDITOR": f"{sys.executable} {bad}"})
    assert p.returncode == 2 and "not valid YAML" in p.stderr
    recs = [r for r in audit(audit_log) if r["verb"] == "vm.edit-config"]
    assert [r["outcome"] for r in recs] == ["ok", "noop", "ok"]
    assert "hashed_passwd" not in audit_log.read_text() and "VMOPS-EDITED" not in audit_log.read_text()


def test_move_stopped_vm(lab_session, lab_inventory, net, audit_log, cleanup):
    inv = lab_inventory
    cleanup.append("vmops-mv")
    dst = roomy_host(lab_session, inv, 1, 256)
    src = next(h.name for h in inv.hypervisors if h.name != dst)
    lsp = make_vm(lab_session, inv, net, src, "vmops-mv")
    uuid_before = lab_session.libvirt(src).lookupByName("vmops-mv").UUIDString()
    cli_json(inv, audit_log, "vm", "start", "vmops-mv")
    p = cli(inv, audit_log, "vm", "move", "vmops-mv", "--to", dst)
    assert p.returncode == 4 and "shut it down before moving it" in p.stderr
    cli_json(inv, audit_log, "vm", "poweroff", "vmops-mv")
    r = cli_json(inv, audit_log, "vm", "move", "vmops-mv", "--to", dst)
    assert r["outcome"] == "ok" and r["host"] == dst and sorted(r["details"]["volumes"]) == \
        ["vmops-mv-seed.iso", "vmops-mv.qcow2"]
    print(f"move: {r['message']}")
    assert [x for x in leftovers(lab_session, inv, "vmops-mv", [lsp]) if x.startswith(src)] == []
    dom = lab_session.libvirt(dst).lookupByName("vmops-mv")
    assert dom.UUIDString() == uuid_before
    assert cli_json(inv, audit_log, "vm", "move", "vmops-mv", "--to", dst)["outcome"] == "noop"
    # it boots there and its port is bound by the new host's chassis
    cli_json(inv, audit_log, "vm", "start", "vmops-mv")
    try:
        nb = lab_session.nb()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = [x for x in nb.tables["Logical_Switch_Port"].rows.values() if x.name == lsp][0]
            if row.up == [True]:
                break
            time.sleep(0.5)
        assert row.up == [True]
    finally:
        cli(inv, audit_log, "vm", "poweroff", "vmops-mv")


@pytest.mark.slow
def test_edit_config_applies_on_next_boot(lab_session, lab_inventory, net, audit_log, cleanup):
    """Boot once (cloud-init runs the original user-data), edit the user-data, reboot: cloud-init
    sees the new instance-id and runs the new runcmd, which prints a marker on the serial console."""
    inv = lab_inventory
    cleanup.append("vmops-boot")
    make_vm(lab_session, inv, net, "hv2", "vmops-boot", memory_mib=512)
    cli_json(inv, audit_log, "vm", "start", "vmops-boot")
    try:
        t0 = time.monotonic()
        out, rc, _ = console_capture(inv, audit_log, "vmops-boot", b"cloud-init done", 240)
        assert b"cloud-init done" in out, out[-2000:]
        first = time.monotonic() - t0
        ud = cli(inv, audit_log, "vm", "edit-config", "vmops-boot", "--show").stdout
        ud += "runcmd:\n  - [sh, -c, 'echo VMOPS-EDITED > /dev/ttyS0']\n"
        cli_json(inv, audit_log, "vm", "edit-config", "vmops-boot", "--file", "-", input=ud)
        cli_json(inv, audit_log, "vm", "reboot", "vmops-boot", "--hard")
        t1 = time.monotonic()
        out, rc, _ = console_capture(inv, audit_log, "vmops-boot", b"VMOPS-EDITED", 240)
        print(f"edit-config: first boot to cloud-init done {first:.0f} s; reboot to new runcmd {time.monotonic() - t1:.0f} s")
        assert b"VMOPS-EDITED" in out, out[-2000:]
    finally:
        cli(inv, audit_log, "vm", "poweroff", "vmops-boot")
