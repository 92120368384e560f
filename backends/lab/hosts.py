"""Lab hosts: the holder process of each host, running commands inside a host, and starting
each host's daemons (sshd, OVS + ovn-controller, libvirt; OVN central is central.py).

A lab host is a network namespace ``vd-<name>`` plus a long-lived *holder* process (``sleep
infinity``) that owns a private mount and UTS namespace in which /run is a tmpfs and per-host
directories (``hosts/<name>/`` in the lab state dir) are bind-mounted over /etc/openvswitch,
/var/lib/openvswitch, /etc/ovn, /var/lib/ovn, /var/log, /etc/libvirt, /var/lib/libvirt,
/var/cache/libvirt, /etc/hosts and /etc/resolv.conf (an empty resolv.conf: without it getaddrinfo
stalls 10-20 s per libvirt call — LAB-NOTES.md). Every command for a host runs as
``nsenter -t HOLDER -m -u -n [-C] -- CMD``; daemons started that way (sshd included) live there.
A hypervisor's holder also has a cgroup namespace rooted at its own cgroup
(``…/virtdeck-lab/hvN`` in the cpu and cpuacct hierarchies, mounted inside): libvirt's
``/machine/…`` guest cgroups are then per host and CPU stats work (see CGROUP_CONTROLLERS).

Public API (used by tests and other engineers):

- :func:`holder_pid` ``(host) -> int``  the holder's PID; LabError when the host is not running.
- :func:`run_in` ``(host, argv, check=True, input=None, timeout=60) -> CompletedProcess[str]``
  run ``argv`` inside a lab host (network + mount + UTS namespaces), capture text output.
- :func:`popen_in` ``(host, argv, **popen_kwargs) -> Popen``  same, not waited for.
- :func:`host_path` ``(host, path) -> Path``  a path inside a host seen from the machine
  (``/proc/HOLDER/root/…``), e.g. ``host_path("central", "/run/ovn/ovnnb_db.sock")``.
- :func:`libvirt_uri` ``(host) -> str``  a ``qemu:///system?socket=…`` URI reaching that host's
  libvirtd from the machine without SSH (fast; tests of the lab itself use SSH as users do).
- :func:`run_in_netns` ``(netns, argv)`` for the address-only namespaces (vd-ext100, vd-ext200).

``host`` is a host name ("central", "hv1", "outside") or a :class:`topology.LabHost`.

Why one module of ~500 lines: it is everything about one lab host's life — its holder process,
running commands in its namespaces, its cgroups and each daemon started inside it — and
``up.py``/``down.py``/``status.py`` drive those steps in order; the ``ensure_*`` daemon starters
are about half of it and each is one short, independent recipe. (The cgroup helpers, ~80 lines
also used by owners.py and down.py, are the one part that could stand as a module of its own.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from . import topology as topo
from .state import (LabError, host_dir, lab_dir, load_state, pid_alive, read_pidfile, run,
                                write_file)

# Directory inside the host -> subdirectory of hosts/<name>/ bound over it.
BINDS = {
    "/etc/openvswitch": "etc-openvswitch",
    "/var/lib/openvswitch": "var-lib-openvswitch",
    "/etc/ovn": "etc-ovn",
    "/var/lib/ovn": "var-lib-ovn",
    "/var/log": "log",
    "/etc/libvirt": "etc-libvirt",
    "/var/lib/libvirt": "var-lib-libvirt",
    "/var/cache/libvirt": "var-cache-libvirt",
    # virtdeck's own state on a host (owner marks): one per host, as on real machines; shared,
    # a mark made on hv1 showed on hv2 as stale and reconcile there deleted it
    "/var/lib/virtdeck": "var-lib-virtdeck",
}
RUN_DIRS = ("/run/sshd", "/run/openvswitch", "/run/ovn", "/run/libvirt", "/run/lock")
LOG_DIRS = ("openvswitch", "ovn", "libvirt", "libvirt/qemu")


def _host(host) -> topo.LabHost:
    return host if isinstance(host, topo.LabHost) else topo.by_name(host)


def _same_netns(pid: int, netns: str) -> bool:
    try:
        a = os.stat(f"/proc/{pid}/ns/net")
        b = os.stat(f"/run/netns/{netns}")
    except OSError:
        return False
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


def _is_holder(pid: int | None, h: topo.LabHost) -> bool:
    if not pid_alive(pid):
        return False
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    return comm == "sleep" and _same_netns(pid, h.netns)


def find_holder(host) -> int | None:
    """The holder PID recorded in state.json if it is alive and in the host's netns, else None."""
    h = _host(host)
    pid = load_state().get("holders", {}).get(h.name)
    return pid if _is_holder(pid, h) else None


