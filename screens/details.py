"""The full details view: ``enter`` on any panel's row opens everything known about it.

The detail pane under a table is 8 rows at 80x24: a VM's disks, NICs and ports fall below it.
:class:`DetailsScreen` is a whole screen of one row's facts, scrollable by keys (↑/↓ or j/k a
line, PgUp/PgDn or space a page, Home/End or g/G), ``escape`` / ``q`` back to the panel. It
follows the live model: the app calls :meth:`DetailsScreen.refresh_cloud` on every change, and
a row that goes away says so instead of closing under the operator.

What it shows (pure functions of a :class:`console.model.Cloud`, :func:`full_details`):

- VM: the domain XML facts (uuid, type/arch, persistent sizes, autostart), its disks, each NIC
  followed through its LSP to the switch, the LSP's IPs and, when the southbound was read,
  the chassis that binds it (``nic MAC → LSP → switch → IPs → chassis``), its figures,
  the NoCloud seed and template, and its recent events: the audit records naming it
  (``$XDG_STATE_HOME/virtdeck/audit.jsonl``, read in a thread worker, newest last).
- host: the Hosts panel's detail text (connection state, capacity and allocation against the
  ratios, bridge mappings, OVN chassis, figures) and every VM it holds (state, vCPUs, RAM MiB).
- network / router / tenant: the pane's text plus what did not fit (every port, every VM).

This module imports no libvirt, ovsdbapp or asyncssh.
"""

from __future__ import annotations

import os

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from ..console.model import Cloud, Host, Vm
from . import metrics_widgets as mw
from . import views
from .footer import KeyFooter

#: events shown per VM
EVENTS_SHOWN = 10


def _kv(lines: list[str], key: str, value) -> None:
    lines.append(f"  [b]{escape(key)}[/b]: {escape(str(value))}")


def _find_vm(cloud: Cloud, key: str) -> Vm | None:
    host, _, uuid = key.removeprefix("vm:").partition(":")
    return next((v for v in cloud.vms if v.host == host and v.uuid == uuid), None)


def vm_full(cloud: Cloud, v: Vm) -> list[str]:
    """Markup lines: a VM's facts, disks, NICs → LSP → switch → IPs, seed."""
    lines = [f"[b]VM {escape(v.name)}[/b] on {escape(v.host)}  "
             f"[{views.state_style(v.state)}]{escape(v.state)}[/]", "", "[b u]Domain[/b u]"]
    _kv(lines, "uuid", v.uuid)
    _kv(lines, "type / arch", f"{v.domain_type or '?'} / {v.arch or '?'}")
    _kv(lines, "vCPUs", v.vcpus)
    _kv(lines, "RAM", f"{v.memory_mib} MiB (maximum {v.max_memory_mib} MiB)")
    if v.cpu_percent is not None or v.rss_mib is not None:
        _kv(lines, "CPU / RSS", f"{'-' if v.cpu_percent is None else f'{v.cpu_percent:g}'} % / "
                                f"{'-' if v.rss_mib is None else v.rss_mib} MiB")
    _kv(lines, "persistent / autostart",
        f"{'yes' if v.persistent else 'no'} / {'?' if v.autostart is None else 'yes' if v.autostart else 'no'}")
    _kv(lines, "tenant", v.tenant or "- (not a virtdeck VM)")
    lines += ["", "[b u]Disks[/b u]"]
    for d in v.disks:
        _kv(lines, d.target, f"{d.device} {d.source or '-'} ({d.format or '?'}, {d.bus or '?'})")
    if not v.disks:
        lines.append("  none")
    lines += ["", "[b u]NICs → LSP → switch → IPs[/b u]"]
    by_name = {p.name: p for p in cloud.ports_of_vm(v)}
    for nic in v.nics:
        port = by_name.pop(nic.interfaceid, None) if nic.interfaceid else None
        dev = f" ({nic.target})" if nic.target else ""
        lines.append(f"  [b]{escape(nic.mac)}[/b]{escape(dev)} {escape(nic.type)} {escape(nic.source or '-')}")
        if port is None:
            lines.append(f"    → LSP {escape(nic.interfaceid or '-')}: not in OVN northbound")
            continue
        lines.extend(_port_lines(cloud, port))
    for port in by_name.values():      # tagged with the VM but bound to no NIC of its XML
        lines.append("  [b]no NIC[/b] (port tagged with this VM)")
        lines.extend(_port_lines(cloud, port))
    if not v.nics and not by_name:
        lines.append("  none")
    if v.networks:
        _kv(lines, "networks (metadata)", ", ".join(v.networks))
    lines += ["", "[b u]Seed and template[/b u]"]
    _kv(lines, "seed", v.seed or "-")
    _kv(lines, "template", v.template or "-")
    figures = mw.vm_detail_lines(cloud, v)
    if figures:
        lines += ["", "[b u]Figures[/b u]"]
        for label, value in figures:
            _kv(lines, label, value)
    return lines


