"""Operator verbs on existing VMs: one service function per verb, shared by the TUI and the CLI.

Every mutating verb here:

- refuses under ``--readonly`` (:func:`console.services.guard.require_writable`) before touching
  anything;
- finds the VM by name across the hypervisors (a VM name is unique in the cluster; the tenant is
  in the domain metadata) or on the host the caller names, failing fast with the reason when a
  host cannot be reached;
- is idempotent where that makes sense: ``start`` on a running VM, ``shutdown``/``poweroff`` on a
  stopped one, ``suspend`` on a paused one, ``resume`` on a running one return ``outcome="noop"``
  with a note instead of failing;
- writes exactly ONE audit record (:func:`console.audit.record`: time, operator, verb, target,
  outcome) whether it succeeds, does nothing or fails;
- raises :class:`console.errors.VirtdeckError` subclasses whose message is one sentence naming the
  host and carrying libvirt's / OVN's own message — never a traceback.

Results are :class:`OpResult` (frozen; ``as_dict()`` for ``--json``).

``session`` is a :class:`backends.session.Session` (anything with ``inventory``,
``libvirt(host)``, ``nb()`` and ``run(host, cmd)`` works).

Units: memory in MiB, vCPUs whole; libvirt's KiB are converted here, at the boundary.
"""

from __future__ import annotations

import concurrent.futures
import io
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

import libvirt

from ...backends import hostlock
from ..errors import HostError, ValidationError, VirtdeckError
from ...backends.ovn.names import EXT_PORT, EXT_VM
from ..model import METADATA_NS, VM_STATES
from . import verb as verb_frame

# ---------------------------------------------------------------------------------------------
# Errors and results


class VmNotFound(VirtdeckError):
    """No hypervisor that answered has a domain of that name (message says which hosts were
    searched and which could not be reached)."""

    exit_code = 5


class VmStateError(VirtdeckError):
    """The verb does not apply in the VM's current state (e.g. resume on a stopped VM)."""

    exit_code = 6


class ShutdownTimeout(VirtdeckError):
    """The guest did not power off within the timeout after the ACPI power button.

    ``vm``/``host``/``timeout`` say which and how long; the caller may offer :func:`poweroff`.
    """

    exit_code = 7

    def __init__(self, vm: str, host: str, timeout: float):
        super().__init__(f"{vm} on {host} is still running {timeout:g} s after the ACPI power button; "
                         f"force it off with `virtdeck vm poweroff {vm}` (or shutdown --force)")
        self.vm, self.host, self.timeout = vm, host, timeout


@dataclass(frozen=True)
class OpResult:
    """What one verb did to one VM.

    ``verb``: audit verb (``vm.start`` …); ``vm``/``host``: the target; ``outcome``: ``ok`` or
    ``noop``; ``message``: one sentence for the operator; ``details``: verb-specific facts
    (JSON-ready).
    """

    verb: str
    vm: str
    host: str | None
    outcome: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready form: verb, vm, host, outcome, message, details."""
        return {"verb": self.verb, "vm": self.vm, "host": self.host, "outcome": self.outcome,
                "message": self.message, "details": dict(self.details)}


# ---------------------------------------------------------------------------------------------
# Finding domains


@dataclass(frozen=True)
class VmRef:
    """A domain found on a hypervisor: ``host``, ``name``, libvirt ``uuid``."""

    host: str
    name: str
    uuid: str


# libvirt prints every error to stderr by default; virtdeck reports them itself, as one line.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_STATE_NAMES = dict(enumerate(VM_STATES))


def state_name(dom: "libvirt.virDomain") -> str:
    """The domain's state in words (one of :data:`console.model.VM_STATES`)."""
    return _STATE_NAMES.get(dom.state()[0], "nostate")


def _lv_msg(exc: libvirt.libvirtError) -> str:
    return (exc.get_error_message() or str(exc)).strip().rstrip(".")


def _hypervisor_names(session, host: str | None) -> list[str]:
    if host:
        h = session.inventory.host(host)  # ConfigError names the known hosts
        if not h.hypervisor:
            raise ValidationError("host", f"{host} is not a hypervisor")
        return [h.name]
    return [h.name for h in session.inventory.hypervisors if h.enabled]


def _lookup_on(session, host: str, name: str):
    """(dom or None) on ``host``; raises HostError when the host cannot be reached."""
    conn = session.libvirt(host)
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise HostError(f"{host}: looking up {name}: {_lv_msg(exc)}") from None


def locate(session, name: str, host: str | None = None) -> tuple[str, "libvirt.virDomain"]:
    """Find domain ``name``: on ``host`` if given, else on every enabled hypervisor in parallel.

    Returns ``(host, virDomain)``. Raises VmNotFound (naming the hosts searched and any that
    could not be reached), HostError when ``host`` is given and unreachable, VirtdeckError when
    two hosts hold a domain of that name.
    """
    if not name or not isinstance(name, str):
        raise ValidationError("name", "a VM name is required")
    hosts = _hypervisor_names(session, host)
    if not hosts:
        raise VmNotFound(f"no enabled hypervisor in the inventory to look for {name} on")
    if len(hosts) == 1:
        dom = _lookup_on(session, hosts[0], name)
        if dom is None:
            raise VmNotFound(f"no VM named {name} on {hosts[0]}")
        return hosts[0], dom
    found: list[tuple[str, Any]] = []
    down: dict[str, str] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts))
    try:
        futures = {pool.submit(_lookup_on, session, h, name): h for h in hosts}
        for fut in concurrent.futures.as_completed(futures):
            h = futures[fut]
            try:
                dom = fut.result()
            except VirtdeckError as exc:
                down[h] = str(exc)
                continue
            if dom is not None:
                found.append((h, dom))
    finally:
        pool.shutdown(wait=False)
    if len(found) > 1:
        where = ", ".join(sorted(h for h, _ in found))
        raise VirtdeckError(f"a VM named {name} exists on several hosts ({where}); pass --host to choose one")
    if found:
        return found[0]
    msg = f"no VM named {name} on {', '.join(h for h in hosts if h not in down) or 'any reachable host'}"
    if down:
        msg += "; not reachable: " + "; ".join(down[h] for h in sorted(down))
    raise VmNotFound(msg)


# ---------------------------------------------------------------------------------------------
# Domain XML facts


@dataclass(frozen=True)
class DiskFact:
    """One ``<disk>``: ``device`` disk/cdrom, ``target`` vda/hdc, ``source`` path (file disks)."""

    device: str
    target: str
    source: str | None


@dataclass(frozen=True)
class NicFact:
    """One ``<interface>``: ``mac`` and the openvswitch virtualport ``interfaceid`` (LSP name)."""

    mac: str | None
    interfaceid: str | None


@dataclass(frozen=True)
class DomainFacts:
    """What the verbs need from a domain's XML. Memory in MiB (libvirt KiB → MiB here).

    ``vcpus``: vCPUs now (``<vcpu current>`` or the count); ``max_vcpus``: the ``<vcpu>`` count
    (the live-resize ceiling); ``memory_mib``: ``<currentMemory>``; ``max_memory_mib``:
    ``<memory>`` (the live balloon ceiling). ``tenant``/``template``/``seed``: the
    ``<virtdeck:instance>`` metadata.
    """

    name: str
    uuid: str
    domain_type: str | None
    vcpus: int
    max_vcpus: int
    memory_mib: int
    max_memory_mib: int
    tenant: str | None
    template: str | None
    seed: str | None
    disks: tuple[DiskFact, ...]
    nics: tuple[NicFact, ...]
    serial_log: str | None = None

    @property
    def interfaceids(self) -> tuple[str, ...]:
        """The LSP names (UUIDs) the domain's NICs bind."""
        return tuple(n.interfaceid for n in self.nics if n.interfaceid)


