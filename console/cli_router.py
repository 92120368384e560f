"""`virtdeck router create | list | delete | attach | detach | gateway | snat | fip`.

Examples::

    virtdeck router create r1 -t demo
    virtdeck router attach r1 web -t demo                  # port at web's gateway address
    virtdeck router gateway r1 ext --address 172.16.0.100 --chassis hv1 -t demo
    virtdeck router snat r1 web -t demo                    # web's CIDR -> 172.16.0.100
    virtdeck router fip r1 172.16.0.101 --port <LSP UUID> -t demo
    virtdeck router fip r1 172.16.0.101 --delete -t demo

Every verb is one console/services/router.py call (validated first, one OVN transaction, audit).
"""

from __future__ import annotations

from .cli_network import cli_session, emit


def router_lines(r) -> list[str]:
    lines = [f"{r.tenant}/{r.name} (router {r.router}): networks {', '.join(r.networks) or 'none'}"]
    if r.gateway_network:
        lines.append(f"  gateway {r.gateway_address} on {r.gateway_network}, chassis {r.gateway_chassis}, "
                     f"default via {r.nexthop}")
    for n in r.nat:
        what = "SNAT" if n.kind == "snat" else "floating IP"
        lines.append(f"  {what} {n.external_ip} <-> {n.logical_ip}" + (f" (port {n.port})" if n.port else ""))
    return lines


def _do(args, fn, *a, **kw) -> int:
    with cli_session(args) as s:
        r = fn(s, *a, **kw)
    emit(args, r.to_dict(), router_lines(r))
    return 0


def cmd_create(args):
    from .services.router import create_router
    return _do(args, create_router, args.tenant, args.name)


def cmd_delete(args):
    from .services.router import delete_router
    with cli_session(args) as s:
        r = delete_router(s, args.tenant, args.name)
    emit(args, r.to_dict(), [f"deleted router {r.tenant}/{r.name}"])
    return 0


def cmd_list(args):
    from .services.router import list_routers
    with cli_session(args) as s:
        rs = list_routers(s, args.tenant)
    emit(args, [r.to_dict() for r in rs], [l for r in rs for l in router_lines(r)] or ["no routers"])
    return 0


def cmd_attach(args):
    from .services.router import attach_network
    return _do(args, attach_network, args.tenant, args.name, args.network)


def cmd_detach(args):
    from .services.router import detach_network
    return _do(args, detach_network, args.tenant, args.name, args.network)


def cmd_gateway(args):
    from .services import router
    if args.clear:
        return _do(args, router.clear_gateway, args.tenant, args.name)
    if not args.network or not args.address or not args.chassis:
        from .errors import ValidationError
        raise ValidationError("gateway", "give NETWORK, --address and --chassis (or --clear)")
    return _do(args, router.set_gateway, args.tenant, args.name, args.network, args.address,
               args.chassis, args.nexthop)


def cmd_snat(args):
    from .services import router
    fn = router.del_snat if args.delete else router.add_snat
    return _do(args, fn, args.tenant, args.name, args.network)


def cmd_fip(args):
    from .services import router
    if args.delete:
        return _do(args, router.del_fip, args.tenant, args.name, args.external_ip)
    return _do(args, router.add_fip, args.tenant, args.name, args.external_ip, port=args.port, ip=args.ip)


def register(subparsers) -> None:
    p = subparsers.add_parser("router", help="OVN logical routers: attach networks, gateway, SNAT, floating IPs")
    sub = p.add_subparsers(dest="router_cmd", metavar="ACTION", required=True)

    def add(name, help, func, *positional):
        x = sub.add_parser(name, help=help)
        for pos in positional:
            x.add_argument(pos)
        x.add_argument("--tenant", "-t", required=name != "list", help="tenant name")
        x.set_defaults(func=func)
        return x

    add("create", "create a router", cmd_create, "name")
    add("list", "list routers", cmd_list)
    add("delete", "delete a router with its ports and NAT", cmd_delete, "name")
    add("attach", "attach a network (router port at the network's gateway address)", cmd_attach, "name", "network")
    add("detach", "detach a network", cmd_detach, "name", "network")
    g = add("gateway", "put the router's external side on a provider network", cmd_gateway, "name")
    g.add_argument("network", nargs="?", help="provider network")
    g.add_argument("--address", help="the router's address on it (IPv4)")
    g.add_argument("--chassis", help="gateway chassis (hypervisor system-id, e.g. hv1)")
    g.add_argument("--nexthop", help="default route next hop (default: the network's gateway)")
    g.add_argument("--clear", action="store_true", help="remove gateway, default route and NAT")
    s = add("snat", "SNAT an attached network to the gateway address", cmd_snat, "name", "network")
    s.add_argument("--delete", action="store_true")
    f = add("fip", "floating IP (dnat_and_snat) for a VM port", cmd_fip, "name", "external_ip")
    f.add_argument("--port", help="the VM's LSP name (UUID)")
    f.add_argument("--ip", help="…or the VM's address on an attached network")
    f.add_argument("--delete", action="store_true")

