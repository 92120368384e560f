"""OVN northbound: the connection, snapshot reads and change events (ovsdbapp).

- :func:`connect` opens one NB connection: a fresh ``OvnNbApiIdlImpl`` *subclass* per
  connection (ovsdbapp keeps the backend connection as a class attribute, so two connections
  sharing the class would share one IDL), with an IDL whose ``notify``/``run`` hooks report
  changes. Mutations (``ls_add``, ``lsp_add``, …) go through the returned ``api`` as usual
  (``check_error=True``); they live beside this module: networks, routers, security_groups,
  ports.
- :func:`read` turns the in-memory replica into model dataclasses (``Network``, ``Port``,
  ``Router``) under the connection lock — no round trip.
- Change events: the IDL calls ``notify(event, row)`` for each row created/updated/deleted
  (the ovsdbapp notify-handler hook). We collect the tables touched and, once per processed
  OVSDB message batch (end of ``Idl.run``), hand ONE ``NbChange`` to the sink; a connection
  loss or return hands an ``NbChange`` with ``connected`` flipped. The sink must not block.

The python-ovs IDL reconnects by itself with backoff; while it is down the replica keeps the
last known rows (shown as stale by the console) and on return it resyncs (monitor_cond_since,
or a full dump that replaces the rows).

Clusters and SSL (:mod:`.remote`): ``remote`` may list raft members ("ssl:A:6641,ssl:B:6641,
ssl:C:6641"); python-ovs shuffles them and, on a drop, moves to the next one. With
``leader_only=True`` (what a writer needs: the leader commits, a follower would only forward)
the IDL checks the ``_Server`` database of each member it reaches and moves on until it finds
the leader; with ``leader_only=False`` (a reader: any member holds the committed data) it stays
on any connected member, so a leader election does not even interrupt it. Transactions come
from :class:`.rows.RereadTransaction`, so a transaction in flight when the member died is
retried on the new one only after the fresh replica shows it did not commit.
:func:`member` says which member the connection talks to now (for the status line).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ovsdbapp import event as ovs_event
from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.backend.ovs_idl import idlutils
from ovsdbapp.schema.ovn_northbound import impl_idl

from . import remote as ovn_remote
from .rows import RereadTransaction
from ...console.model import Dhcp, Nat, Network, Port, Router, RouterPort, frozen_map
from .names import EXT_NAME, EXT_NETWORK, EXT_PORT, EXT_ROLE, EXT_ROUTER, EXT_TENANT, EXT_VM

log = logging.getLogger(__name__)

_counter = itertools.count(1)

#: The libraries' loggers: python-ovs (``ovs.*``: "Unable to open stream", "connection dropped
#: (Broken pipe)", reconnect chatter) and ovsdbapp (a failed command's traceback via LOG.error).
QUIET_LOGGERS = ("ovs", "ovsdbapp")


def quiet_library_logs() -> None:
    """Keep the OVS libraries' log lines off stderr: with no handler configured, Python's
    last-resort handler prints their WARNING/ERROR records there, between the CLI's one-line
    errors and over the console's screen (Textual draws on stderr). A NullHandler on each
    library logger stops that; records still propagate to handlers the program configures
    (a debug log), and virtdeck reports the failure itself in one sentence. Idempotent."""
    for name in QUIET_LOGGERS:
        lg = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in lg.handlers):
            lg.addHandler(logging.NullHandler())


quiet_library_logs()  # on import: every NB connection is opened through this module


@dataclass(frozen=True)
class NbChange:
    """What the sink receives: ``tables`` touched in one batch (empty for a pure connection
    change), ``connected`` now, ``at`` = ``time.monotonic()``."""

    tables: frozenset[str]
    connected: bool
    at: float


class NbIdl(ovs_connection.OvsdbIdl):
    """An OVN NB IDL that reports row changes and connection flips.

    Two ways to listen, both fed by the IDL's ``notify`` hook:

    - ``notify_handler``: an ovsdbapp ``RowEventHandler``; watch rows with
      ``api.idl.notify_handler.watch_event(RowEvent(...))`` (its own thread runs them).
    - ``sink``: a callable given ONE :class:`NbChange` per processed batch of OVSDB messages
      (end of ``Idl.run``) that touched rows, or when the connection went down or came back.
      Set with :func:`set_sink`; it must not block. This is what the live model uses.
    """

    def __init__(self, remote, schema_helper, **kwargs):
        super().__init__(remote, schema_helper, **kwargs)
        self.notify_handler = ovs_event.RowEventHandler()
        self.sink: Callable[[NbChange], None] | None = None
        self._touched: set[str] = set()
        self._was_connected = False
        self._seqno = self.change_seqno

    def notify(self, event, row, updates=None):
        """Row hook (``event`` create/update/delete): remember the table, pass to handlers."""
        self._touched.add(row._table.name)
        self.notify_handler.notify(event, row, updates)

    def run(self):
        """Process what the server sent, then emit one coalesced :class:`NbChange`."""
        result = super().run()
        connected = self._session.is_connected()
        seq = self.change_seqno
        if self._touched or connected != self._was_connected or seq != self._seqno:
            touched = frozenset(self._touched)
            self._touched.clear()
            sink = self.sink
            if sink is not None:
                try:
                    sink(NbChange(touched, connected, time.monotonic()))
                except Exception:  # noqa: BLE001 - must never break the IDL loop
                    log.exception("NB sink failed")
        self._was_connected = connected
        self._seqno = seq
        return result

    @property
    def connected(self) -> bool:
        """True while the JSON-RPC session to an NB server is up."""
        return self._session.is_connected()

    @property
    def member(self) -> str | None:
        """The member this IDL talks to now ("tcp:127.0.0.1:6641"; ``unix:PATH`` for a
        forwarded socket), None while it is not connected. From python-ovs' reconnect FSM,
        whose name is the remote of the current (or last tried) stream."""
        if not self._session.is_connected():
            return None
        return self._session.get_name()


def _create_transaction(self, check_error=False, log_errors=True, **kwargs):
    # ovsdbapp's api.transaction() passes extra keywords through to here (``done``)
    return RereadTransaction(self, self.ovsdb_connection, self.ovsdb_connection.timeout,
                             check_error, log_errors, done=kwargs.get("done"))


def api_class() -> type:
    """A fresh ``OvnNbApiIdlImpl`` subclass (its own class-level connection slot) whose
    transactions re-read the replica before a retry (:class:`.rows.RereadTransaction`)."""
    n = next(_counter)
    return type(f"VirtdeckNbApi{n}", (impl_idl.OvnNbApiIdlImpl,),
                {"_ovsdb_connection": None, "create_transaction": _create_transaction,
                 "rereads_before_retry": True})


def fetch_schema(remote: str, timeout: float, schema: str = "OVN_Northbound"):
    """``get_schema`` of ``schema`` (OVN_Northbound / OVN_Southbound) over a fresh connection,
    bounded by ``timeout`` seconds (python-ovs blocks without one on a server that accepts but
    does not answer). Raises TimeoutError, or what python-ovs raised."""
    box: dict = {}

    def work() -> None:
        try:
            box["helper"] = idlutils.get_schema_helper(remote, schema)
        except Exception as exc:  # noqa: BLE001
            box["error"] = exc
    t = threading.Thread(target=work, name="ovsdb-schema", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"no schema from {remote} within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["helper"]


# Reconnect backoff for a member list, milliseconds (python-ovs: 1000 .. 8000). After a leader
# dies the survivors answer "not leader" until the election (one to two election timers, 1 s
# each by default) is over, and the dead member refuses: each of those attempts costs a backoff
# step, so with the defaults a client came back 5-7 s after the crash. python-ovs'
# set_backoff() floors both values at 1000, so they are set on the FSM directly.
CLUSTER_BACKOFF_MS = (250, 1000)


def connect(remote: str, timeout: float = 10.0, probe_interval_ms: int | None = 5000, *,
            leader_only: bool = True, ssl: "ovn_remote.SslFiles | None" = None):
    """Connect to the NB at ``remote`` (``tcp:H:P``, ``ssl:H:P``, ``unix:PATH``, or a
    comma-separated list of raft members), wait for the first full copy of the database and
    return the ovsdbapp API (an instance of a fresh ``OvnNbApiIdlImpl`` subclass; its ``idl`` is
    an :class:`NbIdl`).

    ``leader_only``: True (default) for a connection that writes — the IDL only settles on the
    cluster leader; False for a read-only consumer, which may use any connected member (see the
    module docstring). Ignored by a standalone server. ``ssl``: the key/certificate/CA files,
    required when a member is ``ssl:`` (process-wide in python-ovs, :func:`.remote.use_ssl`).
    ``probe_interval_ms``: OVSDB inactivity probe, so a silently dead TCP peer is noticed.

    Raises HostError (one sentence naming the file) for a missing/unreadable SSL file, a CA that
    did not sign the server's certificate or a client certificate the server refused; otherwise
    whatever ovsdbapp/python-ovs raise (``TimeoutError``, ``TimeoutException``,
    ``OvsdbConnectionUnavailable``, ``Exception('Could not retrieve schema …')``) when no member
    answers in ``timeout`` seconds; callers (Session) wrap them in HostError.
    """
    members = ovn_remote.members(remote)
    ovn_remote.prepare(remote, ssl, timeout, "OVN northbound")
    helper = fetch_schema(remote, timeout)
    helper.register_all()
    idl = NbIdl(remote, helper, probe_interval=probe_interval_ms, leader_only=leader_only)
    if len(members) > 1:
        fsm = idl._session.reconnect
        fsm.min_backoff, fsm.max_backoff = CLUSTER_BACKOFF_MS
    conn = ovs_connection.Connection(idl, timeout=timeout)
    try:
        return api_class()(conn)
    except Exception:
        idl.notify_handler.shutdown()
        conn.stop(timeout=1)
        raise


def set_sink(api, sink: Callable[[NbChange], None] | None) -> None:
    """Send this connection's :class:`NbChange` events to ``sink`` (None: nowhere)."""
    api.idl.sink = sink


