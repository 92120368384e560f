"""Readiness of the lab, checked the way a client sees it.

:func:`check` ``(n=None) -> LabStatus``: ``n`` defaults to the hypervisor count recorded by
``up`` (state.json). Facts checked, each from the machine (root netns):

- every host's holder process is alive in its namespace;
- every sshd accepts the lab key with strict host key checking against the lab's known_hosts
  (``ssh -i id_ed25519 -o UserKnownHostsFile=known_hosts root@ADDR true``);
- every hypervisor's libvirtd answers (``getLibVersion`` over its socket, reached through
  ``/proc/HOLDER/root``);
- the OVN SB lists exactly the lab's chassis (``ovn-sbctl`` through central.ctl_argv: the
  ssl: member list with the operator's certificate for cluster-ssl, the default; plain
  tcp:192.168.100.10:6642 for standalone);
- cluster-ssl only: each of NB and SB has a leader that the members agree on and all three
  members answer (``ovs-appctl cluster/status`` through each member's control socket), and one
  ovn-northd is active — the lines say which member leads ("leader central-2 192.168.100.20").

Never raises for a lab that is down: a missing piece is a failed check.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import topology as topo
from .state import lab_dir, load_state


@dataclass(frozen=True)
class Check:
    """One readiness fact: ``name`` like "hv1 sshd", ``ok``, ``detail`` (error or value)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class LabStatus:
    """``hypervisors``: expected count (0 when no lab was brought up); ``checks`` in print order;
    ``chassis``: names registered in the SB; ``extra``: the OVN ``flavour`` and, for
    cluster-ssl, ``nb_leader``/``sb_leader`` ((member number, address) or None) and ``northd``
    (the active one's member number or None); ``light``: light hypervisors (lab up --light)."""

    hypervisors: int
    checks: tuple[Check, ...] = ()
    chassis: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)
    light: int = 0

    @property
    def ready(self) -> bool:
        return (self.hypervisors > 0 or self.light > 0) and all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        if self.hypervisors == 0 and not self.light:
            return ["lab: not up (run `virtdeck lab up`)"]
        out = [f"{'ok  ' if c.ok else 'FAIL'} {c.name}{(': ' + c.detail) if c.detail else ''}"
               for c in self.checks]
        ovn = ""
        if self.extra.get("flavour") == topo.OVN_CLUSTER_SSL:
            lead = {k: self.extra.get(f"{k}_leader") for k in ("nb", "sb")}
            ovn = ", OVN cluster-ssl: " + ", ".join(
                f"{k.upper()} leader " + (f"central-{v[0]} ({v[1]})" if v else "none")
                for k, v in lead.items())
        out.append(f"lab: {'ready' if self.ready else 'NOT ready'} "
                   f"({self.hypervisors} hypervisors{f' + {self.light} light' if self.light else ''}, chassis: {', '.join(self.chassis) or 'none'}{ovn})")
        return out


def ssh_argv(address: str, argv: list[str] | None = None, timeout: int = 5) -> list[str]:
    """OpenSSH client argv for root@``address`` with the lab key and strict known_hosts."""
    d = lab_dir()
    return ["ssh", "-i", str(d / "id_ed25519"), "-o", f"UserKnownHostsFile={d / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", f"ConnectTimeout={timeout}", "-o", "LogLevel=ERROR", f"root@{address}",
            *(argv or ["true"])]


def libvirt_ssh_uri(address: str, known_hosts: str | None = None) -> str:
    """libvirt URI for root@``address`` over libssh with the lab key and strict host key
    checking against the lab's known_hosts (or ``known_hosts``)."""
    d = lab_dir()
    return (f"qemu+libssh://root@{address}/system?keyfile={d / 'id_ed25519'}"
            f"&known_hosts={known_hosts or d / 'known_hosts'}&known_hosts_verify=normal&sshauth=privkey")


def sb_chassis(timeout: int = 5) -> list[str] | None:
    """Chassis names in the lab SB (over TCP, or SSL for cluster-ssl), or None when it does
    not answer."""
    from .central import ctl_argv
    try:
        p = subprocess.run([*ctl_argv("sb", timeout=timeout), "--bare",
                            "--columns=name", "list", "Chassis"],
                           capture_output=True, text=True, timeout=timeout + 2)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0:
        return None
    return sorted(x for x in p.stdout.split() if x)


