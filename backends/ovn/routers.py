"""Routers: a tenant's OVN Logical_Router, its ports on networks (an LRP plus a router-type LSP
on the switch), a gateway port on a provider network bound to a gateway chassis with a default
route, and NAT (SNAT of a network, floating IPs). Names and keys in :mod:`.names`.

Each mutating function is one transaction (:func:`.rows.checked_txn`). Errors: HostError when OVN
refuses, :class:`.rows.NotFound` for a router or network that is not there.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .names import (EXT_NAME, EXT_NETWORK, EXT_PORT, EXT_ROLE, EXT_ROUTER, EXT_TENANT,
                    ROLE_DEFAULT_ROUTE, ROLE_FIP, ROLE_GATEWAY_PORT, ROLE_ROUTER, ROLE_ROUTER_PORT,
                    ROLE_SNAT, lrp_name, router_lsp_name, router_name)
from .networks import NetworkInfo, find_network, random_mac
from .rows import NotFound, all_rows, checked_txn, ext_of, owned


@dataclass(frozen=True)
class NatInfo:
    """One NAT rule of a router: ``kind`` "snat" or "fip" (dnat_and_snat); ``port`` the VM LSP a
    floating IP was made for (None for SNAT or when given by address)."""

    kind: str
    external_ip: str
    logical_ip: str
    port: str | None = None


@dataclass(frozen=True)
class RouterInfo:
    """A virtdeck router: attached networks (human names), gateway (provider network name,
    address with prefix "172.16.0.100/24", gateway chassis, next hop) and NAT rules."""

    tenant: str
    name: str
    router: str
    uuid: str
    networks: tuple[str, ...]
    gateway_network: str | None
    gateway_address: str | None
    gateway_chassis: str | None
    nexthop: str | None
    nat: tuple[NatInfo, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready dict (for ``--json``)."""
        d = dict(self.__dict__)
        d["networks"] = list(self.networks)
        d["nat"] = [n.__dict__ for n in self.nat]
        return d


def _find_router(api, lr: str):
    for row in all_rows(api, "Logical_Router"):
        if row.name == lr:
            return row
    return None


def _router_info(api, lr) -> RouterInfo:
    e = ext_of(lr)
    networks, gw_net, gw_addr, gw_ch = [], None, None, None
    for p in lr.ports:
        pe = ext_of(p)
        if pe.get(EXT_ROLE) == ROLE_ROUTER_PORT:
            networks.append(pe.get(EXT_NETWORK, ""))
        elif pe.get(EXT_ROLE) == ROLE_GATEWAY_PORT:
            gw_net = pe.get(EXT_NETWORK)
            gw_addr = p.networks[0] if p.networks else None
            chs = sorted(p.gateway_chassis, key=lambda c: -c.priority)
            gw_ch = chs[0].chassis_name if chs else None
    nexthop = None
    for r in lr.static_routes:
        if ext_of(r).get(EXT_ROLE) == ROLE_DEFAULT_ROUTE:
            nexthop = r.nexthop
    nat = []
    for n in lr.nat:
        ne = ext_of(n)
        kind = "fip" if n.type == "dnat_and_snat" else n.type
        nat.append(NatInfo(kind, n.external_ip, n.logical_ip, ne.get(EXT_PORT)))
    return RouterInfo(tenant=e.get(EXT_TENANT, ""), name=e.get(EXT_NAME, lr.name), router=lr.name,
                      uuid=str(lr.uuid), networks=tuple(sorted(networks)),
                      gateway_network=gw_net, gateway_address=gw_addr, gateway_chassis=gw_ch,
                      nexthop=nexthop, nat=tuple(sorted(nat, key=lambda n: (n.kind, n.external_ip, n.logical_ip))))


def list_routers(api, tenant: str | None = None) -> list[RouterInfo]:
    """Every virtdeck router (of ``tenant`` if given), sorted by tenant then name."""
    out = [_router_info(api, lr) for lr in all_rows(api, "Logical_Router") if owned(lr, tenant, ROLE_ROUTER)]
    return sorted(out, key=lambda r: (r.tenant, r.name))


