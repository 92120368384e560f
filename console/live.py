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
  per host every ``stats_interval`` s, re-armed after it returns, plus free RAM; a host with
  no active domain backs off (doubling, up to ``live_host.IDLE_POLL_MAX`` s); every
  ``reconcile_every`` intervals a full listing catches anything an event could have missed.

Failure handling:

- a host that drops (libvirt keepalive 3 s × 2 → ≤ 6 s, SSH keepalive 4 s × 3 under it; EOF at once;
  measured 4.5-6.4 s for a host gone silent) is marked ``unreachable``
  with its last facts and domains kept, retried with backoff (1, 2, 4 … 30 s, cut short as
  soon as a cheap probe sees it answer again: console/live_host.py) and resynced when it
  answers again; nothing else waits for it;
- an unknown SSH host key puts the host in state ``host-key`` with its fingerprint until the
  operator answers (:meth:`trust_host_key` / :meth:`refuse_host_key`); a changed key puts it in
  ``refused`` (never retried on its own);
- NB down: the last NB data stays, :attr:`Cloud.nb` says ``stale``; the python-ovs IDL
  reconnects on its own, and after ``nb_reset_after`` s the connection (and its SSH forward)
  is rebuilt.

Where it lives (one concern per module):

- :mod:`console.live` (here): :class:`LiveModel` — the public API, the host-key requests and the
  publisher that builds each snapshot;
- :mod:`console.live_snapshot`: the immutable parts the workers keep and how they merge into
  the snapshot's VMs and tenants;
- :mod:`console.live_host`: the hypervisor worker (connect and sync, libvirt event pump, stats
  poller, reconnect);
- :mod:`console.live_nb`: the NB worker (replica read on change, stale marking, rebuild).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from ..backends.session import Session
from ..backends.ssh import HostKeyUnknown, trust_host_key as _trust_key
from ..config.inventory import Inventory
from .live_host import HostWorker
from .live_nb import NbWorker
from .live_sb import SbWorker
from . import metrics as metrics_store
from .live_snapshot import HostPart, NbPart, merge_vms
from .metrics import MetricsStore
from .model import HOST_CONNECTING, HOST_DISABLED, HOST_REFUSED, NB_CONNECTING, Cloud, Host, NbStatus, Vm

log = logging.getLogger(__name__)


def _release_freed_memory() -> None:
    """Hand the memory freed after the first listing (2 s after it, once the screen drew it)
    back to the system (glibc ``malloc_trim``; nothing elsewhere). Each host's worker thread parses its definitions in a malloc arena of
    its own and frees most of it; glibc keeps the freed pages. Measured (sandbox lab, 10,000
    domains): RSS 139 -> 120 MiB at 4 hosts x 2,500, 142 -> 117 MiB at 16 connections x 625,
    2-4 ms of CPU, and it stays there."""
    try:
        ctypes.CDLL(None).malloc_trim(0)     # the process's own symbols: libc's when glibc
    except (OSError, AttributeError):    # not glibc: nothing to trim this way
        pass


def _freeze_startup_heap() -> None:
    """Move every object alive after the first complete screen (the App, the domains, their
    rows: ~1 M objects at 10,000 domains) out of the cyclic GC's reach (``gc.freeze``), after
    one last full collection. Why: every refill of the VMs panel allocates ~10,000 tuples that
    survive, so a full collection (it scans the whole heap: tens of ms at this size) came every
    few define/undefine events and made the event -> screen tail; frozen objects are never
    scanned again. They are still freed by reference counting; only a frozen object that later
    dies inside a reference cycle is kept (the start-up heap is built once)."""
    gc.collect()
    gc.freeze()


def _after_first_screen() -> None:
    _freeze_startup_heap()
    _release_freed_memory()


