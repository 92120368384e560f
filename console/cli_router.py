"""`virtdeck router create | list | delete | attach | detach | gateway | gateway-clear | snat |
snat-del | fip | fip-del`.

Examples::

    virtdeck router create r1 -t demo
    virtdeck router attach r1 web -t demo                  # port at web's gateway address
    virtdeck router gateway r1 ext --address 172.16.0.100 --chassis hv1 -t demo
    virtdeck router snat r1 web -t demo                    # web's CIDR -> 172.16.0.100
    virtdeck router fip r1 172.16.0.101 --port <LSP UUID> -t demo
    virtdeck router fip-del r1 172.16.0.101 -t demo

Every removal is a verb (``detach``, ``gateway-clear``, ``snat-del``, ``fip-del``); the old
``snat --delete``, ``fip --delete`` and ``gateway --clear`` still work, with a warning on stderr.
Every verb is one console/services/router.py call (validated first, one OVN transaction, audit).
The subcommands and options are declared in the verb registry (console/verbs/network.py).
"""

from __future__ import annotations

from . import output
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


ROUTER_COLUMNS = (
    output.col("TENANT", "tenant"),
    output.col("NAME", "name"),
    output.col("NETWORKS", "networks"),
    output.col("GATEWAY", lambda r: f"{r['gateway_address']} on {r['gateway_network']}"
               if r.get("gateway_network") else None),
    output.col("NAT", lambda r: len(r.get("nat") or ()), fixed=True, right=True),
    output.col("CHASSIS", "gateway_chassis", wide_only=True),
    output.col("ROUTER", "router", wide_only=True),
)


def cmd_list(args):
    """Routers (``-t`` narrows to one tenant): a table, or the list as JSON/YAML."""
    from .services.router import list_routers
    with cli_session(args) as s:
        rs = list_routers(s, args.tenant)
    output.table(args, ROUTER_COLUMNS, [r.to_dict() for r in rs], empty="no routers")
    return 0


def _deprecated(flag: str, verb: str) -> None:
    output.warn(f"{flag} is deprecated: use `virtdeck {verb}`")


def cmd_attach(args):
    from .services.router import attach_network
    return _do(args, attach_network, args.tenant, args.name, args.network)


def cmd_detach(args):
    from .services.router import detach_network
    return _do(args, detach_network, args.tenant, args.name, args.network)


def cmd_gateway(args):
    from .services import router
    if args.clear:
        _deprecated("router gateway --clear", "router gateway-clear")
        return cmd_gateway_clear(args)
    if not args.network or not args.address or not args.chassis:
        from .errors import ValidationError
        raise ValidationError("gateway", "give NETWORK, --address and --chassis (or use router gateway-clear)")
    return _do(args, router.set_gateway, args.tenant, args.name, args.network, args.address,
               args.chassis, args.nexthop)


def cmd_gateway_clear(args):
    from .services import router
    return _do(args, router.clear_gateway, args.tenant, args.name)


def cmd_snat(args):
    from .services import router
    if args.delete:
        _deprecated("router snat --delete", "router snat-del")
        return cmd_snat_del(args)
    return _do(args, router.add_snat, args.tenant, args.name, args.network)


def cmd_snat_del(args):
    from .services import router
    return _do(args, router.del_snat, args.tenant, args.name, args.network)


def cmd_fip(args):
    from .services import router
    if args.delete:
        _deprecated("router fip --delete", "router fip-del")
        return cmd_fip_del(args)
    return _do(args, router.add_fip, args.tenant, args.name, args.external_ip, port=args.port, ip=args.ip)


def cmd_fip_del(args):
    from .services import router
    return _do(args, router.del_fip, args.tenant, args.name, args.external_ip)