def find_router(api, name: str, tenant: str) -> RouterInfo:
    """Router ``name`` of ``tenant``; raises NotFound."""
    lr = _find_router(api, router_name(tenant, name))
    if lr is None or not owned(lr, tenant, ROLE_ROUTER):
        raise NotFound(f"no router {name!r} in tenant {tenant!r}")
    return _router_info(api, lr)


def create_router(api, tenant: str, name: str) -> RouterInfo:
    """Create an empty logical router (may_exist) in one transaction."""
    lr = router_name(tenant, name)
    with checked_txn(api, f"create router {tenant}/{name}") as txn:
        txn.add(api.lr_add(lr, may_exist=True,
                           external_ids={EXT_TENANT: tenant, EXT_NAME: name, EXT_ROLE: ROLE_ROUTER}))
    return find_router(api, name, tenant)


def delete_router(api, tenant: str, name: str) -> RouterInfo:
    """Delete router ``name`` with its ports (both sides), routes and NAT in one transaction."""
    info = find_router(api, name, tenant)
    with checked_txn(api, f"delete router {tenant}/{name}") as txn:
        for net in info.networks:
            txn.add(api.lsp_del(router_lsp_name(tenant, name, net), if_exists=True))
        if info.gateway_network:
            txn.add(api.lsp_del(router_lsp_name(tenant, name, info.gateway_network), if_exists=True))
        txn.add(api.lr_del(info.router, if_exists=True))
    return info


def _router_port_cmds(api, txn, tenant, router, net: NetworkInfo, address: str, role: str):
    """LRP on the router + LSP of type router on the network's switch."""
    prefix = ipaddress.IPv4Network(net.cidr).prefixlen
    lrp = lrp_name(tenant, router, net.name)
    ext = {EXT_TENANT: tenant, EXT_ROLE: role, EXT_ROUTER: router, EXT_NETWORK: net.name}
    mac = net.server_mac if role == ROLE_ROUTER_PORT and net.server_mac else random_mac()
    txn.add(api.lrp_add(router_name(tenant, router), lrp, mac, [f"{address}/{prefix}"],
                        may_exist=True, external_ids=ext))
    txn.add(api.lsp_add(net.switch, router_lsp_name(tenant, router, net.name), may_exist=True,
                        type="router", addresses=["router"], options={"router-port": lrp},
                        external_ids=ext))
    return lrp


def attach_network(api, tenant: str, router: str, network: str) -> RouterInfo:
    """Give router a port at the network's gateway address (MAC = the network's server_mac,
    so DHCP and ARP agree) and the switch a router-type LSP; one transaction."""
    net = find_network(api, network, tenant)
    find_router(api, router, tenant)
    with checked_txn(api, f"attach {tenant}/{network} to router {router}") as txn:
        _router_port_cmds(api, txn, tenant, router, net, net.gateway, ROLE_ROUTER_PORT)
    return find_router(api, router, tenant)


def _detach_cmds(api, txn, tenant, r: RouterInfo, network: str) -> None:
    txn.add(api.lrp_del(lrp_name(tenant, r.name, network), if_exists=True))
    txn.add(api.lsp_del(router_lsp_name(tenant, r.name, network), if_exists=True))
    lr = _find_router(api, r.router)
    try:
        net = find_network(api, network, tenant)
        cidr = ipaddress.IPv4Network(net.cidr)
    except NotFound:
        return
    for n in lr.nat:
        if n.type == "snat" and n.logical_ip == str(cidr):
            txn.add(api.db_remove("Logical_Router", lr.uuid, "nat", n.uuid, if_exists=True))
        elif n.type == "dnat_and_snat" and ipaddress.IPv4Address(n.logical_ip) in cidr:
            txn.add(api.db_remove("Logical_Router", lr.uuid, "nat", n.uuid, if_exists=True))


def detach_network(api, tenant: str, router: str, network: str) -> RouterInfo:
    """Remove the router's port on ``network`` (both sides) and NAT rules for its addresses."""
    r = find_router(api, router, tenant)
    with checked_txn(api, f"detach {tenant}/{network} from router {router}") as txn:
        _detach_cmds(api, txn, tenant, r, network)
    return find_router(api, router, tenant)