def _kib_to_mib(text: str | None, unit: str | None = "KiB") -> int:
    if not text:
        return 0
    n = int(text)
    factor = {"b": 1 / 1048576, "bytes": 1 / 1048576, "k": 1 / 1024, "kib": 1 / 1024, "kb": 1000 / 1048576,
              "m": 1, "mib": 1, "mb": 1e6 / 1048576, "g": 1024, "gib": 1024, "gb": 1e9 / 1048576}
    return int(n * factor.get((unit or "KiB").lower(), 1 / 1024))


def parse_domain_xml(xml: str) -> DomainFacts:
    """Parse a libvirt domain XML document into :class:`DomainFacts`."""
    root = ET.fromstring(xml)
    vcpu = root.find("vcpu")
    max_vcpus = int(vcpu.text) if vcpu is not None and vcpu.text else 1
    vcpus = int(vcpu.get("current", max_vcpus)) if vcpu is not None else max_vcpus
    mem = root.find("memory")
    cur = root.find("currentMemory")
    max_mib = _kib_to_mib(mem.text if mem is not None else None, mem.get("unit") if mem is not None else None)
    cur_mib = _kib_to_mib(cur.text, cur.get("unit")) if cur is not None else max_mib
    meta = root.find(f"metadata/{{{METADATA_NS}}}instance")

    def m(tag: str) -> str | None:
        if meta is None:
            return None
        el = meta.find(f"{{{METADATA_NS}}}{tag}")
        return el.text.strip() if el is not None and el.text and el.text.strip() else None

    disks = []
    for d in root.findall("devices/disk"):
        src = d.find("source")
        path = None
        if src is not None:
            path = src.get("file") or src.get("dev") or None
            if path is None and src.get("pool") and src.get("volume"):
                path = f"pool:{src.get('pool')}/{src.get('volume')}"
        tgt = d.find("target")
        disks.append(DiskFact(d.get("device", "disk"), tgt.get("dev", "") if tgt is not None else "", path))
    nics = []
    for i in root.findall("devices/interface"):
        mac = i.find("mac")
        params = i.find("virtualport/parameters")
        nics.append(NicFact(mac.get("address").lower() if mac is not None and mac.get("address") else None,
                            params.get("interfaceid") if params is not None else None))
    return DomainFacts(
        name=root.findtext("name", ""), uuid=root.findtext("uuid", ""), domain_type=root.get("type"),
        vcpus=vcpus, max_vcpus=max_vcpus, memory_mib=cur_mib, max_memory_mib=max_mib,
        tenant=m("tenant"), template=m("template"), seed=m("seed"),
        disks=tuple(disks), nics=tuple(nics),
        serial_log=next((el.get("file") for el in root.findall("devices/serial/log") if el.get("file")), None))


def domain_facts(dom, inactive: bool = False) -> DomainFacts:
    """:class:`DomainFacts` of a live domain object (``inactive``: the persistent config)."""
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
    return parse_domain_xml(dom.XMLDesc(flags))


# ---------------------------------------------------------------------------------------------
# The verb frame: guard, lookup, one audit record, error wording


def _target(name: str, tenant: str | None) -> str:
    return f"vm {tenant}/{name}" if tenant else f"vm {name}"


class _Op:
    """One VM verb's run: the VM ``name`` and the frame's :class:`verb.VerbRun` (host, tenant and
    details go to the one audit record)."""

    def __init__(self, run: verb_frame.VerbRun, name: str):
        self.run = run
        self.verb = run.verb
        self.name = name
        self.tenant: str | None = None
        self.details = run.details

    @property
    def host(self) -> str | None:
        return self.run.host

    @host.setter
    def host(self, value: str | None) -> None:
        self.run.host = value

    def result(self, outcome: str, message: str, **details: Any) -> OpResult:
        self.details.update(details)
        return OpResult(self.verb, self.name, self.host, outcome, message, dict(self.details))


def _run_verb(verb: str, name: str, body: Callable[[_Op], OpResult], *, mutating: bool = True) -> OpResult:
    """Run ``body`` in the verb frame (:func:`verb.run`): guard, libvirt errors as one-line
    HostErrors naming the host, exactly one audit record on ``vm TENANT/NAME``."""
    def inner(run: verb_frame.VerbRun) -> OpResult:
        op = _Op(run, name)
        try:
            return body(op)
        finally:
            run.target = _target(name, op.tenant)

    def translate(exc: BaseException, run: verb_frame.VerbRun):
        if isinstance(exc, libvirt.libvirtError):
            return HostError(f"{run.host or 'libvirt'}: {verb.split('.', 1)[1]} {name} failed: {_lv_msg(exc)}")
        return None

    return verb_frame.run(verb, _target(name, None), inner, mutating=mutating, translate=translate)


def _find(op: _Op, session, host: str | None):
    h, dom = locate(session, op.name, host)
    op.host = h
    try:
        op.tenant = domain_facts(dom).tenant
    except (libvirt.libvirtError, ET.ParseError):
        pass
    return dom


# ---------------------------------------------------------------------------------------------
# Lifecycle verbs


def status(session, name: str, host: str | None = None) -> dict:
    """Read-only: ``{"vm", "host", "state", "vcpus", "max_vcpus", "memory_mib",
    "max_memory_mib", "tenant", "template"}`` for one VM. Raises VmNotFound/HostError."""
    h, dom = locate(session, name, host)
    try:
        f = domain_facts(dom)
        st = state_name(dom)
    except libvirt.libvirtError as exc:
        raise HostError(f"{h}: reading {name}: {_lv_msg(exc)}") from None
    return {"vm": name, "host": h, "state": st, "vcpus": f.vcpus, "max_vcpus": f.max_vcpus,
            "memory_mib": f.memory_mib, "max_memory_mib": f.max_memory_mib, "tenant": f.tenant,
            "template": f.template}


def start(session, name: str, host: str | None = None) -> OpResult:
    """Start (boot) a stopped VM. Running/paused → noop with a note. Raises VmNotFound, HostError."""
    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        st = state_name(dom)
        if st in ("running", "blocked"):
            return op.result("noop", f"{name} is already running on {op.host}", state=st)
        if st == "paused":
            return op.result("noop", f"{name} on {op.host} is paused; resume it instead of starting", state=st)
        if st == "pmsuspended":
            dom.pMWakeup(0)
            return op.result("ok", f"{name} on {op.host} woken from guest suspend", state="running")
        dom.create()
        return op.result("ok", f"{name} started on {op.host}", state=state_name(dom))
    return _run_verb("vm.start", name, body)


def _wait_state(dom, states: Iterable[str], timeout: float, poll: float = 0.2) -> bool:
    want = set(states)
    end = time.monotonic() + timeout
    while True:
        try:
            if state_name(dom) in want:
                return True
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:  # transient domain gone
                return True
            raise
        if time.monotonic() >= end:
            return False
        time.sleep(poll)


def _with_acpi(call, flag: int) -> None:
    """Press the ACPI button; a driver without that flag gets its default method instead."""
    try:
        call(flag)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        call(0)


