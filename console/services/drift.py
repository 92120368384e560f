"""The drift check: every disagreement between libvirt (domains, volumes, owner marks), OVN NB
and OVN SB, each with its fix — `virtdeck check` and the console's drift view.

:func:`gather` reads the systems of record once (every hypervisor in parallel; the NB replica;
one SB snapshot) into :class:`Facts`; :func:`findings` judges them (no I/O); :func:`check` does
both for the CLI/TUI and returns a JSON-ready report; :func:`fix` removes the safe findings
(orphans) through the backend doors (``storage.delete_volume``, ``vm_ports.remove_rows``,
``owner_marks``), re-checking each one just before it goes.
The chains of one VM, network, router or host (``check vm|network|router|host NAME``) are in
:mod:`.drift_chains`.

Findings (``kind``; *safe* ones are what ``--fix`` removes):

==================  =================================================================  =====
kind                disagreement                                                       safe
==================  =================================================================  =====
lsp-orphan          an LSP tagged ``virtdeck:vm`` whose VM exists on no hypervisor      yes
nic-no-lsp          a domain NIC whose interfaceid names no LSP                         no
binding-elsewhere   a VM's port bound (SB) on a chassis other than its host's          no
physnet-missing     a VM on a provider network on a host without that physnet mapping   no
dhcp-cidr           a switch's DHCP options CIDR differs from its subnet                no
fip-orphan          a floating IP whose logical port is gone                            yes
chassis-unclaimed   an SB chassis no inventory host claims                              no
volume-orphan       a volume an owner mark names, used by no domain, its create dead    yes
nvram-orphan        an NVRAM file of a marked VM that has no domain                     yes
download-orphan     a `template add --url` partial nobody writes, untouched for 24 h    yes
==================  =================================================================  =====

Only what is clearly ours and clearly orphaned is judged: a VM is "gone" only when every
enabled hypervisor answered (a host that did not answer makes the check *partial* and no
lsp-orphan is concluded); a volume is judged only when an owner mark names it
(:mod:`backends.owner_marks`) and that mark is not held by a create in flight; a VM whose
create is in flight (its mark is held) is never an orphan anywhere. A partial download younger
than a day (:data:`backends.download.ABANDONED_AFTER_S`) is kept for `template add` to resume.
"""

from __future__ import annotations

import concurrent.futures
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from ...backends import domains, download, owner_marks, storage
from ...backends.ovn import connection as ovn_nb
from ...backends.ovn import drift_rows, southbound, vm_ports
from ..errors import HostError, ValidationError, VirtdeckError
from . import verb as verb_frame
from .drift_chains import chain, host_chain, network_chain, router_chain

KINDS = ("lsp-orphan", "nic-no-lsp", "binding-elsewhere", "physnet-missing", "dhcp-cidr",
         "fip-orphan", "chassis-unclaimed", "volume-orphan", "nvram-orphan", "download-orphan")
SAFE_KINDS = frozenset({"lsp-orphan", "fip-orphan", "volume-orphan", "nvram-orphan", "download-orphan"})
SCOPES = ("vm", "network", "router", "host")
_SB = ":southbound"   # the SB job's key beside the host names (no host name has a colon)


@dataclass(frozen=True)
class Finding:
    """One disagreement. ``kind`` (see the module doc), ``subject`` (what it is about, one
    phrase), ``detail`` (what disagrees with what), ``fix`` (what repairs it: what ``--fix``
    does for a safe one, else the command to run), ``safe`` (``--fix`` removes it), ``host``
    (the hypervisor concerned, if any), ``scope`` ({"vm"|"network"|"router"|"host": name} for
    ``check vm NAME`` & co.), ``target`` (for :func:`fix`: what to remove)."""

    kind: str
    subject: str
    detail: str
    fix: str
    safe: bool = False
    host: str | None = None
    scope: dict = field(default_factory=dict, hash=False, compare=False)
    target: dict = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("target")
        return d


@dataclass(frozen=True)
class DomainView:
    """A domain as the check needs it: ``facts`` (persistent definition) and ``running``."""

    host: str
    name: str
    running: bool
    nics: tuple  # console.model.Nic
    disks: tuple  # console.model.Disk
    tenant: str | None


