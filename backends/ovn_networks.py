"""OVN northbound mutations and lookups for networks, routers, NAT and security groups.

Everything here speaks to an ovsdbapp ``OvnNbApiIdlImpl`` (``api``, e.g. ``Session.nb()``) and
never validates operator input beyond what OVN itself needs: the services in
``console/services/network.py``, ``router.py`` and ``security.py`` validate first, then call one
function here. Every mutating function is ONE OVN transaction (``check_error=True``,
``may_exist``/``if_exists``); called inside an outer ``with api.transaction(check_error=True)``
block on the same thread, it joins that transaction instead (ovsdbapp nests transactions per
thread), which lets another module add, say, a VM port and its security-group membership in one
commit.

Naming (OVN names are global; virtdeck keeps tenant and human name in ``external_ids``):

=====================  ====================================  ================================
row                    name                                  external_ids (besides tenant)
=====================  ====================================  ================================
Logical_Switch         ``vd.<tenant>.<network>``             role=network, name, kind, cidr…
DHCP_Options           (no name)                             role=dhcp, network
localnet LSP           ``ln:vd.<tenant>.<network>``          role=localnet, network
Logical_Router         ``vd.<tenant>.<router>``              role=router, name
router port (LRP)      ``lrp:vd.<tenant>.<router>:<net>``    role=router-port, router, network
switch side (LSP)      ``lsp:vd.<tenant>.<router>:<net>``    role=router-port, router, network
NAT                    (no name)                             role=snat|fip, router, port
static route           (no name)                             role=default-route, router
Port_Group (SG)        ``vdsg_<len(tenant)>_<tenant>_<sg>``  role=security-group, name
ACL (SG rule)          (no name)                             role=sg-rule, sg, rule (text)
=====================  ====================================  ================================

(``-`` becomes ``_`` in port-group names, which must be identifiers in ACL matches; the length
prefix keeps tenant/name pairs distinct.) Every external_ids key is ``virtdeck:*``.

Security groups: a port group per group, ACLs at priority 1002 (allow, ``allow-related`` so
replies pass) and 1001 (drop all other IP to/from members). The per-tenant group ``default``
allows all egress and ingress from members of the same group, and drops unsolicited ingress from
anywhere else. VM ports join it through :func:`add_port_to_default_sg` (it creates the group on
first use, in the same transaction). OVN's own flows let DHCP replies from its native responder
through (priority 34000), so DHCP works behind a drop rule.

Errors: a failed transaction raises :class:`console.errors.HostError` ("OVN NB: …"); a lookup of
something that is not there raises :class:`NotFound` (a VirtdeckError).
"""

from __future__ import annotations

import ipaddress
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ovsdbapp.backend.ovs_idl import command as _ovs_cmd

from ..console.errors import HostError, VirtdeckError
from .ovn.names import (DEFAULT_SG, EXT_NAME as K_NAME, EXT_NETWORK as K_NETWORK, EXT_ROLE as K_ROLE,
                        EXT_TENANT as K_TENANT, EXT_VM as K_VM, PREFIX as K, localnet_name, lrp_name,
                        router_lsp_name, router_name, sg_port_group, switch_name)

OVERLAY = "overlay"
PROVIDER = "provider"
OVERLAY_MTU = 1400
PROVIDER_MTU = 1500
DEFAULT_LEASE = 3600

ACL_ALLOW_PRIORITY = 1002
ACL_DROP_PRIORITY = 1001


class NotFound(VirtdeckError):
    """A network, router, security group or port virtdeck looked for is not in OVN NB."""

    exit_code = 6


def random_mac() -> str:
    """A random locally administered unicast MAC, 0a:xx:xx:xx:xx:xx."""
    return "0a:" + ":".join(f"{random.randrange(256):02x}" for _ in range(5))


# --------------------------------------------------------------------------- shapes