def shutdown(session, name: str, host: str | None = None, timeout: float = 60.0,
             force: bool = False) -> OpResult:
    """Ask the guest to power off (ACPI power button) and wait up to ``timeout`` seconds.

    Stopped → noop. ``timeout=0`` returns at once after the request (outcome ``ok``, details
    ``waited=False``). When the guest is still running after ``timeout``: with ``force`` it is
    powered off (details ``forced=True``), else ShutdownTimeout is raised so the caller can offer
    :func:`poweroff`. A paused guest cannot see the button: VmStateError.
    """
    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        st = state_name(dom)
        if not dom.isActive():
            return op.result("noop", f"{name} on {op.host} is already stopped ({st})", state=st)
        if st == "paused":
            raise VmStateError(f"{name} on {op.host} is paused and cannot see the power button; "
                               f"resume it first, or power it off")
        _with_acpi(dom.shutdownFlags, libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        op.details["timeout_s"] = timeout
        if timeout <= 0:
            return op.result("ok", f"{name} on {op.host}: power button pressed (not waiting)", waited=False)
        t0 = time.monotonic()
        if _wait_state(dom, ("shutoff",), timeout):
            return op.result("ok", f"{name} on {op.host} shut down after {time.monotonic() - t0:.1f} s",
                             state="shutoff", seconds=round(time.monotonic() - t0, 1))
        if not force:
            raise ShutdownTimeout(name, op.host, timeout)
        dom.destroy()
        return op.result("ok", f"{name} on {op.host} ignored the power button for {timeout:g} s and was "
                         f"forced off", state="shutoff", forced=True)
    return _run_verb("vm.shutdown", name, body)


def poweroff(session, name: str, host: str | None = None) -> OpResult:
    """Force a VM off at once (libvirt destroy: pulls the plug). Stopped → noop."""
    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        if not dom.isActive():
            return op.result("noop", f"{name} on {op.host} is already stopped", state=state_name(dom))
        dom.destroy()
        return op.result("ok", f"{name} on {op.host} powered off", state="shutoff")
    return _run_verb("vm.poweroff", name, body)


def reboot(session, name: str, host: str | None = None, hard: bool = False) -> OpResult:
    """Reboot a running VM: ACPI request to the guest, or ``hard`` = reset (like the reset
    button, no guest cooperation). Not running → VmStateError."""
    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        st = state_name(dom)
        if st not in ("running", "blocked"):
            raise VmStateError(f"{name} on {op.host} is {st}, not running; start it instead of rebooting")
        if hard:
            dom.reset(0)
            return op.result("ok", f"{name} on {op.host} reset", hard=True)
        _with_acpi(dom.reboot, libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)
        return op.result("ok", f"{name} on {op.host}: reboot requested from the guest", hard=False)
    return _run_verb("vm.reboot", name, body)


def suspend(session, name: str, host: str | None = None) -> OpResult:
    """Pause a running VM's vCPUs (it keeps its memory). Paused → noop; stopped → VmStateError."""
    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        st = state_name(dom)
        if st == "paused":
            return op.result("noop", f"{name} on {op.host} is already paused", state=st)
        if not dom.isActive():
            raise VmStateError(f"{name} on {op.host} is {st}; only a running VM can be suspended")
        dom.suspend()
        return op.result("ok", f"{name} on {op.host} paused", state="paused")
    return _run_verb("vm.suspend", name, body)


def resume(session, name: str, host: str | None = None) -> OpResult:
    """Resume a paused VM. Running → noop; stopped → VmStateError (start it instead)."""
    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        st = state_name(dom)
        if st in ("running", "blocked"):
            return op.result("noop", f"{name} on {op.host} is already running", state=st)
        if st != "paused":
            raise VmStateError(f"{name} on {op.host} is {st}, not paused; use start")
        dom.resume()
        return op.result("ok", f"{name} on {op.host} resumed", state="running")
    return _run_verb("vm.resume", name, body)


# ---------------------------------------------------------------------------------------------
# OVN: the VM's ports, addresses, DHCP rows and floating IPs


def _ext(row, key: str) -> str | None:
    return (getattr(row, "external_ids", None) or {}).get(key)


def _vm_ports(nb, name: str, interfaceids: Iterable[str]) -> list:
    """LSP rows of a VM: named by one of its interfaceids, or tagged ``virtdeck:vm`` = name."""
    ids = set(interfaceids)
    rows = []
    for row in nb.tables["Logical_Switch_Port"].rows.values():
        if row.name in ids or _ext(row, EXT_VM) == name:
            rows.append(row)
    return rows


def _switch_of(nb, lsp_uuid) -> str | None:
    for ls in nb.tables["Logical_Switch"].rows.values():
        if any(p.uuid == lsp_uuid for p in ls.ports):
            return ls.name
    return None


def vm_physnets(nb, name: str, interfaceids: Iterable[str]) -> dict[str, list[str]]:
    """{physnet: [logical switch names]} the VM's NICs need: the ``options:network_name`` of
    the localnet ports on the switches its LSPs are on (overlay switches need none)."""
    mine = {row.uuid for row in _vm_ports(nb, name, interfaceids)}
    out: dict[str, list[str]] = {}
    for ls in nb.tables["Logical_Switch"].rows.values():
        if not any(p.uuid in mine for p in ls.ports):
            continue
        for p in ls.ports:
            phys = (p.options or {}).get("network_name") if p.type == "localnet" else None
            if phys:
                out.setdefault(phys, []).append(ls.name)
    return out


def _addresses(row) -> tuple[list[str], str | None]:
    addrs = list(row.addresses or [])
    dyn = row.dynamic_addresses[0] if getattr(row, "dynamic_addresses", None) else None
    return addrs, dyn


def _ips_of(addresses: list[str], dynamic: str | None) -> list[str]:
    out: list[str] = []
    words: list[str] = []
    for a in addresses + ([dynamic] if dynamic else []):
        words.extend(a.split())
    for w in words:
        if w in ("dynamic", "router", "unknown") or w.count(":") == 5 and len(w) == 17:
            continue
        if ("." in w or ":" in w) and w not in out:
            out.append(w)
    return out


def _nb(session):
    try:
        return session.nb()
    except VirtdeckError:
        raise
    except Exception as exc:  # noqa: BLE001 - ovsdbapp raises assorted types
        raise HostError(f"OVN northbound: {exc or type(exc).__name__}") from None


def ip(session, name: str, host: str | None = None) -> list[dict]:
    """The VM's addresses from OVN, one entry per NIC (read-only, no audit).

    Returns ``[{"mac", "lsp", "switch", "addresses": [...], "dynamic_addresses", "ips": [...],
    "up"}]`` in NIC order; a NIC whose LSP is missing has ``lsp=None`` and no IPs. Facts: the
    domain XML (MAC, interfaceid) and NB ``Logical_Switch_Port.addresses`` /
    ``dynamic_addresses`` (OVN IPAM). Raises VmNotFound, HostError (host or NB unreachable).
    """
    h, dom = locate(session, name, host)
    try:
        facts = domain_facts(dom)
    except libvirt.libvirtError as exc:
        raise HostError(f"{h}: reading {name}: {_lv_msg(exc)}") from None
    nb = _nb(session)
    ports = {r.name: r for r in _vm_ports(nb, name, facts.interfaceids)}
    out = []
    for nic in facts.nics:
        row = ports.get(nic.interfaceid) if nic.interfaceid else None
        if row is None and nic.mac:  # a port tagged with the VM whose address has this MAC
            row = next((r for r in ports.values() if any(a.lower().startswith(nic.mac) for a in r.addresses)), None)
        if row is None:
            out.append({"mac": nic.mac, "lsp": nic.interfaceid, "switch": None, "addresses": [],
                        "dynamic_addresses": None, "ips": [], "up": None, "missing": True})
            continue
        addrs, dyn = _addresses(row)
        up = row.up[0] if getattr(row, "up", None) else None
        out.append({"mac": nic.mac, "lsp": row.name, "switch": _switch_of(nb, row.uuid), "addresses": addrs,
                    "dynamic_addresses": dyn, "ips": _ips_of(addrs, dyn), "up": up})
    return out


@dataclass(frozen=True)
class OvnLeftovers:
    """OVN rows that belong to a VM: LSP names, DHCP_Options uuids, NAT rows (router, uuid)."""

    ports: tuple[str, ...] = ()
    dhcp: tuple[str, ...] = ()
    nats: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ports or self.dhcp or self.nats)


def ovn_rows_of(nb, name: str, interfaceids: Iterable[str] = ()) -> OvnLeftovers:
    """Every NB row that belongs to VM ``name``: its LSPs (by interfaceid or ``virtdeck:vm``), the
    DHCP_Options rows tagged ``virtdeck:vm`` = name, and NAT rows (floating IPs) whose
    ``logical_port`` is one of its LSPs, that are tagged with the VM, or that are
    ``dnat_and_snat`` on one of its IPs."""
    ports = _vm_ports(nb, name, interfaceids)
    names = {p.name for p in ports}
    ips: set[str] = set()
    for p in ports:
        addrs, dyn = _addresses(p)
        ips.update(_ips_of(addrs, dyn))
    dhcp = [str(r.uuid) for r in nb.tables["DHCP_Options"].rows.values() if _ext(r, EXT_VM) == name]
    nats = []
    for lr in nb.tables["Logical_Router"].rows.values():
        for nat in lr.nat:
            lport = nat.logical_port[0] if getattr(nat, "logical_port", None) else None
            if lport in names or _ext(nat, EXT_VM) == name or _ext(nat, EXT_PORT) in names or \
                    (nat.type == "dnat_and_snat" and nat.logical_ip in ips):
                nats.append((str(lr.uuid), str(nat.uuid)))
    return OvnLeftovers(tuple(sorted(names)), tuple(dhcp), tuple(nats))


