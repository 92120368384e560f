"""Probe ports: cheap stand-ins for VMs on the lab's real OVN datapath (no guest boot).

A probe is an OVS internal port on a lab hypervisor's br-int (``type=internal``,
``external_ids:iface-id=<LSP name>``, so ovn-controller binds the LSP exactly as it binds a
libvirt vNIC), moved into its own network namespace inside that hypervisor's namespace, with the
LSP's MAC, TX checksum offload off (userspace datapath, see LAB-NOTES.md), and an address from
OVN's native DHCP (busybox udhcpc) or a static one. Traffic between probes on two hypervisors
crosses the real GENEVE tunnel; a probe on a provider network leaves through br-phys.

Usage (inside a test marked ``lab``)::

    port = ovn_ports.create_vm_port(nb, net, tenant=t, vm="p1", nic=0)   # or any LSP
    with Probe.create("hv1", port.name, port.mac) as p:
        ip = p.dhcp()                     # lease from OVN DHCP; also sets MTU / default route
        assert p.ping("10.0.0.3")
        p.sh("ip", "route")               # any command inside the probe's namespace

Everything runs as root through ``backends.lab.hosts.run_in`` (nsenter into the lab host).
``close()`` removes the OVS port and the namespace; only what the probe created is touched.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from dataclasses import dataclass

from virtdeck.backends.lab.hosts import popen_in, run_in

UDHCPC_SCRIPT = r"""#!/bin/sh
# busybox udhcpc event script for virtdeck probes: apply the lease, record it.
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    if [ -n "$router" ]; then ip route replace default via "${router%% *}" dev "$interface"; fi
    echo "ip=$ip mask=$mask router=$router mtu=$mtu dns=$dns lease=$lease serverid=$serverid" > "/tmp/virtdeck-probe-$interface.lease"
    ;;
