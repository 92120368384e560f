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
"""

from __future__ import annotations

import concurrent.futures
import math
import re
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from ...backends import domain_xml as dx
from ...backends import domains, hostlock, scheduler, storage
from ...backends.domains import PLACEMENT_NS, PLACEMENT_PREFIX
from ...backends.ovn import ports as ovn_ports
from ...backends.scheduler import HostFacts, Placement, PlacementRequest
from ...backends.seed import build_nocloud_iso
from ...config.inventory import HostConfig, Inventory, TemplateConfig
from .. import cloudinit
from ..errors import ConfigError, HostError, ValidationError, VirtdeckError
from . import verb as verb_frame

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


MAX_VCPUS = 64
MIN_RAM_MIB, MAX_RAM_MIB = 128, 1024 * 1024
MAX_DISK_GIB = 16 * 1024
MAX_NETWORKS = 8
# Live-growth ceilings set at create (see growth_limits): vCPUs up to GROW_VCPUS × the size (never
# more than the host's cores), RAM up to GROW_RAM × the size (never more than the host's RAM).
GROW_VCPUS = 4
GROW_RAM = 2
PLACEMENT_ROUNDS = 3   # placements tried when the chosen host filled up under another console
LOCK_WAIT = 60.0       # seconds to wait for a host's placement lock
GROUP_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

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

    exit_code = 7

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


# --------------------------------------------------------------------------- field checks

def _int(value, field: str) -> int:
    if isinstance(value, bool):
        raise ValidationError(field, "must be a whole number")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValidationError(field, "must be a whole number") from None


def check_name(value: str) -> str:
    """VM name = hostname: lowercase letters, digits, '-', 1-63."""
    return cloudinit.validate_hostname(value, "name")


def check_vcpus(value) -> int:
    """Whole vCPUs, 1..64."""
    n = _int(value, "vcpus")
    if not 1 <= n <= MAX_VCPUS:
        raise ValidationError("vcpus", f"1 to {MAX_VCPUS} whole vCPUs")
    return n


def check_ram(value) -> int:
    """RAM in MiB, 128..1048576."""
    n = _int(value, "ram")
    if not MIN_RAM_MIB <= n <= MAX_RAM_MIB:
        raise ValidationError("ram", f"{MIN_RAM_MIB} to {MAX_RAM_MIB} MiB")
    return n


def check_disk(value, min_gib: int = 1) -> int:
    """Disk in GiB, at least the template's size (``min_gib``)."""
    n = _int(value, "disk")
    if n < min_gib:
        raise ValidationError("disk", f"at least {min_gib} GiB (the template's size)")
    if n > MAX_DISK_GIB:
        raise ValidationError("disk", f"at most {MAX_DISK_GIB} GiB")
    return n


def check_tenant(inventory: Inventory, value: str) -> str:
    """A tenant name (lowercase, digits, '-'); any name works, inventory tenants carry quotas."""
    return cloudinit.validate_hostname(value, "tenant")


def check_template(inventory: Inventory, value: str) -> TemplateConfig:
    """The template of that name in the inventory."""
    try:
        return inventory.template(value)
    except ConfigError as exc:
        raise ValidationError("template", str(exc)) from None


