"""Preflight of one host: what virtdeck needs there, one fact per line, each ok / warn / fail with
the exact command that fixes it (``virtdeck host check``, ``host add``).

Where each fact comes from:

- SSH and host key: the host's :class:`backends.ssh.HostLink` (``Session.link``: ssh_config,
  the inventory's and ssh's known_hosts files) — user, peer address and the key's fingerprint;
- libvirt: the forwarded socket (``Session.libvirt``) — :func:`backends.hypervisor.host_facts`
  (version, arch, domain types of the host arch) plus the capabilities' ``<guest><arch>`` for
  the guest arches; KVM usable = libvirt offers domain type ``kvm`` for the host's arch (it
  checks ``/dev/kvm`` itself), else only TCG (``qemu``);
- storage pools: the libvirt storage API (state, autostart, target path, bytes free);
- everything else from ONE shell command over the same SSH link (:data:`PROBE`, all of it
  readable without root): OVS ``br-int`` and the Open_vSwitch ``external_ids`` ovn-controller
  reads (``system-id`` = the chassis name, ``ovn-remote`` = the southbound, ``ovn-encap-ip``,
  ``ovn-bridge-mappings``), whether ovn-controller runs (its pidfile, ``/proc/PID/comm``) and
  its SB connection (``ovn-appctl connection-status``), the host tools (flock, gzip, sha256sum)
  and the placement lock's directory.
- the OVN southbound chassis: ``ovn-sbctl`` ON THE HOST against its own ``ovn-remote``. Why
  there: that is the very southbound the host's ovn-controller registers in, the host has
  ``ovn-sbctl`` wherever it has ovn-controller (same package family), and it needs no SB
  connection of the console's own (the console talks only to NB, which may be reached
  directly, without any SSH host that sees the SB). An ``ssl:`` remote is queried with the
  host's own OVS SSL files (``ovs-vsctl get-ssl``, else the ``--private-key=``/``--certificate=``
  /``--ca-cert=`` ovn-controller was started with: ovn-ctl, MicroOVN); if the operator may not
  read them, the service asks the inventory's ``sb_connection`` when it names the same members
  (:func:`sb_values`), else the line says so.

Works for a non-root operator: nothing here needs root; what a user cannot read (the OVS
database socket, libvirt without the ``libvirt`` group) is a fail line naming the permission.

:func:`create_dir_pool` is the fix for a missing pool: define a ``dir`` pool, build (mkdir by
libvirtd), start, autostart — through the libvirt storage API, undone if a step fails.
"""

from __future__ import annotations

import shlex
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from xml.sax.saxutils import escape

import libvirt

from . import hypervisor
from .host_facts import parse_bridge_mappings
from .hostlock import LOCK_DIR
from .owner_marks import MARK_DIR
from ..console.errors import HostError

OK, WARN, FAIL = "ok", "warn", "fail"
#: tools virtdeck runs on a host: placement lock, definitions at start-up, template sha256
TOOLS = ("flock", "gzip", "sha256sum")
OVS_KEYS = ("system-id", "ovn-remote", "ovn-encap-ip", "ovn-encap-type", "ovn-bridge-mappings")
GiB = 1024 ** 3


@dataclass(frozen=True)
class CheckLine:
    """One fact about a host: ``fact`` (``"ssh"``, ``"pool virtdeck"``, …), ``status`` ok / warn /
    fail, ``detail`` (what was found), ``fix`` (the command that fixes a warn/fail, else None)."""

    fact: str
    status: str
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# The one shell command

