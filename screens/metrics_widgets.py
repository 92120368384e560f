"""The measured figures in the panels: extra Hosts and VMs columns, and the details' plot lines.

Pure functions of a :class:`console.model.Cloud` whose ``metrics`` is a
:class:`console.metrics.MetricsView` (None: no figures yet, or a console without metrics): the
cells are plain text, so the table sorts them like any other column, and a sparkline is a run of
block characters (``▁▂▃▅▇``, scaled 0-100 %) in a cell — the Line-API table draws thousands of
rows without a widget per cell. A missing figure is ``-`` (a gap in a sparkline is a space).

Hosts: ``CPU%`` and its sparkline (the node's CPU, or the guests' CPU over the host's CPUs when
the inventory's ``metrics.cpu_source = "guests"``), ``RAM used`` (MiB, total - free - cache),
``Pool`` (GiB free, sum of the active pools). VMs: a CPU sparkline beside the existing
``CPU%``, ``Net rx/tx`` and ``Disk r/w`` (bytes per second, 1024-based units).
"""

from __future__ import annotations

from ..console.metrics import CELL_POINTS, SHOWN_POINTS, MetricsView, rate_text, sparkline
from ..console.model import Cloud, Host, Vm
from .table import Column

# A sparkline cell has a fixed width: the table cuts a long cell at its end, which would drop
# the newest points; 8 points = 24 s at the default 3 s interval, and the row still fits 80x24.
SPARK_CELL = CELL_POINTS
SPARK_DETAIL = SHOWN_POINTS   # points the details plot shows (2 min at 3 s): label + plot < 80 columns

HOST_METRIC_COLUMNS = (
    Column("cpu_pct", "CPU%", 4, 5, right=True),
    Column("cpu_spark", "CPU", SPARK_CELL, SPARK_CELL),
    Column("ram_used", "RAM used", 5, 8, right=True),
    Column("pool_free", "Pool", 4, 6, right=True),
)

VM_METRIC_COLUMNS = (
    Column("cpu_spark", "CPU", SPARK_CELL, SPARK_CELL),
    Column("net", "Net rx/tx", 5, 11, right=True),
    Column("disk", "Disk r/w", 5, 11, right=True),
)


def _view(cloud: Cloud) -> MetricsView | None:
    m = cloud.metrics
    return m if isinstance(m, MetricsView) else None


rate = rate_text      # bytes per second in at most 5 characters (console.metrics.rate_text)


def host_cells(cloud: Cloud, h: Host) -> tuple[str, ...]:
    """The cells of :data:`HOST_METRIC_COLUMNS` for host ``h``."""
    view = _view(cloud)
    f = view.hosts.get(h.name) if view else None
    if f is None:
        return ("-", "", "-", "-")
    cpu, hist = view.host_cpu(f)
    return ("-" if cpu is None else f"{cpu:.0f}", sparkline(hist, SPARK_CELL),
            "-" if f.mem_used_mib is None else f"{f.mem_used_mib:.0f}",
            "-" if f.pool_free_gib is None else f"{f.pool_free_gib:.0f}G")


def vm_figure_map(cloud: Cloud) -> dict:
    """``{uuid: VmFigures}`` of the sampled VMs (empty without figures)."""
    view = _view(cloud)
    return view.vms if view else {}


def vm_figures(cloud: Cloud, v: Vm):
    """The VM's :class:`console.metrics.VmFigures` (None without figures)."""
    view = _view(cloud)
    return view.vms.get(v.uuid) if view and v.active else None


def vm_cells(fig) -> tuple[str, ...]:
    """The cells of :data:`VM_METRIC_COLUMNS` from a VM's figures (None: no figures)."""
    if fig is None:
        return ("", "-", "-")
    return (sparkline(fig.cpu_history, SPARK_CELL), f"{rate(fig.rx_bps)}/{rate(fig.tx_bps)}",
            f"{rate(fig.rd_bps)}/{rate(fig.wr_bps)}")


def _window(view: MetricsView, points: int) -> str:
    s = min(points, view.samples or points) * view.interval
    return f"{s / 60:.0f} min" if s >= 90 else f"{s:.0f} s"


def host_detail_lines(cloud: Cloud, h: Host) -> list[tuple[str, str]]:
    """``(label, value)`` lines for the host's details: CPU and RAM plots of the last window."""
    view = _view(cloud)
    f = view.hosts.get(h.name) if view else None
    if f is None:
        return []
    cpu, hist = view.host_cpu(f)
    what = "guest CPU" if view.cpu_source == "guests" else "CPU"
    out = [(f"{what} {'-' if cpu is None else f'{cpu:.0f}'}% (last {_window(view, SPARK_DETAIL)})",
            sparkline(hist, SPARK_DETAIL).rstrip() or "-")]
    if f.mem_used_pct is not None:
        out.append((f"RAM {f.mem_used_pct:.0f}% used ({f.mem_used_mib:.0f} MiB)",
                    sparkline(f.mem_history, SPARK_DETAIL).rstrip() or "-"))
    if f.pool_free_gib is not None:
        out.append(("pools free", f"{f.pool_free_gib:.1f} GiB"))
    return out


def vm_detail_lines(cloud: Cloud, v: Vm) -> list[tuple[str, str]]:
    """``(label, value)`` lines for a VM's details: CPU plot, net and disk rates."""
    f = vm_figures(cloud, v)
    if f is None:
        return []
    view = _view(cloud)
    cpu = "-" if f.cpu_pct is None else f"{f.cpu_pct:.0f}"
    return [(f"CPU {cpu}% (last {_window(view, SPARK_DETAIL)})",
             sparkline(f.cpu_history, SPARK_DETAIL).rstrip() or "-"),
            ("net rx/tx · disk r/w (B/s)", f"{rate(f.rx_bps)}/{rate(f.tx_bps)} · "
                                           f"{rate(f.rd_bps)}/{rate(f.wr_bps)}")]