def check_networks(names) -> tuple[str, ...]:
    """One to eight network names, no repeats (names only; existence is checked in OVN)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    names = tuple(n for n in names if n)
    if not names:
        raise ValidationError("networks", "pick at least one network")
    if len(names) > MAX_NETWORKS:
        raise ValidationError("networks", f"at most {MAX_NETWORKS} networks")
    if len(set(names)) != len(names):
        raise ValidationError("networks", "a network is listed twice")
    return names


def check_host(inventory: Inventory, value: str | None) -> str | None:
    """None/'' = automatic; else a hypervisor in the inventory."""
    if not value:
        return None
    names = [h.name for h in inventory.hypervisors]
    if value not in names:
        raise ValidationError("host", f"no hypervisor {value!r} (hypervisors: {', '.join(names) or 'none'})")
    return value


def check_max_vcpus(value, vcpus: int | None = None) -> int | None:
    """Live-growth ceiling in whole vCPUs: None/'' = automatic (:func:`growth_limits`' rule);
    else ``vcpus`` (the size; None = unknown, 1) to MAX_VCPUS. Field ``max-vcpus``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    n = _int(value, "max-vcpus")
    low = vcpus or 1
    if not low <= n <= MAX_VCPUS:
        raise ValidationError("max-vcpus", f"{low} (the vCPUs) to {MAX_VCPUS} whole vCPUs")
    return n


def check_max_ram(value, ram_mib: int | None = None) -> int | None:
    """Live-growth ceiling in whole MiB: None/'' = automatic (:func:`growth_limits`' rule);
    else ``ram_mib`` (the size; None = unknown, MIN_RAM_MIB) to MAX_RAM_MIB. Any whole MiB
    works (the automatic rule rounds to 128 MiB; libvirt/QEMU need no more). Field ``max-ram``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    n = _int(value, "max-ram")
    low = ram_mib or MIN_RAM_MIB
    if not low <= n <= MAX_RAM_MIB:
        raise ValidationError("max-ram", f"{low} (the RAM) to {MAX_RAM_MIB} MiB")
    return n


def growth_limits(vcpus: int, ram_mib: int, host_cores: int, host_ram_mib: int,
                  max_vcpus: int | None = None, max_ram_mib: int | None = None) -> tuple[int, int]:
    """The live-growth ceilings a new domain gets: ``(max vCPUs, max RAM MiB)``.

    Rule (when not given): vCPUs ``min(GROW_VCPUS × vcpus, host cores, MAX_VCPUS)``, RAM
    ``min(GROW_RAM × ram, host RAM)`` rounded down to a whole 128 MiB — never below the size
    itself. A running VM can be resized live (hot-plugged vCPUs, balloon) up to these; beyond
    them needs a restart (``vm resize`` raises the maximum in the config and says so). The
    guest kernel sizes its page tables for the RAM ceiling (~1.6 % of it), which is why RAM
    grows by 2× and not more. Given values are checked by :func:`check_max_vcpus` /
    :func:`check_max_ram` (ValidationError).
    ``host_cores``/``host_ram_mib``: libvirt ``getInfo()`` of the chosen host (0 = unknown).
    """
    max_vcpus = check_max_vcpus(max_vcpus, vcpus)
    max_ram_mib = check_max_ram(max_ram_mib, ram_mib)
    if max_vcpus is None:
        cap = min(GROW_VCPUS * vcpus, MAX_VCPUS)
        if host_cores > 0:
            cap = min(cap, host_cores)
        max_vcpus = max(vcpus, cap)
    if max_ram_mib is None:
        cap = GROW_RAM * ram_mib
        if host_ram_mib > 0:
            cap = min(cap, host_ram_mib)
        max_ram_mib = max(ram_mib, cap // 128 * 128)
    return max_vcpus, max_ram_mib


def check_group(value: str | None) -> str | None:
    """Anti-affinity group name (lowercase, digits, '-') or None."""
    if not value:
        return None
    if not GROUP_RE.match(value):
        raise ValidationError("anti-affinity", "lowercase letters, digits and '-'")
    return value


FORM_FIELDS = ("name", "tenant", "template", "vcpus", "ram", "max_vcpus", "max_ram", "disk", "host",
               "networks", "anti_affinity", "ssh_keys", "user", "password", "user_data")


def check_form(inventory: Inventory, form: dict, *, networks: dict[str, list[str]] | None = None,
               vm_names: set[str] | None = None, password_hash: str | None = None) -> dict[str, str]:
    """Check the wizard's fields as typed (strings); returns {field: reason} for the bad ones.

    Pure and cheap (no I/O, no hashing): the wizard calls it on every keystroke. ``networks``:
    {tenant: [network names]} when known (else names are checked on create); ``vm_names``: VM
    names already in the cluster when known; ``password_hash``: set once the password was hashed
    (the clear text is then gone from the form). Fields: :data:`FORM_FIELDS`.
    """
    errors: dict[str, str] = {}

    def run(field, fn):
        try:
            return fn()
        except ValidationError as exc:
            errors[field] = exc.reason
            return None

    name = form.get("name", "").strip()
    if run("name", lambda: check_name(name)) and vm_names and name in vm_names:
        errors["name"] = f"a VM named {name!r} exists already"
    tenant = form.get("tenant", "").strip()
    run("tenant", lambda: check_tenant(inventory, tenant))
    tpl = run("template", lambda: check_template(inventory, form.get("template") or ""))
    vcpus = run("vcpus", lambda: check_vcpus(form.get("vcpus", "")))
    ram = run("ram", lambda: check_ram(form.get("ram", "")))
    run("max_vcpus", lambda: check_max_vcpus(form.get("max_vcpus", ""), vcpus))  # '' = automatic
    run("max_ram", lambda: check_max_ram(form.get("max_ram", ""), ram))
    run("disk", lambda: check_disk(form.get("disk", "")))
    run("host", lambda: check_host(inventory, form.get("host") or None))
    nets = run("networks", lambda: check_networks(form.get("networks", "")))
    if nets and networks is not None and "tenant" not in errors:
        known = networks.get(tenant, [])
        missing = [n for n in nets if n not in known]
        if missing:
            errors["networks"] = (f"tenant {tenant} has no network {', '.join(missing)} "
                                  f"(networks: {', '.join(known) or 'none'})")
    run("anti_affinity", lambda: check_group((form.get("anti_affinity") or "").strip() or None))
    run("ssh_keys", lambda: cloudinit.parse_ssh_keys(form.get("ssh_keys", ""), "ssh-keys"))
    user = form.get("user", "").strip() or (tpl.default_user if tpl else "")
    run("user", lambda: cloudinit.validate_username(user))
    clear = form.get("password", "")
    if not password_hash:
        if not clear:
            errors["password"] = "required (stored only as a SHA-512 hash)"
        elif len(clear) < 8:
            errors["password"] = "use at least 8 characters"
    run("user_data", lambda: cloudinit.parse_extra_user_data(form.get("user_data", "")))
    return errors


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


# --------------------------------------------------------------------------- host facts

@dataclass(frozen=True)
class HostSnapshot:
    """One hypervisor's facts for placement plus its domains (persistent facts, as
    :func:`backends.domains.host_capacity` reads them: placement counts their ``vcpus`` and
    ``memory_mib``) and the template's virtual size (bytes, None when the template is not there)."""

    facts: HostFacts
    domains: tuple[domains.DomainFacts, ...] = ()
    template_bytes: int | None = None


