"""`virtdeck lab down`: destroy guests, stop every lab process (by PID), delete namespaces,
links and the per-host state. Keeps the lab SSH key, the hosts' SSH host keys (``hostkeys/``:
a rebuilt lab keeps its identity) and the image cache.

:func:`down` ``(log=print) -> list[str]`` returns what is still left (empty when clean: see
:func:`leftovers`). Processes stopped are exactly those whose network namespace is a lab
namespace (vd-*) — holders, daemons, guests' qemu, SSH sessions into lab hosts — each by PID.
"""

from __future__ import annotations

import os
import shutil

from . import hosts as H
from . import netns as N
from . import topology as topo
from .state import host_dir, kill_pids, lab_dir, lab_lock, load_state, pid_alive, save_state


def destroy_domains(h: topo.LabHost, pid: int) -> int:
    """Destroy (hard stop) and undefine every domain on hypervisor ``h``; returns how many."""
    import libvirt
    libvirt.registerErrorHandler(lambda *_: None, None)
    try:
        conn = libvirt.open(H.libvirt_uri(h, pid))
    except libvirt.libvirtError:
        return 0
    count = 0
    try:
        for dom in conn.listAllDomains(0):
            try:
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                                  | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
                count += 1
            except libvirt.libvirtError:
                pass
    finally:
        conn.close()
    return count


def destroy_host(h: topo.LabHost, log=print) -> None:
    """Stop everything of one host and remove its namespaces, links and per-host directory."""
    pid = H.find_holder(h)
    if pid is not None and h.runs_libvirt:
        n = destroy_domains(h, pid)
        if n:
            log(f"{h.name}: destroyed {n} guest(s)")
    namespaces = [h.netns]
    if h.role == "outside":
        namespaces += [ns for ns, _ in topo.VLAN_HOSTS.values()]
    pids = [p for ns in namespaces for p in N.netns_pids(ns)]
    recorded = load_state().get("holders", {}).get(h.name)
    if recorded and pid_alive(recorded) and recorded == pid:
        pids.append(recorded)
    kill_pids(sorted(set(pids)))
    for ns in namespaces:
        N.remove_netns(ns)
    for link in (h.underlay_veth, h.physnet_veth, f"vt-{h.name}"):
        N.delete_link(link)
    state = load_state()
    if h.is_hypervisor:
        H.remove_cgroups([*state.get("cgroups", {}).get(h.name, []), *H.cgroup_dirs(h)])
    shutil.rmtree(host_dir(h.name), ignore_errors=True)
    if (state.get("holders", {}).pop(h.name, None) is not None
            or state.get("cgroups", {}).pop(h.name, None) is not None):
        save_state(state)


def leftovers() -> list[str]:
    """What of the lab still exists on the machine: namespaces, links, mounts, processes."""
    left = [f"netns {ns}" for ns in N.lab_netns()]
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get("ifname") or ""
            if name in (topo.UNDERLAY_BRIDGE, topo.PHYSNET_BRIDGE) or name[:3] in ("vu-", "vp-", "vt-"):
                left.append(f"link {name}")
    # Only mounts visible here count: a sandboxed lab (tmpfs over /run/netns) still lists the
    # covered mounts of the machine's own lab in mountinfo, under the covered /run/netns.
    with open("/proc/self/mountinfo") as f:
        rows = [line.split() for line in f]
    top = [r[0] for r in rows if r[4] == "/run/netns"]
    for r in rows:
        mnt = r[4]
        if mnt.startswith("/run/netns/vd-") and (not top or r[1] == top[-1]):
            left.append(f"mount {mnt}")
        elif str(lab_dir() / "hosts") in mnt:
            left.append(f"mount {mnt}")
    from .hosts import cgroup_dirs
    recorded = load_state().get("cgroups", {})
    for h in topo.all_hypervisors():
        dirs = {str(d) for d in cgroup_dirs(h)} | set(recorded.get(h.name, []))
        left += [f"cgroup {d}" for d in sorted(dirs) if os.path.isdir(d)]
    for name, pid in load_state().get("holders", {}).items():
        if pid_alive(pid):
            left.append(f"process {pid} (holder of {name})")
    return left


def down(log=print) -> list[str]:
    """Tear the whole lab down (any hypervisor count); returns :func:`leftovers` afterwards.

    Serialized with other `up`/`down` runs by :class:`state.lab_lock`.
    """
    with lab_lock(log):
        return _down(log)


def _down(log) -> list[str]:
    for h in [*topo.all_hypervisors(), *topo.all_lights(), topo.CENTRAL, topo.OUTSIDE]:
        present = (h.netns in N.list_netns() or host_dir(h.name).exists()
                   or h.name in load_state().get("holders", {}))
        if present:
            destroy_host(h, log)
            log(f"{h.name}: down")
    for ns in N.lab_netns():  # anything else named vd-* (an older layout)
        kill_pids(N.netns_pids(ns))
        N.remove_netns(ns)
    for br in (topo.UNDERLAY_BRIDGE, topo.PHYSNET_BRIDGE):
        N.delete_link(br)
    d = lab_dir()
    for name in ("inventory.toml", "known_hosts", "authorized_keys", "state.json"):
        try:
            os.unlink(d / name)
        except FileNotFoundError:
            pass
    shutil.rmtree(d / "hosts", ignore_errors=True)
    shutil.rmtree(d / "fleet" / "home", ignore_errors=True)  # the fleet operator's HOME (fleet.py)
    left = leftovers()
    log("lab: down" + (f"; left: {', '.join(left)}" if left else " (nothing left)"))
    return left