@dataclass
class HostView:
    """One hypervisor that answered: its domains, volumes per pool, owner marks, NVRAM files,
    partial downloads (:class:`backends.download.Partial`)."""

    name: str
    domains: list[DomainView] = field(default_factory=list)
    volumes: dict[str, list] = field(default_factory=dict)   # pool -> [storage.VolumeInfo]
    marks: tuple = ()
    nvram: tuple[str, ...] = ()
    pool_errors: dict[str, str] = field(default_factory=dict)   # pool -> why it was not listed
    partials: tuple = ()


@dataclass
class Facts:
    """What :func:`gather` read. ``unreachable``: {host: why}; ``sb`` None when the SB could not
    be read (``sb_error`` says why); ``nb`` a :class:`backends.ovn.connection.NbData`;
    ``fips``: :class:`backends.ovn.drift_rows.Fip` rows."""

    hosts: dict[str, HostView]
    unreachable: dict[str, str]
    nb: Any
    fips: list
    sb: southbound.SbData | None
    sb_error: str | None
    inventory: Any
    disabled: tuple[str, ...] = ()   # hypervisors in maintenance: not searched, so no VM is judged gone


def _host_view(session, inventory, name: str) -> HostView:
    conn = session.libvirt(name)
    hv = HostView(name)

    def one(dom):
        try:
            f = domains.facts(dom, name, inactive=domains.is_persistent(dom, name))
            return DomainView(name, f.name, domains.is_active(dom, name), tuple(f.nics),
                              tuple(f.disks), f.tenant)
        except HostError:
            return None  # undefined meanwhile
    # one XML read per domain: a few in parallel over the host's one libvirt connection
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        hv.domains = [d for d in pool.map(one, domains.list_all(conn, name)) if d is not None]
    hm = owner_marks.read_host(session, name)
    hv.marks, hv.nvram = hm.marks, hm.nvram
    pools = {m.pool for m in hm.marks if m.pool} | {t.pool for t in inventory.templates}
    for pool in sorted(pools):
        try:
            hv.volumes[pool] = storage.list_volumes(conn, name, pool)
        except HostError as exc:
            hv.volumes[pool] = []      # nothing judged there; said as partial
            hv.pool_errors[pool] = str(exc)
    dirs = []
    for pool in sorted(pools - set(hv.pool_errors)):
        try:
            dirs.append(download.pool_dir(conn, name, pool))
        except HostError:
            pass  # not a dir pool: `template add --url` never downloads into it
    hv.partials = tuple(download.partials(session, name, dirs))
    return hv


def gather(session, inventory=None, wait: float | None = None) -> Facts:
    """Read every enabled hypervisor (in parallel), the NB replica and one SB snapshot.

    Blocking, and bounded: a host (or the SB) that has not answered within ``wait`` seconds
    (default :func:`vm_lookup.lookup_wait` + 20 s for the reads) is left out as unreachable, so a
    frozen libvirtd makes the check partial instead of hanging it. Daemon threads, not an
    executor, for the same reason as ``vm_lookup._lookup_all``: a thread stuck in a frozen
    daemon must hold neither this call nor the process's exit. Raises HostError only when the NB
    cannot be read (the rest is optional)."""
    from .vm_lookup import lookup_wait
    inventory = inventory or session.inventory
    wait = wait if wait is not None else lookup_wait(session) + 20.0
    names = [h.name for h in inventory.hypervisors if h.enabled]
    answers: dict[str, tuple[bool, Any]] = {}
    lock = threading.Lock()
    all_in = threading.Event()
    jobs = {n: (lambda n=n: _host_view(session, inventory, n)) for n in names}
    jobs[_SB] = lambda: southbound.snapshot(session)

    def work(key: str) -> None:
        try:
            res = (True, jobs[key]())
        except Exception as exc:  # noqa: BLE001 - a host that did not answer: partial
            res = (False, verb_frame.reason(exc))
        with lock:
            answers[key] = res
            if len(answers) == len(jobs):
                all_in.set()

    for key in jobs:
        threading.Thread(target=work, args=(key,), name=f"drift-{key}", daemon=True).start()
    try:
        # a read: any raft member will do (Session.nb_reader), the writer's leader otherwise
        nb_api = session.nb_reader() if hasattr(session, "nb_reader") else session.nb()
        nb = ovn_nb.read(nb_api)
        fips = drift_rows.fips(nb_api)
    except VirtdeckError:
        raise
    except Exception as exc:  # noqa: BLE001 - ovsdbapp raises assorted types
        raise HostError(f"OVN northbound: {exc or type(exc).__name__}") from None
    all_in.wait(wait)
    hosts: dict[str, HostView] = {}
    unreachable: dict[str, str] = {}
    with lock:
        got = dict(answers)
    for n in names:
        ok, val = got.get(n, (False, f"{n}: no answer within {wait:g} s (libvirtd or sshd frozen?)"))
        if ok:
            hosts[n] = val
        else:
            unreachable[n] = val
    ok, val = got.get(_SB, (False, f"no answer within {wait:g} s"))
    sb, sb_error = (val, None) if ok else (None, val)
    disabled = tuple(h.name for h in inventory.hypervisors if not h.enabled)
    return Facts(hosts, unreachable, nb, fips, sb, sb_error, inventory, disabled)


