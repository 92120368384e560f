"""What each panel shows: rows for the tables and the text of the detail pane, from a Cloud.

Pure functions of :class:`console.model.Cloud` (no I/O, no widgets) so they are cheap to call
on every change and easy to test. Row keys: ``host:NAME``, ``vm:HOST:UUID``, ``net:UUID``,
``router:UUID``, ``tenant:NAME``.
"""

from __future__ import annotations

import time
from dataclasses import replace

from rich.markup import escape
from rich.text import Text

from ..console.model import Cloud, Host, Network, Router, Vm
from . import metrics_widgets as mw
from .table import Column, Row

PANELS = ("hosts", "vms", "networks", "tenants", "templates")
TITLES = {"hosts": "Hosts", "vms": "VMs", "networks": "Networks", "tenants": "Tenants",
          "templates": "Templates"}
#: What an empty panel says when no filter hides its rows (a filter says "no match for /re/").
EMPTY = {"hosts": "no hosts in the inventory — virtdeck host add NAME ADDRESS adds one",
         "vms": "no VMs yet — c creates one",
         "networks": "no networks yet — c creates one",
         "tenants": "no tenants yet — they appear with their first VM or network"}
#: The status line's first word in a read-only console (``virtdeck --readonly``).
READONLY_BADGE = "[b reverse] READ-ONLY [/]"

_STATE_STYLE = {
    "up": "green", "running": "green", "connecting": "yellow", "paused": "yellow",
    "blocked": "yellow", "shutdown": "yellow", "pmsuspended": "yellow", "host-key": "bold yellow",
    "unreachable": "bold red", "refused": "bold red", "crashed": "bold red",
    "shutoff": "dim", "disabled": "dim", "nostate": "dim",
}


def state_style(text: str) -> str:
    """Rich style for a host/VM state word."""
    return _STATE_STYLE.get(text.split(" ")[0], "")


def _n(v) -> str:
    return "?" if v is None else str(v)


# ---------------------------------------------------------------------------------------------
# Columns

#: Table width (cells) below which the "wide" metric columns are hidden (Column.hide_below): at
#: 80x24 the name, state, allocation and IPs stay whole; at 160x48 (a ~95-cell table beside the
#: details) they show.
WIDE = 90
_WIDE_KEYS = frozenset({"ram_used", "pool_free", "net", "disk"})


def _metric_columns(columns) -> tuple:
    """The metric columns, the wide ones (:data:`_WIDE_KEYS`) hidden below :data:`WIDE` cells."""
    return tuple(replace(c, hide_below=WIDE) if c.key in _WIDE_KEYS else c for c in columns)



HOST_COLUMNS = (
    Column("name", "Host", 4, 16),
    Column("state", "State", 5, 11, style=state_style),
    Column("arch", "Arch", 4, 7),
    Column("cores", "Cores", 3, 5, right=True),
    Column("ram", "RAM free/total", 9, 15, right=True),
    Column("vms", "VMs", 3, 9, right=True),
    Column("vcpu", "vCPU", 4, 9, right=True),
    Column("alloc", "RAM alloc", 6, 13, right=True),
    *_metric_columns(mw.HOST_METRIC_COLUMNS),
    Column("chassis", "Chassis (ports)", 3, 28, flex=True),
    Column("physnets", "Physnets", 4, 30, flex=True),
)

VM_COLUMNS = (
    Column("name", "Name", 4, 24),
    Column("host", "Host", 3, 12),
    Column("state", "State", 5, 11, style=state_style),
    Column("vcpus", "vCPU", 4, 4, right=True),
    Column("ram", "RAM", 3, 7, right=True),
    Column("tenant", "Tenant", 4, 14),
    Column("network", "Network", 4, 20),
    Column("ips", "IPs", 15, 31, flex=True),      # a whole IPv4 address (192.168.100.250)
    Column("cpu", "CPU%", 4, 5, right=True),
    *_metric_columns(mw.VM_METRIC_COLUMNS),
    # the guest arch (domain XML; also in the details pane): at 160x48 it would cut State and the
    # rates short, so only a table of 110+ cells shows it
    Column("arch", "Arch", 4, 7, hide_below=110),
)