@dataclass(frozen=True)
class NetworkSpec:
    """A validated network, as the service hands it to :func:`create_network`.

    ``kind``: "overlay" (GENEVE) or "provider" (localnet on ``physnet``, ``vlan`` 1–4094 or None
    for untagged). ``cidr`` an IPv4 network ("10.0.0.0/24"); ``gateway`` an address inside it
    (DHCP option ``router``, and the address a router port takes on attach); ``mtu`` in bytes;
    ``lease_time`` in seconds; ``dns`` IPv4 addresses; ``exclude`` addresses or ranges
    ("10.0.0.2", "10.0.0.10..10.0.0.20") OVN's IPAM must not hand out.
    """

    tenant: str
    name: str
    kind: str
    cidr: str
    gateway: str
    dhcp: bool = True
    lease_time: int = DEFAULT_LEASE
    dns: tuple[str, ...] = ()
    mtu: int = OVERLAY_MTU
    physnet: str | None = None
    vlan: int | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkInfo:
    """A virtdeck network as found in OVN NB (its Logical_Switch and related rows).

    ``switch``/``uuid``: the Logical_Switch name and UUID (attach VM LSPs to ``switch``);
    ``dhcp_options``: UUID of its DHCP_Options row (set it as the VM LSP's ``dhcpv4_options``)
    or None when DHCP is off; ``server_mac``: the DHCP server / router-port MAC; ``mtu`` bytes;
    ``lease_time`` seconds; ``vm_ports``: names of LSPs of type "" (VM ports) on the switch;
    ``routers``: names of virtdeck routers with a port on it.
    """

    tenant: str
    name: str
    switch: str
    uuid: str
    kind: str
    cidr: str
    gateway: str
    mtu: int
    dhcp: bool
    dhcp_options: str | None
    lease_time: int | None
    dns: tuple[str, ...]
    physnet: str | None
    vlan: int | None
    exclude: tuple[str, ...]
    server_mac: str
    vm_ports: tuple[str, ...] = ()
    routers: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready dict (for ``--json``)."""
        d = dict(self.__dict__)
        for k in ("dns", "exclude", "vm_ports", "routers"):
            d[k] = list(d[k])
        return d


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
        d = dict(self.__dict__)
        d["networks"] = list(self.networks)
        d["nat"] = [n.__dict__ for n in self.nat]
        return d


PROTOCOLS = ("any", "icmp", "tcp", "udp")


@dataclass(frozen=True)
class SgRule:
    """One security-group rule. ``direction`` "ingress" (to the VM) or "egress" (from it);
    ``protocol`` any|icmp|tcp|udp; ``ports`` (min, max) for tcp/udp or None for all; ``remote``
    an IPv4 CIDR, "self" (members of the same group) or None (anywhere).

    Text form (CLI, TUI, ACL external_ids): ``ingress tcp 22 from 10.0.0.0/8``,
    ``egress any``, ``ingress any from self``, ``ingress udp 5000-5100``.
    """

    direction: str
    protocol: str = "any"
    ports: tuple[int, int] | None = None
    remote: str | None = None

    def text(self) -> str:
        parts = [self.direction, self.protocol]
        if self.ports:
            lo, hi = self.ports
            parts.append(str(lo) if lo == hi else f"{lo}-{hi}")
        if self.remote:
            parts += ["from" if self.direction == "ingress" else "to", self.remote]
        return " ".join(parts)

    def match(self, port_group: str) -> str:
        """The OVN ACL match for members of ``port_group``."""
        if self.direction == "ingress":
            m = [f"outport == @{port_group}", "ip4"]
            peer = "ip4.src"
        else:
            m = [f"inport == @{port_group}", "ip4"]
            peer = "ip4.dst"
        if self.remote == "self":
            m.append(f"{peer} == ${port_group}_ip4")
        elif self.remote:
            m.append(f"{peer} == {self.remote}")
        if self.protocol == "icmp":
            m.append("icmp4")
        elif self.protocol in ("tcp", "udp"):
            m.append(self.protocol)
            if self.ports:
                lo, hi = self.ports
                if lo == hi:
                    m.append(f"{self.protocol}.dst == {lo}")
                else:
                    m.append(f"{self.protocol}.dst >= {lo} && {self.protocol}.dst <= {hi}")
        return " && ".join(m)

    @property
    def ovn_direction(self) -> str:
        return "to-lport" if self.direction == "ingress" else "from-lport"

    @classmethod
    def parse(cls, text: str) -> "SgRule":
        """Parse the text form; raises ValueError saying what is allowed."""
        words = text.split()
        if not words or words[0] not in ("ingress", "egress"):
            raise ValueError("a rule starts with ingress or egress, e.g. 'ingress tcp 22 from 10.0.0.0/8'")
        direction = words.pop(0)
        protocol = words.pop(0) if words else "any"
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
        ports = None
        if words and words[0] not in ("from", "to"):
            if protocol not in ("tcp", "udp"):
                raise ValueError("ports only go with tcp or udp")
            p = words.pop(0)
            try:
                lo, _, hi = p.partition("-")
                ports = (int(lo), int(hi or lo))
            except ValueError:
                raise ValueError(f"port {p!r}: use N or N-M with 1 <= N <= M <= 65535") from None
            if not (1 <= ports[0] <= ports[1] <= 65535):
                raise ValueError(f"port {p!r}: use N or N-M with 1 <= N <= M <= 65535")
        remote = None
        if words:
            if words[0] not in ("from", "to") or len(words) != 2:
                raise ValueError("end a rule with 'from CIDR' / 'to CIDR' / 'from self'")
            want = "from" if direction == "ingress" else "to"
            if words[0] != want:
                raise ValueError(f"{direction} rules name their peer with '{want}'")
            remote = words[1]
            if remote != "self":
                try:
                    net = ipaddress.IPv4Network(remote, strict=False)
                except ValueError:
                    raise ValueError(f"peer {remote!r}: an IPv4 CIDR like 10.0.0.0/8, or 'self'") from None
                remote = None if net.prefixlen == 0 else str(net)
        return cls(direction, protocol, ports, remote)


DEFAULT_RULES = (SgRule("egress"), SgRule("ingress", remote="self"))


@dataclass(frozen=True)
class SecurityGroupInfo:
    """A security group: its port group, its rules (in text form order) and member LSP names."""

    tenant: str
    name: str
    port_group: str
    uuid: str
    rules: tuple[SgRule, ...]
    ports: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"tenant": self.tenant, "name": self.name, "port_group": self.port_group,
                "uuid": self.uuid, "rules": [r.text() for r in self.rules], "ports": list(self.ports)}


# --------------------------------------------------------------------------- plumbing

@contextmanager
def _txn(api, what: str) -> Iterator:
    """One checked transaction; ovsdbapp/OVSDB failures become HostError naming ``what``."""
    try:
        with api.transaction(check_error=True) as txn:
            yield txn
    except VirtdeckError:
        raise
    except Exception as exc:  # ovsdbapp raises RuntimeError, TimeoutException, …
        raise HostError(f"OVN NB: {what} failed: {exc}") from exc


def _rows(api, table: str):
    return list(api.tables[table].rows.values())


def _ext(row) -> dict:
    return dict(getattr(row, "external_ids", {}) or {})


def _one(value):
    """Optional OVSDB column (list of 0/1) -> value or None."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _owned(row, tenant: str | None = None, role: str | None = None) -> bool:
    e = _ext(row)
    if K_ROLE not in e:
        return False
    if tenant is not None and e.get(K_TENANT) != tenant:
        return False
    return role is None or e.get(K_ROLE) == role