# ---------------------------------------------------------------------------------------------
# Judging (no I/O)


def _vm_label(p) -> str:
    return f"{p.tenant or '?'}/{p.vm}" + (f" {p.label}" if p.label else "")


def findings(facts: Facts) -> list[Finding]:
    """Every disagreement in ``facts`` (see the module doc), sorted by kind then subject."""
    out: list[Finding] = []
    nb = facts.nb
    all_domains = [d for hv in facts.hosts.values() for d in hv.domains]
    vm_names = {d.name for d in all_domains}
    busy_vms = {m.vm for hv in facts.hosts.values() for m in hv.marks if m.busy}
    lsp_by_name = {p.name: p for p in nb.ports}
    net_by_switch = {n.name: n for n in nb.networks}
    interfaceids = {nic.interfaceid for d in all_domains for nic in d.nics if nic.interfaceid}
    # "gone" only when every hypervisor was searched: a host that did not answer, or one in
    # maintenance (not connected to), may hold the VM
    complete = not facts.unreachable and not facts.disabled

    # LSP tagged for a VM that exists nowhere
    if complete:
        for p in nb.ports:
            if not p.vm or p.type or p.vm in vm_names or p.vm in busy_vms or p.name in interfaceids:
                continue
            net = net_by_switch.get(p.switch)
            out.append(Finding(
                "lsp-orphan", f"LSP {p.name} ({_vm_label(p)})",
                f"tagged virtdeck:vm={p.vm} on switch {p.switch}, but no hypervisor has a domain {p.vm}",
                "remove the LSP with its DHCP and floating-IP rows (vm delete's OVN clean-up)",
                safe=True, scope={"vm": p.vm, "network": net.label if net else p.switch},
                target={"vm": p.vm, "lsp": p.name}))

    # domain NIC whose interfaceid has no LSP
    for d in all_domains:
        for i, nic in enumerate(d.nics):
            if nic.interfaceid and nic.interfaceid not in lsp_by_name:
                out.append(Finding(
                    "nic-no-lsp", f"VM {d.name} NIC {nic.mac}",
                    f"on {d.host}: interfaceid {nic.interfaceid} names no LSP in the NB",
                    f"on {d.host}: virsh detach-interface {d.name} bridge --mac {nic.mac} --config "
                    f"(the NIC reaches nothing), or recreate LSP {nic.interfaceid} with ovn-nbctl "
                    f"lsp-add SWITCH {nic.interfaceid} and lsp-set-addresses '{nic.mac} IP'",
                    host=d.host, scope={"vm": d.name, "host": d.host}))

    sb = facts.sb
    if sb is not None:
        for d in all_domains:
            chassis = sb.chassis_of_host(d.host)
            for nic in d.nics:
                p = lsp_by_name.get(nic.interfaceid or "")
                if p is None:
                    continue
                net = net_by_switch.get(p.switch)
                b = sb.binding(p.name)
                # running or not: a stopped VM's port bound anywhere means someone else claims it
                if b is not None and b.chassis and sb.host_of_chassis(b.chassis) != d.host:
                    where = sb.host_of_chassis(b.chassis) or "no inventory host"
                    out.append(Finding(
                        "binding-elsewhere", f"VM {d.name} port {p.name}",
                        f"is on {d.host} ({'running' if d.running else 'not running'}) but the SB binds "
                        f"its port on chassis {b.chassis} ({where})",
                        f"remove the stale OVS interface on {where} (ovs-vsctl find Interface "
                        f"external_ids:iface-id={p.name}, then del-port); {d.host}'s ovn-controller "
                        "claims the port", host=d.host,
                        scope={"vm": d.name, "host": d.host, "network": net.label if net else p.switch}))
                if net is not None and net.kind == "provider" and net.physnet and chassis is not None \
                        and net.physnet not in chassis.bridge_mappings:
                    out.append(Finding(
                        "physnet-missing", f"VM {d.name} on provider network {net.label or net.name}",
                        f"{d.host} (chassis {chassis.name}) maps no bridge to physnet {net.physnet} "
                        f"(ovn-bridge-mappings: {','.join(f'{k}:{v}' for k, v in chassis.bridge_mappings.items()) or 'none'})",
                        f"add {net.physnet}:BRIDGE to ovn-bridge-mappings on {d.host}, or move the VM "
                        f"to a host that has it (virtdeck vm shutdown {d.name}; virtdeck vm move {d.name} --to HOST)", host=d.host,
                        scope={"vm": d.name, "host": d.host, "network": net.label or net.name}))
        for c in sb.chassis:
            if c.host is None:
                out.append(Finding(
                    "chassis-unclaimed", f"chassis {c.name}",
                    f"SB chassis {c.name} (hostname {c.hostname or '?'}, encap {c.encap_ip or '?'}) "
                    "is no inventory host",
                    f"add the machine (virtdeck host add NAME {c.encap_ip or 'ADDRESS'}), or, if it is "
                    f"gone, ovn-sbctl chassis-del {c.name}", scope={"host": c.name}))

    for n in nb.networks:
        subnet = n.other_config.get("subnet")
        if subnet and n.dhcp is not None and n.dhcp.cidr != subnet:
            out.append(Finding(
                "dhcp-cidr", f"network {n.label or n.name}",
                f"switch {n.name} has subnet {subnet} but its DHCP options (row {n.dhcp.uuid[:8]}) "
                f"serve {n.dhcp.cidr}",
                f"ovn-nbctl set DHCP_Options {n.dhcp.uuid} cidr={subnet} (virtdeck network edit "
                f"{n.label or n.name} -t {n.tenant or 'TENANT'} rewrites the other DHCP options)",
                scope={"network": n.label or n.name}))

    for f in facts.fips:
        if f.port and f.port not in lsp_by_name:
            out.append(Finding(
                "fip-orphan", f"floating IP {f.external_ip} on router {f.label or f.router}",
                f"made for LSP {f.port} ({f.logical_ip}), which no longer exists",
                "remove the NAT row from the router", safe=True,
                scope={"router": f.label or f.router, **({"vm": f.vm} if f.vm else {})},
                target={"router_uuid": f.router_uuid, "nat_uuid": f.uuid, "router": f.router}))

    for hv in facts.hosts.values():
        names_here = {d.name for d in hv.domains}
        used = {disk.source for d in hv.domains for disk in d.disks if disk.source}
        vols = {(pool, v.name): v for pool, vs in hv.volumes.items() for v in vs}
        for m in hv.marks:
            if m.busy or m.vm in names_here or m.vm in busy_vms:
                continue
            for vname in m.volumes:
                v = vols.get((m.pool, vname))
                if v is None or v.path in used or f"pool:{m.pool}/{vname}" in used:
                    continue
                out.append(Finding(
                    "volume-orphan", f"volume {hv.name}:{m.pool}/{vname}",
                    f"made for VM {m.tenant}/{m.vm} by a create that is over (owner mark by "
                    f"{m.creator}); no domain uses it",
                    "delete the volume", safe=True, host=hv.name,
                    scope={"vm": m.vm, "host": hv.name},
                    target={"host": hv.name, "pool": m.pool, "volume": vname, "vm": m.vm}))
            nv = f"{m.vm}_VARS.fd"
            if nv in hv.nvram:
                out.append(Finding(
                    "nvram-orphan", f"NVRAM {hv.name}:{owner_marks.NVRAM_DIR}/{nv}",
                    f"of VM {m.tenant}/{m.vm}, which has no domain on {hv.name}",
                    "delete the file", safe=True, host=hv.name, scope={"vm": m.vm, "host": hv.name},
                    target={"host": hv.name, "nvram": nv, "vm": m.vm}))
        for part in hv.partials:
            if part.abandoned:
                out.append(Finding(
                    "download-orphan", f"download {hv.name}:{part.path}",
                    f"a `template add --url` partial of {part.size / 2**20:.0f} MiB, untouched for "
                    f"{part.age_s / 86400:.1f} days; no download is running",
                    "delete the file (a new `template add` downloads again)", safe=True, host=hv.name,
                    scope={"host": hv.name}, target={"host": hv.name, "path": part.path}))
    out.sort(key=lambda f: (KINDS.index(f.kind), f.subject))
    return out