def remove_ovn_rows(nb, rows: OvnLeftovers) -> None:
    """Delete ``rows`` in one NB transaction (``if_exists``: rows already gone are fine)."""
    if not rows:
        return
    with nb.transaction(check_error=True) as txn:
        for router, nat in rows.nats:
            txn.add(nb.db_remove("Logical_Router", router, "nat", uuid.UUID(nat), if_exists=True))
        for lsp in rows.ports:
            txn.add(nb.lsp_del(lsp, if_exists=True))
        for d in rows.dhcp:
            txn.add(nb.db_destroy("DHCP_Options", d))


# ---------------------------------------------------------------------------------------------
# Delete


def _template_volumes(session) -> set[tuple[str, str]]:
    return {(t.pool, t.volume) for t in session.inventory.templates}


def _own_volumes(session, conn, disks) -> tuple[list[tuple[Any, str]], list[str]]:
    """Split a domain's disks into ``[(volume, pool name)]`` it owns (its overlay, its seed) and
    the paths it only uses: not a pool volume, or a template volume shared by every VM."""
    templates = _template_volumes(session)
    own, shared = [], []
    for d in disks:
        if not d.source:
            continue
        vol = _volume_for(conn, d.source)
        pool = vol.storagePoolLookupByVolume().name() if vol is not None else None
        if vol is None or (pool, vol.name()) in templates:
            shared.append(d.source)
        else:
            own.append((vol, pool))
    return own, shared


def _volume_for(conn, path: str):
    """The storage volume at ``path`` (or ``pool:POOL/VOL``), or None when it is not a pool volume."""
    try:
        if path.startswith("pool:"):
            pool, vol = path[5:].split("/", 1)
            return conn.storagePoolLookupByName(pool).storageVolLookupByName(vol)
        return conn.storageVolLookupByPath(path)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_STORAGE_POOL):
            return None
        raise