_MARK = "@@"
PROBE = "; ".join([
    f'echo "{_MARK}user=$(id -un)"',
    f'echo "{_MARK}groups=$(id -Gn)"',
    *(f'echo "{_MARK}tool.{t}=$(command -v {t})"' for t in TOOLS),
    f'if [ -d {LOCK_DIR} ] && [ -w {LOCK_DIR} ] || mkdir -p {LOCK_DIR} 2>/dev/null; '
    f'then echo "{_MARK}lockdir=writable"; else echo "{_MARK}lockdir=not writable"; fi',
    f'if [ -d {MARK_DIR} ] && [ -w {MARK_DIR} ] || mkdir -p {MARK_DIR} 2>/dev/null; '
    f'then echo "{_MARK}marksdir=writable"; else echo "{_MARK}marksdir=not writable"; fi',
    f'echo "{_MARK}ovs-vsctl=$(command -v ovs-vsctl)"',
    f'out=$(ovs-vsctl --timeout=5 br-exists br-int 2>&1); echo "{_MARK}br-int=$? $out" | tr "\\n" " "; echo',
    f'out=$(ovs-vsctl --timeout=5 --if-exists get Open_vSwitch . '
    + " ".join(f"external_ids:{k}" for k in OVS_KEYS)
    + f' 2>&1); rc=$?; echo "{_MARK}ovs.rc=$rc"; i=0; '
    f'for k in {" ".join(OVS_KEYS)}; do i=$((i+1)); '
    f'echo "{_MARK}ovs.$k=$(printf "%s\\n" "$out" | sed -n "${{i}}p" | tr -d \'"\')"; done',
    # ovn-controller: its pidfile (Debian /run/ovn, older /run/openvswitch) and the process
    'pid=; for d in /run/ovn /var/run/ovn /run/openvswitch /var/run/openvswitch; do '
    '[ -r $d/ovn-controller.pid ] && pid=$(cat $d/ovn-controller.pid) && break; done',
    f'echo "{_MARK}ovnc.pid=$pid"',
    f'[ -n "$pid" ] && echo "{_MARK}ovnc.comm=$(cat /proc/$pid/comm 2>/dev/null)"',
    f'echo "{_MARK}ovnc.status=$(ovn-appctl -t ovn-controller connection-status 2>&1 | head -1)"',
    # the SB as this host's ovn-controller sees it (ssl: with the host's own OVS SSL files)
    'remote=$(ovs-vsctl --timeout=5 --if-exists get Open_vSwitch . external_ids:ovn-remote 2>/dev/null | tr -d \'"\')',
    'sysid=$(ovs-vsctl --timeout=5 --if-exists get Open_vSwitch . external_ids:system-id 2>/dev/null | tr -d \'"\')',
    'ssl=; case "$remote" in *ssl:*) ssl=$(ovs-vsctl --timeout=5 get-ssl 2>/dev/null | '
    "awk -F': ' '/^Private key/{k=$2}/^Certificate/{c=$2}/^CA Certificate/{a=$2}"
    "END{if(k!=\"\")printf \"-p %s -c %s -C %s\", k, c, a}'); esac",
    # ... else the files ovn-controller was started with (ovn-ctl, MicroOVN: --private-key=…)
    'case "$remote" in *ssl:*) [ -z "$ssl" ] && [ -n "$pid" ] && ssl=$(tr "\\0" "\\n" < /proc/$pid/cmdline '
    '2>/dev/null | sed -n -e "s/^--private-key=/-p /p" -e "s/^--certificate=/-c /p" '
    '-e "s/^--ca-cert=/-C /p" | tr "\\n" " "); esac',
    'bad=; for f in $ssl; do case "$f" in -*) ;; *) [ -r "$f" ] || bad="$f";; esac; done',
    'case "$remote" in *ssl:*) [ -z "$ssl" ] && bad="-";; esac',  # no SSL files known at all
    f'if [ -n "$remote" ] && [ -n "$sysid" ] && [ -n "$bad" ]; then echo "{_MARK}sb.rc=unreadable $bad"; '
    f'elif [ -n "$remote" ] && [ -n "$sysid" ]; then '
    f'out=$(ovn-sbctl --db="$remote" $ssl --timeout=5 --bare --columns=name find Chassis name="$sysid" 2>&1); '
    f'echo "{_MARK}sb.rc=$? $out" | tr "\\n" " "; echo; '
    f'out=$(ovn-sbctl --db="$remote" $ssl --timeout=5 --format=csv --data=bare --no-headings '
    f'--columns=type,ip find Encap chassis_name="$sysid" 2>&1); '
    f'echo "{_MARK}sb.encap=$out" | tr "\\n" ";"; echo; fi',
])


