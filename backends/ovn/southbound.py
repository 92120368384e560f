"""OVN southbound, read-only: chassis, their encapsulations and bridge mappings, port bindings
and router gateway chassis — where "is this port really up, and on which chassis" is answered.

- :func:`remote` finds the SB connection string from the inventory: ``[ovn] sb_connection``
  (a member list, ``ssl:`` with the NB's key/certificate/CA), else the SB socket
  (``sb_socket``) on ``via_host``, forwarded over that host's SSH link like the NB's.
- :func:`connect` opens one read-only IDL (``leader_only=False``: any raft member holds the
  committed data) monitoring only the tables read here — never ``Logical_Flow`` or
  ``MAC_Binding``, which are large in production.
- :func:`read` turns the replica into :class:`SbData` (frozen dataclasses, no I/O);
  :func:`snapshot` is connect + read + close for one-shot callers (``virtdeck check``).

Nothing here writes to the southbound: ovn-northd and the ovn-controllers own it.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Iterable

from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.schema.ovn_southbound import impl_idl

from . import connection as ovn_connection, remote as ovn_remote
from ...console.errors import HostError

log = logging.getLogger(__name__)
_counter = itertools.count(1)

#: table → columns monitored (empty: all columns of the table)
TABLES: dict[str, tuple[str, ...]] = {
    "Chassis": ("name", "hostname", "encaps", "external_ids", "other_config"),
    "Encap": ("type", "ip", "chassis_name"),
    "Datapath_Binding": ("external_ids", "tunnel_key"),
    "Port_Binding": ("logical_port", "type", "chassis", "datapath", "mac", "up", "options",
                     "external_ids", "ha_chassis_group", "gateway_chassis", "requested_chassis"),
    "Gateway_Chassis": ("name", "chassis", "priority"),
    "HA_Chassis_Group": ("name", "ha_chassis", "external_ids"),
    "HA_Chassis": ("chassis", "priority"),
}


@dataclass(frozen=True)
class Chassis:
    """One SB ``Chassis`` row: ``name`` (the ovn-controller's system-id), ``hostname``,
    ``encaps`` ((type, ip) pairs, e.g. ("geneve", "172.16.0.11")), ``bridge_mappings``
    ({physnet: OVS bridge}, from ``other_config``/``external_ids`` ``ovn-bridge-mappings``) and
    ``host``: the inventory host that claims it (:func:`claim`), None when none does."""

    name: str
    hostname: str
    encaps: tuple[tuple[str, str], ...] = ()
    bridge_mappings: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    host: str | None = None

    @property
    def encap_ip(self) -> str | None:
        """The first encapsulation IP, or None."""
        return self.encaps[0][1] if self.encaps else None


@dataclass(frozen=True)
class Binding:
    """One SB ``Port_Binding``: ``logical_port`` (the LSP/LRP name), ``type`` ("" for a VM
    port, "chassisredirect", "patch", "localnet", …), ``chassis`` (name of the chassis that
    binds it, None when unbound), ``up`` (the ``up`` column: ovn-controller has installed its
    flows; None on an older schema), ``datapath`` (the switch/router name from the datapath's
    ``external_ids:name``), ``mac`` (the ``mac`` column's entries)."""

    logical_port: str
    type: str
    chassis: str | None
    up: bool | None
    datapath: str | None
    mac: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gateway:
    """A router's gateway port as the SB sees it: ``router`` (logical router name), ``port``
    (the LRP name), ``active`` (the chassis binding its ``cr-`` chassisredirect port: where
    the gateway runs now, None when unbound), ``candidates`` (chassis names, highest priority
    first, from Gateway_Chassis or the HA chassis group)."""

    router: str | None
    port: str
    active: str | None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class SbData:
    """A consistent read of the SB replica (see :func:`read`). ``member``: the server it was
    read from (:func:`member`: "ssl:10.0.0.1:6642", ``unix:PATH`` for a forwarded socket; None
    while disconnected); ``members``: every member its connection names (:func:`members`)."""

    chassis: tuple[Chassis, ...] = ()
    bindings: tuple[Binding, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    member: str | None = None
    members: tuple[str, ...] = ()

    @property
    def member_list(self) -> bool:
        """True when the connection names more than one ``tcp:``/``ssl:`` member (a raft
        cluster): only then is the member in use worth showing (a forwarded socket's path is a
        random temporary name)."""
        return len(self.members) > 1 and all(m.startswith(("tcp:", "ssl:")) for m in self.members)

    def chassis_named(self, name: str | None) -> Chassis | None:
        """The chassis called ``name``, or None."""
        return next((c for c in self.chassis if c.name == name), None)

    def binding(self, logical_port: str) -> Binding | None:
        """The binding of ``logical_port`` (an LSP name), or None when the SB has none."""
        return next((b for b in self.bindings if b.logical_port == logical_port), None)

    def host_of_chassis(self, name: str | None) -> str | None:
        """The inventory host that claims chassis ``name``, or None."""
        c = self.chassis_named(name)
        return c.host if c else None

    def chassis_of_host(self, host: str) -> Chassis | None:
        """The chassis the inventory host ``host`` is, or None."""
        return next((c for c in self.chassis if c.host == host), None)


def claim(chassis_name: str, hostname: str, encap_ips: Iterable[str],
          hosts: Iterable) -> str | None:
    """The inventory host (``config.inventory.HostConfig``-like: ``name``, ``address``) that a
    chassis is: its name or hostname (or the hostname's first label) equals the host's name or
    address, or one of its encap IPs is the host's address. None when no host claims it."""
    hostname = hostname or ""
    keys = {chassis_name, hostname, hostname.split(".", 1)[0]} - {""}
    ips = set(encap_ips)
    for h in hosts:
        if h.name in keys or h.address in keys or h.address in ips:
            return h.name
    return None


def _mappings(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        physnet, _, bridge = item.strip().partition(":")
        if physnet and bridge:
            out[physnet] = bridge
    return out


def _opt1(value):
    if isinstance(value, list):
        return value[0] if value else None
    return value


def remote(session) -> str:
    """The SB connection string for ``session``'s inventory: ``[ovn] sb_connection``, else a
    local socket forwarded over SSH to ``via_host``'s ``sb_socket`` (kept for the link's life).
    Raises HostError when neither is set (an NB ``connection`` alone says nothing about the SB)
    or the forward fails."""
    from .. import ioloop
    ovn = session.inventory.ovn
    sb_connection = getattr(ovn, "sb_connection", None)
    if sb_connection:
        return sb_connection
    if not ovn.via_host:
        raise HostError("no OVN southbound configured: set [ovn] sb_connection (or via_host) "
                        "in the inventory")
    sock = getattr(ovn, "sb_socket", None) or "/run/ovn/ovnsb_db.sock"
    link = session.link(ovn.via_host)
    local = ioloop.call(link.forward_unix(sock, "ovnsb"), timeout=session.connect_timeout)
    return f"unix:{local}"


def _ssl_files(inventory) -> ovn_remote.SslFiles | None:
    ovn = inventory.ovn
    if ovn.private_key and ovn.certificate and ovn.ca_cert:
        return ovn_remote.SslFiles(ovn.private_key, ovn.certificate, ovn.ca_cert)
    return None


def _schema(remote_: str, timeout: float):
    try:
        return ovn_connection.fetch_schema(remote_, timeout, "OVN_Southbound")
    except TimeoutError:
        raise HostError(f"OVN southbound at {remote_}: no answer within {timeout:g} s") from None
    except Exception as exc:  # noqa: BLE001 - python-ovs raises plain Exceptions
        raise HostError(f"OVN southbound at {remote_}: {exc}") from None


def connect(remote_: str, timeout: float = 10.0, ssl: ovn_remote.SslFiles | None = None):
    """A read-only SB connection to ``remote_`` (``tcp:``/``ssl:``/``unix:``, or a raft member
    list): an ovsdbapp ``OvnSbApiIdlImpl`` (fresh subclass, its own connection slot) whose
    replica holds :data:`TABLES`, synced before it returns. Close with :func:`close`.

    Raises HostError: an ``ssl:`` member without the SSL files, a file problem or a refused
    certificate (one sentence naming the file), no schema within ``timeout`` seconds.
    """
    ovn_remote.prepare(remote_, ssl, timeout, "OVN southbound")
    helper = _schema(remote_, timeout)
    for table, columns in TABLES.items():
        known = helper.schema_json["tables"].get(table, {}).get("columns", {})
        if table not in helper.schema_json["tables"]:
            continue
        helper.register_columns(table, [c for c in columns if c in known])
    idl = ovs_connection.OvsdbIdl(remote_, helper, leader_only=False, probe_interval=5000)
    conn = ovs_connection.Connection(idl, timeout=timeout)
    cls = type(f"VirtdeckSbApi{next(_counter)}", (impl_idl.OvnSbApiIdlImpl,),
               {"_ovsdb_connection": None})
    try:
        return cls(conn)
    except Exception as exc:
        conn.stop(timeout=1)
        raise HostError(f"OVN southbound at {remote_}: {exc}") from None


def close(api) -> None:
    """Stop ``api``'s connection thread (idempotent, never raises)."""
    try:
        api.ovsdb_connection.stop(timeout=5)
    except Exception:  # noqa: BLE001
        log.debug("SB connection stop failed", exc_info=True)


def read(api, hosts: Iterable = ()) -> SbData:
    """The replica as :class:`SbData`, under the connection lock (no I/O). ``hosts``: the
    inventory's hosts, to say which one each chassis is (:func:`claim`)."""
    hosts = list(hosts)
    idl = api.idl
    with api.ovsdb_connection.lock:
        t = idl.tables
        chassis = []
        for row in t["Chassis"].rows.values():
            encaps = tuple(sorted((e.type, e.ip) for e in row.encaps))
            maps = _mappings(row.other_config.get("ovn-bridge-mappings")
                             or row.external_ids.get("ovn-bridge-mappings"))
            chassis.append(Chassis(
                name=row.name, hostname=row.hostname, encaps=encaps, bridge_mappings=maps,
                host=claim(row.name, row.hostname, [ip for _, ip in encaps], hosts)))
        bindings = []
        cr_ports = {}
        for pb in t["Port_Binding"].rows.values():
            ch = _opt1(pb.chassis)
            dp = pb.datapath
            b = Binding(logical_port=pb.logical_port, type=pb.type,
                        chassis=ch.name if ch is not None else None,
                        up=_opt1(getattr(pb, "up", None)),
                        datapath=dp.external_ids.get("name") if dp is not None else None,
                        mac=tuple(pb.mac))
            bindings.append(b)
            if pb.type == "chassisredirect":
                cands: list[tuple[int, str]] = []
                for g in getattr(pb, "gateway_chassis", []) or []:
                    gc = _opt1(g.chassis)
                    if gc is not None:
                        cands.append((g.priority, gc.name))
                grp = _opt1(getattr(pb, "ha_chassis_group", None))
                if grp is not None:
                    for hc in grp.ha_chassis:
                        c = _opt1(hc.chassis)
                        if c is not None:
                            cands.append((hc.priority, c.name))
                cr_ports[pb.logical_port] = (b, tuple(n for _, n in sorted(cands, reverse=True)))
    gateways = []
    for name, (b, cands) in sorted(cr_ports.items()):
        port = name[3:] if name.startswith("cr-") else name
        gateways.append(Gateway(router=b.datapath, port=port, active=b.chassis, candidates=cands))
    return SbData(chassis=tuple(sorted(chassis, key=lambda c: c.name)),
                  bindings=tuple(sorted(bindings, key=lambda b: b.logical_port)),
                  gateways=tuple(gateways), member=member(api), members=members(api))


def member(api) -> str | None:
    """The SB member ``api`` reads from now ("ssl:10.0.0.1:6642", from python-ovs' session
    name), None while disconnected. With a raft member list it changes after a failover, even
    when no row does (the replica then has nothing new to say)."""
    try:
        s = api.idl._session
        return s.get_name() if s.is_connected() else None
    except Exception:  # noqa: BLE001 - the status line can live without it
        return None


def members(api) -> tuple[str, ...]:
    """Every member ``api``'s connection names (python-ovs' session remotes, sorted): one for a
    single server, three for a 3-member raft cluster."""
    try:
        return tuple(sorted(getattr(api.idl._session, "remotes", None) or ()))
    except Exception:  # noqa: BLE001 - the status line can live without it
        return ()


def snapshot(session, timeout: float | None = None) -> SbData:
    """One read of the SB for ``session`` (a :class:`backends.session.Session`): connect
    (:func:`remote`), wait for the replica, :func:`read`, close. Raises HostError."""
    inv = session.inventory
    api = connect(remote(session), timeout=timeout or session.connect_timeout, ssl=_ssl_files(inv))
    try:
        return read(api, inv.hosts)
    finally:
        close(api)