def _port_lines(cloud: Cloud, p) -> list[str]:
    net = cloud.network(p.switch)
    up = {True: "up", False: "down", None: "?"}[p.up]
    switch = f"{net.display_name} ({net.kind_label}, {net.subnet or 'no subnet'})" if net else p.switch
    lines = [f"    → LSP {escape(p.display_name)} ({escape(p.name)}) {up}",
             f"    → switch {escape(switch)}",
             f"    → IPs {escape(', '.join(p.ips) or 'none yet')}"]
    sb = cloud.sb
    if sb is not None:        # where the southbound binds it (console.live_sb; None: not read)
        b = sb.binding(p.name)
        where = "not bound" if b is None or not b.chassis else \
            f"bound on chassis {b.chassis}" + (f" (host {sb.host_of_chassis(b.chassis)})"
                                              if sb.host_of_chassis(b.chassis) else " (no host claims it)")
        lines.append(f"    → {escape(where)}")
    return lines


def host_full(cloud: Cloud, h: Host) -> list[str]:
    """Markup lines: the Hosts panel's detail text (state, capacity, allocation, bridge
    mappings, OVN chassis, figures: screens/views.py host_details) and every VM the host holds
    (state, vCPUs, RAM MiB, tenant)."""
    u = cloud.usage(h.name)
    lines = views.host_details(cloud, h).markup.splitlines()
    lines[0] = "host " + lines[0]
    lines = [lines[0], ""] + ["  " + line for line in lines[1:]]
    vms = sorted(cloud.vms_on(h.name), key=lambda v: v.name)
    lines += ["", f"[b u]VMs ({u.running} running of {u.vms})[/b u]"]
    for v in vms:
        lines.append(f"  {escape(v.name):<24} [{views.state_style(v.state)}]{v.state:<9}[/] "
                     f"{v.vcpus:>3} vCPU {v.memory_mib:>7} MiB  {escape(v.tenant or '-')}")
    if not vms:
        lines.append("  none")
    return lines


def full_details(cloud: Cloud, key: str | None) -> list[str] | None:
    """Markup lines of everything known about row ``key`` (shapes: screens/views.py), or None
    when the row is gone."""
    kind, _, rest = (key or "").partition(":")
    if kind == "vm":
        v = _find_vm(cloud, key)
        return vm_full(cloud, v) if v else None
    if kind == "host":
        h = cloud.host(rest)
        return host_full(cloud, h) if h else None
    text = views.details(cloud, key)
    if not text.plain:
        return None
    lines = text.markup.splitlines()
    if kind == "tenant":       # the pane cuts the domain list at 20
        vms = sorted(v.name for v in cloud.vms if v.tenant == rest)
        lines += ["", f"[b u]VMs ({len(vms)})[/b u]"] + [f"  {escape(n)}" for n in vms]
    return lines


