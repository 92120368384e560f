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

Networks are owned by :mod:`.networks` (``NetworkInfo``: switch, cidr, gateway,
dhcp_options, exclude, physnet, mtu); :func:`find_network` wraps its lookup so a missing network is
a ValidationError on the "networks" field. Every VM port joins its tenant's ``default`` security
group in the same transaction (:func:`.security_groups.add_port_to_default_sg`); if that transaction
created the group, :func:`delete_port` can drop it again while it is empty (rollback).
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
import uuid
from dataclasses import dataclass

from ...console.errors import HostError, VirtdeckError, ValidationError
from . import networks
from .names import DEFAULT_SG, EXT_NAME, EXT_NETWORK, EXT_TENANT, EXT_VM, sg_port_group, vm_port_label
from .networks import NetworkInfo
from .rows import NotFound, describe
from .security_groups import add_port_to_default_sg



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
    created_sg: str | None = None


def _ext(row) -> dict:
    return dict(getattr(row, "external_ids", {}) or {})


def _wrap(what: str, exc: Exception) -> HostError:
    return HostError(f"OVN northbound: {what}: {describe(exc)}")


def find_network(nb, name: str, tenant: str) -> NetworkInfo:
    """The network ``name`` of ``tenant`` (:class:`.networks.NetworkInfo`). Raises
    ValidationError("networks", …) naming the tenant's networks when there is none."""
    try:
        return networks.find_network(nb, name, tenant)
    except NotFound:
        known = ", ".join(n.name for n in networks.list_networks(nb, tenant)) or "none"
        raise ValidationError("networks", f"tenant {tenant!r} has no network {name!r} (networks: {known})") from None


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


DYNAMIC = "dynamic"
_lock = threading.Lock()  # pick-an-address + commit, one create at a time in this process


def pick_ip(nb, net: NetworkInfo, wanted: str | None = None) -> str | None:
    """The IP for a new port on ``net``.

    ``wanted``: an address to check (inside the CIDR, not network/broadcast, not the gateway, not
    excluded, not on another port) and return; ``"dynamic"``: None (OVN IPAM assigns it); None:
    the first free host address. Raises ValidationError("ip", …).
    """
    _, used = _used(nb, net.switch)
    if net.gateway:
        used.add(net.gateway)
    if wanted == DYNAMIC:
        return None
    subnet = ipaddress.ip_network(net.cidr, strict=False)
    if wanted:
        try:
            ip = ipaddress.ip_address(wanted)
        except ValueError:
            raise ValidationError("ip", f"{wanted!r} is not an IPv4 address") from None
        if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
            raise ValidationError("ip", f"{ip} is not a host address of {net.name}'s subnet {subnet}")
        if str(ip) in used:
            raise ValidationError("ip", f"{ip} is already used or excluded on network {net.name}")
        return str(ip)
    for ip in subnet.hosts():
        if str(ip) not in used:
            return str(ip)
    raise ValidationError("networks", f"network {net.name}'s subnet {subnet} has no free address")


def create_vm_port(nb, net: NetworkInfo, *, tenant: str, vm: str, nic: int,
                   ip: str | None = None, mac: str | None = None, name: str | None = None) -> PortInfo:
    """Create one LSP for NIC ``nic`` of VM ``vm`` on ``net`` in ONE transaction, and put it in
    ``tenant``'s default security group.

    The LSP name is ``name`` or a new UUID (the libvirt interfaceid; a caller that must be able to
    clean up after a timed-out transaction passes its own). ``ip``: None picks a free address,
    ``"dynamic"`` lets OVN IPAM choose, else that address. Returns the :class:`PortInfo`.
    Raises ValidationError for a bad or taken ``ip``/``mac``, HostError when OVN refuses.
    """
    with _lock:
        try:
            macs, _ = _used(nb, net.switch)
        except Exception as exc:
            raise _wrap(f"reading switch {net.switch}", exc) from None
        mac = (mac or new_mac(macs)).lower()
        if mac in macs:
            raise ValidationError("mac", f"{mac} is already used on network {net.name}")
        address = pick_ip(nb, net, ip)
        name = str(uuid.UUID(name)) if name else str(uuid.uuid4())
        label = vm_port_label(vm, nic)
        columns = dict(
            addresses=[f"{mac} {address or DYNAMIC}"],
            port_security=[f"{mac} {address}" if address else mac],
            external_ids={EXT_TENANT: tenant, EXT_VM: vm, EXT_NETWORK: net.name, EXT_NAME: label},
        )
        if net.dhcp_options:
            columns["dhcpv4_options"] = uuid.UUID(net.dhcp_options)
        pg = sg_port_group(tenant, DEFAULT_SG)
        for attempt in (1, 2):
            had_sg = _has_pg(nb, pg)
            try:
                # done: the port (and its group membership, same transaction) is there — a retry
                # after a lost reply must not fail on "already exists" and roll a VM create back
                with nb.transaction(check_error=True, done=lambda: any(
                        p.name == name for p in nb.tables["Logical_Switch_Port"].rows.values())) as txn:
                    cmd = txn.add(nb.lsp_add(net.switch, name, **columns))
                    add_port_to_default_sg(nb, tenant, cmd)
                break
            except Exception as exc:  # noqa: BLE001 - sorted below
                if attempt == 1 and not had_sg and _pg_raced(exc, pg):
                    # another client created the tenant's default group between our read and
                    # our commit (two creates of one tenant at once; a raft cluster's replicas
                    # widen that window): nothing of ours committed (the transaction is atomic),
                    # so once our replica has the group, join it instead of creating it
                    _wait_pg(nb, pg, 5.0)
                    continue
                if isinstance(exc, VirtdeckError):
                    raise HostError(f"OVN northbound: creating port {label} on {net.switch}: {exc}") from None
                raise _wrap(f"creating port {label} on {net.switch}", exc) from None
    return PortInfo(name=name, mac=mac, ip=address, network=net.name, switch=net.switch,
                    label=label, created_sg=None if had_sg else pg)


