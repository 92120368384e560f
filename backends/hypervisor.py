"""libvirt, read side: host facts, domains in bulk, lifecycle events, keepalive.

Everything here takes an open ``libvirt.virConnect`` (from ``Session.libvirt(host)``) and
returns :mod:`console.model` dataclasses. Units are converted here, once: domain XML and
``balloon.*`` stats are KiB, ``getInfo()`` memory is MiB, ``getFreeMemory()`` is bytes; the model
is MiB. Every function blocks on the network: call it from a worker thread, never a UI loop.

Events: libvirt dispatches domain events from its *event loop*: libvirt's own C loop on a
daemon thread (:func:`backends.ioloop.start_libvirt_events`, which says why not libvirtaio),
started by :func:`ensure_event_loop` / the Session before the first connection is opened.

Callbacks registered here only hand a small tuple to a sink (e.g. ``queue.Queue.put_nowait``);
the consumer does the libvirt calls.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable

import libvirt

from backends import domain_xml, ioloop
from console.model import METADATA_ELEMENT, METADATA_NS, VM_STATES, Disk, Nic, Vm

log = logging.getLogger(__name__)

KIB_PER_MIB = 1024
BYTES_PER_MIB = 1024 * 1024

#: Stats groups of the bulk call. ``CPU_TOTAL`` is asked for but may fail (lab: no cpuacct).
STATS_BASE = (libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU
              | libvirt.VIR_DOMAIN_STATS_BALLOON)
STATS_WITH_CPU = STATS_BASE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL

#: Lifecycle event numbers (``VIR_DOMAIN_EVENT_*``) in words.
LIFECYCLE_EVENTS = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}


def ensure_event_loop() -> None:
    """Make sure libvirt's event loop runs (see :func:`backends.ioloop.start_libvirt_events`).

    Idempotent. Must run before the connections that want events, keepalive or close callbacks
    are opened; ``Session`` does it when its I/O loop starts.
    """
    ioloop.start_libvirt_events()


# ---------------------------------------------------------------------------------------------
# Host facts


@dataclass(frozen=True)
class HostFacts:
    """What libvirt says about a hypervisor. Memory in MiB; ``cores`` = logical CPUs."""

    hostname: str
    arch: str
    cores: int
    ram_total_mib: int
    ram_free_mib: int
    libvirt_version: str
    domain_types: tuple[str, ...]


def _version(n: int) -> str:
    return f"{n // 1000000}.{n // 1000 % 1000}.{n % 1000}"


def host_facts(conn: libvirt.virConnect) -> HostFacts:
    """Read hostname, arch (capabilities ``<host><cpu><arch>``), logical CPUs, RAM total
    (``getInfo()``, MiB) and free (``getFreeMemory()``, bytes → MiB), libvirt version and the
    domain types the host offers for its own arch (``kvm``, ``qemu``).

    Raises ``libvirt.libvirtError`` when the host does not answer.
    """
    info = conn.getInfo()
    caps = ET.fromstring(conn.getCapabilities())
    arch = caps.findtext("host/cpu/arch") or info[0]
    types: list[str] = []
    for g_arch in caps.findall("guest/arch"):
        if g_arch.get("name") == arch:
            for d in g_arch.findall("domain"):
                t = d.get("type")
                if t and t not in types:
                    types.append(t)
    return HostFacts(
        hostname=conn.getHostname(),
        arch=arch,
        cores=int(info[2]),
        ram_total_mib=int(info[1]),
        ram_free_mib=int(conn.getFreeMemory() // BYTES_PER_MIB),
        libvirt_version=_version(conn.getLibVersion()),
        domain_types=tuple(types),
    )


def free_memory_mib(conn: libvirt.virConnect) -> int:
    """Free host RAM in MiB (``getFreeMemory()`` is bytes)."""
    return int(conn.getFreeMemory() // BYTES_PER_MIB)


# ---------------------------------------------------------------------------------------------
# Domain XML


@dataclass(frozen=True)
class DomainXml:
    """Facts parsed from one domain XML (memory in MiB). ``xml`` keeps the text for details."""

    name: str
    uuid: str
    domain_type: str | None
    arch: str | None
    vcpus: int
    memory_mib: int
    max_memory_mib: int
    tenant: str | None
    template: str | None
    seed: str | None
    networks: tuple[str, ...]
    nics: tuple[Nic, ...]
    disks: tuple[Disk, ...]
    xml: str


_UNIT_KIB = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "kb": 1000 / 1024,
             "m": 1024, "mib": 1024, "mb": 1000 * 1000 / 1024, "g": 1024 ** 2, "gib": 1024 ** 2,
             "gb": 1000 ** 3 / 1024, "t": 1024 ** 3, "tib": 1024 ** 3}


def _mem_mib(el: ET.Element | None) -> int:
    """A libvirt memory element (``unit`` attribute, default KiB) in MiB."""
    if el is None or not (el.text or "").strip():
        return 0
    factor = _UNIT_KIB.get((el.get("unit") or "KiB").lower(), 1)
    return int(int(el.text.strip()) * factor // KIB_PER_MIB)


def _metadata(root: ET.Element) -> tuple[str | None, str | None, str | None, tuple[str, ...]]:
    """tenant, template, seed, networks of ``<virtdeck:instance>`` (read by
    :func:`backends.domain_xml.parse_metadata`, which writes it); Nones when absent."""
    inst = root.find(f"metadata/{{{METADATA_NS}}}{METADATA_ELEMENT}")
    if inst is None:
        return None, None, None, ()
    meta = domain_xml.parse_metadata(ET.tostring(inst, encoding="unicode"))
    return (meta.tenant or None, meta.template or None, meta.seed or None,
            tuple(n for n in meta.networks if n))


def parse_domain_xml(xml: str) -> DomainXml:
    """Parse a domain XML (``XMLDesc``) into :class:`DomainXml`.

    Reads ``<vcpu current=…>``, ``<memory>``/``<currentMemory>`` (with ``unit``), ``<os><type
    arch>``, interfaces (mac, type, source bridge/network, virtualport interfaceid, model,
    target dev), disks, and the ``<virtdeck:instance>`` metadata (tenant, template, seed,
    networks).
    """
    root = ET.fromstring(xml)
    vcpu_el = root.find("vcpu")
    vcpus = 0
    if vcpu_el is not None and (vcpu_el.text or "").strip():
        vcpus = int(vcpu_el.get("current") or vcpu_el.text.strip())
    max_mem = _mem_mib(root.find("memory"))
    cur_mem = _mem_mib(root.find("currentMemory")) or max_mem
    os_type = root.find("os/type")
    nics = []
    for iface in root.findall("devices/interface"):
        mac = iface.find("mac")
        src = iface.find("source")
        vp = iface.find("virtualport/parameters")
        model = iface.find("model")
        target = iface.find("target")
        nics.append(Nic(
            mac=(mac.get("address") or "").lower() if mac is not None else "",
            type=iface.get("type") or "",
            source=(src.get("bridge") or src.get("network") or src.get("dev")) if src is not None else None,
            interfaceid=vp.get("interfaceid") if vp is not None else None,
            model=model.get("type") if model is not None else None,
            target=target.get("dev") if target is not None else None))
    disks = []
    for d in root.findall("devices/disk"):
        tgt = d.find("target")
        src = d.find("source")
        drv = d.find("driver")
        disks.append(Disk(
            device=d.get("device") or "disk",
            target=tgt.get("dev") if tgt is not None else "",
            source=(src.get("file") or src.get("dev") or src.get("volume") or src.get("name"))
            if src is not None else None,
            format=drv.get("type") if drv is not None else None,
            bus=tgt.get("bus") if tgt is not None else None))
    tenant, template, seed, networks = _metadata(root)
    return DomainXml(
        name=root.findtext("name") or "", uuid=root.findtext("uuid") or "",
        domain_type=root.get("type"), arch=os_type.get("arch") if os_type is not None else None,
        vcpus=vcpus, memory_mib=cur_mem, max_memory_mib=max_mem,
        tenant=tenant, template=template, seed=seed, networks=networks,
        nics=tuple(nics), disks=tuple(disks), xml=xml)


# ---------------------------------------------------------------------------------------------
# Domains


def state_name(state: int) -> str:
    """libvirt ``VIR_DOMAIN_*`` state number → name from :data:`console.model.VM_STATES`."""
    return VM_STATES[state] if 0 <= state < len(VM_STATES) else "nostate"


@dataclass(frozen=True)
class DomainStats:
    """One domain's bulk stats. ``state`` a name; ``vcpus`` current; memory in MiB;
    ``cpu_time_ns`` None when the host gave no CPU figure."""

    uuid: str
    name: str
    state: str
    vcpus: int | None
    balloon_mib: int | None
    rss_mib: int | None
    cpu_time_ns: int | None


def _stats_record(dom: libvirt.virDomain, s: dict) -> DomainStats:
    def kib(key: str) -> int | None:
        return int(s[key]) // KIB_PER_MIB if key in s else None
    return DomainStats(
        uuid=dom.UUIDString(), name=dom.name(),
        state=state_name(int(s["state.state"])) if "state.state" in s else "nostate",
        vcpus=int(s["vcpu.current"]) if "vcpu.current" in s else None,
        balloon_mib=kib("balloon.current"), rss_mib=kib("balloon.rss"),
        cpu_time_ns=int(s["cpu.time"]) if "cpu.time" in s else None)


def bulk_stats(conn: libvirt.virConnect, active_only: bool = False,
               want_cpu: bool = True) -> tuple[list[DomainStats], bool]:
    """ONE ``getAllDomainStats`` call: state, vCPUs, balloon and (if it works) CPU time of every
    domain (or only active ones). Returns ``(records, cpu_ok)``.

    When the call with the CPU group fails (lab hosts: no cpuacct controller), it is retried
    once without it and ``cpu_ok`` is False — a stats error means "no figure", never a state
    change. Raises ``libvirt.libvirtError`` when even the base call fails (host gone).
    """
    flags = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE if active_only else 0
    if want_cpu:
        try:
            recs = conn.getAllDomainStats(STATS_WITH_CPU, flags)
            return [_stats_record(d, s) for d, s in recs], True
        except libvirt.libvirtError as exc:
            if not conn.isAlive():
                raise
            log.debug("CPU stats failed (%s); retrying without", exc)
    recs = conn.getAllDomainStats(STATS_BASE, flags)
    return [_stats_record(d, s) for d, s in recs], False


def _domain_set(conn: libvirt.virConnect, flag: int) -> set[str]:
    return {d.UUIDString() for d in conn.listAllDomains(flag)}


def build_vm(host: str, facts: DomainXml, state: str, persistent: bool, autostart: bool | None,
             stats: DomainStats | None = None) -> Vm:
    """Combine parsed XML, state and (optional) stats into a :class:`console.model.Vm`."""
    vcpus = stats.vcpus if stats and stats.vcpus else facts.vcpus
    return Vm(host=host, name=facts.name, uuid=facts.uuid, state=state, persistent=persistent,
              autostart=autostart, vcpus=vcpus, memory_mib=facts.memory_mib,
              max_memory_mib=facts.max_memory_mib, domain_type=facts.domain_type,
              arch=facts.arch, tenant=facts.tenant, template=facts.template, seed=facts.seed,
              networks=facts.networks, nics=facts.nics, disks=facts.disks,
              rss_mib=stats.rss_mib if stats else None)


def fetch_xml(doms: Iterable[libvirt.virDomain], workers: int = 8) -> dict[str, DomainXml]:
    """``XMLDesc`` of each domain, parsed; several RPCs in flight at once (libvirt's remote
    client multiplexes calls from threads on one connection) to hide round trips. A domain
    that vanished meanwhile is left out. Returns ``{uuid: DomainXml}``."""
    doms = list(doms)

    def one(d: libvirt.virDomain) -> DomainXml | None:
        try:
            return parse_domain_xml(d.XMLDesc(0))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise
    if len(doms) <= 2 or workers <= 1:
        results = [one(d) for d in doms]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(doms)),
                                thread_name_prefix="libvirt-xml") as pool:
            results = list(pool.map(one, doms))
    return {r.uuid: r for r in results if r is not None}


@dataclass
class DomainListing:
    """Result of :func:`list_domains`: ``vms`` in libvirt order, ``xml`` the (updated) cache,
    ``stats`` per uuid, ``cpu_ok`` whether CPU figures came."""

    vms: list[Vm]
    xml: dict[str, DomainXml]
    stats: dict[str, DomainStats]
    cpu_ok: bool


def list_domains(conn: libvirt.virConnect, host: str,
                 xml_cache: dict[str, DomainXml] | None = None,
                 want_cpu: bool = True, workers: int = 8) -> DomainListing:
    """Every domain on ``host`` in bulk: one ``getAllDomainStats`` (which also lists them), one
    ``listAllDomains`` each for transient and autostart domains, and ``XMLDesc`` only for domains
    not in ``xml_cache`` (``{uuid: DomainXml}``). Raises ``libvirt.libvirtError`` if the host
    does not answer.
    """
    cache = dict(xml_cache or {})
    records, cpu_ok = bulk_stats(conn, want_cpu=want_cpu)
    transient = _domain_set(conn, libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)
    autostart = _domain_set(conn, libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)
    stats = {r.uuid: r for r in records}
    missing = [uuid for uuid in stats if uuid not in cache]
    if missing:
        doms = [conn.lookupByUUIDString(u) for u in missing]
        cache.update(fetch_xml(doms, workers=workers))
    cache = {u: x for u, x in cache.items() if u in stats}
    vms = [build_vm(host, cache[r.uuid], r.state, r.uuid not in transient, r.uuid in autostart, r)
           for r in records if r.uuid in cache]
    return DomainListing(vms=vms, xml=cache, stats=stats, cpu_ok=cpu_ok)


def read_domain(conn: libvirt.virConnect, host: str,
                uuid: str) -> tuple[Vm, DomainXml] | None:
    """Re-read one domain (after an event): XML, state, persistence, autostart.
    Returns None when the domain no longer exists. Raises ``libvirt.libvirtError`` otherwise."""
    try:
        dom = conn.lookupByUUIDString(uuid)
        facts = parse_domain_xml(dom.XMLDesc(0))
        state = state_name(dom.state()[0])
        persistent = bool(dom.isPersistent())
        autostart = bool(dom.autostart()) if persistent else False
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise
    return build_vm(host, facts, state, persistent, autostart), facts


# ---------------------------------------------------------------------------------------------
# Events, keepalive, close


@dataclass(frozen=True)
class DomainEvent:
    """A lifecycle (or metadata) event as handed to the sink: ``kind`` from
    :data:`LIFECYCLE_EVENTS` or ``"metadata"``; ``at`` = ``time.monotonic()`` on receipt."""

    host: str
    uuid: str
    name: str
    kind: str
    detail: int
    at: float


@dataclass
class EventRegistration:
    """Callback ids registered on one connection; pass to :func:`unregister_events`."""

    ids: list[int]
    close_cb: bool = False


def register_events(conn: libvirt.virConnect, host: str,
                    sink: Callable[[object], None]) -> EventRegistration:
    """Register lifecycle and metadata-change callbacks and a close callback.

    ``sink`` gets a :class:`DomainEvent` for each domain event and the tuple
    ``("closed", host, reason)`` when libvirt closes the connection (keepalive timeout, EOF,
    error); it must not block (e.g. ``queue.Queue.put_nowait``).

    A dead host is noticed by libvirt keepalive (``Session`` turns it on: interval × (count + 1)
    seconds, see ``backends.session.LIBVIRT_KEEPALIVE``), which closes the connection and so
    fires the close callback. Needs :func:`ensure_event_loop` before the connection was opened.
    """
    def lifecycle(_conn, dom, event, detail, _opaque):
        try:
            sink(DomainEvent(host, dom.UUIDString(), dom.name(),
                             LIFECYCLE_EVENTS.get(event, str(event)), detail, time.monotonic()))
        except Exception:  # noqa: BLE001 - a callback must never raise into libvirt
            log.exception("lifecycle sink failed")

    def metadata(_conn, dom, mtype, nsuri, _opaque):
        try:
            sink(DomainEvent(host, dom.UUIDString(), dom.name(), "metadata", mtype,
                             time.monotonic()))
        except Exception:  # noqa: BLE001
            log.exception("metadata sink failed")

    def closed(_conn, reason, _opaque):
        try:
            sink(("closed", host, reason))
        except Exception:  # noqa: BLE001
            log.exception("close sink failed")

    reg = EventRegistration(ids=[])
    reg.ids.append(conn.domainEventRegisterAny(
        None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None))
    try:
        reg.ids.append(conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, metadata, None))
    except libvirt.libvirtError:
        log.debug("%s: no metadata-change events", host)
    try:
        conn.registerCloseCallback(closed, None)
        reg.close_cb = True
    except libvirt.libvirtError as exc:
        log.debug("%s: no close callback: %s", host, exc)
    return reg


def unregister_events(conn: libvirt.virConnect, reg: EventRegistration) -> None:
    """Undo :func:`register_events`; errors (connection already gone) are ignored."""
    for cb_id in reg.ids:
        try:
            conn.domainEventDeregisterAny(cb_id)
        except libvirt.libvirtError:
            pass
    if reg.close_cb:
        try:
            conn.unregisterCloseCallback()
        except libvirt.libvirtError:
            pass
    reg.ids.clear()
    reg.close_cb = False
