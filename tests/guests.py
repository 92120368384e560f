"""Real guests in lab tests: boot a VM through the provisioning service, reach it over SSH from a
jump point on the lab's networks, run commands inside it, clean it up.

A guest is a Debian 12 VM from the lab template ``debian12`` made by
:func:`console.services.provision.create_vm` (the service behind ``virtdeck vm create`` and the
wizard), with real cloud-init (hostname, user ``debian``, the test's SSH key, DHCP on every NIC).
Under TCG it answers SSH ~70–90 s after start on an idle machine (LAB-NOTES.md).

The jump point is anything on the guest's network that can run ``ssh``: a probe port
(``Via(probe.host, probe.argv())``), the lab's outside host (``Via("outside", [])``) or an
address-only namespace such as the VLAN 100 external host (``Via(None, netns_argv("vd-ext100"))``;
host None runs on the machine itself). Usage::

    key = keypair(tmp_path)
    res = boot(session, inventory, tenant="t1", name="t1-vm", networks=("net",), key=key, host="hv1")
    g = Guest(res.name, res.ports[0].ip, key, Via("outside", []))
    g.wait_ssh()                          # seconds until the first successful login
    g.sh("hostname")                      # CompletedProcess of a shell command in the guest
    assert g.ping("172.16.0.254")         # ICMP echo from inside the guest (raw socket, sudo)
    tcp_transfer(("outside", None), g.via(), "172.16.0.254")   # the guest as a TCP client

The template has no ping binary (iputils is not in the image recipe, backends/lab/image.py), so
:meth:`Guest.ping` sends ICMP echo with a python3 raw socket (python3 is there for cloud-init),
optionally bound to a source address (like ``ping -I ADDR``).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from probes import Via, run_on

BOOT_TIMEOUT = 420          # s; a TCG boot takes ~70–90 s idle, 130–230 s with other guests booting
SSH_OPTS = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR")

PING_PY = r"""
import os, socket, struct, sys, time
dst, count, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
src = sys.argv[4] if len(sys.argv) > 4 else None
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
if src:
    s.bind((src, 0))
ident, got, payload = os.getpid() & 0xFFFF, 0, b"virtdeck-ping-01"
for seq in range(count):
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    s.sendto(struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, seq) + payload, (dst, 0))
    end = time.monotonic() + wait
    while time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            break
        ihl = (data[0] & 15) * 4
        t, _c, _s, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if t == 0 and rid == ident and rseq == seq and addr[0] == dst:
            got += 1
            time.sleep(max(0.0, min(0.5, end - time.monotonic())))
            break