def bridge_mappings(session, host: str) -> frozenset[str]:
    """Physnets of ``host``'s ``ovn-bridge-mappings`` (OVS external_ids, read over SSH)."""
    res = session.run(host, ["ovs-vsctl", "--if-exists", "get", "Open_vSwitch", ".",
                             "external_ids:ovn-bridge-mappings"], timeout=15)
    if res.rc != 0:
        return frozenset()
    text = res.stdout.strip().strip('"')
    return frozenset(item.split(":", 1)[0].strip() for item in text.split(",") if ":" in item)


def host_snapshot(session, host: HostConfig, template: TemplateConfig | None) -> HostSnapshot:
    """Read one hypervisor: getInfo (arch, cores, RAM MiB), getFreeMemory (bytes → MiB), every
    domain's XML (vCPUs, RAM, tenant, group), bridge mappings, the template's volumes. An
    unreachable host comes back with ``reachable=False`` and the reason."""
    if not host.enabled:
        return HostSnapshot(HostFacts(host.name, enabled=False, disabled_reason=host.disabled_reason))
    try:
        conn = session.libvirt(host.name)
        try:
            cap = domains.host_capacity(conn, host.name)
        except HostError as exc:  # "<host>: <libvirt's message>"; the verdict names the host
            raise HostError(_strip_host(str(exc), host.name)) from None
        physnets = bridge_mappings(session, host.name)
        refusals: list[str] = []
        tbytes = None
        if template is not None:
            for vol in (template.volume, template.kernel, template.initrd):
                if not vol:
                    continue
                v = storage.find_volume(conn, host.name, template.pool, vol)
                if v is None:
                    refusals.append(f"template: volume {vol} is not in pool {template.pool} "
                                    f"(`virtdeck template add` uploads it)")
                elif vol == template.volume:
                    tbytes = storage.volume_info(v).capacity_bytes
    except HostError as exc:
        return HostSnapshot(HostFacts(host.name, reachable=False, error=str(exc)))
    facts = HostFacts(
        name=host.name, enabled=True, reachable=True, arch=cap.arch, cores=cap.cores,
        ram_total_mib=cap.ram_total_mib, ram_free_mib=cap.ram_free_mib,
        alloc_vcpus=cap.alloc_vcpus, alloc_ram_mib=cap.alloc_ram_mib,
        physnets=physnets, refusals=tuple(refusals))
    return HostSnapshot(facts, cap.domains, tbytes)


def _strip_host(msg: str, host: str) -> str:
    return msg[len(host) + 2:] if msg.startswith(f"{host}: ") else msg