def member(api) -> str | None:
    """The member ``api`` talks to now ("ssl:10.0.0.2:6641"), None while disconnected. For
    the status line: with a raft member list it changes after a failover."""
    idl = api.idl
    if isinstance(idl, NbIdl):
        return idl.member
    return idl._session.get_name() if idl._session.is_connected() else None


def is_connected(api) -> bool:
    """True while ``api``'s IDL has a live session to an NB server."""
    idl = api.idl
    return idl.connected if isinstance(idl, NbIdl) else idl._session.is_connected()


def close(api) -> None:
    """Stop ``api``'s connection thread and its notify thread (idempotent, never raises)."""
    idl = api.idl
    if isinstance(idl, NbIdl):
        idl.sink = None
        idl.notify_handler.shutdown()
    try:
        # stop() puts its sentinel into ovsdbapp's one-slot transaction queue with no timeout: a
        # transaction left queued behind a frozen NB (its caller timed out long ago) would block
        # it forever, and the process with it. Make room first.
        while api.ovsdb_connection.txns.get_nowait() is not None:
            pass
        api.ovsdb_connection.stop(timeout=5)
    except Exception:  # noqa: BLE001
        log.debug("NB connection stop failed", exc_info=True)


# ---------------------------------------------------------------------------------------------
# Snapshot reads


