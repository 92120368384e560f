"""`virtdeck lab up`: build (or repair) the lab with N hypervisors, idempotently.

:func:`up` ``(n=2, log=print, …, light=None) -> LabStatus``. ``light``: the number of light
hypervisors lh1..lhL (sshd + libvirtd only, light.py) beside the N full ones; None keeps the
number the lab has. Steps, each logged as one short line:

1. preflight: root, the tools of the Debian packages, the underlay subnet not used elsewhere;
2. the lab SSH key (kept across `down`), the template image (built once, cached, see image.py);
3. bridges vd-under (192.168.100.1/24) and vd-phys; hypervisors above N are removed;
4. per host: netns, veths, addresses, holder (a host whose holder died is rebuilt from scratch);
5. per host in parallel: its daemons (only those not running are started), the storage pool
   and template volumes on hypervisors;
6. known_hosts with the hosts' real keys, inventory.toml, tunnel warm-up pings;
7. readiness (status.check): N chassis, every libvirtd, every sshd with the lab key.

Raises LabError (one line, what to do) for every expected failure; the lab is left as far as it
got, and a second `up` continues from there.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import tomli_w

from . import hosts as H
from . import netns as N
from . import topology as topo
from .image import CMDLINE, Template, ensure_template
from .state import LabError, host_dir, lab_dir, lab_lock, load_state, run, save_state, write_file

# tool -> Debian package, for the "missing package" message.
TOOLS = {
    "ovsdb-server": "openvswitch-switch", "ovs-vswitchd": "openvswitch-switch",
    "ovs-vsctl": "openvswitch-switch", "ovn-northd": "ovn-central", "ovn-controller": "ovn-host",
    "ovn-sbctl": "ovn-common", "ovs-pki": "openvswitch-common", "libvirtd": "libvirt-daemon-system", "virtlogd": "libvirt-daemon",
    "virsh": "libvirt-clients", "qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils",
    "sshd": "openssh-server", "ssh": "openssh-client", "ssh-keygen": "openssh-client",
    "nsenter": "util-linux", "unshare": "util-linux", "ip": "iproute2", "ethtool": "ethtool",
    "busybox": "busybox", "mmdebstrap": "mmdebstrap",
}


def preflight() -> None:
    """Raise LabError when not root or a needed tool is missing."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, bridges, mounts): run `sudo virtdeck lab up`")
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool, path=path) is None})
    if missing:
        raise LabError(f"missing packages: {' '.join(missing)}; run `bash .ci/setup` as root")


def ensure_lab_key() -> None:
    d = lab_dir()
    d.mkdir(parents=True, exist_ok=True)
    key = d / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "virtdeck-lab", "-f", str(key)])
    write_file(d / "authorized_keys", (d / "id_ed25519.pub").read_text())


def _network(h: topo.LabHost) -> None:
    """netns, veths and addresses of one host (pyroute2)."""
    N.ensure_netns(h.netns)
    if h.address:
        N.ensure_veth(h.underlay_veth, topo.UNDERLAY_BRIDGE, h.netns, "eth0")
        N.ensure_addr(h.netns, "eth0", h.address, topo.PREFIX)
    if h.is_hypervisor:
        N.ensure_veth(h.physnet_veth, topo.PHYSNET_BRIDGE, h.netns, "eth1")
        N.ensure_addr(h.netns, "eth1", None)
    if h.role == "outside":
        N.ensure_veth(h.physnet_veth, topo.PHYSNET_BRIDGE, h.netns, "eth0")
        N.ensure_addr(h.netns, "eth0", topo.OUTSIDE_ADDRESS, topo.PREFIX)
        N.ensure_veth(f"vt-{h.name}", topo.PHYSNET_BRIDGE, h.netns, "eth1")
        N.ensure_addr(h.netns, "eth1", None)
        for vlan, (ns, addr) in topo.VLAN_HOSTS.items():
            N.ensure_netns(ns)
            N.ensure_ns_veth(f"v{vlan}", h.netns, "eth0", ns)
            N.ensure_addr(ns, "eth0", addr, topo.PREFIX)


def _destroy_host(h: topo.LabHost, log) -> None:
    from .down import destroy_host
    destroy_host(h, log)