NET_COLUMNS = (
    Column("name", "Name", 4, 20),
    Column("tenant", "Tenant", 4, 14),
    Column("type", "Type", 4, 18),
    Column("subnet", "Subnet", 6, 18),
    Column("dhcp", "DHCP", 4, 4),
    Column("ports", "Ports", 3, 5, right=True),
    Column("routers", "Routers", 4, 30, flex=True),
)

TENANT_COLUMNS = (
    Column("name", "Tenant", 4, 20),
    Column("vms", "VMs", 3, 11, right=True),
    Column("running", "Run", 3, 5, right=True),
    Column("vcpus", "vCPUs", 4, 11, right=True),
    Column("ram", "RAM MiB", 5, 15, right=True),
    Column("nets", "Nets", 4, 4, right=True),
    Column("routers", "Rtrs", 4, 4, right=True),
    Column("ports", "Ports", 4, 5, right=True),
    Column("sources", "Seen in", 6, 24, flex=True),
)

COLUMNS = {"hosts": HOST_COLUMNS, "vms": VM_COLUMNS, "networks": NET_COLUMNS,
           "tenants": TENANT_COLUMNS}


# ---------------------------------------------------------------------------------------------
# Rows


def host_rows(cloud: Cloud) -> list[Row]:
    """One row per hypervisor: state, facts, VMs running/all, allocation against ratios."""
    rows = []
    chassis = _chassis_cells(cloud)
    for h in cloud.hosts:
        u = cloud.usage(h.name)
        ram = f"{_n(h.ram_free_mib)}/{_n(h.ram_total_mib)}" if h.ram_total_mib else "?"
        vcpu = f"{u.vcpus}/{_n(u.vcpu_capacity)}"
        alloc = f"{u.ram_mib}/{_n(u.ram_capacity_mib)}"
        physnets = ",".join(h.physnets) or "-"
        rows.append(Row(f"host:{h.name}", (h.name, h.state, h.arch or "?", _n(h.cores), ram,
                                            f"{u.running}/{u.vms}", vcpu, alloc,
                                            *mw.host_cells(cloud, h), chassis.get(h.name, "-"),
                                            physnets)))
    return rows


def _bound_ports(sb, chassis: str) -> list:
    """The VM port bindings (type "") the SB places on ``chassis``."""
    return [b for b in sb.bindings if b.chassis == chassis and not b.type]


def _chassis_cells(cloud: Cloud) -> dict[str, str]:
    """{host: "CHASSIS ENCAP-IP (N)"} from the southbound (N: VM ports bound there); empty when
    the SB was not read."""
    sb = cloud.sb
    if sb is None:
        return {}
    return {c.host: f"{c.name} {c.encap_ip or '?'} ({len(_bound_ports(sb, c.name))})"
            for c in sb.chassis if c.host}


class RowMemo:
    """Rows already built, by the identity of the model object they show (the live model
    keeps unchanged Vm objects), so a change to one VM among thousands rebuilds one row."""

    def __init__(self) -> None:
        self.guard: tuple = ()
        self.rows: dict[int, tuple[object, Row, object]] = {}   # id → (vm, row, its figures)


def vm_rows(cloud: Cloud, memo: RowMemo | None = None) -> list[Row]:
    """One row per domain, by host then name: state, vCPUs, RAM MiB, tenant, network, IPs."""
    if memo is not None and not (memo.guard and memo.guard[0] is cloud.ports
                                 and memo.guard[1] is cloud.networks):
        memo.guard, memo.rows = (cloud.ports, cloud.networks), {}
    old = memo.rows if memo is not None else {}
    new: dict[int, tuple[object, Row, object]] = {}
    figs = mw.vm_figure_map(cloud)
    port_switch: dict[str, str] | None = None
    net_names: dict[str, str] = {}
    rows = []
    for v in cloud.vms:
        hit = old.get(id(v))
        # same object until a poll brings new figures (one dict lookup: 3,000 rows per publish)
        fig = figs.get(v.uuid) if figs and v.uuid in figs and v.active else None
        if hit is not None and hit[0] is v and hit[2] is fig:
            row = hit[1]
        else:
            if port_switch is None:
                port_switch = {p.name: p.switch for p in cloud.ports}
                net_names = {n.name: n.display_name for n in cloud.networks}
            switches = [port_switch[n.interfaceid] for n in v.nics if n.interfaceid in port_switch]
            nets = [net_names.get(s, s) for s in switches] or list(v.networks)
            cpu = "" if v.cpu_percent is None else f"{v.cpu_percent:.0f}"
            row = Row(f"vm:{v.host}:{v.uuid}", (
                v.name, v.host, v.state, str(v.vcpus), str(v.memory_mib), v.tenant or "-",
                ",".join(nets) or "-", ",".join(v.ips) or "", cpu, *mw.vm_cells(fig), v.arch or "?"))
        new[id(v)] = (v, row, fig)
        rows.append(row)
    if memo is not None:
        memo.rows = new
    return rows


