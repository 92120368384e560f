"""The live model: every hypervisor and the OVN NB, kept current by pushed events.

:class:`LiveModel` owns one worker thread per hypervisor, one for the NB and one publisher.
Workers do all the blocking work (SSH, libvirt, ovsdbapp) and keep an immutable snapshot of
their part; the publisher merges the parts into one :class:`console.model.Cloud` at most every
``publish_interval`` seconds and tells subscribers "changed". Readers (the UI thread, the CLI)
call :meth:`LiveModel.snapshot` and never block.

Start-up per host (in parallel): SSH; at once ONE SSH command (the OVS bridge mappings and
the definitions of shut-off domains from one ``cat``) starts beside libvirt over the
forwarded socket; events registered first, then ONE ``getAllDomainStats`` (lists every domain
with state, vCPUs, memory) beside the host facts, and ``XMLDesc`` (32 in flight) for domains
the ``cat`` did not cover (running ones).

What keeps it current:

- libvirt lifecycle / metadata events → that one domain is re-read (XML, state);
- OVSDB row changes (coalesced per batch by :mod:`backends.ovn.connection`) → the NB replica is re-read
  (no round trip);
- polled, because nothing pushes them: stats of *active* domains with ONE ``getAllDomainStats``
  per host every ``stats_interval`` s, re-armed after it returns, plus free RAM; every
  ``reconcile_every`` polls a full listing catches anything an event could have missed.

Failure handling:

- a host that drops (libvirt keepalive 2 s × 3 → ≤ 6 s, SSH keepalive 3 s × 3; EOF at once;
  measured 4.5-6.4 s for a host gone silent) is marked ``unreachable``
  with its last facts and domains kept, retried with backoff (1, 2, 4 … 30 s) and resynced
  when it answers again; nothing else waits for it;
- an unknown SSH host key puts the host in state ``host-key`` with its fingerprint until the
  operator answers (:meth:`trust_host_key` / :meth:`refuse_host_key`); a changed key puts it in
  ``refused`` (never retried on its own);
- NB down: the last NB data stays, :attr:`Cloud.nb` says ``stale``; the python-ovs IDL
  reconnects on its own, and after ``nb_reset_after`` s the connection (and its SSH forward)
  is rebuilt.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

import libvirt

from ..backends import host_facts, hypervisor as hv
from ..backends.ovn import connection as ovn_nb
from ..backends.session import Session
from ..backends.ssh import HostKeyChanged, HostKeyUnknown, trust_host_key as _trust_key
from ..config.inventory import HostConfig, Inventory
from .errors import HostError
from .model import (HOST_CONNECTING, HOST_DISABLED, HOST_HOSTKEY, HOST_REFUSED,
                           HOST_UNREACHABLE, HOST_UP, NB_CONNECTING, NB_STALE, NB_UP, Cloud,
                           Host, NbStatus, Vm, derive_tenants)

log = logging.getLogger(__name__)

_WAKE = "wake"
_CLOSED = "closed"


@dataclass(frozen=True)
class HostPart:
    """One hypervisor's part of the cloud: its :class:`Host` and domains (sorted by name)."""

    host: Host
    vms: tuple[Vm, ...] = ()
    answered: bool = False  # tried at least once (up or failed): counts for "first complete"


@dataclass(frozen=True)
class NbPart:
    """The NB part: status plus the last data read (kept while stale)."""

    status: NbStatus
    data: ovn_nb.NbData = ovn_nb.NbData()
    answered: bool = False


@dataclass(frozen=True)
class HostKeyRequest:
    """An unknown host key awaiting the operator: show ``fingerprint``, then call
    :meth:`LiveModel.trust_host_key` or :meth:`LiveModel.refuse_host_key` with ``host``."""

    host: str
    address: str
    port: int
    fingerprint: str
    key_line: str


