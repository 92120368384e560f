"""The ``network``, ``network sg`` and ``router`` verbs: declarations only (see :mod:`console.verbs`).

Services: console/services/network.py, security.py, router.py. CLI handlers:
console/cli_network.py and console/cli_router.py. In the console, network verbs live in the
Networks panel; router and security-group verbs open their screens (``o`` / ``a`` there).
"""

from __future__ import annotations

import argparse

from typing import Any

from . import Group, Verb, arg

GROUPS = (
    Group("network", "OVN networks: overlay (GENEVE) or provider (physnet/VLAN), security groups", "net_cmd"),
    Group("network sg", "security groups (OVN port groups + ACLs)", "sg_cmd"),
    Group("router", "OVN logical routers: attach networks, gateway, SNAT, floating IPs", "router_cmd"),
)

NAME = arg("name", help="network (or security group) name")
TENANT = arg("--tenant", "-t", required=True, help="tenant name")
ANY_TENANT = arg("--tenant", "-t", required=False, help="tenant name")


_NET_EXAMPLES = {
    "create": ("virtdeck network create web -t demo --cidr 10.0.0.0/24",
               "virtdeck network create ext -t demo --kind provider --physnet physnet1 --vlan 100 --cidr 172.16.0.0/24"),
    "list": ("virtdeck network list -t demo", "virtdeck network list --wide -o yaml"),
    "show": ("virtdeck network show web -t demo --json",),
    "edit": ("virtdeck network edit web -t demo --dns 9.9.9.9 --mtu 1400",),
    "delete": ("virtdeck network delete web -t demo --cascade",),
}
_SG_EXAMPLES = {
    "list": ("virtdeck network sg list -t demo",),
    "create": ("virtdeck network sg create web -t demo --rule 'ingress tcp 22 from 10.0.0.0/8'",),
    "delete": ("virtdeck network sg delete web -t demo",),
    "rule-add": ("virtdeck network sg rule-add web 'ingress tcp 443' -t demo",),
    "rule-del": ("virtdeck network sg rule-del web 'ingress tcp 443' -t demo",),
    "port-add": ("virtdeck network sg port-add web <LSP UUID> -t demo",),
}


def _net(leaf: str, help: str, service: str, *args, **kw) -> Verb:
    return Verb(name=f"network {leaf}", help=help, cli=f"cli_network.cmd_{leaf}", service=service,
                panel="networks", args=args, examples=_NET_EXAMPLES.get(leaf, ()), **kw)


def _sg(leaf: str, help: str, cli: str, service: str, *args) -> Verb:
    return Verb(name=f"network sg {leaf}", help=help, cli=cli, service=service, panel="networks",
                action="security_group", args=args, examples=_SG_EXAMPLES.get(leaf, ()))


_POSITIONAL_HELP = {"name": "router name", "network": "network name (of the tenant)",
                    "external_ip": "the floating IP (IPv4, on the gateway network)"}


def _router(leaf: str, help: str, service: str, *positional: str, extra=(), cli: str | None = None,
            examples: tuple[str, ...] = ()) -> Verb:
    args = (*(arg(p, help=_POSITIONAL_HELP.get(p)) for p in positional),
            TENANT if leaf != "list" else ANY_TENANT, *extra)
    return Verb(name=f"router {leaf}", help=help, cli=cli or f"cli_router.cmd_{leaf.replace('-', '_')}",
                service=service, panel="networks", action="routers", args=args, examples=examples)


def _deprecated(flag: str, verb: str) -> Any:
    """An old removal flag (``--delete``, ``--clear``) kept so old scripts work: hidden from
    --help; the handler warns that ``verb`` replaces it (console/cli_router.py)."""
    return arg(flag, action="store_true", help=argparse.SUPPRESS, dest=flag.strip("-"), default=False)


_RULE = "'ingress|egress any|icmp|tcp|udp [PORT[-PORT]] [from|to CIDR|self]'"