def network_rows(cloud: Cloud) -> list[Row]:
    """Logical switches (type, subnet, DHCP, ports, attached routers), then routers."""
    attached: dict[str, list[str]] = {}
    for r in cloud.routers:
        for p in r.ports:
            if p.peer_switch:
                attached.setdefault(p.peer_switch, []).append(r.display_name)
    rows = []
    for n in cloud.networks:
        rows.append(Row(f"net:{n.uuid}", (
            n.display_name, n.tenant or "-", n.kind_label, n.subnet or "-",
            "yes" if n.dhcp else "no", str(len(n.ports)), ",".join(attached.get(n.name, [])) or "-"),
            search=f"{n.name} {n.display_name} {n.tenant or ''} {n.kind_label} {n.subnet or ''}"))
    for r in cloud.routers:
        nets = ",".join(x for p in r.ports for x in p.networks)
        snat = [x.external_ip for x in r.nats if x.type == "snat"]
        rows.append(Row(f"router:{r.uuid}", (
            r.display_name, r.tenant or "-", "router", nets or "-",
            "-", str(len(r.ports)), ("SNAT " + ",".join(snat)) if snat else "-"),
            search=f"{r.name} {r.display_name} {r.tenant or ''} router {nets}"))
    return rows


def _of(used: int, quota: int | None) -> str:
    return f"{used}/{quota}" if quota is not None else str(used)


def tenant_rows(cloud: Cloud) -> list[Row]:
    """Every tenant seen anywhere, with counts and usage against its quota (``used/max``;
    vCPUs and RAM count active domains)."""
    return [Row(f"tenant:{t.name}", (
        t.name, _of(t.vms, t.max_vms), str(t.running), _of(t.vcpus, t.max_vcpus),
        _of(t.ram_mib, t.max_ram_mib), str(t.networks), str(t.routers), str(t.ports),
        ",".join(t.sources))) for t in cloud.tenants]


ROWS = {"hosts": host_rows, "vms": vm_rows, "networks": network_rows, "tenants": tenant_rows}

#: The Cloud fields each panel's rows (and details) are built from.
INPUTS = {"hosts": ("hosts", "vms", "metrics"), "vms": ("vms", "ports", "networks", "vm_metrics"),
          "networks": ("networks", "routers", "ports"), "tenants": ("tenants", "vms", "networks")}


# ---------------------------------------------------------------------------------------------
# Details


def _kv(lines: list[str], key: str, value) -> None:
    lines.append(f"[b]{escape(key)}[/b]: {escape(str(value))}")


