"""A VM's logical switch ports in OVN northbound (ovsdbapp).

A VM NIC is one Logical_Switch_Port:

- named by a fresh UUID: libvirt's ``<virtualport type='openvswitch'><parameters interfaceid=…/>``
  accepts only a UUID and copies it into the OVS interface's ``external_ids:iface-id``, which is how
  ovn-controller binds the LSP;
- ``addresses`` = ``"MAC IP"`` (a chosen address) or ``"MAC dynamic"`` (OVN's IPAM picks the IP
  from the switch's ``other_config:subnet``), ``port_security`` = the same MAC (+ IP when known);
- ``dhcpv4_options`` = the network's DHCP_Options row, so OVN's native DHCP answers the guest;
- ``external_ids``: ``virtdeck:tenant``, ``virtdeck:vm`` (VM name), ``virtdeck:network`` (network
  name), ``virtdeck:name`` (human port name, ``VM-nicN``).

All writes are one transaction with ``check_error=True``; deletes use ``if_exists``.

Networks are owned by backends/ovn_networks.py; :func:`find_network` here only READS them:
a logical switch whose ``external_ids`` carry ``virtdeck:name`` + ``virtdeck:tenant``, its subnet
(``other_config:subnet``, else its DHCP_Options ``cidr``), its DHCP_Options row (the row whose
``external_ids:virtdeck:network`` names the switch or the network, else the one whose cidr is the
subnet), the physnet of its localnet port (``options:network_name``) for placement.
"""

from __future__ import annotations

import ipaddress
import random
import uuid
from dataclasses import dataclass

from console.errors import HostError, ValidationError

EXT_TENANT = "virtdeck:tenant"
EXT_VM = "virtdeck:vm"
EXT_NETWORK = "virtdeck:network"
EXT_NAME = "virtdeck:name"


@dataclass(frozen=True)
class NetworkInfo:
    """A virtdeck network as a VM port needs it. ``switch`` is the Logical_Switch name, ``subnet``
    a CIDR string (None: no IPAM, no DHCP), ``dhcp_options`` the DHCP_Options row UUID (str) or
    None, ``physnet`` the localnet port's physnet (None for an overlay network), ``dynamic``
    True when OVN IPAM is on (``other_config:subnet`` set)."""

    name: str
    tenant: str
    switch: str
    subnet: str | None
    dhcp_options: str | None
    physnet: str | None
    dynamic: bool
    vlan: int | None = None


@dataclass(frozen=True)
class PortInfo:
    """A VM port: ``name`` (the LSP name = libvirt interfaceid, a UUID), ``mac``, ``ip`` (None when
    OVN assigns it dynamically and has not yet), the network name, the human ``label``."""

    name: str
    mac: str
    ip: str | None
    network: str
    switch: str
    label: str


def _ext(row) -> dict:
    return dict(getattr(row, "external_ids", {}) or {})


def _wrap(what: str, exc: Exception) -> HostError:
    return HostError(f"OVN northbound: {what}: {exc or type(exc).__name__}")


def _network_from_switch(nb, ls) -> NetworkInfo:
    ext = _ext(ls)
    other = dict(ls.other_config or {})
    subnet = other.get("subnet")
    dhcp = None
    rows = list(nb.tables["DHCP_Options"].rows.values())
    for r in rows:
        net = _ext(r).get(EXT_NETWORK)
        if net and net in (ls.name, ext.get(EXT_NAME)) and _ext(r).get(EXT_TENANT, ext.get(EXT_TENANT)) == ext.get(EXT_TENANT):
            if ":" in r.cidr:
                continue  # an IPv6 row
            dhcp = r
            break
    if dhcp is None and subnet:
        for r in rows:
            if r.cidr == subnet:
                dhcp = r
                break
    if subnet is None and dhcp is not None:
        subnet = dhcp.cidr
    physnet = vlan = None
    for p in ls.ports:
        if p.type == "localnet":
            physnet = dict(p.options or {}).get("network_name")
            vlan = p.tag[0] if p.tag else None
            break
    return NetworkInfo(
        name=ext.get(EXT_NAME, ls.name), tenant=ext.get(EXT_TENANT, ""), switch=ls.name,
        subnet=subnet, dhcp_options=str(dhcp.uuid) if dhcp is not None else None,
        physnet=physnet, dynamic=bool(other.get("subnet")), vlan=vlan)


