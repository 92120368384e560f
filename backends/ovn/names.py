"""Every OVN name rule and ``external_ids`` key virtdeck uses: the only place they are spelled.

OVN names are global to one NB database; virtdeck keeps the tenant and the human name in
``external_ids`` (keys namespaced ``virtdeck:*`` like Neutron's ``neutron:*``) and derives row
names from them:

=====================  ====================================  ================================
row                    name                                  external_ids (besides tenant)
=====================  ====================================  ================================
Logical_Switch         ``vd.<tenant>.<network>``             role=network, name, kind, cidr…
DHCP_Options           (no name)                             role=dhcp, network
localnet LSP           ``ln:vd.<tenant>.<network>``          role=localnet, network
VM LSP                 a UUID (libvirt's interfaceid)        vm, network, name (``VM-nicN``)
Logical_Router         ``vd.<tenant>.<router>``              role=router, name
router port (LRP)      ``lrp:vd.<tenant>.<router>:<net>``    role=router-port, router, network
switch side (LSP)      ``lsp:vd.<tenant>.<router>:<net>``    role=router-port, router, network
NAT                    (no name)                             role=snat|fip, router, port
static route           (no name)                             role=default-route, router
Port_Group (SG)        ``vdsg_<len(tenant)>_<tenant>_<sg>``  role=security-group, name
ACL (SG rule)          (no name)                             role=sg-rule|sg-drop, sg, rule, order
=====================  ====================================  ================================

``-`` becomes ``_`` in port-group names, which must be identifiers in ACL matches; the length
prefix keeps tenant/name pairs distinct. Pure Python (no ovsdbapp), so any layer may read it.
"""

from __future__ import annotations

#: Prefix of every virtdeck ``external_ids`` key.
PREFIX = "virtdeck:"

# Keys every tagged row may carry.
EXT_TENANT = PREFIX + "tenant"      # owning tenant
EXT_NAME = PREFIX + "name"          # human name (network, router, SG, VM port label)
EXT_ROLE = PREFIX + "role"          # one of the ROLE_* values below
EXT_VM = PREFIX + "vm"              # VM name (VM LSPs, their DHCP rows, floating IPs)
EXT_NETWORK = PREFIX + "network"    # network (human name) a DHCP row / port belongs to
EXT_ROUTER = PREFIX + "router"      # router (human name) a port / NAT / route belongs to
EXT_PORT = PREFIX + "port"          # VM LSP name a floating IP was made for

# Network facts kept on the switch (what the operator asked for; OVN's columns hold the rest).
EXT_KIND = PREFIX + "kind"                # "overlay" | "provider"
EXT_CIDR = PREFIX + "cidr"                # IPv4 CIDR
EXT_GATEWAY = PREFIX + "gateway"          # IPv4 address
EXT_MTU = PREFIX + "mtu"                  # bytes
EXT_DHCP = PREFIX + "dhcp"                # "true" | "false"
EXT_LEASE_TIME = PREFIX + "lease_time"    # seconds
EXT_SERVER_MAC = PREFIX + "server_mac"    # DHCP server / router-port MAC
EXT_DNS = PREFIX + "dns"                  # space-separated IPv4 addresses
EXT_EXCLUDE = PREFIX + "exclude"          # space-separated addresses / a..b ranges
EXT_PHYSNET = PREFIX + "physnet"          # provider network's physnet
EXT_VLAN = PREFIX + "vlan"                # provider network's VLAN tag

# Security-group ACLs.
EXT_SG = PREFIX + "sg"          # security group (human name) an ACL belongs to
EXT_RULE = PREFIX + "rule"      # the rule's text form (SgRule.text())
EXT_ORDER = PREFIX + "order"    # position of the rule in the group's list

# Values of EXT_ROLE.
ROLE_NETWORK = "network"
ROLE_DHCP = "dhcp"
ROLE_LOCALNET = "localnet"
ROLE_ROUTER = "router"
ROLE_ROUTER_PORT = "router-port"
ROLE_GATEWAY_PORT = "gateway-port"
ROLE_SNAT = "snat"
ROLE_FIP = "fip"
ROLE_DEFAULT_ROUTE = "default-route"
ROLE_SECURITY_GROUP = "security-group"
ROLE_SG_RULE = "sg-rule"
ROLE_SG_DROP = "sg-drop"

#: The per-tenant security group every VM port joins.
DEFAULT_SG = "default"


def is_virtdeck_key(key: str) -> bool:
    """True for an ``external_ids`` key virtdeck owns (``virtdeck:*``)."""
    return key.startswith(PREFIX)


def switch_name(tenant: str, name: str) -> str:
    """OVN Logical_Switch name of network ``name`` of ``tenant``."""
    return f"vd.{tenant}.{name}"


def router_name(tenant: str, name: str) -> str:
    """OVN Logical_Router name of router ``name`` of ``tenant``."""
    return f"vd.{tenant}.{name}"


def localnet_name(tenant: str, network: str) -> str:
    """Name of the localnet LSP of provider network ``network``."""
    return f"ln:{switch_name(tenant, network)}"


def lrp_name(tenant: str, router: str, network: str) -> str:
    """Name of router ``router``'s Logical_Router_Port on ``network``."""
    return f"lrp:{router_name(tenant, router)}:{network}"


def router_lsp_name(tenant: str, router: str, network: str) -> str:
    """Name of the router-type LSP on ``network``'s switch that peers with :func:`lrp_name`."""
    return f"lsp:{router_name(tenant, router)}:{network}"


def sg_port_group(tenant: str, name: str) -> str:
    """Port_Group name of security group ``name`` of ``tenant`` (an identifier, see module doc)."""
    return f"vdsg_{len(tenant)}_{tenant}_{name}".replace("-", "_")


def vm_port_label(vm: str, nic: int) -> str:
    """Human name (``EXT_NAME``) of NIC ``nic`` (0-based) of VM ``vm``: ``VM-nicN``."""
    return f"{vm}-nic{nic}"
