"""Light hypervisors of the lab (`virtdeck lab up --light N`): hosts lh1..lh16 that run only
sshd, virtlogd and libvirtd with the ``virtdeck`` pool — no OVS, no ovn-controller, no physnet
veth, no chassis — for scale tests of what needs libvirt over SSH alone (listing, events,
stats). Each is a network namespace ``vd-lhN`` with a holder like every lab host (hosts.py),
eth0 192.168.100.(200+N) on the underlay (topology.light); the inventory lists it with
``ovn = false``, so `host check` reports "no OVN on this host" instead of failures and
placement never picks it for a VM (every VM has an OVN network).

- :func:`ensure` ``(host, pid, tpl)`` starts its daemons and pool (idempotent; LabError with
  the host's name when a step fails).
- :func:`daemon_rss` ``(host) -> dict[str, float]`` RSS in MiB of its processes by command
  name (from /proc/PID/status VmRSS), summed per name; the holder's ``sleep`` included.
- :func:`rss_line` ``(hosts) -> str`` one log line: median RSS of a light host and per daemon.

Cost, measured on the 2-core machine of this project (`lab up -n 0 --light 16` in a sandbox):
see the README's lab section; `lab up` prints both figures on every run with light hosts.

A freshly started libvirtd probes every QEMU binary before it answers its first
``getCapabilities`` (~4 s of CPU per host, LAB-NOTES.md): 16 hosts probing at once would cost
a minute on two cores. The first light host probes; the others start with a copy of its cache
(/var/cache/libvirt/qemu/capabilities, the same binaries and libvirtd on the same machine, so
libvirt finds it valid and skips the probe). The probed cache is also kept beside the image
cache (``qemu-capabilities/``), so the next lab or sandbox skips the probe too; libvirt checks
each file itself (binary and libvirtd ctimes, kernel, microcode) and probes again when stale.
Full hypervisors start from that kept cache too (:func:`seed_capabilities`, up.py), so their
first client no longer waits for the probe.
"""

from __future__ import annotations

import os
import shutil
import statistics
import threading

from . import hosts as H
from . import topology as topo
from .state import LabError, host_dir, image_cache_dir

CAPS = "var-cache-libvirt/qemu/capabilities"   # below hosts/<name>/
_probe_lock = threading.Lock()


def _machine_caps():
    return image_cache_dir() / "qemu-capabilities"


def _copy_caps(src, dst) -> None:
    """Each *.xml of ``src`` into ``dst`` through a temporary name (another lab may read it)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.xml"):
        tmp = dst / f".{f.name}.{os.getpid()}"
        shutil.copy2(f, tmp)
        os.replace(tmp, dst / f.name)


def seed_capabilities(h: topo.LabHost) -> bool:
    """Copy a QEMU capabilities cache into ``h``'s (when ``h`` has none): another host's of
    this lab, else the machine's kept one. True when ``h`` has a cache afterwards."""
    mine = host_dir(h.name) / CAPS
    if mine.is_dir() and any(mine.glob("*.xml")):
        return True
    root = host_dir(h.name).parent
    for other in [*sorted(root.glob(f"*/{CAPS}")), _machine_caps()]:
        if other != mine and other.is_dir() and any(other.glob("*.xml")):
            _copy_caps(other, mine)
            return True
    return False


def _warm(h: topo.LabHost, pid: int) -> None:
    """One ``getCapabilities`` through the host's socket: the QEMU probe (or the cache read)
    happens here rather than in the first client's call."""
    import libvirt
    libvirt.registerErrorHandler(lambda *_: None, None)
    try:
        conn = libvirt.open(H.libvirt_uri(h, pid))
        try:
            conn.getCapabilities()
        finally:
            conn.close()
    except libvirt.libvirtError as exc:
        raise LabError(f"{h.name}: libvirtd does not answer: {exc}") from None


def ensure(h: topo.LabHost, pid: int, tpl) -> None:
    """libvirtd (+ virtlogd), sshd and the ``virtdeck`` pool with ``tpl``'s volumes (hard
    links, see up.ensure_pool) on light host ``h`` whose holder is ``pid``."""
    from .up import ensure_pool
    with _probe_lock:  # the first host without a cache to copy probes QEMU; the rest copy it
        probe = not seed_capabilities(h)
        if probe:
            H.ensure_libvirt(h, pid)
            _warm(h, pid)
            try:
                _copy_caps(host_dir(h.name) / CAPS, _machine_caps())
            except OSError:  # only a cost for the next lab
                pass
    if not probe:
        H.ensure_libvirt(h, pid)
        _warm(h, pid)
    H.ensure_sshd(h, pid)
    ensure_pool(h, pid, tpl)


def _netns_inode(h: topo.LabHost) -> int | None:
    try:
        return os.stat(f"/run/netns/{h.netns}").st_ino
    except OSError:
        return None


def daemon_rss(h: topo.LabHost) -> dict[str, float]:
    """{command name: RSS MiB} of the processes in ``h``'s network namespace, summed per name
    (VmRSS of /proc/PID/status; shared pages count in each process, so this is an upper bound
    of what the host adds)."""
    ino = _netns_inode(h)
    out: dict[str, float] = {}
    if ino is None:
        return out
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino != ino:
                continue
            comm = open(f"/proc/{entry}/comm").read().strip()
            kib = next((int(line.split()[1]) for line in open(f"/proc/{entry}/status")
                        if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError):
            continue
        out[comm] = out.get(comm, 0.0) + kib / 1024
    return out


def rss_line(hosts: list[topo.LabHost]) -> str:
    """"light: RSS per host median X MiB (libvirtd a, sshd b, virtlogd c, holder d)"."""
    per = [daemon_rss(h) for h in hosts]
    per = [p for p in per if p]
    if not per:
        return "light: no light host running"
    names = sorted({k for p in per for k in p}, key=lambda k: -statistics.median(p.get(k, 0) for p in per))
    parts = ", ".join(f"{'holder' if k == 'sleep' else k} {statistics.median(p.get(k, 0) for p in per):.1f}"
                      for k in names)
    return (f"light: RSS per host median {statistics.median(sum(p.values()) for p in per):.1f} MiB "
            f"({parts}) over {len(per)} hosts")

