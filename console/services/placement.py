"""What placement reads of the hypervisors for `vm create` (and `vm move`'s target check): one
:class:`HostSnapshot` per host (:func:`host_snapshot`, all of them in parallel with :func:`gather`),
the cluster-wide checks on a request (:func:`check_cluster`) and the scheduler's request
(:func:`placement_request`). Capacity comes from :func:`backends.domains.host_capacity`, the one
reader create, resize, move and the live model share.
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from dataclasses import dataclass

from ...backends import domains, host_facts, metrics, storage
from ...backends.scheduler import HostFacts, PlacementRequest
from ...config.inventory import HostConfig, Inventory, MetricsConfig, TemplateConfig
from .. import metrics as metrics_store
from ..errors import AlreadyExists, HostError, QuotaExceeded
from .provision_checks import check_disk


@dataclass(frozen=True)
class HostSnapshot:
    """One hypervisor's facts for placement plus its domains (persistent facts, as
    :func:`backends.domains.host_capacity` reads them: placement counts their ``vcpus`` and
    ``memory_mib``) and the template's virtual size (bytes, None when the template is not there)."""

    facts: HostFacts
    domains: tuple[domains.DomainFacts, ...] = ()
    template_bytes: int | None = None


def bridge_mappings(session, host: str) -> frozenset[str]:
    """Physnets of ``host``'s ``ovn-bridge-mappings`` (OVS external_ids, read over SSH; empty when
    the key is unset). Raises HostError when ``ovs-vsctl`` fails — OVS down, or a non-root operator
    without access to its socket (the message names the socket and the fix,
    :func:`backends.host_facts.ovs_error`) — so no caller mistakes "unreadable" for "maps none"."""
    return frozenset(physnet for physnet, _ in host_facts.bridge_mappings(session, host, timeout=15))


@dataclass(frozen=True)
class MeasuredLoad:
    """A host's measured load for the scheduler: CPU % (mean over ``span_s`` seconds, of the
    figure ``source`` names: "node" or "guests") and RAM in use, %; None = no figure.
    ``origin``: "history" (the console's ring buffers), "sample" (read just now) or "none"."""

    cpu_pct: float | None
    span_s: float
    source: str
    ram_pct: float | None
    origin: str


def measured_load(conn, host: str, cfg: MetricsConfig) -> MeasuredLoad:
    """``host``'s load as the scheduler weighs it. From the console's metrics history
    (:data:`console.metrics.STORE`, the last ``cfg.load_window`` s) when it holds at least two
    intervals of CPU figures for the host; else, when the inventory sets a pressure threshold,
    two samples ``cfg.sample`` s apart (:func:`backends.metrics.sample_host`: one
    ``getAllDomainStats``, node CPU and memory each); else no figure (a CLI create without
    thresholds costs nothing more). A stats error gives no figure (None), never an error:
    placement then weighs allocation only.
    """
    series = "guest_cpu_pct" if cfg.cpu_source == "guests" else "cpu_pct"
    store = metrics_store.STORE
    if store is not None:
        cpu, span = store.mean(host, series, cfg.load_window)
        if cpu is not None and span >= 2 * store.interval:
            fig = store.host(host)
            return MeasuredLoad(cpu, span, cfg.cpu_source, fig.mem_used_pct if fig else None, "history")
    if cfg.cpu_threshold is None and cfg.ram_threshold is None:
        return MeasuredLoad(None, 0.0, cfg.cpu_source, None, "none")
    try:
        local = metrics_store.MetricsStore(interval=cfg.sample, window=cfg.sample * 4)
        local.add(metrics.sample_host(conn, host, pools=False))
        time.sleep(cfg.sample)
        local.add(metrics.sample_host(conn, host, pools=False))
    except Exception:  # noqa: BLE001 - no figure is not a refusal (libvirt errors, a drop)
        return MeasuredLoad(None, 0.0, cfg.cpu_source, None, "sample")
    fig = local.host(host)
    cpu = None if fig is None else (fig.guest_cpu_pct if cfg.cpu_source == "guests" else fig.cpu_pct)
    return MeasuredLoad(cpu, cfg.sample, cfg.cpu_source, fig.mem_used_pct if fig else None, "sample")


