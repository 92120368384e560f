"""libvirt, metrics side: raw counters of one hypervisor in one bulk request per interval.

:func:`sample_host` reads, from an open ``libvirt.virConnect`` (``Session.libvirt(host)``):

- every active domain's counters with ONE ``getAllDomainStats`` (state, vCPU, balloon, block,
  interface groups; the CPU_TOTAL group when the host gives it): CPU time (ns), RSS/balloon
  (KiB → MiB), block read/write bytes and requests, interface rx/tx bytes and packets;
- the host's CPU times (``virNodeGetCPUStats``, ns since boot: a utilisation needs two samples),
  memory (``virNodeGetMemoryStats``, KiB → MiB) and, when asked, its storage pools'
  capacity/allocation/available (``virStoragePool.info()``, bytes).

Everything here returns counters, not rates: :mod:`console.metrics` keeps the previous sample and
turns deltas into rates. A part that fails is "no figure" (None, and a line in ``errors``), never
a state: only a dead connection raises. Every function blocks on the network: call it from a
worker thread.

Where the figures come from, and a caveat: ``virNodeGetCPUStats`` and ``virNodeGetMemoryStats``
read the host kernel's ``/proc/stat`` and ``/proc/meminfo``. Hypervisors that are network
namespaces of one machine (the lab) all see the machine's figures; the per-host figure that
tells them apart is the guests' CPU (the sum of their CPU time), see :mod:`console.metrics`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import libvirt

from . import hypervisor as hv

#: Extra stats groups the metrics poll asks for beside :data:`backends.hypervisor.STATS_BASE`.
EXTRA_GROUPS = libvirt.VIR_DOMAIN_STATS_BLOCK | libvirt.VIR_DOMAIN_STATS_INTERFACE

KIB_PER_MIB = 1024


@dataclass(frozen=True)
class DomainCounters:
    """One domain's counters at one instant (``getAllDomainStats``). Times in ns, memory in MiB,
    I/O in bytes and requests/packets since the domain started; None = the host gave no figure.

    ``cpu_time_ns`` is ``cpu.time`` (the domain's whole cgroup) when present, else the sum of
    ``vcpu.N.time`` (the vCPU threads, read from ``/proc``: works without the cpuacct controller,
    see LAB-NOTES). ``vcpus`` is the running vCPU count (``vcpu.current``)."""

    uuid: str
    name: str
    state: str
    vcpus: int | None = None
    cpu_time_ns: int | None = None
    rss_mib: int | None = None
    balloon_mib: int | None = None
    rd_bytes: int | None = None
    wr_bytes: int | None = None
    rd_reqs: int | None = None
    wr_reqs: int | None = None
    rx_bytes: int | None = None
    tx_bytes: int | None = None
    rx_pkts: int | None = None
    tx_pkts: int | None = None


@dataclass(frozen=True)
class PoolCounters:
    """One storage pool (``virStoragePool.info()``): sizes in bytes."""

    name: str
    capacity_bytes: int
    allocation_bytes: int
    available_bytes: int


@dataclass(frozen=True)
class NodeCounters:
    """The host: CPU times in ns since boot summed over all CPUs (``busy`` = kernel + user,
    ``total`` = busy + idle + iowait), memory in MiB; None when that part failed.
    ``pools`` is None when pools were not read this time (they are read less often)."""

    cpus: int | None = None
    cpu_busy_ns: int | None = None
    cpu_total_ns: int | None = None
    mem_total_mib: int | None = None
    mem_free_mib: int | None = None
    mem_cache_mib: int | None = None
    pools: tuple[PoolCounters, ...] | None = None


@dataclass(frozen=True)
class HostSample:
    """Everything :func:`sample_host` read of one host. ``at``: ``time.monotonic()`` after the
    bulk call returned (s). ``errors``: one line per part that gave no figure."""

    host: str
    at: float
    node: NodeCounters
    domains: tuple[DomainCounters, ...]
    cpu_total_ok: bool = True
    errors: tuple[str, ...] = ()


def _int(s: dict, key: str) -> int | None:
    v = s.get(key)
    return int(v) if v is not None else None


def _sum(s: dict, count_key: str, fmt: str) -> int | None:
    """Sum ``fmt % i`` over ``i < s[count_key]``; None when no item carries the key."""
    n = _int(s, count_key)
    if not n:
        return None
    vals = [s[fmt % i] for i in range(n) if fmt % i in s]
    return int(sum(vals)) if vals else None


def domain_counters(dom: libvirt.virDomain, s: dict) -> DomainCounters:
    """One ``getAllDomainStats`` record (domain object, stats dict) → :class:`DomainCounters`."""
    cpu = _int(s, "cpu.time")
    if cpu is None:
        cpu = _sum(s, "vcpu.maximum", "vcpu.%d.time")

    def mib(key: str) -> int | None:
        v = _int(s, key)
        return None if v is None else v // KIB_PER_MIB
    return DomainCounters(
        uuid=dom.UUIDString(), name=dom.name(),
        state=hv.state_name(int(s["state.state"])) if "state.state" in s else "nostate",
        vcpus=_int(s, "vcpu.current"), cpu_time_ns=cpu,
        rss_mib=mib("balloon.rss"), balloon_mib=mib("balloon.current"),
        rd_bytes=_sum(s, "block.count", "block.%d.rd.bytes"),
        wr_bytes=_sum(s, "block.count", "block.%d.wr.bytes"),
        rd_reqs=_sum(s, "block.count", "block.%d.rd.reqs"),
        wr_reqs=_sum(s, "block.count", "block.%d.wr.reqs"),
        rx_bytes=_sum(s, "net.count", "net.%d.rx.bytes"),
        tx_bytes=_sum(s, "net.count", "net.%d.tx.bytes"),
        rx_pkts=_sum(s, "net.count", "net.%d.rx.pkts"),
        tx_pkts=_sum(s, "net.count", "net.%d.tx.pkts"))


def node_counters(conn: libvirt.virConnect, pools: bool = False,
                  errors: list[str] | None = None, cpus: int | None = None) -> NodeCounters:
    """The host's CPU times (``getCPUStats``), memory (``getMemoryStats``, KiB → MiB) and, with
    ``pools``, every active pool's sizes; ``cpus`` (logical CPUs) is read with ``getInfo()``
    unless given. Each part that fails adds a line to ``errors`` and stays None. Raises
    ``libvirt.libvirtError`` only when the connection is dead."""
    errors = errors if errors is not None else []
    busy = total = None
    try:
        c = conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS)
        busy = int(c.get("kernel", 0)) + int(c.get("user", 0))
        total = busy + int(c.get("idle", 0)) + int(c.get("iowait", 0))
        cpus = cpus or int(conn.getInfo()[2])
    except libvirt.libvirtError as exc:
        _alive_or_raise(conn)
        errors.append(f"node CPU: {exc.get_error_message()}")
    mem_total = mem_free = mem_cache = None
    try:
        m = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
        mem_total = int(m["total"]) // KIB_PER_MIB
        mem_free = int(m["free"]) // KIB_PER_MIB
        mem_cache = (int(m.get("buffers", 0)) + int(m.get("cached", 0))) // KIB_PER_MIB
    except (libvirt.libvirtError, KeyError) as exc:
        _alive_or_raise(conn)
        errors.append(f"node memory: {exc}")
    got_pools: tuple[PoolCounters, ...] | None = None
    if pools:
        try:
            got_pools = tuple(
                PoolCounters(p.name(), int(i[1]), int(i[2]), int(i[3]))
                for p in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
                for i in (p.info(),))
        except libvirt.libvirtError as exc:
            _alive_or_raise(conn)
            errors.append(f"pools: {exc.get_error_message()}")
    return NodeCounters(cpus, busy, total, mem_total, mem_free, mem_cache, got_pools)


def _alive_or_raise(conn: libvirt.virConnect) -> None:
    """A stats error on a live connection is "no figure"; on a dead one it is a drop."""
    if not conn.isAlive():
        raise libvirt.libvirtError("libvirt connection is closed")


def sample_from_raw(host: str, conn: libvirt.virConnect, raw: list, cpu_ok: bool,
                    pools: bool = False, cpus: int | None = None) -> HostSample:
    """A :class:`HostSample` from the records of a ``getAllDomainStats`` already made (the live
    model's poll: :func:`backends.hypervisor.all_stats` with :data:`EXTRA_GROUPS`) plus the node
    figures read now. Inactive domains in ``raw`` are left out."""
    at = time.monotonic()
    errors: list[str] = [] if cpu_ok else ["domain CPU_TOTAL group refused (no cpuacct)"]
    doms = tuple(domain_counters(d, s) for d, s in raw
                 if int(s.get("state.state", libvirt.VIR_DOMAIN_SHUTOFF)) != libvirt.VIR_DOMAIN_SHUTOFF)
    node = node_counters(conn, pools=pools, errors=errors, cpus=cpus)
    return HostSample(host, at, node, doms, cpu_ok, tuple(errors))


def sample_host(conn: libvirt.virConnect, host: str, *, pools: bool = True,
                want_cpu: bool = True) -> HostSample:
    """Read one :class:`HostSample` of ``host``: ONE ``getAllDomainStats`` of active domains
    (with block and interface groups), then the node's CPU, memory and (``pools``) pool figures.
    Raises ``libvirt.libvirtError`` when the host does not answer at all."""
    raw, cpu_ok = hv.all_stats(conn, active_only=True, want_cpu=want_cpu, extra_groups=EXTRA_GROUPS)
    return sample_from_raw(host, conn, raw, cpu_ok, pools=pools)


def sample_domain(conn: libvirt.virConnect, dom: libvirt.virDomain,
                  host: str = "") -> HostSample | None:
    """ONE ``domainListGetStats`` of the one domain ``dom`` (the groups of :func:`sample_host`),
    as a :class:`HostSample` holding only that domain and no node figures; None when the host
    gave no stats for it (stopped meanwhile, a stats error on a live connection). Raises
    ``libvirt.libvirtError`` only when the connection is dead."""
    groups = hv.STATS_BASE | EXTRA_GROUPS
    for flags in (groups | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL, groups):
        try:
            raw = conn.domainListGetStats([dom], flags)
            break
        except libvirt.libvirtError:
            _alive_or_raise(conn)
    else:
        return None
    doms = tuple(domain_counters(d, s) for d, s in raw)
    return HostSample(host, time.monotonic(), NodeCounters(), doms) if doms else None
