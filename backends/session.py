"""Session: every connection virtdeck holds for one inventory.

Per host one SSH connection (:mod:`backends.ssh`) carries everything: the libvirt socket
forward (opened with ``qemu+unix``), the odd command, and for the OVN host the NB socket
forward. asyncssh runs on the shared I/O loop thread (:mod:`backends.ioloop`), so callers
in any other thread may block in libvirt or ovsdbapp.

Everything is opened lazily and cached; :meth:`Session.drop` forgets a host's connections
so the next call reconnects (used after a host drops). Thread-safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Iterable

import libvirt

from . import ioloop
from .ovn import connection as ovn_nb, rows as ovn_rows
from .ovn.remote import SslFiles, is_cluster
from .ssh import CompletedCommand, HostLink, open_link
from ..config.inventory import HostConfig, Inventory
from ..console.errors import HostError

# seconds between probes, missed probes: a silent host (or a frozen libvirtd) is closed after
# 3 × (1 + 1) = 6 s, the bound (2, 2) gave, with a probe every 3 s instead of 2 while idle
LIBVIRT_KEEPALIVE = (3, 1)
# The SSH keepalive of a link that carries a libvirt connection: libvirt's probes (above) flow
# through the link and reset asyncssh's timer, so at 3 s it fired whenever libvirt's 3 s probe
# came a little late, doubling an idle link's packets. At 4 s it never fires while libvirt's
# probes flow, and a frozen sshd (which libvirt's keepalive does not close for an SSH command
# in flight) is still closed after 4 × (2 + 1) = 12 s, the bound of ssh.open_link's 3 s × 3
# (links without libvirt keep that).
SSH_KEEPALIVE_UNDER_LIBVIRT = (4.0, 2)


# The NB IDL with row events and change/connection signals lives in backends.ovn.connection.
NbIdl = ovn_nb.NbIdl


def open_nb(remote: str, timeout: float = 10.0, *, ssl=None, leader_only: bool = True,
            label: str | None = None):
    """Open an ovsdbapp OVN NB API on ``remote`` (``unix:PATH``, ``tcp:H:P``, comma list for raft).

    Each call makes a fresh ``OvnNbApiIdlImpl`` subclass, because ovsdbapp keeps the backend
    connection as a class attribute: two connections must not share a class (see
    :func:`backends.ovn.connection.connect`). Row events: ``api.idl.notify_handler.watch_event(...)``;
    coalesced change signals: :func:`backends.ovn.connection.set_sink`. ``ssl``: a
    :class:`backends.ovn.remote.SslFiles` for ``ssl:`` members; ``leader_only``: see connect.
    Raises HostError when the database cannot be reached within ``timeout`` seconds, or (its
    own one sentence naming the file) when an SSL file or certificate is wrong. ``label``: where
    the NB is as the operator knows it (the inventory's via_host), for messages; default ``remote``.
    """
    where = label or remote
    try:
        api = ovn_nb.connect(remote, timeout=timeout, ssl=ssl, leader_only=leader_only)
    except HostError:
        raise
    except Exception as exc:  # ovsdbapp raises assorted types (TimeoutException, Exception)
        raise HostError(f"OVN northbound on {where}: {ovn_rows.describe(exc)}") from None
    setattr(api, ovn_rows.LABEL_ATTR, where)  # transaction errors name it too (rows.checked_txn)
    return api


def _close_link(link: HostLink, timeout: float = 1.0) -> None:
    """Close ``link`` and WAIT until asyncssh has closed it, its forwards and the local ends of
    the forwarded sockets (from any thread but the I/O thread, where it is only scheduled).

    Why wait: a libvirt connection that is still referenced by a virDomain/virNetwork object
    when :meth:`Session.close` runs stays open (``virConnectClose`` only drops a reference). Its
    real close happens when the last object is freed — possibly at interpreter exit — and sends a
    CONNECT_CLOSE RPC over the forwarded socket, waiting for the answer with no timeout. If the
    socket's other end is still open in this process but nobody serves it (the I/O thread is
    gone at exit), ``virDomainFree`` blocks forever. Once asyncssh has closed our end, the RPC
    meets EOF and returns at once. A peer that does not answer the close within ``timeout``
    seconds (a dropped host) is cut with ``abort()``.
    """
    async def _close():
        link.close()
        try:
            await asyncio.wait_for(link.conn.wait_closed(), timeout)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - a dead peer: cut it
            link.conn.abort()
        await asyncio.sleep(0)  # let the forwarded channels' transports run their close

    if threading.current_thread().name == "virtdeck-io":
        ioloop.io_loop().create_task(_close())
        return
    try:
        ioloop.call(_close(), timeout=timeout + 2)
    except Exception:  # noqa: BLE001 - best effort: the link is being dropped anyway
        pass


class Session:
    """All connections for ``inventory``. Use as a context manager or call :meth:`close`."""

    def __init__(self, inventory: Inventory, *, connect_timeout: float = 10.0):
        self.inventory = inventory
        self.connect_timeout = connect_timeout
        self._lock = threading.RLock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._links: dict[str, HostLink] = {}
        self._libvirt: dict[str, libvirt.virConnect] = {}
        self._nb = None
        self._nb_reader = None      # leader_only=False, only for a raft member list
        self._nb_remote: str | None = None

    # -- SSH --------------------------------------------------------------------------
    def _host_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._host_locks.setdefault(name, threading.Lock())

    def _open_coro(self, host: HostConfig):
        # Only what the inventory sets is passed: user/port/identity left unset are ssh_config's.
        inv = self.inventory
        return open_link(host.name, host.address, port=host.port, user=host.user,
                         identity=inv.identity_for(host), known_hosts=inv.known_hosts_for(host),
                         connect_timeout=self.connect_timeout)

    def link(self, name: str) -> HostLink:
        """The SSH link to host ``name``, connecting if needed. Raises HostError (and its
        HostKeyUnknown / HostKeyChanged subclasses)."""
        host = self.inventory.host(name)
        with self._host_lock(name):
            link = self._links.get(name)
            if link is not None and not link.conn.is_closed():
                return link
            # connect_timeout is per connection: a ProxyJump hop is one more
            link = ioloop.call(self._open_coro(host), timeout=2 * self.connect_timeout + 5)
            self._links[name] = link
            return link

    def connect(self, hosts: Iterable[str] | None = None, timeout: float | None = None) -> dict[str, BaseException | None]:
        """Open SSH to ``hosts`` (default: every enabled host) in parallel; blocking.

        Returns ``{host: None | the error}``; never raises for a single host's failure.
        """
        names = list(hosts) if hosts is not None else [h.name for h in self.inventory.hosts if h.enabled]
        result: dict[str, BaseException | None] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            futures = {pool.submit(self.link, n): n for n in names}
            for fut in concurrent.futures.as_completed(futures):
                name = futures[fut]
                exc = fut.exception()
                result[name] = exc
        return result

    def run(self, name: str, command, timeout: float = 30.0, input: str | None = None,
            binary: bool = False) -> CompletedCommand:
        """Run a command on host ``name`` over its SSH link (see HostLink.run; ``binary``:
        stdout/stderr as bytes)."""
        link = self.link(name)
        return ioloop.call(link.run(command, timeout=timeout, input=input, binary=binary),
                           timeout=timeout + 5)

    # -- libvirt ----------------------------------------------------------------------
    def libvirt(self, name: str) -> libvirt.virConnect:
        """A libvirt connection to hypervisor ``name`` through its forwarded socket.

        The connection has libvirt keepalive on (:data:`LIBVIRT_KEEPALIVE`); register a close
        callback on it to learn of drops. Raises HostError with libvirt's message.
        """
        host = self.inventory.host(name)
        if not host.hypervisor:
            raise HostError(f"{name} is not a hypervisor (hypervisor = false in the inventory)")
        with self._lock:
            conn = self._libvirt.get(name)
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except libvirt.libvirtError:
                    pass
                self._libvirt.pop(name, None)
        link = self.link(name)
        local = ioloop.call(link.forward_unix(host.libvirt_socket, "libvirt"), timeout=self.connect_timeout)
        uri = f"qemu+unix:///system?socket={local}"
        try:
            conn = libvirt.open(uri)
            conn.setKeepAlive(*LIBVIRT_KEEPALIVE)
        except libvirt.libvirtError as exc:
            raise HostError(f"{name}: libvirt: {exc.get_error_message()}") from None
        # one keepalive per link is enough: libvirt's (it also sees a frozen libvirtd)
        ioloop.io_loop().call_soon_threadsafe(link.conn.set_keepalive, *SSH_KEEPALIVE_UNDER_LIBVIRT)
        with self._lock:
            self._libvirt[name] = conn
        return conn

    # -- OVN NB -----------------------------------------------------------------------
    def nb_remote(self) -> str:
        """The OVSDB connection string for NB: the inventory's ``connection``, or a local
        socket forwarded over SSH to ``via_host``'s ``nb_socket``."""
        ovn = self.inventory.ovn
        if ovn.connection:
            return ovn.connection
        if not ovn.via_host:
            raise HostError("no OVN northbound configured: set [ovn] via_host or connection in the inventory")
        with self._lock:
            if self._nb_remote:
                return self._nb_remote
        link = self.link(ovn.via_host)
        local = ioloop.call(link.forward_unix(ovn.nb_socket, "ovnnb"), timeout=self.connect_timeout)
        with self._lock:
            self._nb_remote = f"unix:{local}"
            return self._nb_remote

    def _nb_ssl(self) -> SslFiles | None:
        ovn = self.inventory.ovn
        return (SslFiles(ovn.private_key, ovn.certificate, ovn.ca_cert)
                if ovn.private_key and ovn.certificate and ovn.ca_cert else None)

    def _nb_is_cluster(self) -> bool:
        # only an inventory connection string can list members; via_host is one socket
        return bool(self.inventory.ovn.connection) and is_cluster(self.inventory.ovn.connection)

    def nb(self):
        """The ovsdbapp ``OvnNbApiIdlImpl`` for this inventory's NB (opened once), the WRITER:
        with a raft member list it settles on the leader (``leader_only=True``). Services and the
        CLI use it. Raises HostError."""
        with self._lock:
            if self._nb is not None:
                return self._nb
        # leader_only: services write through this connection (the leader commits)
        api = open_nb(self.nb_remote(), timeout=self.connect_timeout, ssl=self._nb_ssl(),
                      label=self.inventory.ovn.via_host)
        with self._lock:
            if self._nb is None:
                self._nb = api
            return self._nb

    def nb_reader(self):
        """The NB API for a read-only consumer (the console's live view), opened once.

        With a raft member list (the inventory's ``connection`` lists several members) it is its
        own connection with ``leader_only=False``: any member connected to the cluster holds the
        committed data, so the reader stays on its member through an election and moves to any
        survivor when that member dies, instead of waiting for a new leader as :meth:`nb` does.
        With one server (``tcp:``/``ssl:``/a forwarded socket) ``leader_only`` means nothing and
        this is :meth:`nb` itself (one replica, not two). Raises HostError like :meth:`nb`.
        """
        if not self._nb_is_cluster():
            return self.nb()
        with self._lock:
            if self._nb_reader is not None:
                return self._nb_reader
        api = open_nb(self.nb_remote(), timeout=self.connect_timeout, ssl=self._nb_ssl(),
                      leader_only=False)
        with self._lock:
            if self._nb_reader is None:
                self._nb_reader, api = api, None
            reader = self._nb_reader
        if api is not None:         # another thread opened one meanwhile
            ovn_nb.close(api)
        return reader

    def reset_nb_reader(self) -> None:
        """Close and forget the connection :meth:`nb_reader` returns, so the next call opens a
        fresh one: the reader's own for a member list (the writer stays), else :meth:`reset_nb`."""
        if not self._nb_is_cluster():
            self.reset_nb()
            return
        with self._lock:
            reader, self._nb_reader = self._nb_reader, None
        if reader is not None:
            ovn_nb.close(reader)

    def reset_nb(self) -> None:
        """Close and forget the NB connection (and its SSH forward) so the next :meth:`nb`
        opens a fresh one — after ``via_host`` dropped, the old forward path is dead."""
        with self._lock:
            nb, self._nb = self._nb, None
            self._nb_remote = None
        if nb is not None:
            ovn_nb.close(nb)

    # -- lifecycle --------------------------------------------------------------------
    def drop(self, name: str) -> None:
        """Forget host ``name``'s connections (closing them) so the next call reconnects."""
        with self._lock:
            conn = self._libvirt.pop(name, None)
            link = self._links.pop(name, None)
            if self.inventory.ovn.via_host == name:
                self._nb_remote = None
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass
        if link is not None:
            _close_link(link)

    def close(self) -> None:
        """Close every connection (idempotent)."""
        with self._lock:
            nb, self._nb = self._nb, None
            reader, self._nb_reader = self._nb_reader, None
        for api in (nb, reader):
            if api is not None:
                ovn_nb.close(api)
        for name in list(self._links):
            self.drop(name)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
