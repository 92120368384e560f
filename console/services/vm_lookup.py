"""Finding VMs and reading them: the VM verbs' shared ground.

:func:`locate` finds a domain by name across the hypervisors (a VM name is unique in the cluster)
or on the host the caller names; :func:`status`, :func:`ip` and :func:`list_vms` are the
read-only verbs (no guard, no audit). :class:`OpResult`, :class:`VmNotFound`,
:class:`VmStateError` and :func:`_run_verb` (the VM verbs' use of :func:`verb.run`: target
``vm TENANT/NAME``, libvirt errors as one line naming the host) are what every VM verb module
(vm_power, vm_delete, vm_resize, vm_move, vm_seed, vm_nics, vm_console) shares.

Every mutating VM verb refuses under ``--readonly`` before touching anything; is idempotent where
that makes sense (``start`` on a running VM → ``outcome="noop"``); writes exactly ONE audit
record; raises :class:`console.errors.VirtdeckError` subclasses whose message is one sentence
naming the host and carrying libvirt's / OVN's own message — never a traceback.

``session`` is a :class:`backends.session.Session` (anything with ``inventory``,
``libvirt(host)``, ``nb()`` and ``run(host, cmd)`` works). Units: memory in MiB, vCPUs whole.
"""

from __future__ import annotations

import concurrent.futures
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ...backends import domains
from ...backends.domains import DomainFacts
from ...backends.ovn import vm_ports
from ..errors import ExitCode, HostError, ValidationError, VirtdeckError
from . import verb as verb_frame

# ---------------------------------------------------------------------------------------------
# Errors and results


class VmNotFound(VirtdeckError):
    """No hypervisor that answered has a domain of that name (message says which hosts were
    searched and which could not be reached).

    ``unreachable``: ``{host: reason}`` of the enabled hypervisors that did not answer (could not
    be reached, or libvirt gave no answer within :func:`lookup_wait` seconds). When it is not
    empty the VM may well be on one of them: the absence is NOT established, and a verb that
    would act on "it is gone" (delete removing OVN rows, ``--missing-ok``) must refuse instead.
    """

    exit_code = ExitCode.NOT_FOUND

    def __init__(self, message: str, unreachable: Mapping[str, str] | None = None):
        super().__init__(message)
        self.unreachable: dict[str, str] = dict(unreachable or {})
        if self.unreachable:  # absence not established: a host did not answer (exit 5, not 3)
            self.exit_code = ExitCode.UNREACHABLE

    @property
    def conclusive(self) -> bool:
        """True when every hypervisor searched answered (so the VM is really not there)."""
        return not self.unreachable


class VmStateError(VirtdeckError):
    """The verb does not apply in the VM's current state (e.g. resume on a stopped VM)."""

    exit_code = ExitCode.CONFLICT


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


def state_name(dom) -> str:
    """The domain's state in words (one of :data:`console.model.VM_STATES`). Raises HostError."""
    return domains.state(dom)


def _lv_msg(exc: BaseException) -> str:
    return domains.message(exc)


def _hypervisor_names(session, host: str | None) -> list[str]:
    if host:
        h = session.inventory.host(host)  # ConfigError names the known hosts
        if not h.hypervisor:
            raise ValidationError("host", f"{host} is not a hypervisor")
        return [h.name]
    return [h.name for h in session.inventory.hypervisors if h.enabled]


def _lookup_on(session, host: str, name: str):
    """(dom or None) on ``host``; raises HostError when the host cannot be reached."""
    return domains.lookup(session.libvirt(host), host, name)


def lookup_wait(session) -> float:
    """Seconds :func:`locate` waits for each hypervisor's answer: two SSH connects (a ProxyJump
    hop is one more) of ``session.connect_timeout`` (default 10 s), plus 10 s for the socket
    forward and libvirt's own answer. A frozen libvirtd (SIGSTOP, hung) accepts the connection
    and never answers, and libvirt's keepalive only starts once the connection is open: without
    this bound a lookup would wait forever."""
    try:
        ct = float(getattr(session, "connect_timeout", 10.0) or 10.0)
    except (TypeError, ValueError):
        ct = 10.0
    return 2 * ct + 10.0


