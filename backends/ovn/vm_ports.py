"""A VM's rows in OVN northbound, read and removed by the VM verbs: its LSPs (named by the
domain's interfaceids or tagged ``virtdeck:vm``), their addresses, the switches they are on, the
physnets those need, its DHCP_Options rows and floating IPs (NAT rows).

``nb`` is an ovsdbapp NB API (``session.nb()``); reads walk its IDL replica, writes are one
transaction with ``check_error=True`` and ``if_exists``. Keys come from :mod:`.names`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Iterable

from .names import EXT_PORT, EXT_VM

def _ext(row, key: str) -> str | None:
    return (getattr(row, "external_ids", None) or {}).get(key)


def vm_ports(nb, name: str, interfaceids: Iterable[str]) -> list:
    """LSP rows of a VM: named by one of its interfaceids, or tagged ``virtdeck:vm`` = name."""
    ids = set(interfaceids)
    rows = []
    for row in nb.tables["Logical_Switch_Port"].rows.values():
        if row.name in ids or _ext(row, EXT_VM) == name:
            rows.append(row)
    return rows


def switch_of(nb, lsp_uuid) -> str | None:
    """The name of the logical switch holding the LSP row ``lsp_uuid``, None if none does."""
    for ls in nb.tables["Logical_Switch"].rows.values():
        if any(p.uuid == lsp_uuid for p in ls.ports):
            return ls.name
    return None


def vm_physnets(nb, name: str, interfaceids: Iterable[str]) -> dict[str, list[str]]:
    """{physnet: [logical switch names]} the VM's NICs need: the ``options:network_name`` of
    the localnet ports on the switches its LSPs are on (overlay switches need none)."""
    mine = {row.uuid for row in vm_ports(nb, name, interfaceids)}
    out: dict[str, list[str]] = {}
    for ls in nb.tables["Logical_Switch"].rows.values():
        if not any(p.uuid in mine for p in ls.ports):
            continue
        for p in ls.ports:
            phys = (p.options or {}).get("network_name") if p.type == "localnet" else None
            if phys:
                out.setdefault(phys, []).append(ls.name)
    return out


def addresses(row) -> tuple[list[str], str | None]:
    """An LSP row's ``addresses`` list and its first ``dynamic_addresses`` (OVN IPAM) or None."""
    addrs = list(row.addresses or [])
    dyn = row.dynamic_addresses[0] if getattr(row, "dynamic_addresses", None) else None
    return addrs, dyn


def ips_of(addresses: list[str], dynamic: str | None) -> list[str]:
    """The IP addresses in an LSP's ``addresses`` entries and ``dynamic`` (MACs, ``dynamic``,
    ``router``, ``unknown`` left out), in order, each once."""
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



@dataclass(frozen=True)
class OvnLeftovers:
    """OVN rows that belong to a VM: LSP names, DHCP_Options uuids, NAT rows (router, uuid)."""

    ports: tuple[str, ...] = ()
    dhcp: tuple[str, ...] = ()
    nats: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ports or self.dhcp or self.nats)


def rows_of(nb, name: str, interfaceids: Iterable[str] = ()) -> OvnLeftovers:
    """Every NB row that belongs to VM ``name``: its LSPs (by interfaceid or ``virtdeck:vm``), the
    DHCP_Options rows tagged ``virtdeck:vm`` = name, and NAT rows (floating IPs) whose
    ``logical_port`` is one of its LSPs, that are tagged with the VM, or that are
    ``dnat_and_snat`` on one of its IPs."""
    ports = vm_ports(nb, name, interfaceids)
    names = {p.name for p in ports}
    ips: set[str] = set()
    for p in ports:
        addrs, dyn = addresses(p)
        ips.update(ips_of(addrs, dyn))
    dhcp = [str(r.uuid) for r in nb.tables["DHCP_Options"].rows.values() if _ext(r, EXT_VM) == name]
    nats = []
    for lr in nb.tables["Logical_Router"].rows.values():
        for nat in lr.nat:
            lport = nat.logical_port[0] if getattr(nat, "logical_port", None) else None
            if lport in names or _ext(nat, EXT_VM) == name or _ext(nat, EXT_PORT) in names or \
                    (nat.type == "dnat_and_snat" and nat.logical_ip in ips):
                nats.append((str(lr.uuid), str(nat.uuid)))
    return OvnLeftovers(tuple(sorted(names)), tuple(dhcp), tuple(nats))


def remove_rows(nb, rows: OvnLeftovers) -> None:
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


def ips_by_lsp(nb) -> dict[str, list[str]]:
    """``{LSP name: [IPs]}`` for every LSP in NB (one pass; see :func:`ips_of`)."""
    return {row.name: ips_of(*addresses(row)) for row in nb.tables["Logical_Switch_Port"].rows.values()}


def rehome(nb, name: str, interfaceids: Iterable[str], chassis: str) -> list[str]:
    """Point the VM's LSPs that pin ``options:requested-chassis`` at ``chassis`` (one transaction;
    ports without the option follow the interfaceid by themselves). Returns the LSP names changed.
    Raises whatever ovsdbapp raises for the transaction."""
    rehomed = []
    with nb.transaction(check_error=True) as txn:
        for row in vm_ports(nb, name, interfaceids):
            opts = dict(row.options or {})
            if opts.get("requested-chassis"):
                txn.add(nb.lsp_set_options(row.name, **{**opts, "requested-chassis": chassis}))
                rehomed.append(row.name)
    return rehomed