VERBS = (
    _net("create", "create a network (validated first; one OVN transaction)", "network.create_network",
         NAME, TENANT,
         arg("--kind", choices=("overlay", "provider"), default="overlay",
             help="overlay (GENEVE between hosts, default) or provider (a physnet, maybe a VLAN)"),
         arg("--cidr", required=True, help="IPv4 network, e.g. 10.0.0.0/24"),
         arg("--gateway", help="gateway address inside the CIDR (default: first host)"),
         # the same flags as network edit: --dhcp / --no-dhcp, --lease-time (--dhcp-lease: alias)
         arg("--dhcp", action=argparse.BooleanOptionalAction, default=True,
             help="OVN DHCP on this network (default) or not (--no-dhcp)"),
         arg("--lease-time", default="3600", metavar="SECONDS", help="DHCP lease in seconds (default 3600)"),
         arg("--dhcp-lease", dest="lease_time", default=argparse.SUPPRESS, help=argparse.SUPPRESS),
         arg("--dns", help="DNS servers, comma separated"),
         arg("--mtu", help="bytes (default 1400 overlay, 1500 provider)"),
         arg("--physnet", help="provider: physnet from the hosts' ovn-bridge-mappings"),
         arg("--vlan", help="provider: VLAN id 1-4094 (omit for untagged)"),
         arg("--exclude", help="addresses/ranges OVN must not hand out: 10.0.0.2,10.0.0.10..10.0.0.20"),
         label="Create", key="c", action="network_create"),
    _net("list", "list networks", "network.list_networks", ANY_TENANT, action="panel('networks')"),
    # no service function yet: cli_network.cmd_show reads ovn_networks.find_network itself
    _net("show", "one network in detail", None, NAME, TENANT, action="panel('networks')"),
    _net("edit", "change DHCP, lease, DNS, MTU or exclusions (one OVN transaction; "
                 "CIDR/kind/gateway/VLAN cannot change: create a new network)", "network.edit_network",
         NAME, TENANT,
         arg("--dhcp", action=argparse.BooleanOptionalAction, default=None,
             help="OVN DHCP on (--dhcp) or off (--no-dhcp)"),
         arg("--lease-time", dest="lease_time", metavar="SECONDS", help="DHCP lease in seconds"),
         arg("--dhcp-lease", dest="lease_time", default=argparse.SUPPRESS, help=argparse.SUPPRESS),
         arg("--dns", help="DNS servers, comma separated ('' clears)"),
         arg("--mtu", help="bytes ('' = 1400 overlay / 1500 provider)"),
         arg("--exclude", help="addresses/ranges OVN must not hand out ('' clears)"),
         # refused unless unchanged: accepted so a script may restate them, never advertised
         *(arg(f"--{opt}", help=argparse.SUPPRESS) for opt in ("kind", "cidr", "gateway", "physnet", "vlan")),
         label="Edit network", key="e", action="network_edit"),
    _net("delete", "delete a network (refused while VM ports/routers use it, unless --cascade)",
         "network.delete_network", NAME, TENANT,
         arg("--cascade", action="store_true",
             help="confirm: also remove its VM ports, their DHCP rows and router attachments"),
         label="Delete", key="ctrl+d,delete", action="network_delete"),
    _sg("list", "groups and their rules", "cli_network.cmd_sg_list", "security.list_security_groups",
        ANY_TENANT),
    _sg("create", "create a group (default rules unless --rule given)", "cli_network.cmd_sg_create",
        "security.create_security_group", NAME, TENANT,
        arg("--rule", action="append", help="e.g. 'ingress tcp 22 from 10.0.0.0/8' (repeatable)")),
    _sg("delete", "delete a group", "cli_network.cmd_sg_delete", "security.delete_security_group", NAME, TENANT),
    _sg("rule-add", "append a rule", "cli_network.cmd_sg_rule", "security.add_rule",
        NAME, arg("rule", help=_RULE), TENANT),
    _sg("rule-del", "remove a rule", "cli_network.cmd_sg_rule", "security.delete_rule",
        NAME, arg("rule", help=_RULE), TENANT),
    _sg("port-add", "put a VM port (LSP name) in a group", "cli_network.cmd_sg_port", "security.add_port",
        NAME, arg("port", help="the VM port's LSP name (UUID; virtdeck vm show NAME lists them)"), TENANT),
    _router("create", "create a router", "router.create_router", "name",
            examples=("virtdeck router create r1 -t demo",)),
    _router("list", "list routers", "router.list_routers", examples=("virtdeck router list -t demo -o yaml",)),
    _router("delete", "delete a router with its ports and NAT", "router.delete_router", "name",
            examples=("virtdeck router delete r1 -t demo",)),
    _router("attach", "attach a network (router port at the network's gateway address)", "router.attach_network",
            "name", "network", examples=("virtdeck router attach r1 web -t demo   # port at web's gateway address",)),
    _router("detach", "detach a network", "router.detach_network", "name", "network",
            examples=("virtdeck router detach r1 web -t demo",)),
    _router("gateway", "put the router's external side on a provider network", "router.set_gateway", "name",
            extra=(arg("network", nargs="?", help="provider network"),
                   arg("--address", help="the router's address on it (IPv4)"),
                   arg("--chassis", help="gateway chassis (hypervisor system-id, e.g. hv1)"),
                   arg("--nexthop", help="default route next hop (default: the network's gateway)"),
                   _deprecated("--clear", "router gateway-clear")),
            examples=("virtdeck router gateway r1 ext --address 172.16.0.100 --chassis hv1 -t demo",)),
    _router("gateway-clear", "remove the router's gateway, default route and NAT", "router.clear_gateway", "name",
            examples=("virtdeck router gateway-clear r1 -t demo",)),
    _router("snat", "SNAT an attached network to the gateway address", "router.add_snat", "name", "network",
            extra=(_deprecated("--delete", "router snat-del"),),
            examples=("virtdeck router snat r1 web -t demo   # web's CIDR -> the gateway address",)),
    _router("snat-del", "remove an attached network's SNAT", "router.del_snat", "name", "network",
            examples=("virtdeck router snat-del r1 web -t demo",)),
    _router("fip", "floating IP (dnat_and_snat) for a VM port", "router.add_fip", "name", "external_ip",
            extra=(arg("--port", help="the VM's LSP name (UUID)"),
                   arg("--ip", help="…or the VM's address on an attached network"),
                   _deprecated("--delete", "router fip-del")),
            examples=("virtdeck router fip r1 172.16.0.101 --ip 10.0.0.5 -t demo",)),
    _router("fip-del", "remove a floating IP", "router.del_fip", "name", "external_ip",
            examples=("virtdeck router fip-del r1 172.16.0.101 -t demo",)),
)