def _has_pg(nb, pg: str) -> bool:
    return any(r.name == pg for r in nb.tables["Port_Group"].rows.values())


def _pg_raced(exc: BaseException, pg: str) -> bool:
    """True when ``exc`` is OVSDB's index violation on Port_Group ``pg``'s name: the group was
    inserted by another client after this one's replica was read."""
    text = str(exc)
    return "Port_Group" in text and pg in text and "identical values" in text


def _wait_pg(nb, pg: str, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for port group ``pg`` to reach ``nb``'s replica."""
    end = time.monotonic() + timeout
    while not _has_pg(nb, pg) and time.monotonic() < end:
        time.sleep(0.05)


def delete_port(nb, name: str, drop_empty_sg: str | None = None) -> None:
    """Delete LSP ``name`` (if it exists) in one transaction; with ``drop_empty_sg`` (a port group
    name, see ``PortInfo.created_sg``) also delete that group if no port is left in it.
    Raises HostError."""
    try:
        with nb.transaction(check_error=True) as txn:
            txn.add(nb.lsp_del(name, if_exists=True))
        if drop_empty_sg:
            for pg in list(nb.tables["Port_Group"].rows.values()):
                if pg.name == drop_empty_sg and not [p for p in pg.ports if p.name != name]:
                    with nb.transaction(check_error=True) as txn:
                        txn.add(nb.pg_del(drop_empty_sg, if_exists=True))
    except Exception as exc:
        raise _wrap(f"deleting port {name}", exc) from None


def _nb_answers(nb, timeout: float) -> bool:
    """True once the NB connection has caught up: every transaction queued before this call has
    had its outcome (a no-op transaction behind them came through the connection thread, which
    runs them in order) and the IDL is connected and monitoring, i.e. the server answered
    since — so the replica holds whatever an earlier, timed-out transaction committed.
    False when that did not happen within ``timeout`` seconds."""
    idl = nb.idl
    try:
        txn = nb.create_transaction(check_error=True)
        txn.timeout = max(0.1, timeout)
        txn.commit()  # no commands: nothing is sent, but it queues behind the timed-out ones
    except Exception:  # noqa: BLE001 - TimeoutException: the connection thread is still stuck
        return False
    # python-ovs' Idl: MONITORING once the (re)connected server answered the monitor request
    return bool(idl._session.is_connected()) and idl.state == idl.IDL_S_MONITORING


def _lsp_present(nb, name: str) -> bool:
    return any(p.name == name for p in nb.tables["Logical_Switch_Port"].rows.values())


def delete_port_settled(nb, name: str, drop_empty_sg: str | None = None, *, wait: float = 45.0,
                        settle: float = 1.0) -> None:
    """Delete LSP ``name`` for a rollback, also when the transaction that was to create it timed
    out: such a transaction may still commit once the NB answers again (DESIGN.md), and a plain
    if-exists delete sent meanwhile finds nothing and leaves the late port behind.

    Waits (at most ``wait`` seconds in all) until the NB answers on this connection
    (:func:`_nb_answers`), deletes the port if the replica has it (:func:`delete_port`, with
    ``drop_empty_sg``), then watches the replica for ``settle`` more seconds and deletes it again
    if it shows up. Raises HostError when the NB did not answer within ``wait`` seconds (the port
    may then still appear: the message says how to remove it) or refused the delete."""
    end = time.monotonic() + wait
    while not _nb_answers(nb, min(5.0, max(0.1, end - time.monotonic()))):
        if time.monotonic() >= end:
            raise HostError(f"OVN northbound did not answer within {wait:g} s, so a port creation sent "
                            f"before may still commit: once it answers, check and remove LSP {name} "
                            f"(ovn-nbctl --if-exists lsp-del {name})")
        time.sleep(0.2)
    delete_port(nb, name, drop_empty_sg=drop_empty_sg)
    quiet_until = min(end, time.monotonic() + settle)
    while time.monotonic() < quiet_until:
        if _lsp_present(nb, name):
            delete_port(nb, name, drop_empty_sg=drop_empty_sg)
        time.sleep(0.1)
    if _lsp_present(nb, name):
        delete_port(nb, name, drop_empty_sg=drop_empty_sg)


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


def port_ips(nb, names) -> dict[str, tuple[str, list[str]]]:
    """{LSP name: (VM name or "", [IPv4 addresses])} for the LSPs named in ``names`` that exist,
    read from the replica in one pass: addresses are the words after the MAC in ``addresses``
    and OVN's ``dynamic_addresses``; the VM name is the port's ``virtdeck:vm`` tag."""
    want, out = set(names), {}
    for row in nb.tables["Logical_Switch_Port"].rows.values():
        if row.name not in want:
            continue
        ips = []
        for text in list(row.addresses) + list(row.dynamic_addresses or []):
            for word in text.split()[1:]:
                try:
                    ips.append(str(ipaddress.IPv4Address(word)))
                except ValueError:
                    continue
        out[row.name] = (_ext(row).get(EXT_VM, ""), ips)
    return out
