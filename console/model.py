"""The public model of the cloud: frozen dataclasses the console, CLI and services read.

Everything here is immutable and plain (no libvirt, OVN or SSH objects): the live model
(:mod:`console.live`) builds a fresh :class:`Cloud` whenever something changes and hands it to
whoever asks; readers never lock anything.

Units, once and for all: memory in **MiB**, disks in **GiB**, CPUs as **whole vCPUs / cores**.
libvirt's KiB and bytes are converted in the backends (:mod:`backends.domain_facts` for the
domain XML, :mod:`backends.hypervisor` for stats and host facts), never here.

Where facts come from:

- :class:`Host` — libvirt ``getInfo()`` / ``getCapabilities()`` / ``getFreeMemory()`` and the
  host's OVS ``external_ids:ovn-bridge-mappings`` (read over SSH), plus the connection state.
- :class:`Vm` — one libvirt domain: ``getAllDomainStats`` (state, balloon, CPU time), its sizes
  from the persistent definition, and the domain XML (``<virtdeck:instance>`` metadata,
  interfaces, disks).
- :class:`Network`, :class:`Port`, :class:`Router` — OVN northbound rows (Logical_Switch,
  Logical_Switch_Port, DHCP_Options, Logical_Router, Logical_Router_Port, NAT).
- :class:`Tenant` — derived: every tenant named in the inventory, in domain metadata or in OVN
  ``external_ids:virtdeck:tenant``.

Why one module of ~550 lines: it is the one vocabulary every layer shares (the layering contract
in tests/test_layering.py names it, with errors, as a module all may import), and it is plain
declarations: frozen dataclasses whose docstrings (a quarter of the lines) say each field's unit
and source, and a few pure derivations. The types refer to each other
(:class:`Cloud` holds them all and derives usage and tenants from them); split into host, domain
and OVN modules, every reader would import three and the contract would name three.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

# ---------------------------------------------------------------------------------------------
# Conventions shared with the backends and other engineers

#: libvirt domain metadata namespace and element (``<virtdeck:instance>``).
METADATA_NS = "https://virtdeck.dev/xmlns/domain/1.0"
METADATA_PREFIX = "virtdeck"
METADATA_ELEMENT = "instance"

#: Host states (``Host.state``).
HOST_CONNECTING = "connecting"      # first connection attempt under way
HOST_UP = "up"                      # libvirt answers; events flowing
HOST_UNREACHABLE = "unreachable"    # SSH / libvirt dropped or never came; retried with backoff
HOST_HOSTKEY = "host-key"           # unknown host key: waiting for the operator to accept it
HOST_REFUSED = "refused"            # changed host key (or key rejected): not retried automatically
HOST_DISABLED = "disabled"          # ``enabled = false`` in the inventory

#: VM states (``Vm.state``), libvirt's ``VIR_DOMAIN_*`` in words.
VM_STATES = ("nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed",
             "pmsuspended")

#: NB states (``NbStatus.state``).
NB_CONNECTING = "connecting"
NB_UP = "up"
NB_STALE = "stale"                  # connection lost: data shown is the last known, marked stale


def frozen_map(d: Mapping[str, str] | None) -> Mapping[str, str]:
    """A read-only copy of ``d`` (``MappingProxyType`` over a private dict)."""
    return MappingProxyType(dict(d or {}))


_EMPTY: Mapping[str, str] = MappingProxyType({})


# ---------------------------------------------------------------------------------------------
# Hypervisors


@dataclass(frozen=True)
class Host:
    """One hypervisor from the inventory with what libvirt and OVS say about it.

    Fields other than ``name``/``address``/``state`` are ``None`` until the host has answered
    once; after a drop they keep their last known values (``state`` says they are old).

    - ``cores``: logical CPUs (libvirt ``getInfo()[2]``); ``ram_total_mib`` from ``getInfo()[1]``;
      ``ram_free_mib`` from ``getFreeMemory()`` (bytes → MiB); ``arch`` from the capabilities'
      ``<host><cpu><arch>``; ``hostname`` from ``getHostname()``.
    - ``bridge_mappings``: ``((physnet, bridge), …)`` from the host's OVS
      ``external_ids:ovn-bridge-mappings``; empty when unset or unknown.
    - ``error``: one line saying why the host is not up (None when up).
    - ``host_key``: for state ``host-key``/``refused``, the offered key's SHA256 fingerprint.
    """

    name: str
    address: str
    state: str = HOST_CONNECTING
    error: str | None = None
    hostname: str | None = None
    arch: str | None = None
    cores: int | None = None
    ram_total_mib: int | None = None
    ram_free_mib: int | None = None
    libvirt_version: str | None = None
    domain_types: tuple[str, ...] = ()
    bridge_mappings: tuple[tuple[str, str], ...] = ()
    host_key: str | None = None

    @property
    def physnets(self) -> tuple[str, ...]:
        """The physnet names this host can bridge (from ``bridge_mappings``)."""
        return tuple(p for p, _ in self.bridge_mappings)

    @property
    def up(self) -> bool:
        """True when the host answers now."""
        return self.state == HOST_UP


# ---------------------------------------------------------------------------------------------
# Domains


@dataclass(frozen=True, slots=True)
class Nic:
    """A domain interface from its XML.

    ``interfaceid`` is the ``<virtualport type='openvswitch'>`` interfaceid — the name (a UUID)
    of the OVN LSP it binds. ``target`` is the host-side device while the domain runs.
    """

    mac: str
    type: str = "bridge"
    source: str | None = None
    interfaceid: str | None = None
    model: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Disk:
    """A domain disk from its XML: ``device`` (disk/cdrom), ``target`` (vda), ``source`` path."""

    device: str
    target: str
    source: str | None = None
    format: str | None = None
    bus: str | None = None


@dataclass(frozen=True, slots=True)
class Vm:
    """One libvirt domain on one hypervisor.

    - ``state``: one of :data:`VM_STATES`; from the libvirt state group / lifecycle events.
    - ``vcpus``/``memory_mib``/``max_memory_mib``: the sizes placement counts
      (:func:`backends.domains.host_capacity`), read from the PERSISTENT definition even while the
      domain runs (:func:`backends.hypervisor.build_vm`): ``<vcpu current>`` (else ``<vcpu>``),
      ``<currentMemory>`` (KiB → MiB, ``<memory>`` when absent) and ``<memory>`` — not the live
      vCPU count or balloon, so a live-only change shows after the next boot. A transient domain
      has only its live definition (vCPUs from the stats call when there).
    - ``tenant``/``template``/``seed``/``networks``: the ``<virtdeck:instance>`` metadata
      (None / empty for domains virtdeck did not create).
    - ``nics``/``disks``: from the domain XML. ``ips``: filled from the OVN ports bound to the
      domain's NICs when known (see :meth:`Cloud.vm_ips`), empty here.
    - Slots, no ``__dict__``: 10,000 of these live at once (with the parser's interned
      strings, 634 -> 354 bytes per listed domain).
    - ``cpu_percent``: CPU use over the last stats interval as a percent of all the domain's
      vCPUs (100 = every vCPU busy); ``None`` when there is no figure (stats failed, or not yet
      two samples). ``rss_mib``: ``balloon.rss`` (KiB → MiB) or None.
      A failing stats call never changes ``state``.
    """

    host: str
    name: str
    uuid: str
    state: str = "nostate"
    persistent: bool = True
    autostart: bool | None = None
    vcpus: int = 0
    memory_mib: int = 0
    max_memory_mib: int = 0
    domain_type: str | None = None
    arch: str | None = None
    tenant: str | None = None
    template: str | None = None
    seed: str | None = None
    networks: tuple[str, ...] = ()
    nics: tuple[Nic, ...] = ()
    disks: tuple[Disk, ...] = ()
    ips: tuple[str, ...] = ()
    cpu_percent: float | None = None
    rss_mib: int | None = None

    @property
    def active(self) -> bool:
        """True for a domain that holds host resources (running, paused, blocked, …)."""
        return self.state not in ("shutoff", "crashed", "nostate")

    @property
    def key(self) -> tuple[str, str]:
        """``(host, uuid)``: unique across the cloud."""
        return (self.host, self.uuid)


# ---------------------------------------------------------------------------------------------
# OVN


class _Tagged:
    """virtdeck's tags of an OVN row, as fields the OVN backend fills from ``external_ids``
    (backends/ovn/names.py spells the keys; the model never does): ``tenant`` (None when
    untagged) and ``label``, the human name."""

    name: str
    tenant: str | None
    label: str | None

    @property
    def display_name(self) -> str:
        """The human name (``label``), else the OVN name."""
        return self.label or self.name


@dataclass(frozen=True)
class Dhcp:
    """One OVN ``DHCP_Options`` row: ``cidr`` and its ``options`` (router, dns_server, mtu, …)."""

    uuid: str
    cidr: str
    options: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    external_ids: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @property
    def router(self) -> str | None:
        """The default gateway handed out (``options:router``), if any."""
        return self.options.get("router")


@dataclass(frozen=True)
class Port(_Tagged):
    """One OVN ``Logical_Switch_Port``.

    - ``name``: the LSP name (a UUID for a VM port bound by libvirt's interfaceid).
    - ``type``: ``""`` (VM / normal), ``"localnet"``, ``"router"``, ``"localport"``, …
    - ``addresses``: raw strings (``"MAC IP …"``, ``"router"``, ``"unknown"``, ``"dynamic"``);
      ``mac``/``ips`` parse the first one (or ``dynamic_addresses``).
    - ``up``: the NB ``up`` column (True once a chassis bound it; None when unset).
    - ``tag``: VLAN tag (localnet ports of provider VLAN networks).
    - ``vm``/``tenant``/``label``/``role``/``router``: virtdeck's tags (from ``external_ids``,
      filled by the OVN backend); ``display_name`` the label, else the LSP name.
    """

    uuid: str
    name: str
    switch: str
    type: str = ""
    addresses: tuple[str, ...] = ()
    dynamic_addresses: str | None = None
    up: bool | None = None
    enabled: bool | None = None
    tag: int | None = None
    options: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    external_ids: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    tenant: str | None = None
    label: str | None = None
    vm: str | None = None
    role: str | None = None
    router: str | None = None

    @property
    def mac(self) -> str | None:
        """The MAC of the first static address (or the dynamic one)."""
        for word in self._address_words():
            if _MAC_RE.match(word):
                return word.lower()
        return None

    @property
    def ips(self) -> tuple[str, ...]:
        """IPs from the addresses (static first, then dynamic), without duplicates."""
        out: list[str] = []
        for word in self._address_words():
            if not _MAC_RE.match(word) and word not in ("router", "unknown", "dynamic") \
                    and (":" in word or "." in word) and word not in out:
                out.append(word)
        return tuple(out)

    def _address_words(self) -> list[str]:
        words: list[str] = []
        for a in self.addresses:
            words.extend(a.split())
        if self.dynamic_addresses:
            words.extend(self.dynamic_addresses.split())
        return words


_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


@dataclass(frozen=True)
class Network(_Tagged):
    """One OVN ``Logical_Switch`` as a network.

    - ``kind``: ``"overlay"`` (no localnet port) or ``"provider"`` (has a localnet port);
      ``vlan`` the localnet port's tag (None = untagged), ``physnet`` its
      ``options:network_name``. :attr:`kind_label` says it in words.
    - ``subnet``: ``other_config:subnet`` (OVN IPAM) or else the DHCP_Options cidr.
    - ``dhcp``: the DHCP_Options row whose ``external_ids:virtdeck:network`` or
      ``external_ids:ls`` names this switch, else the first whose cidr matches ``subnet``.
    - ``ports``: LSP names on this switch (see :meth:`Cloud.ports_of`).
    - ``mtu``: the DHCP ``mtu`` option when set.
    """

    uuid: str
    name: str
    kind: str = "overlay"
    vlan: int | None = None
    physnet: str | None = None
    subnet: str | None = None
    dhcp: Dhcp | None = None
    ports: tuple[str, ...] = ()
    other_config: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    external_ids: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    tenant: str | None = None
    label: str | None = None

    @property
    def kind_label(self) -> str:
        """``overlay`` / ``provider VLAN 100`` / ``provider untagged``."""
        if self.kind != "provider":
            return "overlay"
        return f"provider VLAN {self.vlan}" if self.vlan is not None else "provider untagged"

    @property
    def mtu(self) -> int | None:
        if self.dhcp and self.dhcp.options.get("mtu", "").isdigit():
            return int(self.dhcp.options["mtu"])
        return None


@dataclass(frozen=True)
class RouterPort:
    """One ``Logical_Router_Port``: ``networks`` are CIDRs like ``10.0.0.1/24``; ``peer_switch``
    is the switch whose router-type LSP points at it (``options:router-port``), when found."""

    uuid: str
    name: str
    mac: str
    networks: tuple[str, ...] = ()
    peer_switch: str | None = None
    gateway_chassis: tuple[str, ...] = ()


@dataclass(frozen=True)
class Nat:
    """One ``NAT`` row of a router: ``type`` snat / dnat / dnat_and_snat; ``port`` the VM LSP
    a floating IP was made for (virtdeck's tag, filled by the OVN backend), when known."""

    uuid: str
    type: str
    external_ip: str
    logical_ip: str
    external_ids: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    port: str | None = None


@dataclass(frozen=True)
class Router(_Tagged):
    """One OVN ``Logical_Router`` with its ports and NAT rules."""

    uuid: str
    name: str
    ports: tuple[RouterPort, ...] = ()
    nats: tuple[Nat, ...] = ()
    external_ids: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    tenant: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class NbStatus:
    """The northbound connection: ``state`` up / connecting / stale, ``remote`` shown to the
    operator (the inventory's connection string, or ``via_host:nb_socket``), ``error`` why it is
    not up, ``since`` (``time.time()``) of the last state change, and ``member``: the server the
    console reads from now ("ssl:10.0.0.2:6641"; ``unix:PATH`` for a socket forwarded over SSH),
    None while not up. ``member`` comes from python-ovs' session name
    (:func:`backends.ovn.connection.member`); with a raft member list it changes on failover."""

    state: str = NB_CONNECTING
    remote: str = ""
    error: str | None = None
    since: float = 0.0
    member: str | None = None

    @property
    def member_list(self) -> bool:
        """True when ``remote`` is a comma-separated list of ``tcp:``/``ssl:`` members (a raft
        cluster): only then is the member in use worth showing (a forwarded socket's path is a
        random temporary name)."""
        parts = [p.strip() for p in self.remote.split(",") if p.strip()]
        return len(parts) > 1 and all(p.startswith(("tcp:", "ssl:")) for p in parts)


# ---------------------------------------------------------------------------------------------
# Tenants and the whole cloud


@dataclass(frozen=True)
class Tenant:
    """A tenant as seen everywhere.

    - ``sources``: where it was found, any of ``inventory``, ``libvirt``, ``ovn``.
    - ``vms``/``running``/``vcpus``/``ram_mib``: its domains (all / active; vCPUs and RAM MiB of
      active domains); ``networks``/``routers``/``ports``: its OVN objects.
    - ``max_*``: inventory quotas (None = unlimited).
    """

    name: str
    sources: tuple[str, ...] = ()
    vms: int = 0
    running: int = 0
    vcpus: int = 0
    ram_mib: int = 0
    networks: int = 0
    routers: int = 0
    ports: int = 0
    max_vcpus: int | None = None
    max_ram_mib: int | None = None
    max_vms: int | None = None


@dataclass(frozen=True)
class HostUsage:
    """What a host's domains are allocated against its capacity, as placement counts it
    (:func:`backends.domains.host_capacity`): ``vcpus`` and ``ram_mib`` (MiB) sum EVERY defined
    domain's size, shut-off ones included (a stopped VM keeps its claim: starting it must not
    overcommit the host), against ``vcpu_capacity`` (cores × cpu_ratio) and ``ram_capacity_mib``
    (RAM MiB × ram_ratio). ``vms``: domains defined there; ``running``: the active ones.

    Capacities are None while the host has not answered once.
    """

    vms: int
    running: int
    vcpus: int
    ram_mib: int
    vcpu_capacity: int | None
    ram_capacity_mib: int | None


@dataclass(frozen=True)
class Cloud:
    """One immutable snapshot of everything the console shows.

    Built by :class:`console.live.LiveModel`; ``generation`` grows with every change.
    ``cpu_ratio``/``ram_ratio`` come from the inventory's ``[allocation]``.
    """

    hosts: tuple[Host, ...] = ()
    vms: tuple[Vm, ...] = ()
    networks: tuple[Network, ...] = ()
    ports: tuple[Port, ...] = ()
    routers: tuple[Router, ...] = ()
    tenants: tuple[Tenant, ...] = ()
    nb: NbStatus = field(default_factory=NbStatus)
    cpu_ratio: float = 4.0
    ram_ratio: float = 1.0
    generation: int = 0
    #: the live model's measured figures (a console.metrics.MetricsView; None: no metrics):
    #: a new object only when a poll brought figures, so panels can skip work by identity
    metrics: object | None = None
    #: the OVN southbound as last read (a backends.ovn.southbound.SbData: chassis, port
    #: bindings, gateway chassis; console.live_sb); None: not read (yet) or not configured
    sb: object | None = None

    @property
    def sb_member(self) -> str | None:
        """The SB member the console reads from ("ssl:10.0.0.1:6642", from :attr:`sb`'s
        ``member``) when the SB connection is a raft member list; None otherwise (SB not read
        or disconnected, or one server / a forwarded socket, whose name says nothing)."""
        sb = self.sb
        if sb is None or not getattr(sb, "member_list", False):
            return None
        return getattr(sb, "member", None)

    @property
    def vm_metrics(self) -> object | None:
        """The VMs' part of :attr:`metrics` (``{uuid: VmFigures}``), the same object while no
        VM's drawn figures changed: what the VMs panel redraws on (None: no metrics)."""
        return getattr(self.metrics, "vms", None)

    # -- lookups (linear scans: the model is small enough; callers on hot paths build maps) --

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    def vms_on(self, host: str) -> tuple[Vm, ...]:
        return tuple(v for v in self.vms if v.host == host)

    def network(self, name: str) -> Network | None:
        """The switch called ``name`` (LSwitch name or ``virtdeck:name``)."""
        return next((n for n in self.networks if n.name == name or n.display_name == name), None)

    def ports_of(self, network: str) -> tuple[Port, ...]:
        return tuple(p for p in self.ports if p.switch == network)

    def ports_of_vm(self, vm: Vm) -> tuple[Port, ...]:
        """LSPs bound to ``vm``: named by one of its NICs' interfaceid, or tagged
        ``virtdeck:vm`` with its name/uuid."""
        ids = {n.interfaceid for n in vm.nics if n.interfaceid}
        return tuple(p for p in self.ports
                     if p.name in ids or (p.vm is not None and p.vm in (vm.name, vm.uuid)))

    def vm_ips(self, vm: Vm) -> tuple[str, ...]:
        """IPs of ``vm`` as known from its OVN ports."""
        out: list[str] = []
        for p in self.ports_of_vm(vm):
            out.extend(ip for ip in p.ips if ip not in out)
        return tuple(out)

    def switches_of_vm(self, vm: Vm) -> tuple[str, ...]:
        """Names of the switches ``vm``'s ports sit on (else its metadata networks)."""
        seen: list[str] = []
        for p in self.ports_of_vm(vm):
            if p.switch not in seen:
                seen.append(p.switch)
        return tuple(seen) or vm.networks

    def usage(self, host: str) -> HostUsage:
        """Allocation of ``host`` as placement counts it (:class:`HostUsage`): every domain
        defined there, running or not, against cores × ratio and RAM × ratio."""
        h = self.host(host)
        mine = self.vms_on(host)
        return HostUsage(
            vms=len(mine), running=sum(1 for v in mine if v.active),
            vcpus=sum(v.vcpus for v in mine), ram_mib=sum(v.memory_mib for v in mine),
            vcpu_capacity=int(h.cores * self.cpu_ratio) if h and h.cores else None,
            ram_capacity_mib=int(h.ram_total_mib * self.ram_ratio) if h and h.ram_total_mib else None)


def derive_tenants(inventory_tenants, vms, networks, routers, ports) -> tuple[Tenant, ...]:
    """Every tenant found in the inventory (``TenantConfig``-like objects with name and
    ``max_*``), domain metadata and OVN ``external_ids``, with counts, sorted by name."""
    acc: dict[str, dict] = {}

    def get(name: str, source: str) -> dict:
        t = acc.setdefault(name, {"name": name, "sources": [], "vms": 0, "running": 0, "vcpus": 0,
                                  "ram_mib": 0, "networks": 0, "routers": 0, "ports": 0})
        if source not in t["sources"]:
            t["sources"].append(source)
        return t

    quotas = {}
    for tc in inventory_tenants:
        get(tc.name, "inventory")
        quotas[tc.name] = tc
    for v in vms:
        if v.tenant:
            t = get(v.tenant, "libvirt")
            t["vms"] += 1
            if v.active:
                t["running"] += 1
                t["vcpus"] += v.vcpus
                t["ram_mib"] += v.memory_mib
    for n in networks:
        if n.tenant:
            get(n.tenant, "ovn")["networks"] += 1
    for r in routers:
        if r.tenant:
            get(r.tenant, "ovn")["routers"] += 1
    for p in ports:
        if p.tenant:
            get(p.tenant, "ovn")["ports"] += 1
    out = []
    for name in sorted(acc):
        d = acc[name]
        q = quotas.get(name)
        out.append(Tenant(
            name=name, sources=tuple(d["sources"]), vms=d["vms"], running=d["running"],
            vcpus=d["vcpus"], ram_mib=d["ram_mib"], networks=d["networks"], routers=d["routers"],
            ports=d["ports"],
            max_vcpus=getattr(q, "max_vcpus", None), max_ram_mib=getattr(q, "max_ram_mib", None),
            max_vms=getattr(q, "max_vms", None)))
    return tuple(out)
