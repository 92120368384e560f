"""`virtdeck router create | list | delete | attach | detach | gateway | snat | fip`.

Examples::

    virtdeck router create r1 -t demo
    virtdeck router attach r1 web -t demo                  # port at web's gateway address
    virtdeck router gateway r1 ext --address 172.16.0.100 --chassis hv1 -t demo
    virtdeck router snat r1 web -t demo                    # web's CIDR -> 172.16.0.100
    virtdeck router fip r1 172.16.0.101 --port <LSP UUID> -t demo
    virtdeck router fip r1 172.16.0.101 --delete -t demo

Every verb is one console/services/router.py call (validated first, one OVN transaction, audit).
The subcommands and options are declared in the verb registry (console/verbs/network.py).
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