esac
exit 0
"""
SCRIPT_PATH = "/tmp/virtdeck-probe-udhcpc.sh"


def _ensure_script(host: str) -> None:
    run_in(host, ["sh", "-c", f"cat > {SCRIPT_PATH} && chmod 755 {SCRIPT_PATH}"], input=UDHCPC_SCRIPT)


@dataclass
class Probe:
    """A probe port on lab hypervisor ``host`` bound to LSP ``lsp``. ``ifname`` is both the OVS
    port and the interface inside netns ``netns`` (in the host's namespace)."""

    host: str
    lsp: str
    mac: str
    ifname: str
    netns: str
    lease: dict | None = None

    @classmethod
    def create(cls, host: str, lsp: str, mac: str, ip: str | None = None) -> "Probe":
        """Plug a probe for ``lsp`` into ``host``'s br-int; ``ip`` "A.B.C.D/NN" sets a static
        address (else call :meth:`dhcp`)."""
        tag = uuid.uuid4().hex[:8]
        p = cls(host, lsp, mac.lower(), f"vdp{tag}", f"vdp{tag}")
        try:
            run_in(host, ["ovs-vsctl", "add-port", "br-int", p.ifname, "--", "set", "Interface", p.ifname,
                          "type=internal", f"external_ids:iface-id={lsp}"])
            run_in(host, ["ip", "netns", "add", p.netns])
            run_in(host, ["ip", "link", "set", p.ifname, "netns", p.netns])
            p.sh("ip", "link", "set", "lo", "up")
            p.sh("ip", "link", "set", p.ifname, "address", p.mac)
            p.sh("ip", "link", "set", p.ifname, "up")
            p.sh("ethtool", "-K", p.ifname, "tx", "off", check=False)
            if ip:
                p.sh("ip", "addr", "add", ip, "dev", p.ifname)
        except Exception:
            p.close()
            raise
        return p

    # ------------------------------------------------------------------ commands
    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def sh(self, *argv: str, check: bool = True, timeout: float = 60, input: str | None = None):
        """Run ``argv`` inside the probe's namespace; returns CompletedProcess."""
        return run_in(self.host, self.argv(*argv), check=check, timeout=timeout, input=input)

    def popen(self, *argv: str, **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        return popen_in(self.host, self.argv(*argv), **kw)

    # ------------------------------------------------------------------ network
    def dhcp(self, timeout: float = 40) -> str:
        """Lease an address with busybox udhcpc (requests the mtu option); returns the IPv4
        address. ``self.lease`` holds what the server sent (ip, mask, router, mtu, dns, lease)."""
        _ensure_script(self.host)
        tries = max(3, int(timeout // 3))
        res = self.sh("busybox", "udhcpc", "-i", self.ifname, "-n", "-q", "-f", "-t", str(tries), "-T", "3",
                      "-O", "mtu", "-s", SCRIPT_PATH, check=False, timeout=timeout + 15)
        lease_file = f"/tmp/virtdeck-probe-{self.ifname}.lease"
        got = run_in(self.host, ["cat", lease_file], check=False)
        run_in(self.host, ["rm", "-f", lease_file], check=False)
        if res.returncode != 0 or got.returncode != 0:
            raise AssertionError(f"probe {self.ifname} on {self.host}: no DHCP lease "
                                 f"(udhcpc rc={res.returncode}: {(res.stderr or res.stdout).strip()[-300:]})")
        self.lease = dict(kv.split("=", 1) for kv in got.stdout.split() if "=" in kv)
        return self.lease["ip"]

    def address(self) -> str | None:
        out = self.sh("ip", "-4", "-o", "addr", "show", "dev", self.ifname).stdout.split()
        for i, w in enumerate(out):
            if w == "inet":
                return out[i + 1].split("/")[0]
        return None

    def mtu(self) -> int:
        return int(self.sh("cat", f"/sys/class/net/{self.ifname}/mtu").stdout)

    def ping(self, addr: str, count: int = 3, wait: float = 2, source: str | None = None,
             tries: int = 1) -> bool:
        """True when ``addr`` answers at least one of ``count`` echo requests; ``tries`` repeats
        the whole attempt (first packets to a fresh tunnel/ARP entry can be dropped)."""
        extra = ["-I", source] if source else []
        for _ in range(tries):
            r = self.sh("busybox", "ping", "-c", str(count), "-W", str(int(wait)), *extra, addr,
                        check=False, timeout=count * wait + 10)
            if r.returncode == 0:
                return True
        return False

    def close(self) -> None:
        """Remove the OVS port and the namespace (idempotent)."""
        run_in(self.host, ["ovs-vsctl", "--if-exists", "del-port", "br-int", self.ifname], check=False)
        run_in(self.host, ["ip", "netns", "del", self.netns], check=False)

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_on(host: str | None, argv: list[str], *, check: bool = True, timeout: float = 60,
           input: str | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` inside lab ``host`` (:func:`run_in`), or on the machine itself when ``host``
    is None (e.g. ``ip netns exec vd-ext100 …`` for the address-only namespaces)."""
    if host:
        return run_in(host, argv, check=check, timeout=timeout, input=input)
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout, input=input)


def popen_on(host: str | None, argv: list[str], **kw) -> subprocess.Popen:
    """:func:`popen_in` for lab ``host``, a plain Popen on the machine when ``host`` is None."""
    return popen_in(host, argv, **kw) if host else subprocess.Popen(argv, **kw)


@dataclass
class Via:
    """Another kind of endpoint for :func:`tcp_transfer`: commands run on lab ``host`` (None: the
    machine itself) behind ``prefix`` (e.g. ``probe.argv("ssh", …, "debian@10.0.0.5")`` to run
    inside a real guest); with ``quote`` the command is passed as one shell-quoted string (what
    ssh wants). See tests/guests.py for guests reached this way."""

    host: str | None
    prefix: list
    quote: bool = False

    def argv(self, *a: str) -> list[str]:
        if self.quote:
            import shlex
            return [*self.prefix, " ".join(shlex.quote(x) for x in a)]
        return [*self.prefix, *a]


# ------------------------------------------------------------------ TCP transfer
TCP_SERVER = r"""
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1); s.settimeout(60)
print("listening", flush=True)
c, peer = s.accept(); c.settimeout(60); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b); n += len(b)
print(peer[0], n, h.hexdigest(), flush=True)
"""

TCP_CLIENT = r"""
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[3]))
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
c.sendall(data); c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"""


def tcp_transfer(server: "Probe | tuple", client: "Probe | tuple", to_addr: str, size: int = 1 << 20,
                 port: int = 5201) -> dict:
    """Send ``size`` random bytes from ``client`` to a listener on ``server`` at ``to_addr``;
    returns {"sent": sha256, "received": sha256, "bytes": n, "peer": address the server saw}.
    ``server``/``client`` are probes, :class:`Via` endpoints (e.g. a guest over ssh) or
    (host, netns-or-None) tuples for other lab endpoints (host None: the machine)."""
    def argv_of(end, *a):
        if isinstance(end, (Probe, Via)):
            return end.host, end.argv(*a)
        host, ns = end
        return host, (["ip", "netns", "exec", ns, *a] if ns else list(a))

    host, argv = argv_of(server, "python3", "-c", TCP_SERVER, str(port))
    srv = popen_on(host, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = srv.stdout.readline()
        if "listening" not in first:
            raise AssertionError(f"TCP server did not start: {srv.stderr.read()[-300:]}")
        chost, cargv = argv_of(client, "python3", "-c", TCP_CLIENT, to_addr, str(port), str(size))
        cl = run_on(chost, cargv, check=False, timeout=90)
        if cl.returncode != 0:
            raise AssertionError(f"TCP client failed: {cl.stderr.strip()[-300:]}")
        out, err = srv.communicate(timeout=60)
        peer, n, digest = out.split()
        sent_n, sent = cl.stdout.split()
        return {"sent": sent, "received": digest, "bytes": int(n), "peer": peer}
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
