"""Every readiness fact of the lab, checked from the outside as a client would."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from virtdeck.backends.lab import topology as topo

pytestmark = pytest.mark.lab
VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))


def test_ssh_into_every_host_with_lab_key_and_strict_known_hosts(lab):
    for host in ["central", *lab.hypervisors]:
        p = lab.ssh(host, ["sh", "-c", "hostname; ip -4 -o addr show eth0"])
        name, addr = p.stdout.splitlines()[:2]
        assert name == host
        assert lab.addresses[host] + "/24" in addr


def test_known_hosts_holds_real_host_keys(lab, tmp_path):
    # A known_hosts with another key for the host must make strict checking refuse.
    other = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    bad = tmp_path / "known_hosts"
    bad.write_text(f"{lab.addresses['hv1']} {other.with_suffix('.pub').read_text()}")
    argv = lab.ssh_argv("hv1", ["true"])
    argv[argv.index(f"UserKnownHostsFile={lab.known_hosts}")] = f"UserKnownHostsFile={bad}"
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "HOST IDENTIFICATION HAS CHANGED" in p.stderr


def test_sshd_refuses_another_key(lab, tmp_path):
    other = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    argv = lab.ssh_argv("central", ["true"])
    argv[argv.index(str(lab.identity))] = str(other)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert p.returncode == 255 and "Permission denied" in p.stderr


def test_virsh_over_ssh_with_strict_host_keys_sees_pool_and_template(lab):
    for hv in lab.hypervisors:
        uri = lab.libvirt_uri(hv)
        assert uri.startswith("qemu+libssh://") and "known_hosts=" in uri
        p = subprocess.run(["virsh", "-c", uri, "vol-list", topo.POOL_NAME], capture_output=True,
                           text=True, timeout=60, check=True)
        for vol in ("debian12.qcow2", "debian12.vmlinuz", "debian12.initrd"):
            assert vol in p.stdout
        p = subprocess.run(["virsh", "-c", uri, "list", "--all"], capture_output=True, text=True,
                           timeout=60, check=True)
        assert "Id" in p.stdout


def test_virsh_over_ssh_refuses_a_host_key_not_in_known_hosts(lab, tmp_path):
    from virtdeck.backends.lab.status import libvirt_ssh_uri
    wrong = tmp_path / "known_hosts"
    # hv1's address with central's key: a different host answering must be refused.
    central_key = [ln for ln in lab.known_hosts.read_text().splitlines() if ln.startswith("central,")][0]
    wrong.write_text(f"{lab.addresses['hv1']} {' '.join(central_key.split()[1:])}\n")
    p = subprocess.run(["virsh", "-c", libvirt_ssh_uri(lab.addresses["hv1"], str(wrong)), "list"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "HOST KEY VERIFICATION FAILED" in p.stderr, p.stdout + p.stderr


def test_libvirtd_through_strict_ssh_uses_the_hosts_own_socket(lab):
    for hv in lab.hypervisors:
        p = lab.ssh(hv, ["virsh", "-c", "qemu:///system", "pool-info", topo.POOL_NAME])
        assert re.search(r"State:\s+running", p.stdout)
        assert lab.ssh(hv, ["test", "-S", topo.LIBVIRT_SOCKET], check=False).returncode == 0
        p = lab.ssh(hv, ["hostname"])
        assert p.stdout.strip() == hv


def test_sb_lists_one_geneve_chassis_per_hypervisor(lab):
    out = lab.sbctl("show")  # over tcp, or ssl to the member list (cluster-ssl)
    chassis = re.findall(r"^Chassis (\S+)", out, re.M)
    assert sorted(c.strip('"') for c in chassis) == sorted(lab.hypervisors)
    assert out.count("Encap geneve") == len(lab.hypervisors)
    for i, _ in enumerate(lab.hypervisors, 1):
        assert f'ip: "172.16.0.{10 + i}"' in out


def test_nb_reachable_from_the_underlay_and_on_central_unix_sockets(lab):
    """Standalone: plain tcp 6641 and central's unix socket. Cluster-ssl: the ssl member list
    with the operator's certificate, each member's own unix socket inside central, and plain
    tcp refused (the members listen on ssl only, as production's do)."""
    from virtdeck.backends.lab import central
    p = subprocess.run([*central.ctl_argv("nb", timeout=10), "get-connection"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    for remote in central.local_remote("nb").split(","):
        p = lab.ssh("central", ["ovn-nbctl", f"--db={remote}", "--no-leader-only", "--timeout=10", "show"])
        assert p.returncode == 0
    if lab.flavour != topo.OVN_CLUSTER_SSL:
        return
    p = subprocess.run(["ovn-nbctl", f"--db={topo.NB_TCP}", "--timeout=3", "show"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0  # the members listen on ssl only


def test_hypervisor_ovs_config(lab):
    for i, hv in enumerate(lab.hypervisors, 1):
        p = lab.ssh(hv, ["ovs-vsctl", "get", "Open_vSwitch", ".", "external_ids"])
        ids = p.stdout
        assert f'system-id={hv}' in ids
        assert "ovn-bridge-mappings=\"physnet1:br-phys\"" in ids
        assert "ovn-encap-type=geneve" in ids
        p = lab.ssh(hv, ["ovs-vsctl", "get", "Bridge", "br-int", "datapath_type"])
        assert p.stdout.strip() == "netdev"
        p = lab.ssh(hv, ["ovs-vsctl", "list-ports", "br-phys"])
        assert "eth1" in p.stdout.split()


def test_tunnel_ips_and_outside_host_reachable_on_physnet(lab):
    hv = lab.hypervisors[0]
    for hv2_i in range(2, len(lab.hypervisors) + 1):
        lab.run_in(hv, ["busybox", "ping", "-c", "1", "-W", "2", f"172.16.0.{10 + hv2_i}"])
    lab.run_in(hv, ["busybox", "ping", "-c", "1", "-W", "2", topo.OUTSIDE_ADDRESS])


@pytest.mark.parametrize("vlan", sorted(topo.VLAN_HOSTS))
def test_vlan_external_host_reachable_through_an_access_port(lab, vlan):
    """A tagged port on hv1's br-phys reaches the VLAN host across vd-phys (OVS tags, the Linux
    bridge forwards, the outside's br-ext access port untags) — and only on its own VLAN."""
    hv = lab.hypervisors[0]
    _ns, target = topo.VLAN_HOSTS[vlan]
    port = f"vlt{vlan}"
    lab.run_in(hv, ["ovs-vsctl", "--may-exist", "add-port", "br-phys", port, f"tag={vlan}",
                    "--", "set", "Interface", port, "type=internal"])
    try:
        prefix = target.rsplit(".", 1)[0]
        lab.run_in(hv, ["ip", "addr", "replace", f"{prefix}.99/24", "dev", port])
        lab.run_in(hv, ["ip", "link", "set", port, "up"])
        p = lab.run_in(hv, ["busybox", "ping", "-c", "3", "-W", "2", target], check=False)
        assert re.search(r"[123] packets received", p.stdout), p.stdout
        # Same addresses, wrong tag: nothing answers.
        other = next(v for v in topo.VLAN_HOSTS if v != vlan)
        lab.run_in(hv, ["ovs-vsctl", "set", "Port", port, f"tag={other}"])
        lab.run_in(hv, ["ip", "neigh", "flush", "dev", port])
        p = lab.run_in(hv, ["busybox", "ping", "-c", "2", "-W", "1", target], check=False)
        assert "0 packets received" in p.stdout, p.stdout
    finally:
        lab.run_in(hv, ["ovs-vsctl", "--if-exists", "del-port", "br-phys", port])


def test_inventory_matches_the_lab(lab):
    from virtdeck.config.inventory import load
    from virtdeck.backends.lab.image import cached_template, sha256_file
    inv = load(lab.inventory)
    names = [h.name for h in inv.hosts]
    assert names == ["central", *lab.hypervisors]
    if lab.flavour == topo.OVN_CLUSTER_SSL:  # the ssl member lists and the operator's pair
        from virtdeck.backends.lab import pki
        assert inv.ovn.via_host is None and inv.ovn.uses_ssl
        assert inv.ovn.connection == topo.nb_remote(lab.flavour)
        assert inv.ovn.sb_connection == topo.sb_remote(lab.flavour)
        assert inv.ovn.ca_cert == str(pki.ca_bundle())
        assert inv.ovn.certificate == str(pki.pair("operator").cert)
    else:
        assert inv.ovn.via_host == "central"
    assert inv.ssh.known_hosts == str(lab.known_hosts)
    tpl = cached_template()
    assert tpl is not None
    (t,) = inv.templates
    assert t.sha256 == tpl.sha256 == sha256_file(tpl.qcow2)
    assert t.kernel == "debian12.vmlinuz" and t.initrd == "debian12.initrd"


def test_status_cli_reports_ready(lab):
    p = subprocess.run([VIRTDECK, "lab", "status"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"lab: ready ({len(lab.hypervisors)} hypervisors" in p.stdout


def test_second_up_repairs_nothing_and_duplicates_nothing(lab):
    from virtdeck.backends.lab.state import load_state
    before = load_state()["holders"]
    pids = lab.run_in("hv1", ["cat", "/run/libvirtd.pid", "/run/ovn/ovn-controller.pid"]).stdout
    p = subprocess.run([VIRTDECK, "lab", "up", "-n", str(len(lab.hypervisors))],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert load_state()["holders"] == before
    assert lab.run_in("hv1", ["cat", "/run/libvirtd.pid", "/run/ovn/ovn-controller.pid"]).stdout == pids
    p = lab.ssh("hv1", ["ovs-vsctl", "list-br"])
    assert p.stdout.split() == ["br-int", "br-phys"]
    p = lab.ssh("hv1", ["ovs-vsctl", "list-ports", "br-phys"])
    assert p.stdout.split().count("eth1") == 1


def test_up_restarts_a_dead_daemon(lab):
    # ovn-northd: restarting it disturbs nobody (it recomputes the same SB flows), unlike
    # ovn-controller (flow reinstall) or an sshd (new logins refused meanwhile).
    # Cluster-ssl runs one northd per member: the last one's (a standby when the first is
    # active, so nothing fails over; the check below wants one active either way).
    from virtdeck.backends.lab import central
    from virtdeck.backends.lab.hosts import host_path
    from virtdeck.backends.lab.state import kill_pids, read_pidfile
    from virtdeck.backends.lab.status import check
    pidfile = host_path("central", central.pidfiles("northd")[-1])
    pid = read_pidfile(pidfile)
    assert pid, f"no northd running by {pidfile}"
    kill_pids([pid])
    p = subprocess.run([VIRTDECK, "lab", "up", "-n", str(len(lab.hypervisors))],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    new = read_pidfile(pidfile)
    assert new and new != pid
    assert check().ready


def test_same_named_guests_on_two_hypervisors_get_their_own_cgroups_and_cpu_stats(lab):
    """Each hypervisor's libvirtd lives in a cgroup namespace of its own: guests named alike on
    two hosts land in different cgroups, and libvirt can read their CPU time."""
    import uuid

    import libvirt

    from virtdeck.backends.domain_xml import DomainSpec, domain_xml
    from virtdeck.backends.lab.hosts import host_path, libvirt_uri
    if len(lab.hypervisors) < 2:
        pytest.skip("needs 2 hypervisors")
    if not all(host_path(hv, "/sys/fs/cgroup/cpuacct/cgroup.procs").exists() for hv in lab.hypervisors[:2]):
        pytest.skip("this lab was brought up before hosts had cgroups (lab down + up gives them)")
    name = f"cg-{uuid.uuid4().hex[:6]}"
    started = []
    try:
        for hv in lab.hypervisors[:2]:
            conn = libvirt.open(libvirt_uri(hv))
            pool = conn.storagePoolLookupByName(topo.POOL_NAME)
            vol = lambda v: pool.storageVolLookupByName(v).path()  # noqa: E731
            # A kernel with no root disk: it boots, panics and idles; enough to have a qemu.
            spec = DomainSpec(name, str(uuid.uuid4()), 1, 128, vol("debian12.qcow2"),
                              domain_type="qemu", kernel=vol("debian12.vmlinuz"),
                              initrd=vol("debian12.initrd"), cmdline="console=ttyS0 root=/dev/none")
            xml = domain_xml(spec).replace('<disk type="file" device="disk">',
                                           '<disk type="file" device="disk"><readonly/>')
            started.append((conn, conn.createXML(xml, 0)))
        groups = []
        for conn, dom in started:
            assert dom.getCPUStats(True)[0]["cpu_time"] >= 0
            # other running guests (a shared lab, an earlier test's) are listed too: find ours
            (stats,) = [s for s in conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_CPU_TOTAL)
                        if s[0].name() == name]
            assert "cpu.time" in stats[1]
            pid = _qemu_pid(dom)
            line = [ln for ln in open(f"/proc/{pid}/cgroup") if ":cpuacct:" in ln][0]
            groups.append(line.split(":", 2)[2].strip())
        assert groups[0] != groups[1], groups
        assert "/hv1/machine/" in groups[0] and "/hv2/machine/" in groups[1]
    finally:
        for conn, dom in started:
            try:
                dom.destroy()
            finally:
                conn.close()


def _qemu_pid(dom) -> int:
    """PID of a running domain's qemu (libvirt's pid file inside the host, same PID here)."""
    import re as _re
    for e in __import__("os").listdir("/proc"):
        if e.isdigit():
            try:
                cmd = open(f"/proc/{e}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"qemu-system-x86_64") and \
                    _re.search(rf"guest={_re.escape(dom.name())}(,|$)".encode(), b" ".join(cmd)) and \
                    dom.UUIDString().encode() in b" ".join(cmd):
                return int(e)
    raise AssertionError(f"no qemu process for {dom.name()}")