def list_networks(nb, tenant: str | None = None) -> list[NetworkInfo]:
    """Every switch carrying ``virtdeck:name`` (of ``tenant`` if given), sorted by name."""
    try:
        out = []
        for ls in nb.tables["Logical_Switch"].rows.values():
            ext = _ext(ls)
            if EXT_NAME not in ext:
                continue
            if tenant is not None and ext.get(EXT_TENANT) != tenant:
                continue
            out.append(_network_from_switch(nb, ls))
        return sorted(out, key=lambda n: (n.tenant, n.name))
    except Exception as exc:
        raise _wrap("listing networks", exc) from None


def find_network(nb, name: str, tenant: str) -> NetworkInfo:
    """The network ``name`` of ``tenant``. Raises ValidationError("networks", …) naming the
    tenant's networks when there is none of that name."""
    nets = list_networks(nb, tenant)
    for n in nets:
        if n.name == name:
            return n
    known = ", ".join(n.name for n in nets) or "none"
    raise ValidationError("networks", f"tenant {tenant!r} has no network {name!r} (networks: {known})")


def _used(nb, switch: str) -> tuple[set[str], set[str]]:
    """(MACs, IPs) already on ``switch``'s ports (addresses + dynamic_addresses)."""
    macs: set[str] = set()
    ips: set[str] = set()
    ls = nb.lookup("Logical_Switch", switch)
    for p in ls.ports:
        for entry in list(p.addresses or []) + list(p.dynamic_addresses or []):
            for tok in entry.split():
                if tok.count(":") == 5:
                    macs.add(tok.lower())
                else:
                    try:
                        ips.add(str(ipaddress.ip_address(tok)))
                    except ValueError:
                        pass
    other = dict(ls.other_config or {})
    for tok in (other.get("exclude_ips") or "").split():
        if ".." in tok:
            a, b = tok.split("..")
            a, b = ipaddress.ip_address(a), ipaddress.ip_address(b)
            while a <= b:
                ips.add(str(a))
                a += 1
        else:
            ips.add(tok)
    return macs, ips