def host_details(cloud: Cloud, h: Host) -> Text:
    """Facts, connection state and allocation of one hypervisor."""
    u = cloud.usage(h.name)
    lines = [f"[b]{escape(h.name)}[/b] ({escape(h.address)})  [{state_style(h.state)}]{h.state}[/]"]
    if h.error:
        lines.append(f"[red]{escape(h.error)}[/red]")
    if h.host_key:
        lines.append(f"host key: {escape(h.host_key)}")
    _kv(lines, "hostname / arch", f"{h.hostname or '?'} / {h.arch or '?'}")
    _kv(lines, "cores / RAM total / free", f"{_n(h.cores)} / {_n(h.ram_total_mib)} MiB / {_n(h.ram_free_mib)} MiB")
    _kv(lines, "allocated vCPU", f"{u.vcpus} of {_n(u.vcpu_capacity)} (cores × {cloud.cpu_ratio:g})")
    _kv(lines, "allocated RAM", f"{u.ram_mib} of {_n(u.ram_capacity_mib)} MiB (× {cloud.ram_ratio:g})")
    _kv(lines, "domains", f"{u.running} running of {u.vms}")
    _kv(lines, "libvirt / types", f"{h.libvirt_version or '?'} / {','.join(h.domain_types) or '?'}")
    _kv(lines, "bridge mappings", ", ".join(f"{p}:{b}" for p, b in h.bridge_mappings) or "none")
    c = cloud.sb.chassis_of_host(h.name) if cloud.sb is not None else None
    if c is not None:
        _kv(lines, "OVN chassis", f"{c.name} (hostname {c.hostname or '?'}), encap "
                                  + (", ".join(f"{t} {ip}" for t, ip in c.encaps) or "none"))
        vm_of = {p.name: p.vm or p.display_name for p in cloud.ports}
        bound = [vm_of.get(b.logical_port, b.logical_port) for b in _bound_ports(cloud.sb, c.name)]
        _kv(lines, "bound ports", f"{len(bound)}" + (f": {', '.join(sorted(bound))}" if bound else ""))
    elif cloud.sb is not None:
        _kv(lines, "OVN chassis", "none in the southbound claims this host")
    for label, value in mw.host_detail_lines(cloud, h):
        _kv(lines, label, value)
    return Text.from_markup("\n".join(lines))


def vm_details(cloud: Cloud, v: Vm) -> Text:
    """A domain's XML facts, its OVN ports and their switches."""
    lines = [f"[b]{escape(v.name)}[/b] on {escape(v.host)}  [{state_style(v.state)}]{v.state}[/]"]
    _kv(lines, "uuid", v.uuid)
    _kv(lines, "type / arch", f"{v.domain_type or '?'} / {v.arch or '?'}")
    _kv(lines, "vCPUs / RAM", f"{v.vcpus} / {v.memory_mib} MiB (max {v.max_memory_mib} MiB)")
    if v.cpu_percent is not None or v.rss_mib is not None:
        _kv(lines, "CPU / RSS", f"{'-' if v.cpu_percent is None else v.cpu_percent}% / "
                                f"{'-' if v.rss_mib is None else v.rss_mib} MiB")
    for label, value in mw.vm_detail_lines(cloud, v):
        _kv(lines, label, value)
    _kv(lines, "persistent / autostart", f"{'yes' if v.persistent else 'no'} / "
                                         f"{'yes' if v.autostart else 'no'}")
    _kv(lines, "tenant / template / seed", f"{v.tenant or '-'} / {v.template or '-'} / {v.seed or '-'}")
    for d in v.disks:
        _kv(lines, f"disk {d.target}", f"{d.device} {d.source or '-'} ({d.format or '?'})")
    for nic in v.nics:
        _kv(lines, f"nic {nic.mac}", f"{nic.type} {nic.source or '-'} port {nic.interfaceid or '-'}")
    ports = cloud.ports_of_vm(v)
    for p in ports:
        net = cloud.network(p.switch)
        ips = ",".join(p.ips) or "no IP"
        up = {True: "up", False: "down", None: "?"}[p.up]
        where = f"{net.display_name} ({net.kind_label}, {net.subnet or 'no subnet'})" if net else p.switch
        _kv(lines, "port", f"{p.display_name} {ips} {up} on {where}")
        b = cloud.sb.binding(p.name) if cloud.sb is not None else None
        if cloud.sb is not None:
            on = cloud.sb.host_of_chassis(b.chassis) if b and b.chassis else None
            _kv(lines, "  bound", "not bound" if not b or not b.chassis else
                f"on chassis {b.chassis} ({'its host' if on == v.host else (on or 'no inventory host') + ', not ' + v.host})")
    if not ports and v.networks:
        _kv(lines, "networks (metadata)", ", ".join(v.networks))
    return Text.from_markup("\n".join(lines))