class LiveModel:
    """Live view of ``inventory``'s hypervisors and OVN NB (see module doc).

    ``session``: an existing :class:`backends.session.Session` (default: a new one, closed by
    :meth:`stop`). Subscribers registered with :meth:`subscribe` are called with no argument on
    the publisher thread after each new snapshot; they must not block (the App posts a message).
    """

    def __init__(self, inventory: Inventory, session: Session | None = None, *,
                 stats_interval: float = 3.0, reconcile_every: int = 20,
                 publish_interval: float = 0.05, nb_reset_after: float = 5.0,
                 xml_workers: int = 32):
        self.inventory = inventory
        self.session = session or Session(inventory)
        self._own_session = session is None
        self.stats_interval = stats_interval
        self.reconcile_every = reconcile_every
        self.publish_interval = publish_interval
        self.nb_reset_after = nb_reset_after
        self.xml_workers = xml_workers
        self._parts: dict[str, HostPart] = {}
        for h in inventory.hypervisors:
            state = HOST_CONNECTING if h.enabled else HOST_DISABLED
            self._parts[h.name] = HostPart(Host(name=h.name, address=h.address, state=state),
                                           answered=not h.enabled)
        nb_remote = inventory.ovn.connection or (
            f"{inventory.ovn.via_host}:{inventory.ovn.nb_socket}" if inventory.ovn.via_host else "")
        self._nb = NbPart(NbStatus(NB_CONNECTING, remote=nb_remote, since=time.time()),
                          answered=not nb_remote)
        self._nb_configured = bool(nb_remote)
        self._host_keys: dict[str, HostKeyRequest] = {}
        self._lock = threading.Lock()
        self._subs: list[Callable[[], None]] = []
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._cloud = Cloud(cpu_ratio=inventory.allocation.cpu_ratio,
                            ram_ratio=inventory.allocation.ram_ratio)
        self._workers: dict[str, _HostWorker] = {}
        self._nb_worker: _NbWorker | None = None
        self._threads: list[threading.Thread] = []
        self._generation = 0
        self._vms_key: tuple = ()
        self._vms: tuple[Vm, ...] = ()
        self._tenants: tuple = ()
        self._ready = threading.Event()
        self.started_at: float | None = None
        self.ready_at: float | None = None

    # -- public API --------------------------------------------------------------------

    def start(self) -> "LiveModel":
        """Start the workers (hosts in parallel) and the publisher; returns at once."""
        self.started_at = time.monotonic()
        pub = threading.Thread(target=self._publisher, name="live-publish", daemon=True)
        self._threads.append(pub)
        pub.start()
        for h in self.inventory.hypervisors:
            if h.enabled:
                w = _HostWorker(self, h)
                self._workers[h.name] = w
                self._threads.append(w)
                w.start()
        if self._nb_configured:
            self._nb_worker = _NbWorker(self)
            self._threads.append(self._nb_worker)
            self._nb_worker.start()
        self._dirty.set()
        return self

    def snapshot(self) -> Cloud:
        """The latest published :class:`Cloud` (immutable; never blocks)."""
        return self._cloud

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` (publisher thread) after each new snapshot; returns an
        unsubscribe function."""
        with self._lock:
            self._subs.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subs:
                    self._subs.remove(callback)
        return unsubscribe

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until every enabled host and the NB answered once (up or failed) and that
        state was published. Returns False on timeout."""
        return self._ready.wait(timeout)

    def host_key_requests(self) -> tuple[HostKeyRequest, ...]:
        """Unknown host keys waiting for the operator, oldest first."""
        with self._lock:
            return tuple(self._host_keys.values())

    def trust_host_key(self, host: str) -> None:
        """Record the pending key of ``host`` in known_hosts (the inventory's file for that
        host, else ~/.ssh/known_hosts) and reconnect everything that waited for it."""
        with self._lock:
            req = self._host_keys.pop(host, None)
        if req is None:
            return
        cfg = self.inventory.host(host)
        _trust_key(req.address, req.port, req.key_line, self.inventory.known_hosts_for(cfg))
        self.reconnect(host)

    def refuse_host_key(self, host: str) -> None:
        """Decline the pending key of ``host``: it stays ``refused`` until :meth:`reconnect`."""
        with self._lock:
            req = self._host_keys.pop(host, None)
        if req is not None and host in self._parts:
            self._update_host(host, state=HOST_REFUSED,
                              error=f"host key {req.fingerprint} not trusted by the operator")
        self._dirty.set()

    def reconnect(self, host: str | None = None) -> None:
        """Retry ``host`` now (None: every host not up, and the NB), skipping the backoff."""
        for name, w in self._workers.items():
            if host is None or name == host:
                w.wake()
        if self._nb_worker and (host is None or host == self.inventory.ovn.via_host):
            self._nb_worker.wake()

    def stop(self) -> None:
        """Stop every worker and close the session if this model opened it."""
        self._stop.set()
        self._dirty.set()
        for w in self._workers.values():
            w.wake()
        if self._nb_worker:
            self._nb_worker.wake()
        for t in self._threads:
            t.join(timeout=3)
        if self._own_session:
            self.session.close()

    # -- worker side -------------------------------------------------------------------

    def _set_part(self, name: str, part: HostPart) -> None:
        self._parts[name] = part
        self._dirty.set()

    def _update_host(self, name: str, **changes) -> None:
        part = self._parts[name]
        self._set_part(name, replace(part, host=replace(part.host, **changes), answered=True))

    def _set_nb(self, part: NbPart) -> None:
        self._nb = part
        self._dirty.set()

    def _ask_host_key(self, exc: HostKeyUnknown) -> None:
        with self._lock:
            self._host_keys[exc.host] = HostKeyRequest(exc.host, exc.address, exc.port,
                                                       exc.fingerprint, exc.key_line)
        self._dirty.set()

    def _build(self) -> Cloud:
        """Merge the parts into a Cloud. Parts that did not change keep their tuples (the
        same objects), so readers can skip work by identity (``cloud.vms is old.vms``)."""
        parts = [self._parts[h.name] for h in self.inventory.hypervisors]
        nb = self._nb
        data = nb.data
        key = tuple(p.vms for p in parts) + (data,)   # the objects themselves: ids get reused
        if len(key) != len(self._vms_key) or any(a is not b for a, b in zip(key, self._vms_key)):
            self._vms_key = key
            self._vms, self._tenants = self._merge_vms(parts, data)
        self._generation += 1
        return Cloud(
            hosts=tuple(p.host for p in parts), vms=self._vms, networks=data.networks,
            ports=data.ports, routers=data.routers, tenants=self._tenants,
            nb=nb.status, cpu_ratio=self.inventory.allocation.cpu_ratio,
            ram_ratio=self.inventory.allocation.ram_ratio, generation=self._generation)

    def _merge_vms(self, parts: list[HostPart], data: ovn_nb.NbData):
        """All domains in host order, with IPs from the OVN ports bound to them; and tenants."""
        vms: list[Vm] = []
        for p in parts:
            vms.extend(p.vms)
        if data.ports:
            by_name = {p.name: p for p in data.ports}
            by_vm: dict[str, list] = {}
            for p in data.ports:
                if p.vm:
                    by_vm.setdefault(p.vm, []).append(p)
            for i, v in enumerate(vms):
                ports = [by_name[n.interfaceid] for n in v.nics if n.interfaceid in by_name]
                for p in by_vm.get(v.name, []) + by_vm.get(v.uuid, []):
                    if all(p is not q for q in ports):
                        ports.append(p)
                if ports:
                    ips: list[str] = []
                    for p in ports:
                        ips.extend(ip for ip in p.ips if ip not in ips)
                    if tuple(ips) != v.ips:
                        vms[i] = replace(v, ips=tuple(ips))
        tenants = derive_tenants(self.inventory.tenants, vms, data.networks, data.routers,
                                 data.ports)
        return tuple(vms), tenants

    def _publisher(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            self._dirty.clear()
            answered = self._all_answered()      # before the build: it must hold what counted
            try:
                self._cloud = self._build()
            except Exception:  # noqa: BLE001 - keep publishing whatever happens
                log.exception("building the snapshot failed")
                continue
            if not self._ready.is_set() and answered:
                self.ready_at = time.monotonic()
                self._ready.set()
            with self._lock:
                subs = list(self._subs)
            for cb in subs:
                try:
                    cb()
                except Exception:  # noqa: BLE001
                    log.exception("subscriber failed")
            # until every host answered once, publish at most 4 times a second: each partial
            # snapshot redraws the screen, and that work competes (GIL) with the listing;
            # but the snapshot that completes the picture goes out at once (it waited up
            # to 250 ms, ~125 ms on average, for the end of this pause)
            if self._ready.is_set():
                time.sleep(self.publish_interval)
            else:
                end = time.monotonic() + max(self.publish_interval, 0.25)
                while time.monotonic() < end and not self._stop.is_set() \
                        and not self._all_answered():
                    time.sleep(0.01)

    def _all_answered(self) -> bool:
        """Every host and the NB tried once (up or failed): the first complete snapshot."""
        return all(p.answered for p in self._parts.values()) and self._nb.answered


class _Job:
    """``fn(*args)`` started now on a daemon thread; :meth:`result` waits and returns or
    raises what it did."""

    def __init__(self, fn, *args):
        self._box: dict = {}
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True,
                                        name=f"job-{getattr(fn, '__name__', 'fn')}")
        self._thread.start()

    def _run(self, fn, args) -> None:
        try:
            self._box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to result()
            self._box["error"] = exc

    def result(self, timeout: float | None = 60):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("background job did not finish")
        if "error" in self._box:
            raise self._box["error"]
        return self._box["value"]


class _Reconnect(Exception):
    """Internal: leave the serve loop and reconnect (message says why)."""


class _HostWorker(threading.Thread):
    """Owns one hypervisor: connect, sync, apply events, poll stats, reconnect."""

    def __init__(self, live: LiveModel, cfg: HostConfig):
        super().__init__(name=f"live-{cfg.name}", daemon=True)
        self.live = live
        self.cfg = cfg
        self.name_ = cfg.name
        self.q: queue.Queue = queue.Queue()
        self.gen = 0
        self.conn: libvirt.virConnect | None = None
        self.reg: hv.EventRegistration | None = None
        self.vms: dict[str, Vm] = {}
        self.cpu_prev: dict[str, tuple[int, float]] = {}
        self.cpu_ok = True

    def wake(self) -> None:
        self.q.put((None, _WAKE))

    # -- loop ----------------------------------------------------------------------------

    def run(self) -> None:
        live, name = self.live, self.name_
        backoff = 1.0
        while not live._stop.is_set():
            wait: float | None = backoff
            try:
                self._connect_and_sync()
                backoff = 1.0
                self._serve()
                wait = 0.0                       # dropped while up: retry at once, then back off
            except HostKeyUnknown as exc:
                live._update_host(name, state=HOST_HOSTKEY, error=str(exc), host_key=exc.fingerprint)
                live._ask_host_key(exc)
                wait = None                      # until the operator answers
            except HostKeyChanged as exc:
                live._update_host(name, state=HOST_REFUSED, error=str(exc), host_key=exc.fingerprint)
                wait = None                      # never retried on its own
            except (_Reconnect, HostError, libvirt.libvirtError, OSError, TimeoutError) as exc:
                msg = exc.get_error_message() if isinstance(exc, libvirt.libvirtError) else str(exc)
                live._update_host(name, state=HOST_UNREACHABLE, error=f"{msg} (retrying)")
                backoff = min(backoff * 2, 30.0)
            except Exception as exc:  # noqa: BLE001 - a bug must not kill the worker silently
                log.exception("%s: worker failed", name)
                live._update_host(name, state=HOST_UNREACHABLE, error=f"internal error: {exc}")
                backoff = min(backoff * 2, 30.0)
            self._teardown()
            if live._stop.is_set():
                return
            if wait != 0.0:
                self._sleep(wait)

    def _sleep(self, seconds: float | None) -> None:
        """Wait ``seconds`` (None: until woken); only a wake or stop cuts it short."""
        end = None if seconds is None else time.monotonic() + seconds
        while not self.live._stop.is_set():
            timeout = None if end is None else end - time.monotonic()
            if timeout is not None and timeout <= 0:
                return
            try:
                _gen, item = self.q.get(timeout=timeout)
            except queue.Empty:
                return
            if item == _WAKE:
                return

    def _teardown(self) -> None:
        self.gen += 1
        conn, reg = self.conn, self.reg
        self.conn = self.reg = None
        if conn is not None and reg is not None:
            hv.unregister_events(conn, reg)
        try:
            self.live.session.drop(self.name_)
        except Exception:  # noqa: BLE001
            log.debug("%s: drop failed", self.name_, exc_info=True)

    # -- connect -------------------------------------------------------------------------

    def _sink(self, gen: int) -> Callable[[object], None]:
        def put(item: object) -> None:
            self.q.put_nowait((gen, item))
        return put

    def _connect_and_sync(self) -> None:
        live, name = self.live, self.name_
        t0 = time.monotonic()
        live.session.link(name)             # SSH first: everything below shares this link
        # ONE SSH command starts now, beside the libvirt connection and calls: bridge
        # mappings and the persistent domain definitions (one round trip instead of an
        # XMLDesc per shut-off domain). An exec over SSH costs 0.15-0.4 s on the busy lab
        # machine (a libvirt call 1-3 ms): started after the libvirt connection, and as two
        # commands (they slowed each other ~2x), it was the long pole of the first screen.
        startup_job = _Job(host_facts.mappings_and_definitions, live.session, name, hv.CONFIG_DIR)
        conn = live.session.libvirt(name)
        t1 = time.monotonic()
        self.conn = conn
        self.reg = hv.register_events(conn, name, self._sink(self.gen))
        facts_job = _Job(hv.host_facts, conn)   # 5 calls incl. capabilities: beside the listing
        self.cpu_ok = True
        # every (re)connect reads every domain again: changes made while we were away are
        # only known this way (resync)
        listing = hv.list_domains(conn, name, None, want_cpu=True, workers=live.xml_workers,
                                  config_xml=lambda: hv.parse_config_text(startup_job.result()[1]))
        t2 = time.monotonic()
        self.cpu_ok = listing.cpu_ok
        self.vms = {v.uuid: v for v in listing.vms}
        now = time.monotonic()
        self.cpu_prev = {u: (s.cpu_time_ns, now) for u, s in listing.stats.items()
                         if s.cpu_time_ns is not None}
        facts = facts_job.result(timeout=60)
        part = live._parts[name]
        try:
            mappings = startup_job.result(timeout=15)[0]
            if isinstance(mappings, Exception):
                raise mappings
        except Exception as exc:  # noqa: BLE001 - a host without OVS still lists domains
            log.info("%s: no bridge mappings: %s", name, exc)
            mappings = part.host.bridge_mappings
        log.info("%s: connected in %.0f ms, %d domains listed in %.0f ms, mappings %.0f ms",
                 name, (t1 - t0) * 1000, len(self.vms), (t2 - t1) * 1000,
                 (time.monotonic() - t2) * 1000)
        host = replace(part.host, state=HOST_UP, error=None, host_key=None,
                       hostname=facts.hostname, arch=facts.arch, cores=facts.cores,
                       ram_total_mib=facts.ram_total_mib, ram_free_mib=facts.ram_free_mib,
                       libvirt_version=facts.libvirt_version, domain_types=facts.domain_types,
                       bridge_mappings=mappings)
        live._set_part(name, HostPart(host, self._sorted(), answered=True))

    def _sorted(self) -> tuple[Vm, ...]:
        return tuple(sorted(self.vms.values(), key=lambda v: v.name))

    def _publish_vms(self) -> None:
        part = self.live._parts[self.name_]
        self.live._set_part(self.name_, replace(part, vms=self._sorted()))

    # -- serve ---------------------------------------------------------------------------

    def _serve(self) -> None:
        live = self.live
        next_stats = time.monotonic() + live.stats_interval
        polls = 0
        while not live._stop.is_set():
            try:
                gen, item = self.q.get(timeout=max(0.0, next_stats - time.monotonic()))
            except queue.Empty:
                polls += 1
                self._poll(full=polls % live.reconcile_every == 0)
                next_stats = time.monotonic() + live.stats_interval   # re-armed after return
                continue
            batch = [(gen, item)]
            while True:                                               # coalesce a burst
                try:
                    batch.append(self.q.get_nowait())
                except queue.Empty:
                    break
            uuids: list[str] = []
            for gen, item in batch:
                if item == _WAKE or (gen is not None and gen != self.gen):
                    continue
                if isinstance(item, tuple) and item and item[0] == _CLOSED:
                    raise _Reconnect(f"libvirt connection closed (reason {item[2]}: "
                                     f"keepalive timeout or EOF)")
                if isinstance(item, hv.DomainEvent) and item.uuid not in uuids:
                    uuids.append(item.uuid)
            if uuids:
                self._refresh(uuids)

    def _call_ok(self, exc: libvirt.libvirtError) -> None:
        """After a libvirt error: reconnect if the connection is gone, else carry on."""
        try:
            alive = self.conn is not None and self.conn.isAlive()
        except libvirt.libvirtError:
            alive = False
        if not alive:
            raise _Reconnect(f"libvirt: {exc.get_error_message()}")
        log.info("%s: %s", self.name_, exc.get_error_message())

    def _refresh(self, uuids: list[str]) -> None:
        changed = False
        for uuid in uuids:
            try:
                got = hv.read_domain(self.conn, self.name_, uuid)
            except libvirt.libvirtError as exc:
                self._call_ok(exc)
                continue
            if got is None:
                changed |= self.vms.pop(uuid, None) is not None
                self.cpu_prev.pop(uuid, None)
                continue
            vm, _facts = got
            old = self.vms.get(uuid)
            if old is not None:   # keep figures until the next poll
                vm = replace(vm, cpu_percent=old.cpu_percent if vm.active else None,
                             rss_mib=old.rss_mib if vm.active else None)
            self.vms[uuid] = vm
            changed = True
        if changed:
            self._publish_vms()

    def _poll(self, full: bool) -> None:
        """Stats of active domains (one bulk call) + free RAM; ``full`` also reconciles the
        whole domain list. A stats failure leaves figures empty and states alone."""
        name, conn = self.name_, self.conn
        try:
            recs, cpu_ok = hv.bulk_stats(conn, active_only=not full, want_cpu=self.cpu_ok)
            free = hv.free_memory_mib(conn)
        except libvirt.libvirtError as exc:
            self._call_ok(exc)
            return
        self.cpu_ok = cpu_ok
        now = time.monotonic()
        seen = {r.uuid for r in recs}
        stale: list[str] = [r.uuid for r in recs if r.uuid not in self.vms
                            or self.vms[r.uuid].state != r.state]
        if full:
            stale += [u for u in self.vms if u not in seen]
        else:
            stale += [u for u, v in self.vms.items() if v.active and u not in seen]
        changed = False
        for r in recs:
            vm = self.vms.get(r.uuid)
            if vm is None or r.uuid in stale:
                continue
            cpu = None
            if r.cpu_time_ns is not None:
                prev = self.cpu_prev.get(r.uuid)
                self.cpu_prev[r.uuid] = (r.cpu_time_ns, now)
                if prev and now > prev[1] and vm.vcpus:
                    cpu = round(max(0.0, (r.cpu_time_ns - prev[0]) / 1e9 / (now - prev[1])
                                    / vm.vcpus * 100), 1)
            if cpu != vm.cpu_percent or r.rss_mib != vm.rss_mib:
                self.vms[r.uuid] = replace(vm, cpu_percent=cpu, rss_mib=r.rss_mib)
                changed = True
        part = self.live._parts[name]
        if free != part.host.ram_free_mib:
            self.live._set_part(name, replace(part, host=replace(part.host, ram_free_mib=free)))
        if changed:
            self._publish_vms()
        if stale:
            self._refresh(stale)


class _NbWorker(threading.Thread):
    """Owns the NB connection: read on change, mark stale on loss, rebuild after a while."""

    def __init__(self, live: LiveModel):
        super().__init__(name="live-nb", daemon=True)
        self.live = live
        self.q: queue.Queue = queue.Queue()
        self.ever_up = False

    def wake(self) -> None:
        self.q.put(_WAKE)

    def _status(self, state: str, error: str | None = None) -> None:
        cur = self.live._nb
        if cur.status.state != state or cur.status.error != error:
            st = replace(cur.status, state=state, error=error, since=time.time())
            self.live._set_nb(replace(cur, status=st, answered=True))

    def _wait(self, seconds: float | None) -> None:
        try:
            self.q.get(timeout=seconds)
        except queue.Empty:
            pass

    def run(self) -> None:
        live = self.live
        backoff = 1.0
        while not live._stop.is_set():
            wait: float | None = backoff
            try:
                api = live.session.nb()
                backoff = 1.0
                self._serve(api)
                wait = 0.0
            except HostKeyUnknown as exc:
                live._ask_host_key(exc)
                self._status(NB_STALE, str(exc))
                wait = None
            except HostKeyChanged as exc:
                self._status(NB_STALE, str(exc))
                wait = None
            except Exception as exc:  # noqa: BLE001 - HostError, OVSDB errors, …
                self._status(NB_STALE if self.ever_up else NB_CONNECTING, f"{exc} (retrying)")
                backoff = min(backoff * 2, 30.0)
            try:
                live.session.reset_nb()
            except Exception:  # noqa: BLE001
                log.debug("reset_nb failed", exc_info=True)
            if live._stop.is_set():
                return
            if wait != 0.0:
                self._wait(wait)

    def _serve(self, api) -> None:
        live = self.live
        ovn_nb.set_sink(api, self.q.put_nowait)
        try:
            self._read(api)
            down_since: float | None = None
            while not live._stop.is_set():
                try:
                    item = self.q.get(timeout=1.0)
                except queue.Empty:
                    item = None
                items = [item] if item is not None else []
                while True:
                    try:
                        items.append(self.q.get_nowait())
                    except queue.Empty:
                        break
                if any(i == _WAKE for i in items) and live._stop.is_set():
                    return
                changed = any(isinstance(i, ovn_nb.NbChange) and i.tables for i in items)
                if ovn_nb.is_connected(api):
                    down_since = None
                    if changed or live._nb.status.state != NB_UP:
                        self._read(api)
                else:
                    if down_since is None:
                        down_since = time.monotonic()
                        self._status(NB_STALE, "OVN northbound connection lost; showing the "
                                               "last known data")
                    if time.monotonic() - down_since > live.nb_reset_after:
                        raise HostError("OVN northbound did not come back; reconnecting")
        finally:
            ovn_nb.set_sink(api, None)

    def _read(self, api) -> None:
        if not self.ever_up:
            log.info("NB up %.0f ms after start", (time.monotonic() - (self.live.started_at or 0)) * 1000)
        self.ever_up = True
        data = ovn_nb.read(api)
        st = replace(self.live._nb.status, state=NB_UP, error=None,
                     since=time.time() if self.live._nb.status.state != NB_UP
                     else self.live._nb.status.since)
        self.live._set_nb(NbPart(st, data, answered=True))
