"""Security groups: one OVN Port_Group per group with its ACLs (names and keys in :mod:`.names`).

ACLs at priority 1002 (allow, ``allow-related`` so replies pass) and 1001 (drop all other IP
to/from members). The per-tenant group ``default`` allows all egress and ingress from members of
the same group, and drops unsolicited ingress from anywhere else. VM ports join it through
:func:`add_port_to_default_sg` (it creates the group on first use, in the same transaction).
OVN's own flows let DHCP replies from its native responder through (priority 34000), so DHCP
works behind a drop rule.

Each mutating function is one transaction (:func:`.rows.checked_txn`). Errors: HostError when OVN
refuses, :class:`.rows.NotFound` for a group that is not there.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from .names import (DEFAULT_SG, EXT_NAME, EXT_ORDER, EXT_ROLE, EXT_RULE, EXT_SG, EXT_TENANT,
                    ROLE_SECURITY_GROUP, ROLE_SG_DROP, ROLE_SG_RULE, sg_port_group)
from .rows import NotFound, all_rows, checked_txn, ext_of, owned


ACL_ALLOW_PRIORITY = 1002
ACL_DROP_PRIORITY = 1001


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
        """The rule's text form (see the class doc); :meth:`parse` reads it back."""
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
        """The OVN ACL direction: ``to-lport`` for ingress, ``from-lport`` for egress."""
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
        """JSON-ready dict (for ``--json``); rules in text form."""
        return {"tenant": self.tenant, "name": self.name, "port_group": self.port_group,
                "uuid": self.uuid, "rules": [r.text() for r in self.rules], "ports": list(self.ports)}


def _find_pg(api, pg: str):
    for row in all_rows(api, "Port_Group"):
        if row.name == pg:
            return row
    return None


def _sg_info(pg) -> SecurityGroupInfo:
    e = ext_of(pg)
    rules = []
    for acl in sorted(pg.acls, key=lambda a: (ext_of(a).get(EXT_ORDER, "0").zfill(6))):
        ae = ext_of(acl)
        if ae.get(EXT_ROLE) == ROLE_SG_RULE:
            rules.append(SgRule.parse(ae[EXT_RULE]))
    return SecurityGroupInfo(e.get(EXT_TENANT, ""), e.get(EXT_NAME, pg.name), pg.name, str(pg.uuid),
                             tuple(rules), tuple(sorted(p.name for p in pg.ports)))


def list_security_groups(api, tenant: str | None = None) -> list[SecurityGroupInfo]:
    """Every virtdeck security group (of ``tenant`` if given)."""
    out = [_sg_info(pg) for pg in all_rows(api, "Port_Group") if owned(pg, tenant, ROLE_SECURITY_GROUP)]
    return sorted(out, key=lambda s: (s.tenant, s.name))


def find_security_group(api, tenant: str, name: str) -> SecurityGroupInfo:
    """Security group ``name`` of ``tenant`` (its port group and ACLs); raises NotFound."""
    pg = _find_pg(api, sg_port_group(tenant, name))
    if pg is None:
        raise NotFound(f"no security group {name!r} in tenant {tenant!r}")
    return _sg_info(pg)


def _acl_cmds(api, txn, pg: str, tenant: str, name: str, rules: Iterable[SgRule]) -> None:
    base = {EXT_TENANT: tenant, EXT_SG: name}
    for i, rule in enumerate(rules):
        txn.add(api.pg_acl_add(pg, rule.ovn_direction, ACL_ALLOW_PRIORITY, rule.match(pg),
                               "allow-related", may_exist=True,
                               **base, **{EXT_ROLE: ROLE_SG_RULE, EXT_RULE: rule.text(), EXT_ORDER: str(i)}))
    txn.add(api.pg_acl_add(pg, "from-lport", ACL_DROP_PRIORITY, f"inport == @{pg} && ip", "drop",
                           may_exist=True, **base, **{EXT_ROLE: ROLE_SG_DROP}))
    txn.add(api.pg_acl_add(pg, "to-lport", ACL_DROP_PRIORITY, f"outport == @{pg} && ip", "drop",
                           may_exist=True, **base, **{EXT_ROLE: ROLE_SG_DROP}))