def set_gateway(api, tenant: str, router: str, network: str, address: str, chassis: str,
                nexthop: str | None = None) -> RouterInfo:
    """Make ``network`` (a provider network) the router's external side, in one transaction: a
    distributed gateway port at ``address`` (IPv4, inside the network), bound to gateway chassis
    ``chassis`` (an OVN chassis name = ovn-controller system-id), and a default route via
    ``nexthop`` (default: the network's gateway).

    Again on the same network: the port is kept; a new ``address`` moves the port and the SNAT
    rules that used the old one (floating IPs stay); the chassis and route are replaced. On
    another network: the old gateway goes first, with every NAT rule (they belonged to it)."""
    net = find_network(api, network, tenant)
    r = find_router(api, router, tenant)
    lr = router_name(tenant, router)
    nexthop = nexthop or net.gateway
    lrp = lrp_name(tenant, router, network)
    prefix = ipaddress.IPv4Network(net.cidr).prefixlen
    def done() -> bool:
        # the whole target state holds (a retry after a lost reply would otherwise add a second
        # default route: the old routes to remove were read before the first attempt)
        port = next((p for p in all_rows(api, "Logical_Router_Port") if p.name == lrp), None)
        row = _find_router(api, lr)
        routes = [rt for rt in (row.static_routes if row is not None else [])
                  if ext_of(rt).get(EXT_ROLE) == ROLE_DEFAULT_ROUTE]
        return (port is not None and list(port.networks) == [f"{address}/{prefix}"]
                and [g.chassis_name for g in port.gateway_chassis] == [chassis]
                and [rt.nexthop for rt in routes] == [nexthop])
    with checked_txn(api, f"set gateway of router {router} on {network}", done=done) as txn:
        if r.gateway_network == network:
            old = r.gateway_address.split("/")[0] if r.gateway_address else None
            if old != address:
                txn.add(api.db_set("Logical_Router_Port", lrp, ("networks", [f"{address}/{prefix}"])))
                for n in _find_router(api, lr).nat:
                    if n.type == "snat" and n.external_ip == old:
                        txn.add(api.db_set("NAT", n.uuid, ("external_ip", address)))
            for gc in _find_lrp(api, lrp).gateway_chassis:
                if gc.chassis_name != chassis:
                    txn.add(api.lrp_del_gateway_chassis(lrp, gc.chassis_name, if_exists=True))
        else:
            if r.gateway_network:
                _clear_gateway_cmds(api, txn, tenant, r)
            _router_port_cmds(api, txn, tenant, router, net, address, ROLE_GATEWAY_PORT)
        txn.add(api.lrp_set_gateway_chassis(lrp, chassis, 1))
        row = _find_router(api, lr)
        for old_route in row.static_routes if row is not None else []:
            if ext_of(old_route).get(EXT_ROLE) == ROLE_DEFAULT_ROUTE:
                txn.add(api.db_remove("Logical_Router", lr, "static_routes", old_route.uuid, if_exists=True))
        route = txn.add(api.db_create("Logical_Router_Static_Route", ip_prefix="0.0.0.0/0",
                                      nexthop=nexthop, external_ids={
                                          EXT_TENANT: tenant, EXT_ROLE: ROLE_DEFAULT_ROUTE,
                                          EXT_ROUTER: router}))
        txn.add(api.db_add("Logical_Router", lr, "static_routes", route))
    return find_router(api, router, tenant)


def _find_lrp(api, name: str):
    for row in all_rows(api, "Logical_Router_Port"):
        if row.name == name:
            return row
    raise NotFound(f"no logical router port {name!r}")


def _clear_gateway_cmds(api, txn, tenant, r: RouterInfo) -> None:
    lr = _find_router(api, r.router)
    txn.add(api.lrp_del(lrp_name(tenant, r.name, r.gateway_network), if_exists=True))
    txn.add(api.lsp_del(router_lsp_name(tenant, r.name, r.gateway_network), if_exists=True))
    for old in lr.static_routes:
        if ext_of(old).get(EXT_ROLE) == ROLE_DEFAULT_ROUTE:
            txn.add(api.db_remove("Logical_Router", lr.uuid, "static_routes", old.uuid, if_exists=True))
    for n in lr.nat:
        txn.add(api.db_remove("Logical_Router", lr.uuid, "nat", n.uuid, if_exists=True))


