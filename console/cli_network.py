"""`virtdeck network create | list | show | edit | delete` and `virtdeck network sg …` (security groups).

The CLI handlers; the subcommands, options and help are declared in the verb registry
(console/verbs/network.py). Every verb goes through console/services (network.py, security.py);
``--json`` / ``-o json|yaml`` prints the result (console/output.py). Exit codes
(:class:`console.errors.ExitCode`): 0 ok, 2 invalid input (nothing written), 3 not found,
4 in use / exists, 5 OVN/host error, 7 read-only.
"""

from __future__ import annotations

from contextlib import contextmanager

from . import output


@contextmanager
def cli_session(args):
    """A Session on the inventory named by --config (or the default one); honours --readonly."""
    from ..backends.session import Session
    from ..config.inventory import load
    from ..config.paths import resolve_inventory_path
    from .services.guard import set_readonly

    set_readonly(bool(getattr(args, "readonly", False)))  # one verb per process
    inv = load(resolve_inventory_path(getattr(args, "config", None)))
    session = Session(inv)
    try:
        yield session
    finally:
        session.close()


def emit(args, obj, text_lines) -> None:
    """Print ``obj`` as JSON/YAML under --json / -o json|yaml, else the text lines
    (console/output.py ``emit``)."""
    output.emit(args, obj, text_lines)


def network_lines(n) -> list[str]:
    where = "GENEVE overlay" if n.kind == "overlay" else \
        f"provider {n.physnet} " + (f"VLAN {n.vlan}" if n.vlan is not None else "untagged")
    dhcp = f"DHCP on (lease {n.lease_time}s)" if n.dhcp else "DHCP off"
    lines = [f"{n.tenant}/{n.name}: {n.cidr} gw {n.gateway}, {where}, MTU {n.mtu}, {dhcp}",
             f"  switch {n.switch} ({n.uuid})"]
    if n.dns:
        lines.append(f"  DNS {', '.join(n.dns)}")
    if n.exclude:
        lines.append(f"  excluded {' '.join(n.exclude)}")
    if n.vm_ports or n.routers:
        lines.append(f"  {len(n.vm_ports)} VM port(s); routers: {', '.join(n.routers) or 'none'}")
    return lines


def cmd_create(args) -> int:
    from .services.network import NetworkRequest, create_network
    from .services.network_fields import check_known_tenant
    req = NetworkRequest(tenant=args.tenant, name=args.name, kind=args.kind, cidr=args.cidr or "",
                         gateway=args.gateway, dhcp=args.dhcp, lease_time=args.lease_time,
                         dns=args.dns or "", mtu=args.mtu, physnet=args.physnet, vlan=args.vlan,
                         exclude=args.exclude or "")
    with cli_session(args) as s:
        check_known_tenant(args.tenant, [t.name for t in s.inventory.tenants])
        n = create_network(s, req)
    emit(args, n.to_dict(), ["created " + network_lines(n)[0], *network_lines(n)[1:]])
    return 0


NETWORK_COLUMNS = (
    output.col("TENANT", "tenant"),
    output.col("NAME", "name"),
    output.col("KIND", "kind", fixed=True),
    output.col("CIDR", "cidr", fixed=True),
    output.col("VLAN", "vlan", fixed=True, right=True),
    output.col("MTU", "mtu", fixed=True, right=True),
    output.col("DHCP", lambda n: "on" if n["dhcp"] else "off", fixed=True),
    output.col("PORTS", lambda n: len(n["vm_ports"]), fixed=True, right=True),
    output.col("PHYSNET", "physnet", wide_only=True),
    output.col("ROUTERS", "routers", wide_only=True),
    output.col("SWITCH", "switch", wide_only=True),
)


def cmd_list(args) -> int:
    """Networks (``-t`` narrows to one tenant): a table, or the list as JSON/YAML."""
    from .completion import remember
    from .services.network import list_networks
    with cli_session(args) as s:
        nets = list_networks(s, args.tenant)
    rows = [n.to_dict() for n in nets]
    if not args.tenant:
        remember("networks", [n.name for n in nets])
    output.table(args, NETWORK_COLUMNS, rows, empty="no networks")
    return 0


