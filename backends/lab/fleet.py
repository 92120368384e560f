"""The lab's fleet flavour (`virtdeck lab up --fleet`): the lab shaped like an operator's own fleet.

On top of the ordinary lab (central + N >= 3 hypervisors) it adds, per host, inside the host's
own mount namespace (nothing on the machine changes):

- an operator account ``vdop`` (uid 2601, no password, no sudo) in the groups ``libvirt``
  (libvirtd's socket: ``unix_sock_group``, perms 0770) and ``openvswitch`` (read access to
  OVS's database socket, which a stock host keeps root-only: the fix ``host check`` names) —
  through a lab-written /etc/passwd and /etc/group bind-mounted over the machine's, and a /home
  of the host's own holding ``~vdop/.ssh/authorized_keys`` (the operator key only);
- a second sshd per host, the operator's, on port 2222 (``AllowUsers vdop``), with the host's
  usual host key; /run/lock is 1777 as on a stock host (the placement lock); the owner marks'
  directory /var/lib/virtdeck/marks is the host's own, root:libvirt 2775 (the one step an
  operator's host needs from its admin for a non-root operator: ``install -d -m 2775 -g libvirt``);
- a management network 10.77.0.0/24 on the underlay link that only central and ``hv2`` have
  addresses in: hv2's operator sshd listens on 10.77.0.12 only, so the machine (no route there)
  reaches it only through central — the bastion, 192.168.100.10:2222 (``ProxyJump``);
- the last hypervisor is "fresh": no `virtdeck` storage pool (``ensure_pool`` is skipped) and
  not in the fleet inventory, for ``host add … --create-pool``.

What each host is (:data:`ROLES`, printed by the readiness check and the README)::

    bastion  central 192.168.100.10:2222   jump host (and OVN central), operator login only
    hv1      192.168.100.11:2222           hypervisor reached directly, as vdop
    hv2      10.77.0.12:2222               hypervisor reached only through the bastion
    hvN      192.168.100.1N:2222           (the last one) fresh: no pool, not in the inventory

Files under ``<lab>/fleet/``: ``home/`` is the operator's HOME for tests and demos (never the
machine's): ``.ssh/config`` names the hosts by alias (``bastion``, ``hv1.fleet`` …; User, Port,
ProxyJump, IdentityFile, UserKnownHostsFile all there, paths absolute: OpenSSH expands ``~``
from the passwd entry, not $HOME; run it as ``ssh -F <home>/.ssh/config ALIAS``), ``.ssh/id_ed25519`` (the operator key,
kept across `down` like the lab key), ``.ssh/known_hosts`` (the hosts' real keys under the
names ssh looks up), ``.config/virtdeck/inventory.toml`` (the fleet inventory: addresses are
aliases, no user/port: ssh_config decides; NB over tcp:192.168.100.10:6641, since the operator
may not open the NB's root-only unix socket). ``HOME=<lab>/fleet/home virtdeck …`` is the
operator. Everything lives in the hosts' namespaces and the lab dir: `lab down` (and a
sandbox's cleanup) removes it as the rest of the lab.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import tomli_w

from . import hosts as H
from . import netns as N
from . import topology as topo
from .state import LabError, host_dir, lab_dir, run, write_file

USER = "vdop"
UID = 2601
#: groups the operator is in on every hypervisor (name -> gid when the machine lacks it)
GROUPS = {"libvirt": 2610, "openvswitch": 2611}
OP_PORT = 2222
OP_PIDFILE = "/run/sshd-operator.pid"
BASTION = "central"
BEHIND = "hv2"
MGMT_NET = "10.77.0"          # /24 on the underlay link: central .10, hv2 .12 only
MIN_HYPERVISORS = 3
OVS_SOCKET = "/run/openvswitch/db.sock"
MARKS_PARENT = "/var/lib/virtdeck"


def fresh_host(n: int) -> str:
    """The hypervisor left fresh in a fleet of ``n`` (the last one)."""
    return topo.hypervisors(n)[-1].name


def alias(name: str) -> str:
    """The operator's ssh_config alias of lab host ``name``."""
    return "bastion" if name == BASTION else f"{name}.fleet"


def mgmt_address(h: topo.LabHost) -> str:
    return f"{MGMT_NET}.{h.address.rsplit('.', 1)[1]}"


def op_address(h: topo.LabHost) -> str:
    """Where the operator's sshd of ``h`` listens (hv2: the management network only)."""
    return mgmt_address(h) if h.name == BEHIND else h.address


