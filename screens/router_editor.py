"""The router screen: one tenant's logical router — create, attach/detach networks, gateway on a
provider network, SNAT per network, floating IPs for VM ports, delete. Keyboard only, fits 80x24.

Push it from anywhere (the Networks panel binds ``o``)::

    app.push_screen(RouterEditor())                                   # session/chassis from the app
    app.push_screen(RouterEditor(session, tenant="demo", router="r1", chassis=["hv1", "hv2"]))

Keys: ``tab``/``shift+tab`` between fields; ``ctrl+n`` creates the router named in *Router*;
in the networks list ``enter`` attaches / detaches the highlighted network and ``n`` turns its
SNAT on / off; *Set* / *Clear* (``ctrl+g`` / ``ctrl+k``) the gateway; *Add* (``ctrl+f``) a
floating IP, ``delete``/``x`` in the floating-IP list removes one; ``ctrl+d`` deletes the router
(after a confirmation); ``escape`` closes (dismisses with the router's last
:class:`backends.ovn.routers.RouterInfo`, or None).

Every action is one call of :mod:`console.services.router` (the CLI's verbs: one audited OVN
transaction each) in a thread worker; the screen then re-reads the tenant's routers, networks
and VM ports (same service module) and redraws. Refusals show in the status line naming the
field (``address: …``) and mark that field. The main screen's Networks panel follows by itself
through the live model (OVSDB row events). Facts: ``session`` defaults to ``app.session``;
``chassis`` (gateway chassis = OVN system-id, in the lab the host name) defaults to the
inventory's enabled hypervisors (``session.inventory``), else the hosts in ``app.cloud``.
This module imports no ovsdbapp, libvirt or asyncssh.

Why one module of ~420 lines: it is one screen whose handlers (one per action above, each one
service call in a worker, then one re-read and redraw) share the screen's state — the tenant's
routers, networks and VM ports, the last router seen, the running verb's field map; split apart
they would pass that state back and forth. The shared form behaviour lives in screens/form.py.
"""

from __future__ import annotations

from typing import Sequence

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from ..console.errors import ValidationError
from ..console.services import router as rsvc
from .form import FormScreen, ServiceDone, ServiceFailed

#: service error field -> the widget that holds it
FIELD_WIDGETS = {"tenant": "tenant", "name": "router", "router": "router", "network": "nets",
                 "address": "gw-address", "chassis": "gw-chassis", "nexthop": "gw-address",
                 "external_ip": "fip-ip", "port": "fip-port", "ip": "fip-port"}

WIDGETS = ("tenant", "router", "nets", "gw-network", "gw-address", "gw-chassis", "fip-ip", "fip-port", "fips")


class NetList(OptionList):
    """The tenant's networks; enter attaches/detaches, n toggles SNAT."""

    BINDINGS = [Binding("n", "screen.toggle_snat", "SNAT on/off")]


class FipList(OptionList):
    """The router's floating IPs; delete / x removes the highlighted one."""

    BINDINGS = [Binding("delete,x", "screen.remove_fip", "Remove FIP")]


