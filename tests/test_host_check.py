"""`virtdeck host check`: the preflight's reading of a host (pure, from probe values and
capabilities XML) and the real thing on the lab's hypervisors — healthy hosts all ok, a pool
that does not exist (fail, then `--create-pool` into a temporary directory on the host: ok, then
removed again), and the probe's answer when ovn-controller is not running.

ovn-controller is never stopped on the shared lab: that case runs in a lab of its own inside
`virtdeck lab sandbox` (backends/lab/sandbox.py), which removes it afterwards.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from virtdeck.backends import preflight as pf
from virtdeck.console.cli import main
from virtdeck.console.services import host_check
from provision_helpers import lab_inventory, lab_session  # noqa: F401

HEALTHY = {
    "user": "root", "groups": "root", "tool.flock": "/usr/bin/flock", "tool.gzip": "/usr/bin/gzip",
    "tool.sha256sum": "/usr/bin/sha256sum", "lockdir": "writable", "ovs-vsctl": "/usr/bin/ovs-vsctl",
    "br-int": "0", "ovs.rc": "0", "ovs.system-id": "hv1", "ovs.ovn-remote": "tcp:192.168.100.10:6642",
    "ovs.ovn-encap-ip": "172.16.0.11", "ovs.ovn-encap-type": "geneve",
    "ovs.ovn-bridge-mappings": "physnet1:br-phys", "ovnc.pid": "16426", "ovnc.comm": "ovn-controller",
    "ovnc.status": "connected", "sb.rc": "0 hv1", "sb.encap": "geneve,172.16.0.11",
}


def by_fact(lines):
    return {line.fact: line for line in lines}


# ---------------------------------------------------------------------------------------------
# Pure: the probe's values read into lines


def test_parse_probe_reads_only_marked_lines():
    text = "motd noise\n@@user=alice\n@@sb.encap=geneve,10.0.0.1;\n@@empty=\nnot@@this=1\n"
    assert pf.parse_probe(text) == {"user": "alice", "sb.encap": "geneve,10.0.0.1", "empty": ""}


def test_healthy_values_are_all_ok():
    lines = pf.ovn_lines("hv1", HEALTHY) + [pf.tools_line("hv1", HEALTHY)]
    assert [(line.fact, line.status) for line in lines] == [
        ("br-int", "ok"), ("ovn-controller", "ok"), ("sb chassis", "ok"), ("bridge mappings", "ok"),
        ("tools", "ok")]
    assert by_fact(lines)["sb chassis"].detail == "chassis hv1 in tcp:192.168.100.10:6642, encap geneve 172.16.0.11"


def test_ovn_controller_not_running_fails_naming_it_and_the_fix():
    v = {**HEALTHY, "ovnc.pid": "", "ovnc.comm": "", "ovnc.status": "2023-01-01|ovn-appctl|cannot read pidfile"}
    line = by_fact(pf.ovn_lines("hv1", v))["ovn-controller"]
    assert line.status == "fail" and "ovn-controller is not running" in line.detail
    assert line.fix == "on hv1: sudo systemctl start ovn-controller"
    stale = by_fact(pf.ovn_lines("hv1", {**v, "ovnc.pid": "4242", "ovnc.comm": "bash"}))["ovn-controller"]
    assert stale.status == "fail" and "stale pidfile, pid 4242" in stale.detail


def test_chassis_missing_or_other_encap():
    gone = by_fact(pf.ovn_lines("hv1", {**HEALTHY, "sb.rc": "0 hv2"}))["sb chassis"]
    assert gone.status == "fail" and "chassis hv1 is not in the southbound" in gone.detail
    other = by_fact(pf.ovn_lines("hv1", {**HEALTHY, "sb.encap": "geneve,172.16.0.99"}))["sb chassis"]
    assert other.status == "warn" and "ovn-encap-ip=172.16.0.11" in other.detail
    unset = by_fact(pf.ovn_lines("hv1", {**HEALTHY, "ovs.system-id": ""}))["sb chassis"]
    assert unset.status == "fail" and "system-id" in unset.detail and "ovs-vsctl set" in unset.fix


def test_unreadable_ssl_files_ask_the_inventorys_southbound(tmp_path):
    """The operator may not read the SSL file ovn-controller runs with (the probe says
    "unreadable FILE"): the line names the file and the fix; with the same SB members in the
    inventory's sb_connection, the chassis is asked there (a REAL SB ovsdb-server, 1-member
    raft) and the line is ok, saying so; another SB is never asked in the host's stead."""
    import subprocess

    from fixtures_real import start_nb_cluster
    from virtdeck.backends.session import Session
    from virtdeck.config.inventory import Inventory, OvnConfig
    sb = start_nb_cluster(tmp_path / "sb", n=1, kind="sb")
    try:
        subprocess.run(["ovn-sbctl", f"--db={sb.remote}", "chassis-add", "hv1", "geneve", "172.16.0.11"],
                       check=True, capture_output=True)
        v = {**HEALTHY, "ovs.ovn-remote": sb.remote, "sb.rc": "unreadable /etc/ovn/key.pem", "sb.encap": ""}
        line = by_fact(pf.ovn_lines("hv1", v))["sb chassis"]
        assert line.status == "warn" and "may not read ovn-controller's SSL file /etc/ovn/key.pem" in line.detail
        assert "sb_connection" in line.fix
        none = by_fact(pf.ovn_lines("hv1", {**v, "sb.rc": "unreadable -"}))["sb chassis"]
        assert none.status == "warn" and "no SSL files (none in OVS's SSL table" in none.detail
        with Session(Inventory(ovn=OvnConfig(sb_connection=sb.remote)), connect_timeout=10) as s:
            line = by_fact(pf.ovn_lines("hv1", host_check._sb_fallback(s, v)))["sb chassis"]
            assert line.status == "ok", line
            assert line.detail == (f"chassis hv1 in {sb.remote}, encap geneve 172.16.0.11 "
                                   "(asked through the inventory's sb_connection)")
            gone = {**v, "ovs.system-id": "hv9"}
            assert by_fact(pf.ovn_lines("hv9", host_check._sb_fallback(s, gone)))["sb chassis"].status == "fail"
        with Session(Inventory(ovn=OvnConfig(sb_connection="tcp:192.0.2.1:6642")), connect_timeout=2) as s:
            assert host_check._sb_fallback(s, v) is v
    finally:
        sb.stop()