def network_details(cloud: Cloud, n: Network) -> Text:
    """A switch: type, subnet, DHCP options, ports and routers."""
    lines = [f"[b]{escape(n.display_name)}[/b] ({escape(n.name)})  {escape(n.kind_label)}"]
    _kv(lines, "tenant", n.tenant or "-")
    _kv(lines, "subnet", n.subnet or "-")
    if n.physnet:
        _kv(lines, "physnet", n.physnet)
    if n.dhcp:
        opts = ", ".join(f"{k}={v}" for k, v in sorted(n.dhcp.options.items()))
        _kv(lines, "DHCP", f"{n.dhcp.cidr}: {opts}")
    for p in cloud.ports_of(n.name):
        kind = p.type or "vm"
        _kv(lines, f"port ({kind})", f"{p.display_name} {','.join(p.ips) or ''} "
                                     f"{'vm ' + p.vm if p.vm else ''}".strip())
    return Text.from_markup("\n".join(lines))


def router_details(cloud: Cloud, r: Router) -> Text:
    lines = [f"[b]{escape(r.display_name)}[/b] ({escape(r.name)})  router"]
    _kv(lines, "tenant", r.tenant or "-")
    for p in r.ports:
        gw = f" gateway {','.join(p.gateway_chassis)}" if p.gateway_chassis else ""
        _kv(lines, f"port {p.name}", f"{','.join(p.networks)} {p.mac} → {p.peer_switch or '-'}{gw}")
        if p.gateway_chassis and cloud.sb is not None:
            active = next((g.active for g in cloud.sb.gateways if g.port == p.name), None)
            _kv(lines, "  active gateway", f"{active} (southbound)" if active else "none bound (southbound)")
    for x in r.nats:
        port = x.port
        vm = next((p.vm for p in cloud.ports if p.name == port), None) if port else None
        what = "floating IP" if x.type == "dnat_and_snat" else f"NAT {x.type}"
        _kv(lines, what, f"{x.external_ip} ↔ {x.logical_ip}" + (f" (VM {vm})" if vm else ""))
    return Text.from_markup("\n".join(lines))


def tenant_details(cloud: Cloud, name: str) -> Text:
    t = next((t for t in cloud.tenants if t.name == name), None)
    if t is None:
        return Text("")
    lines = [f"[b]{escape(t.name)}[/b]  seen in {escape(', '.join(t.sources))}"]
    _kv(lines, "VMs", f"{t.running} running of {_of(t.vms, t.max_vms)}")
    _kv(lines, "vCPUs / RAM", f"{_of(t.vcpus, t.max_vcpus)} / {_of(t.ram_mib, t.max_ram_mib)} MiB")
    vms = [v.name for v in cloud.vms if v.tenant == name]
    if vms:
        _kv(lines, "domains", ", ".join(vms[:20]) + (" …" if len(vms) > 20 else ""))
    nets = [n.display_name for n in cloud.networks if n.tenant == name]
    if nets:
        _kv(lines, "networks", ", ".join(nets))
    return Text.from_markup("\n".join(lines))


def details(cloud: Cloud, key: str | None) -> Text:
    """The detail text for the row ``key`` (see module doc for key shapes)."""
    if not key:
        return Text("")
    kind, _, rest = key.partition(":")
    if kind == "host":
        h = cloud.host(rest)
        return host_details(cloud, h) if h else Text("")
    if kind == "vm":
        host, _, uuid = rest.partition(":")
        v = next((v for v in cloud.vms if v.host == host and v.uuid == uuid), None)
        return vm_details(cloud, v) if v else Text("")
    if kind == "net":
        n = next((n for n in cloud.networks if n.uuid == rest), None)
        return network_details(cloud, n) if n else Text("")
    if kind == "router":
        r = next((r for r in cloud.routers if r.uuid == rest), None)
        return router_details(cloud, r) if r else Text("")
    if kind == "tenant":
        return tenant_details(cloud, rest)
    return Text("")


def nb_banner(cloud: Cloud) -> str | None:
    """One line of markup for the Networks panel while the NB is not up (None when it is)."""
    nb = cloud.nb
    if nb.state == "up" or not nb.remote:
        return None
    since = time.strftime("%H:%M:%S", time.gmtime(nb.since)) if nb.since else "?"
    what = ("stale: showing the last known networks" if nb.state == "stale"
            else "not connected yet")
    err = f" — {escape(nb.error)}" if nb.error else ""
    return f"[b]OVN northbound {what}[/b] (since {since} UTC){err}"