def stale_marks(facts: Facts) -> list[tuple[str, str]]:
    """(host, vm) of marks that name nothing any more: not held, no domain of that name on the
    host, none of their volumes left. Bookkeeping only (not findings); ``--fix`` drops them."""
    out = []
    for hv in facts.hosts.values():
        names_here = {d.name for d in hv.domains}
        have = {(pool, v.name) for pool, vs in hv.volumes.items() for v in vs}
        for m in hv.marks:
            if not m.busy and m.vm not in names_here and not any((m.pool, v) in have for v in m.volumes):
                out.append((hv.name, m.vm))
    return out


def _in_scope(f: Finding, kind: str | None, name: str | None) -> bool:
    if not kind:
        return True
    return f.scope.get(kind) == name


def check(session, kind: str | None = None, name: str | None = None) -> dict:
    """The drift report (read-only, no audit): ``{"ok", "partial", "unreachable": {host: why},
    "sb_error", "findings": [Finding.to_dict()], "safe": n, "stale_marks": n, "scope"}``,
    findings limited to ``kind`` (vm|network|router|host) ``name`` when given.
    Raises ValidationError for an unknown scope, HostError when the NB cannot be read."""
    if kind is not None and kind not in SCOPES:
        raise ValidationError("scope", f"check: scope must be one of {', '.join(SCOPES)}, not {kind!r}")
    if kind is not None and not name:
        raise ValidationError("name", f"check {kind}: a {kind} name is needed")
    facts = gather(session)
    fs = [f for f in findings(facts) if _in_scope(f, kind, name)]
    return {"ok": not fs and not facts.unreachable, "partial": bool(facts.unreachable or facts.disabled),
            "disabled": list(facts.disabled),
            "chain": ({"vm": chain, "network": network_chain, "router": router_chain,
                       "host": host_chain}[kind](facts, name) if kind else []),
            "unreachable": dict(facts.unreachable), "sb_error": facts.sb_error,
            "findings": [f.to_dict() for f in fs], "safe": sum(f.safe for f in fs),
            "stale_marks": len(stale_marks(facts)),
            "pool_errors": {f"{h}:{p}": why for h, hv in facts.hosts.items()
                            for p, why in hv.pool_errors.items()},
            "scope": {"kind": kind, "name": name} if kind else None,
            "_findings": fs, "_facts": facts}


