"""Metrics for the command line: sample every hypervisor into a :class:`console.metrics.MetricsStore`
(``virtdeck top``, ``virtdeck metrics --listen``), and the figures as JSON-ready rows and text.

Read-only: nothing here changes a host or a VM. A host that does not answer gets a gap in its
series and an ``error`` on its row; the others are sampled all the same.
"""

from __future__ import annotations

import concurrent.futures
import time

from ...backends import metrics as collect
from ...config.inventory import Inventory
from ..metrics import HostFigures, MetricsStore, VmFigures

#: VM sort keys of ``virtdeck top --sort`` → the VmFigures field (highest first).
SORT_KEYS = {"cpu": "cpu_pct", "rss": "rss_mib", "rx": "rx_bps", "tx": "tx_bps",
             "rd": "rd_bps", "wr": "wr_bps", "name": "name"}


def new_store(inventory: Inventory, interval: float | None = None) -> MetricsStore:
    """A store sized by the inventory's [metrics] (``interval`` overrides its interval, s)."""
    step = interval or inventory.metrics.interval
    return MetricsStore(step, max(inventory.metrics.window, step))


def sample_all(session, store: MetricsStore, hosts: list[str] | None = None) -> dict[str, str]:
    """Sample every enabled hypervisor (or ``hosts``) in parallel — per host ONE
    ``getAllDomainStats`` plus the node's CPU, memory and pools
    (:func:`backends.metrics.sample_host`) — into ``store``. Returns ``{host: error}`` for the
    hosts that gave no figures (they get a gap); never raises for one host."""
    inv = session.inventory
    names = hosts or [h.name for h in inv.hypervisors if h.enabled]
    errors: dict[str, str] = {}

    def one(name: str) -> None:
        try:
            store.add(collect.sample_host(session.libvirt(name), name))
        except Exception as exc:  # noqa: BLE001 - HostError, libvirtError, OSError: no figure
            msg = exc.get_error_message() if hasattr(exc, "get_error_message") else str(exc)
            errors[name] = msg or type(exc).__name__
            store.no_figure(name, time.monotonic())
    if names:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
            list(pool.map(one, names))
    return errors


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def host_row(f: HostFigures, error: str | None = None) -> dict:
    """One host's newest figures as a JSON-ready dict (CPU/RAM in %, RAM MiB, pool GiB)."""
    return {"host": f.host, "cpu_pct": _r(f.cpu_pct), "guest_cpu_pct": _r(f.guest_cpu_pct),
            "mem_used_mib": None if f.mem_used_mib is None else int(f.mem_used_mib),
            "mem_total_mib": f.mem_total_mib, "mem_used_pct": _r(f.mem_used_pct),
            "pool_free_gib": _r(f.pool_free_gib), "error": error}


def vm_row(f: VmFigures) -> dict:
    """One VM's newest figures as a JSON-ready dict (CPU % of its vCPUs, RSS MiB, bytes/s)."""
    return {"vm": f.name, "uuid": f.uuid, "host": f.host, "cpu_pct": _r(f.cpu_pct),
            "rss_mib": None if f.rss_mib is None else int(f.rss_mib),
            "rx_bps": _r(f.rx_bps, 0), "tx_bps": _r(f.tx_bps, 0),
            "rd_bps": _r(f.rd_bps, 0), "wr_bps": _r(f.wr_bps, 0)}


def figures(store: MetricsStore, errors: dict[str, str] | None = None, sort: str = "cpu",
            limit: int | None = None) -> dict:
    """``{"t": unix seconds, "hosts": [host_row…], "vms": [vm_row…]}``: the newest figures,
    VMs sorted by ``sort`` (a key of :data:`SORT_KEYS`, highest first; ``name`` A→Z), at most
    ``limit`` of them. Raises ValueError for another sort key."""
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, not {sort!r}")
    errors = errors or {}
    hosts = [host_row(f, errors.get(h)) for h in store.hosts() if (f := store.host(h)) is not None]
    field = SORT_KEYS[sort]
    vms = store.vms()
    if field == "name":
        vms.sort(key=lambda v: v.name)
    else:
        vms.sort(key=lambda v: (getattr(v, field) is None, -(getattr(v, field) or 0), v.name))
    rows = [vm_row(v) for v in vms][:limit]
    return {"t": round(time.time(), 3), "hosts": hosts, "vms": rows}


def _fmt(x, spec: str, dash: str = "-") -> str:
    return dash if x is None else format(x, spec)