def host_snapshot(session, host: HostConfig, template: TemplateConfig | None) -> HostSnapshot:
    """Read one hypervisor: getInfo (arch, cores, RAM MiB), getFreeMemory (bytes → MiB), every
    domain's XML (vCPUs, RAM, tenant, group), bridge mappings, the template's volumes, and its
    measured load (:func:`measured_load`) with the inventory's [metrics] thresholds. An
    unreachable host comes back with ``reachable=False`` and the reason."""
    if not host.enabled:
        return HostSnapshot(HostFacts(host.name, enabled=False, disabled_reason=host.disabled_reason))
    try:
        conn = session.libvirt(host.name)
        try:
            cap = domains.host_capacity(conn, host.name)
        except HostError as exc:  # "<host>: <libvirt's message>"; the verdict names the host
            raise HostError(_strip_host(str(exc), host.name)) from None
        try:
            physnets, physnets_error = bridge_mappings(session, host.name), None
        except HostError as exc:  # SSH answered (libvirt did above): OVS is what failed
            physnets, physnets_error = frozenset(), _strip_host(str(exc), host.name)
        arches = host_facts.guest_arches(conn, host.name)  # which arches, natively or emulated
        refusals: list[str] = []
        if not host.ovn:  # every VM has an OVN network (provision_checks.check_networks)
            refusals.append("ovn: no OVN on this host (inventory ovn = false); VMs need an OVN network")
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
    mcfg = getattr(getattr(session, "inventory", None), "metrics", None) or MetricsConfig()
    load = measured_load(conn, host.name, mcfg)
    facts = HostFacts(
        name=host.name, enabled=True, reachable=True, arch=cap.arch, cores=cap.cores,
        ram_total_mib=cap.ram_total_mib, ram_free_mib=cap.ram_free_mib,
        alloc_vcpus=cap.alloc_vcpus, alloc_ram_mib=cap.alloc_ram_mib,
        physnets=physnets, physnets_error=physnets_error, refusals=tuple(refusals), guest_arches=arches,
        allow_emulation=host.domain_type == "qemu",  # a TCG host emulates any arch at no extra cost
        cpu_load_pct=load.cpu_pct, cpu_load_span_s=load.span_s, cpu_load_source=load.source,
        ram_used_pct=load.ram_pct, cpu_threshold=mcfg.cpu_threshold,
        ram_threshold=mcfg.ram_threshold)
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


def placement_request(req, ctx, snaps: list[HostSnapshot]) -> PlacementRequest:
    """What ``req`` (a provision.VmRequest) asks of the scheduler: its size, the template's arch
    (``ctx.template``), the physnets of its networks (``ctx.networks``), its anti-affinity group and
    the hosts in ``snaps`` already holding a member of that group, a pinned host."""
    group_hosts = frozenset(s.facts.name for s in snaps
                            if req.anti_affinity and any(d.group == req.anti_affinity for d in s.domains))
    return PlacementRequest(
        vcpus=req.vcpus, ram_mib=req.ram_mib, arch=ctx.template.arch,
        allow_emulation=bool(getattr(req, "allow_emulation", False)),
        physnets=frozenset(n.physnet for n in ctx.networks if n.physnet),
        anti_affinity_group=req.anti_affinity, group_hosts=group_hosts, pinned_host=req.host)


def check_cluster(inventory: Inventory, req, snaps: list[HostSnapshot]) -> None:
    """For ``req`` (a provision.VmRequest): name unique in the cluster, tenant quota (vCPUs and
    RAM MiB as placement counts them), disk ≥ template size. Raises ValidationError (AlreadyExists:
    name taken, exit 4; QuotaExceeded: exit 7)."""
    for s in snaps:
        if any(d.name == req.name for d in s.domains):
            raise AlreadyExists("name", f"a VM named {req.name!r} already exists on {s.facts.name}")
    tenant = next((t for t in inventory.tenants if t.name == req.tenant), None)
    if tenant is not None:
        mine = [d for s in snaps for d in s.domains if d.tenant == req.tenant]
        used_v, used_r = sum(d.vcpus for d in mine), sum(d.memory_mib for d in mine)
        if tenant.max_vms is not None and len(mine) + 1 > tenant.max_vms:
            raise QuotaExceeded("tenant", f"quota: {req.tenant} has {len(mine)} of {tenant.max_vms} VMs")
        if tenant.max_vcpus is not None and used_v + req.vcpus > tenant.max_vcpus:
            raise QuotaExceeded("tenant", f"quota: {req.tenant} uses {used_v} of {tenant.max_vcpus} vCPUs, "
                                            f"{req.vcpus} more do not fit")
        if tenant.max_ram_mib is not None and used_r + req.ram_mib > tenant.max_ram_mib:
            raise QuotaExceeded("tenant", f"quota: {req.tenant} uses {used_r} of {tenant.max_ram_mib} MiB, "
                                            f"{req.ram_mib} more do not fit")
    sizes = [s.template_bytes for s in snaps if s.template_bytes]
    if sizes:
        min_gib = math.ceil(max(sizes) / storage.GiB)
        check_disk(req.disk_gib, min_gib)
