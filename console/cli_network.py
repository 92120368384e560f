"""`virtdeck network create | list | show | edit | delete` and `virtdeck network sg …` (security groups).

Every verb goes through console/services (network.py, security.py); ``--json`` prints the
result as JSON. Exit codes: 0 ok, 2 invalid input (nothing written), 3 read-only, 4 OVN/host
error, 6 not found.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager


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
    """Print ``obj`` as JSON under --json, else the text lines."""
    if getattr(args, "json", False):
        json.dump(obj, sys.stdout, indent=2, default=str)
        print()
    else:
        for line in text_lines:
            print(line)


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
    req = NetworkRequest(tenant=args.tenant, name=args.name, kind=args.kind, cidr=args.cidr or "",
                         gateway=args.gateway, dhcp=not args.no_dhcp, lease_time=args.lease_time,
                         dns=args.dns or "", mtu=args.mtu, physnet=args.physnet, vlan=args.vlan,
                         exclude=args.exclude or "")
    with cli_session(args) as s:
        n = create_network(s, req)
    emit(args, n.to_dict(), ["created " + network_lines(n)[0], *network_lines(n)[1:]])
    return 0


def cmd_list(args) -> int:
    from .services.network import list_networks
    with cli_session(args) as s:
        nets = list_networks(s, args.tenant)
    lines = [f"{'TENANT':<12} {'NAME':<16} {'KIND':<9} {'CIDR':<18} {'VLAN':<6} {'MTU':<5} {'DHCP':<5} PORTS"]
    for n in nets:
        vlan = "" if n.vlan is None else str(n.vlan)
        lines.append(f"{n.tenant:<12} {n.name:<16} {n.kind:<9} {n.cidr:<18} {vlan:<6} {n.mtu:<5} "
                     f"{'on' if n.dhcp else 'off':<5} {len(n.vm_ports)}")
    emit(args, [n.to_dict() for n in nets], lines if nets else ["no networks"])
    return 0


def cmd_show(args) -> int:
    from ..backends.ovn_networks import find_network
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


def cmd_sg_list(args) -> int:
    from .services.security import list_security_groups
    with cli_session(args) as s:
        groups = list_security_groups(s, args.tenant)
    emit(args, [g.to_dict() for g in groups], [l for g in groups for l in sg_lines(g)] or ["no security groups"])
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


def _tenant(p, required=True):
    p.add_argument("--tenant", "-t", required=required, help="tenant name")


def register(subparsers) -> None:
    p = subparsers.add_parser("network", help="OVN networks: overlay (GENEVE) or provider (physnet/VLAN), security groups")
    sub = p.add_subparsers(dest="net_cmd", metavar="ACTION", required=True)

    c = sub.add_parser("create", help="create a network (validated first; one OVN transaction)")
    c.add_argument("name")
    _tenant(c)
    c.add_argument("--kind", choices=("overlay", "provider"), default="overlay")
    c.add_argument("--cidr", required=True, help="IPv4 network, e.g. 10.0.0.0/24")
    c.add_argument("--gateway", help="gateway address inside the CIDR (default: first host)")
    c.add_argument("--no-dhcp", action="store_true", help="no OVN DHCP on this network")
    c.add_argument("--lease-time", default="3600", metavar="SECONDS")
    c.add_argument("--dns", help="DNS servers, comma separated")
    c.add_argument("--mtu", help="bytes (default 1400 overlay, 1500 provider)")
    c.add_argument("--physnet", help="provider: physnet from the hosts' ovn-bridge-mappings")
    c.add_argument("--vlan", help="provider: VLAN id 1-4094 (omit for untagged)")
    c.add_argument("--exclude", help="addresses/ranges OVN must not hand out: 10.0.0.2,10.0.0.10..10.0.0.20")
    c.set_defaults(func=cmd_create)

    ls = sub.add_parser("list", help="list networks")
    _tenant(ls, required=False)
    ls.set_defaults(func=cmd_list)

    sh = sub.add_parser("show", help="one network in detail")
    sh.add_argument("name")
    _tenant(sh)
    sh.set_defaults(func=cmd_show)

    e = sub.add_parser("edit", help="change DHCP, lease, DNS, MTU or exclusions (one OVN transaction; "
                                    "CIDR/kind/gateway/VLAN cannot change: create a new network)")
    e.add_argument("name")
    _tenant(e)
    e.add_argument("--dhcp", action=argparse.BooleanOptionalAction, default=None,
                   help="OVN DHCP on (--dhcp) or off (--no-dhcp)")
    e.add_argument("--dhcp-lease", "--lease-time", dest="lease_time", metavar="SECONDS")
    e.add_argument("--dns", help="DNS servers, comma separated ('' clears)")
    e.add_argument("--mtu", help="bytes ('' = 1400 overlay / 1500 provider)")
    e.add_argument("--exclude", help="addresses/ranges OVN must not hand out ('' clears)")
    for opt in ("kind", "cidr", "gateway", "physnet", "vlan"):   # refused unless unchanged
        e.add_argument(f"--{opt}", help=argparse.SUPPRESS)
    e.set_defaults(func=cmd_edit)

    d = sub.add_parser("delete", help="delete a network (refused while VM ports/routers use it, unless --cascade)")
    d.add_argument("name")
    _tenant(d)
    d.add_argument("--cascade", action="store_true",
                   help="confirm: also remove its VM ports, their DHCP rows and router attachments")
    d.set_defaults(func=cmd_delete)

    sg = sub.add_parser("sg", help="security groups (OVN port groups + ACLs)")
    sgs = sg.add_subparsers(dest="sg_cmd", metavar="ACTION", required=True)
    x = sgs.add_parser("list", help="groups and their rules")
    _tenant(x, required=False)
    x.set_defaults(func=cmd_sg_list)
    x = sgs.add_parser("create", help="create a group (default rules unless --rule given)")
    x.add_argument("name")
    _tenant(x)
    x.add_argument("--rule", action="append", help="e.g. 'ingress tcp 22 from 10.0.0.0/8' (repeatable)")
    x.set_defaults(func=cmd_sg_create)
    x = sgs.add_parser("delete", help="delete a group")
    x.add_argument("name")
    _tenant(x)
    x.set_defaults(func=cmd_sg_delete)
    for verb, what in (("rule-add", "append a rule"), ("rule-del", "remove a rule")):
        x = sgs.add_parser(verb, help=what)
        x.add_argument("name")
        x.add_argument("rule", help="'ingress|egress any|icmp|tcp|udp [PORT[-PORT]] [from|to CIDR|self]'")
        _tenant(x)
        x.set_defaults(func=cmd_sg_rule)
    x = sgs.add_parser("port-add", help="put a VM port (LSP name) in a group")
    x.add_argument("name")
    x.add_argument("port")
    _tenant(x)
    x.set_defaults(func=cmd_sg_port)