def parse_probe(text: str) -> dict[str, str]:
    """The ``@@key=value`` lines of :data:`PROBE`'s output → ``{key: value}`` (values stripped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(_MARK):
            key, _, value = line[len(_MARK):].partition("=")
            out[key] = value.strip().rstrip(";").strip()
    return out


def probe(session, host: str, timeout: float = 30.0) -> dict[str, str]:
    """Run :data:`PROBE` on ``host`` (one SSH command); returns :func:`parse_probe`'s dict.
    Raises HostError when SSH fails or the command times out (``timeout`` seconds)."""
    res = session.run(host, ["sh", "-c", PROBE], timeout=timeout)
    return parse_probe(res.stdout)


# ---------------------------------------------------------------------------------------------
# Reading the probe (pure: tested without a host)


def _on(host: str, cmd: str) -> str:
    return f"on {host}: {cmd}"


def tools_line(host: str, v: dict[str, str]) -> CheckLine:
    """flock / gzip / sha256sum present, and the placement lock's directory writable."""
    missing = [t for t in TOOLS if not v.get(f"tool.{t}")]
    lock_ok = v.get("lockdir") == "writable"
    marks_ok = v.get("marksdir") != "not writable"  # not probed: nothing to say
    found = ", ".join(t for t in TOOLS if t not in missing) or "none"
    marks = "" if "marksdir" not in v else \
        f"{MARK_DIR} {'writable' if marks_ok else 'NOT writable'} (owner marks); "
    detail = f"{found} found; {marks}{LOCK_DIR} {'writable' if lock_ok else 'NOT writable'} (placement lock)"
    if missing:
        pkgs = " ".join(dict.fromkeys({"flock": "util-linux", "gzip": "gzip",
                                        "sha256sum": "coreutils"}[t] for t in missing))
        return CheckLine("tools", FAIL, f"missing {', '.join(missing)}; {detail}",
                         _on(host, f"sudo apt-get install {pkgs}"))
    if not lock_ok:
        return CheckLine("tools", FAIL, detail, _on(host, f"sudo chmod 1777 {LOCK_DIR}"))
    if not marks_ok:  # a non-root operator: vm create writes its owner mark there
        return CheckLine("tools", FAIL, detail, _on(host, f"sudo install -d -m 2775 -g libvirt {MARK_DIR}"))
    return CheckLine("tools", OK, detail)


def _ovs_denied(v: dict[str, str]) -> CheckLine | None:
    """A fail line when OVS cannot be read at all (no ovs-vsctl, database down, no permission)."""
    user = v.get("user", "?")
    if not v.get("ovs-vsctl"):
        return CheckLine("ovs", FAIL, "ovs-vsctl not found: Open vSwitch is not installed",
                         "sudo apt-get install openvswitch-switch ovn-host")
    rc, _, msg = v.get("br-int", "").partition(" ")
    if rc not in ("0", "2"):  # br-exists: 0 yes, 2 no; anything else: cannot ask
        if "ermission denied" in msg:
            return CheckLine("ovs", FAIL, f"{user} may not read the OVS database ({msg.strip()})",
                             "grant the operator read access to /run/openvswitch/db.sock "
                             "(e.g. its group), or run as a user that has it")
        return CheckLine("ovs", FAIL, f"ovs-vsctl failed: {msg.strip() or 'rc ' + rc}",
                         "sudo systemctl start openvswitch-switch")
    return None