def roles(n: int) -> dict[str, str]:
    """``{host: what it is}`` for a fleet of ``n`` hypervisors (readiness check, README)."""
    out = {BASTION: f"bastion (jump host, OVN central), {topo.CENTRAL_ADDRESS}:{OP_PORT}, alias bastion"}
    fresh = fresh_host(n)
    for h in topo.hypervisors(n):
        if h.name == fresh:
            out[h.name] = (f"fresh hypervisor at `up` (no pool {topo.POOL_NAME}, not in the inventory), "
                           f"{h.address}:{OP_PORT}, alias {alias(h.name)}")
        elif h.name == BEHIND:
            out[h.name] = (f"hypervisor reached only through the bastion, {mgmt_address(h)}:{OP_PORT}, "
                           f"alias {alias(h.name)}")
        else:
            out[h.name] = f"hypervisor reached directly, {h.address}:{OP_PORT}, alias {alias(h.name)}"
    return out


def fleet_dir() -> Path:
    return lab_dir() / "fleet"


def home() -> Path:
    """The operator's HOME (``~/.ssh/config``, the key, known_hosts, the fleet inventory)."""
    return fleet_dir() / "home"


def inventory_path() -> Path:
    return home() / ".config" / "virtdeck" / "inventory.toml"


def operator_env(base: dict | None = None) -> dict:
    """An environment in which `virtdeck` (and `ssh`) run as the fleet's operator: HOME is the
    fleet's, XDG dirs unset so config/state follow it."""
    env = dict(os.environ if base is None else base)
    for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
              "VIRTDECK_CONFIG", "VIRTDECK_AUDIT_LOG", "SSH_AUTH_SOCK"):
        env.pop(k, None)
    env["HOME"] = str(home())
    return env


# --------------------------------------------------------------------------- keys and files

def ensure_operator_key() -> Path:
    """The operator's key (kept across `down`, like the lab key)."""
    key = fleet_dir() / "id_ed25519"
    key.parent.mkdir(parents=True, exist_ok=True)
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{USER}@fleet", "-f", str(key)])
    return key


def _passwd_group() -> tuple[str, str]:
    """The machine's /etc/passwd and /etc/group plus the operator and its groups."""
    passwd = [line for line in Path("/etc/passwd").read_text().splitlines()
              if line and not line.startswith(f"{USER}:")]
    passwd.append(f"{USER}:x:{UID}:{UID}:virtdeck fleet operator:/home/{USER}:/bin/sh")
    groups, seen = [], set()
    for line in Path("/etc/group").read_text().splitlines():
        if not line or line.startswith(f"{USER}:"):
            continue
        name, pw, gid, members = (line.split(":") + ["", "", ""])[:4]
        if name in GROUPS:
            seen.add(name)
            mem = [m for m in members.split(",") if m and m != USER] + [USER]
            line = f"{name}:{pw}:{gid}:{','.join(mem)}"
        groups.append(line)
    groups += [f"{g}:x:{gid}:{USER}" for g, gid in GROUPS.items() if g not in seen]
    groups.append(f"{USER}:x:{UID}:")
    return "\n".join(passwd) + "\n", "\n".join(groups) + "\n"


def _host_files(h: topo.LabHost) -> Path:
    """hosts/<name>/fleet/{passwd,group,home/vdop/.ssh/authorized_keys} owned as sshd wants."""
    d = host_dir(h.name) / "fleet"
    passwd, group = _passwd_group()
    (d / "home").mkdir(parents=True, exist_ok=True)
    write_file(d / "passwd", passwd, in_place=True)
    write_file(d / "group", group, in_place=True)
    for p in (d / "passwd", d / "group"):
        p.chmod(0o644)
    ssh = d / "home" / USER / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    key = ensure_operator_key()
    write_file(ssh / "authorized_keys", key.with_suffix(".pub").read_text())
    for p, mode in ((ssh.parent, 0o700), (ssh, 0o700), (ssh / "authorized_keys", 0o600)):
        os.chown(p, UID, UID)
        p.chmod(mode)
    return d


def _mounted(pid: int, target: str) -> bool:
    try:
        for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
            if line.split()[4] == target:
                return True
    except OSError:
        pass
    return False