def _lookup_all(session, hosts: list[str], name: str, wait: float) -> tuple[dict[str, Any], dict[str, VirtdeckError]]:
    """Look ``name`` up on every host in parallel, waiting at most ``wait`` seconds in all.

    Returns ``({host: dom or None}, {host: error})``: the hosts that answered, and those that
    raised (their VirtdeckError, HostKeyUnknown and the like kept) or did not answer in time (a
    HostError saying so). Daemon threads, not an executor: a thread stuck in a frozen
    libvirtd must neither hold this call nor the process's exit (an executor joins its threads
    at exit)."""
    answers: dict[str, tuple[bool, Any]] = {}
    lock = threading.Lock()
    all_in = threading.Event()

    def work(h: str) -> None:
        try:
            res = (True, _lookup_on(session, h, name))
        except VirtdeckError as exc:
            res = (False, exc)
        except Exception as exc:  # noqa: BLE001 - an SSH/libvirt surprise is still "did not answer"
            res = (False, HostError(f"{h}: {exc or type(exc).__name__}"))
        with lock:
            answers[h] = res
            if len(answers) == len(hosts):
                all_in.set()

    for h in hosts:
        threading.Thread(target=work, args=(h,), name=f"locate-{h}", daemon=True).start()
    all_in.wait(wait)
    found: dict[str, Any] = {}
    down: dict[str, VirtdeckError] = {}
    with lock:
        for h in hosts:
            if h not in answers:
                down[h] = HostError(f"{h}: libvirt gave no answer within {wait:g} s (libvirtd frozen or "
                                    f"overloaded?); check libvirtd on {h}, then try again")
            elif answers[h][0]:
                found[h] = answers[h][1]
            else:
                down[h] = answers[h][1]
    return found, down


def locate(session, name: str, host: str | None = None) -> tuple[str, Any]:
    """Find domain ``name``: on ``host`` if given, else on every enabled hypervisor in parallel.

    Every host gets at most :func:`lookup_wait` seconds to answer (one deadline for all).
    Returns ``(host, virDomain)``. Raises VmNotFound (naming the hosts searched and any that
    could not be reached or did not answer; ``VmNotFound.unreachable`` lists those, and only
    without them is the absence established), HostError when ``host`` (or the only hypervisor)
    is given and unreachable or silent, VirtdeckError when two hosts hold a domain of that name.
    """
    if not name or not isinstance(name, str):
        raise ValidationError("name", "a VM name is required")
    hosts = _hypervisor_names(session, host)
    if not hosts:
        raise VmNotFound(f"no enabled hypervisor in the inventory to look for {name} on")
    answered, down = _lookup_all(session, hosts, name, lookup_wait(session))
    if len(hosts) == 1:
        if down:
            raise down[hosts[0]]
        dom = answered[hosts[0]]
        if dom is None:
            raise VmNotFound(f"no VM named {name} on {hosts[0]}")
        return hosts[0], dom
    found = [(h, dom) for h, dom in answered.items() if dom is not None]
    if len(found) > 1:
        where = ", ".join(sorted(h for h, _ in found))
        raise VirtdeckError(f"a VM named {name} exists on several hosts ({where}); pass --host to choose one")
    if found:
        return found[0]
    msg = f"no VM named {name} on {', '.join(h for h in hosts if h not in down) or 'any reachable host'}"
    if down:
        msg += "; not reachable: " + "; ".join(str(down[h]) for h in sorted(down))
    raise VmNotFound(msg, unreachable={h: str(e) for h, e in down.items()})


# ---------------------------------------------------------------------------------------------
# Domain XML facts