def ovn_lines(host: str, v: dict[str, str]) -> list[CheckLine]:
    """br-int, ovn-controller, this chassis in the southbound (with its encap IP) and the bridge
    mappings, from the probe's values."""
    denied = _ovs_denied(v)
    if denied:
        return [denied]
    lines = []
    if v.get("br-int", "").split(" ")[0] == "0":
        lines.append(CheckLine("br-int", OK, "OVS integration bridge br-int exists"))
    else:
        lines.append(CheckLine("br-int", FAIL, "no OVS bridge br-int (ovn-controller creates it)",
                               _on(host, "sudo systemctl restart ovn-controller")))
    pid, comm, status = v.get("ovnc.pid", ""), v.get("ovnc.comm", ""), v.get("ovnc.status", "")
    sysid, remote = v.get("ovs.system-id", ""), v.get("ovs.ovn-remote", "")
    if pid and comm == "ovn-controller":
        sb = status if status else "unknown"
        if "ermission denied" in status:  # its control socket is root's: say so, not the raw log line
            sb = f"not readable by {v.get('user', 'the operator')} (ovn-appctl needs root)"
        ok = status == "connected" or not status or "ermission" in status or "cannot connect" in status
        lines.append(CheckLine("ovn-controller", OK if ok else WARN,
                               f"running (pid {pid}), southbound connection: {sb}",
                               None if ok else f"check {remote or 'external_ids:ovn-remote'} answers "
                                               f"from {host}: {_on(host, 'ovn-appctl -t ovn-controller connection-status')}"))
    else:
        lines.append(CheckLine("ovn-controller", FAIL, "ovn-controller is not running"
                               + (f" (stale pidfile, pid {pid})" if pid else ""),
                               _on(host, "sudo systemctl start ovn-controller")))
    lines.append(_chassis_line(host, v, sysid, remote))
    maps = parse_bridge_mappings(v.get("ovs.ovn-bridge-mappings", ""))
    if maps:
        lines.append(CheckLine("bridge mappings", OK, ", ".join(f"{p} → {b}" for p, b in maps)))
    else:
        lines.append(CheckLine("bridge mappings", WARN, "no ovn-bridge-mappings: overlay networks "
                               "only, no provider network (physnet) can be placed here",
                               _on(host, "sudo ovs-vsctl set Open_vSwitch . "
                                         "external_ids:ovn-bridge-mappings=physnet1:br-phys")))
    return lines


def _chassis_line(host: str, v: dict[str, str], sysid: str, remote: str) -> CheckLine:
    if not sysid or not remote:
        missing = " and ".join(k for k, val in (("system-id", sysid), ("ovn-remote", remote)) if not val)
        return CheckLine("sb chassis", FAIL, f"OVS external_ids:{missing} not set: ovn-controller "
                         "cannot register a chassis",
                         _on(host, "sudo ovs-vsctl set Open_vSwitch . external_ids:system-id=$(hostname) "
                                   "external_ids:ovn-remote=tcp:SB_ADDRESS:6642 "
                                   "external_ids:ovn-encap-type=geneve external_ids:ovn-encap-ip=TUNNEL_IP"))
    rc, _, names = v.get("sb.rc", "").partition(" ")
    want_ip = v.get("ovs.ovn-encap-ip", "")
    if rc == "unreadable":  # ovn-controller's SSL file, root's; no SB of the inventory to ask instead
        why = (f"{v.get('user', 'the operator')} may not read ovn-controller's SSL file {names.strip()}"
               if names.strip() != "-" else "no SSL files (none in OVS's SSL table, no ovn-controller "
                                            "running with --private-key)")
        return CheckLine("sb chassis", WARN, f"cannot ask the southbound {remote} from {host}: {why}",
                         "set [ovn] sb_connection in the inventory (the same members): the check "
                         "then asks it with the operator's certificate")
    if rc != "0":
        return CheckLine("sb chassis", WARN, f"cannot ask the southbound {remote} from {host}: "
                         f"{names.strip() or 'no answer'}",
                         _on(host, f"ovn-sbctl --db={remote} show"))
    if sysid not in names.split():
        return CheckLine("sb chassis", FAIL, f"chassis {sysid} is not in the southbound {remote}",
                         _on(host, "sudo systemctl restart ovn-controller") + " (it registers the chassis)")
    encaps = [e.split(",") for e in v.get("sb.encap", "").split(";") if e.strip()]
    ips = [e[1].strip() for e in encaps if len(e) > 1]
    kinds = ",".join(dict.fromkeys(e[0].strip() for e in encaps))
    if not ips:
        return CheckLine("sb chassis", FAIL, f"chassis {sysid} in {remote} has no encap",
                         _on(host, "sudo ovs-vsctl set Open_vSwitch . external_ids:ovn-encap-ip=TUNNEL_IP"))
    if want_ip and want_ip not in ips:
        return CheckLine("sb chassis", WARN, f"chassis {sysid} in {remote}, encap {kinds} {', '.join(ips)} "
                         f"but OVS says ovn-encap-ip={want_ip}",
                         _on(host, "sudo systemctl restart ovn-controller"))
    via = f" (asked through {v['sb.via']})" if v.get("sb.via") else ""
    return CheckLine("sb chassis", OK, f"chassis {sysid} in {remote}, encap {kinds} {', '.join(ips)}{via}")