def virtdeck_rows(api, tenants: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Every NB row whose external_ids carry a ``virtdeck:`` key: {table: [uuid, …]}; with
    ``tenants``, only rows whose ``virtdeck:tenant`` is one of them (a shared NB).

    Tables without an external_ids column are skipped. Used to prove a clean delete.
    """
    want = set(tenants) if tenants is not None else None
    out: dict[str, list[str]] = {}
    for table, t in api.tables.items():
        if "external_ids" not in t.columns:
            continue
        found = [str(r.uuid) for r in t.rows.values()
                 if any(k.startswith(K) for k in (r.external_ids or {}))
                 and (want is None or (r.external_ids or {}).get(K_TENANT) in want)]
        if found:
            out[table] = found
    return out


# --------------------------------------------------------------------------- networks

def _network_ext(spec: NetworkSpec, server_mac: str) -> dict[str, str]:
    ext = {K_TENANT: spec.tenant, K_NAME: spec.name, K_ROLE: "network",
           K + "kind": spec.kind, K + "cidr": spec.cidr, K + "gateway": spec.gateway,
           K + "mtu": str(spec.mtu), K + "dhcp": "true" if spec.dhcp else "false",
           K + "lease_time": str(spec.lease_time), K + "server_mac": server_mac}
    if spec.dns:
        ext[K + "dns"] = " ".join(spec.dns)
    if spec.exclude:
        ext[K + "exclude"] = " ".join(spec.exclude)
    if spec.physnet:
        ext[K + "physnet"] = spec.physnet
    if spec.vlan is not None:
        ext[K + "vlan"] = str(spec.vlan)
    return ext


def dhcp_option_values(spec: NetworkSpec, server_mac: str) -> dict[str, str]:
    """The DHCP_Options ``options`` OVN needs for ``spec`` (server_id = gateway)."""
    opts = {"router": spec.gateway, "server_id": spec.gateway, "server_mac": server_mac,
            "lease_time": str(spec.lease_time), "mtu": str(spec.mtu)}
    if spec.dns:
        opts["dns_server"] = spec.dns[0] if len(spec.dns) == 1 else "{" + ", ".join(spec.dns) + "}"
    return opts


def create_network(api, spec: NetworkSpec) -> NetworkInfo:
    """Create the Logical_Switch (+ DHCP_Options, + localnet port for a provider network) in one
    transaction and return it as found afterwards. ``spec`` must be validated already.

    The switch gets ``other_config:subnet`` (OVN IPAM for "dynamic" addresses) and
    ``exclude_ips`` (the gateway plus ``spec.exclude``). Idempotent: an existing switch of that
    name is kept (may_exist) and no second DHCP row is made.
    """
    sw = switch_name(spec.tenant, spec.name)
    server_mac = random_mac()
    exclude = " ".join([spec.gateway, *spec.exclude])
    existing = _find_switch(api, sw)
    if existing is not None:
        return _network_info(api, existing)
    with _txn(api, f"create network {spec.tenant}/{spec.name}") as txn:
        txn.add(api.ls_add(sw, may_exist=True, external_ids=_network_ext(spec, server_mac),
                           other_config={"subnet": spec.cidr, "exclude_ips": exclude}))
        if spec.dhcp:
            d = txn.add(api.dhcp_options_add(spec.cidr, **{
                K_TENANT: spec.tenant, K_NETWORK: spec.name, K_ROLE: "dhcp"}))
            txn.add(api.dhcp_options_set_options(d, **dhcp_option_values(spec, server_mac)))
        if spec.kind == PROVIDER:
            ln = txn.add(api.lsp_add(sw, localnet_name(spec.tenant, spec.name), may_exist=True,
                                     type="localnet", addresses=["unknown"],
                                     options={"network_name": spec.physnet},
                                     external_ids={K_TENANT: spec.tenant, K_NETWORK: spec.name,
                                                   K_ROLE: "localnet"}))
            if spec.vlan is not None:  # the VLAN goes in the `tag` column (lsp_add's tag is for parents)
                txn.add(api.db_set("Logical_Switch_Port", ln, ("tag", spec.vlan)))
    return find_network(api, spec.name, spec.tenant)


class _ReplaceColumn(_ovs_cmd.BaseCommand):
    """Write a whole column of one row (``db_set`` merges maps, so it could never drop a key);
    joins the caller's transaction like any other ovsdbapp command."""

    def __init__(self, api, table: str, record, column: str, value):
        super().__init__(api)
        self.table, self.record, self.column, self.value = table, record, column, value

    def run_idl(self, txn):
        row = self.api.lookup(self.table, self.record)
        row.verify(self.column)
        setattr(row, self.column, self.value)


def network_spec(info: NetworkInfo) -> NetworkSpec:
    """The :class:`NetworkSpec` a network found in NB was made from (for :func:`update_network`)."""
    return NetworkSpec(tenant=info.tenant, name=info.name, kind=info.kind, cidr=info.cidr,
                       gateway=info.gateway, dhcp=info.dhcp,
                       lease_time=info.lease_time or DEFAULT_LEASE, dns=info.dns, mtu=info.mtu,
                       physnet=info.physnet, vlan=info.vlan, exclude=info.exclude)


def update_network(api, spec: NetworkSpec) -> NetworkInfo:
    """Bring an existing network in line with ``spec`` in ONE transaction; only the fields that
    change nothing already handed out may differ from what it was made with: ``dhcp``,
    ``lease_time``, ``dns``, ``mtu``, ``exclude`` (the caller — the service — refuses the rest).

    Writes the switch's external_ids (whole column) and ``other_config:exclude_ips``; DHCP on:
    the DHCP_Options ``options`` are replaced (a row is created and set on every VM port of the
    switch when DHCP was off); DHCP off: the network's DHCP_Options rows go (VM ports hold them
    by weak reference, so the reference clears). No-op (no transaction) when nothing differs.
    Returns the network as found afterwards; raises NotFound / HostError.
    """
    info = find_network(api, spec.name, spec.tenant)
    if network_spec(info) == spec:
        return info
    ls = _find_switch(api, info.switch)
    server_mac = info.server_mac or random_mac()
    ext = {k: v for k, v in _ext(ls).items() if not k.startswith(K)}
    ext.update(_network_ext(spec, server_mac))
    dhcp_rows = [r for r in _network_dhcp_rows(api, spec.tenant, spec.name) if _ext(r).get(K_ROLE) == "dhcp"]
    with _txn(api, f"edit network {spec.tenant}/{spec.name}") as txn:
        txn.add(_ReplaceColumn(api, "Logical_Switch", ls.uuid, "external_ids", ext))
        txn.add(api.db_set("Logical_Switch", ls.uuid,
                           ("other_config", {"exclude_ips": " ".join([spec.gateway, *spec.exclude])})))
        if spec.dhcp and dhcp_rows:
            for d in dhcp_rows:
                txn.add(api.dhcp_options_set_options(d.uuid, **dhcp_option_values(spec, server_mac)))
        elif spec.dhcp:
            d = txn.add(api.dhcp_options_add(spec.cidr, **{
                K_TENANT: spec.tenant, K_NETWORK: spec.name, K_ROLE: "dhcp"}))
            txn.add(api.dhcp_options_set_options(d, **dhcp_option_values(spec, server_mac)))
            for p in ls.ports:
                if p.type == "":
                    txn.add(api.db_set("Logical_Switch_Port", p.uuid, ("dhcpv4_options", d)))
        else:
            for d in _network_dhcp_rows(api, spec.tenant, spec.name):
                txn.add(api.dhcp_options_del(d.uuid))
    return find_network(api, spec.name, spec.tenant)


def _find_switch(api, sw: str):
    for row in _rows(api, "Logical_Switch"):
        if row.name == sw:
            return row
    return None


def _network_dhcp_rows(api, tenant: str, name: str) -> list:
    return [r for r in _rows(api, "DHCP_Options")
            if _ext(r).get(K_TENANT) == tenant and _ext(r).get(K_NETWORK) == name]


def _network_info(api, ls) -> NetworkInfo:
    e = _ext(ls)
    tenant, name = e.get(K_TENANT, ""), e.get(K_NAME, ls.name)
    dhcp_rows = [r for r in _network_dhcp_rows(api, tenant, name) if _ext(r).get(K_ROLE) == "dhcp"]
    vm_ports, routers = [], []
    for p in ls.ports:
        if p.type == "":
            vm_ports.append(p.name)
        elif p.type == "router" and _ext(p).get(K_ROLE) == "router-port":
            routers.append(_ext(p).get(K + "router", ""))
    vlan = e.get(K + "vlan")
    lease = e.get(K + "lease_time")
    return NetworkInfo(
        tenant=tenant, name=name, switch=ls.name, uuid=str(ls.uuid),
        kind=e.get(K + "kind", OVERLAY), cidr=e.get(K + "cidr", ls.other_config.get("subnet", "")),
        gateway=e.get(K + "gateway", ""), mtu=int(e.get(K + "mtu", OVERLAY_MTU)),
        dhcp=e.get(K + "dhcp") == "true",
        dhcp_options=str(dhcp_rows[0].uuid) if dhcp_rows else None,
        lease_time=int(lease) if lease else None,
        dns=tuple(e.get(K + "dns", "").split()), physnet=e.get(K + "physnet"),
        vlan=int(vlan) if vlan else None, exclude=tuple(e.get(K + "exclude", "").split()),
        server_mac=e.get(K + "server_mac", ""), vm_ports=tuple(sorted(vm_ports)),
        routers=tuple(sorted(routers)))


def list_networks(api, tenant: str | None = None) -> list[NetworkInfo]:
    """Every virtdeck network (of ``tenant`` if given), sorted by tenant then name."""
    out = [_network_info(api, ls) for ls in _rows(api, "Logical_Switch")
           if _owned(ls, tenant, "network")]
    return sorted(out, key=lambda n: (n.tenant, n.name))


def find_network(api, name: str, tenant: str) -> NetworkInfo:
    """The network ``name`` of ``tenant``; raises NotFound. Facts come from the switch's
    external_ids and its DHCP_Options row (see :class:`NetworkInfo`)."""
    ls = _find_switch(api, switch_name(tenant, name))
    if ls is None or not _owned(ls, tenant, "network"):
        raise NotFound(f"no network {name!r} in tenant {tenant!r}")
    return _network_info(api, ls)


def delete_network(api, tenant: str, name: str, cascade: bool = False) -> NetworkInfo:
    """Delete network ``name`` of ``tenant`` in one transaction; returns what it was.

    Without ``cascade`` the caller must have checked there are no VM ports or router
    attachments (the service does). With it: router ports on the network (and, if it is a
    router's gateway network, that router's gateway, default route and NAT rules), VM ports
    (weak refs drop them from port groups) and every DHCP_Options row of the network go too.
    """
    info = find_network(api, name, tenant)
    with _txn(api, f"delete network {tenant}/{name}") as txn:
        for r in list_routers(api, tenant):
            if name in r.networks:
                _detach_cmds(api, txn, tenant, r, name)
            if r.gateway_network == name:
                _clear_gateway_cmds(api, txn, tenant, r)
        if cascade:
            for p in info.vm_ports:
                txn.add(api.lsp_del(p, if_exists=True))
        for d in _network_dhcp_rows(api, tenant, name):
            txn.add(api.dhcp_options_del(d.uuid))
        txn.add(api.ls_del(info.switch, if_exists=True))
    return info


# --------------------------------------------------------------------------- routers

def _find_router(api, lr: str):
    for row in _rows(api, "Logical_Router"):
        if row.name == lr:
            return row
    return None


def _router_info(api, lr) -> RouterInfo:
    e = _ext(lr)
    networks, gw_net, gw_addr, gw_ch = [], None, None, None
    for p in lr.ports:
        pe = _ext(p)
        if pe.get(K_ROLE) == "router-port":
            networks.append(pe.get(K_NETWORK, ""))
        elif pe.get(K_ROLE) == "gateway-port":
            gw_net = pe.get(K_NETWORK)
            gw_addr = p.networks[0] if p.networks else None
            chs = sorted(p.gateway_chassis, key=lambda c: -c.priority)
            gw_ch = chs[0].chassis_name if chs else None
    nexthop = None
    for r in lr.static_routes:
        if _ext(r).get(K_ROLE) == "default-route":
            nexthop = r.nexthop
    nat = []
    for n in lr.nat:
        ne = _ext(n)
        kind = "fip" if n.type == "dnat_and_snat" else n.type
        nat.append(NatInfo(kind, n.external_ip, n.logical_ip, ne.get(K + "port")))
    return RouterInfo(tenant=e.get(K_TENANT, ""), name=e.get(K_NAME, lr.name), router=lr.name,
                      uuid=str(lr.uuid), networks=tuple(sorted(networks)),
                      gateway_network=gw_net, gateway_address=gw_addr, gateway_chassis=gw_ch,
                      nexthop=nexthop, nat=tuple(sorted(nat, key=lambda n: (n.kind, n.external_ip, n.logical_ip))))


def list_routers(api, tenant: str | None = None) -> list[RouterInfo]:
    """Every virtdeck router (of ``tenant`` if given), sorted by tenant then name."""
    out = [_router_info(api, lr) for lr in _rows(api, "Logical_Router") if _owned(lr, tenant, "router")]
    return sorted(out, key=lambda r: (r.tenant, r.name))


def find_router(api, name: str, tenant: str) -> RouterInfo:
    """Router ``name`` of ``tenant``; raises NotFound."""
    lr = _find_router(api, router_name(tenant, name))
    if lr is None or not _owned(lr, tenant, "router"):
        raise NotFound(f"no router {name!r} in tenant {tenant!r}")
    return _router_info(api, lr)


def create_router(api, tenant: str, name: str) -> RouterInfo:
    """Create an empty logical router (may_exist) in one transaction."""
    lr = router_name(tenant, name)
    with _txn(api, f"create router {tenant}/{name}") as txn:
        txn.add(api.lr_add(lr, may_exist=True,
                           external_ids={K_TENANT: tenant, K_NAME: name, K_ROLE: "router"}))
    return find_router(api, name, tenant)


def delete_router(api, tenant: str, name: str) -> RouterInfo:
    """Delete router ``name`` with its ports (both sides), routes and NAT in one transaction."""
    info = find_router(api, name, tenant)
    with _txn(api, f"delete router {tenant}/{name}") as txn:
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
    ext = {K_TENANT: tenant, K_ROLE: role, K + "router": router, K_NETWORK: net.name}
    mac = net.server_mac if role == "router-port" and net.server_mac else random_mac()
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
    with _txn(api, f"attach {tenant}/{network} to router {router}") as txn:
        _router_port_cmds(api, txn, tenant, router, net, net.gateway, "router-port")
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
    with _txn(api, f"detach {tenant}/{network} from router {router}") as txn:
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
    with _txn(api, f"set gateway of router {router} on {network}") as txn:
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
            _router_port_cmds(api, txn, tenant, router, net, address, "gateway-port")
        txn.add(api.lrp_set_gateway_chassis(lrp, chassis, 1))
        row = _find_router(api, lr)
        for old_route in row.static_routes if row is not None else []:
            if _ext(old_route).get(K_ROLE) == "default-route":
                txn.add(api.db_remove("Logical_Router", lr, "static_routes", old_route.uuid, if_exists=True))
        route = txn.add(api.db_create("Logical_Router_Static_Route", ip_prefix="0.0.0.0/0",
                                      nexthop=nexthop, external_ids={
                                          K_TENANT: tenant, K_ROLE: "default-route",
                                          K + "router": router}))
        txn.add(api.db_add("Logical_Router", lr, "static_routes", route))
    return find_router(api, router, tenant)


def _find_lrp(api, name: str):
    for row in _rows(api, "Logical_Router_Port"):
        if row.name == name:
            return row
    raise NotFound(f"no logical router port {name!r}")


def _clear_gateway_cmds(api, txn, tenant, r: RouterInfo) -> None:
    lr = _find_router(api, r.router)
    txn.add(api.lrp_del(lrp_name(tenant, r.name, r.gateway_network), if_exists=True))
    txn.add(api.lsp_del(router_lsp_name(tenant, r.name, r.gateway_network), if_exists=True))
    for old in lr.static_routes:
        if _ext(old).get(K_ROLE) == "default-route":
            txn.add(api.db_remove("Logical_Router", lr.uuid, "static_routes", old.uuid, if_exists=True))
    for n in lr.nat:
        txn.add(api.db_remove("Logical_Router", lr.uuid, "nat", n.uuid, if_exists=True))


def clear_gateway(api, tenant: str, router: str) -> RouterInfo:
    """Remove the router's gateway port, default route and every NAT rule (one transaction)."""
    r = find_router(api, router, tenant)
    if r.gateway_network:
        with _txn(api, f"clear gateway of router {router}") as txn:
            _clear_gateway_cmds(api, txn, tenant, r)
    return find_router(api, router, tenant)


def _add_nat(api, tenant, router, nat_type, external_ip, logical_ip, what, port=None):
    lr = router_name(tenant, router)
    ext = {K_TENANT: tenant, K_ROLE: "snat" if nat_type == "snat" else "fip", K + "router": router}
    if port:
        ext[K + "port"] = port
    row = _find_router(api, lr)
    for n in row.nat:
        if n.type == nat_type and n.external_ip == external_ip and n.logical_ip == logical_ip:
            return find_router(api, router, tenant)  # already there
    with _txn(api, what) as txn:
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
    with _txn(api, f"remove {kind} {ip} from router {router}") as txn:
        for n in lr.nat:
            if kind == "snat" and n.type == "snat" and n.logical_ip == ip:
                txn.add(api.db_remove("Logical_Router", lr.uuid, "nat", n.uuid, if_exists=True))
            if kind == "fip" and n.type == "dnat_and_snat" and n.external_ip == ip:
                txn.add(api.db_remove("Logical_Router", lr.uuid, "nat", n.uuid, if_exists=True))
    return find_router(api, router, tenant)


# --------------------------------------------------------------------------- security groups

def _find_pg(api, pg: str):
    for row in _rows(api, "Port_Group"):
        if row.name == pg:
            return row
    return None


def _sg_info(pg) -> SecurityGroupInfo:
    e = _ext(pg)
    rules = []
    for acl in sorted(pg.acls, key=lambda a: (_ext(a).get(K + "order", "0").zfill(6))):
        ae = _ext(acl)
        if ae.get(K_ROLE) == "sg-rule":
            rules.append(SgRule.parse(ae[K + "rule"]))
    return SecurityGroupInfo(e.get(K_TENANT, ""), e.get(K_NAME, pg.name), pg.name, str(pg.uuid),
                             tuple(rules), tuple(sorted(p.name for p in pg.ports)))


def list_security_groups(api, tenant: str | None = None) -> list[SecurityGroupInfo]:
    """Every virtdeck security group (of ``tenant`` if given)."""
    out = [_sg_info(pg) for pg in _rows(api, "Port_Group") if _owned(pg, tenant, "security-group")]
    return sorted(out, key=lambda s: (s.tenant, s.name))


def find_security_group(api, tenant: str, name: str) -> SecurityGroupInfo:
    pg = _find_pg(api, sg_port_group(tenant, name))
    if pg is None:
        raise NotFound(f"no security group {name!r} in tenant {tenant!r}")
    return _sg_info(pg)


def _acl_cmds(api, txn, pg: str, tenant: str, name: str, rules: Iterable[SgRule]) -> None:
    base = {K_TENANT: tenant, K + "sg": name}
    for i, rule in enumerate(rules):
        txn.add(api.pg_acl_add(pg, rule.ovn_direction, ACL_ALLOW_PRIORITY, rule.match(pg),
                               "allow-related", may_exist=True,
                               **base, **{K_ROLE: "sg-rule", K + "rule": rule.text(), K + "order": str(i)}))
    txn.add(api.pg_acl_add(pg, "from-lport", ACL_DROP_PRIORITY, f"inport == @{pg} && ip", "drop",
                           may_exist=True, **base, **{K_ROLE: "sg-drop"}))
    txn.add(api.pg_acl_add(pg, "to-lport", ACL_DROP_PRIORITY, f"outport == @{pg} && ip", "drop",
                           may_exist=True, **base, **{K_ROLE: "sg-drop"}))


def _sg_create_cmds(api, txn, tenant: str, name: str, rules: Iterable[SgRule]) -> str:
    pg = sg_port_group(tenant, name)
    txn.add(api.pg_add(pg, may_exist=True, acls=[], ports=[],
                       external_ids={K_TENANT: tenant, K_NAME: name, K_ROLE: "security-group"}))
    _acl_cmds(api, txn, pg, tenant, name, rules)
    return pg


def create_security_group(api, tenant: str, name: str,
                          rules: Iterable[SgRule] = DEFAULT_RULES) -> SecurityGroupInfo:
    """Create a security group (port group + ACLs) in one transaction; an existing one is kept."""
    if _find_pg(api, sg_port_group(tenant, name)) is None:
        with _txn(api, f"create security group {tenant}/{name}") as txn:
            _sg_create_cmds(api, txn, tenant, name, rules)
    return find_security_group(api, tenant, name)


def set_security_group_rules(api, tenant: str, name: str, rules: Iterable[SgRule]) -> SecurityGroupInfo:
    """Replace the group's rules with ``rules`` (the editor saves the whole list) in one
    transaction: old ACLs out, new ACLs in, members untouched."""
    sg = find_security_group(api, tenant, name)
    pg = _find_pg(api, sg.port_group)
    with _txn(api, f"edit security group {tenant}/{name}") as txn:
        if pg.acls:
            txn.add(api.db_clear("Port_Group", pg.uuid, "acls"))
        _acl_cmds(api, txn, sg.port_group, tenant, name, list(rules))
    return find_security_group(api, tenant, name)


def delete_security_group(api, tenant: str, name: str) -> SecurityGroupInfo:
    """Delete the group (its ACLs go with it; member ports stay)."""
    sg = find_security_group(api, tenant, name)
    with _txn(api, f"delete security group {tenant}/{name}") as txn:
        txn.add(api.pg_del(sg.port_group, if_exists=True))
    return sg


def add_port_to_sg(api, tenant: str, name: str, lsp_name: str) -> None:
    """Add LSP ``lsp_name`` to security group ``name`` (which must exist); one transaction,
    or the caller's if called inside ``with api.transaction(...)``."""
    pg = sg_port_group(tenant, name)
    if _find_pg(api, pg) is None:
        raise NotFound(f"no security group {name!r} in tenant {tenant!r}")
    with _txn(api, f"add port {lsp_name} to security group {tenant}/{name}") as txn:
        txn.add(api.pg_add_ports(pg, lsp_name))


def remove_port_from_sg(api, tenant: str, name: str, lsp_name: str) -> None:
    """Take LSP ``lsp_name`` out of security group ``name`` (if_exists)."""
    pg = sg_port_group(tenant, name)
    if _find_pg(api, pg) is None:
        return
    with _txn(api, f"remove port {lsp_name} from security group {tenant}/{name}") as txn:
        txn.add(api.pg_del_ports(pg, lsp_name, if_exists=True))


def add_port_to_default_sg(api, tenant: str, lsp_name) -> str:
    """Put a VM port in ``tenant``'s ``default`` security group, creating the group (with
    :data:`DEFAULT_RULES`) in the same transaction if it does not exist. ``lsp_name`` is the
    LSP's name, or the ovsdbapp command that creates it when called inside the caller's
    transaction. Returns the port group name."""
    pg = sg_port_group(tenant, DEFAULT_SG)
    with _txn(api, f"add port to default security group of {tenant}") as txn:
        if _find_pg(api, pg) is None:
            _sg_create_cmds(api, txn, tenant, DEFAULT_SG, DEFAULT_RULES)
        txn.add(api.pg_add_ports(pg, lsp_name))
    return pg
