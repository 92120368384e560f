"""The network wizard: one form for an overlay or provider network, checked as you type.

Push it from anywhere (the Networks panel binds ``c``)::

    app.push_screen(NetworkWizard(), callback)            # session/tenants/physnets from the app
    app.push_screen(NetworkWizard(session, tenants=["demo"], physnets={"physnet1": ("hv1",)}))

It dismisses with the created :class:`backends.ovn.networks.NetworkInfo`, or None on cancel.

Edit mode (the Networks panel binds ``e``): ``NetworkWizard(edit=("demo", "web"))`` reads the
network, fills the form, makes the fields that cannot change (name, tenant, kind, physnet, VLAN,
CIDR, gateway) read-only and saves with ``console.services.network.edit_network`` (one OVN
transaction; DHCP, lease, DNS, MTU, exclusions). It dismisses with the edited NetworkInfo.

Where its facts come from: ``session`` (default ``app.session``) is what the service writes
through; tenants default to ``app.cloud.tenants``; physnets default to the hosts' bridge
mappings in ``app.cloud`` (read from each host's OVS by the live model), and when none are known
the service reads them over SSH at submit time; existing networks (for the overlap / VLAN /
name checks) are read once through ``console.services.network.list_networks`` in a worker.
Every check is ``console.services.network.check_fields`` — the same rules the CLI meets —
and the write is ``create_network`` in a thread worker (blocking OVN calls never run on the UI
loop). This module imports no ovsdbapp, libvirt or asyncssh.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from .form import FormScreen, ServiceDone, ServiceFailed
from ..console.services import network as netsvc

FIELDS = ("name", "tenant", "kind", "physnet", "vlan", "cidr", "gateway", "dhcp", "lease_time",
          "dns", "mtu", "exclude")
LABELS = {"name": "Name", "tenant": "Tenant", "kind": "Kind", "physnet": "Physnet", "vlan": "VLAN",
          "cidr": "CIDR", "gateway": "Gateway", "dhcp": "DHCP", "lease_time": "Lease (s)",
          "dns": "DNS", "mtu": "MTU", "exclude": "Exclude"}
PROVIDER_ONLY = ("physnet", "vlan")
#: read-only when editing (console.services.network.IMMUTABLE, plus the identity)
IMMUTABLE_FIELDS = ("name", "tenant", "kind", "physnet", "vlan", "cidr", "gateway")


class NetworkWizard(FormScreen):
    """Create a network. Keys: ctrl+s create, escape cancel, tab / shift+tab between fields."""

    CSS_PATH = "wizard_network.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "create", "Create"),
    ]

    class NetworksRead(ServiceDone):
        """``result`` is the list of NetworkInfo (every tenant's) from list_networks."""

    class Saved(ServiceDone):
        """``result`` is the created or edited NetworkInfo."""

    class SaveFailed(ServiceFailed):
        """create_network / edit_network refused or failed; ``field`` names the input."""

    def __init__(self, session=None, *, tenants: Sequence[str] | None = None,
                 physnets: Mapping[str, Sequence[str]] | None = None,
                 networks: Sequence | None = None, tenant: str | None = None,
                 edit: tuple[str, str] | None = None):
        super().__init__(session)
        self.edit = edit              # (tenant, name) of the network to edit, or None
        self.editing = None           # its NetworkInfo once read
        self.tenants = list(tenants) if tenants is not None else None
        self.physnets = dict(physnets) if physnets is not None else None
        self.networks = list(networks) if networks is not None else None
        self.default_tenant = tenant
        self.touched: set[str] = set()
        self.errors: dict[str, str] = {}

    # ------------------------------------------------------------------ facts
    def _facts_from_app(self) -> None:
        cloud = getattr(self.app, "cloud", None)
        if self.tenants is None:
            self.tenants = sorted({t.name for t in getattr(cloud, "tenants", ()) or ()})
        if self.physnets is None:
            found: dict[str, list[str]] = {}
            for h in getattr(cloud, "hosts", ()) or ():
                for physnet, _bridge in h.bridge_mappings:
                    found.setdefault(physnet, []).append(h.name)
            self.physnets = {k: tuple(v) for k, v in sorted(found.items())} or None

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        self._facts_from_app()
        tenants = self.tenants or []
        with Vertical(id="netwiz", classes="dialog"):
            title = f"Edit network {self.edit[0]}/{self.edit[1]}" if self.edit else "New network"
            yield Static(f"[b]{escape(title)}[/b]", classes="dialog-title")
            with VerticalScroll(id="form"):
                yield self._row("name", Input(id="name", placeholder="web", compact=True))
                yield self._row("tenant", Input(
                    id="tenant", value=self.default_tenant or (tenants[0] if len(tenants) == 1 else ""),
                    placeholder=", ".join(tenants[:3]) or "tenant", compact=True,
                    suggester=SuggestFromList(tenants) if tenants else None))
                yield self._row("kind", Select([("overlay (GENEVE)", "overlay"), ("provider (physnet)", "provider")],
                                               value="overlay", allow_blank=False, id="kind", compact=True))
                if self.physnets:
                    names = list(self.physnets)
                    physnet = Select([(f"{p} ({', '.join(self.physnets[p])})", p) for p in names],
                                     value=names[0], allow_blank=False, id="physnet", compact=True)
                else:
                    physnet = Input(id="physnet", placeholder="physnet1", compact=True)
                yield self._row("physnet", physnet)
                yield self._row("vlan", Input(id="vlan", placeholder="1-4094, empty = untagged", compact=True))
                yield self._row("cidr", Input(id="cidr", placeholder="10.0.0.0/24", compact=True))
                yield self._row("gateway", Input(id="gateway", placeholder="first address", compact=True))
                yield self._row("dhcp", Checkbox("OVN DHCP", value=True, id="dhcp", compact=True))
                yield self._row("lease_time", Input(id="lease_time", value="3600", compact=True))
                yield self._row("dns", Input(id="dns", placeholder="192.0.2.53, …", compact=True))
                yield self._row("mtu", Input(id="mtu", placeholder="1400", compact=True))
                yield self._row("exclude", Input(id="exclude", placeholder="10.0.0.2, 10.0.0.10..10.0.0.20",
                                                 compact=True))
            yield Static("", id="status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)" if self.edit else "Create (ctrl+s)", id="create",
                             variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def _row(self, field: str, widget) -> Horizontal:
        row = Horizontal(Label(LABELS[field], classes="field-label"), widget,
                         Static("", id=f"why-{field}", classes="field-why"),
                         id=f"row-{field}", classes="field-row")
        if field in PROVIDER_ONLY:
            row.add_class("provider-only")
        return row

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()
        self._apply_kind()
        self._revalidate()
        if self.edit:
            for field in IMMUTABLE_FIELDS:
                self.query_one(f"#{field}").disabled = True
            self.query_one("#create", Button).disabled = True
            self._set_status(f"reading {self.edit[0]}/{self.edit[1]} …")
            self.query_one("#dhcp").focus()
        if self.networks is None or self.edit:
            self.networks = []
            session = self.session
            if session is not None:
                self.run_read(lambda: netsvc.list_networks(session), done=self.NetworksRead,
                              label="cannot read existing networks")

    @on(NetworksRead)
    def _networks_loaded(self, event: NetworksRead) -> None:
        nets = event.result
        self.networks = list(nets)
        if self.edit:
            self.editing = next((n for n in nets if (n.tenant, n.name) == tuple(self.edit)), None)
            if self.editing is None:
                self._set_status(f"no network {self.edit[1]!r} in tenant {self.edit[0]!r}", True)
                return
            self._fill(self.editing)
            self._set_status("name, tenant, kind, physnet, VLAN, CIDR and gateway cannot change "
                             "(create a new network for that)")
        self._revalidate()

    def _fill(self, n) -> None:
        """Put network ``n`` (a NetworkInfo) in the form."""
        values = {"name": n.name, "tenant": n.tenant, "cidr": n.cidr, "gateway": n.gateway,
                  "vlan": "" if n.vlan is None else str(n.vlan), "lease_time": str(n.lease_time or 3600),
                  "dns": ", ".join(n.dns), "mtu": str(n.mtu), "exclude": ", ".join(n.exclude)}
        for field, value in values.items():
            self.query_one(f"#{field}", Input).value = value
        self.query_one("#kind", Select).value = n.kind
        physnet = self.query_one("#physnet")
        if isinstance(physnet, Select):
            if n.physnet and n.physnet not in [v for _, v in physnet._options]:
                physnet.set_options([(n.physnet, n.physnet)])
            if n.physnet:
                physnet.value = n.physnet
        else:
            physnet.value = n.physnet or ""
        self.query_one("#dhcp", Checkbox).value = n.dhcp
        self._apply_kind()

    # ------------------------------------------------------------------ values
    def _value(self, field: str):
        w = self.query_one(f"#{field}")
        if isinstance(w, Checkbox):
            return w.value
        if isinstance(w, Select):
            return None if w.value is Select.NULL else w.value
        return w.value

    def request(self) -> netsvc.NetworkRequest:
        """The form as a service request (strings as typed)."""
        kind = self._value("kind") or "overlay"
        provider = kind == "provider"
        return netsvc.NetworkRequest(
            tenant=self._value("tenant").strip(), name=self._value("name").strip(), kind=kind,
            cidr=self._value("cidr").strip(), gateway=self._value("gateway").strip() or None,
            dhcp=bool(self._value("dhcp")), lease_time=self._value("lease_time"),
            dns=self._value("dns"), mtu=self._value("mtu").strip() or None,
            physnet=self._value("physnet") if provider else None,
            vlan=self._value("vlan") if provider else None, exclude=self._value("exclude"))

    def _apply_kind(self) -> None:
        provider = self._value("kind") == "provider"
        for row in self.query(".provider-only"):
            row.display = provider
        self.query_one("#mtu", Input).placeholder = "1500" if provider else "1400 (GENEVE fits in 1500)"
        self.query_one("#row-lease_time").display = bool(self._value("dhcp"))

    # ------------------------------------------------------------------ validation
    def _revalidate(self) -> dict[str, str]:
        others = self.networks or []
        if self.edit:      # the network itself is neither a name clash nor an overlap
            others = [n for n in others if (n.tenant, n.name) != tuple(self.edit)]
        self.errors = netsvc.check_fields(self.request(), others, None if self.edit else self.physnets)
        for field in FIELDS:
            why = self.query_one(f"#why-{field}", Static)
            msg = self.errors.get(field, "") if field in self.touched else ""
            why.update(escape(msg))
            self.query_one(f"#row-{field}").set_class(bool(msg), "invalid")
        self.query_one("#create", Button).disabled = (self.busy or bool(self.errors)
                                                       or (bool(self.edit) and self.editing is None))
        return self.errors

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if event.input.id in FIELDS:
            self.touched.add(event.input.id)
            if event.input.id == "cidr":
                self.touched.update(("gateway", "exclude"))
        self._revalidate()

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        if event.select.id in FIELDS:
            self.touched.add(event.select.id)
        self._apply_kind()
        self._revalidate()

    @on(Checkbox.Changed)
    def _checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._apply_kind()
        self._revalidate()

    # ------------------------------------------------------------------ actions
    @on(Button.Pressed, "#create")
    def _create_pressed(self) -> None:
        self.action_create()

    def action_create(self) -> None:
        if self.busy or (self.edit and self.editing is None):
            return
        self.touched.update(FIELDS)
        errors = self._revalidate()
        if errors:
            first = next(f for f in FIELDS if f in errors)
            self._set_status(f"{len(errors)} field(s) to fix: {', '.join(LABELS[f] for f in FIELDS if f in errors)}", True)
            self.query_one(f"#{first}").focus()
            return
        session = self.session
        if session is None:
            self._set_status("not connected to OVN northbound: nothing can be created", True)
            return
        req = self.request()
        self.busy = True
        self.query_one("#create", Button).disabled = True
        self._set_status(f"{'saving' if self.edit else 'creating'} {req.tenant}/{req.name} …")
        physnets, edit = self.physnets or None, self.edit
        if edit:
            def call():
                return netsvc.edit_network(
                    session, edit[0], edit[1], dhcp=req.dhcp, lease_time=req.lease_time,
                    dns=req.dns, mtu=req.mtu or "", exclude=req.exclude, kind=req.kind, cidr=req.cidr,
                    gateway=req.gateway, physnet=req.physnet, vlan=req.vlan if req.kind == "provider" else None)
        else:
            def call():
                return netsvc.create_network(session, req, physnets)
        self.run_service(call, done=self.Saved, failed=self.SaveFailed)

    @on(SaveFailed)
    def _failed(self, event: SaveFailed) -> None:
        self.busy = False
        self._set_status(event.message, True)
        if event.field in FIELDS:
            self.query_one(f"#why-{event.field}", Static).update(escape(event.reason or ""))
            self.query_one(f"#row-{event.field}").add_class("invalid")
        self.query_one("#create", Button).disabled = False

    @on(Saved)
    def _created(self, event: Saved) -> None:
        info = event.result
        self.busy = False
        verb = "saved" if self.edit else "created"
        self.app.notify(f"{verb} network {info.tenant}/{info.name} ({info.cidr})")
        self.dismiss(info)
