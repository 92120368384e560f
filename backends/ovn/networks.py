"""Networks: a tenant's OVN Logical_Switch with its DHCP_Options row and, for a provider
network, a localnet port (names and external_ids keys in :mod:`.names`).

Everything here speaks to an ovsdbapp ``OvnNbApiIdlImpl`` (``api``, e.g. ``Session.nb()``) and
never validates operator input beyond what OVN itself needs: ``console/services/network.py``
validates first, then calls one function here. Each mutating function is one transaction
(:func:`.rows.checked_txn`). Errors: HostError when OVN refuses, :class:`.rows.NotFound` for a
network that is not there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ovsdbapp.backend.ovs_idl import command as _ovs_cmd

from .names import (EXT_CIDR, EXT_DHCP, EXT_DNS, EXT_EXCLUDE, EXT_GATEWAY, EXT_KIND, EXT_LEASE_TIME,
                    EXT_MTU, EXT_NAME, EXT_NETWORK, EXT_PHYSNET, EXT_ROLE, EXT_ROUTER, EXT_SERVER_MAC,
                    EXT_TENANT, EXT_VLAN, ROLE_DHCP, ROLE_LOCALNET, ROLE_NETWORK, ROLE_ROUTER_PORT,
                    is_virtdeck_key, localnet_name, switch_name)
from .rows import NotFound, all_rows, checked_txn, ext_of, owned


OVERLAY = "overlay"
PROVIDER = "provider"


OVERLAY_MTU = 1400
PROVIDER_MTU = 1500


DEFAULT_LEASE = 3600


def random_mac() -> str:
    """A random locally administered unicast MAC, 0a:xx:xx:xx:xx:xx."""
    return "0a:" + ":".join(f"{random.randrange(256):02x}" for _ in range(5))


@dataclass(frozen=True)
class NetworkSpec:
    """A validated network, as the service hands it to :func:`create_network`.

    ``kind``: "overlay" (GENEVE) or "provider" (localnet on ``physnet``, ``vlan`` 1–4094 or None
    for untagged). ``cidr`` an IPv4 network ("10.0.0.0/24"); ``gateway`` an address inside it
    (DHCP option ``router``, and the address a router port takes on attach); ``mtu`` in bytes;
    ``lease_time`` in seconds; ``dns`` IPv4 addresses; ``exclude`` addresses or ranges
    ("10.0.0.2", "10.0.0.10..10.0.0.20") OVN's IPAM must not hand out.
    """

    tenant: str
    name: str
    kind: str
    cidr: str
    gateway: str
    dhcp: bool = True
    lease_time: int = DEFAULT_LEASE
    dns: tuple[str, ...] = ()
    mtu: int = OVERLAY_MTU
    physnet: str | None = None
    vlan: int | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkInfo:
    """A virtdeck network as found in OVN NB (its Logical_Switch and related rows).

    ``switch``/``uuid``: the Logical_Switch name and UUID (attach VM LSPs to ``switch``);
    ``dhcp_options``: UUID of its DHCP_Options row (set it as the VM LSP's ``dhcpv4_options``)
    or None when DHCP is off; ``server_mac``: the DHCP server / router-port MAC; ``mtu`` bytes;
    ``lease_time`` seconds; ``vm_ports``: names of LSPs of type "" (VM ports) on the switch;
    ``routers``: names of virtdeck routers with a port on it.
    """

    tenant: str
    name: str
    switch: str
    uuid: str
    kind: str
    cidr: str
    gateway: str
    mtu: int
    dhcp: bool
    dhcp_options: str | None
    lease_time: int | None
    dns: tuple[str, ...]
    physnet: str | None
    vlan: int | None
    exclude: tuple[str, ...]
    server_mac: str
    vm_ports: tuple[str, ...] = ()
    routers: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready dict (for ``--json``)."""
        d = dict(self.__dict__)
        for k in ("dns", "exclude", "vm_ports", "routers"):
            d[k] = list(d[k])
        return d


def _network_ext(spec: NetworkSpec, server_mac: str) -> dict[str, str]:
    ext = {EXT_TENANT: spec.tenant, EXT_NAME: spec.name, EXT_ROLE: ROLE_NETWORK,
           EXT_KIND: spec.kind, EXT_CIDR: spec.cidr, EXT_GATEWAY: spec.gateway,
           EXT_MTU: str(spec.mtu), EXT_DHCP: "true" if spec.dhcp else "false",
           EXT_LEASE_TIME: str(spec.lease_time), EXT_SERVER_MAC: server_mac}
    if spec.dns:
        ext[EXT_DNS] = " ".join(spec.dns)
    if spec.exclude:
        ext[EXT_EXCLUDE] = " ".join(spec.exclude)
    if spec.physnet:
        ext[EXT_PHYSNET] = spec.physnet
    if spec.vlan is not None:
        ext[EXT_VLAN] = str(spec.vlan)
    return ext


def dhcp_option_values(spec: NetworkSpec, server_mac: str) -> dict[str, str]:
    """The DHCP_Options ``options`` OVN needs for ``spec`` (server_id = gateway)."""
    opts = {"router": spec.gateway, "server_id": spec.gateway, "server_mac": server_mac,
            "lease_time": str(spec.lease_time), "mtu": str(spec.mtu)}
    if spec.dns:
        opts["dns_server"] = spec.dns[0] if len(spec.dns) == 1 else "{" + ", ".join(spec.dns) + "}"
    return opts


def create_network(api, spec: NetworkSpec) -> NetworkInfo:
    """Create the Logical_Switch (+ DHCP_Options, + localnet port for a provider network) in one
    transaction and return it as found afterwards. ``spec`` must be validated already.

    The switch gets ``other_config:subnet`` (OVN IPAM for "dynamic" addresses) and
    ``exclude_ips`` (the gateway plus ``spec.exclude``). Idempotent: an existing switch of that
    name is kept (may_exist) and no second DHCP row is made.
    """
    sw = switch_name(spec.tenant, spec.name)
    server_mac = random_mac()
    exclude = " ".join([spec.gateway, *spec.exclude])
    existing = _find_switch(api, sw)
    if existing is not None:
        return _network_info(api, existing)
    # done: a switch of that name means this transaction (switch + DHCP + localnet, atomic)
    # committed — a retry after a lost reply must not add a second DHCP_Options row
    with checked_txn(api, f"create network {spec.tenant}/{spec.name}",
                     done=lambda: _find_switch(api, sw) is not None) as txn:
        txn.add(api.ls_add(sw, may_exist=True, external_ids=_network_ext(spec, server_mac),
                           other_config={"subnet": spec.cidr, "exclude_ips": exclude}))
        if spec.dhcp:
            d = txn.add(api.dhcp_options_add(spec.cidr, **{
                EXT_TENANT: spec.tenant, EXT_NETWORK: spec.name, EXT_ROLE: ROLE_DHCP}))
            txn.add(api.dhcp_options_set_options(d, **dhcp_option_values(spec, server_mac)))
        if spec.kind == PROVIDER:
            ln = txn.add(api.lsp_add(sw, localnet_name(spec.tenant, spec.name), may_exist=True,
                                     type="localnet", addresses=["unknown"],
                                     options={"network_name": spec.physnet},
                                     external_ids={EXT_TENANT: spec.tenant, EXT_NETWORK: spec.name,
                                                   EXT_ROLE: ROLE_LOCALNET}))
            if spec.vlan is not None:  # the VLAN goes in the `tag` column (lsp_add's tag is for parents)
                txn.add(api.db_set("Logical_Switch_Port", ln, ("tag", spec.vlan)))
    return find_network(api, spec.name, spec.tenant)


class _ReplaceColumn(_ovs_cmd.BaseCommand):
    """Write a whole column of one row (``db_set`` merges maps, so it could never drop a key);
    joins the caller's transaction like any other ovsdbapp command."""

    def __init__(self, api, table: str, record, column: str, value):
        super().__init__(api)
        self.table, self.record, self.column, self.value = table, record, column, value

    def run_idl(self, txn):
        row = self.api.lookup(self.table, self.record)
        row.verify(self.column)
        setattr(row, self.column, self.value)


def network_spec(info: NetworkInfo) -> NetworkSpec:
    """The :class:`NetworkSpec` a network found in NB was made from (for :func:`update_network`)."""
    return NetworkSpec(tenant=info.tenant, name=info.name, kind=info.kind, cidr=info.cidr,
                       gateway=info.gateway, dhcp=info.dhcp,
                       lease_time=info.lease_time or DEFAULT_LEASE, dns=info.dns, mtu=info.mtu,
                       physnet=info.physnet, vlan=info.vlan, exclude=info.exclude)


def update_network(api, spec: NetworkSpec) -> NetworkInfo:
    """Bring an existing network in line with ``spec`` in ONE transaction; only the fields that
    change nothing already handed out may differ from what it was made with: ``dhcp``,
    ``lease_time``, ``dns``, ``mtu``, ``exclude`` (the caller — the service — refuses the rest).

    Writes the switch's external_ids (whole column) and ``other_config:exclude_ips``; DHCP on:
    the DHCP_Options ``options`` are replaced (a row is created and set on every VM port of the
    switch when DHCP was off); DHCP off: the network's DHCP_Options rows go (VM ports hold them
    by weak reference, so the reference clears). No-op (no transaction) when nothing differs.
    Returns the network as found afterwards; raises NotFound / HostError.
    """
    info = find_network(api, spec.name, spec.tenant)
    if network_spec(info) == spec:
        return info
    ls = _find_switch(api, info.switch)
    server_mac = info.server_mac or random_mac()
    ext = {k: v for k, v in ext_of(ls).items() if not is_virtdeck_key(k)}
    ext.update(_network_ext(spec, server_mac))
    dhcp_rows = [r for r in _network_dhcp_rows(api, spec.tenant, spec.name) if ext_of(r).get(EXT_ROLE) == ROLE_DHCP]
    adds_dhcp = spec.dhcp and not dhcp_rows  # a plain insert: a retry must find it first
    with checked_txn(api, f"edit network {spec.tenant}/{spec.name}",
                     done=(lambda: any(ext_of(r).get(EXT_ROLE) == ROLE_DHCP for r in
                                       _network_dhcp_rows(api, spec.tenant, spec.name)))
                     if adds_dhcp else None) as txn:
        txn.add(_ReplaceColumn(api, "Logical_Switch", ls.uuid, "external_ids", ext))
        txn.add(api.db_set("Logical_Switch", ls.uuid,
                           ("other_config", {"exclude_ips": " ".join([spec.gateway, *spec.exclude])})))
        if spec.dhcp and dhcp_rows:
            for d in dhcp_rows:
                txn.add(api.dhcp_options_set_options(d.uuid, **dhcp_option_values(spec, server_mac)))
        elif spec.dhcp:
            d = txn.add(api.dhcp_options_add(spec.cidr, **{
                EXT_TENANT: spec.tenant, EXT_NETWORK: spec.name, EXT_ROLE: ROLE_DHCP}))
            txn.add(api.dhcp_options_set_options(d, **dhcp_option_values(spec, server_mac)))
            for p in ls.ports:
                if p.type == "":
                    txn.add(api.db_set("Logical_Switch_Port", p.uuid, ("dhcpv4_options", d)))
        else:
            for d in _network_dhcp_rows(api, spec.tenant, spec.name):
                txn.add(api.dhcp_options_del(d.uuid))
    return find_network(api, spec.name, spec.tenant)


def _find_switch(api, sw: str):
    for row in all_rows(api, "Logical_Switch"):
        if row.name == sw:
            return row
    return None


def _network_dhcp_rows(api, tenant: str, name: str) -> list:
    return [r for r in all_rows(api, "DHCP_Options")
            if ext_of(r).get(EXT_TENANT) == tenant and ext_of(r).get(EXT_NETWORK) == name]


def _network_info(api, ls) -> NetworkInfo:
    e = ext_of(ls)
    tenant, name = e.get(EXT_TENANT, ""), e.get(EXT_NAME, ls.name)
    dhcp_rows = [r for r in _network_dhcp_rows(api, tenant, name) if ext_of(r).get(EXT_ROLE) == ROLE_DHCP]
    vm_ports, routers = [], []
    for p in ls.ports:
        if p.type == "":
            vm_ports.append(p.name)
        elif p.type == "router" and ext_of(p).get(EXT_ROLE) == ROLE_ROUTER_PORT:
            routers.append(ext_of(p).get(EXT_ROUTER, ""))
    vlan = e.get(EXT_VLAN)
    lease = e.get(EXT_LEASE_TIME)
    return NetworkInfo(
        tenant=tenant, name=name, switch=ls.name, uuid=str(ls.uuid),
        kind=e.get(EXT_KIND, OVERLAY), cidr=e.get(EXT_CIDR, ls.other_config.get("subnet", "")),
        gateway=e.get(EXT_GATEWAY, ""), mtu=int(e.get(EXT_MTU, OVERLAY_MTU)),
        dhcp=e.get(EXT_DHCP) == "true",
        dhcp_options=str(dhcp_rows[0].uuid) if dhcp_rows else None,
        lease_time=int(lease) if lease else None,
        dns=tuple(e.get(EXT_DNS, "").split()), physnet=e.get(EXT_PHYSNET),
        vlan=int(vlan) if vlan else None, exclude=tuple(e.get(EXT_EXCLUDE, "").split()),
        server_mac=e.get(EXT_SERVER_MAC, ""), vm_ports=tuple(sorted(vm_ports)),
        routers=tuple(sorted(routers)))


def list_networks(api, tenant: str | None = None) -> list[NetworkInfo]:
    """Every virtdeck network (of ``tenant`` if given), sorted by tenant then name."""
    out = [_network_info(api, ls) for ls in all_rows(api, "Logical_Switch")
           if owned(ls, tenant, ROLE_NETWORK)]
    return sorted(out, key=lambda n: (n.tenant, n.name))


def find_network(api, name: str, tenant: str) -> NetworkInfo:
    """The network ``name`` of ``tenant``; raises NotFound. Facts come from the switch's
    external_ids and its DHCP_Options row (see :class:`NetworkInfo`)."""
    ls = _find_switch(api, switch_name(tenant, name))
    if ls is None or not owned(ls, tenant, ROLE_NETWORK):
        raise NotFound(f"no network {name!r} in tenant {tenant!r}")
    return _network_info(api, ls)


def delete_network(api, tenant: str, name: str, cascade: bool = False) -> NetworkInfo:
    """Delete network ``name`` of ``tenant`` in one transaction; returns what it was.

    Without ``cascade`` the caller must have checked there are no VM ports or router
    attachments (the service does). With it: router ports on the network (and, if it is a
    router's gateway network, that router's gateway, default route and NAT rules), VM ports
    (weak refs drop them from port groups) and every DHCP_Options row of the network go too.
    """
    from . import routers  # imported here: routers build on this module (find_network)

    info = find_network(api, name, tenant)
    with checked_txn(api, f"delete network {tenant}/{name}") as txn:
        routers.unlink_network_cmds(api, txn, tenant, name)
        if cascade:
            for p in info.vm_ports:
                txn.add(api.lsp_del(p, if_exists=True))
        for d in _network_dhcp_rows(api, tenant, name):
            txn.add(api.dhcp_options_del(d.uuid))
        txn.add(api.ls_del(info.switch, if_exists=True))
    return info