def check_text(report: dict) -> list[str]:
    """The report as text lines: one block per finding (kind, subject, detail, fix)."""
    lines = [c["text"] + ("   <- drift" if c["state"] == "drift" else "") for c in report.get("chain", ())]
    for f in report["findings"]:
        lines.append(f"{f['kind']:<18} {f['subject']}{'  [--fix removes it]' if f['safe'] else ''}")
        lines.append(f"{'':<18} {f['detail']}")
        lines.append(f"{'':<18} fix: {f['fix']}")
    for host, why in report["unreachable"].items():
        lines.append(f"partial: {host} did not answer ({why}); no VM is judged gone")
    for host in report.get("disabled", ()):
        lines.append(f"partial: {host} is disabled (maintenance, not searched); no VM is judged gone")
    for where, why in report.get("pool_errors", {}).items():
        lines.append(f"partial: pool {where} not listed ({why}); its volumes not judged")
    if report["sb_error"]:
        lines.append(f"partial: OVN southbound not read ({report['sb_error']}); bindings and chassis not checked")
    scope = report.get("scope") or {}
    if scope.get("kind") and not report.get("chain") and not report["findings"]:
        lines.append(f"no {scope['kind']} named {scope['name']}"
                     + (" on the hypervisors that answered" if scope["kind"] == "vm" else ""))
        return lines
    n = len(report["findings"])
    lines.append("no drift" if n == 0 else f"{n} finding(s), {report['safe']} removable with --fix")
    return lines


