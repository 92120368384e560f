"""The live model's hypervisor worker: one thread per enabled host.

It connects (SSH first, then libvirt over the forwarded socket, with ONE SSH command for the
bridge mappings and shut-off domain definitions beside it), lists every domain once, then
serves: libvirt lifecycle/metadata events re-read that one domain (the event pump, bursts
coalesced), and what nothing pushes is polled — stats of active domains with ONE
``getAllDomainStats`` per host plus free RAM (MiB), re-armed after each poll returns, every
stats interval while a domain is active and backed off up to ``IDLE_POLL_MAX`` s while none is
(no stats call then), a full listing every ``reconcile_every`` intervals (the stats poller).
A drop, an unknown or changed host key, or a libvirt error on a dead connection ends the serve
loop; it reconnects with backoff (1, 2, 4 … 30 s) unless the operator must answer first. While it waits, a cheap probe every
``PROBE_INTERVAL`` s watches the layer that failed — the SSH port's banner (a TCP connect and one
read, no handshake), or the libvirt socket through the host's SSH link (one channel open) when
SSH got through — and cuts the wait short as soon as that layer answers after it did not, so a
host that comes back is seen within a probe interval, not after the backoff's sleep (it was
12.6 s after sshd, 17.4 s after libvirtd came back). Timings: console/live.py's module doc.

One module (~400 lines) because connect, serve and reconnect share one worker's state (the
link, the libvirt connection, the backoff) and one loop; the parse and the snapshot parts are
already elsewhere (backends.domain_facts, console.live_snapshot).

:class:`HostWorker` is :class:`console.live.LiveModel`'s own thread: it reads the model's
settings, session and ``_stop``, and publishes its :class:`~console.live_snapshot.HostPart`
through the model's worker-side methods (``_set_part``, ``_update_host``, ``_ask_host_key``).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

import libvirt

from ..backends import host_facts, hypervisor as hv, ioloop, metrics, ssh_config
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

PROBE_INTERVAL = 0.25  # s between probes of a host that is down (see the module doc)
PROBE_TIMEOUT = 0.5    # s a probe waits for an answer
POOL_EVERY = 10        # polls between two reads of the storage pools' sizes (they move slowly)
# Free RAM moves by a few MiB on every poll of a shared machine; each new value redraws every
# panel. Smaller moves than this (MiB, or 1 % of the host's RAM if more) wait until
# FREE_RAM_MAX_AGE s have passed since the value shown.
FREE_RAM_STEP_MIB = 64
FREE_RAM_MAX_AGE = 30.0
# A host with no active domain has no guest figure that can move (events say when one starts):
# its poll (free RAM, node CPU/memory) backs off from the stats interval, doubling per poll,
# up to this many seconds; the first active domain brings the interval back at once.
IDLE_POLL_MAX = 30.0


def ssh_port_answers(hostname: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when ``hostname:port`` accepts a TCP connection and sends something (sshd's banner)
    within ``timeout`` seconds. No SSH handshake: this costs the host one accept. A frozen sshd
    accepts (the kernel does) but sends nothing, so it counts as not answering. Never raises."""
    try:
        with socket.create_connection((hostname, port), timeout=timeout) as s:
            return bool(s.recv(64))
    except OSError:
        return False