#: The cyclic GC's generation-0 threshold while the first listing runs. The listing allocates
#: ~30 tracked objects per domain (element trees, facts, rows) that mostly survive, so the
#: default (700) runs a young collection every ~25 domains: measured on a sandbox lab at 4 x
#: 2,500 domains, 210 collections and 130-230 ms of the model's 0.67 s of CPU until the first
#: complete snapshot; with this threshold 15-45 ms. The default comes back once every host
#: answered (:meth:`LiveModel._publisher`) or the model stops.
STARTUP_GC_GEN0 = 1_000_000


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
                 stats_interval: float | None = None, reconcile_every: int = 20,
                 publish_interval: float = 0.05, nb_reset_after: float = 5.0,
                 xml_workers: int = 32, metrics: bool = True):
        self.inventory = inventory
        self.session = session or Session(inventory)
        self._own_session = session is None
        # None: the inventory's [metrics] interval; the stats poll feeds self.metrics
        # (metrics=False: the poll reads only what the VM rows need, no node figures)
        self.metrics_on = metrics
        self._metrics_published = 0.0       # monotonic s of the last figures-only publish
        self.stats_interval = stats_interval or inventory.metrics.interval
        self.metrics = MetricsStore(self.stats_interval,
                                    max(inventory.metrics.window, self.stats_interval),
                                    cpu_source=inventory.metrics.cpu_source)
        self.reconcile_every = reconcile_every
        self.publish_interval = publish_interval
        self.nb_reset_after = nb_reset_after
        self.xml_workers = xml_workers
        self._parts: dict[str, HostPart] = {}
        for h in inventory.hypervisors:
            state = HOST_CONNECTING if h.enabled else HOST_DISABLED
            why = None if h.enabled else f"disabled in the inventory: {h.disabled_reason or 'no reason given'}"
            self._parts[h.name] = HostPart(Host(name=h.name, address=h.address, state=state, error=why),
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
        self._workers: dict[str, HostWorker] = {}
        self._nb_worker: NbWorker | None = None
        self._sb = None   # southbound.SbData from the SB worker (optional facts)
        self._threads: list[threading.Thread] = []
        self._generation = 0
        self._vms_key: tuple = ()
        self._vms: tuple[Vm, ...] = ()
        self._tenants: tuple = ()
        self._ready = threading.Event()
        self.started_at: float | None = None
        self._gc_saved: tuple[int, ...] | None = None    # thresholds before start() (see there)
        self.ready_at: float | None = None

    # -- public API --------------------------------------------------------------------

    def start(self) -> "LiveModel":
        """Start the workers (hosts in parallel) and the publisher; returns at once."""
        self.started_at = time.monotonic()
        self._gc_saved = gc.get_threshold()
        gc.set_threshold(max(STARTUP_GC_GEN0, self._gc_saved[0]), *self._gc_saved[1:])
        metrics_store.STORE = self.metrics      # placement reads the history (services.placement)
        pub = threading.Thread(target=self._publisher, name="live-publish", daemon=True)
        self._threads.append(pub)
        pub.start()
        for h in self.inventory.hypervisors:
            if h.enabled:
                w = HostWorker(self, h)
                self._workers[h.name] = w
                self._threads.append(w)
                w.start()
        if self._nb_configured:
            self._nb_worker = NbWorker(self)
            self._threads.append(self._nb_worker)
            self._nb_worker.start()
            sb = SbWorker(self)   # chassis and bindings: optional, never holds up readiness
            self._threads.append(sb)
            sb.start()
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
        self._restore_gc()
        for w in self._workers.values():
            w.wake()
        if self._nb_worker:
            self._nb_worker.wake()
        for t in self._threads:
            t.join(timeout=3)
        if metrics_store.STORE is self.metrics:
            metrics_store.STORE = None
        if self._own_session:
            self.session.close()

    # -- worker side -------------------------------------------------------------------

    def _set_part(self, name: str, part: HostPart) -> None:
        self._parts[name] = part
        self._dirty.set()

    def _update_host(self, name: str, **changes) -> None:
        part = self._parts[name]
        self._set_part(name, replace(part, host=replace(part.host, **changes), answered=True))

    def _set_sb(self, data) -> None:
        # the SB's change counter moves on rows the console does not show (ovn-controller's
        # nb_cfg, timestamps): an equal read publishes nothing (idle: no redraw)
        old = self._sb
        if (old is not None and data == old
                # Chassis equality leaves bridge_mappings out (a dict): compared here
                and [c.bridge_mappings for c in data.chassis] == [c.bridge_mappings for c in old.chassis]):
            return
        self._sb = data
        self._dirty.set()

    def _metrics_changed(self) -> None:
        """A host's poll brought figures (or a gap). Each snapshot redraws the visible panel,
        and hosts poll at their own times: figures alone publish at most twice per interval
        (ten hosts would otherwise publish ten times); until then they ride along with any
        other change or the next host's poll (held back half an interval at most, so a figure
        still shows within two intervals of the change it measures)."""
        now = time.monotonic()
        if now - self._metrics_published >= 0.45 * self.stats_interval:
            self._metrics_published = now
            self._dirty.set()

    def _set_nb(self, part: NbPart) -> None:
        if part == self._nb:        # a re-read that found nothing new: nothing to redraw
            return
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
            self._vms, self._tenants = merge_vms(parts, data, self.inventory.tenants)
        self._generation += 1
        return Cloud(
            hosts=tuple(p.host for p in parts), vms=self._vms, networks=data.networks,
            ports=data.ports, routers=data.routers, tenants=self._tenants,
            nb=nb.status, cpu_ratio=self.inventory.allocation.cpu_ratio,
            ram_ratio=self.inventory.allocation.ram_ratio, generation=self._generation,
            metrics=self.metrics.view(), sb=self._sb)

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
                self._restore_gc()
                # after the screen has drawn the first full picture too (its garbage as well)
                trim = threading.Timer(2.0, _after_first_screen)
                trim.daemon = True
                trim.start()
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

    def _restore_gc(self) -> None:
        """Put back the GC thresholds :meth:`start` raised (once; only if nobody changed them)."""
        saved, self._gc_saved = self._gc_saved, None
        if saved is not None and gc.get_threshold()[0] == max(STARTUP_GC_GEN0, saved[0]):
            gc.set_threshold(*saved)

    def _all_answered(self) -> bool:
        """Every host and the NB tried once (up or failed): the first complete snapshot."""
        return all(p.answered for p in self._parts.values()) and self._nb.answered