class RouterEditor(FormScreen):
    """Edit one tenant's router (see module doc for keys)."""

    CSS_PATH = "router_editor.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Close"),
        Binding("ctrl+n", "create", "Create router"),
        Binding("ctrl+g", "set_gateway", "Set gateway"),
        Binding("ctrl+k", "clear_gateway", "Clear gateway"),
        Binding("ctrl+f", "add_fip", "Add floating IP"),
        Binding("ctrl+d", "delete", "Delete router"),
    ]

    class TenantRead(ServiceDone):
        """``result`` is ``(tenant, routers, networks, VM ports)`` as :func:`read_tenant` gives."""

    class VerbDone(ServiceDone):
        """A router verb returned; ``result`` is its RouterInfo (or None), ``label`` the doing."""

    class VerbFailed(ServiceFailed):
        """A router verb refused or failed; ``field`` is the service's field name."""

    def __init__(self, session=None, *, tenant: str | None = None, router: str | None = None,
                 chassis: Sequence[str] | None = None):
        super().__init__(session)
        self.tenant0, self.router0 = tenant or "", router or ""
        self.chassis = list(chassis) if chassis is not None else None
        self.routers: list = []          # RouterInfo of the tenant
        self.networks: list = []         # NetworkInfo of the tenant
        self.ports: list = []            # rsvc.VmPort of the tenant
        self.loaded_tenant: str | None = None
        self.last = None                 # last RouterInfo seen (dismiss value)
        self._reload_timer = None
        self._fields: dict[str, str] = {}  # the running verb's service field -> widget id

    # ------------------------------------------------------------------ facts
    def _chassis_names(self) -> list[str]:
        if self.chassis is not None:
            return self.chassis
        inv = getattr(self.session, "inventory", None)
        if inv is not None:
            return [h.name for h in inv.hypervisors if h.enabled]
        cloud = getattr(self.app, "cloud", None)
        return [h.name for h in getattr(cloud, "hosts", ()) or ()]

    @property
    def tenant(self) -> str:
        return self.query_one("#tenant", Input).value.strip()

    @property
    def router_name(self) -> str:
        return self.query_one("#router", Input).value.strip()

    def current(self):
        """The RouterInfo named in the Router field, or None if the tenant has none by that name."""
        name = self.router_name
        return next((r for r in self.routers if r.name == name), None)

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        chassis = self._chassis_names()
        with Vertical(id="rtedit", classes="dialog"):
            yield Static("[b]Router[/b]  tab moves · enter acts · esc closes", classes="dialog-title")
            with Horizontal(classes="rt-row"):
                yield Label("Tenant", classes="rt-label")
                yield Input(self.tenant0, id="tenant", placeholder="tenant", compact=True)
                yield Label("Router", classes="rt-label")
                yield Input(self.router0, id="router", placeholder="r1", compact=True)
                yield Button("Create ^n", id="create", compact=True)
            yield Static("", id="summary")
            yield Label("Networks  [dim]enter attach/detach · n SNAT on/off[/dim]", classes="rt-head")
            yield NetList(id="nets", compact=True)
            with Horizontal(classes="rt-row"):
                yield Label("Gateway", classes="rt-label")
                yield Select([], prompt="provider net", id="gw-network", compact=True)
                yield Input(id="gw-address", placeholder="address", compact=True)
                yield Select([(c, c) for c in chassis], prompt="chassis", id="gw-chassis", compact=True,
                             value=chassis[0] if len(chassis) == 1 else Select.NULL)
                yield Button("Set ^g", id="gw-set", compact=True)
                yield Button("Clear ^k", id="gw-clear", compact=True)
            yield Label("Floating IPs  [dim]del/x removes[/dim]", classes="rt-head")
            yield FipList(id="fips", compact=True)
            with Horizontal(classes="rt-row"):
                yield Label("FIP", classes="rt-label")
                yield Input(id="fip-ip", placeholder="external IP", compact=True)
                yield Select([], prompt="VM port", id="fip-port", compact=True)
                yield Button("Add ^f", id="fip-add", compact=True)
            yield Static("", id="status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Delete router ^d", id="delete", variant="error", compact=True)
                yield Button("Close (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        (self.query_one("#router", Input) if self.tenant0 else self.query_one("#tenant", Input)).focus()
        self._render_router()
        if self.tenant0:
            self.reload()

    # ------------------------------------------------------------------ loading
    def reload(self) -> None:
        """Re-read the tenant's routers, networks and VM ports in a worker, then redraw."""
        tenant, session = self.tenant, self.session
        if not tenant:
            return
        if session is None:
            self._set_status("not connected to OVN northbound", True)
            return
        self.run_read(lambda: read_tenant(session, tenant), done=self.TenantRead,
                      label=f"cannot read tenant {tenant}")

    @on(TenantRead)
    def _loaded(self, event: TenantRead) -> None:
        tenant, routers, networks, ports = event.result
        if tenant != self.tenant:
            return
        self.routers, self.networks, self.ports = list(routers), list(networks), list(ports)
        self.loaded_tenant = tenant
        router = self.query_one("#router", Input)
        router.suggester = SuggestFromList([r.name for r in self.routers]) if self.routers else None
        if not router.value and len(self.routers) == 1:
            router.value = self.routers[0].name
        gw = self.query_one("#gw-network", Select)
        provider = [(f"{n.name} {n.cidr}", n.name) for n in self.networks if n.kind == "provider"]
        keep = gw.value
        gw.set_options(provider)
        if keep in [v for _, v in provider]:
            gw.value = keep
        elif len(provider) == 1:
            gw.value = provider[0][1]
        fport = self.query_one("#fip-port", Select)
        keep = fport.value
        opts = [(f"{p.vm or p.lsp[:8]} {p.ip or 'no IP'} ({p.network})", p.lsp) for p in self.ports]
        fport.set_options(opts)
        if keep in [v for _, v in opts]:
            fport.value = keep
        self._render_router()

    @on(Input.Changed, "#tenant")
    def _tenant_changed(self) -> None:
        if self._reload_timer is not None:
            self._reload_timer.stop()
        self.routers, self.networks, self.ports = [], [], []
        self._reload_timer = self.set_timer(0.3, self.reload)

    @on(Input.Changed, "#router")
    def _router_changed(self) -> None:
        self._render_router()

    # ------------------------------------------------------------------ drawing
    def _render_router(self) -> None:
        r = self.current()
        self.last = r or self.last
        summary = self.query_one("#summary", Static)
        if not self.tenant or not self.router_name:
            summary.update("type a tenant and a router name")
        elif self.loaded_tenant != self.tenant:
            summary.update("reading the tenant …")
        elif r is None:
            summary.update(f"no router [b]{escape(self.router_name)}[/b] in {escape(self.tenant)} yet: "
                           "create it (ctrl+n)")
        else:
            gw = (f"gateway {escape(r.gateway_address or '')} on {escape(r.gateway_network)} "
                  f"chassis {escape(r.gateway_chassis or '-')}") if r.gateway_network else "no gateway"
            summary.update(f"[b]{escape(r.tenant)}/{escape(r.name)}[/b]: {gw} · "
                           f"{len(r.networks)} network(s) · {sum(1 for n in r.nat if n.kind == 'fip')} FIP(s)")
        self.query_one("#create", Button).disabled = r is not None
        nets = self.query_one("#nets", NetList)
        high = nets.highlighted
        snat = {n.logical_ip for n in r.nat if n.kind == "snat"} if r else set()
        options = []
        for n in self.networks:
            if r is not None and n.name == r.gateway_network:
                mark = "[b]gw[/b]"
            else:
                mark = "[green]●[/green]" if r is not None and n.name in r.networks else "○"
            other = [x for x in n.routers if r is None or x != r.name]
            note = f"  on {', '.join(other)}" if other else ""
            text = (f"{mark} {escape(n.name):<14} {n.cidr:<18} {n.kind:<8} "
                    f"{'SNAT' if n.cidr in snat else '':<4}{escape(note)}")
            options.append(Option(text, id=n.name))
        nets.set_options(options)
        if options:
            nets.highlighted = min(high or 0, len(options) - 1)
        fips = self.query_one("#fips", FipList)
        high = fips.highlighted
        by_lsp = {p.lsp: p for p in self.ports}
        foptions = []
        for n in (r.nat if r else ()):
            if n.kind != "fip":
                continue
            p = by_lsp.get(n.port or "")
            who = (p.vm or p.lsp[:8]) if p else (n.port[:8] if n.port else "address")
            foptions.append(Option(f"{n.external_ip:<15} → {n.logical_ip:<15} {escape(who)}", id=n.external_ip))
        fips.set_options(foptions)
        if foptions:
            fips.highlighted = min(high or 0, len(foptions) - 1)

    def _mark(self, field: str | None) -> None:
        for w in self.query(".invalid"):
            w.remove_class("invalid")
        wid = FIELD_WIDGETS.get(field or "", field if field in WIDGETS else None)
        if wid:
            w = self.query_one(f"#{wid}")
            w.add_class("invalid")
            if wid != "router" or field != "router":   # "router has no gateway": stay where you are
                w.focus()

    # ------------------------------------------------------------------ running a verb
    def _run(self, doing: str, fn, fields: dict[str, str] | None = None) -> None:
        """Run ``fn(session)`` (a service call) in a thread worker with status/progress; on
        success re-read and redraw, on failure show the one-line reason and mark its field."""
        if self.busy:
            return
        session = self.session
        if session is None:
            self._set_status("not connected to OVN northbound: nothing can change", True)
            return
        self.busy = True
        self._fields = fields or {}
        self._mark(None)
        self._set_status(f"{doing} …")
        self.run_service(lambda: fn(session), done=self.VerbDone, failed=self.VerbFailed, label=doing)

    @on(VerbFailed)
    def _verb_failed(self, event: VerbFailed) -> None:
        self._failed(event.message, self._fields.get(event.field or "", event.field))

    def _failed(self, message: str, field: str | None, reason: str | None = None) -> None:
        """Say ``message`` in the status line and mark (and focus) ``field``'s widget."""
        self.busy = False
        self._set_status(message, True)
        self._mark(field)

    @on(VerbDone)
    def _done(self, event: VerbDone) -> None:
        doing, result = event.label, event.result
        self.busy = False
        self.last = result
        self._set_status(f"{doing}: done")
        self.app.notify(f"{doing}: done", timeout=3)
        self.reload()

    def _need_router(self):
        """The current router, or None after saying why (in the status line, field router)."""
        if self.busy:
            return None
        r = self.current()
        if r is None:
            self._failed(str(ValidationError("router", f"no router {self.router_name!r} in tenant "
                                                        f"{self.tenant!r}; create it first (ctrl+n)")),
                         "router", None)
        return r

    # ------------------------------------------------------------------ actions
    @on(Button.Pressed, "#create")
    def action_create(self) -> None:
        tenant, name = self.tenant, self.router_name
        self._run(f"creating router {tenant}/{name}", lambda s: rsvc.create_router(s, tenant, name))

    @on(OptionList.OptionSelected, "#nets")
    def _net_selected(self, event: OptionList.OptionSelected) -> None:
        r = self._need_router()
        if r is None:
            return
        net, tenant = event.option.id, r.tenant
        if net in r.networks:
            self._run(f"detaching {net}", lambda s: rsvc.detach_network(s, tenant, r.name, net))
        else:
            self._run(f"attaching {net}", lambda s: rsvc.attach_network(s, tenant, r.name, net))

    def action_toggle_snat(self) -> None:
        r = self._need_router()
        nets = self.query_one("#nets", NetList)
        if r is None or nets.highlighted is None:
            return
        net = nets.get_option_at_index(nets.highlighted).id
        info = next(n for n in self.networks if n.name == net)
        if any(n.kind == "snat" and n.logical_ip == info.cidr for n in r.nat):
            self._run(f"SNAT off for {net}", lambda s: rsvc.del_snat(s, r.tenant, r.name, net))
        else:
            self._run(f"SNAT on for {net}", lambda s: rsvc.add_snat(s, r.tenant, r.name, net))

    @on(Button.Pressed, "#gw-set")
    def action_set_gateway(self) -> None:
        r = self._need_router()
        if r is None:
            return
        net = self.query_one("#gw-network", Select).value
        chassis = self.query_one("#gw-chassis", Select).value
        address = self.query_one("#gw-address", Input).value.strip()
        if net is Select.NULL:
            return self._failed("network: choose the provider network of the gateway", "gw-network", None)
        if chassis is Select.NULL:
            return self._failed("chassis: choose the gateway chassis", "chassis", None)
        self._run(f"gateway {address} on {net}",
                  lambda s: rsvc.set_gateway(s, r.tenant, r.name, net, address, chassis),
                  fields={"network": "gw-network"})

    @on(Button.Pressed, "#gw-clear")
    def action_clear_gateway(self) -> None:
        r = self._need_router()
        if r is not None:
            self._run("clearing the gateway", lambda s: rsvc.clear_gateway(s, r.tenant, r.name))

    @on(Button.Pressed, "#fip-add")
    def action_add_fip(self) -> None:
        r = self._need_router()
        if r is None:
            return
        ip = self.query_one("#fip-ip", Input).value.strip()
        port = self.query_one("#fip-port", Select).value
        if port is Select.NULL:
            return self._failed("port: choose the VM port the floating IP leads to", "port", None)
        self._run(f"floating IP {ip}", lambda s: rsvc.add_fip(s, r.tenant, r.name, ip, port=port))

    def action_remove_fip(self) -> None:
        r = self._need_router()
        fips = self.query_one("#fips", FipList)
        if r is None or fips.highlighted is None:
            return
        ip = fips.get_option_at_index(fips.highlighted).id
        self._run(f"removing floating IP {ip}", lambda s: rsvc.del_fip(s, r.tenant, r.name, ip))

    @on(Button.Pressed, "#delete")
    def action_delete(self) -> None:
        r = self._need_router()
        if r is None:
            return
        from .vm_actions import ConfirmDialog
        targets = [f"router {r.tenant}/{r.name}"]
        targets += [f"  port on {n}" for n in r.networks]
        if r.gateway_network:
            targets.append(f"  gateway {r.gateway_address} on {r.gateway_network}")
        targets += [f"  NAT {n.kind} {n.external_ip} ↔ {n.logical_ip}" for n in r.nat]

        def answer(yes: bool | None) -> None:
            if yes:
                self._run(f"deleting router {r.tenant}/{r.name}",
                          lambda s: rsvc.delete_router(s, r.tenant, r.name))
        self.app.push_screen(ConfirmDialog(f"Delete router {r.tenant}/{r.name}?", targets,
                                           "The networks stay; their router ports and NAT go.",
                                           danger=True), answer)

    def cancel_result(self):
        return self.last


def read_tenant(session, tenant: str) -> tuple[str, list, list, list]:
    """``(tenant, routers, networks, VM ports)`` of ``tenant`` for the screen: RouterInfo,
    NetworkInfo and rsvc.VmPort lists read from OVN NB through the router and network services
    (blocking; run it in a worker). Raises VirtdeckError when NB cannot be read."""
    from ..console.services import network as netsvc
    return (tenant, rsvc.list_routers(session, tenant), netsvc.list_networks(session, tenant),
            rsvc.list_vm_ports(session, tenant))
