"""The ``network``, ``network sg`` and ``router`` verbs: declarations only (see :mod:`console.verbs`).

Services: console/services/network.py, security.py, router.py. CLI handlers:
console/cli_network.py and console/cli_router.py. In the console, network verbs live in the
Networks panel; router and security-group verbs open their screens (``o`` / ``a`` there).
"""

from __future__ import annotations

import argparse

from . import Group, Verb, arg

GROUPS = (
    Group("network", "OVN networks: overlay (GENEVE) or provider (physnet/VLAN), security groups", "net_cmd"),
    Group("network sg", "security groups (OVN port groups + ACLs)", "sg_cmd"),
    Group("router", "OVN logical routers: attach networks, gateway, SNAT, floating IPs", "router_cmd"),
)

NAME = arg("name")
TENANT = arg("--tenant", "-t", required=True, help="tenant name")
ANY_TENANT = arg("--tenant", "-t", required=False, help="tenant name")


def _net(leaf: str, help: str, service: str, *args, **kw) -> Verb:
    return Verb(name=f"network {leaf}", help=help, cli=f"cli_network.cmd_{leaf}", service=service,
                panel="networks", args=args, **kw)


def _sg(leaf: str, help: str, cli: str, service: str, *args) -> Verb:
    return Verb(name=f"network sg {leaf}", help=help, cli=cli, service=service, panel="networks",
                action="security_group", args=args)


def _router(leaf: str, help: str, service: str, *positional: str, extra=(), cli: str | None = None) -> Verb:
    args = (*(arg(p) for p in positional), TENANT if leaf != "list" else ANY_TENANT, *extra)
    return Verb(name=f"router {leaf}", help=help, cli=cli or f"cli_router.cmd_{leaf}", service=service,
                panel="networks", action="routers", args=args)


_RULE = "'ingress|egress any|icmp|tcp|udp [PORT[-PORT]] [from|to CIDR|self]'"

VERBS = (
    _net("create", "create a network (validated first; one OVN transaction)", "network.create_network",
         NAME, TENANT,
         arg("--kind", choices=("overlay", "provider"), default="overlay"),
         arg("--cidr", required=True, help="IPv4 network, e.g. 10.0.0.0/24"),
         arg("--gateway", help="gateway address inside the CIDR (default: first host)"),
         arg("--no-dhcp", action="store_true", help="no OVN DHCP on this network"),
         arg("--lease-time", default="3600", metavar="SECONDS"),
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
         arg("--dhcp-lease", "--lease-time", dest="lease_time", metavar="SECONDS"),
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
        NAME, arg("port"), TENANT),
    _router("create", "create a router", "router.create_router", "name"),
    _router("list", "list routers", "router.list_routers"),
    _router("delete", "delete a router with its ports and NAT", "router.delete_router", "name"),
    _router("attach", "attach a network (router port at the network's gateway address)", "router.attach_network",
            "name", "network"),
    _router("detach", "detach a network", "router.detach_network", "name", "network"),
    _router("gateway", "put the router's external side on a provider network", "router.set_gateway", "name",
            extra=(arg("network", nargs="?", help="provider network"),
                   arg("--address", help="the router's address on it (IPv4)"),
                   arg("--chassis", help="gateway chassis (hypervisor system-id, e.g. hv1)"),
                   arg("--nexthop", help="default route next hop (default: the network's gateway)"),
                   arg("--clear", action="store_true", help="remove gateway, default route and NAT"))),
    _router("snat", "SNAT an attached network to the gateway address", "router.add_snat", "name", "network",
            extra=(arg("--delete", action="store_true"),)),
    _router("fip", "floating IP (dnat_and_snat) for a VM port", "router.add_fip", "name", "external_ip",
            extra=(arg("--port", help="the VM's LSP name (UUID)"),
                   arg("--ip", help="…or the VM's address on an attached network"),
                   arg("--delete", action="store_true"))),
)