def delete(session, name: str, host: str | None = None, missing_ok: bool = False) -> OpResult:
    """Delete a VM and everything it owns: the domain (forced off first if it runs; managed save,
    snapshot metadata and NVRAM go with it), its disk volumes (the qcow2 overlay and the seed ISO;
    a template's base volume is never deleted), its LSPs, its DHCP_Options rows and its floating
    IPs (NAT rows) — see :func:`ovn_rows_of`.

    Order: NB is reached and the rows listed BEFORE anything is removed (an unreachable NB fails
    the verb with nothing touched); then domain, volumes, OVN rows in one transaction. A failure
    after the domain is gone does not stop the other removals; the error then lists what is left.
    No domain but OVN rows tagged with the VM → those are removed (outcome ok). Nothing at all →
    VmNotFound, or noop with ``missing_ok``.

    details: ``volumes`` removed (names), ``kept`` (paths left: not pool volumes or templates),
    ``ports``, ``dhcp``, ``nats`` removed.
    """
    def body(op: _Op) -> OpResult:
        try:
            dom = _find(op, session, host)
        except VmNotFound:
            nb = _nb(session)
            rows = ovn_rows_of(nb, name)
            if rows:
                remove_ovn_rows(nb, rows)
                return op.result("ok", f"no domain named {name}; removed its leftover OVN rows",
                                 ports=list(rows.ports), dhcp=list(rows.dhcp), nats=[n for _, n in rows.nats])
            if missing_ok:
                return op.result("noop", f"no VM named {name}: nothing to delete")
            raise
        conn = session.libvirt(op.host)
        facts = domain_facts(dom, inactive=dom.isPersistent())
        nb = _nb(session)  # fail before touching anything if NB is unreachable
        rows = ovn_rows_of(nb, name, facts.interfaceids)
        owned, kept = _own_volumes(session, conn, facts.disks)
        volumes = [vol for vol, _ in owned]
        try:
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                flags = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                try:
                    dom.undefineFlags(flags | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                                      | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                        raise
                    dom.undefineFlags(flags)
        except libvirt.libvirtError as exc:
            # someone else (another console, virsh) removed it meanwhile: finish the cleanup
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
        problems: list[str] = []
        removed: list[str] = []
        for vol in volumes:
            vname = vol.name()
            try:
                vol.delete(0)
                removed.append(vname)
            except libvirt.libvirtError as exc:
                problems.append(f"volume {vname} on {op.host}: {_lv_msg(exc)}")
        try:
            remove_ovn_rows(nb, rows)
        except Exception as exc:  # noqa: BLE001 - ovsdbapp raises assorted types
            problems.append(f"OVN rows {', '.join(rows.ports) or ''}: {exc or type(exc).__name__}")
        if facts.serial_log and facts.serial_log.startswith("/var/log/libvirt/"):
            # the guest's console log (written by virtlogd) goes too; not fatal if it cannot
            try:
                res = session.run(op.host, ["rm", "-f", "--", facts.serial_log], timeout=10)
                if res.ok:
                    op.details["serial_log"] = facts.serial_log
            except VirtdeckError:
                pass
        op.details.update(volumes=removed, kept=kept, ports=list(rows.ports), dhcp=list(rows.dhcp),
                          nats=[n for _, n in rows.nats])
        if problems:
            raise HostError(f"{name}'s domain on {op.host} is gone but some parts are left: " + "; ".join(problems))
        return op.result("ok", f"{name} deleted from {op.host} ({len(removed)} volume(s), {len(rows.ports)} "
                         f"port(s), {len(rows.dhcp)} DHCP row(s), {len(rows.nats)} floating IP(s))")
    return _run_verb("vm.delete", name, body)


# ---------------------------------------------------------------------------------------------
# Placement facts (for resize and move)


def host_facts(session, host: str, exclude_uuid: str | None = None):
    """:class:`backends.scheduler.HostFacts` of ``host`` from libvirt, leaving out the domain
    ``exclude_uuid`` (the VM being resized/moved) from the allocations.

    cores: ``getInfo()[2]``; RAM total ``getInfo()[1]`` MiB; free ``getFreeMemory()`` bytes → MiB;
    allocations: every defined domain's vCPUs and current memory (``info()``, KiB → MiB).
    Physnets are not read (resize/move of a VM keeps its networks; move checks them apart).
    """
    from ...backends.scheduler import HostFacts

    hc = session.inventory.host(host)
    try:
        conn = session.libvirt(host)
        info = conn.getInfo()
        free = conn.getFreeMemory() // 1048576
        v = m = 0
        for d in conn.listAllDomains(0):
            if exclude_uuid and d.UUIDString() == exclude_uuid:
                continue
            di = d.info()
            v += di[3]
            m += di[2] // 1024
    except VirtdeckError as exc:
        return HostFacts(host, enabled=hc.enabled, reachable=False, error=str(exc))
    except libvirt.libvirtError as exc:
        return HostFacts(host, enabled=hc.enabled, reachable=False, error=f"{host}: {_lv_msg(exc)}")
    return HostFacts(host, enabled=hc.enabled, reachable=True, arch=info[0], cores=info[2],
                     ram_total_mib=info[1], ram_free_mib=free, alloc_vcpus=v, alloc_ram_mib=m)


def _check_fits(session, host: str, facts, vcpus: int, ram_mib: int, arch: str | None,
                what: str) -> None:
    """Raise VirtdeckError with the scheduler's reasons when ``host`` cannot hold the VM."""
    from ...backends.scheduler import PlacementRequest, place

    alloc = session.inventory.allocation
    req = PlacementRequest(vcpus=vcpus, ram_mib=ram_mib, arch=arch or facts.arch or "x86_64", pinned_host=host)
    placement = place([facts], req, cpu_ratio=alloc.cpu_ratio, ram_ratio=alloc.ram_ratio)
    if not placement.ok:
        raise VirtdeckError(f"{host} cannot hold {what} ({vcpus} vCPU, {ram_mib} MiB): "
                            f"{placement.verdict(host).summary}")


# ---------------------------------------------------------------------------------------------
# Resize


def resize(session, name: str, vcpus: int | None = None, memory_mib: int | None = None,
           host: str | None = None, live: bool = True) -> OpResult:
    """Change a VM's vCPUs and/or RAM (MiB).

    The persistent config is always changed (raising the ``<vcpu>`` / ``<memory>`` maximum when
    the new size is above it). On a running VM (and ``live``) the change is also applied now
    where the domain allows it: vCPUs up to its maximum (hot-plug), RAM up to ``<memory>``
    (balloon) — VMs from ``vm create`` get ceilings above their size (provision.growth_limits);
    beyond them it takes effect at the next boot (``details["applied"]`` says which, per
    resource: "now", "next boot" or "next boot (live maximum is …; restart the VM to apply)"). The host's
    capacity is re-checked with the scheduler's filters first (allocation ratios, free RAM for a
    running VM), leaving the VM's own current share out. Same size → noop.

    Raises ValidationError (bad size), VirtdeckError (host too small, with the reasons),
    HostError (libvirt refused; the config change is rolled back).
    """
    if vcpus is None and memory_mib is None:
        raise ValidationError("size", "give --vcpus and/or --memory (MiB)")
    if vcpus is not None and (not isinstance(vcpus, int) or vcpus < 1 or vcpus > 256):
        raise ValidationError("vcpus", "a whole number from 1 to 256")
    if memory_mib is not None and (not isinstance(memory_mib, int) or memory_mib < 64 or memory_mib > 4 * 1024 * 1024):
        raise ValidationError("memory", "whole MiB, at least 64")

    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        cfg = domain_facts(dom, inactive=True)
        active = bool(dom.isActive())
        cur = domain_facts(dom) if active else cfg
        new_v = vcpus if vcpus is not None else cfg.vcpus
        new_m = memory_mib if memory_mib is not None else cfg.memory_mib
        same_v = vcpus is None or (new_v == cfg.vcpus and (not active or new_v == cur.vcpus))
        same_m = memory_mib is None or (new_m == cfg.memory_mib and (not active or new_m == cur.memory_mib))
        if same_v and same_m:
            return op.result("noop", f"{name} already has {new_v} vCPU and {new_m} MiB", vcpus=new_v, memory_mib=new_m)
        # Growing: check and apply under the host's placement lock (backends.hostlock), so a
        # create from another console cannot take the same room meanwhile.
        growing = new_v > cfg.vcpus or new_m > cfg.memory_mib
        lock = hostlock.acquire(session, op.host) if growing else None
        try:
            return _resize_checked(op, dom, cfg, cur, active, new_v, new_m)
        finally:
            if lock is not None:
                lock.release()

    def _resize_checked(op: _Op, dom, cfg, cur, active, new_v, new_m) -> OpResult:
        facts = host_facts(session, op.host, exclude_uuid=cfg.uuid)
        if not facts.reachable:
            raise HostError(facts.error or f"{op.host} is not reachable")
        if active:
            facts = replace(facts, ram_free_mib=facts.ram_free_mib + cur.memory_mib)
        else:
            facts = replace(facts, ram_free_mib=max(facts.ram_free_mib, new_m))  # no RAM held while stopped
        _check_fits(session, op.host, facts, new_v, new_m, None, name)

        undo: list[Callable[[], None]] = []
        CFG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        try:
            if new_v != cfg.vcpus:
                if new_v > cfg.max_vcpus:
                    dom.setVcpusFlags(new_v, CFG | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
                    undo.append(lambda: dom.setVcpusFlags(cfg.max_vcpus, CFG | libvirt.VIR_DOMAIN_VCPU_MAXIMUM))
                dom.setVcpusFlags(new_v, CFG)
                undo.append(lambda: dom.setVcpusFlags(cfg.vcpus, CFG))
            if new_m != cfg.memory_mib:
                if new_m > cfg.max_memory_mib:
                    dom.setMemoryFlags(new_m * 1024, CFG | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
                    undo.append(lambda: dom.setMemoryFlags(cfg.max_memory_mib * 1024, CFG | libvirt.VIR_DOMAIN_MEM_MAXIMUM))
                dom.setMemoryFlags(new_m * 1024, CFG)
        except libvirt.libvirtError as exc:
            for fn in reversed(undo):
                try:
                    fn()
                except libvirt.libvirtError:
                    pass
            raise HostError(f"{op.host}: resize {name} refused: {_lv_msg(exc)} (nothing changed)") from None

        applied: dict[str, str] = {}
        if active:
            LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
            if vcpus is not None and new_v != cur.vcpus:
                if not live:
                    applied["vcpus"] = "next boot"
                elif new_v > cur.max_vcpus:
                    applied["vcpus"] = (f"next boot (live maximum is {cur.max_vcpus} vCPUs, set at create; "
                                           f"restart the VM to apply)")
                else:
                    try:
                        dom.setVcpusFlags(new_v, LIVE)
                        applied["vcpus"] = "now"
                    except libvirt.libvirtError as exc:
                        applied["vcpus"] = f"next boot (live change refused: {_lv_msg(exc)})"
            if memory_mib is not None and new_m != cur.memory_mib:
                if not live:
                    applied["memory"] = "next boot"
                elif new_m > cur.max_memory_mib:
                    applied["memory"] = (f"next boot (live maximum is {cur.max_memory_mib} MiB, set at create; "
                                            f"restart the VM to apply)")
                else:
                    try:
                        dom.setMemoryFlags(new_m * 1024, LIVE)
                        applied["memory"] = "now"
                    except libvirt.libvirtError as exc:
                        applied["memory"] = f"next boot (live change refused: {_lv_msg(exc)})"
        else:
            if new_v != cfg.vcpus:
                applied["vcpus"] = "next boot"
            if new_m != cfg.memory_mib:
                applied["memory"] = "next boot"
        when = "; ".join(f"{k} {v}" for k, v in applied.items()) or "config only"
        if active and any(v.startswith("next boot") for v in applied.values()):
            when += " — a restart (shutdown + start) is needed for the rest"
        return op.result("ok", f"{name} on {op.host} resized to {new_v} vCPU / {new_m} MiB ({when})",
                         vcpus={"from": cfg.vcpus, "to": new_v}, memory_mib={"from": cfg.memory_mib, "to": new_m},
                         applied=applied)
    return _run_verb("vm.resize", name, body)


# ---------------------------------------------------------------------------------------------
# NICs whose OVN port went away (network delete --cascade)


def _nics_bound_to(xml: str, lsps: set[str]) -> dict[tuple[str, str], str]:
    """``{(mac, interfaceid): <interface> XML}`` of the domain's interfaces bound to one of ``lsps``."""
    out = {}
    for i in ET.fromstring(xml).findall("devices/interface"):
        params = i.find("virtualport/parameters")
        mac = i.find("mac")
        if params is not None and params.get("interfaceid") in lsps and mac is not None:
            out[(mac.get("address").lower(), params.get("interfaceid"))] = ET.tostring(i, encoding="unicode")
    return out


def _set_instance_meta(dom, meta, flags: int) -> None:
    """Replace the domain's ``<virtdeck:instance>`` metadata with ``meta`` (domain_xml.InstanceMeta)
    under ``flags`` (VIR_DOMAIN_AFFECT_*). Raises libvirtError."""
    from ...backends import domain_xml as dx

    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, dx.metadata_xml(meta), dx.PREFIX, dx.NS, flags)


def detach_ports(session, lsps: Iterable[str], switch: str | None = None) -> dict:
    """Detach, from every domain on the enabled hypervisors, the NICs bound (openvswitch
    virtualport interfaceid) to the LSPs ``lsps`` — the ports a ``network delete --cascade``
    removed, so no domain is left with a NIC pointing at a deleted port.

    Running domains: ``detachDeviceFlags(LIVE | CONFIG)`` (libvirt asks the guest to release
    the PCI device and waits ~5 s; a guest that does not answer keeps the NIC until it does or
    until its next boot, the config is changed at once). Others: CONFIG only. ``switch``: the
    deleted logical switch, also dropped from the ``<virtdeck:instance>`` networks metadata.

    Returns ``{"detached": [{"vm", "host", "mac", "lsp", "live"}], "problems": [str]}``; never
    raises for one host or domain (an unreachable host is a problem line: its domains keep the
    NIC, which then has no port — it carries no traffic; run this again once it is back).
    """
    from ...backends import domain_xml as dx

    want = set(lsps)
    out: dict = {"detached": [], "problems": []}
    if not want:
        return out
    CFG, LIVE = libvirt.VIR_DOMAIN_AFFECT_CONFIG, libvirt.VIR_DOMAIN_AFFECT_LIVE

    def one(h: str) -> tuple[list[dict], list[str]]:
        done, problems = [], []
        try:
            conn = session.libvirt(h)
            doms = conn.listAllDomains(0)
        except (VirtdeckError, libvirt.libvirtError) as exc:
            why = _lv_msg(exc) if isinstance(exc, libvirt.libvirtError) else str(exc)
            return [], [f"{h}: cannot list domains, their NICs were not checked: {why}"]
        for dom in doms:
            try:
                active = bool(dom.isActive())
                cfg_nics = _nics_bound_to(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), want) \
                    if dom.isPersistent() else {}
                live_nics = _nics_bound_to(dom.XMLDesc(0), want) if active else {}
                for (mac, lsp), dev in {**live_nics, **cfg_nics}.items():
                    flags = (CFG if (mac, lsp) in cfg_nics else 0) | (LIVE if (mac, lsp) in live_nics else 0)
                    dom.detachDeviceFlags(dev, flags)  # libvirt matches it by MAC
                    done.append({"vm": dom.name(), "host": h, "mac": mac, "lsp": lsp, "live": bool(flags & LIVE)})
                if (cfg_nics or live_nics) and switch:
                    raw = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                    meta = dx.parse_metadata(raw)
                    if meta is not None and switch in meta.networks:
                        meta = replace(meta, networks=tuple(n for n in meta.networks if n != switch))
                        _set_instance_meta(dom, meta, CFG | (LIVE if active else 0))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue
                problems.append(f"{h}: {dom.name()}: detach refused: {_lv_msg(exc)}")
        return done, problems

    hosts = _hypervisor_names(session, None)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        for done, problems in pool.map(one, hosts):
            out["detached"] += done
            out["problems"] += problems
    return out


# ---------------------------------------------------------------------------------------------
# Bulk


def _detached(exc: BaseException) -> BaseException:
    """Drop an error's traceback and context: their frames hold libvirt objects (domains,
    connections) that would otherwise live as long as the error. (A virDomain freed after its
    Session closed used to block the process at exit; Session.close now waits for the SSH
    forward to close, so that no longer hangs — this only keeps results light.)"""
    exc.__traceback__ = None
    exc.__context__ = None
    exc.__cause__ = None
    return exc


def bulk(fn: Callable[..., OpResult], session, names: Iterable[str], max_workers: int = 4,
         **kwargs) -> list[OpResult | VirtdeckError]:
    """Run verb ``fn`` (e.g. :func:`start`) on several VMs in parallel threads.

    Returns one entry per name, in order: the OpResult, or the VirtdeckError it raised (each VM
    gets its own audit record; under --readonly each entry is a ReadOnlyError, each audited).
    """
    names = list(dict.fromkeys(names))
    if not names:
        return []

    def one(n: str):
        try:
            return fn(session, n, **kwargs)
        except VirtdeckError as exc:
            return _detached(exc)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(names)))) as pool:
        return list(pool.map(one, names))


