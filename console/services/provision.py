"""Create a VM: one service for the TUI wizard and `virtdeck vm create`.

:func:`create_vm` ``(session, inventory, request, progress=callback) -> CreateResult`` runs the
steps below, in order, reporting each through ``progress(step, status, detail)``:

=============  ==================================================  =============================
step           does                                                undo
=============  ==================================================  =============================
validate       name/sizes/keys/user/YAML, template, tenant,        —
               networks (OVN lookup), seed documents build
placement      host facts (libvirt + OVS bridge mappings), name    release the claim and
               unique in the cluster, tenant quota, scheduler,     the host's lock
               reservation claim (backends.scheduler.LEDGER),
               the host's placement lock + re-check under it
disk           qcow2 overlay on the template volume, resized       delete the volume
seed           NoCloud ISO (pycdlib) uploaded as a volume          delete the volume
ports          one LSP per NIC (UUID name, MAC+IP, DHCP, SG)       delete the LSPs
domain         domain XML (backends.domain_xml)                    —
define         ``defineXML``                                       undefine (destroy first)
start          ``create()``                                        destroy
=============  ==================================================  =============================

``status`` is "start", "ok", "failed", "undo", "undone" or "undo-failed"; ``detail`` is a short
human line. If a step fails, every finished step is undone in reverse order (the undo of
``ports`` and ``define`` is registered just BEFORE the call and is if-exists by our own LSP name /
domain UUID: an OVN transaction that timed out, or a libvirt call whose answer was lost, may still
have made it) and
:class:`CreateError` is raised naming the failed step and why (and anything an undo could not
remove). Bad input fails in ``validate``/``placement`` and creates nothing. One audit record
("vm.create") is written either way; it never holds the password or its hash.

Naming: the libvirt domain is named after the VM (VM names are unique across the cluster, checked
in ``placement``); its volumes are ``NAME.qcow2`` and ``NAME-seed.iso`` in the template's pool; the
serial log is ``/var/log/libvirt/qemu/NAME-serial.log`` on the host. Anti-affinity groups are kept
in a second metadata element ``<vdp:placement group="…"/>`` (namespace :data:`PLACEMENT_NS`).

Reservation: between placement and the end of ``start`` the VM's vCPUs/RAM are claimed in the
in-process ledger (see :class:`backends.scheduler.ReservationLedger`), so concurrent creates in
this process cannot oversubscribe a host. Across processes and operators, the chosen host's
placement lock (:mod:`backends.hostlock`, ``flock`` on the hypervisor over SSH) is taken in
``placement``, the host is read again and re-checked under it, and it is held until ``define``
(or the rollback) is done; if the host filled up meanwhile, placement runs again (up to
:data:`PLACEMENT_ROUNDS` rounds).

``hook(phase, step, ctx)`` (tests only) is called "before" and "after" each step; raising from it
is a real failure between steps and triggers the same rollback.

Where the parts live: the input rules (``check_*``, :func:`growth_limits`, the wizard's
``check_form``) in :mod:`provision_checks`; what placement reads of the hosts (snapshots, quota and
name checks, the scheduler's request) in :mod:`placement`. This module keeps the request, result
and context types, the domain XML and the create itself. Why it is still ~500 lines: the eight
steps of :func:`create_vm` are closures over one context and one undo sequence (each step
registers its undo as it goes), and splitting them across modules would scatter that one
rollback story.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from ...backends import domain_xml as dx
from ...backends import domains, hostlock, owner_marks, scheduler, storage
from ...backends.domain_facts import PLACEMENT_NS, PLACEMENT_PREFIX
from ...backends.ovn import ports as ovn_ports
from ...backends.scheduler import HostFacts, Placement
from ...backends.seed import build_nocloud_iso
from ...config.inventory import Inventory, TemplateConfig
from .. import cloudinit
from ..errors import ExitCode, HostError, ValidationError, VirtdeckError
from . import placement
from . import verb as verb_frame
from .provision_checks import (check_disk, check_group, check_host, check_name, check_networks, check_ram,
                               check_ips, check_template, check_tenant, check_vcpus, growth_limits)

STEPS: tuple[tuple[str, str], ...] = (
    ("validate", "Validate the request"),
    ("placement", "Choose a host"),
    ("disk", "Disk overlay on the template"),
    ("seed", "cloud-init seed volume"),
    ("ports", "OVN logical switch ports"),
    ("domain", "Domain XML"),
    ("define", "Define the domain"),
    ("start", "Start the domain"),
)
STEP_NAMES = tuple(s for s, _ in STEPS)
STEP_LABELS = dict(STEPS)

PLACEMENT_ROUNDS = 3   # placements tried when the chosen host filled up under another console
LOCK_WAIT = 60.0       # seconds to wait for a host's placement lock
PORT_UNDO_WAIT = 45.0  # seconds a ports undo waits for a silent NB before it gives up (and says so)

Progress = Callable[[str, str, str], None]
Hook = Callable[[str, str, "CreateContext"], None]


# --------------------------------------------------------------------------- request / result

@dataclass(frozen=True)
class VmRequest:
    """What the operator asked for. RAM in MiB, disk in GiB, whole vCPUs.

    ``password_hash``: a SHA-512 crypt hash (hash clear text with
    :func:`console.cloudinit.hash_password` the moment it is typed). ``user``: None = the
    template's default user. ``user_data``: extra #cloud-config YAML text to merge. ``host``:
    pinned hypervisor or None for automatic placement. ``ips``: per network, an address, "dynamic"
    or None (pick a free one). ``max_vcpus``/``max_ram_mib``: live-growth ceilings (None =
    :func:`growth_limits`' rule; equal to the size = no live growth). ``macs``/``instance_id``: fixed by the wizard's preview so the seed
    created is the seed shown; None = generated.
    """

    name: str
    tenant: str
    template: str
    vcpus: int
    ram_mib: int
    disk_gib: int
    networks: tuple[str, ...]
    ssh_keys: tuple[str, ...]
    password_hash: str
    user: str | None = None
    user_data: str = ""
    host: str | None = None
    weigher: str = "spread"
    anti_affinity: str | None = None
    allow_emulation: bool = False  # a host that only emulates the template's arch (TCG) may be chosen
    ips: tuple[str | None, ...] = ()
    macs: tuple[str, ...] = ()
    instance_id: str | None = None
    start: bool = True
    max_vcpus: int | None = None
    max_ram_mib: int | None = None


@dataclass(frozen=True)
class CreateResult:
    """A created VM: where it runs, its ports, volumes, seed id, the placement table and how long
    each step took (seconds). ``submit_to_running`` is from the call to the domain running."""

    name: str
    tenant: str
    host: str
    uuid: str
    template: str
    instance_id: str
    disk_volume: str
    seed_volume: str
    ports: tuple[ovn_ports.PortInfo, ...]
    placement: Placement
    timings: dict[str, float]
    submit_to_running: float | None
    serial_log: str
    running: bool

    def to_dict(self) -> dict:
        """JSON-ready dict (for ``--json``)."""
        return {
            "name": self.name, "tenant": self.tenant, "host": self.host, "uuid": self.uuid,
            "template": self.template, "instance_id": self.instance_id,
            "disk_volume": self.disk_volume, "seed_volume": self.seed_volume,
            "ports": [asdict(p) for p in self.ports], "placement": self.placement.as_rows(),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "submit_to_running_s": None if self.submit_to_running is None else round(self.submit_to_running, 3),
            "serial_log": self.serial_log, "running": self.running,
        }


class CreateError(VirtdeckError):
    """A create failed at ``step``; everything created before was removed (``left`` lists what an
    undo could not remove, normally empty)."""

    exit_code = ExitCode.FAILED

    def __init__(self, name: str, step: str, reason: str, left: list[str] | None = None):
        self.step, self.reason, self.left = step, reason, list(left or [])
        tail = ("; could not remove: " + "; ".join(self.left)) if self.left else "; nothing was left behind"
        super().__init__(f"vm create {name} failed at step '{step}' ({STEP_LABELS.get(step, step)}): {reason}{tail}")


@dataclass
class CreateContext:
    """What a create has learnt and made so far (visible to hooks and the undo)."""

    request: VmRequest
    template: TemplateConfig | None = None
    user: str = ""
    networks: list = field(default_factory=list)
    seed: cloudinit.Seed | None = None
    macs: list[str] = field(default_factory=list)
    placement: Placement | None = None
    claim: scheduler.Claim | None = None
    host: str | None = None
    host_facts: HostFacts | None = None
    lock: hostlock.HostLock | None = None
    lock_rounds: int = 0
    disk: storage.VolumeInfo | None = None
    seed_volume: storage.VolumeInfo | None = None
    ports: list[ovn_ports.PortInfo] = field(default_factory=list)
    domain_uuid: str = ""
    xml: str = ""
    domain: Any = None
    serial_log: str = ""


# --------------------------------------------------------------------------- validate

def _validate(inventory: Inventory, req: VmRequest, ctx: CreateContext, nb) -> None:
    check_name(req.name)
    check_tenant(inventory, req.tenant)
    ctx.template = check_template(inventory, req.template)
    check_vcpus(req.vcpus)
    check_ram(req.ram_mib)
    check_disk(req.disk_gib)
    nets = check_networks(req.networks)
    check_host(inventory, req.host)
    check_group(req.anti_affinity)
    growth_limits(req.vcpus, req.ram_mib, 0, 0, req.max_vcpus, req.max_ram_mib)
    if req.weigher not in scheduler.WEIGHERS:
        raise ValidationError("weigher", f"one of {', '.join(scheduler.WEIGHERS)}")
    if req.ips and len(req.ips) != len(nets):
        raise ValidationError("ips", "give one address (or nothing) per network")
    if req.macs and len(req.macs) != len(nets):
        raise ValidationError("macs", "one MAC per network")
    keys = [cloudinit.validate_ssh_key(k) for k in req.ssh_keys]
    if not keys:
        raise ValidationError("ssh-keys", "at least one SSH public key is needed to log in")
    ctx.user = cloudinit.validate_username(req.user or ctx.template.default_user)
    cloudinit.validate_password_hash(req.password_hash, "password")
    extra = cloudinit.parse_extra_user_data(req.user_data)
    ctx.macs = [cloudinit.validate_mac(m) for m in req.macs] or [ovn_ports.new_mac(set()) for _ in nets]
    if len(set(ctx.macs)) != len(ctx.macs):
        raise ValidationError("macs", "two NICs with one MAC")
    ctx.seed = cloudinit.build_seed(req.name, ctx.user, req.password_hash, keys, ctx.macs, extra,
                                    req.instance_id)
    try:
        ctx.networks = [ovn_ports.find_network(nb, n, req.tenant) for n in nets]
    except ValidationError:
        raise
    except VirtdeckError as exc:
        raise HostError(f"OVN northbound: {exc}") from None
    check_ips(req.ips, ctx.networks)  # before any step: a bad --ip creates nothing, dry run included

@dataclass(frozen=True)
class Preview:
    """What a create would do: the placement table, the seed documents (password only as its
    hash) and the MACs they name. ``request`` is the input with ``macs`` and ``instance_id``
    fixed, so creating it makes exactly the seed shown. ``limits``: the live-growth ceilings
    ``(max vCPUs, max RAM MiB)`` the domain would get on the chosen host (:func:`growth_limits`
    with its cores/RAM), None when no host can take the VM."""

    placement: Placement
    seed: cloudinit.Seed
    macs: tuple[str, ...]
    request: VmRequest
    limits: tuple[int, int] | None = None


def plan(session, inventory: Inventory, request: VmRequest) -> Preview:
    """Preview for the wizard / ``--dry-run``: validate everything and compute placement,
    creating nothing and claiming nothing. Raises ValidationError / HostError."""
    ctx = CreateContext(request)
    _validate(inventory, request, ctx, session.nb())
    snaps = placement.gather(session, inventory, ctx.template)
    placement.check_cluster(inventory, request, snaps)
    where = scheduler.place([s.facts for s in snaps], placement.placement_request(request, ctx, snaps),
                            cpu_ratio=inventory.allocation.cpu_ratio,
                            ram_ratio=inventory.allocation.ram_ratio,
                            weigher=request.weigher,
                            claims=scheduler.LEDGER.held())
    fixed = replace(request, macs=tuple(ctx.macs), instance_id=ctx.seed.instance_id)
    chosen = next((s.facts for s in snaps if s.facts.name == where.host), None)
    limits = None if chosen is None else growth_limits(
        request.vcpus, request.ram_mib, chosen.cores, chosen.ram_total_mib, request.max_vcpus, request.max_ram_mib)
    return Preview(where, ctx.seed, tuple(ctx.macs), fixed, limits)


# --------------------------------------------------------------------------- the create

def _placement_metadata(group: str) -> ET.Element:
    ET.register_namespace(PLACEMENT_PREFIX, PLACEMENT_NS)
    return ET.Element(f"{{{PLACEMENT_NS}}}placement", group=group)


def build_domain_xml(inventory: Inventory, ctx: CreateContext, conn) -> str:
    """The domain XML for ``ctx`` on ``ctx.host`` (paths looked up in the host's pool)."""
    req, tpl = ctx.request, ctx.template
    host = inventory.host(ctx.host)

    def path(vol):
        if not vol:
            return None
        v = storage.find_volume(conn, host.name, tpl.pool, vol)
        if v is None:
            raise HostError(f"{host.name}: template volume {tpl.pool}/{vol} is not there")
        return storage.volume_info(v).path

    hf = ctx.host_facts
    max_v, max_m = growth_limits(req.vcpus, req.ram_mib, hf.cores if hf else 0,
                                 hf.ram_total_mib if hf else 0, req.max_vcpus, req.max_ram_mib)
    spec = dx.DomainSpec(
        name=req.name, uuid=ctx.domain_uuid, vcpus=req.vcpus, memory_mib=req.ram_mib,
        max_vcpus=max_v, max_memory_mib=max_m,
        disk_path=ctx.disk.path, seed_path=ctx.seed_volume.path, domain_type=host.domain_type,
        arch=tpl.arch, kernel=path(tpl.kernel), initrd=path(tpl.initrd),
        cmdline=tpl.cmdline if tpl.kernel else None, boot=tpl.boot_mode, secure_boot=tpl.secure_boot,
        nics=tuple(dx.NicSpec(mac=p.mac, interfaceid=p.name, mtu=n.mtu or None)
                   for p, n in zip(ctx.ports, ctx.networks)),
        serial_log=ctx.serial_log,
        metadata=dx.InstanceMeta(tenant=req.tenant, template=tpl.name, seed=ctx.seed.instance_id,
                                 networks=tuple(n.switch for n in ctx.networks)),
    )
    xml = dx.domain_xml(spec)
    if req.anti_affinity:
        root = ET.fromstring(xml)
        meta = root.find("metadata")
        meta.append(_placement_metadata(req.anti_affinity))
        ET.indent(root)
        xml = ET.tostring(root, encoding="unicode")
    return xml


def _noop(*_a) -> None:
    return None


def create_vm(session, inventory: Inventory, request: VmRequest, progress: Progress | None = None,
              *, hook: Hook | None = None, ledger: scheduler.ReservationLedger | None = None) -> CreateResult:
    """Create (and start) the VM ``request`` describes; see the module doc for the steps.

    ``session``: a :class:`backends.session.Session` on ``inventory``. ``progress(step, status,
    detail)`` is called from this thread. Blocking: run it in a worker thread under a UI.
    Returns :class:`CreateResult`. Raises ReadOnlyError (under --readonly, before anything),
    :class:`CreateError` (a step failed; everything undone), never a bare libvirt/OVN error.
    """
    submitted = time.monotonic()
    progress = progress or _noop
    hook = hook or _noop
    ledger = ledger or scheduler.LEDGER
    ctx = CreateContext(request)
    undo = verb_frame.Undo(progress, explain=_reason)
    target = f"vm {request.tenant}/{request.name}"
    pool_name = lambda: ctx.template.pool  # noqa: E731
    conn = None
    mark: dict = {}   # "held": the owner mark (backends.owner_marks) while the create runs

    def step_validate():
        _validate(inventory, request, ctx, session.nb())
        return f"{request.name}: {request.vcpus} vCPU, {request.ram_mib} MiB, {request.disk_gib} GiB, " \
               f"template {ctx.template.name}, networks {', '.join(n.name for n in ctx.networks)}"

    def step_placement():
        # Optimistic placement on facts read without a lock, then, under the chosen host's own
        # placement lock (backends.hostlock: flock on the hypervisor, shared by every console),
        # the host is read again and re-checked; the lock is held until the domain is defined.
        # A host that filled up meanwhile is dropped and placement runs again (max 3 rounds).
        first = None
        for attempt in range(1, PLACEMENT_ROUNDS + 1):
            facts_time = ledger.now()
            snaps = placement.gather(session, inventory, ctx.template)
            placement.check_cluster(inventory, request, snaps)
            preq = placement.placement_request(request, ctx, snaps)
            ctx.placement, ctx.claim = ledger.place_and_claim(
                [s.facts for s in snaps], preq, facts_time=facts_time,
                cpu_ratio=inventory.allocation.cpu_ratio, ram_ratio=inventory.allocation.ram_ratio,
                weigher=request.weigher)
            if ctx.placement.host is None:
                why = "; ".join(f"{v.host}: {v.summary}" for v in ctx.placement.verdicts) \
                    if ctx.placement.verdicts else "no hypervisors in the inventory"
                if first is not None:
                    why += f" (another console took {first} meanwhile)"
                raise ValidationError("host", "no host can take this VM: " + why)
            undo.on_undo("placement", f"release the claim on {ctx.placement.host}",
                         lambda c=ctx.claim: ledger.drop(c))
            host = ctx.placement.host
            ctx.lock = hostlock.acquire(session, host, wait=LOCK_WAIT)
            undo.on_undo("placement", f"release the placement lock on {host}", ctx.lock.release)
            # Under the lock: this host as it is now (another process may have defined meanwhile),
            # with the other in-process claims but not our own.
            facts_time = ledger.now()
            snap = placement.host_snapshot(session, inventory.host(host), ctx.template)
            snaps = [snap if s.facts.name == host else s for s in snaps]
            placement.check_cluster(inventory, request, snaps)
            ledger.drop(ctx.claim)
            recheck, ctx.claim = ledger.place_and_claim(
                [snap.facts], placement.placement_request(request, ctx, snaps), facts_time=facts_time,
                cpu_ratio=inventory.allocation.cpu_ratio, ram_ratio=inventory.allocation.ram_ratio,
                weigher=request.weigher)
            undo.on_undo("placement", f"release the claim on {host}", lambda c=ctx.claim: ledger.drop(c))
            if recheck.host == host:
                ctx.host = host
                ctx.host_facts = snap.facts
                ctx.lock_rounds = attempt
                break
            ctx.lock.release()
            first = first or host
            progress("placement", "start", f"{host} filled up meanwhile ({recheck.verdict(host).summary}); "
                                           "placing again")
        else:
            raise ValidationError("host", f"hosts kept filling up under this create ({PLACEMENT_ROUNDS} "
                                          "rounds); try again")
        waited = f", waited {ctx.lock.waited:.1f} s for its placement lock" if ctx.lock.waited > 0.5 else ""
        return f"{ctx.host} ({ctx.placement.verdict(ctx.host).summary}{waited})"

    def step_disk():
        nonlocal conn
        conn = session.libvirt(ctx.host)
        name = f"{request.name}.qcow2"
        # The owner mark names both volumes BEFORE they exist and is held while the create
        # runs: a create killed from here on leaves volumes reconcile can claim (drift check).
        mark["held"] = owner_marks.claim(session, ctx.host, owner_marks.new_mark(
            request.name, request.tenant, pool_name(), (name, f"{request.name}-seed.iso")))
        undo.on_undo("disk", f"drop the owner mark of {request.name} on {ctx.host}",
                     lambda: _drop_mark(mark["held"], conn, pool_name()))
        ctx.disk = storage.create_overlay(conn, ctx.host, pool_name(), name, ctx.template.volume,
                                          request.disk_gib)
        undo.on_undo("disk", f"delete volume {pool_name()}/{name}",
                     lambda: storage.delete_volume(conn, ctx.host, pool_name(), name))
        return f"{ctx.host}:{ctx.disk.path} ({request.disk_gib} GiB on {ctx.template.volume})"

    def step_seed():
        name = f"{request.name}-seed.iso"
        iso = build_nocloud_iso(ctx.seed.meta_data, ctx.seed.user_data, ctx.seed.network_config)
        ctx.seed_volume = storage.upload_volume(conn, ctx.host, pool_name(), name, iso, fmt="raw")
        undo.on_undo("seed", f"delete volume {pool_name()}/{name}",
                     lambda: storage.delete_volume(conn, ctx.host, pool_name(), name))
        return f"{ctx.seed_volume.path} ({len(iso)} bytes, instance-id {ctx.seed.instance_id})"

    def step_ports():
        nb = session.nb()
        for i, net in enumerate(ctx.networks):
            ip = request.ips[i] if request.ips else None
            name = str(uuid.uuid4())
            # Undo first: a transaction that timed out may still commit later (DESIGN.md); the
            # delete is if_exists, and the name is ours alone.
            made: dict = {}
            # Settled: the undo waits (bounded) for the NB to answer and re-checks, since a
            # create that timed out while the NB was frozen commits when it resumes.
            undo.on_undo("ports", f"delete LSP {name} ({request.name}-nic{i})",
                         lambda n=name, m=made: ovn_ports.delete_port_settled(
                             nb, n, drop_empty_sg=m.get("sg"), wait=PORT_UNDO_WAIT))
            port = ovn_ports.create_vm_port(nb, net, tenant=request.tenant, vm=request.name, nic=i,
                                            ip=ip, mac=ctx.macs[i], name=name)
            made["sg"] = port.created_sg
            ctx.ports.append(port)
        return ", ".join(f"{p.label} {p.mac} {p.ip or 'dynamic'} on {p.network} (LSP {p.name})" for p in ctx.ports)

    def step_domain():
        ctx.domain_uuid = str(uuid.uuid4())
        ctx.serial_log = f"/var/log/libvirt/qemu/{request.name}-serial.log"
        try:
            ctx.xml = build_domain_xml(inventory, ctx, conn)
        except ValueError as exc:
            raise ValidationError("domain", str(exc)) from None
        made = domains.parse(ctx.xml)
        return (f"uuid {ctx.domain_uuid}, type {inventory.host(ctx.host).domain_type}, live growth up to "
                f"{made.max_vcpus} vCPU / {made.max_memory_mib} MiB")

    def step_define():
        # Undo first, by OUR uuid (a same-named domain someone else defined is never touched): if
        # the connection drops after libvirtd defined it, it still goes.
        undo.on_undo("define", f"undefine domain {request.name} on {ctx.host}",
                     lambda: domains.remove(conn, ctx.host, ctx.domain_uuid, request.name))
        ctx.domain = domains.define(conn, ctx.host, ctx.xml)
        # Defined: every console now counts it, so the host's placement lock can go.
        ctx.lock.release()
        return f"domain {request.name} defined on {ctx.host}"

    def step_start():
        if not request.start:
            return "not started (--no-start)"
        domains.start(ctx.domain, ctx.host)
        undo.on_undo("start", f"stop domain {request.name}", lambda: domains.destroy(ctx.domain, ctx.host))
        return f"running on {ctx.host}"

    bodies = dict(validate=step_validate, placement=step_placement, disk=step_disk, seed=step_seed,
                  ports=step_ports, domain=step_domain, define=step_define, start=step_start)

    def run_create(run: verb_frame.VerbRun) -> CreateResult:
        running_at = None
        try:
            undo.run_steps(((s, STEP_LABELS[s], bodies[s]) for s in STEP_NAMES),
                           hook=lambda phase, step: hook(phase, step, ctx))
            if request.start:
                running_at = time.monotonic() - submitted
        except BaseException as exc:
            current = undo.current or "validate"
            reason = _reason(exc)
            left = undo.rollback()
            ledger.drop(ctx.claim)
            run.failure = f"failed: {current}: {reason}"
            run.note(**_audit_details(request, ctx, left=left))
            if isinstance(exc, KeyboardInterrupt):
                raise
            err = CreateError(request.name, current, reason, left)
            if isinstance(exc, ValidationError):
                err.field = exc.field  # the wizard shows it beside the field
            if isinstance(exc, VirtdeckError) and current in ("validate", "placement"):
                err.exit_code = exc.exit_code  # nothing was made: the cause's own code (2 input, 5 host)
            raise err from None
        ledger.release(ctx.claim)
        if mark:
            mark["held"].release()  # the domain owns the volumes now; the mark stays
        if ctx.lock is not None:
            ctx.lock.release()
        run.note(**_audit_details(request, ctx))
        return CreateResult(
            name=request.name, tenant=request.tenant, host=ctx.host, uuid=ctx.domain_uuid,
            template=ctx.template.name, instance_id=ctx.seed.instance_id,
            disk_volume=ctx.disk.name, seed_volume=ctx.seed_volume.name, ports=tuple(ctx.ports),
            placement=ctx.placement, timings=dict(undo.timings), submit_to_running=running_at,
            serial_log=ctx.serial_log, running=request.start)

    # One audit record "vm.create" (refusals under --readonly included), target "vm TENANT/NAME".
    return verb_frame.run("vm.create", target, run_create)


def _drop_mark(held, conn, pool: str) -> None:
    """Undo of the owner mark: release it, and remove it when the undo removed every volume
    it names (else it stays, for reconcile)."""
    try:
        if conn is None or not any(storage.find_volume(conn, held.host, pool, v)
                                   for v in held.mark.volumes):
            held.drop()
    finally:
        held.release()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, VirtdeckError):
        return str(exc)
    if domains.is_libvirt_error(exc):
        return f"libvirt: {domains.message(exc)}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _audit_details(req: VmRequest, ctx: CreateContext, left: list[str] | None = None) -> dict:
    d: dict[str, Any] = {
        "host": ctx.host, "template": req.template, "vcpus": req.vcpus, "ram_mib": req.ram_mib,
        "disk_gib": req.disk_gib, "networks": list(req.networks), "user": ctx.user or req.user,
        "ssh_keys": len(req.ssh_keys), "uuid": ctx.domain_uuid or None,
        "instance_id": ctx.seed.instance_id if ctx.seed else None,
        "ports": [p.name for p in ctx.ports], "pinned": req.host, "weigher": req.weigher,
    }
    if left:
        d["left_behind"] = left
    return d