def sb_values(data, sysid: str) -> dict[str, str]:
    """The probe's ``sb.rc`` / ``sb.encap`` values for chassis ``sysid`` from a read of the
    console's own southbound connection (a :class:`backends.ovn.southbound.SbData`), for a host
    whose ovn-controller SSL files the operator may not read or are not known (``sb.rc``
    "unreadable FILE", "unreadable -");
    ``sb.via`` says where the answer came from."""
    c = data.chassis_named(sysid)
    return {"sb.rc": f"0 {sysid if c else ''}",
            "sb.encap": ";".join(f"{t},{ip}" for t, ip in (c.encaps if c else ())),
            "sb.via": "the inventory's sb_connection"}


# ---------------------------------------------------------------------------------------------
# libvirt and pools


def guest_arches(caps_xml: str) -> dict[str, tuple[str, ...]]:
    """The capabilities' ``<guest><arch name>`` → domain types offered for it (``kvm``, ``qemu``)."""
    out: dict[str, list[str]] = {}
    for arch in ET.fromstring(caps_xml).findall("guest/arch"):
        types = out.setdefault(arch.get("name") or "?", [])
        types += [d.get("type") for d in arch.findall("domain") if d.get("type") not in types]
    return {a: tuple(t) for a, t in out.items()}


def libvirt_lines(conn, host: str, domain_type: str) -> list[CheckLine]:
    """libvirt (version, driver), KVM or TCG, guest arches; ``domain_type``: the inventory's."""
    try:
        f = hypervisor.host_facts(conn)
        driver = conn.getType()
        arches = guest_arches(conn.getCapabilities())
    except libvirt.libvirtError as exc:
        return [CheckLine("libvirt", FAIL, f"libvirt does not answer: {exc.get_error_message()}",
                          _on(host, "sudo systemctl restart libvirtd"))]
    lines = [CheckLine("libvirt", OK, f"libvirt {f.libvirt_version}, driver {driver}, {f.arch}, "
                       f"{f.cores} CPUs, {f.ram_total_mib} MiB")]
    kvm = "kvm" in f.domain_types
    if domain_type == "kvm" and not kvm:
        lines.append(CheckLine("kvm", FAIL, "KVM not usable (libvirt offers only TCG for "
                               f"{f.arch}); the inventory asks domain_type = \"kvm\"",
                               _on(host, "ls -l /dev/kvm; sudo modprobe kvm_intel || sudo modprobe kvm_amd")
                               + f" — or set domain_type = \"qemu\" for {host} in the inventory (TCG, slow)"))
    elif kvm:
        lines.append(CheckLine("kvm", OK, "KVM usable" + ("" if domain_type == "kvm" else
                               f" (the inventory asks domain_type = \"{domain_type}\": TCG)")))
    else:
        lines.append(CheckLine("kvm", WARN, "only TCG (no KVM): guests run emulated, slowly",
                               _on(host, "ls -l /dev/kvm; sudo modprobe kvm_intel || sudo modprobe kvm_amd")))
    lines.append(CheckLine("guest arches", OK, ", ".join(f"{a} ({'/'.join(t)})" for a, t in arches.items())
                           or "none"))
    return lines


def pool_line(conn, host: str, pool: str) -> CheckLine:
    """The storage pool ``pool``: defined, active, autostart, target path and GiB free."""
    fact = f"pool {pool}"
    try:
        p = conn.storagePoolLookupByName(pool)
    except libvirt.libvirtError:
        return CheckLine(fact, FAIL, f"no storage pool {pool!r}",
                         f"virtdeck host check {host} --pool {pool} --create-pool /var/lib/libvirt/images/{pool}")
    try:
        state, _cap, _alloc, avail = p.info()
        auto = bool(p.autostart())
        path = ET.fromstring(p.XMLDesc(0)).findtext("target/path") or "?"
    except libvirt.libvirtError as exc:
        return CheckLine(fact, FAIL, f"storage pool {pool!r}: {exc.get_error_message()}",
                         _on(host, f"virsh pool-info {pool}"))
    if state != libvirt.VIR_STORAGE_POOL_RUNNING:
        return CheckLine(fact, FAIL, f"{path}: defined but not active",
                         _on(host, f"virsh pool-start {pool} && virsh pool-autostart {pool}"))
    detail = f"{path}, active, {avail / GiB:.1f} GiB free"
    if not auto:
        return CheckLine(fact, WARN, detail + ", NOT autostarted (gone after a reboot of libvirtd's host)",
                         _on(host, f"virsh pool-autostart {pool}"))
    return CheckLine(fact, OK, detail + ", autostart")