def _sg_create_cmds(api, txn, tenant: str, name: str, rules: Iterable[SgRule]) -> str:
    pg = sg_port_group(tenant, name)
    txn.add(api.pg_add(pg, may_exist=True, acls=[], ports=[],
                       external_ids={EXT_TENANT: tenant, EXT_NAME: name, EXT_ROLE: ROLE_SECURITY_GROUP}))
    _acl_cmds(api, txn, pg, tenant, name, rules)
    return pg


def create_security_group(api, tenant: str, name: str,
                          rules: Iterable[SgRule] = DEFAULT_RULES) -> SecurityGroupInfo:
    """Create a security group (port group + ACLs) in one transaction; an existing one is kept."""
    if _find_pg(api, sg_port_group(tenant, name)) is None:
        with checked_txn(api, f"create security group {tenant}/{name}") as txn:
            _sg_create_cmds(api, txn, tenant, name, rules)
    return find_security_group(api, tenant, name)


def set_security_group_rules(api, tenant: str, name: str, rules: Iterable[SgRule]) -> SecurityGroupInfo:
    """Replace the group's rules with ``rules`` (the editor saves the whole list) in one
    transaction: old ACLs out, new ACLs in, members untouched."""
    sg = find_security_group(api, tenant, name)
    pg = _find_pg(api, sg.port_group)
    with checked_txn(api, f"edit security group {tenant}/{name}") as txn:
        if pg.acls:
            txn.add(api.db_clear("Port_Group", pg.uuid, "acls"))
        _acl_cmds(api, txn, sg.port_group, tenant, name, list(rules))
    return find_security_group(api, tenant, name)


def delete_security_group(api, tenant: str, name: str) -> SecurityGroupInfo:
    """Delete the group (its ACLs go with it; member ports stay)."""
    sg = find_security_group(api, tenant, name)
    with checked_txn(api, f"delete security group {tenant}/{name}") as txn:
        txn.add(api.pg_del(sg.port_group, if_exists=True))
    return sg


def add_port_to_sg(api, tenant: str, name: str, lsp_name: str) -> None:
    """Add LSP ``lsp_name`` to security group ``name`` (which must exist); one transaction,
    or the caller's if called inside ``with api.transaction(...)``."""
    pg = sg_port_group(tenant, name)
    if _find_pg(api, pg) is None:
        raise NotFound(f"no security group {name!r} in tenant {tenant!r}")
    with checked_txn(api, f"add port {lsp_name} to security group {tenant}/{name}") as txn:
        txn.add(api.pg_add_ports(pg, lsp_name))


def remove_port_from_sg(api, tenant: str, name: str, lsp_name: str) -> None:
    """Take LSP ``lsp_name`` out of security group ``name`` (if_exists)."""
    pg = sg_port_group(tenant, name)
    if _find_pg(api, pg) is None:
        return
    with checked_txn(api, f"remove port {lsp_name} from security group {tenant}/{name}") as txn:
        txn.add(api.pg_del_ports(pg, lsp_name, if_exists=True))


def add_port_to_default_sg(api, tenant: str, lsp_name) -> str:
    """Put a VM port in ``tenant``'s ``default`` security group, creating the group (with
    :data:`DEFAULT_RULES`) in the same transaction if it does not exist. ``lsp_name`` is the
    LSP's name, or the ovsdbapp command that creates it when called inside the caller's
    transaction. Returns the port group name."""
    pg = sg_port_group(tenant, DEFAULT_SG)
    with checked_txn(api, f"add port to default security group of {tenant}") as txn:
        if _find_pg(api, pg) is None:
            _sg_create_cmds(api, txn, tenant, DEFAULT_SG, DEFAULT_RULES)
        txn.add(api.pg_add_ports(pg, lsp_name))
    return pg