def cmd_show(args) -> int:
    from ..backends.ovn.networks import find_network
    from .services.network import nb_api
    with cli_session(args) as s:
        n = find_network(nb_api(s), args.name, args.tenant)
    emit(args, n.to_dict(), network_lines(n))
    return 0


def cmd_edit(args) -> int:
    from .services.network import edit_network
    changes = {k: getattr(args, k) for k in ("dhcp", "lease_time", "dns", "mtu", "exclude",
                                             "kind", "cidr", "gateway", "physnet", "vlan")}
    with cli_session(args) as s:
        n = edit_network(s, args.tenant, args.name, **changes)
    emit(args, n.to_dict(), ["edited " + network_lines(n)[0], *network_lines(n)[1:]])
    return 0


def cmd_delete(args) -> int:
    from .services.network import delete_network
    nics: dict = {"detached": [], "problems": []}
    with cli_session(args) as s:
        n = delete_network(s, args.tenant, args.name, cascade=args.cascade, nics_out=nics)
    extra = f" with {len(n.vm_ports)} VM port(s)" if args.cascade and n.vm_ports else ""
    lines = [f"deleted network {n.tenant}/{n.name}{extra}"]
    lines += [f"  detached NIC {d['mac']} from {d['vm']} on {d['host']} ({'live + config' if d['live'] else 'config'})"
              for d in nics["detached"]]
    lines += [f"  NOT detached: {p}" for p in nics["problems"]]
    emit(args, dict(n.to_dict(), nics_detached=nics["detached"], nic_problems=nics["problems"]), lines)
    return 0


def sg_lines(g) -> list[str]:
    return [f"{g.tenant}/{g.name} (port group {g.port_group}, {len(g.ports)} port(s))",
            *[f"  {r.text()}" for r in g.rules]]


SG_COLUMNS = (
    output.col("TENANT", "tenant"),
    output.col("NAME", "name"),
    output.col("PORTS", lambda g: len(g.get("ports") or ()), fixed=True, right=True),
    output.col("RULES", lambda g: "; ".join(r if isinstance(r, str) else r.get("text", str(r))
                                              for r in g.get("rules") or ()) or None),
    output.col("PORT GROUP", "port_group", wide_only=True),
)


def cmd_sg_list(args) -> int:
    """Security groups (``-t`` narrows to one tenant): a table, or the list as JSON/YAML."""
    from .services.security import list_security_groups
    with cli_session(args) as s:
        groups = list_security_groups(s, args.tenant)
    rows = [dict(g.to_dict(), rules=[r.text() for r in g.rules]) for g in groups]
    output.table(args, SG_COLUMNS, rows, empty="no security groups", data=[g.to_dict() for g in groups])
    return 0


def cmd_sg_create(args) -> int:
    from .services.security import create_security_group
    with cli_session(args) as s:
        g = create_security_group(s, args.tenant, args.name, args.rule or None)
    emit(args, g.to_dict(), sg_lines(g))
    return 0


def cmd_sg_delete(args) -> int:
    from .services.security import delete_security_group
    with cli_session(args) as s:
        g = delete_security_group(s, args.tenant, args.name)
    emit(args, g.to_dict(), [f"deleted security group {g.tenant}/{g.name}"])
    return 0


def cmd_sg_rule(args) -> int:
    from .services import security
    with cli_session(args) as s:
        if args.sg_cmd == "rule-add":
            g = security.add_rule(s, args.tenant, args.name, args.rule)
        else:
            g = security.delete_rule(s, args.tenant, args.name, args.rule)
    emit(args, g.to_dict(), sg_lines(g))
    return 0


def cmd_sg_port(args) -> int:
    from .services.security import add_port
    with cli_session(args) as s:
        add_port(s, args.tenant, args.name, args.port)
    emit(args, {"tenant": args.tenant, "group": args.name, "port": args.port},
         [f"port {args.port} joined {args.tenant}/{args.name}"])
    return 0