def clear_gateway(api, tenant: str, router: str) -> RouterInfo:
    """Remove the router's gateway port, default route and every NAT rule (one transaction)."""
    r = find_router(api, router, tenant)
    if r.gateway_network:
        with checked_txn(api, f"clear gateway of router {router}") as txn:
            _clear_gateway_cmds(api, txn, tenant, r)
    return find_router(api, router, tenant)


def _add_nat(api, tenant, router, nat_type, external_ip, logical_ip, what, port=None):
    lr = router_name(tenant, router)
    ext = {EXT_TENANT: tenant, EXT_ROLE: ROLE_SNAT if nat_type == "snat" else ROLE_FIP, EXT_ROUTER: router}
    if port:
        ext[EXT_PORT] = port
    row = _find_router(api, lr)
    for n in row.nat:
        if n.type == nat_type and n.external_ip == external_ip and n.logical_ip == logical_ip:
            return find_router(api, router, tenant)  # already there
    def done() -> bool:  # a NAT row has no unique name: a retry must find it first
        lr_row = _find_router(api, lr)
        return lr_row is not None and any(
            n.type == nat_type and n.external_ip == external_ip and n.logical_ip == logical_ip
            for n in lr_row.nat)
    with checked_txn(api, what, done=done) as txn:
        nat = txn.add(api.db_create("NAT", type=nat_type, external_ip=external_ip,
                                    logical_ip=logical_ip, external_ids=ext))
        txn.add(api.db_add("Logical_Router", lr, "nat", nat))
    return find_router(api, router, tenant)


def add_snat(api, tenant: str, router: str, network: str) -> RouterInfo:
    """SNAT the network's CIDR to the router's gateway address (one transaction, idempotent)."""
    r = find_router(api, router, tenant)
    net = find_network(api, network, tenant)
    external = r.gateway_address.split("/")[0]
    return _add_nat(api, tenant, router, "snat", external, net.cidr,
                    f"SNAT {tenant}/{network} on router {router}")


def add_fip(api, tenant: str, router: str, external_ip: str, logical_ip: str,
            port: str | None = None) -> RouterInfo:
    """Floating IP: dnat_and_snat ``external_ip`` <-> ``logical_ip`` on the router (centralised
    on the gateway chassis). ``port`` (the VM's LSP name) is recorded in external_ids."""
    return _add_nat(api, tenant, router, "dnat_and_snat", external_ip, logical_ip,
                    f"floating IP {external_ip} on router {router}", port)


def del_nat(api, tenant: str, router: str, kind: str, ip: str) -> RouterInfo:
    """Remove NAT rules of ``kind`` ("snat": by logical CIDR; "fip": by external IP)."""
    r = find_router(api, router, tenant)
    lr = _find_router(api, r.router)
    with checked_txn(api, f"remove {kind} {ip} from router {router}") as txn:
        for n in lr.nat:
            if kind == "snat" and n.type == "snat" and n.logical_ip == ip:
                txn.add(api.db_remove("Logical_Router", lr.uuid, "nat", n.uuid, if_exists=True))
            if kind == "fip" and n.type == "dnat_and_snat" and n.external_ip == ip:
                txn.add(api.db_remove("Logical_Router", lr.uuid, "nat", n.uuid, if_exists=True))
    return find_router(api, router, tenant)


def unlink_network_cmds(api, txn, tenant: str, network: str) -> None:
    """Add to ``txn`` what removes every router's hold on ``network`` of ``tenant``: router ports
    on it with their NAT rules, and the gateway (port, default route, all NAT) of a router whose
    gateway network it is. For :func:`.networks.delete_network`."""
    for r in list_routers(api, tenant):
        if network in r.networks:
            _detach_cmds(api, txn, tenant, r, network)
        if r.gateway_network == network:
            _clear_gateway_cmds(api, txn, tenant, r)