_running: list = [None, 0]   # [the vms tuple counted, its active count]


def _split_member(member: str) -> tuple[str, str, str]:
    """"ssl:192.168.100.20:6641" -> ("ssl", "192.168.100.20", "6641"); ("", member, "") for
    anything else."""
    if not member.startswith(("tcp:", "ssl:")):
        return "", member, ""
    host, _, port = member[4:].rpartition(":")
    return member[:3], host or port, port if host else ""


def _distinct(member: str, members) -> str:
    """What tells ``member`` apart from the other ``members`` of its list: its address when the
    scheme and port are the same for all ("192.168.100.20"), its port when the address is
    (":41234", members on one machine), both otherwise; ``member`` itself outside a list."""
    parts = [_split_member(m) for m in members]
    if len(parts) < 2 or member not in members:
        return member
    scheme, host, port = _split_member(member)
    same = [len({p[i] for p in parts}) == 1 for i in range(3)]
    out = ("" if same[0] else scheme + ":") + ("" if same[1] else host)
    return out + ("" if same[2] else ":" + port) or host


def _after_shared(addr: str, other: str) -> str:
    """``addr`` without the dotted fields it shares with ``other``: "192.168.100.10" next to
    "192.168.100.20" -> ".10"; unchanged when nothing is shared or either is no dotted address."""
    a, b = addr.split("."), other.split(".")
    if len(a) < 2 or len(b) < 2:
        return addr
    n = 0
    while n < min(len(a), len(b)) - 1 and a[n] == b[n]:
        n += 1
    return "." + ".".join(a[n:]) if n else addr


def status_line(cloud: Cloud, width: int | None = None) -> str:
    """One line of Rich markup: hosts up, VMs, NB state, and the raft members the console reads
    from when the NB / SB connections are member lists (``via MEMBER``; they move on
    failover). ``width``: cells the line may take (None: no limit); a wider line shows the
    members shorter, step by step: by what tells each apart in its list (the address, without
    the scheme and port all share), then the SB's address as what differs from the NB's (".10"
    next to 192.168.100.20), then without "via", and last not at all (what follows the line,
    e.g. the filter, matters more)."""
    up = sum(1 for h in cloud.hosts if h.up)
    bad = [h.name for h in cloud.hosts if h.state in ("unreachable", "refused", "host-key")]
    if _running[0] is not cloud.vms:     # counted once per VM list, not once per redraw
        _running[:] = [cloud.vms, sum(1 for v in cloud.vms if v.active)]
    running = _running[1]
    nb = cloud.nb.state
    nb_style = {"up": "green", "stale": "bold red", "connecting": "yellow"}.get(nb, "")
    parts = [f"hosts [b]{up}/{len(cloud.hosts)}[/b] up"]
    if bad:
        parts.append(f"[bold red]{escape(','.join(bad))} down[/]")
    parts.append(f"VMs [b]{running}/{len(cloud.vms)}[/b] running")
    # which raft member the console reads from; a forwarded socket's path is a random
    # temporary name, not worth a column
    nb_member = cloud.nb.member if nb == "up" and cloud.nb.member_list else None
    sb_member = cloud.sb_member
    stale = " (stale data)" if nb == "stale" else ""
    line = ""
    for step in range(5):
        nbm, sbm = (nb_member, sb_member) if step < 4 else (None, None)
        if step >= 1:
            nbm = nbm and _distinct(nbm, [m.strip() for m in cloud.nb.remote.split(",")])
            sbm = sbm and _distinct(sbm, getattr(cloud.sb, "members", ()))
        if step >= 2 and nbm and sbm:
            sbm = _after_shared(sbm, nbm)
        via = "" if step >= 3 else "via "
        tail = [f"NB [{nb_style}]{nb}[/]" + (f" {via}{escape(nbm)}" if nbm else "") + stale]
        if sbm:
            tail.append(f"SB {via}{escape(sbm)}")
        line = " · ".join(parts + tail)
        if width is None or not (nb_member or sb_member) or Text.from_markup(line).cell_len <= width:
            break
    return line