def _ssh_check(h: topo.LabHost) -> Check:
    try:
        p = subprocess.run(ssh_argv(h.address, ["hostname"]), capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return Check(f"{h.name} sshd", False, "timed out")
    if p.returncode != 0:
        return Check(f"{h.name} sshd", False, (p.stderr.strip().splitlines() or ["refused"])[-1])
    got = p.stdout.strip()
    return Check(f"{h.name} sshd", got == h.name, f"hostname {got}")


def _libvirt_check(h: topo.LabHost) -> Check:
    from .hosts import find_holder, libvirt_uri
    pid = find_holder(h)
    if pid is None:
        return Check(f"{h.name} libvirtd", False, "host not running")
    try:
        import libvirt
        libvirt.registerErrorHandler(lambda *_: None, None)
        conn = libvirt.open(libvirt_uri(h, pid))
        try:
            v = conn.getLibVersion()
            pools = conn.listStoragePools()
        finally:
            conn.close()
    except Exception as exc:  # libvirt.libvirtError and socket errors alike: a failed check
        return Check(f"{h.name} libvirtd", False, str(exc).splitlines()[0])
    ok = topo.POOL_NAME in pools
    fresh = h.name == load_state().get("fleet_fresh")  # fleet.py: no pool until `host add`
    return Check(f"{h.name} libvirtd", ok or fresh,
                 f"libvirt {v // 1000000}.{v // 1000 % 1000}.{v % 1000}, pool {topo.POOL_NAME}"
                 + ("" if ok else " missing" + (" (fresh: `host add --create-pool` makes it)" if fresh else "")))


def _ovs_check(h: topo.LabHost) -> Check:
    """ovs-vswitchd alive (its pidfile's process): without it every VM start fails with
    "Unable to add port … to OVS bridge br-int" while the other checks still pass."""
    from .hosts import _alive, find_holder
    pid = find_holder(h)
    ok = pid is not None and _alive(pid, "/run/openvswitch/ovs-vswitchd.pid")
    return Check(f"{h.name} ovs-vswitchd", ok, "running" if ok else "not running (virtdeck lab up restarts it)")


def _raft_checks() -> tuple[list[Check], dict]:
    """Leader and member count per database and the active northd (cluster-ssl labs)."""
    from .central import leaders
    ld = leaders()
    out = []
    for kind in ("nb", "sb"):
        lead, up = ld.get(kind), ld["members"][kind]
        total = len(topo.CENTRAL_MEMBERS)
        detail = (f"leader central-{lead[0]} {lead[1]}, " if lead else "no leader, ") + f"{up}/{total} members"
        out.append(Check(f"OVN {kind.upper()} raft", bool(lead) and up == total, detail))
    nd = ld.get("northd")
    out.append(Check("ovn-northd", nd is not None,
                     f"active northd-{nd} (others standby)" if nd else "none active"))
    return out, {"nb_leader": ld.get("nb"), "sb_leader": ld.get("sb"), "northd": nd}


def check(n: int | None = None) -> LabStatus:
    """The lab's readiness now (see module doc). ``n`` overrides the recorded hypervisor count."""
    from .hosts import find_holder
    light = int(load_state().get("light", 0))  # light hypervisors: host, sshd, libvirtd checks
    if n is None:
        n = int(load_state().get("hypervisors", 0))
        if n == 0 and not light:
            return LabStatus(0)
    hvs = topo.hypervisors(n)
    checks: list[Check] = []
    for h in topo.hosts(n, light):
        pid = find_holder(h)
        checks.append(Check(f"{h.name} host", pid is not None, f"holder pid {pid}" if pid else "not running"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        ssh = list(pool.map(_ssh_check, [h for h in topo.hosts(n, light) if h.has_sshd]))
        virt = list(pool.map(_libvirt_check, hvs + topo.lights(light)))
        ovs = list(pool.map(_ovs_check, hvs))
        chassis_f = pool.submit(sb_chassis)
        from .central import flavour
        flav = flavour()
        raft_f = pool.submit(_raft_checks) if flav == topo.OVN_CLUSTER_SSL else None
        chassis = chassis_f.result()
        raft, extra = raft_f.result() if raft_f else ([], {})
    checks += ssh + virt + ovs + raft
    if load_state().get("fleet"):  # what each fleet host is, reached as its operator (fleet.py)
        from . import fleet
        checks += fleet.checks(n)
    want = sorted(h.name for h in hvs)
    if chassis is None:
        checks.append(Check("OVN SB chassis", False, f"{topo.sb_remote(flav)} does not answer"))
        chassis = []
    else:
        # Chassis rows someone else added (not named like a lab hypervisor) do not count.
        lab_names = {h.name for h in topo.all_hypervisors()}
        ours = sorted(set(chassis) & lab_names)
        checks.append(Check("OVN SB chassis", ours == want, f"{len(ours)} of {n}"))
    return LabStatus(n, tuple(checks), tuple(chassis), dict(extra, flavour=flav), light=light)