# ---------------------------------------------------------------------------------------------
# Listing (read-only)


def list_vms(session, host: str | None = None, tenant: str | None = None) -> tuple[list[dict], dict[str, str]]:
    """Every VM on the enabled hypervisors (or ``host``), with its IPs from OVN.

    Returns ``(rows, unreachable)``: rows ``{"name", "host", "state", "vcpus", "memory_mib",
    "tenant", "template", "networks", "ips"}`` sorted by name; ``unreachable`` ``{host: reason}``.
    Facts: :func:`backends.hypervisor.list_domains` (one bulk stats call per host) and NB LSPs.
    An unreachable NB leaves ``ips`` empty (and ``unreachable["ovn"]`` says why).
    """
    from ...backends import hypervisor

    hosts = _hypervisor_names(session, host)
    rows: list[dict] = []
    down: dict[str, str] = {}

    def one(h: str):
        conn = session.libvirt(h)
        for attempt in range(3):
            try:
                return hypervisor.list_domains(conn, h, want_cpu=False).vms
            except libvirt.libvirtError as exc:
                # a domain undefined between the listing and its XML read: list again
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN or attempt == 2:
                    raise

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        futures = {pool.submit(one, h): h for h in hosts}
        vms = []
        for fut in concurrent.futures.as_completed(futures):
            h = futures[fut]
            try:
                vms.extend(fut.result())
            except VirtdeckError as exc:
                down[h] = str(exc)
            except libvirt.libvirtError as exc:
                down[h] = f"{h}: {_lv_msg(exc)}"
    ips: dict[str, list[str]] = {}
    try:
        nb = _nb(session)
        for row in nb.tables["Logical_Switch_Port"].rows.values():
            addrs, dyn = _addresses(row)
            ips[row.name] = _ips_of(addrs, dyn)
    except VirtdeckError as exc:
        down["ovn"] = str(exc)
    for vm in vms:
        if tenant and vm.tenant != tenant:
            continue
        vm_ips = [ip for nic in vm.nics for ip in ips.get(nic.interfaceid or "", [])]
        rows.append({"name": vm.name, "host": vm.host, "state": vm.state, "vcpus": vm.vcpus,
                     "memory_mib": vm.memory_mib, "tenant": vm.tenant, "template": vm.template,
                     "networks": list(vm.networks), "ips": vm_ips})
    rows.sort(key=lambda r: (r["name"], r["host"]))
    return rows, down


# ---------------------------------------------------------------------------------------------
# Cloud-config (the seed ISO)


def _download(conn, vol, host: str, what: str) -> bytes:
    """A volume's whole content through the storage API (see storage.download_volume)."""
    from ...backends import storage

    buf = io.BytesIO()
    storage.download_volume(conn, host, vol, buf, f"reading {what}")
    return buf.getvalue()


def _seed_volume(conn, host: str, facts: DomainFacts):
    for d in facts.disks:
        if d.device == "cdrom" and d.source:
            vol = _volume_for(conn, d.source)
            if vol is not None:
                return vol
    raise VmStateError(f"{facts.name} on {host} has no NoCloud seed volume (no cdrom from a storage pool)")


def read_seed(session, name: str, host: str | None = None) -> tuple[str, dict[str, str]]:
    """The documents of the VM's seed ISO: ``(host, {"meta-data", "user-data", "network-config"})``,
    downloaded through the storage API. Raises VmNotFound, VmStateError (no seed), HostError."""
    from ...backends import seed as seedmod

    h, dom = locate(session, name, host)
    conn = session.libvirt(h)
    try:
        facts = domain_facts(dom, inactive=bool(dom.isPersistent()))
        vol = _seed_volume(conn, h, facts)
        data = _download(conn, vol, h, f"seed volume {vol.name()}")
    except libvirt.libvirtError as exc:
        raise HostError(f"{h}: reading {name}'s seed: {_lv_msg(exc)}") from None
    try:
        return h, seedmod.read_nocloud_iso(data)
    except Exception as exc:  # noqa: BLE001 - pycdlib raises its own types
        raise HostError(f"{h}: {name}'s seed volume is not a readable ISO: {exc}") from None