def prepare_host(h: topo.LabHost, pid: int) -> None:
    """Before the daemons: the operator's account in ``h`` (bind mounts in its own mount
    namespace, idempotent), /run/lock 1777, and the management address (central, hv2)."""
    d = _host_files(h)
    for src, target in ((d / "passwd", "/etc/passwd"), (d / "group", "/etc/group"), (d / "home", "/home")):
        if not _mounted(pid, target):
            H.run_in(h, ["mount", "--bind", str(src), target], pid=pid)
    H.run_in(h, ["chmod", "1777", "/run/lock"], pid=pid)
    if h.is_hypervisor:
        # virtdeck's owner marks (backends/owner_marks.py) live in /var/lib/virtdeck/marks: a
        # directory of the host's own here (the lab's hosts share the machine's /var/lib), made
        # group-writable for libvirt as an operator's host needs it (`host check` says so).
        state_dir = d / "var-lib-virtdeck"
        state_dir.mkdir(exist_ok=True)
        H.run_in(h, ["mkdir", "-p", MARKS_PARENT], pid=pid)  # the mount point (an empty directory)
        if not _mounted(pid, MARKS_PARENT):
            H.run_in(h, ["mount", "--bind", str(state_dir), MARKS_PARENT], pid=pid)
        H.run_in(h, ["install", "-d", "-m", "2775", "-g", "libvirt", f"{MARKS_PARENT}/marks"], pid=pid)
    if h.name in (BASTION, BEHIND):
        N.ensure_addr(h.netns, "eth0", mgmt_address(h), 24)


def _socket_access(h: topo.LabHost, pid: int) -> None:
    """libvirtd's and OVS's sockets for the groups the operator is in. libvirtd gets it from
    its libvirtd.conf in a fleet lab (hosts.ensure_libvirt: ``unix_sock_group = "libvirt"``,
    ``unix_sock_rw_perms = "0770"``, as on a real host); set here too for a libvirtd started
    before the lab became a fleet. OVS has no such option: ovsdb-server makes its socket
    root-only whenever it starts, so every `up` sets it again."""
    script = (f"chgrp libvirt {topo.LIBVIRT_SOCKET} && chmod 0770 {topo.LIBVIRT_SOCKET} && "
              f"chgrp openvswitch {OVS_SOCKET} && chmod 0770 {OVS_SOCKET}")
    H.run_in(h, ["sh", "-c", script], pid=pid)


def ensure_operator_sshd(h: topo.LabHost, pid: int) -> bool:
    """The operator's sshd in ``h``: port 2222 on :func:`op_address`, ``vdop`` only, the host's
    usual host key. Returns True when started now."""
    d = host_dir(h.name) / "ssh"
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "sshd_operator_config"
    write_file(cfg, "\n".join([
        f"Port {OP_PORT}", f"ListenAddress {op_address(h)}", f"HostKey {H.host_key_path(h)}",
        f"PidFile {OP_PIDFILE}", f"AllowUsers {USER}", "PermitRootLogin no",
        "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "UsePAM no", "StrictModes yes", "AuthorizedKeysFile .ssh/authorized_keys", "PrintMotd no",
        "UseDNS no", "MaxStartups 200:30:400", "MaxSessions 100", "AcceptEnv LANG LC_*",
        "Subsystem sftp internal-sftp", "AllowStreamLocalForwarding yes", "AllowTcpForwarding yes", "",
    ]))
    return H._start(h, pid, OP_PIDFILE, ["/usr/sbin/sshd", "-f", str(cfg)], "the operator's sshd")


def after_daemons(h: topo.LabHost, pid: int) -> None:
    """After the host's daemons: socket access for the operator's groups, the operator's sshd."""
    if h.is_hypervisor:
        _socket_access(h, pid)
    ensure_operator_sshd(h, pid)


# --------------------------------------------------------------------------- the operator's HOME

def ssh_config_text(n: int) -> str:
    """The operator's ~/.ssh/config: every host by alias; hv2 through the bastion."""
    blocks = [f"# Written by `virtdeck lab up --fleet`: the fleet lab's hosts by alias.\n"
              f"Host bastion\n    HostName {topo.CENTRAL_ADDRESS}\n    Port {OP_PORT}\n"]
    for h in topo.hypervisors(n):
        extra = "    ProxyJump bastion\n" if h.name == BEHIND else ""
        blocks.append(f"Host {alias(h.name)}\n    HostName {op_address(h)}\n    Port {OP_PORT}\n{extra}")
    # Absolute paths: OpenSSH expands ~ from the passwd entry (root's /root here), virtdeck
    # from $HOME; spelled out, `ssh -F` and virtdeck read the same files.
    ssh = home() / ".ssh"
    blocks.append(f"Host *\n    User {USER}\n    IdentityFile {ssh / 'id_ed25519'}\n    IdentitiesOnly yes\n"
                  f"    UserKnownHostsFile {ssh / 'known_hosts'}\n    StrictHostKeyChecking yes\n"
                  f"    BatchMode yes\n")
    return "\n".join(blocks)


