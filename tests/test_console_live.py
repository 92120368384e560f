"""console.live.LiveModel against real components: the lab's hypervisors and NB, a throwaway
sshd (host-key prompts, a host that goes silent) and a throwaway NB ovsdb-server (NB down)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from dataclasses import replace

import pytest

from virtdeck.config.inventory import HostConfig, Inventory, OvnConfig, SshDefaults
from virtdeck.backends.session import Session
from virtdeck.console.live import LiveModel
from virtdeck.console.model import (HOST_HOSTKEY, HOST_REFUSED, HOST_UNREACHABLE, HOST_UP, NB_STALE,
                           NB_UP)
from fixtures_real import start_nb, start_sshd, stop_pid, wait_for
from live_helpers import descendants, isolated_user_known_hosts, tiny_domain  # noqa: F401 (autouse fixture)


def lab_host_socket(host: str) -> str:
    """The lab host's libvirt socket as seen from this (root) namespace."""
    from virtdeck.backends.lab.hosts import host_path
    return str(host_path(host, "/run/libvirt/libvirt-sock"))


def thaw(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------------------------------------
# The lab, changed from outside


@pytest.mark.lab
def test_lab_live_domains_and_switches_follow_within_1s(lab_inv):
    host = lab_inv.hypervisors[0].name
    live = LiveModel(lab_inv).start()
    try:
        assert live.wait_ready(20)
        cloud = live.snapshot()
        assert {h.name for h in cloud.hosts} == {h.name for h in lab_inv.hypervisors}
        assert all(h.state == HOST_UP for h in cloud.hosts)
        assert cloud.nb.state == NB_UP
        h = cloud.host(host)
        assert h.cores and h.ram_total_mib and h.bridge_mappings == (("physnet1", "br-phys"),)

        name = "vdlive-" + uuid.uuid4().hex[:6]
        xml = tiny_domain(name)
        s = live.session
        t0 = time.monotonic()
        assert s.run(host, f"qemu-img create -q -f qcow2 /tmp/{name}.qcow2 16M && "
                     f"cat > /tmp/{name}.xml <<'EOF'\n{xml}\nEOF\nvirsh -q define /tmp/{name}.xml").ok
        wait_for(lambda: any(v.name == name for v in live.snapshot().vms), 1.0, "defined domain")
        vm = next(v for v in live.snapshot().vms if v.name == name)
        assert vm.state == "shutoff" and vm.tenant == "livetest" and vm.host == host
        t_define = time.monotonic() - t0
        try:
            assert s.run(host, f"virsh -q start {name}").ok
            wait_for(lambda: any(v.name == name and v.state == "running"
                                 for v in live.snapshot().vms), 1.0, "running domain")
            assert s.run(host, f"virsh -q destroy {name}").ok
            wait_for(lambda: any(v.name == name and v.state == "shutoff"
                                 for v in live.snapshot().vms), 1.0, "stopped domain")
        finally:
            s.run(host, f"virsh -q destroy {name}; virsh -q undefine {name}; rm -f /tmp/{name}.xml /tmp/{name}.qcow2")
        wait_for(lambda: all(v.name != name for v in live.snapshot().vms), 1.0, "undefined domain")
        assert t_define < 1.0

        sw = "vdlive-" + uuid.uuid4().hex[:6]
        # ovn-nbctl in central over the session's SSH: the NB's unix socket (standalone) or
        # the members' sockets (cluster-ssl, no via_host: ovn-nbctl finds the leader itself)
        from virtdeck.backends.lab.central import local_remote
        nb = f"--db={local_remote('nb')}"
        via = lab_inv.ovn.via_host or "central"
        assert s.run(via, ["ovn-nbctl", nb, "ls-add", sw]).ok
        try:
            wait_for(lambda: live.snapshot().network(sw) is not None, 1.0, "new switch")
            assert s.run(via, ["ovn-nbctl", nb, "lsp-add", sw, sw + "-p1"]).ok
            wait_for(lambda: any(p.name == sw + "-p1" for p in live.snapshot().ports), 1.0, "new port")
            assert s.run(via, ["ovn-nbctl", nb, "lsp-del", sw + "-p1"]).ok
            wait_for(lambda: all(p.name != sw + "-p1" for p in live.snapshot().ports), 1.0, "port gone")
        finally:
            s.run(via, ["ovn-nbctl", nb, "--if-exists", "ls-del", sw])
        wait_for(lambda: live.snapshot().network(sw) is None, 1.0, "switch gone")
    finally:
        live.stop()


def sshd_host(sshd, name: str, socket: str = "/nonexistent/libvirt-sock") -> HostConfig:
    return HostConfig(name=name, address=sshd.address, port=sshd.port, user="root",
                      libvirt_socket=socket, domain_type="qemu")


@pytest.mark.lab
def test_silent_host_is_unreachable_within_10s_others_keep_going_then_resyncs(tmp_path, lab_inv):
    """hv1 is reached through our own sshd (forwarding to the lab host's libvirt socket);
    freezing that sshd's session processes makes hv1 go silent. hv2 stays up throughout."""
    sshd = start_sshd(tmp_path / "sshd")
    hv1, hv2 = lab_inv.hypervisors[0], lab_inv.hypervisors[1]
    # our sshd's host key next to the lab's; hv1 logs in with our sshd's client key
    kh = tmp_path / "known_hosts"
    kh.write_text(open(lab_inv.ssh.known_hosts).read() + sshd.known_hosts.read_text())
    hv1_via_sshd = replace(sshd_host(sshd, hv1.name, lab_host_socket(hv1.name)),
                           identity=str(sshd.client_key))
    inv = Inventory(hosts=(hv1_via_sshd, hv2),
                    ssh=SshDefaults(known_hosts=str(kh), identity=lab_inv.ssh.identity))
    live = LiveModel(inv, stats_interval=0.5).start()
    frozen: list[int] = []
    defined = False
    try:
        assert live.wait_ready(20)
        assert [h.state for h in live.snapshot().hosts] == [HOST_UP, HOST_UP]
        for pid in descendants(sshd.pid):
            try:
                os.kill(pid, signal.SIGSTOP)
                frozen.append(pid)
            except ProcessLookupError:   # a short-lived command's process already gone
                pass
        assert frozen, "no sshd session process to freeze"
        t0 = time.monotonic()
        wait_for(lambda: live.snapshot().host(hv1.name).state == HOST_UNREACHABLE, 12,
                 "silent host marked unreachable")
        took = time.monotonic() - t0
        print(f"silent host marked unreachable after {took:.1f} s")
        assert took <= 10.0, f"took {took:.1f} s"
        cloud = live.snapshot()
        assert cloud.host(hv2.name).state == HOST_UP
        assert cloud.host(hv1.name).cores                       # last known facts kept
        g = cloud.generation
        # while hv1 is cut off from the console, someone defines a domain there
        name = "vdgone-" + uuid.uuid4().hex[:6]
        xml = tiny_domain(name)
        with Session(lab_inv) as other:
            assert other.run(hv1.name, f"cat > /tmp/{name}.xml <<'EOF'\n{xml}\nEOF\n"
                                       f"virsh -q define /tmp/{name}.xml").ok
        defined = True
        assert all(v.name != name for v in live.snapshot().vms)
        thaw(frozen)
        frozen = []
        live.reconnect(hv1.name)
        wait_for(lambda: live.snapshot().host(hv1.name).state == HOST_UP, 15, "resync")
        assert live.snapshot().generation > g
        assert any(v.name == name and v.host == hv1.name for v in live.snapshot().vms)
    finally:
        thaw(frozen)
        if defined:
            with Session(lab_inv) as other:
                other.run(hv1.name, f"virsh -q undefine {name}; rm -f /tmp/{name}.xml")
        live.stop()
        stop_pid(sshd.pid)


# ---------------------------------------------------------------------------------------------
# Without the lab


def test_unknown_host_key_waits_for_the_operator_then_changed_key_is_refused(tmp_path):
    sshd = start_sshd(tmp_path / "sshd")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inv = Inventory(hosts=(sshd_host(sshd, "box"),),
                    ssh=SshDefaults(identity=str(sshd.client_key), known_hosts=str(empty)))
    live = LiveModel(inv).start()
    try:
        assert live.wait_ready(10)
        h = live.snapshot().host("box")
        assert h.state == HOST_HOSTKEY
        expected = subprocess.run(["ssh-keygen", "-lf", str(sshd.dir / "ssh_host_ed25519_key.pub")],
                                  capture_output=True, text=True, check=True).stdout.split()[1]
        assert h.host_key == expected
        (req,) = live.host_key_requests()
        assert req.fingerprint == expected
        time.sleep(1.5)                                   # never accepted silently
        assert live.snapshot().host("box").state == HOST_HOSTKEY
        live.trust_host_key("box")
        assert expected.split(":")[1] and sshd.host_key_pub.split()[1] in empty.read_text()
        # now SSH gets through; libvirt is not there, so the host is unreachable (retried)
        wait_for(lambda: live.snapshot().host("box").state == HOST_UNREACHABLE, 10, "past SSH")
        assert "libvirt" in live.snapshot().host("box").error or "forward" in live.snapshot().host("box").error
    finally:
        live.stop()
    # the key changes (host reinstalled, or someone in the middle): refused, not asked
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kt, kb = other.with_suffix(".pub").read_text().split()[:2]
    empty.write_text(f"[127.0.0.1]:{sshd.port} {kt} {kb}\n")
    live = LiveModel(inv).start()
    try:
        assert live.wait_ready(10)
        h = live.snapshot().host("box")
        assert h.state == HOST_REFUSED and "HOST KEY CHANGED" in h.error
        assert live.host_key_requests() == ()
    finally:
        live.stop()
        stop_pid(sshd.pid)


def test_refused_ssh_is_unreachable_quickly(tmp_path):
    sshd = start_sshd(tmp_path / "sshd")
    stop_pid(sshd.pid)
    inv = Inventory(hosts=(sshd_host(sshd, "gone"),),
                    ssh=SshDefaults(identity=str(sshd.client_key), known_hosts=str(sshd.known_hosts)))
    live = LiveModel(inv).start()
    try:
        assert live.wait_ready(5)
        h = live.snapshot().host("gone")
        assert h.state == HOST_UNREACHABLE and "retrying" in h.error
    finally:
        live.stop()


def test_nb_down_marks_stale_keeps_data_and_returns(tmp_path):
    server = start_nb(tmp_path / "nb")
    subprocess.run(["ovn-nbctl", f"--db={server.unix}", "ls-add", "kept"], check=True)
    inv = Inventory(ovn=OvnConfig(connection=server.unix))
    live = LiveModel(inv, nb_reset_after=1.0).start()
    try:
        assert live.wait_ready(10)
        assert live.snapshot().nb.state == NB_UP
        assert [n.name for n in live.snapshot().networks] == ["kept"]
        stop_pid(server.pid)
        wait_for(lambda: live.snapshot().nb.state == NB_STALE, 3, "NB marked stale")
        assert [n.name for n in live.snapshot().networks] == ["kept"]      # still shown
        time.sleep(2.5)                                                    # past a reset
        assert [n.name for n in live.snapshot().networks] == ["kept"]
        server = start_nb(tmp_path / "nb")
        subprocess.run(["ovn-nbctl", f"--db={server.unix}", "ls-add", "new"], check=True)
        wait_for(lambda: live.snapshot().nb.state == NB_UP and
                 [n.name for n in live.snapshot().networks] == ["kept", "new"], 20, "NB back")
    finally:
        live.stop()
        stop_pid(server.pid)
