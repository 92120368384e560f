"""Metrics in memory: bounded ring buffers of rates per host and per VM, no database.

:class:`MetricsStore` takes one :class:`backends.metrics.HostSample` (counters) per host per
interval, turns the deltas against that host's previous sample into figures, and appends them
to a ring buffer per series (``window`` seconds of them at ``interval``: 10 min at 3 s = 200
points). Readers (screens, ``virtdeck top``, placement, the Prometheus exposition) get copies;
it is thread-safe (one lock; each call is a few dict operations).

Figures (units in the names):

- host ``cpu_pct``: node CPU busy / total over the interval (``virNodeGetCPUStats`` deltas), %
  of all the host's CPUs;
- host ``guest_cpu_pct``: the guests' CPU time over the interval / the host's CPUs, % — the
  per-host figure even where hosts share one kernel's /proc (the lab's namespaces);
- host ``mem_used_mib`` / ``mem_used_pct``: total - free - buffers/cache (``virNodeGetMemoryStats``);
- host ``pool_free_gib``: the sum of the active pools' ``available`` (read every few samples);
- VM ``cpu_pct`` (% of its vCPUs, as the VMs panel always showed), ``rss_mib``,
  ``rx_bps``/``tx_bps``/``rd_bps``/``wr_bps`` (bytes per second), ``rd_iops``/``wr_iops``.

A part that gave no figure appends None (the gap is kept, the last figure is not repeated); a
counter that went backwards (the domain restarted) gives None for that interval. Nothing here
ever changes a host's or a VM's state.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:   # annotations only: backends.metrics imports libvirt, which the console's
    from ..backends.metrics import DomainCounters, HostSample   # first frame must not wait for

HOST_SERIES = ("cpu_pct", "guest_cpu_pct", "mem_used_mib", "mem_used_pct", "pool_free_gib")
VM_SERIES = ("cpu_pct", "rss_mib", "rx_bps", "tx_bps", "rd_bps", "wr_bps", "rd_iops", "wr_iops")
GIB = 1024 ** 3
SPARK = " ▁▂▃▄▅▆▇█"


def rate_text(bps: float | None) -> str:
    """Bytes per second in at most 5 characters: ``0``, ``950``, ``12K``, ``3.4M`` (1024-based);
    ``-``: no figure. The panels show rates this way (and the view keys on it, see
    :meth:`MetricsStore.view`)."""
    if bps is None:
        return "-"
    for unit in ("", "K", "M", "G"):
        if bps < 1000 or unit == "G":
            return f"{bps:.0f}{unit}" if bps >= 10 or not unit else f"{bps:.1f}{unit}"
        bps /= 1024
    return "-"


#: Points of a VM's CPU history the details' plot draws, and those the VMs table's cell draws:
#: figures whose table drawing would not change keep their object in the next view (see
#: MetricsStore.view), so a steady VM's details plot may show a new point an interval late
SHOWN_POINTS = 40
CELL_POINTS = 8


def shown_key(f: "VmFigures") -> tuple:
    """What the VMs table draws of a VM's figures: its CPU sparkline (:data:`CELL_POINTS`) and
    the rates as :func:`rate_text` prints them. (Not the CPU % itself: the table's CPU% column
    is the live model's own; an idle VM jittering between 0 and 2 % would otherwise refill
    3,000 rows every interval. The highlighted VM's details may so show a CPU % one band old.)"""
    return (sparkline(f.cpu_history, CELL_POINTS),
            rate_text(f.rx_bps), rate_text(f.tx_bps), rate_text(f.rd_bps), rate_text(f.wr_bps))


def sparkline(values: Iterable[float | None], width: int, top: float = 100.0) -> str:
    """The last ``width`` values as block characters on a fixed 0..``top`` scale (a percent by
    default): up to 1/8 of ``top`` is ``▁`` (idle), above it rounded up over ``▂`` … ``█`` so
    any load above that shows higher than idle; a gap (None) is a space; fewer values than ``width`` are padded on
    the left with spaces."""
    vals = list(values)[-width:] if width > 0 else []
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
        else:
            low = top / 8
            level = 1 if v <= low else 1 + math.ceil((min(v, top) - low) / (top - low) * 7)
            out.append(SPARK[level])
    return " " * (width - len(out)) + "".join(out)


class Ring:
    """A bounded series of ``(t, value)``: ``t`` monotonic seconds, ``value`` a float or None
    (no figure). Holds at most ``size`` points; the oldest fall off."""

    __slots__ = ("points",)

    def __init__(self, size: int):
        self.points: deque[tuple[float, float | None]] = deque(maxlen=max(2, size))

    def add(self, t: float, value: float | None) -> None:
        self.points.append((t, value))

    def last(self) -> float | None:
        """The newest value (None when empty or when the newest had no figure)."""
        return self.points[-1][1] if self.points else None

    def values(self) -> list[float | None]:
        return [v for _t, v in self.points]

    def mean(self, seconds: float, now: float | None = None) -> tuple[float | None, float]:
        """Mean of the figures of the last ``seconds`` (gaps skipped) and the span in seconds
        they cover (0 with fewer than one figure). ``now``: the end of the window (default:
        the newest point's time)."""
        if not self.points:
            return None, 0.0
        end = self.points[-1][0] if now is None else now
        vals = [(t, v) for t, v in self.points if t >= end - seconds and v is not None]
        if not vals:
            return None, 0.0
        return sum(v for _t, v in vals) / len(vals), vals[-1][0] - vals[0][0]


@dataclass(frozen=True)
class HostFigures:
    """The newest figures of one host (None = no figure) and its sparkline data (the ring's
    values with gaps as None, oldest first)."""

    host: str
    cpu_pct: float | None
    guest_cpu_pct: float | None
    mem_used_mib: float | None
    mem_used_pct: float | None
    mem_total_mib: int | None
    pool_free_gib: float | None
    cpu_history: tuple[float | None, ...] = ()
    guest_cpu_history: tuple[float | None, ...] = ()
    mem_history: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class VmFigures:
    """The newest figures of one VM (by uuid) and its CPU sparkline data."""

    uuid: str
    name: str
    host: str
    cpu_pct: float | None
    rss_mib: float | None
    rx_bps: float | None
    tx_bps: float | None
    rd_bps: float | None
    wr_bps: float | None
    rd_iops: float | None = None
    wr_iops: float | None = None
    cpu_history: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class MetricsView:
    """An immutable picture of the store for one snapshot of the live model
    (:attr:`console.model.Cloud.metrics`): ``hosts`` by name, ``vms`` by uuid; ``cpu_source`` is
    the inventory's metrics.cpu_source ("node" or "guests": which CPU figure a host row shows).
    A VM's figures are the same object as in the previous view while what the panels draw of
    them (:func:`shown_key`) did not change, and ``vms`` is the same dict while no VM's did: the
    VMs panel (3,000 rows) is then left alone (:attr:`console.model.Cloud.vm_metrics`)."""

    hosts: Mapping[str, HostFigures] = field(default_factory=dict)
    vms: Mapping[str, VmFigures] = field(default_factory=dict)
    cpu_source: str = "node"
    interval: float = 3.0
    samples: int = 0

    def host_cpu(self, f: HostFigures | None) -> tuple[float | None, tuple[float | None, ...]]:
        """The host CPU figure and history this view shows (by :attr:`cpu_source`)."""
        if f is None:
            return None, ()
        if self.cpu_source == "guests":
            return f.guest_cpu_pct, f.guest_cpu_history
        return f.cpu_pct, f.cpu_history


def _rate(new: int | None, old: int | None, dt: float) -> float | None:
    if new is None or old is None or dt <= 0 or new < old:
        return None
    return (new - old) / dt


class _VmState:
    __slots__ = ("name", "host", "prev", "prev_at", "rings", "fig", "shown")

    def __init__(self, name: str, host: str, size: int):
        self.name = name
        self.host = host
        self.prev: DomainCounters | None = None
        self.prev_at = 0.0
        self.rings = {k: Ring(size) for k in VM_SERIES}
        self.fig: VmFigures | None = None      # the last view's figures (None: changed since)
        self.shown: VmFigures | None = None    # the figures the last view handed out


class MetricsStore:
    """Ring buffers for every host and VM the samples mention (see the module doc).

    ``interval`` (s) and ``window`` (s) size the rings: ``window / interval`` points. A VM not
    seen in its host's sample for ``window`` seconds is forgotten (deleted or stopped long ago).
    """

    def __init__(self, interval: float = 3.0, window: float = 600.0, cpu_source: str = "node"):
        if interval <= 0 or window < interval:
            raise ValueError("metrics interval must be > 0 s and window >= interval")
        self.interval = interval
        self.window = window
        self.size = int(round(window / interval)) + 1
        self._lock = threading.Lock()
        self._hosts: dict[str, dict[str, Ring]] = {}
        self._host_prev: dict[str, HostSample] = {}
        self._host_extra: dict[str, dict] = {}
        self._vms: dict[str, _VmState] = {}
        self.samples = 0
        self.cpu_source = cpu_source
        self._view = MetricsView(cpu_source=cpu_source, interval=interval)

    # -- writing ------------------------------------------------------------------------

    def add(self, sample: HostSample) -> None:
        """Take one host's sample: rates against its previous sample go into the rings."""
        with self._lock:
            self.samples += 1
            prev = self._host_prev.get(sample.host)
            self._host_prev[sample.host] = sample
            rings = self._hosts.setdefault(sample.host, {k: Ring(self.size) for k in HOST_SERIES})
            extra = self._host_extra.setdefault(sample.host, {})
            node, t = sample.node, sample.at
            dt = t - prev.at if prev else 0.0
            cpu = None
            if prev and node.cpu_total_ns is not None and prev.node.cpu_total_ns is not None:
                dtotal = node.cpu_total_ns - prev.node.cpu_total_ns
                dbusy = node.cpu_busy_ns - prev.node.cpu_busy_ns
                if dtotal > 0 and dbusy >= 0:
                    cpu = min(100.0, 100.0 * dbusy / dtotal)
            rings["cpu_pct"].add(t, cpu)
            used = pct = None
            if node.mem_total_mib:
                used = float(node.mem_total_mib - (node.mem_free_mib or 0) - (node.mem_cache_mib or 0))
                pct = 100.0 * used / node.mem_total_mib
                extra["mem_total_mib"] = node.mem_total_mib
            rings["mem_used_mib"].add(t, used)
            rings["mem_used_pct"].add(t, pct)
            if node.pools is not None:
                extra["pool_free_gib"] = sum(p.available_bytes for p in node.pools) / GIB
                extra["pools"] = node.pools
            rings["pool_free_gib"].add(t, extra.get("pool_free_gib"))
            if node.cpus:
                extra["cpus"] = node.cpus
            guest_ns = 0.0
            guest_known = prev is not None
            seen = set()
            for d in sample.domains:
                seen.add(d.uuid)
                st = self._vms.get(d.uuid)
                if st is None:
                    st = self._vms[d.uuid] = _VmState(d.name, sample.host, self.size)
                st.name, st.host = d.name, sample.host
                p, vdt = st.prev, t - st.prev_at
                cpu_ns = _rate(d.cpu_time_ns, p.cpu_time_ns if p else None, vdt)
                vcpus = d.vcpus or 1
                st.rings["cpu_pct"].add(t, None if cpu_ns is None else
                                        min(100.0, cpu_ns / 1e9 / vcpus * 100))
                if cpu_ns is not None:
                    guest_ns += cpu_ns
                elif d.cpu_time_ns is None:
                    guest_known = False      # the host gives no CPU time: no guest figure
                st.rings["rss_mib"].add(t, None if d.rss_mib is None else float(d.rss_mib))
                for key, field, scale in (("rx_bps", "rx_bytes", 1), ("tx_bps", "tx_bytes", 1),
                                          ("rd_bps", "rd_bytes", 1), ("wr_bps", "wr_bytes", 1),
                                          ("rd_iops", "rd_reqs", 1), ("wr_iops", "wr_reqs", 1)):
                    st.rings[key].add(t, _rate(getattr(d, field),
                                               getattr(p, field) if p else None, vdt))
                st.prev, st.prev_at = d, t
                st.fig = None
            cpus = extra.get("cpus")
            rings["guest_cpu_pct"].add(
                t, min(100.0, guest_ns / 1e9 / cpus * 100) if guest_known and cpus and dt > 0 else None)
            # forget VMs of this host gone for a whole window; stopped ones lose their delta base
            for uuid, st in list(self._vms.items()):
                if st.host == sample.host and uuid not in seen:
                    st.prev = None
                    last = st.rings["cpu_pct"].points[-1][0] if st.rings["cpu_pct"].points else 0
                    if t - last > self.window:
                        del self._vms[uuid]

    def no_figure(self, host: str, at: float) -> None:
        """Record that ``host`` gave no figures at ``at`` (its poll failed): a gap in each of its
        series. Its VMs' state is untouched."""
        with self._lock:
            rings = self._hosts.setdefault(host, {k: Ring(self.size) for k in HOST_SERIES})
            for r in rings.values():
                r.add(at, None)

    # -- reading ------------------------------------------------------------------------

    def view(self) -> MetricsView:
        """A :class:`MetricsView` of the newest figures; the same object while no sample came
        in since the last call (the live model calls it on every publish)."""
        with self._lock:
            if self._view.samples == self.samples:
                return self._view
            samples = self.samples
        hosts = {h: f for h in self.hosts() if (f := self.host(h)) is not None}
        vms = {}
        with self._lock:
            states = list(self._vms.items())
        for uuid, st in states:
            fig = st.fig
            if fig is None:
                fig = self.vm(uuid)
                st.fig = fig
                if st.shown is not None and fig is not None and shown_key(fig) == shown_key(st.shown):
                    fig = st.fig = st.shown      # drawn the same: keep the object
            st.shown = fig
            if fig is not None:
                vms[uuid] = fig
        old = self._view.vms
        if len(old) == len(vms) and all(old.get(u) is f for u, f in vms.items()):
            vms = old                            # no VM's drawing changed: the same dict
        self._view = MetricsView(hosts, vms, self.cpu_source, self.interval, samples)
        return self._view

    def hosts(self) -> list[str]:
        with self._lock:
            return sorted(self._hosts)

    def host(self, host: str) -> HostFigures | None:
        """The newest figures and histories of ``host``; None before its first sample."""
        with self._lock:
            rings = self._hosts.get(host)
            if rings is None:
                return None
            extra = self._host_extra.get(host, {})
            return HostFigures(
                host=host, cpu_pct=rings["cpu_pct"].last(),
                guest_cpu_pct=rings["guest_cpu_pct"].last(),
                mem_used_mib=rings["mem_used_mib"].last(), mem_used_pct=rings["mem_used_pct"].last(),
                mem_total_mib=extra.get("mem_total_mib"), pool_free_gib=extra.get("pool_free_gib"),
                cpu_history=tuple(rings["cpu_pct"].values()),
                guest_cpu_history=tuple(rings["guest_cpu_pct"].values()),
                mem_history=tuple(rings["mem_used_pct"].values()))

    def vm(self, uuid: str) -> VmFigures | None:
        """The newest figures and CPU history of the VM ``uuid``; None when never sampled."""
        with self._lock:
            st = self._vms.get(uuid)
            if st is None:
                return None
            r = st.rings
            return VmFigures(uuid=uuid, name=st.name, host=st.host, cpu_pct=r["cpu_pct"].last(),
                             rss_mib=r["rss_mib"].last(), rx_bps=r["rx_bps"].last(),
                             tx_bps=r["tx_bps"].last(), rd_bps=r["rd_bps"].last(),
                             wr_bps=r["wr_bps"].last(), rd_iops=r["rd_iops"].last(),
                             wr_iops=r["wr_iops"].last(),
                             cpu_history=tuple(r["cpu_pct"].values()))

    def vms(self, host: str | None = None) -> list[VmFigures]:
        """Every sampled VM (of ``host``), by name."""
        with self._lock:
            uuids = [u for u, st in self._vms.items() if host is None or st.host == host]
        out = [f for f in (self.vm(u) for u in uuids) if f is not None]
        return sorted(out, key=lambda f: (f.host, f.name))

    def mean(self, host: str, series: str, seconds: float) -> tuple[float | None, float]:
        """Mean of host ``series`` (one of :data:`HOST_SERIES`) over the last ``seconds`` and
        the span in seconds the figures cover; ``(None, 0)`` without figures."""
        if series not in HOST_SERIES:
            raise ValueError(f"series must be one of {', '.join(HOST_SERIES)}, not {series!r}")
        with self._lock:
            rings = self._hosts.get(host)
            return rings[series].mean(seconds) if rings else (None, 0.0)

    def forget(self, hosts: Iterable[str]) -> None:
        """Drop every series of ``hosts`` (removed from the inventory)."""
        with self._lock:
            for h in hosts:
                self._hosts.pop(h, None)
                self._host_prev.pop(h, None)
                self._host_extra.pop(h, None)
            for u in [u for u, st in self._vms.items() if st.host in set(hosts)]:
                del self._vms[u]


#: The process-wide store the console's live model feeds (None until one starts); placement
#: reads it when it holds enough history (see console.services.placement).
STORE: MetricsStore | None = None