def new_mac(used: set[str], rng: random.Random | None = None) -> str:
    """A random MAC in 52:54:00 (QEMU's OUI) not in ``used``."""
    rng = rng or random.SystemRandom()
    while True:
        mac = "52:54:00:%02x:%02x:%02x" % (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if mac not in used:
            return mac


def _gateway_ips(nb, net: NetworkInfo) -> set[str]:
    out = set()
    if net.dhcp_options:
        try:
            row = nb.lookup("DHCP_Options", uuid.UUID(net.dhcp_options))
            router = dict(row.options or {}).get("router")
            if router:
                out.add(router)
        except Exception:
            pass
    return out


def pick_ip(nb, net: NetworkInfo, wanted: str | None = None) -> str | None:
    """The IP for a new port: ``wanted`` after checking it is in the subnet and free, else None
    when OVN IPAM will assign one (``net.dynamic``), else the first free host address."""
    macs, used = _used(nb, net.switch)
    used |= _gateway_ips(nb, net)
    if wanted:
        try:
            ip = ipaddress.ip_address(wanted)
        except ValueError:
            raise ValidationError("ip", f"{wanted!r} is not an IPv4 address") from None
        if net.subnet is None:
            raise ValidationError("ip", f"network {net.name} has no subnet; leave the address out")
        subnet = ipaddress.ip_network(net.subnet, strict=False)
        if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
            raise ValidationError("ip", f"{ip} is not a host address of {net.name}'s subnet {subnet}")
        if str(ip) in used:
            raise ValidationError("ip", f"{ip} is already used on network {net.name}")
        return str(ip)
    if net.dynamic or net.subnet is None:
        return None
    subnet = ipaddress.ip_network(net.subnet, strict=False)
    hosts = subnet.hosts()
    next(hosts, None)  # the first host address is the usual gateway
    for ip in hosts:
        if str(ip) not in used:
            return str(ip)
    raise ValidationError("networks", f"network {net.name}'s subnet {subnet} has no free address")


def create_vm_port(nb, net: NetworkInfo, *, tenant: str, vm: str, nic: int,
                   ip: str | None = None, mac: str | None = None) -> PortInfo:
    """Create one LSP for NIC ``nic`` of VM ``vm`` on ``net`` in ONE transaction.

    The LSP name is a new UUID (the libvirt interfaceid). Returns the :class:`PortInfo`. Raises
    ValidationError for a bad or taken ``ip``, HostError when OVN refuses the transaction.
    """
    try:
        macs, _ = _used(nb, net.switch)
    except Exception as exc:
        raise _wrap(f"reading switch {net.switch}", exc) from None
    mac = (mac or new_mac(macs)).lower()
    if mac in macs:
        raise ValidationError("mac", f"{mac} is already used on network {net.name}")
    address = pick_ip(nb, net, ip)
    name = str(uuid.uuid4())
    label = f"{vm}-nic{nic}"
    addresses = [f"{mac} {address}" if address else f"{mac} dynamic" if net.dynamic else mac]
    security = [f"{mac} {address}" if address else mac]
    columns = dict(
        addresses=addresses,
        port_security=security,
        external_ids={EXT_TENANT: tenant, EXT_VM: vm, EXT_NETWORK: net.name, EXT_NAME: label},
    )
    if net.dhcp_options:
        columns["dhcpv4_options"] = uuid.UUID(net.dhcp_options)
    try:
        with nb.transaction(check_error=True) as txn:
            txn.add(nb.lsp_add(net.switch, name, **columns))
    except ValidationError:
        raise
    except Exception as exc:
        raise _wrap(f"creating port {label} on {net.switch}", exc) from None
    return PortInfo(name=name, mac=mac, ip=address, network=net.name, switch=net.switch, label=label)


def delete_port(nb, name: str) -> None:
    """Delete LSP ``name`` (if it exists), in one transaction. Raises HostError."""
    try:
        with nb.transaction(check_error=True) as txn:
            txn.add(nb.lsp_del(name, if_exists=True))
    except Exception as exc:
        raise _wrap(f"deleting port {name}", exc) from None


def ports_of_vm(nb, tenant: str, vm: str) -> list[PortInfo]:
    """The LSPs whose external_ids say they belong to VM ``vm`` of ``tenant``."""
    out = []
    try:
        switches = {p.uuid: ls for ls in nb.tables["Logical_Switch"].rows.values() for p in ls.ports}
        for p in nb.tables["Logical_Switch_Port"].rows.values():
            ext = _ext(p)
            if ext.get(EXT_VM) != vm or ext.get(EXT_TENANT) != tenant:
                continue
            mac = ip = None
            for entry in list(p.addresses or []) + list(p.dynamic_addresses or []):
                toks = entry.split()
                if toks and toks[0].count(":") == 5:
                    mac = mac or toks[0]
                    if len(toks) > 1 and toks[1] != "dynamic":
                        ip = ip or toks[1]
            ls = switches.get(p.uuid)
            out.append(PortInfo(p.name, mac or "", ip, ext.get(EXT_NETWORK, ""),
                                ls.name if ls is not None else "", ext.get(EXT_NAME, "")))
    except Exception as exc:
        raise _wrap(f"listing ports of {vm}", exc) from None
    return sorted(out, key=lambda p: p.label)
