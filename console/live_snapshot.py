"""The live model's parts and how they merge into a snapshot.

Each worker of :class:`console.live.LiveModel` keeps one immutable part and replaces it whole
when something changes: a :class:`HostPart` per hypervisor (:mod:`console.live_host`), one
:class:`NbPart` for the OVN NB (:mod:`console.live_nb`). The publisher merges them into one
:class:`console.model.Cloud` (``LiveModel._build``), with :func:`merge_vms` for the VMs (their
IPs come from the NB's ports) and the tenants.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..backends.ovn import connection as ovn_nb
from .model import Host, NbStatus, Vm, derive_tenants


@dataclass(frozen=True)
class HostPart:
    """One hypervisor's part of the cloud: its :class:`Host` and domains (sorted by name)."""

    host: Host
    vms: tuple[Vm, ...] = ()
    answered: bool = False  # tried at least once (up or failed): counts for "first complete"


@dataclass(frozen=True)
class NbPart:
    """The NB part: status plus the last data read (kept while stale)."""

    status: NbStatus
    data: ovn_nb.NbData = ovn_nb.NbData()
    answered: bool = False


def merge_vms(parts: list[HostPart], data: ovn_nb.NbData,
              tenant_configs: tuple = ()) -> tuple[tuple[Vm, ...], tuple]:
    """All domains of ``parts`` in host order, each with ``ips`` from the OVN ports bound to it
    (by interfaceid, else by the port's ``vm`` tag = domain name or UUID); and the tenants
    derived from ``tenant_configs`` (the inventory's) and what the VMs and NB rows name.
    Returns ``(vms, tenants)``; a VM whose IPs did not change is the same object."""
    vms: list[Vm] = []
    for p in parts:
        vms.extend(p.vms)
    if data.ports:
        by_name = {p.name: p for p in data.ports}
        by_vm: dict[str, list] = {}
        for p in data.ports:
            if p.vm:
                by_vm.setdefault(p.vm, []).append(p)
        for i, v in enumerate(vms):
            ports = [by_name[n.interfaceid] for n in v.nics if n.interfaceid in by_name]
            for p in by_vm.get(v.name, []) + by_vm.get(v.uuid, []):
                if all(p is not q for q in ports):
                    ports.append(p)
            if ports:
                ips: list[str] = []
                for p in ports:
                    ips.extend(ip for ip in p.ips if ip not in ips)
                if tuple(ips) != v.ips:
                    vms[i] = replace(v, ips=tuple(ips))
    tenants = derive_tenants(tenant_configs, vms, data.networks, data.routers,
                             data.ports)
    return tuple(vms), tenants