def known_hosts_text(n: int) -> str:
    """The hosts' real keys under the names ssh looks them up by (``[HostName]:2222``)."""
    lines = []
    for h in topo.hosts(n):
        if not h.has_sshd:
            continue
        pub = H.host_key_path(h).with_suffix(".pub").read_text().split()
        addr = topo.CENTRAL_ADDRESS if h.name == BASTION else op_address(h)
        lines.append(f"[{addr}]:{OP_PORT} {pub[0]} {pub[1]}")
    return "\n".join(lines) + "\n"


def inventory(n: int, tpl) -> dict:
    """The fleet inventory: hypervisors by alias, no user/port (ssh_config decides), the fresh
    host left out; NB over TCP."""
    from .central import flavour
    from .up import _ovn_inventory, template_entry
    ovn = flavour()
    inv: dict = {
        # standalone: NB over TCP (the operator may not open central's root-only unix socket)
        "ovn": {"connection": topo.NB_TCP} if ovn == topo.OVN_STANDALONE else _ovn_inventory(ovn),
        "allocation": {"cpu_ratio": 4.0, "ram_ratio": 1.0},
        "hosts": [],
        "tenants": [{"name": "demo"}],
    }
    fresh = fresh_host(n)
    for h in topo.hypervisors(n):
        if h.name != fresh:
            inv["hosts"].append({"name": h.name, "address": alias(h.name),
                                 "libvirt_socket": topo.LIBVIRT_SOCKET, "domain_type": "qemu"})
    if tpl is not None:
        inv["templates"] = [template_entry(tpl)]
    return inv


def write_home(n: int, tpl) -> Path:
    """The operator's HOME (see the module doc); the inventory is written only when missing
    (`host add` edits it; a second `up` must not undo that). Returns the HOME path."""
    hm = home()
    ssh = hm / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    ssh.chmod(0o700)
    key = ensure_operator_key()
    for src, dst in ((key, ssh / "id_ed25519"), (key.with_suffix(".pub"), ssh / "id_ed25519.pub")):
        write_file(dst, src.read_text())
    (ssh / "id_ed25519").chmod(0o600)
    write_file(ssh / "config", ssh_config_text(n))
    write_file(ssh / "known_hosts", known_hosts_text(n))
    inv = inventory_path()
    if not inv.exists():
        inv.parent.mkdir(parents=True, exist_ok=True)
        with open(inv, "wb") as f:
            f.write(b"# Written by `virtdeck lab up --fleet` (once; `host add` edits it).\n")
            tomli_w.dump(inventory(n, tpl), f)
    return hm


# --------------------------------------------------------------------------- readiness

def ssh_argv(name: str, argv: list[str], timeout: int = 10) -> list[str]:
    """OpenSSH client argv as the operator: the fleet HOME's ssh_config, host by alias."""
    return ["ssh", "-F", str(home() / ".ssh" / "config"), "-o", f"ConnectTimeout={timeout}",
            alias(name), shlex.join(argv)]