def create_dir_pool(conn, host: str, pool: str, path: str) -> str:
    """Define a ``dir`` storage pool ``pool`` at ``path`` on ``host``, build it (libvirtd makes
    the directory), start it and mark it autostart. Returns the target path.

    A step that fails undoes the earlier ones (destroy, delete the built directory only if this
    call built it, undefine). Raises HostError (libvirt's message) — also when a pool of that
    name already exists (never touched).
    """
    try:
        conn.storagePoolLookupByName(pool)
    except libvirt.libvirtError:
        pass
    else:
        raise HostError(f"{host}: storage pool {pool!r} already exists")
    xml = (f"<pool type='dir'><name>{escape(pool)}</name>"
           f"<target><path>{escape(path)}</path></target></pool>")
    p = None
    step = "define"
    try:
        p = conn.storagePoolDefineXML(xml, 0)
        step = "build"
        p.build(libvirt.VIR_STORAGE_POOL_BUILD_NEW)
        step = "start"
        p.create(0)
        step = "autostart"
        p.setAutostart(1)
    except libvirt.libvirtError as exc:
        if p is not None:
            _undo_pool(p, built=step not in ("define", "build"))
        raise HostError(f"{host}: storage pool {pool!r} at {path}: {step}: {exc.get_error_message()}") from None
    return path


def _undo_pool(p, built: bool) -> None:
    for fn in (p.destroy, (lambda: p.delete(0)) if built else None, p.undefine):
        if fn is None:
            continue
        try:
            fn()
        except libvirt.libvirtError:
            pass  # best effort: the pool may not have got that far


def remove_pool(conn, host: str, pool: str, delete_dir: bool = False) -> None:
    """Stop and undefine pool ``pool`` (``delete_dir``: also remove its now-empty directory,
    ``virStoragePoolDelete``). Raises HostError when the pool does not exist or libvirt refuses
    (a directory with volumes in it is not deleted)."""
    try:
        p = conn.storagePoolLookupByName(pool)
        if p.isActive():
            p.destroy()
        if delete_dir:
            p.delete(0)
        p.undefine()
    except libvirt.libvirtError as exc:
        raise HostError(f"{host}: remove storage pool {pool!r}: {exc.get_error_message()}") from None


def ssh_line(link, host: str) -> CheckLine:
    """The SSH line of an open :class:`backends.ssh.HostLink`: user@peer:port and the key."""
    conn = link.conn
    peer = conn.get_extra_info("peername") or ("?", "?")
    user = conn.get_extra_info("username") or "?"
    key = conn.get_server_host_key()
    fp = key.get_fingerprint("sha256") if key is not None else "?"
    where = f"{peer[0]}:{peer[1]}" if peer[0] else "(through its ProxyJump)"  # a tunnel has no peer
    return CheckLine("ssh", OK, f"{user}@{where}, host key {fp} known")


def ssh_fail_line(host: str, address: str, exc: BaseException) -> CheckLine:
    """The SSH line for a connection that failed (``exc``: HostError and its key subclasses,
    whose messages already name the command to verify a key)."""
    from .ssh import HostKeyChanged, HostKeyUnknown
    if isinstance(exc, HostKeyUnknown):
        return CheckLine("ssh", FAIL, str(exc),
                         f"{exc.verify}, then: ssh {shlex.quote(address)} true  (and accept the key), "
                         f"or trust it in the console")
    if isinstance(exc, HostKeyChanged):
        return CheckLine("ssh", FAIL, str(exc), f"ssh-keygen -R {shlex.quote(address)} (only if the host was reinstalled)")
    return CheckLine("ssh", FAIL, str(exc), f"ssh {shlex.quote(address)} true  (must work without a password prompt)")