def get_user_data(session, name: str, host: str | None = None) -> str:
    """The VM's current cloud-init user-data (text), from its seed ISO."""
    return read_seed(session, name, host)[1].get("user-data", "#cloud-config\n")


def validate_user_data(text: str) -> dict:
    """Check an edited user-data document: it must start with ``#cloud-config``, parse as a YAML
    mapping, and hold no clear-text password (see :func:`console.cloudinit.parse_extra_user_data`).
    Returns the parsed mapping; raises ValidationError("user-data", …) with the YAML line."""
    from .. import cloudinit

    if not isinstance(text, str) or not text.lstrip().startswith("#cloud-config"):
        raise ValidationError("user-data", "must start with '#cloud-config' (a cloud-config YAML document)")
    if len(text.encode()) > 64 * 1024:
        raise ValidationError("user-data", "at most 64 KiB")
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValidationError("user-data", f"not valid YAML: {where}{problem}") from None
    if not isinstance(doc, dict):
        raise ValidationError("user-data", "must be a YAML mapping (key: value), not empty")
    if "users" in doc and not isinstance(doc["users"], list):
        raise ValidationError("user-data", "users must be a list")
    cloudinit._refuse_clear_passwords(doc, "user-data")  # the wizard's own rule, reused
    return doc


def _reinsert_cdrom(dom, path: str) -> None:
    """Eject the running domain's cdrom whose source is ``path`` and insert ``path`` again, so
    qemu opens the file anew (``virDomainUpdateDeviceFlags`` LIVE, twice)."""
    root = ET.fromstring(dom.XMLDesc(0))
    for disk in root.findall("devices/disk"):
        src = disk.find("source")
        if disk.get("device") != "cdrom" or src is None or src.get("file") != path:
            continue
        for el in ("alias", "address", "backingStore"):
            for child in disk.findall(el):
                disk.remove(child)
        full = ET.tostring(disk, encoding="unicode")
        disk.remove(src)
        empty = ET.tostring(disk, encoding="unicode")
        dom.updateDeviceFlags(empty, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        dom.updateDeviceFlags(full, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        return


def edit_config(session, name: str, user_data: str, host: str | None = None) -> OpResult:
    """Replace the VM's cloud-init user-data: validate it, rebuild the NoCloud seed ISO with a NEW
    instance-id (so cloud-init applies it at the next boot) keeping the hostname and
    network-config, and put it in place of the old seed volume (same name and path). The
    domain's ``<virtdeck:seed>`` metadata follows when it held the old instance-id.

    A running VM keeps reading the old seed until it reboots (the message says so). If the new
    volume cannot be written the old seed is put back. Audit details carry instance-ids and the
    user-data's sha256, never its text. Same text as now → noop.
    """
    import hashlib

    import yaml

    from ...backends import domain_xml as dx
    from ...backends import seed as seedmod
    from ...backends import storage
    from .. import cloudinit

    validate_user_data(user_data)

    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        conn = session.libvirt(op.host)
        facts = domain_facts(dom, inactive=bool(dom.isPersistent()))
        vol = _seed_volume(conn, op.host, facts)
        vname = vol.name()
        pool = vol.storagePoolLookupByVolume().name()
        old = _download(conn, vol, op.host, f"seed volume {vname}")
        docs = seedmod.read_nocloud_iso(old)
        if docs.get("user-data") == user_data:
            return op.result("noop", f"{name}'s user-data is unchanged; the seed was left as it is")
        meta = yaml.safe_load(docs.get("meta-data") or "") or {}
        old_iid = str(meta.get("instance-id") or "")
        hostname = str(meta.get("local-hostname") or name)
        new_iid = cloudinit.new_instance_id()
        iso = seedmod.build_nocloud_iso(cloudinit.build_meta_data(new_iid, hostname), user_data,
                                        docs.get("network-config"))
        op.details.update(seed_volume=vname, instance_id={"from": old_iid, "to": new_iid},
                          user_data_sha256=hashlib.sha256(user_data.encode()).hexdigest())
        storage.delete_volume(conn, op.host, pool, vname)
        try:
            storage.upload_volume(conn, op.host, pool, vname, iso, fmt="raw")
        except BaseException:
            try:
                storage.upload_volume(conn, op.host, pool, vname, old, fmt="raw")
            except VirtdeckError:
                pass
            raise
        if dom.isActive():
            # qemu still holds the old file open (a guest reboot keeps the same qemu process):
            # eject and re-insert the cdrom so the running VM reads the new seed at its next boot.
            _reinsert_cdrom(dom, vol.path())
            op.details["media_changed"] = True
        meta_el = dx.parse_metadata(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if meta_el is not None and old_iid and meta_el.seed == old_iid:
            new_meta = replace(meta_el, seed=new_iid)
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
            _set_instance_meta(dom, new_meta, flags)
        when = "at its next boot" if dom.isActive() else "when it starts"
        return op.result("ok", f"{name} on {op.host}: new seed with instance-id {new_iid}; cloud-init applies "
                         f"the new user-data {when}")
    return _run_verb("vm.edit-config", name, body)


# ---------------------------------------------------------------------------------------------
# Move (cold)


def _copy_volume(sconn, shost: str, vol, tconn, thost: str, pool: str, progress=None) -> str:
    """Copy ``vol`` from ``shost`` into ``pool`` on ``thost`` under the same name, through the
    storage API (download to a private temporary file on this machine, then upload). Returns the
    new volume's path. Raises HostError."""
    import tempfile

    from ...backends import storage

    name = vol.name()
    with tempfile.NamedTemporaryFile(prefix="virtdeck-move-") as tmp:
        storage.download_volume(sconn, shost, vol, tmp)
        tmp.flush()
        info = storage.upload_volume(tconn, thost, pool, name, tmp.name, fmt="raw", progress=progress)
    return info.path


def _move_request(session, name: str, xml: str, facts: DomainFacts, to_host: str, snap):
    """The PlacementRequest a moved VM makes of ``to_host``: its current vCPUs/RAM, its arch
    (``<os><type arch>``), the physnets its provider networks need, its anti-affinity group and
    the hosts already holding a member of that group (from ``snap``, the target's
    provision.host_snapshot)."""
    from ...backends.scheduler import PlacementRequest
    from . import provision

    root = ET.fromstring(xml)
    arch = (root.find("os/type").get("arch") if root.find("os/type") is not None else None) or "x86_64"
    group = provision._domain_brief(xml).group
    physnets = frozenset(vm_physnets(_nb(session), name, facts.interfaceids))
    group_hosts = frozenset()
    if group and any(d.group == group and d.name != name for d in snap.domains):
        group_hosts = frozenset({to_host})
    return PlacementRequest(vcpus=facts.vcpus, ram_mib=facts.memory_mib, arch=arch, physnets=physnets,
                            anti_affinity_group=group, group_hosts=group_hosts, pinned_host=to_host)


def _check_move(session, name: str, to_host: str, preq, snap=None, after_copy: bool = False) -> None:
    """Raise VirtdeckError naming every reason ``to_host`` cannot take the VM (the scheduler's
    filters on the host's facts now: enabled, arch, physnet bridge mappings, anti-affinity,
    vCPUs and RAM against the allocation ratios). ``snap``: the target's
    provision.host_snapshot if just read (None = read it now). A stopped VM holds no RAM, so
    free RAM only has to cover it when started there later (not checked)."""
    from ...backends.scheduler import place
    from . import provision

    if snap is None:
        snap = provision.host_snapshot(session, session.inventory.host(to_host), None)
    f = snap.facts
    if not f.reachable:
        raise HostError(f.error or f"{to_host} is not reachable")
    f = replace(f, ram_free_mib=max(f.ram_free_mib, preq.ram_mib))
    alloc = session.inventory.allocation
    verdict = place([f], preq, cpu_ratio=alloc.cpu_ratio, ram_ratio=alloc.ram_ratio).verdict(to_host)
    if verdict.refused:
        when = " (it filled up while the disks were copied; copies removed)" if after_copy else \
            "; nothing was copied"
        raise VirtdeckError(f"cannot move {name} to {to_host}: {verdict.summary}{when}")


def move(session, name: str, to_host: str, host: str | None = None) -> OpResult:
    """Move a STOPPED VM to hypervisor ``to_host``: copy its disk volumes (overlay, seed) through
    the libvirt storage API, define the domain there (same UUID, XML and metadata), re-home its
    OVN ports (``options:requested-chassis`` follows when set; the binding itself follows the
    interfaceid when the VM starts on the new chassis), then undefine it on the old host and
    delete the old volumes.

    Checks first, before anything is copied: the VM is shut off (VmStateError), ``to_host``
    answers, has no domain of that name, passes placement for this VM (scheduler filters: arch,
    a bridge mapping for every physnet its provider networks need, anti-affinity group, vCPUs and
    RAM against the allocation ratios — VirtdeckError "cannot move NAME to HOST: reasons"), has
    the template's volumes (a qcow2 overlay's backing file, the kernel/initrd of a direct kernel
    boot) at the same paths. After the copy, capacity is checked again under the target's
    placement lock (backends.hostlock) and the domain defined before the lock is let go. If a step on
    the target fails, what was created there is removed and the VM stays where it was.
    Same host → noop.
    """
    def body(op: _Op) -> OpResult:
        from ...backends import storage

        dom = _find(op, session, host)
        src = op.host
        op.details.update({"from": src, "to": to_host})
        if to_host == src:
            return op.result("noop", f"{name} is already on {src}")
        hc = session.inventory.host(to_host)
        if not hc.hypervisor or not hc.enabled:
            raise ValidationError("--to", f"{to_host} is not an enabled hypervisor")
        if dom.isActive():
            raise VmStateError(f"{name} on {src} is {state_name(dom)}; shut it down before moving it")
        sconn = session.libvirt(src)
        tconn = session.libvirt(to_host)
        if _lookup_on(session, to_host, name) is not None:
            raise VirtdeckError(f"{to_host} already has a domain named {name}")
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
        facts = parse_domain_xml(xml)
        from . import provision
        snap = provision.host_snapshot(session, hc, None)  # read the target once for both
        preq = _move_request(session, name, xml, facts, to_host, snap)
        _check_move(session, name, to_host, preq, snap)

        # What to copy, and what must already be on the target.
        to_copy = []
        root = ET.fromstring(xml)
        needed = [p for p in (root.findtext("os/kernel"), root.findtext("os/initrd")) if p]
        owned, shared = _own_volumes(session, sconn, facts.disks)
        needed += shared
        for vol, pool in owned:
            info = storage.volume_info(vol)
            if info.backing_path:
                needed.append(info.backing_path)
            to_copy.append((vol, pool, info.path))
        missing = [p for p in needed if _volume_for(tconn, p) is None]
        if missing:
            raise VirtdeckError(f"{to_host} lacks {', '.join(missing)} (the template's files must be there "
                                f"at the same paths; `virtdeck template add` puts them on every host)")
        for vol, pool, path in to_copy:
            storage.get_pool(tconn, to_host, pool)
            if storage.find_volume(tconn, to_host, pool, vol.name()) is not None:
                raise VirtdeckError(f"{to_host} already has a volume {pool}/{vol.name()}; remove it or rename the VM")

        t0 = time.monotonic()
        created: list[tuple[str, str]] = []
        defined = None
        try:
            for vol, pool, path in to_copy:
                new_path = _copy_volume(sconn, src, vol, tconn, to_host, pool)
                created.append((pool, vol.name()))
                if new_path != path:
                    xml = xml.replace(f"'{path}'", f"'{new_path}'").replace(f'"{path}"', f'"{new_path}"')
            # Copies made: re-check the target under its placement lock (another console may have
            # filled it meanwhile) and define there before letting go of the lock.
            with hostlock.acquire(session, to_host):
                _check_move(session, name, to_host, preq, after_copy=True)
                defined = tconn.defineXML(xml)
        except BaseException:
            for pool, vname in created:
                try:
                    storage.delete_volume(tconn, to_host, pool, vname)
                except VirtdeckError:
                    pass
            raise
        # The VM exists on the target now: retire the source copy.
        problems = []
        try:
            if dom.isPersistent():
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        except libvirt.libvirtError as exc:
            try:
                defined.undefine()
            except libvirt.libvirtError:
                pass
            for pool, vname in created:
                try:
                    storage.delete_volume(tconn, to_host, pool, vname)
                except VirtdeckError:
                    pass
            raise HostError(f"{src}: cannot undefine {name} there, move undone: {_lv_msg(exc)}") from None
        for vol, pool, _ in to_copy:
            try:
                vol.delete(0)
            except libvirt.libvirtError as exc:
                problems.append(f"old volume {vol.name()} on {src}: {_lv_msg(exc)}")
        if facts.serial_log and facts.serial_log.startswith("/var/log/libvirt/"):
            try:  # the old console log stays behind otherwise (best effort)
                session.run(src, ["rm", "-f", "--", facts.serial_log], timeout=10)
            except VirtdeckError:
                pass
        # Re-home the ports.
        rehomed = []
        try:
            nb = _nb(session)
            rows = _vm_ports(nb, name, facts.interfaceids)
            with nb.transaction(check_error=True) as txn:
                for row in rows:
                    opts = dict(row.options or {})
                    if opts.get("requested-chassis"):
                        txn.add(nb.lsp_set_options(row.name, **{**opts, "requested-chassis": to_host}))
                        rehomed.append(row.name)
        except Exception as exc:  # noqa: BLE001 - ovsdbapp raises assorted types
            problems.append(f"OVN ports: {exc}")
        op.host = to_host
        op.details.update(volumes=[v.name() for v, _, _ in to_copy], seconds=round(time.monotonic() - t0, 1),
                          ports_rehomed=rehomed)
        if problems:
            raise HostError(f"{name} moved from {src} to {to_host} but: " + "; ".join(problems))
        return op.result("ok", f"{name} moved from {src} to {to_host} ({len(to_copy)} volume(s) copied in "
                         f"{time.monotonic() - t0:.1f} s)")
    return _run_verb("vm.move", name, body)


# ---------------------------------------------------------------------------------------------
# Serial console


def console_command(session, host: str, name: str) -> str:
    """The command run on ``host`` to attach to ``name``'s serial console (``virsh console``
    against the host's own libvirt socket)."""
    import shlex

    sock = session.inventory.host(host).libvirt_socket
    uri = "qemu:///system" if sock == "/run/libvirt/libvirt-sock" else f"qemu:///system?socket={sock}"
    return shlex.join(["virsh", "-c", uri, "console", name])


def console(session, name: str, host: str | None = None, fd_in: int | None = None,
            fd_out: int | None = None) -> int:
    """Attach this terminal to the VM's serial console over the host's SSH link
    (:func:`backends.serial_console.attach`); ``Ctrl-]`` comes back. Blocks until detached.

    The VM must be running (VmStateError otherwise). Typing into a guest console changes things,
    so ``--readonly`` refuses it; the attach is audited (``vm.console``) with how long it lasted.
    Returns the remote exit status (0 after a normal detach).
    """
    from ...backends import serial_console

    out: dict[str, int] = {}

    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        st = state_name(dom)
        if st not in ("running", "blocked", "paused"):
            raise VmStateError(f"{name} on {op.host} is {st}; start it to use its console")
        link = session.link(op.host)
        t0 = time.monotonic()
        banner = f"\r\nConnecting to {name}'s serial console on {op.host}; Ctrl-] to come back.\r\n"
        rc = serial_console.attach(link, console_command(session, op.host, name), fd_in, fd_out, banner=banner)
        out["rc"] = rc
        return op.result("ok", f"detached from {name}'s console on {op.host}", seconds=round(time.monotonic() - t0, 1),
                         exit_status=rc)
    _run_verb("vm.console", name, body)
    return out.get("rc", 0)