async def _unix_socket_answers(conn, path: str) -> bool:
    """True when the host's unix socket ``path`` accepts a connection through ``conn`` (an
    asyncssh connection: one direct-streamlocal channel, closed at once)."""
    try:
        _reader, writer = await conn.open_unix_connection(path)
    except Exception:  # noqa: BLE001 - asyncssh.ChannelOpenError, OSError, a closed link
        return False
    writer.close()
    return True


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
        self.polls = 0
        self._free_shown_at = 0.0       # monotonic s when the free RAM shown was read

    def wake(self) -> None:
        self.q.put((None, _WAKE))

    # -- loop ----------------------------------------------------------------------------

    def run(self) -> None:
        live, name = self.live, self.name_
        backoff = 1.0
        while not live._stop.is_set():
            wait: float | None = backoff
            ssh_reached = False                  # which layer failed: what the wait probes
            try:
                live.session.link(name)          # cached: _connect_and_sync uses this link
                ssh_reached = True
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
            if wait is None:
                self._sleep(None)
            elif wait > 0:
                self._wait_until_back(wait, ssh_reached)

    def _sleep(self, seconds: float | None) -> bool:
        """Wait ``seconds`` (None: until woken); only a wake or stop cuts it short. Returns
        True when cut short (woken or stopping), False when the time ran out."""
        end = None if seconds is None else time.monotonic() + seconds
        while not self.live._stop.is_set():
            timeout = None if end is None else end - time.monotonic()
            if timeout is not None and timeout <= 0:
                return False
            try:
                _gen, item = self.q.get(timeout=timeout)
            except queue.Empty:
                return False
            if item == _WAKE:
                return True
        return True

    def _prober(self, ssh_reached: bool) -> Callable[[], bool] | None:
        """The cheap check of the layer that failed (see the module doc), or None when there
        is none (a host behind ProxyJump whose SSH did not get through: only the sleep is left).

        SSH got through (libvirt failed): the host's libvirt socket through a link opened here
        once — the reconnect reuses it; if the link dies, the SSH port's banner decides. Else
        the SSH port's banner, at the address ssh_config resolves the host to."""
        cfg, session = self.cfg, self.live.session
        try:
            dest = ssh_config.resolve(cfg.address, port=cfg.port, user=cfg.user)
        except (ValueError, OSError):
            return None
        ssh_probe = None if dest.proxy_jump else (lambda: ssh_port_answers(dest.hostname, dest.port))
        if not ssh_reached or (ssh_probe is not None and not ssh_probe()):
            return ssh_probe             # (no login attempt at a host whose sshd is silent)
        try:
            link = session.link(self.name_)
        except Exception:  # noqa: BLE001 - down again since: probe its SSH port
            return ssh_probe
        sock = cfg.libvirt_socket

        def libvirt_probe() -> bool:
            if link.conn.is_closed():
                return ssh_probe() if ssh_probe else False
            try:
                return ioloop.call(_unix_socket_answers(link.conn, sock), timeout=PROBE_TIMEOUT + 1)
            except Exception:  # noqa: BLE001 - a probe that does not finish: no answer
                return False
        return libvirt_probe

    def _wait_until_back(self, seconds: float, ssh_reached: bool) -> None:
        """The backoff wait after a failed (re)connect: ``seconds`` at most, cut short by a wake
        or stop, or as soon as the probe of the failed layer answers after having failed once
        in this wait (edge-triggered: a layer that answers from the start, e.g. sshd refusing
        the login, is not what failed, and the full backoff applies)."""
        end = time.monotonic() + seconds
        probe = self._prober(ssh_reached)
        if probe is None:
            self._sleep(seconds)
            return
        silent = False
        while not self.live._stop.is_set():
            answers = probe()
            if answers and silent:
                log.info("%s: answers again; reconnecting before the backoff ends", self.name_)
                return
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            if answers:                      # not the failed layer: wait the backoff out
                self._sleep(remaining)
                return
            silent = True
            if self._sleep(min(PROBE_INTERVAL, remaining)):
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

    def _poll_delay(self, delay: float) -> float:
        """Seconds until the next poll, after one that waited ``delay``: the stats interval
        while a domain is active (its figures move; the metrics interval is honoured), else
        twice ``delay`` up to :data:`IDLE_POLL_MAX` (nothing a guest reports can change)."""
        base = self.live.stats_interval
        if any(v.active for v in self.vms.values()):
            return base
        return min(max(delay * 2, base), max(IDLE_POLL_MAX, base))

    def _serve(self) -> None:
        live = self.live
        base = live.stats_interval
        delay = self._poll_delay(base / 2)
        next_stats = time.monotonic() + delay
        # the full listing that catches a missed event: every reconcile_every intervals of
        # time, whatever the polls' cadence
        full_every = live.reconcile_every * base
        next_full = time.monotonic() + full_every
        while not live._stop.is_set():
            try:
                gen, item = self.q.get(timeout=max(0.0, next_stats - time.monotonic()))
            except queue.Empty:
                full = time.monotonic() >= next_full
                self._poll(full=full)
                now = time.monotonic()
                if full:
                    next_full = now + full_every
                delay = self._poll_delay(delay)
                next_stats = now + delay                                  # re-armed after return
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
                if delay > base and any(v.active for v in self.vms.values()):
                    delay = base                    # a guest started: its figures from now on
                    next_stats = min(next_stats, time.monotonic() + base)

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
        self.polls += 1
        try:
            # the one bulk call also carries the block/interface groups the metrics use
            on = self.live.metrics_on
            if full or any(v.active for v in self.vms.values()):
                raw, cpu_ok = hv.all_stats(conn, active_only=not full, want_cpu=self.cpu_ok,
                                           extra_groups=metrics.EXTRA_GROUPS if on else 0)
            else:   # nothing runs (events say when something starts): no figure can change
                raw, cpu_ok = [], self.cpu_ok
            recs = [hv.stats_record(d, s) for d, s in raw]
            sample = metrics.sample_from_raw(name, conn, raw, cpu_ok,
                                             pools=self.polls % POOL_EVERY == 1,
                                             cpus=self.live._parts[name].host.cores or None) \
                if on else None
            # the node memory stats carry the same MemFree (KiB) as getFreeMemory (bytes):
            # one round trip over SSH fewer per poll when the metrics read them
            free = sample.node.mem_free_mib if sample is not None else None
            if free is None:
                free = hv.free_memory_mib(conn)
        except libvirt.libvirtError as exc:
            self.live.metrics.no_figure(name, time.monotonic())
            self.live._metrics_changed()
            self._call_ok(exc)
            return
        if sample is not None:
            self.live.metrics.add(sample)
            self.live._metrics_changed()
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
        shown = part.host.ram_free_mib
        step = max(FREE_RAM_STEP_MIB, (part.host.ram_total_mib or 0) // 100)
        if free != shown and (shown is None or free is None or abs(free - shown) >= step
                              or now - self._free_shown_at >= FREE_RAM_MAX_AGE):
            self._free_shown_at = now
            self.live._set_part(name, replace(part, host=replace(part.host, ram_free_mib=free)))
        if changed:
            self._publish_vms()
        if stale:
            self._refresh(stale)