@dataclass(frozen=True)
class NbData:
    """A consistent read of the NB replica: switches, LSPs and routers as model objects."""

    networks: tuple[Network, ...] = ()
    ports: tuple[Port, ...] = ()
    routers: tuple[Router, ...] = ()


def _opt1(value):
    """An optional OVSDB column (a list of 0 or 1 items) → the item or None."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _dhcp(row) -> Dhcp:
    return Dhcp(uuid=str(row.uuid), cidr=row.cidr, options=frozen_map(row.options),
                external_ids=frozen_map(row.external_ids))


def read(api) -> NbData:
    """Build model objects from the IDL replica, under the connection lock (no I/O).

    Switch kind: a switch with a ``localnet`` LSP is ``provider`` (VLAN = that port's ``tag``,
    physnet = ``options:network_name``), else ``overlay``. Subnet: ``other_config:subnet``, else
    the DHCP cidr. DHCP: a DHCP_Options row tagged ``virtdeck:network`` = switch name (or uuid),
    else one referenced by the switch's ports' ``dhcpv4_options``, else one whose cidr equals
    the subnet. Router ports get ``peer_switch`` from the router-type LSP pointing at them.
    """
    idl = api.idl
    with api.ovsdb_connection.lock:
        tables = idl.tables
        ls_rows = list(tables["Logical_Switch"].rows.values())
        dhcp_rows = list(tables["DHCP_Options"].rows.values())
        lr_rows = list(tables["Logical_Router"].rows.values())

        dhcps = {row.uuid: _dhcp(row) for row in dhcp_rows}
        dhcp_by_net: dict = {}
        for row in dhcp_rows:
            net = row.external_ids.get(EXT_NETWORK)
            if net:
                dhcp_by_net.setdefault((row.external_ids.get(EXT_TENANT), net), dhcps[row.uuid])
                dhcp_by_net.setdefault(net, dhcps[row.uuid])

        networks: list[Network] = []
        ports: list[Port] = []
        router_port_peer: dict[str, str] = {}
        for ls in ls_rows:
            kind, vlan, physnet = "overlay", None, None
            names: list[str] = []
            port_dhcp = None
            for p in ls.ports:
                tag = _opt1(p.tag)
                port = Port(
                    uuid=str(p.uuid), name=p.name, switch=ls.name, type=p.type,
                    addresses=tuple(p.addresses),
                    dynamic_addresses=_opt1(p.dynamic_addresses),
                    up=_opt1(p.up), enabled=_opt1(p.enabled),
                    tag=int(tag) if tag is not None else None,
                    options=frozen_map(p.options), external_ids=frozen_map(p.external_ids),
                    tenant=p.external_ids.get(EXT_TENANT), label=p.external_ids.get(EXT_NAME),
                    vm=p.external_ids.get(EXT_VM), role=p.external_ids.get(EXT_ROLE),
                    router=p.external_ids.get(EXT_ROUTER))
                ports.append(port)
                names.append(p.name)
                if p.type == "localnet":
                    kind, vlan, physnet = "provider", port.tag, p.options.get("network_name")
                elif p.type == "router" and p.options.get("router-port"):
                    router_port_peer[p.options["router-port"]] = ls.name
                d = _opt1(p.dhcpv4_options)
                if port_dhcp is None and d is not None:
                    port_dhcp = dhcps.get(d.uuid)
            subnet = ls.other_config.get("subnet")
            ext = ls.external_ids
            dhcp = (dhcp_by_net.get((ext.get(EXT_TENANT), ext.get(EXT_NAME)))
                    or dhcp_by_net.get(ls.name) or dhcp_by_net.get(str(ls.uuid)) or port_dhcp)
            if dhcp is None and subnet:
                dhcp = next((d for d in dhcps.values() if d.cidr == subnet), None)
            networks.append(Network(
                uuid=str(ls.uuid), name=ls.name, kind=kind, vlan=vlan, physnet=physnet,
                subnet=subnet or (dhcp.cidr if dhcp else None), dhcp=dhcp, ports=tuple(names),
                other_config=frozen_map(ls.other_config),
                external_ids=frozen_map(ls.external_ids),
                tenant=ext.get(EXT_TENANT), label=ext.get(EXT_NAME)))

        routers: list[Router] = []
        for lr in lr_rows:
            rports = tuple(RouterPort(
                uuid=str(p.uuid), name=p.name, mac=p.mac, networks=tuple(p.networks),
                peer_switch=router_port_peer.get(p.name),
                gateway_chassis=tuple(g.chassis_name for g in
                                      sorted(p.gateway_chassis, key=lambda g: -g.priority)))
                for p in lr.ports)
            nats = tuple(Nat(uuid=str(n.uuid), type=n.type, external_ip=n.external_ip,
                             logical_ip=n.logical_ip, external_ids=frozen_map(n.external_ids),
                             port=n.external_ids.get(EXT_PORT))
                         for n in lr.nat)
            routers.append(Router(uuid=str(lr.uuid), name=lr.name, ports=rports, nats=nats,
                                  external_ids=frozen_map(lr.external_ids),
                                  tenant=lr.external_ids.get(EXT_TENANT),
                                  label=lr.external_ids.get(EXT_NAME)))
    networks.sort(key=lambda n: n.name)
    ports.sort(key=lambda p: (p.switch, p.name))
    routers.sort(key=lambda r: r.name)
    return NbData(networks=tuple(networks), ports=tuple(ports), routers=tuple(routers))