def _daemons(h: topo.LabHost, pid: int, tpl: Template, ovn: str = topo.DEFAULT_OVN) -> None:
    if h.role == "central":
        from . import central
        central.ensure(h, pid, ovn)
        H.ensure_sshd(h, pid)
    elif h.is_light:
        from . import light
        light.ensure(h, pid, tpl)
    elif h.role == "hypervisor":
        H.ensure_ovs(h, pid)
        H.configure_hypervisor_ovs(h, pid, ovn)
        N.ensure_addr(h.netns, "br-phys", h.tunnel_ip, topo.PREFIX)
        H.ethtool_tx_off(h, pid, ["eth1"])
        H.ensure_ovn_controller(h, pid, ovn)
        from .light import seed_capabilities
        seed_capabilities(h)  # a kept QEMU probe (light.py): the first client does not wait ~4 s
        H.ensure_libvirt(h, pid)
        H.ensure_sshd(h, pid)
        ensure_pool(h, pid, tpl)
    else:
        H.ensure_ovs(h, pid)
        H.configure_outside_ovs(h, pid)
        H.ethtool_tx_off(h, pid, ["eth0", "eth1", *[f"v{v}" for v in topo.VLAN_HOSTS]])
        for ns, _ in topo.VLAN_HOSTS.values():
            H.run_in_netns(ns, ["ethtool", "-K", "eth0", "tx", "off"], check=False)


POOL_XML = f"""<pool type='dir'><name>{topo.POOL_NAME}</name>
<target><path>{topo.POOL_PATH}</path></target></pool>"""


def _installed(src, dst) -> bool:
    """``dst`` already holds ``src``: the same inode (hard link), or equal bytes (a copy)."""
    if not dst.exists():
        return False
    s, d = src.stat(), dst.stat()
    if (s.st_ino, s.st_dev) == (d.st_ino, d.st_dev):
        return True
    return s.st_size == d.st_size and filecmp.cmp(src, dst, shallow=False)


def _backed_by(pool, path: str) -> list[str]:
    """Names of the pool's volumes whose backing file is ``path``."""
    import xml.etree.ElementTree as ET
    users = []
    for vol in pool.listAllVolumes(0):
        try:
            root = ET.fromstring(vol.XMLDesc(0))
        except Exception:  # a volume deleted meanwhile
            continue
        if root.findtext("backingStore/path") == path:
            users.append(vol.name())
    return users


def ensure_pool(h: topo.LabHost, pid: int, tpl: Template) -> None:
    """The `virtdeck` dir pool (active, autostart) holding the template volumes.

    Volumes are hard links to the image cache when on the same filesystem (guests only ever
    read a template: per-VM disks are qcow2 overlays), else copies. A template volume that
    differs from the cache (the recipe changed) is replaced — unless a disk in the pool is
    backed by it: swapping a backing file under an overlay corrupts it, so that is a LabError.
    """
    import libvirt
    libvirt.registerErrorHandler(lambda *_: None, None)
    pooldir = host_dir(h.name) / "var-lib-libvirt" / topo.POOL_PATH.removeprefix("/var/lib/libvirt/")
    pooldir.mkdir(parents=True, exist_ok=True)
    conn = libvirt.open(H.libvirt_uri(h, pid))
    try:
        try:
            pool = conn.storagePoolLookupByName(topo.POOL_NAME)
        except libvirt.libvirtError:
            pool = conn.storagePoolDefineXML(POOL_XML, 0)
        if not pool.isActive():
            pool.create(0)
        if not pool.autostart():
            pool.setAutostart(1)
        for vol, src in tpl.files.items():
            dst = pooldir / vol
            if _installed(src, dst):
                continue
            if dst.exists():
                users = _backed_by(pool, f"{topo.POOL_PATH}/{vol}")
                if users:
                    raise LabError(
                        f"{h.name}: the template changed but {len(users)} disk(s) are backed by the "
                        f"old {vol} ({', '.join(users[:3])}…); delete those VMs, or `virtdeck lab down` "
                        f"then `lab up` (destroys every guest)")
                dst.unlink()
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        pool.refresh(0)
    except libvirt.libvirtError as exc:
        raise LabError(f"{h.name}: storage pool {topo.POOL_NAME}: {exc}") from None
    finally:
        conn.close()


def write_known_hosts(n: int, n_light: int = 0) -> None:
    lines = []
    for h in topo.hosts(n, n_light):
        if h.has_sshd:
            pub = H.host_key_path(h).with_suffix(".pub").read_text().split()
            lines.append(f"{h.name},{h.address} {pub[0]} {pub[1]}")
    write_file(lab_dir() / "known_hosts", "\n".join(lines) + "\n")