def checks(n: int) -> list:
    """The fleet's readiness lines (status.Check): each host reached as the operator with the
    real ssh client through the fleet HOME's ssh_config (the bastion for hv2), its user and
    groups, and that hv2's operator sshd is NOT reachable from the machine directly."""
    from concurrent.futures import ThreadPoolExecutor

    from .status import Check
    rl = roles(n)
    env = operator_env()

    def one(h: topo.LabHost) -> Check:
        what = "id -un; id -Gn; hostname"
        try:
            p = subprocess.run(ssh_argv(h.name, ["sh", "-c", what]), capture_output=True, text=True,
                               timeout=30, env=env)
        except subprocess.TimeoutExpired:
            return Check(f"{h.name} operator ssh", False, f"{rl[h.name]}: timed out")
        if p.returncode != 0:
            return Check(f"{h.name} operator ssh", False,
                         f"{rl[h.name]}: {(p.stderr.strip().splitlines() or ['refused'])[-1]}")
        user, groups, hostname = (p.stdout.split("\n") + ["", "", ""])[:3]
        want = {"libvirt", "openvswitch"} if h.is_hypervisor else set()
        ok = user == USER and hostname.strip() == h.name and want <= set(groups.split())
        return Check(f"{h.name} operator ssh", ok, f"{rl[h.name]}; {user}@{hostname.strip()} groups {groups}")

    with ThreadPoolExecutor(max_workers=4) as ex:
        out = list(ex.map(one, [h for h in topo.hosts(n) if h.has_sshd]))
    behind = topo.by_name(BEHIND)
    p = subprocess.run(["ssh", "-F", "none", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3",
                        "-p", str(OP_PORT), f"{USER}@{mgmt_address(behind)}", "true"],
                       capture_output=True, text=True, timeout=20, env=env)
    out.append(Check(f"{BEHIND} direct from the machine", p.returncode != 0,
                     "unreachable without the bastion" if p.returncode != 0 else "REACHABLE directly"))
    return out


def _make_fresh(h: topo.LabHost, pid: int, log) -> None:
    """``h`` without the `virtdeck` pool (undefined, its directory emptied) unless the operator
    onboarded it (it is in the fleet inventory) or a domain lives there."""
    import libvirt
    if inventory_path().exists() and f'"{h.name}"' in inventory_path().read_text():
        return
    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(H.libvirt_uri(h, pid))
    try:
        if conn.listAllDomains(0):
            log(f"{h.name}: has domains; left as it is (not fresh)")
            return
        try:
            pool = conn.storagePoolLookupByName(topo.POOL_NAME)
        except libvirt.libvirtError:
            return
        for vol in pool.listAllVolumes(0) if pool.isActive() else []:
            vol.delete(0)
        if pool.isActive():
            pool.destroy()
        pool.undefine()
    finally:
        conn.close()
    H.run_in(h, ["rm", "-rf", topo.POOL_PATH], pid=pid)


def apply(n: int, tpl, log, state: dict) -> None:
    """Shape the running lab of ``n`` hypervisors as the fleet (see the module doc); called by
    ``up`` after the daemons, before its readiness check, on every `up` of a fleet lab.
    ``state``: up's state.json record (``fleet_fresh`` = the fresh host is saved in it)."""
    from concurrent.futures import ThreadPoolExecutor

    from .state import save_state
    require(n)
    ensure_operator_key()
    fresh = topo.by_name(fresh_host(n))
    state["fleet_fresh"] = fresh.name
    save_state(state)

    def one(h: topo.LabHost) -> None:
        pid = H.holder_pid(h)
        prepare_host(h, pid)
        after_daemons(h, pid)
        if h == fresh:
            _make_fresh(h, pid, log)
    with ThreadPoolExecutor(max_workers=4) as ex:
        list(ex.map(one, [h for h in topo.hosts(n) if h.has_sshd]))
    write_home(n, tpl)
    for name, what in roles(n).items():
        log(f"fleet: {name}: {what}")
    log(f"fleet: operator HOME {home()} (HOME={home()} virtdeck …)")


def recorded() -> bool:
    """True when the lab was brought up as a fleet (state.json)."""
    from .state import load_state
    return bool(load_state().get("fleet"))


def up(n: int | None = None, log=print, owner: int | None = None, ovn: str | None = None):
    """`virtdeck lab up --fleet`: the lab of ``n`` (default: what runs, else 3) hypervisors
    shaped as the fleet. Recorded in state.json, so every later `up` keeps it (only `lab down`
    ends it). Returns the LabStatus (ready, else LabError naming what failed)."""
    from . import up as lab_up
    from .state import lab_lock, load_state, save_state
    if n is None:
        n = int(load_state().get("hypervisors") or 0) or MIN_HYPERVISORS
    require(n)
    lab_dir().mkdir(parents=True, exist_ok=True)
    with lab_lock(log):
        state = load_state()
        state["fleet"] = True
        save_state(state)
    return lab_up.up(n, log=log, owner=owner, ovn=ovn)


def require(n: int) -> None:
    """Raise LabError when ``n`` hypervisors cannot make a fleet."""
    if n < MIN_HYPERVISORS:
        raise LabError(f"--fleet needs at least {MIN_HYPERVISORS} hypervisors (a direct one, "
                       f"{BEHIND} behind the bastion, a fresh one), not {n}")