def human_rate(bps: float | None) -> str:
    """Bytes per second in a few characters: ``12K``, ``3.4M`` (1024-based), ``-`` for none."""
    if bps is None:
        return "-"
    for unit in ("", "K", "M", "G"):
        if bps < 1024 or unit == "G":
            return f"{bps:.0f}{unit}" if bps >= 10 or unit == "" else f"{bps:.1f}{unit}"
        bps /= 1024
    return "-"


def figures_text(fig: dict) -> list[str]:
    """:func:`figures` as the lines of one ``top`` screen (fits 80 columns)."""
    lines = [f"{'HOST':<12}{'CPU%':>6}{'GUEST%':>8}{'RAM used':>14}{'RAM%':>6}{'POOL free':>11}"]
    for h in fig["hosts"]:
        ram = "-" if h["mem_used_mib"] is None else f"{h['mem_used_mib']}/{h['mem_total_mib']}M"
        pool = _fmt(h["pool_free_gib"], ".1f") + ("G" if h["pool_free_gib"] is not None else "")
        line = (f"{h['host']:<12}{_fmt(h['cpu_pct'], '.1f'):>6}{_fmt(h['guest_cpu_pct'], '.1f'):>8}"
                f"{ram:>14}{_fmt(h['mem_used_pct'], '.0f'):>6}{pool:>11}")
        if h["error"]:
            line += f"  no figures: {h['error']}"
        lines.append(line)
    lines.append("")
    lines.append(f"{'VM':<20}{'HOST':<10}{'CPU%':>6}{'RSS MiB':>9}{'NET rx':>8}{'tx':>7}"
                 f"{'DISK rd':>9}{'wr':>7}")
    for v in fig["vms"]:
        lines.append(f"{v['vm'][:19]:<20}{v['host'][:9]:<10}{_fmt(v['cpu_pct'], '.1f'):>6}"
                     f"{_fmt(v['rss_mib'], 'd'):>9}{human_rate(v['rx_bps']):>8}"
                     f"{human_rate(v['tx_bps']):>7}{human_rate(v['rd_bps']):>9}"
                     f"{human_rate(v['wr_bps']):>7}")
    if not fig["vms"]:
        lines.append("(no running VMs)")
    return lines


# ---------------------------------------------------------------------------------------------
# Prometheus exposition (`virtdeck metrics --listen`)


