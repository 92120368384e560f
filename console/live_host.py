"""The live model's hypervisor worker: one thread per enabled host.

It connects (SSH first, then libvirt over the forwarded socket, with ONE SSH command for the
bridge mappings and shut-off domain definitions beside it), lists every domain once, then
serves: libvirt lifecycle/metadata events re-read that one domain (the event pump, bursts
coalesced), and what nothing pushes is polled — stats of active domains with ONE
``getAllDomainStats`` per host plus free RAM (MiB), re-armed after each poll returns, a full
listing every ``reconcile_every`` polls (the stats poller). A drop, an unknown or changed host
key, or a libvirt error on a dead connection ends the serve loop; it reconnects with backoff
(1, 2, 4 … 30 s) unless the operator must answer first. Timings: console/live.py's module doc.

:class:`HostWorker` is :class:`console.live.LiveModel`'s own thread: it reads the model's
settings, session and ``_stop``, and publishes its :class:`~console.live_snapshot.HostPart`
through the model's worker-side methods (``_set_part``, ``_update_host``, ``_ask_host_key``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

import libvirt

from ..backends import host_facts, hypervisor as hv
from ..backends.ssh import HostKeyChanged, HostKeyUnknown
from ..config.inventory import HostConfig
from .errors import HostError
from .live_snapshot import HostPart
from .model import HOST_HOSTKEY, HOST_REFUSED, HOST_UNREACHABLE, HOST_UP, Vm

if TYPE_CHECKING:
    from .live import LiveModel

log = logging.getLogger(__name__)

_WAKE = "wake"        # queued by wake(): cut a backoff short / re-check stop
_CLOSED = "closed"    # first item of the tuple hv.register_events queues when libvirt closes


class Job:
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


class HostWorker(threading.Thread):
    """Owns one hypervisor: connect, sync, apply events, poll stats, reconnect."""

    def __init__(self, live: "LiveModel", cfg: HostConfig):
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
        startup_job = Job(host_facts.mappings_and_definitions, live.session, name, hv.CONFIG_DIR)
        conn = live.session.libvirt(name)
        t1 = time.monotonic()
        self.conn = conn
        self.reg = hv.register_events(conn, name, self._sink(self.gen))
        facts_job = Job(hv.host_facts, conn)   # 5 calls incl. capabilities: beside the listing
        self.cpu_ok = True
        # every (re)connect reads every domain again: changes made while we were away are
        # only known this way (resync). The definitions from the SSH command also size the
        # running domains (persistent vCPUs/<currentMemory>, what placement counts: the Hosts
        # panel's allocation then matches create/resize/move; hv.build_vm)
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
                vcpus = r.vcpus or vm.vcpus   # running vCPUs (vm.vcpus is the persistent size)
                if prev and now > prev[1] and vcpus:
                    cpu = round(max(0.0, (r.cpu_time_ns - prev[0]) / 1e9 / (now - prev[1])
                                    / vcpus * 100), 1)
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