def domain_facts(dom, inactive: bool = False) -> DomainFacts:
    """:class:`backends.domains.DomainFacts` of a domain object (``inactive``: the persistent
    config). Raises HostError."""
    return domains.facts(dom, inactive=inactive)


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
        if domains.is_libvirt_error(exc):
            return HostError(f"{run.host or 'libvirt'}: {verb.split('.', 1)[1]} {name} failed: {_lv_msg(exc)}")
        return None

    return verb_frame.run(verb, _target(name, None), inner, mutating=mutating, translate=translate)


def _find(op: _Op, session, host: str | None):
    h, dom = locate(session, op.name, host)
    op.host = h
    try:
        op.tenant = domain_facts(dom).tenant
    except HostError:  # no tenant in the audit record then
        pass
    return dom


# ---------------------------------------------------------------------------------------------
# Lifecycle verbs


def status(session, name: str, host: str | None = None) -> dict:
    """Read-only: ``{"vm", "host", "state", "vcpus", "max_vcpus", "memory_mib",
    "max_memory_mib", "tenant", "template"}`` for one VM. Raises VmNotFound/HostError."""
    h, dom = locate(session, name, host)
    f = domains.facts(dom, h)  # HostError "<host>: reading <name>: …"
    st = domains.state(dom, h)
    return {"vm": name, "host": h, "state": st, "vcpus": f.vcpus, "max_vcpus": f.max_vcpus,
            "memory_mib": f.memory_mib, "max_memory_mib": f.max_memory_mib, "tenant": f.tenant,
            "template": f.template}


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
    facts = domains.facts(dom, h)
    nb = _nb(session)
    ports = {r.name: r for r in vm_ports.vm_ports(nb, name, facts.interfaceids)}
    out = []
    for nic in facts.nics:
        row = ports.get(nic.interfaceid) if nic.interfaceid else None
        if row is None and nic.mac:  # a port tagged with the VM whose address has this MAC
            row = next((r for r in ports.values() if any(a.lower().startswith(nic.mac) for a in r.addresses)), None)
        if row is None:
            out.append({"mac": nic.mac, "lsp": nic.interfaceid, "switch": None, "addresses": [],
                        "dynamic_addresses": None, "ips": [], "up": None, "missing": True})
            continue
        addrs, dyn = vm_ports.addresses(row)
        up = row.up[0] if getattr(row, "up", None) else None
        out.append({"mac": nic.mac, "lsp": row.name, "switch": vm_ports.switch_of(nb, row.uuid), "addresses": addrs,
                    "dynamic_addresses": dyn, "ips": vm_ports.ips_of(addrs, dyn), "up": up})
    return out


# ---------------------------------------------------------------------------------------------
# Listing (read-only)


def list_vms(session, host: str | None = None, tenant: str | None = None) -> tuple[list[dict], dict[str, str]]:
    """Every VM on the enabled hypervisors (or ``host``), with its IPs from OVN.

    Returns ``(rows, unreachable)``: rows ``{"name", "host", "state", "vcpus", "memory_mib",
    "tenant", "template", "networks", "ips"}`` sorted by name; ``unreachable`` ``{host: reason}``.
    Facts: :func:`backends.hypervisor.list_domains` (one bulk stats call per host) and NB LSPs.
    An unreachable NB leaves ``ips`` empty (and ``unreachable["ovn"]`` says why).
    """
    hosts = _hypervisor_names(session, host)
    rows: list[dict] = []
    down: dict[str, str] = {}

    def one(h: str):
        return domains.list_vms(session.libvirt(h), h)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        futures = {pool.submit(one, h): h for h in hosts}
        vms = []
        for fut in concurrent.futures.as_completed(futures):
            h = futures[fut]
            try:
                vms.extend(fut.result())
            except VirtdeckError as exc:
                down[h] = str(exc)
    ips: dict[str, list[str]] = {}
    try:
        ips = vm_ports.ips_by_lsp(_nb(session))
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
