"""The VM create wizard: three pages and a progress view, every field checked as you type.

Push it from anywhere (the VMs panel binds ``c`` → ``app.open_vm_wizard()``)::

    app.push_screen(VmWizard())                         # session + inventory from the app
    app.push_screen(VmWizard(session, inventory, tenant="demo"), callback)

It dismisses with the :class:`console.services.provision.CreateResult`, or None on cancel.

Pages: 1 basics (name, tenant, template, vCPUs, RAM MiB, the live-growth ceilings max vCPUs /
max RAM MiB — empty = automatic, the rule as placeholder — disk GiB, host automatic or pinned,
weigher, networks — a keyboard multi-select of the tenant's networks showing kind/VLAN/CIDR, NICs
in the order picked — and an optional anti-affinity group), 2 access (default user, password, SSH public keys, extra user-data YAML,
start after create), 3 review (the growth ceilings, the placement table — every host chosen/refused
and why — and the seed preview; the password appears only as its SHA-512 hash), then the progress view of the create
steps (with the undo lines if a step fails). The password is hashed (passlib sha512_crypt) when
its field loses focus or the page is left, and the clear text is wiped from the field at once.

Every check is ``console.services.provision.check_form`` (the rules the CLI meets); placement and
create run ``provision.plan`` / ``provision.create_vm`` in thread workers. Networks of each tenant
are read once through ``console.services.network.list_networks``. This module imports no libvirt,
ovsdbapp or asyncssh.

The pages' widgets (with the networks picker and the password field, which own their behaviour)
and the strings drawn from service answers are in wizard_vm_pages.py. This module is the form's
behaviour and stays one module though it is over 400 lines: checking as you type, paging, and the
three service calls (networks, plan, create, answered by typed messages through screens/form.py)
share one state — touched fields, errors, page, preview — and split apart they would pass it
back and forth.
"""

from __future__ import annotations

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Checkbox, ContentSwitcher, DataTable, Input, Select, SelectionList, Static, TextArea

from ..console import cloudinit
from ..console.errors import ValidationError
from ..console.services import provision as pv
from ..console.services import provision_checks as checks
from .form import FormScreen, ServiceDone, ServiceFailed
from .wizard_vm_pages import (AUTO, LABELS, PAGE_FIELDS, PAGE_TITLES, CreateProgress, access_page, basics_page,
                              ceilings_text, NetworkPicker, networks_hint, PasswordField, progress_page, review_page,
                              split_networks)