def gather(session, inventory: Inventory, template: TemplateConfig | None) -> list[HostSnapshot]:
    """:func:`host_snapshot` of every hypervisor, in parallel, in inventory order."""
    hosts = list(inventory.hypervisors)
    if not hosts:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return list(pool.map(lambda h: host_snapshot(session, h, template), hosts))


def _placement_request(req: VmRequest, ctx: CreateContext, snaps: list[HostSnapshot]) -> PlacementRequest:
    group_hosts = frozenset(s.facts.name for s in snaps
                            if req.anti_affinity and any(d.group == req.anti_affinity for d in s.domains))
    return PlacementRequest(
        vcpus=req.vcpus, ram_mib=req.ram_mib, arch=ctx.template.arch,
        physnets=frozenset(n.physnet for n in ctx.networks if n.physnet),
        anti_affinity_group=req.anti_affinity, group_hosts=group_hosts, pinned_host=req.host)


def _check_cluster(inventory: Inventory, req: VmRequest, snaps: list[HostSnapshot]) -> None:
    """Name unique in the cluster, tenant quota, disk ≥ template size."""
    for s in snaps:
        if any(d.name == req.name for d in s.domains):
            raise ValidationError("name", f"a VM named {req.name!r} already exists on {s.facts.name}")
    tenant = next((t for t in inventory.tenants if t.name == req.tenant), None)
    if tenant is not None:
        mine = [d for s in snaps for d in s.domains if d.tenant == req.tenant]
        used_v, used_r = sum(d.vcpus for d in mine), sum(d.memory_mib for d in mine)
        if tenant.max_vms is not None and len(mine) + 1 > tenant.max_vms:
            raise ValidationError("tenant", f"quota: {req.tenant} has {len(mine)} of {tenant.max_vms} VMs")
        if tenant.max_vcpus is not None and used_v + req.vcpus > tenant.max_vcpus:
            raise ValidationError("tenant", f"quota: {req.tenant} uses {used_v} of {tenant.max_vcpus} vCPUs, "
                                            f"{req.vcpus} more do not fit")
        if tenant.max_ram_mib is not None and used_r + req.ram_mib > tenant.max_ram_mib:
            raise ValidationError("tenant", f"quota: {req.tenant} uses {used_r} of {tenant.max_ram_mib} MiB, "
                                            f"{req.ram_mib} more do not fit")
    sizes = [s.template_bytes for s in snaps if s.template_bytes]
    if sizes:
        min_gib = math.ceil(max(sizes) / storage.GiB)
        check_disk(req.disk_gib, min_gib)


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
    snaps = gather(session, inventory, ctx.template)
    _check_cluster(inventory, request, snaps)
    placement = scheduler.place([s.facts for s in snaps], _placement_request(request, ctx, snaps),
                                cpu_ratio=inventory.allocation.cpu_ratio,
                                ram_ratio=inventory.allocation.ram_ratio,
                                weigher=request.weigher,
                                claims=scheduler.LEDGER.held())
    fixed = replace(request, macs=tuple(ctx.macs), instance_id=ctx.seed.instance_id)
    chosen = next((s.facts for s in snaps if s.facts.name == placement.host), None)
    limits = None if chosen is None else growth_limits(
        request.vcpus, request.ram_mib, chosen.cores, chosen.ram_total_mib, request.max_vcpus, request.max_ram_mib)
    return Preview(placement, ctx.seed, tuple(ctx.macs), fixed, limits)


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
        cmdline=tpl.cmdline if tpl.kernel else None,
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
            snaps = gather(session, inventory, ctx.template)
            _check_cluster(inventory, request, snaps)
            preq = _placement_request(request, ctx, snaps)
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
            snap = host_snapshot(session, inventory.host(host), ctx.template)
            snaps = [snap if s.facts.name == host else s for s in snaps]
            _check_cluster(inventory, request, snaps)
            ledger.drop(ctx.claim)
            recheck, ctx.claim = ledger.place_and_claim(
                [snap.facts], _placement_request(request, ctx, snaps), facts_time=facts_time,
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
            undo.on_undo("ports", f"delete LSP {name} ({request.name}-nic{i})",
                         lambda n=name, m=made: ovn_ports.delete_port(nb, n, drop_empty_sg=m.get("sg")))
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
                err.exit_code = exc.exit_code  # nothing was made: the cause's own code (2 input, 4 host)
            raise err from None
        ledger.release(ctx.claim)
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