def test_no_bridge_mappings_warns_and_no_ovs_fails():
    line = by_fact(pf.ovn_lines("hv1", {**HEALTHY, "ovs.ovn-bridge-mappings": ""}))["bridge mappings"]
    assert line.status == "warn" and "ovn-bridge-mappings=physnet1:br-phys" in line.fix
    denied = pf.ovn_lines("hv1", {**HEALTHY, "br-int": "1 ovs-vsctl: unix:/run/openvswitch/db.sock: "
                                                       "database connection failed (Permission denied)",
                                  "user": "alice"})
    assert [(line.fact, line.status) for line in denied] == [("ovs", "fail")]
    assert "alice may not read the OVS database" in denied[0].detail


def test_missing_tool_names_its_package():
    line = pf.tools_line("hv1", {**HEALTHY, "tool.gzip": ""})
    assert line.status == "fail" and "missing gzip" in line.detail
    assert line.fix == "on hv1: sudo apt-get install gzip"


def test_guest_arches_from_capabilities():
    caps = ("<capabilities><host><cpu><arch>x86_64</arch></cpu></host>"
            "<guest><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>"
            "<guest><arch name='aarch64'><domain type='qemu'/></arch></guest></capabilities>")
    assert pf.guest_arches(caps) == {"x86_64": ("qemu", "kvm"), "aarch64": ("qemu",)}


def test_text_has_one_line_per_fact_and_fixes_under_failures():
    res = {"ok": False, "hosts": [{"host": "hv1", "status": "fail", "lines": [
        pf.CheckLine("ssh", "ok", "root@10.0.0.1:22").as_dict(),
        pf.CheckLine("pool x", "fail", "no storage pool 'x'", "virtdeck host check hv1 --pool x --create-pool /p").as_dict()]}]}
    assert host_check.check_text(res) == [
        "hv1: fail",
        "  ok    ssh              root@10.0.0.1:22",
        "  fail  pool x           no storage pool 'x'",
        "                         fix: virtdeck host check hv1 --pool x --create-pool /p"]


# ---------------------------------------------------------------------------------------------
# The lab