def public(report: dict) -> dict:
    """``report`` without its private keys (for JSON)."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------
# Fixing the safe ones


def facts_has_vm(facts: Facts, vm: str) -> bool:
    """True when some hypervisor has a domain ``vm`` or a create of it is in flight."""
    return any(d.name == vm for hv in facts.hosts.values() for d in hv.domains) or \
        any(m.vm == vm and m.busy for hv in facts.hosts.values() for m in hv.marks)


def fix(session, report: dict) -> dict:
    """Remove the safe findings of ``report`` (from :func:`check`) and drop stale owner marks.
    A mutating verb ("drift.fix": guard, one audit record). Every finding is re-checked first
    (:func:`_still_orphan` reads the hosts again once): one that no longer holds is skipped.

    Returns ``{"removed": [subject], "skipped": [subject], "failed": [{subject, error}],
    "marks_dropped": n}``. Raises ReadOnlyError under --readonly, HostError when the NB
    cannot be read."""
    safe = [f for f in report["_findings"] if f.safe]

    def body(run: verb_frame.VerbRun) -> dict:
        fresh = gather(session) if safe else report["_facts"]
        current = {(g.kind, g.subject) for g in findings(fresh)}
        removed, skipped, failed = [], [], []
        nb = None
        for f in safe:
            vm = f.target.get("vm")
            # judged again on fresh facts: a create or an operator may have acted since
            if (f.kind, f.subject) not in current or (f.kind == "lsp-orphan" and facts_has_vm(fresh, vm)):
                skipped.append(f.subject)
                continue
            try:
                if f.kind == "lsp-orphan":
                    nb = nb or session.nb()
                    rows = vm_ports.rows_of(nb, vm, ())
                    rows = vm_ports.OvnLeftovers(ports=tuple(p for p in rows.ports if p == f.target["lsp"]),
                                                 dhcp=rows.dhcp, nats=rows.nats)
                    vm_ports.remove_rows(nb, rows)
                elif f.kind == "fip-orphan":
                    nb = nb or session.nb()
                    vm_ports.remove_rows(nb, vm_ports.OvnLeftovers(
                        nats=((f.target["router_uuid"], f.target["nat_uuid"]),)))
                elif f.kind == "volume-orphan":
                    t = f.target
                    storage.delete_volume(session.libvirt(t["host"]), t["host"], t["pool"], t["volume"])
                elif f.kind == "nvram-orphan":
                    owner_marks.remove_nvram(session, f.target["host"], f.target["nvram"])
                elif f.kind == "download-orphan":
                    download.remove_partial(session, f.target["host"], f.target["path"])
                removed.append(f.subject)
            except Exception as exc:  # noqa: BLE001 - one failure must not stop the others
                failed.append({"subject": f.subject, "error": verb_frame.reason(exc)})
        dropped = 0
        if not failed:
            after = gather(session) if removed else fresh
            for host, vm in stale_marks(after):
                try:
                    owner_marks.remove(session, host, vm)
                    dropped += 1
                except HostError:
                    pass
        run.note(removed=removed, skipped=skipped, failed=failed, marks_dropped=dropped)
        if not removed and not failed and not dropped:
            run.outcome = "noop"
        return {"removed": removed, "skipped": skipped, "failed": failed, "marks_dropped": dropped}

    return verb_frame.run("drift.fix", "cluster", body)


def fix_text(res: dict) -> list[str]:
    """:func:`fix`'s result as text lines."""
    lines = [f"removed  {s}" for s in res["removed"]]
    lines += [f"skipped  {s} (no longer orphaned)" for s in res["skipped"]]
    lines += [f"FAILED   {x['subject']}: {x['error']}" for x in res["failed"]]
    if res["marks_dropped"]:
        lines.append(f"dropped {res['marks_dropped']} stale owner mark(s)")
    return lines or ["nothing to remove"]