class VmWizard(FormScreen):
    """Create a VM. Keys: ctrl+n next page, ctrl+b back, ctrl+s create (review page),
    escape cancel / close, tab between fields."""

    CSS_PATH = "wizard_vm.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+n", "next", "Next"),
        Binding("ctrl+b", "back", "Back"),
        Binding("ctrl+s", "create", "Create"),
    ]

    #: The page shown (one of PAGES); setting it switches the page and redraws title and buttons.
    page = reactive("basics", init=False)
    #: A plan or create call is running (buttons and keys wait for it).
    busy = reactive(False, init=False)
    #: The create call has answered (success or failure): Cancel becomes Close.
    done = reactive(False, init=False)

    class NetworksRead(ServiceDone):
        """``result`` is {tenant: [NetworkInfo]} from :func:`read_networks`."""

    class Planned(ServiceDone):
        """``result`` is the provision.Preview (placement, seed, limits) of the request."""

    class PlanFailed(ServiceFailed):
        """provision.plan refused the request (``field`` in the CLI's spelling) or failed."""

    class Created(ServiceDone):
        """``result`` is the provision.CreateResult."""

    class CreateFailed(ServiceFailed):
        """provision.create_vm failed (after rolling back what it had made)."""

    class StepProgress(Message):
        """One create_vm progress event (posted from the worker thread): ``step`` (provision.STEPS
        name), ``status`` (a MARKS key), ``detail`` (one line)."""

        def __init__(self, step: str, status: str, detail: str) -> None:
            super().__init__()
            self.step, self.status, self.detail = step, status, detail

    def __init__(self, session=None, inventory=None, *, tenant: str | None = None,
                 networks: dict[str, list] | None = None, vm_names: set[str] | None = None):
        super().__init__(session)
        self._inventory = inventory
        self.default_tenant = tenant
        # {tenant: [network names]}, None until known; ``networks`` may also hold network facts
        # (objects with name/kind/vlan/cidr/physnet, as list_networks returns) for the labels.
        self.networks, self.net_facts = split_networks(networks)
        self.vm_names = vm_names
        self.touched: set[str] = set()        # fields whose reason is shown (typed in, or page left)
        self.errors: dict[str, str] = {}      # check_form's {field: reason} for the whole form
        self.preview: pv.Preview | None = None
        self.result: pv.CreateResult | None = None
        self.steps = CreateProgress()

    # ------------------------------------------------------------------ facts
    @property
    def inventory(self):
        return self._inventory if self._inventory is not None else getattr(self.app, "inventory", None)

    def _tenants(self) -> list[str]:
        names = {t.name for t in getattr(self.inventory, "tenants", ())}
        cloud = getattr(self.app, "cloud", None)
        names |= {t.name for t in getattr(cloud, "tenants", ()) or ()}
        names |= set(self.networks or {})
        return sorted(names)

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        inv = self.inventory
        tenants = self._tenants()
        templates = [t.name for t in getattr(inv, "templates", ())]
        hosts = [h.name for h in getattr(inv, "hypervisors", ())]
        tenant = self.default_tenant or (tenants[0] if len(tenants) == 1 else "")
        with Vertical(id="vmwiz", classes="dialog"):
            yield Static("", id="title", classes="dialog-title")
            with ContentSwitcher(initial="basics", id="pages"):
                yield from basics_page(tenant, tenants, templates, hosts)
                yield from access_page(self._template_user())
                yield from review_page()
                yield from progress_page()
            yield Static("", id="status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Back (^b)", id="back", compact=True)
                yield Button("Next (^n)", id="next", variant="primary", compact=True)
                yield Button("Create (^s)", id="create", variant="success", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        if self.vm_names is None:
            cloud = getattr(self.app, "cloud", None)
            vms = getattr(cloud, "vms", None)
            if vms is not None:
                self.vm_names = {v.name for v in vms}
        self._draw_page()
        self.query_one("#placement", DataTable).add_columns("host", "verdict", "vCPU", "RAM MiB", "why")
        self.query_one("#name", Input).focus()
        self._revalidate()
        if self.networks is None and self.session is not None:
            session = self.session
            self.run_read(lambda: read_networks(session), done=self.NetworksRead, label="cannot read networks")

    @on(NetworksRead)
    def _networks_loaded(self, event: NetworksRead) -> None:
        self.networks, self.net_facts = split_networks(event.result)
        self._revalidate()

    def pick_networks(self, *names: str) -> None:
        """Pick ``names`` (in this NIC order) in the networks list, dropping other picks — what
        the keys do (space on each), for scripts and tests."""
        self.query_one(NetworkPicker).pick(*names)
        self.touched.add("networks")
        self._revalidate()

    # ------------------------------------------------------------------ values
    def _template_user(self) -> str:
        inv = self.inventory
        try:
            return inv.templates[0].default_user if inv and inv.templates else "debian"
        except Exception:  # noqa: BLE001
            return "debian"

    def _value(self, field: str) -> str:
        w = self.query_one(f"#{field}")
        if isinstance(w, Select):
            return "" if w.value is Select.NULL else str(w.value)
        if isinstance(w, TextArea):
            return w.text
        if isinstance(w, Checkbox):
            return "1" if w.value else ""
        if isinstance(w, NetworkPicker):
            return ",".join(w.order)
        return w.value

    def form(self) -> dict:
        """The fields as typed (the password only while it is not hashed yet)."""
        f = {k: self._value(k) for k in ("name", "tenant", "template", "vcpus", "ram", "max_vcpus", "max_ram",
                                         "disk", "networks", "anti_affinity", "user", "password", "ssh_keys", "user_data")}
        f["host"] = "" if self._value("host") == AUTO else self._value("host")
        return f

    def request(self) -> pv.VmRequest:
        """The service request for the form (after :meth:`_hash_now`)."""
        f = self.form()
        vcpus, ram = checks.check_vcpus(f["vcpus"]), checks.check_ram(f["ram"])
        return pv.VmRequest(
            name=f["name"].strip(), tenant=f["tenant"].strip(), template=f["template"],
            vcpus=vcpus, ram_mib=ram, disk_gib=checks.check_disk(f["disk"]),
            max_vcpus=checks.check_max_vcpus(f["max_vcpus"], vcpus), max_ram_mib=checks.check_max_ram(f["max_ram"], ram),
            networks=checks.check_networks(f["networks"]),
            ssh_keys=tuple(cloudinit.parse_ssh_keys(f["ssh_keys"], "ssh-keys")),
            password_hash=self.password_hash or "", user=f["user"].strip() or None,
            user_data=f["user_data"], host=f["host"] or None, weigher=self._value("weigher") or "spread",
            anti_affinity=checks.check_group(f["anti_affinity"].strip() or None),
            start=bool(self._value("start")))

    # ------------------------------------------------------------------ validation
    def _revalidate(self) -> dict[str, str]:
        inv = self.inventory
        tenant = self._value("tenant").strip()
        picker = self.query_one(NetworkPicker)
        if self.networks is not None:
            picker.show(tenant, self.networks.get(tenant, []), self.net_facts)
        if inv is None:
            self.errors = {"template": "no inventory loaded"}
        else:
            self.errors = checks.check_form(inv, self.form(), networks=self.networks, vm_names=self.vm_names,
                                        password_hash=self.password_hash)
        for field in checks.FORM_FIELDS:
            msg = self.errors.get(field, "") if field in self.touched else ""
            self.query_one(f"#why-{field}", Static).update(escape(msg))
            try:
                self.query_one(f"#row-{field}").set_class(bool(msg), "invalid")
            except Exception:  # noqa: BLE001 - text areas have no row
                pass
        hint = networks_hint(self.networks, tenant, picker.order, self.session is not None)
        self.query_one("#hint-networks", Static).update(escape(hint))
        self._buttons()
        return self.errors

    def _page_errors(self, page: str) -> list[str]:
        return [f for f in PAGE_FIELDS.get(page, ()) if f in self.errors]

    def _buttons(self) -> None:
        page = self.page
        self.query_one("#back", Button).display = page in ("access", "review") and not self.busy
        nxt = self.query_one("#next", Button)
        nxt.display = page in ("basics", "access")
        nxt.disabled = bool(self._page_errors(page))
        create = self.query_one("#create", Button)
        create.display = page == "review"
        create.disabled = self.busy or self.preview is None
        cancel = self.query_one("#cancel", Button)
        cancel.label = "Close (esc)" if self.done else "Cancel (esc)"
        cancel.disabled = self.busy

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        field = event.input.id   # a new password being typed has dropped its hash (PasswordField)
        if field in checks.FORM_FIELDS:
            self.touched.add(field)
        self._revalidate()

    @on(TextArea.Changed)
    def _area_changed(self, event: TextArea.Changed) -> None:
        if event.text_area.id in checks.FORM_FIELDS:
            self.touched.add(event.text_area.id)
            self._revalidate()

    @on(SelectionList.SelectedChanged, "#networks")
    def _networks_changed(self) -> None:
        self.touched.add("networks")   # NetworkPicker.order already follows the picks
        self._revalidate()

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        if event.select.id in checks.FORM_FIELDS:
            self.touched.add(event.select.id)
        if event.select.id == "template":
            self.query_one("#user", Input).placeholder = self._selected_template_user()
        self._revalidate()

    def _selected_template_user(self) -> str:
        inv = self.inventory
        name = self._value("template")
        for t in getattr(inv, "templates", ()):
            if t.name == name:
                return t.default_user
        return "debian"

    @on(Input.Blurred, "#password")
    def _password_blurred(self, _event) -> None:
        self._hash_now()

    @on(Input.Submitted, "#password")
    def _password_submitted(self, _event) -> None:
        self._hash_now()

    def _hash_now(self) -> None:
        """Hash the typed password (SHA-512 crypt) and wipe the clear text from the field."""
        if self.query_one(PasswordField).hash_now() is not None:
            self.touched.add("password")
            self._revalidate()

    @property
    def password_hash(self) -> str | None:
        """The password's SHA-512 crypt hash once hashed (PasswordField), else None."""
        return self.query_one(PasswordField).hash

    # ------------------------------------------------------------------ pages
    def watch_page(self) -> None:
        self._draw_page()

    def watch_busy(self) -> None:
        self._buttons()

    def watch_done(self) -> None:
        self._buttons()

    def _draw_page(self) -> None:
        self.query_one("#pages", ContentSwitcher).current = self.page
        self.query_one("#title", Static).update(f"[b]New VM[/b] — {PAGE_TITLES[self.page]}")
        self._buttons()

    def action_next(self) -> None:
        if self.busy or self.page not in ("basics", "access"):
            return
        if self.page == "access":
            self._hash_now()
        fields = PAGE_FIELDS[self.page]
        self.touched.update(fields)
        self._revalidate()
        bad = self._page_errors(self.page)
        if bad:
            self._set_status(f"fix: {', '.join(LABELS[f] for f in bad)}", True)
            self.query_one(f"#{bad[0]}").focus()
            return
        self._set_status("")
        if self.page == "basics":
            self.page = "access"
            self.query_one("#user", Input).focus()
        else:
            self.page = "review"
            self._plan()

    def action_back(self) -> None:
        if self.busy:
            return
        if self.page == "access":
            self.page = "basics"
        elif self.page == "review":
            self.preview = None
            self.page = "access"

    def _plan(self) -> None:
        session, inv = self.session, self.inventory
        try:
            req = self.request()
        except ValidationError as exc:
            self._set_status(str(exc), True)
            return
        self.query_one("#ceilings", Static).update(escape(ceilings_text(req)))
        if session is None:
            self._set_status("not connected: placement cannot be computed", True)
            return
        self.preview = None
        self.busy = True
        self._set_status("computing placement…")
        self.run_service(lambda: pv.plan(session, inv, req), done=self.Planned, failed=self.PlanFailed)

    @on(PlanFailed)
    def _plan_failed(self, event: PlanFailed) -> None:
        message, reason = event.message, event.reason
        self.busy = False
        self._set_status(message, True)
        field = {"ssh-keys": "ssh_keys", "user-data": "user_data", "max-vcpus": "max_vcpus",
                 "max-ram": "max_ram"}.get(event.field or "", event.field)
        if field in checks.FORM_FIELDS:
            self.errors[field] = reason or message
            self.query_one(f"#why-{field}", Static).update(escape(reason or ""))
        self._buttons()

    @on(Planned)
    def _planned(self, event: Planned) -> None:
        preview = event.result
        self.busy = False
        self.preview = preview
        self.query_one("#ceilings", Static).update(
            escape(ceilings_text(preview.request, preview.limits, preview.placement.host)))
        table = self.query_one("#placement", DataTable)
        table.clear()
        for r in preview.placement.as_rows():
            table.add_row(r["host"], r["verdict"], r["vcpus"] or "-", r["ram_mib"] or "-",
                          "; ".join(r["reasons"]), key=r["host"])
        self.query_one("#seed", TextArea).text = preview.seed.preview()
        if preview.placement.host:
            table.move_cursor(row=table.get_row_index(preview.placement.host))
            self._set_status(f"will be placed on {preview.placement.host} (weigher {preview.placement.weigher}); "
                             f"ctrl+s creates")
        else:
            self.preview = None
            self._set_status("no host can take this VM: see the table", True)
        self._buttons()

    @on(DataTable.RowHighlighted, "#placement")
    def _placement_row(self, event: DataTable.RowHighlighted) -> None:
        """The whole reason of the highlighted host (the table's column is cut at 80 columns)."""
        if self.preview is None or event.row_key is None:
            return
        try:
            v = self.preview.placement.verdict(event.row_key.value)
        except KeyError:
            return
        verdict = "chosen" if v.chosen else "refused" if v.refused else "passed"
        tail = " — ctrl+s creates" if self.preview.placement.host else ""
        self._set_status(f"{v.host} {verdict}: {v.summary}{tail}", error=self.preview.placement.host is None)

    # ------------------------------------------------------------------ create
    def action_create(self) -> None:
        if self.busy or self.page != "review" or self.preview is None:
            return
        session, inv, req = self.session, self.inventory, self.preview.request
        self.busy = True
        self.steps = CreateProgress()
        self.page = "progress"
        self._render_steps()
        self._set_status(f"creating {req.tenant}/{req.name} …")

        def progress(step, status, detail):   # in the worker thread: post, never draw
            self.post_message(self.StepProgress(step, status, detail))
        self.run_service(lambda: pv.create_vm(session, inv, req, progress=progress),
                         done=self.Created, failed=self.CreateFailed)

    @on(StepProgress)
    def _progress(self, event: StepProgress) -> None:
        self.steps.event(event.step, event.status, event.detail)
        self._render_steps()

    def _render_steps(self) -> None:
        self.query_one("#steps", Static).update(escape(self.steps.text()))

    @on(CreateFailed)
    def _create_failed(self, event: CreateFailed) -> None:
        self.busy = False
        self.done = True
        self._set_status(event.message, True)

    @on(Created)
    def _created(self, event: Created) -> None:
        result = event.result
        self.result = result
        self.busy = False
        self.done = True
        secs = f"{result.submit_to_running:.1f} s" if result.submit_to_running is not None else "not started"
        ips = ", ".join(f"{p.network} {p.ip or 'dynamic'}" for p in result.ports)
        self._set_status(f"created {result.tenant}/{result.name} on {result.host} ({ips}; submit→running {secs})")
        self.app.notify(f"VM {result.name} created on {result.host}")

    # ------------------------------------------------------------------ buttons
    @on(Button.Pressed, "#next")
    def _next_pressed(self) -> None:
        self.action_next()

    @on(Button.Pressed, "#back")
    def _back_pressed(self) -> None:
        self.action_back()

    @on(Button.Pressed, "#create")
    def _create_pressed(self) -> None:
        self.action_create()

    def cancel_result(self):
        return self.result  # a VM already created is reported even when the wizard is closed


def read_networks(session) -> dict[str, list]:
    """{tenant: [NetworkInfo]} of every tenant, read once through network.list_networks
    (blocking: OVN NB; run it in a worker). Raises VirtdeckError when NB cannot be read."""
    from ..console.services import network as netsvc
    by_tenant: dict[str, list] = {}
    for n in netsvc.list_networks(session):
        by_tenant.setdefault(n.tenant, []).append(n)
    return by_tenant