@pytest.mark.lab
def test_healthy_lab_hosts_are_all_ok(lab_inventory, capsys):
    assert main(["--config", str(lab_inventory.path), "host", "check", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["ok"] is True
    assert [h["host"] for h in res["hosts"]] == [h.name for h in lab_inventory.hypervisors]
    from virtdeck.backends.lab import central, topology as topo
    sb = topo.sb_remote(central.flavour())  # each ovn-controller's ovn-remote: tcp or the ssl members
    for h in res["hosts"]:
        facts = {line["fact"]: line for line in h["lines"]}
        assert [s for s in (line["status"] for line in h["lines"]) if s != "ok"] == [], h
        assert list(facts) == ["ssh", "libvirt", "kvm", "guest arches", "pool virtdeck", "br-int",
                               "ovn-controller", "sb chassis", "bridge mappings", "tools"]
        assert facts["sb chassis"]["detail"].startswith(f"chassis {h['host']} in {sb}, encap geneve")
        assert facts["bridge mappings"]["detail"] == "physnet1 → br-phys"


@pytest.mark.lab
def test_missing_pool_fails_then_create_pool_makes_it(lab_inventory, lab_session, tmp_path, capsys, monkeypatch):
    """A second pool name that does not exist (in a temporary inventory copy): fail with the fix,
    then --create-pool into a fresh directory on hv1: ok (active, autostart); then removed."""
    from virtdeck.config.inventory import save
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    pool = f"vdcheck{uuid.uuid4().hex[:6]}"
    tpl = replace(lab_inventory.templates[0], name="second", pool=pool)
    inv = tmp_path / "inventory.toml"
    save(replace(lab_inventory, templates=(*lab_inventory.templates, tpl)), inv)
    path = f"/var/tmp/{pool}"
    try:
        assert main(["--config", str(inv), "host", "check", "hv1", "--json"]) == 1
        lines = {line["fact"]: line for line in json.loads(capsys.readouterr().out)["hosts"][0]["lines"]}
        assert lines[f"pool {pool}"]["status"] == "fail"
        assert lines[f"pool {pool}"]["fix"] == f"virtdeck host check hv1 --pool {pool} --create-pool /var/lib/libvirt/images/{pool}"
        assert lines["pool virtdeck"]["status"] == "ok"

        assert main(["--config", str(inv), "host", "check", "hv1", "--pool", pool, "--create-pool", path]) == 0
        out = capsys.readouterr().out
        assert f"  ok    pool {pool:<11} {path}, active," in out and out.rstrip().endswith("(placement lock)")
        p = lab_session.libvirt("hv1").storagePoolLookupByName(pool)
        assert p.isActive() and p.autostart()
        audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert [(a["verb"], a["outcome"], a["details"]["pool"]) for a in audit] == [("host.create-pool", "ok", pool)]
        assert main(["--config", str(inv), "host", "check", "hv1"]) == 0  # both pools now
    finally:
        conn = lab_session.libvirt("hv1")
        if pool in conn.listStoragePools() + conn.listDefinedStoragePools():
            pf.remove_pool(conn, "hv1", pool, delete_dir=True)
    assert lab_session.run("hv1", ["test", "-e", path]).rc == 1  # the directory went with it


@pytest.mark.lab
def test_ovn_controller_stopped_is_a_fail_line_in_a_sandbox():
    """In a lab of our own (`virtdeck lab sandbox`, 1 hypervisor, ~10 s): ovn-controller on hv1
    told to exit; `host check hv1` fails naming it, and the chassis it took out of the SB."""
    import os
    import sys
    from pathlib import Path
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from virtdeck.backends.lab.sandbox import run_sandboxed
    script = ("virtdeck lab up -n 1 >/dev/null 2>&1 || exit 99; "
              f"{sys.executable} -c 'from virtdeck.backends.lab.hosts import run_in; "
              "run_in(\"hv1\", [\"ovn-appctl\", \"-t\", \"ovn-controller\", \"exit\"])' || exit 98; "
              "sleep 1; virtdeck host check hv1 --json; echo \"rc=$?\"; virtdeck lab down >/dev/null 2>&1")
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, VIRTDECK_LAB_KEEP="", PATH=f"{bindir}:{os.environ.get('PATH', '')}")
    p = run_sandboxed(["sh", "-c", script], capture=True, timeout=300,
                      cwd=Path(__file__).resolve().parents[1], env=env)
    assert p.stdout.rstrip().endswith("rc=1"), p.stdout[-3000:] + p.stderr[-2000:]  # a fail line: ExitCode.FAILED
    res = json.loads(p.stdout.rstrip().rpartition("rc=")[0])
    lines = {line["fact"]: line for line in res["hosts"][0]["lines"]}
    assert (lines["ovn-controller"]["status"], lines["ovn-controller"]["detail"]) == (
        "fail", "ovn-controller is not running")
    assert lines["ovn-controller"]["fix"] == "on hv1: sudo systemctl start ovn-controller"
    assert lines["sb chassis"]["status"] == "fail"
    assert lines["ssh"]["status"] == lines["pool virtdeck"]["status"] == lines["tools"]["status"] == "ok"
    assert p.stray == [], f"the sandboxed lab left processes behind: {p.stray}"  # its down ran