print("%d/%d replies from %s%s" % (got, count, dst, " (source %s)" % src if src else ""))
sys.exit(0 if got else 1)
"""


def keypair(directory: Path, name: str = "id_ed25519") -> Path:
    """A fresh passphrase-less ed25519 key in ``directory``; returns the private key path (the
    public key is beside it, ``.pub``)."""
    key = Path(directory) / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def netns_argv(netns: str) -> list[str]:
    """Prefix running a command in a plain network namespace of the machine (vd-ext100, …)."""
    return ["ip", "netns", "exec", netns]


def boot(session, inventory, *, tenant: str, name: str, networks: tuple[str, ...], key: Path,
         host: str | None = None, ips: tuple = (), vcpus: int = 1, ram_mib: int = 512, disk_gib: int = 3):
    """Create and start VM ``name`` from template debian12 through the provisioning service
    (exactly what ``virtdeck vm create`` does) with ``key``'s public half; returns its
    :class:`~console.services.provision.CreateResult` (``.host``, ``.ports[i].ip``/``.name``,
    ``.submit_to_running`` s, ``.serial_log``). Raises CreateError (nothing left behind)."""
    from virtdeck.console.cloudinit import hash_password
    from virtdeck.console.services import provision
    pub = Path(str(key) + ".pub").read_text().strip()
    return provision.create_vm(session, inventory, provision.VmRequest(
        name=name, tenant=tenant, template="debian12", vcpus=vcpus, ram_mib=ram_mib, disk_gib=disk_gib,
        networks=tuple(networks), ssh_keys=(pub,), password_hash=hash_password("unused-password-1"),
        host=host, ips=tuple(ips)))


def remove(session, inventory, tenant: str, name: str) -> None:
    """Test clean-up of VM ``name``: the product's delete (domain, volumes, LSPs, DHCP rows, FIPs),
    then :func:`provision_helpers.remove_vm` for anything a failed delete left. Never raises for a
    VM that is not there."""
    from virtdeck.console.services import vm_delete
    from provision_helpers import remove_vm
    try:
        vm_delete.delete(session, name, missing_ok=True)
    finally:
        remove_vm(session, inventory, tenant, name)


def wait_cloud_init(session, host: str, log: str, timeout: float = BOOT_TIMEOUT) -> tuple[float, float]:
    """Wait for cloud-init's final message (:data:`console.cloudinit.DONE_MARKER`) on the serial
    log ``log`` of lab ``host``; returns (guest uptime at that point s, wall s waited)."""
    from virtdeck.console import cloudinit
    t0 = time.monotonic()
    pat = re.compile(re.escape(cloudinit.DONE_MARKER) + r" after ([0-9.]+) s")
    out = ""
    while time.monotonic() - t0 < timeout:
        out = session.run(host, ["cat", log], timeout=20).stdout
        m = pat.search(out)
        if m:
            return float(m.group(1)), time.monotonic() - t0
        time.sleep(2)
    raise AssertionError(f"no '{cloudinit.DONE_MARKER}' on {host}:{log} after {timeout} s; tail:\n{out[-2000:]}")


@dataclass
class Guest:
    """A VM reached as ``user@ip`` with ``key`` over SSH from ``jump`` (a :class:`probes.Via`
    whose prefix runs a command at the jump point)."""

    name: str
    ip: str
    key: Path
    jump: Via
    user: str = "debian"

    def ssh_argv(self, connect_timeout: int = 8) -> list[str]:
        """The jump point's argv up to and including ``user@ip`` (a command string follows)."""
        return [*self.jump.prefix, "ssh", "-i", str(self.key), *SSH_OPTS, "-o", f"ConnectTimeout={connect_timeout}",
                f"{self.user}@{self.ip}"]

    def via(self) -> Via:
        """This guest as a :func:`probes.tcp_transfer` endpoint (commands run inside it)."""
        return Via(self.jump.host, self.ssh_argv(), quote=True)

    def sh(self, command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run shell ``command`` inside the guest as ``user``; AssertionError on failure if
        ``check`` (with the guest's stderr)."""
        r = run_on(self.jump.host, [*self.ssh_argv(), command], check=False, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{self.name}: {command!r} exited {r.returncode}: {(r.stderr or r.stdout)[-500:]}")
        return r

    def wait_ssh(self, timeout: float = BOOT_TIMEOUT, since: float | None = None, stop=None) -> float:
        """Retry a login until it works; returns seconds from ``since`` (a time.monotonic()
        value, default now) to the first successful login. AssertionError after ``timeout`` or
        once ``stop`` (a threading.Event, for a poll in a thread) is set."""
        t0 = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            r = run_on(self.jump.host, [*self.ssh_argv(connect_timeout=5), "true"], check=False, timeout=40)
            if r.returncode == 0:
                return time.monotonic() - t0
            if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                raise AssertionError(f"ssh into {self.name} ({self.ip}) never worked: {r.stderr[-300:]}")
            if stop is not None:
                stop.wait(4)
            else:
                time.sleep(4)

    def ping(self, addr: str, count: int = 3, wait: float = 2, source: str | None = None, tries: int = 1) -> bool:
        """ICMP echo from inside the guest (root raw socket, see module doc); True when at least
        one of ``count`` requests is answered. ``source`` binds the request to that address
        (``ping -I``); ``tries`` repeats the whole attempt."""
        argv = ["sudo", "python3", "-c", PING_PY, addr, str(count), str(wait), *([source] if source else [])]
        for _ in range(tries):
            r = self.sh(shlex.join(argv), check=False, timeout=count * wait + 30)
            if r.returncode == 0:
                return True
        return False