def holder_pid(host) -> int:
    """The holder PID of ``host``; raises LabError when that host is not running."""
    pid = find_holder(host)
    if pid is None:
        raise LabError(f"lab host {_host(host).name} is not running; run `virtdeck lab up`")
    return pid


def _own_cgroup_ns(pid: int) -> bool:
    """True when ``pid`` lives in a cgroup namespace other than ours (a hypervisor's)."""
    try:
        return os.stat(f"/proc/{pid}/ns/cgroup").st_ino != os.stat("/proc/self/ns/cgroup").st_ino
    except OSError:
        return False


def nsenter_argv(host, argv: list[str], pid: int | None = None) -> list[str]:
    pid = pid or holder_pid(host)
    flags = ["-m", "-u", "-n"] + (["-C"] if _own_cgroup_ns(pid) else [])
    return ["nsenter", "-t", str(pid), *flags, "--", *argv]


_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8", "HOME": "/root"}


def run_in(host, argv: list[str], *, check: bool = True, input: str | None = None,
           timeout: float = 60, pid: int | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` inside lab ``host``; raises LabError on a non-zero exit when ``check``."""
    h = _host(host)
    try:
        proc = subprocess.run(nsenter_argv(h, argv, pid), capture_output=True, text=True,
                              input=input, timeout=timeout, env=_ENV)
    except subprocess.TimeoutExpired:
        raise LabError(f"{h.name}: {' '.join(argv[:3])} did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"{h.name}: {' '.join(argv[:3])} failed: {err[-1] if err else proc.returncode}")
    return proc


def popen_in(host, argv: list[str], pid: int | None = None, **kwargs) -> subprocess.Popen:
    """Start ``argv`` inside lab ``host`` without waiting (kwargs go to Popen)."""
    kwargs.setdefault("env", _ENV)
    return subprocess.Popen(nsenter_argv(host, argv, pid), **kwargs)


def run_in_netns(netns: str, argv: list[str], *, check: bool = True, timeout: float = 60):
    """Run ``argv`` in a plain lab network namespace (e.g. vd-ext100) via `ip netns exec`."""
    return run(["ip", "netns", "exec", netns, *argv], check=check, timeout=timeout)


def host_path(host, path: str, pid: int | None = None) -> Path:
    """``path`` inside ``host``'s mount namespace, reachable from the machine."""
    return Path(f"/proc/{pid or holder_pid(host)}/root") / path.lstrip("/")


def libvirt_uri(host, pid: int | None = None) -> str:
    return f"qemu:///system?socket={host_path(host, topo.LIBVIRT_SOCKET, pid)}"


# --------------------------------------------------------------------------- cgroups

# cgroup v1 controllers libvirt may use in the lab (CPU time per domain and vCPU). Without
# machined, libvirt puts guests at the absolute /machine/qemu-N-NAME.libvirt-qemu: on one
# shared cgroupfs two hosts' guests would share (and mix) groups (LAB-NOTES.md "known gap").
# So each hypervisor gets a cgroup .../virtdeck-lab[-<id>]/<host> and a cgroup namespace rooted
# there, with cpu/cpuacct mounted inside: its "/machine" is its own.
CGROUP_CONTROLLERS = ("cpu", "cpuacct")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _self_cgroup(ctrl: str) -> str | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            if ctrl in ctrls.split(","):
                return path
    except OSError:
        pass
    return None


def cgroup_instance(lab: Path | None = None) -> str:
    """``virtdeck-lab`` for the default lab dir, ``virtdeck-lab-<8 hex>`` for another one (a
    sandboxed lab must not share cgroups with the machine's lab). ``lab``: that lab dir
    (default: this process's, state.lab_dir())."""
    import hashlib
    import platformdirs
    lab = lab or lab_dir()
    default = Path(platformdirs.user_data_dir("virtdeck")) / "lab"
    if lab == default:
        return "virtdeck-lab"
    return "virtdeck-lab-" + hashlib.sha256(str(lab).encode()).hexdigest()[:8]


def cgroup_dirs(h: topo.LabHost) -> list[Path]:
    """The host's cgroup directories (one per controller, machine paths); [] when the machine
    has no cgroup v1 hierarchy for them (then libvirt runs without cgroups)."""
    out = []
    for ctrl in CGROUP_CONTROLLERS:
        base = CGROUP_ROOT / ctrl
        mine = _self_cgroup(ctrl)
        if mine is None or not (base / "cgroup.procs").exists():
            return []
        out.append(base / mine.lstrip("/") / cgroup_instance() / h.name)
    return out


def ensure_cgroups(h: topo.LabHost) -> list[Path]:
    dirs = cgroup_dirs(h)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def remove_tree_cgroup(d: str | Path | None) -> None:
    """rmdir a cgroup directory and its children bottom-up (only empty cgroups go)."""
    if not d or not Path(d).is_dir():
        return
    for sub, _dirs, _files in sorted(os.walk(d), key=lambda t: -len(t[0])):
        try:
            os.rmdir(sub)
        except OSError:
            pass


def remove_cgroups(dirs: list[str | Path]) -> None:
    """rmdir the host cgroups bottom-up (libvirt's machine groups included); only empty
    cgroups can go, so this runs after every process of the host is stopped."""
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        remove_tree_cgroup(d)
        inst = d.parent
        try:
            os.rmdir(inst)  # the lab's instance group, once its last host is gone
        except OSError:
            pass


# --------------------------------------------------------------------------- holder

def prepare_host_dir(h: topo.LabHost, n: int, n_light: int = 0) -> Path:
    """Create hosts/<name>/ with the bind sources, /etc/hosts (``n`` hypervisors and
    ``n_light`` light ones named) and an empty resolv.conf."""
    d = host_dir(h.name)
    for sub in BINDS.values():
        (d / sub).mkdir(parents=True, exist_ok=True)
    for sub in LOG_DIRS:
        (d / "log" / sub).mkdir(parents=True, exist_ok=True)
    write_file(d / "hosts", topo.etc_hosts(n, n_light), in_place=True)
    write_file(d / "resolv.conf", "", in_place=True)
    # A plain root shell start-up: the machine's ~/.bashrc (read by every SSH exec's bash) runs
    # `pyenv init`, whose rehash lock serialised execs across all lab hosts (~0.1 s each).
    write_file(d / "bashrc", "", in_place=True)
    return d


def start_holder(h: topo.LabHost, n: int, n_light: int = 0) -> int:
    """Start the holder of ``h`` (its netns must exist) and wait until its mounts are in place.

    Returns the holder PID. Raises LabError with the shell's error when a mount fails.
    """
    return wait_holder(h, spawn_holder(h, n, n_light))


def spawn_holder(h: topo.LabHost, n: int, n_light: int = 0) -> subprocess.Popen:
    """Start the holder of ``h`` without waiting (see :func:`wait_holder`); several holders
    come up in parallel this way. Must be called from the main thread (preexec_fn)."""
    d = prepare_host_dir(h, n, n_light)
    lines = ["set -e", "mount -t tmpfs -o mode=0755,size=64m tmpfs /run"]
    lines += [f"mkdir -p {x}" for x in RUN_DIRS]
    for target, sub in BINDS.items():
        lines.append(f"mkdir -p {target} && mount --bind '{d / sub}' {target}")
    lines += [f"mount --bind '{d / 'hosts'}' /etc/hosts",
              f"mount --bind '{d / 'resolv.conf'}' /etc/resolv.conf",
              f"if [ -f /root/.bashrc ]; then mount --bind '{d / 'bashrc'}' /root/.bashrc; fi"]
    cgroups = ensure_cgroups(h) if h.is_hypervisor else []
    if cgroups:
        # `ip netns exec` mounted a fresh sysfs: no cgroup hierarchies in it. Mounted here, in
        # the host's cgroup namespace, their root is the host's own cgroup.
        lines.append("mount -t tmpfs -o mode=0755,size=1m cgroup /sys/fs/cgroup")
        for ctrl in CGROUP_CONTROLLERS:
            lines += [f"mkdir -p /sys/fs/cgroup/{ctrl}",
                      f"mount -t cgroup -o {ctrl} cgroup /sys/fs/cgroup/{ctrl}"]
    lines += [f"hostname {h.name}", "exec sleep infinity"]
    log = open(d / "holder.log", "w")
    procs_files = [str(c / "cgroup.procs") for c in cgroups]

    def join_cgroups():  # in the child before exec: the cgroup namespace is rooted where it is
        for f in procs_files:
            with open(f, "w") as fh:
                fh.write(str(os.getpid()))
    try:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", h.netns, "unshare", "--mount", "--uts",
             *(["--cgroup"] if cgroups else []), "--propagation", "private",
             "--", "sh", "-c", "\n".join(lines)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=_ENV, preexec_fn=join_cgroups if cgroups else None)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LabError(f"{h.name}: cannot start its holder ({exc}); cgroups: {procs_files}") from None
    finally:
        log.close()
    return proc


def wait_holder(h: topo.LabHost, proc: subprocess.Popen) -> int:
    """Wait until the holder ``proc`` runs ``sleep`` (its mounts are done); returns its PID."""
    d = host_dir(h.name)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = (d / "holder.log").read_text().strip().splitlines()
            raise LabError(f"{h.name}: holder failed: {msg[-1] if msg else proc.returncode}")
        try:
            if Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep":
                return proc.pid
        except OSError:
            pass
        time.sleep(0.005)
    raise LabError(f"{h.name}: holder did not come up within 10 s")


# --------------------------------------------------------------------------- daemons

def _alive(pid: int, path: str) -> bool:
    return read_pidfile(host_path(None, path, pid)) is not None


def _start(h, pid, pidfile: str, argv: list[str], what: str) -> bool:
    """Start a self-daemonizing ``argv`` in ``h`` unless the process in ``pidfile`` is alive.

    Returns True when it was started now. Raises LabError when it fails to start.
    """
    if _alive(pid, pidfile):
        return False
    run_in(h, argv, pid=pid, timeout=30)
    deadline = time.monotonic() + 10
    while not _alive(pid, pidfile):
        if time.monotonic() > deadline:
            raise LabError(f"{h.name}: {what} did not start (logs in {host_dir(h.name) / 'log'})")
        time.sleep(0.01)
    return True


def host_key_path(h: topo.LabHost) -> Path:
    """The host's SSH host key. Kept across `lab down` (like the lab key), so a rebuilt lab has
    the same identity and known_hosts entries anyone made for it stay valid."""
    return lab_dir() / "hostkeys" / f"{h.name}_ed25519"


def ensure_sshd(h: topo.LabHost, pid: int) -> bool:
    """sshd on ``h.address``:22 with a per-host ED25519 host key, root by the lab key only."""
    d = host_dir(h.name) / "ssh"
    d.mkdir(parents=True, exist_ok=True)
    key = host_key_path(h)
    key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    old = d / "ssh_host_ed25519_key"  # where labs before stable host keys kept it
    if not key.exists() and old.exists():
        shutil.copy2(old, key)
        shutil.copy2(old.with_suffix(".pub"), key.with_suffix(".pub"))
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{h.name}", "-f", str(key)])
    cfg = d / "sshd_config"
    write_file(cfg, "\n".join([
        "Port 22", f"ListenAddress {h.address}", f"HostKey {key}", "PidFile /run/sshd.pid",
        "PermitRootLogin prohibit-password", "PubkeyAuthentication yes",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        f"AuthorizedKeysFile {lab_dir() / 'authorized_keys'}", "PrintMotd no", "UseDNS no",
        # Tests and the console open many sessions at once.
        "MaxStartups 200:30:400", "MaxSessions 100",
        "AcceptEnv LANG LC_*", "Subsystem sftp internal-sftp",
        "AllowStreamLocalForwarding yes", "AllowTcpForwarding yes", "",
    ]))
    return _start(h, pid, "/run/sshd.pid", ["/usr/sbin/sshd", "-f", str(cfg)], "sshd")


def ensure_ovs(h: topo.LabHost, pid: int) -> None:
    """ovsdb-server + ovs-vswitchd (userspace datapath) with the host's own conf.db."""
    db = host_dir(h.name) / "etc-openvswitch" / "conf.db"
    if not db.exists():
        run(["ovsdb-tool", "create", str(db), "/usr/share/openvswitch/vswitch.ovsschema"])
    _start(h, pid, "/run/openvswitch/ovsdb-server.pid", [
        "ovsdb-server", "/etc/openvswitch/conf.db", "--remote=punix:/run/openvswitch/db.sock",
        "--pidfile=/run/openvswitch/ovsdb-server.pid",
        "--log-file=/var/log/openvswitch/ovsdb-server.log", "--detach", "--no-chdir",
    ], "ovsdb-server")
    run_in(h, ["ovs-vsctl", "--no-wait", "init"], pid=pid)
    # --monitor (as ovs-ctl starts it): OVS 3.1's userspace conntrack can abort on an assertion
    # (conntrack.c conn_update_state, seen in the lab under guest traffic); the monitor restarts
    # the datapath instead of leaving every later VM start on this host failing.
    _start(h, pid, "/run/openvswitch/ovs-vswitchd.pid", [
        "ovs-vswitchd", "unix:/run/openvswitch/db.sock", "--monitor",
        "--pidfile=/run/openvswitch/ovs-vswitchd.pid",
        "--log-file=/var/log/openvswitch/ovs-vswitchd.log", "--detach", "--no-chdir",
    ], "ovs-vswitchd")


def configure_hypervisor_ovs(h: topo.LabHost, pid: int, ovn: str = topo.DEFAULT_OVN) -> None:
    """br-int, br-phys with eth1, and the Open_vSwitch external_ids ovn-controller reads
    (``ovn-remote``: the SB of the lab's OVN flavour ``ovn``, the ssl: member list for
    cluster-ssl)."""
    ids = {
        "system-id": h.name, "hostname": h.name, "ovn-remote": topo.sb_remote(ovn),
        "ovn-encap-type": "geneve", "ovn-encap-ip": h.tunnel_ip,
        "ovn-bridge-datapath-type": "netdev",
        "ovn-bridge-mappings": f"{topo.PHYSNET_NAME}:br-phys",
    }
    run_in(h, [
        "ovs-vsctl", "--timeout=20",
        "--", "--may-exist", "add-br", "br-int",
        "--", "set", "Bridge", "br-int", "datapath_type=netdev", "fail_mode=secure",
        "other_config:disable-in-band=true",
        "--", "--may-exist", "add-br", "br-phys",
        "--", "set", "Bridge", "br-phys", "datapath_type=netdev",
        "--", "--may-exist", "add-port", "br-phys", "eth1",
        "--", "set", "Open_vSwitch", ".", *[f"external_ids:{k}={v}" for k, v in ids.items()],
    ], pid=pid)


def configure_outside_ovs(h: topo.LabHost, pid: int) -> None:
    """br-ext: eth1 (trunk on the physnet) plus one access port per VLAN host."""
    argv = ["ovs-vsctl", "--timeout=20",
            "--", "--may-exist", "add-br", topo.OUTSIDE_BRIDGE,
            "--", "set", "Bridge", topo.OUTSIDE_BRIDGE, "datapath_type=netdev",
            "--", "--may-exist", "add-port", topo.OUTSIDE_BRIDGE, "eth1"]
    for vlan in topo.VLAN_HOSTS:
        argv += ["--", "--may-exist", "add-port", topo.OUTSIDE_BRIDGE, f"v{vlan}",
                 "--", "set", "Port", f"v{vlan}", f"tag={vlan}"]
    run_in(h, argv, pid=pid)


def ensure_ovn_controller(h: topo.LabHost, pid: int, ovn: str = topo.DEFAULT_OVN) -> None:
    """ovn-controller on the host's OVS; for cluster-ssl with the host's key pair of the lab
    PKI (pki.py, made here when missing) and the lab CA, for its ssl: ``ovn-remote``."""
    tls = []
    if ovn == topo.OVN_CLUSTER_SSL:
        from . import pki
        p = pki.ensure([h.name])[h.name]
        tls = [f"--private-key={p.key}", f"--certificate={p.cert}", f"--ca-cert={pki.ca_bundle()}"]
    _start(h, pid, "/run/ovn/ovn-controller.pid", [
        "ovn-controller", "unix:/run/openvswitch/db.sock", *tls, "--pidfile=/run/ovn/ovn-controller.pid",
        "--log-file=/var/log/ovn/ovn-controller.log", "--detach", "--monitor", "--no-chdir",
    ], "ovn-controller")


QEMU_CONF = """\
# virtdeck lab: written by `virtdeck lab up`
user = "root"
group = "root"
# Each lab libvirtd runs in a cgroup of its own (see hosts.py); only the CPU controllers are
# mounted in the host: guests get CPU time accounting for stats.
cgroup_controllers = {controllers}
security_driver = "none"
"""

LIBVIRTD_CONF = """\
# virtdeck lab: written by `virtdeck lab up`. The socket is root-only (0700 dir perms below),
# the libvirt group's in a fleet lab (fleet.py: its non-root operator); no polkit daemon runs here.
unix_sock_group = "{group}"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "{perms}"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""


def ensure_libvirt(h: topo.LabHost, pid: int) -> None:
    """virtlogd + libvirtd with the lab's qemu.conf / libvirtd.conf in ``h``."""
    etc = host_dir(h.name) / "etc-libvirt"
    if not (etc / "libvirtd.conf").exists():
        shutil.copytree("/etc/libvirt", etc, dirs_exist_ok=True, symlinks=True)
        autostart = etc / "qemu" / "networks" / "autostart"
        if autostart.is_dir():
            for link in autostart.iterdir():  # no default NAT network / dnsmasq per host
                link.unlink()
    cgroups = cgroup_dirs(h)
    if not all(host_path(h, f"/sys/fs/cgroup/{c}/cgroup.procs", pid).exists() for c in CGROUP_CONTROLLERS):
        cgroups = []  # a holder from before the lab mounted cgroups: keep libvirt cgroup-less
    ctrls = "[ " + ", ".join(f'"{c}"' for c in CGROUP_CONTROLLERS) + " ]" if cgroups else "[ ]"
    write_file(etc / "qemu.conf", QEMU_CONF.format(controllers=ctrls))
    fleet = bool(load_state().get("fleet"))
    write_file(etc / "libvirtd.conf", LIBVIRTD_CONF.format(group="libvirt" if fleet else "root",
                                                           perms="0770" if fleet else "0700"))
    _start(h, pid, "/run/virtlogd.pid", ["virtlogd", "-d"], "virtlogd")
    # libvirtd joins the host's cgroup (the root of the host's cgroup namespace) before it
    # starts; it creates /machine/qemu-N-NAME.libvirt-qemu below that root.
    join = "; ".join(f"echo $$ > /sys/fs/cgroup/{c}/cgroup.procs"
                     for c in CGROUP_CONTROLLERS) if cgroups else ""
    _start(h, pid, "/run/libvirtd.pid",
           ["sh", "-c", (join + "; " if join else "") + "exec libvirtd -d"], "libvirtd")
    deadline = time.monotonic() + 20
    sock = host_path(h, topo.LIBVIRT_SOCKET, pid)
    while not sock.exists():
        if time.monotonic() > deadline:
            raise LabError(f"{h.name}: libvirtd socket did not appear (log: "
                           f"{host_dir(h.name) / 'log/libvirt/libvirtd.log'})")
        time.sleep(0.01)


def ethtool_tx_off(h: topo.LabHost, pid: int, ifaces: list[str]) -> None:
    """Checksum offload off on veths that feed the userspace datapath (else TCP breaks)."""
    for ifname in ifaces:
        run_in(h, ["ethtool", "-K", ifname, "tx", "off"], pid=pid, check=False)