def vm_events(name: str, path: str | os.PathLike | None = None, limit: int = EVENTS_SHOWN) -> list[dict]:
    """The last ``limit`` audit records whose target is VM ``name`` (``"vm NAME"`` or
    ``"vm TENANT/NAME"``; not ``web-10`` for ``web-1``), oldest first, read by the ``audit``
    verb's service (console/services/audit_read.py; ``path`` default: the trail,
    console.audit.log_path()). A missing trail gives []; unreadable lines are skipped."""
    from ..console.services import audit_read
    try:
        records = audit_read.read(path=path, target=name)["records"]
    except OSError:
        return []
    mine = [r for r in records
            if str(r.get("target", "")).startswith("vm ") and str(r["target"])[3:].rsplit("/", 1)[-1] == name]
    return mine[-limit:]


def event_lines(records: list[dict] | None) -> list[str]:
    """Markup lines of the VM's events (None: still reading)."""
    lines = ["", "[b u]Events (audit trail, newest last)[/b u]"]
    if records is None:
        return lines + ["  reading…"]
    for r in records:
        when = str(r.get("time", "?"))[:19].replace("T", " ")
        outcome = str(r.get("outcome", ""))
        style = "green" if outcome == "ok" else "red" if outcome.startswith("failed") else ""
        lines.append(f"  {escape(when)} {escape(str(r.get('verb', '?')))} "
                     f"[{style}]{escape(outcome)}[/] {escape(str(r.get('operator', '')))}")
    return lines if records else lines + ["  none recorded by virtdeck"]


class DetailsScreen(Screen[None]):
    """Everything about one row (``key``: ``vm:HOST:UUID``, ``host:NAME``, ``net:UUID``,
    ``router:UUID``, ``tenant:NAME``), scrollable by keys; see the module doc."""

    DEFAULT_CSS = """
    DetailsScreen #details-full { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }
    DetailsScreen #details-title { height: 1; padding: 0 1; background: $panel; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Back"),
        Binding("up,k", "scroll('up')", "Up", show=False),
        Binding("down,j", "scroll('down')", "Down", show=False),
        Binding("pageup,b", "scroll('page_up')", "Page up", show=False),
        Binding("pagedown,space", "scroll('page_down')", "Page down", show=False),
        Binding("home,g", "scroll('home')", "Top", show=False),
        Binding("end,G", "scroll('end')", "Bottom", show=False),
    ]

    def __init__(self, key: str):
        super().__init__()
        self.key = key
        self.events: list[dict] | None = None if key.startswith("vm:") else []
        self._shown: list[str] | None = None
        self._last: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="details-title")
        with VerticalScroll(id="details-full"):
            yield Static("", id="details-body")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#details-full").focus()
        self.refresh_cloud()
        if self.events is None:
            v = _find_vm(self.app.cloud, self.key)
            if v is not None:
                self.run_worker(lambda: self._read_events(v.name), thread=True, group="details-events",
                                exit_on_error=False)

    def _read_events(self, name: str) -> None:
        records = vm_events(name)
        self.app.call_from_thread(self._events_read, records)

    def _events_read(self, records: list[dict]) -> None:
        self.events = records
        self._shown = None
        self.refresh_cloud()

    def refresh_cloud(self) -> None:
        """Redraw from ``app.cloud`` (the app calls it on every change while this is on top)."""
        lines = full_details(self.app.cloud, self.key)
        gone = lines is None
        if gone:
            lines = ["[bold red]gone: this row is no longer in the cloud[/] (last known below)", "",
                     *self._last]
        else:
            self._last = lines
        if self.key.startswith("vm:") and not gone:
            lines = lines + event_lines(self.events)
        if lines == self._shown:
            return
        self._shown = lines
        kind = self.key.partition(":")[0]
        self.query_one("#details-title", Static).update(
            f"[b]details[/b] of {escape(kind)} · ↑/↓ PgUp/PgDn Home/End scroll · escape back")
        self.query_one("#details-body", Static).update(Text.from_markup("\n".join(lines)))

    def action_scroll(self, how: str) -> None:
        box = self.query_one("#details-full", VerticalScroll)
        getattr(box, f"scroll_{how}")(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