def _ovn_inventory(ovn: str) -> dict:
    """[ovn] of the lab's inventory: NB and SB through central's sockets over SSH (standalone),
    or the ssl: member lists with the operator's key pair of the lab PKI (cluster-ssl)."""
    if ovn != topo.OVN_CLUSTER_SSL:
        return {"via_host": "central", "nb_socket": topo.NB_SOCKET, "sb_socket": topo.SB_SOCKET}
    from . import pki
    op = pki.pair("operator")
    return {"connection": topo.nb_remote(ovn), "sb_connection": topo.sb_remote(ovn),
            "private_key": str(op.key), "certificate": str(op.cert), "ca_cert": str(pki.ca_bundle())}


def inventory(n: int, tpl: Template | None, ovn: str | None = None, n_light: int = 0) -> dict:
    """The inventory dict written to inventory.toml (shape agreed with config/inventory.py).
    ``ovn``: the lab's OVN flavour (default: the one state.json records); ``n_light`` light
    hypervisors follow the full ones, with ``ovn = false`` (no OVS, no chassis)."""
    from .central import flavour
    d = lab_dir()
    inv: dict = {
        "ssh": {"known_hosts": str(d / "known_hosts"), "identity": str(d / "id_ed25519")},
        "ovn": _ovn_inventory(ovn or flavour()),
        "allocation": {"cpu_ratio": 4.0, "ram_ratio": 1.0},
        "hosts": [{"name": "central", "address": topo.CENTRAL_ADDRESS, "user": "root", "port": 22,
                   "hypervisor": False}],
        "tenants": [{"name": "demo"}],
    }
    for h in topo.hypervisors(n):
        inv["hosts"].append({"name": h.name, "address": h.address, "user": "root", "port": 22,
                             "libvirt_socket": topo.LIBVIRT_SOCKET, "domain_type": "qemu"})
    for h in topo.lights(n_light):
        inv["hosts"].append({"name": h.name, "address": h.address, "user": "root", "port": 22,
                             "libvirt_socket": topo.LIBVIRT_SOCKET, "domain_type": "qemu",
                             "ovn": False})
    if tpl is not None:
        inv["templates"] = [template_entry(tpl)]
    return inv


def template_entry(tpl: Template) -> dict:
    """The inventory's [[templates]] entry of the lab's direct-kernel template (its volumes in
    every hypervisor's pool, pinned by its sha256)."""
    return {
        "name": tpl.name, "pool": topo.POOL_NAME, "volume": f"{tpl.name}.qcow2",
        "kernel": f"{tpl.name}.vmlinuz", "initrd": f"{tpl.name}.initrd", "cmdline": CMDLINE,
        "sha256": tpl.sha256, "arch": "x86_64", "os": "debian12", "default_user": "debian",
    }


def write_inventory(n: int, tpl: Template | None, n_light: int = 0) -> None:
    path = lab_dir() / "inventory.toml"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(b"# Written by `virtdeck lab up`; rewritten on every up.\n")
        tomli_w.dump(inventory(n, tpl, n_light=n_light), f)
    tmp.replace(path)


def warm_tunnels(n: int) -> list:
    """Start one ping from every hypervisor to every other tunnel IP (OVS drops the first packets
    to a remote endpoint while it resolves it, LAB-NOTES.md); returns the Popen objects."""
    procs = []
    for h in topo.hypervisors(n):
        for o in topo.hypervisors(n):
            if o != h:
                procs.append(H.popen_in(h, ["busybox", "ping", "-c", "1", "-W", "1", o.tunnel_ip],
                                        stdout=H.subprocess.DEVNULL, stderr=H.subprocess.DEVNULL))
    return procs


def wait_chassis(n: int, timeout: float = 30) -> None:
    from .status import sb_chassis
    want = sorted(h.name for h in topo.hypervisors(n))
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = sb_chassis(timeout=2)
        lab_names = {h.name for h in topo.all_hypervisors()}
        if got is not None and sorted(set(got) & lab_names) == want:
            return
        # A lab hypervisor removed while central was down; chassis others added are left alone.
        for stale in (set(got or []) & lab_names) - set(want):
            from .central import ctl_argv
            run([*ctl_argv("sb"), "--if-exists", "chassis-del", stale], check=False)
        time.sleep(0.05)
    raise LabError(f"OVN SB lists chassis {got} instead of {want} after {timeout:.0f} s "
                   f"(logs: {host_dir('hv1') / 'log/ovn'})")


