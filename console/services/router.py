"""Router services: create / delete a tenant router, attach / detach networks, set the gateway
on a provider network, SNAT a network, floating IPs for VM ports.

Same contract as console/services/network.py: validate first (ValidationError naming the field,
nothing written), one OVN transaction per verb (backends/ovn/routers.py). Every verb runs in the
verb frame (:func:`.verb.run`): read-only guard first, then one audit record on
``router TENANT/NAME`` ("router.create", "router.attach", "router.gateway", "router.snat",
"router.fip", …) with the verb's arguments as details. Errors: ReadOnlyError, ValidationError
(field named, nothing written), NotFound, HostError (OVN refused).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ...backends.ovn import networks as ovn_networks, ports as ovn_ports, routers as ovn_routers, rows as ovn_rows
from ...backends.ovn.routers import RouterInfo
from ..errors import AlreadyExists, ValidationError
from . import verb
from .network import nb_api
from .network_fields import check_address, check_name


@dataclass(frozen=True)
class VmPort:
    """A tenant's VM port as the router screen offers it for a floating IP: ``lsp`` the LSP
    name (a UUID for libvirt-bound ports), ``vm`` the VM name from ``external_ids:virtdeck:vm``
    ("" if none), ``ip`` its first IPv4 address (None before OVN's IPAM gave one), ``network``
    the network's human name."""

    lsp: str
    vm: str
    ip: str | None
    network: str


def list_vm_ports(session, tenant: str) -> list[VmPort]:
    """Every VM port on ``tenant``'s networks, by network then VM name (read from NB)."""
    api = nb_api(session)
    network_of = {lsp: net.name for net in ovn_networks.list_networks(api, tenant) for lsp in net.vm_ports}
    out = [VmPort(lsp, vm, ips[0] if ips else None, network_of[lsp])
           for lsp, (vm, ips) in ovn_ports.port_ips(api, network_of).items()]   # one pass over the LSPs
    return sorted(out, key=lambda p: (p.network, p.vm, p.lsp))


def list_routers(session, tenant: str | None = None) -> list[RouterInfo]:
    """Every virtdeck router (of ``tenant`` if given)."""
    return ovn_routers.list_routers(nb_api(session), tenant)


def create_router(session, tenant: str, name: str) -> RouterInfo:
    """Create router ``name`` for ``tenant``; refused if the name is taken."""
    def body(run: verb.VerbRun) -> RouterInfo:
        api = nb_api(session)
        check_name(tenant, "tenant")
        check_name(name, "name")
        if any(r.name == name for r in ovn_routers.list_routers(api, tenant)):
            raise AlreadyExists("name", f"tenant {tenant} already has a router called {name}")
        return ovn_routers.create_router(api, tenant, name)
    return verb.run("router.create", f"router {tenant}/{name}", body)


def delete_router(session, tenant: str, name: str) -> RouterInfo:
    """Delete router ``name`` with its ports, routes and NAT rules (the networks stay)."""
    def body(run: verb.VerbRun) -> RouterInfo:
        return ovn_routers.delete_router(nb_api(session), tenant, name)
    return verb.run("router.delete", f"router {tenant}/{name}", body)


def attach_network(session, tenant: str, router: str, network: str) -> RouterInfo:
    """Attach ``network`` to ``router`` at the network's gateway address.

    Refused when the network is already attached to a router (its gateway address is taken)
    or is the router's gateway network."""
    def body(run: verb.VerbRun) -> RouterInfo:
        run.note(network=network)
        api = nb_api(session)
        r = ovn_routers.find_router(api, router, tenant)
        net = ovn_networks.find_network(api, network, tenant)
        if net.routers:
            raise AlreadyExists("network", f"{network} is already attached to router {', '.join(net.routers)} "
                                f"(its gateway {net.gateway} is taken)")
        if r.gateway_network == network:
            raise ValidationError("network", f"{network} is the gateway network of {router}")
        return ovn_routers.attach_network(api, tenant, router, network)
    return verb.run("router.attach", f"router {tenant}/{router}", body)


def detach_network(session, tenant: str, router: str, network: str) -> RouterInfo:
    """Detach ``network`` from ``router`` (with NAT rules for its addresses)."""
    def body(run: verb.VerbRun) -> RouterInfo:
        run.note(network=network)
        api = nb_api(session)
        r = ovn_routers.find_router(api, router, tenant)
        if network not in r.networks:
            raise ValidationError("network", f"{network} is not attached to router {router}")
        return ovn_routers.detach_network(api, tenant, router, network)
    return verb.run("router.detach", f"router {tenant}/{router}", body)


def _used_external(routers: list[RouterInfo]) -> dict[str, str]:
    used = {}
    for r in routers:
        if r.gateway_address:
            used[r.gateway_address.split("/")[0]] = f"the gateway of router {r.tenant}/{r.name}"
        for n in r.nat:
            if n.kind == "fip":
                used[n.external_ip] = f"a floating IP of router {r.tenant}/{r.name}"
    return used


def set_gateway(session, tenant: str, router: str, network: str, address: str,
                chassis: str, nexthop: str | None = None) -> RouterInfo:
    """Put ``router``'s external side on provider ``network`` at ``address`` (IPv4 inside it),
    on gateway chassis ``chassis`` (OVN chassis name = the hypervisor's system-id; in the lab
    the host name), default route via ``nexthop`` (default: the network's gateway)."""
    def body(run: verb.VerbRun) -> RouterInfo:
        run.note(network=network, address=address, chassis=chassis)
        api = nb_api(session)
        ovn_routers.find_router(api, router, tenant)
        net = ovn_networks.find_network(api, network, tenant)
        if net.kind != ovn_networks.PROVIDER:
            raise ValidationError("network", f"{network} is an overlay network; a gateway goes on a provider network")
        cidr = ipaddress.IPv4Network(net.cidr)
        a = check_address(address or "", "address")
        if a not in cidr or a in (cidr.network_address, cidr.broadcast_address):
            raise ValidationError("address", f"{a} is not a host address of {network} ({cidr})")
        if str(a) == net.gateway:
            raise ValidationError("address", f"{a} is the gateway of {network} itself; pick a free address")
        routers = ovn_routers.list_routers(api)
        own = [x for x in routers if x.tenant == tenant and x.name == router]
        used = _used_external([x for x in routers if x not in own])
        used.update({n.external_ip: f"a floating IP of router {tenant}/{router}"
                     for x in own for n in x.nat if n.kind == "fip"})
        if str(a) in used:
            raise AlreadyExists("address", f"{a} is already {used[str(a)]}")
        if not (chassis or "").strip():
            raise ValidationError("chassis", "name the gateway chassis (a hypervisor whose bridge mappings carry the physnet)")
        hop = str(check_address(nexthop, "nexthop")) if nexthop else None
        if hop and ipaddress.IPv4Address(hop) not in cidr:
            raise ValidationError("nexthop", f"{hop} is not on {network} ({cidr})")
        return ovn_routers.set_gateway(api, tenant, router, network, str(a), chassis.strip(), hop)
    return verb.run("router.gateway", f"router {tenant}/{router}", body)


def clear_gateway(session, tenant: str, router: str) -> RouterInfo:
    """Remove the router's gateway (and with it every NAT rule)."""
    def body(run: verb.VerbRun) -> RouterInfo:
        return ovn_routers.clear_gateway(nb_api(session), tenant, router)
    return verb.run("router.gateway-clear", f"router {tenant}/{router}", body)


def add_snat(session, tenant: str, router: str, network: str) -> RouterInfo:
    """SNAT ``network`` (attached to ``router``) to the router's gateway address."""
    def body(run: verb.VerbRun) -> RouterInfo:
        run.note(network=network)
        api = nb_api(session)
        r = ovn_routers.find_router(api, router, tenant)
        if not r.gateway_address:
            raise ValidationError("router", f"router {router} has no gateway; set one first (router gateway)")
        if network not in r.networks:
            raise ValidationError("network", f"{network} is not attached to router {router}; attach it first")
        return ovn_routers.add_snat(api, tenant, router, network)
    return verb.run("router.snat", f"router {tenant}/{router}", body)


def del_snat(session, tenant: str, router: str, network: str) -> RouterInfo:
    """Remove the SNAT rule of ``network``."""
    def body(run: verb.VerbRun) -> RouterInfo:
        run.note(network=network)
        api = nb_api(session)
        net = ovn_networks.find_network(api, network, tenant)
        return ovn_routers.del_nat(api, tenant, router, "snat", net.cidr)
    return verb.run("router.snat-delete", f"router {tenant}/{router}", body)


def port_ipv4(api, lsp_name: str) -> str | None:
    """The first IPv4 address of LSP ``lsp_name`` (static "MAC IP…" or OVN's dynamic_addresses),
    None before OVN's IPAM gave one. Raises NotFound when there is no such LSP."""
    found = ovn_ports.port_ips(api, [lsp_name]).get(lsp_name)
    if found is None:
        raise ovn_rows.NotFound(f"no logical switch port {lsp_name!r}")
    return found[1][0] if found[1] else None


def add_fip(session, tenant: str, router: str, external_ip: str, port: str | None = None,
            ip: str | None = None) -> RouterInfo:
    """Floating IP ``external_ip`` (on the router's gateway network) for a VM port (LSP name
    ``port``) or an address ``ip`` on one of the router's networks."""
    def body(run: verb.VerbRun) -> RouterInfo:
        run.note(external_ip=external_ip, port=port, ip=ip)
        api = nb_api(session)
        r = ovn_routers.find_router(api, router, tenant)
        if not r.gateway_network:
            raise ValidationError("router", f"router {router} has no gateway; set one first (router gateway)")
        gw = ovn_networks.find_network(api, r.gateway_network, tenant)
        ext = check_address(external_ip or "", "external_ip")
        cidr = ipaddress.IPv4Network(gw.cidr)
        if ext not in cidr or str(ext) == gw.gateway:
            raise ValidationError("external_ip", f"{ext} is not a free host address of {gw.name} ({cidr})")
        used = _used_external(ovn_routers.list_routers(api))
        if str(ext) in used:
            raise AlreadyExists("external_ip", f"{ext} is already {used[str(ext)]}")
        if port:
            logical = port_ipv4(api, port)
            if logical is None:
                raise ValidationError("port", f"port {port} has no IPv4 address yet")
        elif ip:
            logical = str(check_address(ip, "ip"))
        else:
            raise ValidationError("port", "give the VM port (LSP name) or its address")
        nets = [ovn_networks.find_network(api, n, tenant) for n in r.networks]
        if not any(ipaddress.IPv4Address(logical) in ipaddress.IPv4Network(n.cidr) for n in nets):
            raise ValidationError("port", f"{logical} is on none of router {router}'s networks ({', '.join(r.networks) or 'none'})")
        return ovn_routers.add_fip(api, tenant, router, str(ext), logical, port)
    return verb.run("router.fip", f"router {tenant}/{router}", body)


def del_fip(session, tenant: str, router: str, external_ip: str) -> RouterInfo:
    """Remove floating IP ``external_ip`` from ``router``."""
    def body(run: verb.VerbRun) -> RouterInfo:
        run.note(external_ip=external_ip)
        return ovn_routers.del_nat(nb_api(session), tenant, router, "fip", external_ip)
    return verb.run("router.fip-delete", f"router {tenant}/{router}", body)