class StoreCollector:
    """A ``prometheus_client`` collector serving ``store``'s newest figures as gauges, every
    scrape (nothing is kept twice). ``errors``: ``{host: message}`` of the last sample, read at
    scrape time (a host in it has ``virtdeck_host_up 0`` and no other figure for that round).

    Series (labels ``host``; VMs also ``vm`` and ``uuid``): ``virtdeck_host_up``,
    ``virtdeck_host_cpu_percent`` (node CPU), ``virtdeck_host_guest_cpu_percent``,
    ``virtdeck_host_memory_used_bytes``, ``virtdeck_host_memory_used_percent``,
    ``virtdeck_host_pool_free_bytes``, ``virtdeck_vm_cpu_percent`` (of its vCPUs),
    ``virtdeck_vm_rss_bytes``, ``virtdeck_vm_net_{rx,tx}_bytes_per_second``,
    ``virtdeck_vm_disk_{read,write}_bytes_per_second``."""

    HOST = (("cpu_percent", "cpu_pct", 1, "host CPU busy, % of all its CPUs (virNodeGetCPUStats deltas)"),
            ("guest_cpu_percent", "guest_cpu_pct", 1, "the guests' CPU time, % of the host's CPUs"),
            ("memory_used_bytes", "mem_used_mib", 1 << 20, "host RAM in use (total - free - buffers/cache)"),
            ("memory_used_percent", "mem_used_pct", 1, "host RAM in use, % of total"),
            ("pool_free_bytes", "pool_free_gib", 1 << 30, "free space of the active storage pools"))
    VM = (("cpu_percent", "cpu_pct", 1, "VM CPU, % of its vCPUs"),
          ("rss_bytes", "rss_mib", 1 << 20, "VM resident memory (balloon.rss)"),
          ("net_rx_bytes_per_second", "rx_bps", 1, "VM network receive rate"),
          ("net_tx_bytes_per_second", "tx_bps", 1, "VM network transmit rate"),
          ("disk_read_bytes_per_second", "rd_bps", 1, "VM disk read rate"),
          ("disk_write_bytes_per_second", "wr_bps", 1, "VM disk write rate"))

    def __init__(self, store: MetricsStore, errors: dict[str, str]):
        self.store, self.errors = store, errors

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        up = GaugeMetricFamily("virtdeck_host_up", "1 when the last sample of the host answered",
                               labels=["host"])
        fams = {k: GaugeMetricFamily(f"virtdeck_host_{k}", h, labels=["host"]) for k, _f, _s, h in self.HOST}
        for name in self.store.hosts():
            f = self.store.host(name)
            up.add_metric([name], 0.0 if name in self.errors else 1.0)
            if f is None or name in self.errors:
                continue
            for key, field, scale, _h in self.HOST:
                v = getattr(f, field)
                if v is not None:
                    fams[key].add_metric([name], float(v) * scale)
        yield up
        yield from fams.values()
        vfams = {k: GaugeMetricFamily(f"virtdeck_vm_{k}", h, labels=["host", "vm", "uuid"])
                 for k, _f, _s, h in self.VM}
        for v in self.store.vms():
            for key, field, scale, _h in self.VM:
                x = getattr(v, field)
                if x is not None:
                    vfams[key].add_metric([v.host, v.name, v.uuid], float(x) * scale)
        yield from vfams.values()


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[v6]:PORT`` too) → ``(addr, port)``. Raises ValidationError naming the
    field ``listen`` when it is not an address and a port 0-65535 (0: any free port)."""
    from ..errors import ValidationError
    addr, sep, port = text.rpartition(":")
    addr = addr.strip("[]")
    if not sep or not addr or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValidationError("listen", f"--listen wants ADDR:PORT (e.g. 127.0.0.1:9177), not {text!r}")
    return addr, int(port)


def vm_now(session, host: str, dom, window: float = 0.5) -> dict | None:
    """A running VM's current figures for ``vm show``: two one-domain stats reads ``window``
    seconds apart (:func:`backends.metrics.sample_domain`) → :func:`vm_row`'s dict (CPU % of
    its vCPUs, RSS MiB, net/disk bytes per second over that window); None when it gave no
    figures (not running, a stats error). Never raises for a stats error."""
    store = MetricsStore(interval=window, window=window * 4)
    try:
        conn = session.libvirt(host)
        for i in range(2):
            s = collect.sample_domain(conn, dom, host)
            if s is None:
                return None
            store.add(s)
            if i == 0:
                time.sleep(window)
    except Exception:  # noqa: BLE001 - libvirtError, HostError: "no figure" for a read verb
        return None
    figs = store.vms()
    if not figs:
        return None
    row = vm_row(figs[0])
    row.pop("uuid", None)
    return row


def vm_now_line(f: dict | None) -> str | None:
    """``vm show``'s text line for :func:`vm_now`'s dict (None: no line)."""
    if not f:
        return None
    cpu = "-" if f["cpu_pct"] is None else f"{f['cpu_pct']:.0f} %"
    rss = "-" if f["rss_mib"] is None else f"{f['rss_mib']} MiB"
    return (f"  now: CPU {cpu}, RSS {rss}, net rx/tx {human_rate(f['rx_bps'])}/{human_rate(f['tx_bps'])} B/s, "
            f"disk r/w {human_rate(f['rd_bps'])}/{human_rate(f['wr_bps'])} B/s")


def host_now(session, host: str, window: float = 0.5) -> dict | None:
    """A hypervisor's current figures for ``host list`` / ``host show``: two samples ``window``
    seconds apart (:func:`backends.metrics.sample_host`, pools on the first) → :func:`host_row`'s
    dict without ``host``/``error``; None when the host gave no figures. Never raises."""
    store = MetricsStore(interval=window, window=window * 4)
    try:
        conn = session.libvirt(host)
        store.add(collect.sample_host(conn, host, pools=True))
        time.sleep(window)
        store.add(collect.sample_host(conn, host, pools=False))
    except Exception:  # noqa: BLE001 - libvirtError, HostError: "no figure" for a read verb
        return None
    f = store.host(host)
    if f is None:
        return None
    row = host_row(f)
    row.pop("host", None)
    row.pop("error", None)
    return row


def host_now_line(f: dict | None) -> str | None:
    """``host show``'s text line for :func:`host_now`'s dict (None: no line)."""
    if not f:
        return None
    pct = lambda x: "-" if x is None else f"{x:.0f} %"  # noqa: E731
    used = "-" if f["mem_used_mib"] is None else f"{f['mem_used_mib']} MiB ({pct(f['mem_used_pct'])})"
    pool = "-" if f["pool_free_gib"] is None else f"{f['pool_free_gib']:.1f} GiB"
    return (f"  now     CPU {pct(f['cpu_pct'])} (guests {pct(f['guest_cpu_pct'])}), "
            f"RAM used {used}, pools free {pool}")