def up(n: int = topo.DEFAULT_HYPERVISORS, log=print, owner: int | None = None,
       ovn: str | None = None, light: int | None = None):
    """Bring the lab to N hypervisors and return its LabStatus (ready, else LabError).

    ``owner``: the PID of the process whose end should end the lab (a test session, which
    takes it down itself; if it is killed, the lab is an orphan, see owners.py). None: the
    caller (`virtdeck lab up`) is recorded as owner with ``keep`` — an operator's lab, kept
    until `virtdeck lab down`. A lab whose recorded owner is alive keeps its owner; an
    orphaned one is adopted by this caller. Orphaned sandboxes elsewhere on the machine are
    reaped first (owners.reap_orphans, lines to ``log``).

    ``light``: light hypervisors lh1..lhL (0..16; None: as many as the lab has). ``n`` may be
    0 when the lab has light ones (central + light hosts: a scale lab without OVN hypervisors).

    Serialized with other `up`/`down` runs by :class:`state.lab_lock`.
    """
    if light is not None and not 0 <= light <= topo.MAX_LIGHT:
        raise LabError(f"--light must be between 0 and {topo.MAX_LIGHT}, not {light}")
    if not (0 if light else 1) <= n <= topo.MAX_HYPERVISORS:
        raise LabError(f"--hypervisors must be between 1 and {topo.MAX_HYPERVISORS}, not {n} "
                       f"(0 only with --light N)")
    preflight()
    from .owners import reap_orphans
    reap_orphans(log, skip=lab_dir())
    with lab_lock(log):
        if light is None:
            light = int(load_state().get("light", 0))
        if n == 0 and light == 0:
            raise LabError("--hypervisors 0 needs light hypervisors: add --light N")
        return _up(n, log, owner, ovn, light)


def _own(state: dict, fresh: bool, owner: int | None, log) -> None:
    """Record the lab's owner in ``state`` unless its recorded owner is alive (see :func:`up`)."""
    from .owners import is_orphan, owner_alive, owner_record
    cur = state.get("owner")
    if not fresh and cur is not None and not is_orphan(cur):
        if cur.get("keep") or owner_alive(cur):
            return
    if cur and is_orphan(cur) and not fresh:
        log(f"lab: adopting the lab of pid {cur['pid']}, which is gone")
    # A running lab with no owner on record is someone's from before owners: keep it so.
    state["owner"] = owner_record(owner, keep=owner is None or (cur is None and not fresh))


def _ovn_flavour(state: dict, ovn: str | None) -> str:
    """The OVN flavour to build: ``ovn``, else the one recorded, else the default. Changing the
    flavour of a running central is refused (its databases and listeners differ)."""
    running = H.find_holder(topo.CENTRAL) is not None
    # a running lab without the key was built before flavours: standalone
    recorded = state.get("ovn") or (topo.OVN_STANDALONE if running else topo.DEFAULT_OVN)
    if ovn is None:
        return recorded
    if ovn not in topo.OVN_FLAVOURS:
        raise LabError(f"--ovn must be one of {', '.join(topo.OVN_FLAVOURS)}, not {ovn!r}")
    if ovn != recorded and running:
        raise LabError(f"the lab runs OVN {recorded}; `virtdeck lab down` first, then "
                       f"`virtdeck lab up --ovn {ovn}`")
    return ovn


def _up(n: int, log, owner: int | None = None, ovn: str | None = None, n_light: int = 0):
    from .down import destroy_host
    from .status import check
    t0 = time.monotonic()
    ensure_lab_key()
    tpl = ensure_template(log=log)
    log(f"image: {tpl.name} sha256 {tpl.sha256[:12]}… ({'built in %.0f s' % tpl.build_seconds if tpl.built else 'cached'})")
    t1 = time.monotonic()

    N.check_underlay_free()
    N.ensure_bridge(topo.UNDERLAY_BRIDGE, topo.UNDERLAY_GATEWAY, topo.PREFIX)
    N.ensure_bridge(topo.PHYSNET_BRIDGE)
    log(f"network: bridges {topo.UNDERLAY_BRIDGE} ({topo.UNDERLAY_GATEWAY}/24), {topo.PHYSNET_BRIDGE}")

    state = load_state()
    ovn = state["ovn"] = _ovn_flavour(state, ovn)
    if ovn == topo.OVN_CLUSTER_SSL:  # made before the hosts start in parallel (one CA index)
        from . import pki
        t_pki = time.monotonic()
        pki.ensure([*(f"central-{i}" for i in range(1, len(topo.CENTRAL_MEMBERS) + 1)),
                    "operator", *(h.name for h in topo.hypervisors(n))])
        log(f"pki: {pki.pki_dir()} (ovs-pki, {time.monotonic() - t_pki:.1f} s)")
    for extra in topo.all_hypervisors()[n:]:
        if extra.netns in N.list_netns() or extra.name in state.get("holders", {}):
            log(f"{extra.name}: removing (lab now has {n} hypervisors)")
            destroy_host(extra, log)
            from .central import ctl_argv
            run([*ctl_argv("sb"), "--if-exists", "chassis-del", extra.name], check=False)
            state.setdefault("holders", {}).pop(extra.name, None)
            state.setdefault("cgroups", {}).pop(extra.name, None)
            state.setdefault("netns", {}).pop(extra.name, None)
    for extra in topo.all_lights()[n_light:]:
        if extra.netns in N.list_netns() or extra.name in state.get("holders", {}):
            log(f"{extra.name}: removing (lab now has {n_light} light hypervisors)")
            destroy_host(extra, log)
            state.setdefault("holders", {}).pop(extra.name, None)
            state.setdefault("netns", {}).pop(extra.name, None)

    everyone = topo.hosts(n, n_light)
    holders = state.setdefault("holders", {})
    _own(state, not any(H.find_holder(h) for h in everyone), owner, log)
    spawned = {}
    for h in everyone:
        pid = H.find_holder(h)
        if pid is None and (h.netns in N.list_netns() or host_dir(h.name).exists()):
            log(f"{h.name}: previous run left it half-built (holder gone); rebuilding")
            destroy_host(h, log)
        _network(h)
        # Namespace inodes: what finds this host's processes once its holder is gone.
        state.setdefault("netns", {})[h.name] = os.stat(f"/run/netns/{h.netns}").st_ino
        if pid is None:
            spawned[h.name] = (h, H.spawn_holder(h, n, n_light))  # holders come up in parallel
            if h.is_hypervisor:  # down removes exactly these, whatever cgroup it runs from
                state.setdefault("cgroups", {})[h.name] = [str(d) for d in H.cgroup_dirs(h)]
        else:
            holders[h.name] = pid
            write_file(host_dir(h.name) / "hosts", topo.etc_hosts(n, n_light), in_place=True)
            if h.is_hypervisor and H.cgroup_dirs(h) and not H.host_path(
                    h, "/sys/fs/cgroup/cpuacct/cgroup.procs", pid).exists():
                log(f"{h.name}: runs from before per-host cgroups (no guest CPU stats); "
                    f"`virtdeck lab down && virtdeck lab up` gives them")
    try:
        for name, (h, proc) in spawned.items():
            holders[name] = H.wait_holder(h, proc)
    finally:
        state["hypervisors"] = n
        state["light"] = n_light
        save_state(state)
    log(f"hosts: {', '.join(h.name for h in everyone)} (netns + holders)")

    took: dict[str, float] = {}

    def one(h):
        t = time.monotonic()
        _daemons(h, holders[h.name], tpl, ovn)
        took[h.name] = time.monotonic() - t
        return h.name
    with ThreadPoolExecutor(max_workers=len(everyone)) as ex:
        futures = {h.name: ex.submit(one, h) for h in everyone}
        errors = []
        for name, fut in futures.items():
            try:
                fut.result()
            except LabError as exc:
                errors.append(str(exc))
            except Exception as exc:  # an unexpected failure still gets one line with the host
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
        if errors:
            raise LabError(errors[0])
    log("daemons: central (OVN NB/SB, northd), hypervisors (OVS, ovn-controller, libvirtd, pool), sshd"
        + (", light hypervisors (libvirtd, pool)" if n_light else ""))
    if n_light:
        lt = [took[h.name] for h in topo.lights(n_light) if h.name in took]
        log(f"light: {n_light} hosts (sshd, virtlogd, libvirtd, pool) up in {time.monotonic() - t1:.1f} s "
            f"from the start of `up`; each host's daemons took {min(lt, default=0):.1f}-"
            f"{max(lt, default=0):.1f} s (run in parallel)")

    write_known_hosts(n, n_light)
    write_inventory(n, tpl, n_light)
    wait_chassis(n)
    log(f"inventory: {lab_dir() / 'inventory.toml'}")
    if state.get("fleet"):  # `lab up --fleet` (fleet.py): the operator, bastion, fresh host
        from . import fleet
        fleet.apply(n, tpl, log, state)
    pings = warm_tunnels(n)  # answered or not, they prime OVS; the check needs not wait for them
    st = check(n)
    for p in pings:
        p.wait()
    elapsed = time.monotonic() - t1
    state["up_seconds"] = round(elapsed, 2)
    save_state(state)
    for line in st.lines():
        log(line)
    if n_light:
        from .light import rss_line
        log(rss_line(topo.lights(n_light)))
    if not st.ready:
        raise LabError("the lab came up but is not ready (see the FAIL lines); run `virtdeck lab up` again "
                       "or `virtdeck lab down` first")
    log(f"lab up in {elapsed:.1f} s (+{t1 - t0:.1f} s preflight/image)")
    return st
