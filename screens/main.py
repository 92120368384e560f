"""The main screen: Hosts, VMs, Networks, Tenants (and Templates) panels with a detail pane.

Keyboard first (k9s-like): ``1``-``5`` or ``tab``/``shift+tab`` switch panels, ``/`` filters the
current table by a regular expression (``escape`` clears it; a filter that hides every row says
"no match for /regex/", an empty panel says so and how to create), ``?`` lists every binding,
``:`` opens the command palette (jump to a panel or to any host / VM / network / tenant by name,
or run any verb of the registry on the highlighted row or the marks), ``enter`` (or a click on
the highlighted row) opens the full details view (screens/details.py), ``<``/``>``/``~`` or a
header click sort the table (screens/table.py), ``c`` creates in the VMs / Networks panel, ``r``
reconnects the highlighted host, ``q`` quits. ``ctrl+d`` deletes everywhere, asking first.
In the Networks panel ``ctrl+d``/``delete`` deletes the highlighted network (cascade, asked first) or
router, ``a`` opens the tenant's default security group, ``o`` opens the router screen (screens/router_editor.py) for the
highlighted network's / router's tenant and ``e`` edits the highlighted network (the network
wizard in edit mode); in the VMs panel ``e`` edits the VM's cloud-config.

Read-only console (``--readonly``): the status line starts with a READ-ONLY badge, the keys of
mutating verbs (:func:`mutating_key`) are left out of the footer, and pressing one is refused
with one sentence (the verbs' own guards say it).

The screen reads ``self.app.cloud`` (an immutable :class:`console.model.Cloud`) when the app
posts :class:`CloudChanged`; it never waits on a host.

Verb keys come from the verb registry (console/verbs/): each verb declares its key and the
panel it works in; the screen binds every declared key once (``verb_key``) and runs the verb
that the active panel owns for it (``e`` edits a VM's cloud-config in the VMs panel and a network
in the Networks panel), or says where the key works. The screen's own keys are
:data:`NAV_BINDINGS`.

Templates panel: ``screens/templates.py`` ``TemplatesPanel`` (a Widget taking no arguments,
reading ``self.app.cloud`` / ``self.app.inventory``), imported when the tab is first shown.
"""

from __future__ import annotations

import re
from dataclasses import replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Static, TabbedContent, TabPane

from ..console import verbs
from . import views
from .footer import KeyFooter
from .table import CloudTable
from .host_actions import HostActions
from .vm_actions import MARK_BINDINGS, VmActions


class CloudChanged(Message):
    """Posted to the app (from any thread) when a new Cloud snapshot is available."""


#: The main screen's own keys: panels, filter, and the Networks / Hosts panel screens.
NAV_BINDINGS = [
    Binding("1", "panel('hosts')", "Hosts", key_display="1"),
    Binding("2", "panel('vms')", "VMs", key_display="2"),
    Binding("3", "panel('networks')", "Nets", key_display="3"),
    Binding("4", "panel('tenants')", "Tenants", key_display="4"),
    Binding("5", "panel('templates')", "Templates", show=False),
    Binding("tab", "cycle(1)", "Next panel", show=False, priority=True),
    Binding("shift+tab", "cycle(-1)", "Previous panel", show=False, priority=True),
    Binding("slash", "filter", "Filter", key_display="/"),
    Binding("escape", "clear_filter", "Clear filter", show=False),
    Binding("r", "reconnect", "Reconnect host", show=False),
    Binding("o", "routers", "Routers (Networks panel)", show=False),
    Binding("a", "security_group", "Security group (Networks panel)", show=False),
]

#: Verbs that only read (the rest change the cloud, or attach a console: refused read-only).
READ_LEAVES = frozenset({"list", "show", "ip", "check"})
#: Screen actions (besides verb keys) that open an editing screen.
EDITING_ACTIONS = frozenset({"routers", "security_group"})
#: Mutating actions of widgets inside the panels, by widget class (the Templates panel's keys).
WIDGET_MUTATING = {"TemplatesPanel": frozenset({"add", "delete"})}


def mutating_key(action: str, node: object = None) -> bool:
    """True when the binding running ``action`` (bound on ``node``) changes the cloud (a
    read-only console hides it from the footer): a verb key of which some verb is not a read
    (:data:`READ_LEAVES`), an editing screen, or a panel widget's add/delete."""
    if action in WIDGET_MUTATING.get(type(node).__name__, ()):
        return True
    if action.startswith("verb_key("):
        key = action[len("verb_key("):-1].strip("'\"")
        return any(v.leaf not in READ_LEAVES for v in verbs.all_verbs() if v.key == key)
    return action in EDITING_ACTIONS


#: One binding per verb key of the registry; ``verb_key`` picks the active panel's verb.
VERB_BINDINGS = [Binding(key, f"verb_key({key!r})", legend, show=show)
                 for key, legend, show in verbs.keys()]


def _compose_pairs(pairs):
    """Yield :meth:`MainScreen._panel_body`'s (widget, children) pairs inside a compose."""
    for widget, children in pairs:
        if children:
            with widget:
                yield from _compose_pairs(children)
        else:
            yield widget


class MainScreen(HostActions, VmActions, Screen):
    """Panels + details + filter; see module doc for the bindings."""

    CSS_PATH = "main.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]

    BINDINGS = [*NAV_BINDINGS, *VERB_BINDINGS, *MARK_BINDINGS]

    def __init__(self, panel: str = "hosts") -> None:
        super().__init__()
        self.initial_panel = panel if panel in views.PANELS else "hosts"
        self.filters: dict[str, str] = {}
        self._shown: dict[str, tuple] = {}
        self._vm_memo = views.RowMemo()
        self._details: dict = {}
        self._status = ""
        self._banner: str | None = ""
        self._built: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        with TabbedContent(id="panels", initial=self.initial_panel):
            for i, panel in enumerate(views.PANELS, 1):
                with TabPane(f"{i} {views.TITLES[panel]}", id=panel):
                    if panel == "networks":   # shown while the NB is not up: data may be old
                        yield Static("", id="nb-banner")
                    if panel != self.initial_panel:
                        continue        # built when first shown (_build)
                    self._built.add(panel)
                    yield from _compose_pairs(self._panel_body(panel))
        yield Input(placeholder="filter (regular expression, Enter to apply, Esc to clear)",
                    id="filter")
        yield KeyFooter()

    def _panel_body(self, panel: str) -> list:
        """The widgets inside ``panel``'s tab, as (widget, children) pairs, built when the
        panel is first shown."""
        if panel == "templates":
            from .templates import TemplatesPanel  # lazy: most sessions never open this tab
            return [(TemplatesPanel(), [])]
        return [(Vertical(classes="panel-body"), [
            (CloudTable(views.COLUMNS[panel], id=f"table-{panel}", empty=views.EMPTY[panel]), []),
            (VerticalScroll(classes="details", id=f"details-{panel}"),
             [(Static("", id=f"detail-{panel}", classes="detail-text"), [])])])]

    def _build(self, panel: str) -> list:
        """Mount ``panel``'s widgets on first use: hidden panels cost start-up time (~0.1 s
        of Textual work for the four of them) and most sessions never open some. The widgets
        are queryable at once (mounted level by level); returns the mounts' awaitables
        (empty when already built)."""
        if panel in self._built or panel not in views.PANELS:
            return []
        self._built.add(panel)
        self._shown.pop(panel, None)
        self._details.pop(panel, None)
        waits = []

        def mount(parent, pairs) -> None:
            waits.append(parent.mount(*(w for w, _ in pairs)))
            for w, children in pairs:
                if children:
                    mount(w, children)
        mount(self.query_one(f"#{panel}", TabPane), self._panel_body(panel))
        return waits

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.refresh_cloud()
        self._focus_table()

    def on_resize(self) -> None:
        self.refresh_cloud()  # the status line's members shorten or lengthen with the width

    # -- data -----------------------------------------------------------------------------

    @property
    def panel(self) -> str:
        return self.query_one("#panels", TabbedContent).active or "hosts"

    def table(self, panel: str | None = None) -> CloudTable | None:
        panel = panel or self.panel
        if panel not in views.ROWS:
            return None
        self._build(panel)
        return self.query_one(f"#table-{panel}", CloudTable)

    def refresh_cloud(self, force: bool = False) -> None:
        """Redraw the status line and the visible panel from ``app.cloud`` (others refresh
        when they are shown)."""
        cloud = self.app.cloud
        prefix = f"{views.READONLY_BADGE} " if self.readonly else ""
        pat = self.filters.get(self.panel)
        suffix = f" · filter [b]/{pat}/[/b]" if pat else ""
        # the cells left for the line (#status has 1 cell of padding each side): members shorten
        room = self.size.width - 2 - Text.from_markup(prefix + suffix).cell_len if self.size.width else None
        status = prefix + views.status_line(cloud, room) + suffix
        if status != self._status:
            self._status = status
            self.query_one("#status", Static).update(status)
        banner = views.nb_banner(cloud)
        if banner != self._banner:
            self._banner = banner
            widget = self.query_one("#nb-banner", Static)
            widget.update(banner or "")
            widget.display = bool(banner)
        self._refresh_panel(self.panel, force)

    def _refresh_panel(self, panel: str, force: bool = False) -> None:
        table = self.table(panel)
        if table is None:
            return
        cloud = self.app.cloud
        # the Cloud keeps unchanged parts as the same objects: skip a panel whose inputs are
        # all the same (e.g. 3,000 VM rows when only a host's free RAM moved)
        inputs = tuple(getattr(cloud, f) for f in views.INPUTS[panel])
        shown = self._shown.get(panel)
        if not force and shown is not None and all(a is b for a, b in zip(shown, inputs)):
            return
        self._shown[panel] = inputs
        built = views.vm_rows(cloud, self._vm_memo) if panel == "vms" else views.ROWS[panel](cloud)
        rows = self.decorate_rows(panel, built)  # VM marks
        pat = self.filters.get(panel)
        if pat:
            rx = re.compile(pat, re.IGNORECASE)
            rows = [r for r in rows if rx.search(r.text)]
        # an empty table says why: nothing matches the filter, or nothing exists yet
        table.empty_text = f"no match for /{pat}/ (escape clears the filter)" if pat else views.EMPTY[panel]
        table.set_rows(rows)
        self._show_details(panel, table.cursor_key)

    def _show_details(self, panel: str, key: str | None) -> None:
        text = views.details(self.app.cloud, key)
        if self._details.get(panel) == text:     # an update re-lays out the screen: skip
            return
        self._details[panel] = text
        self.query_one(f"#detail-{panel}", Static).update(text)

    @on(CloudTable.Highlighted)
    def _highlighted(self, event: CloudTable.Highlighted) -> None:
        panel = (event.table.id or "").removeprefix("table-")
        if panel in views.ROWS:
            self._show_details(panel, event.key)

    @on(CloudTable.Selected)
    def _selected(self, event: CloudTable.Selected) -> None:
        """Enter on a row: the full details view (escape comes back)."""
        if event.key:
            from .details import DetailsScreen    # lazy: not paid for at start-up
            self.app.push_screen(DetailsScreen(event.key))

    @property
    def readonly(self) -> bool:
        return bool(getattr(self.app, "readonly", False))

    @property
    def active_bindings(self):
        """Textual's active bindings; in a read-only console the mutating keys are not shown
        (the footer reads this), though pressing one still says why it is refused."""
        active = super().active_bindings
        if not self.readonly:
            return active
        return {k: (ab._replace(binding=replace(ab.binding, show=False))
                    if ab.binding.show and mutating_key(ab.binding.action, ab.node) else ab)
                for k, ab in active.items()}

    @on(TabbedContent.TabActivated)
    async def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        for mounting in self._build(self.panel):      # a tab clicked with the mouse
            await mounting
        self.refresh_cloud()
        self._focus_table()

    def _focus_table(self) -> None:
        table = self.table()
        if table is not None:
            table.focus()
        else:   # a panel without a table: let go of the hidden table (else its pane returns)
            self.set_focus(None)

    # -- actions --------------------------------------------------------------------------

    def action_drift_view(self) -> None:
        """The drift check (`virtdeck check`) as a view: screens/drift.py."""
        from .drift import DriftScreen, scope_of
        table = self.table(self.panel)   # on the highlighted host / VM / network / router
        key = table.cursor_key if table is not None else None
        self.app.push_screen(DriftScreen(scope=scope_of(self.app.cloud, key)))

    def action_audit_view(self) -> None:
        """The audit trail's recent records (the ``audit`` verb): screens/audit.py."""
        from .audit import AuditScreen
        self.app.push_screen(AuditScreen())

    def action_show_details(self) -> None:
        """The full details view of the active panel's highlighted row (``host show``,
        ``tenant show`` from the palette; ``enter`` in a table)."""
        table = self.table()
        key = table.cursor_key if table else None
        if not key:
            self.notify(f"no row highlighted in the {views.TITLES.get(self.panel, self.panel)} panel", timeout=3)
            return
        from .details import DetailsScreen
        self.app.push_screen(DetailsScreen(key))

    def action_panel(self, panel: str) -> None:
        self._build(panel)
        if self.table(panel) is None:
            self.set_focus(None)
        self.query_one("#panels", TabbedContent).active = panel

    def action_cycle(self, delta: int) -> None:
        if self.query_one("#filter", Input).has_focus:
            return
        i = views.PANELS.index(self.panel)
        self.action_panel(views.PANELS[(i + delta) % len(views.PANELS)])

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.filters.get(self.panel, "")
        box.remove_class("-invalid")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        had = self.filters.pop(self.panel, None)
        box.value = ""
        box.display = False
        self._focus_table()
        if had:
            self.refresh_cloud(force=True)

    @on(Input.Changed, "#filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        self._apply_filter(event.value, live=True)

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if self._apply_filter(event.value, live=False):
            event.input.display = False
            self._focus_table()

    def _apply_filter(self, pattern: str, live: bool) -> bool:
        box = self.query_one("#filter", Input)
        try:
            re.compile(pattern)
        except re.error as exc:
            box.add_class("-invalid")
            if not live:
                self.notify(f"not a regular expression: {exc}", severity="error")
            return False
        box.remove_class("-invalid")
        if pattern:
            self.filters[self.panel] = pattern
        else:
            self.filters.pop(self.panel, None)
        self.refresh_cloud(force=True)
        return True

    async def action_verb_key(self, key: str) -> None:
        """Run the verb the active panel owns for ``key`` (as declared in the registry), or
        say which panels the key works in."""
        verb = verbs.for_key(self.panel, key)
        if verb is not None:
            await self.run_action(verb.action)
            return
        panels = verbs.panels_of_key(key)
        if panels == ["vms"]:
            self.notify("VM keys work in the VMs panel (2)", timeout=3)
        elif panels:
            where = " and ".join(f"{views.TITLES[p]} ({views.PANELS.index(p) + 1})" for p in panels)
            self.notify(f"{' / '.join(key.split(','))} works in the {where} panels", timeout=3)

    async def run_verb(self, verb: verbs.Verb) -> None:
        """Run ``verb`` from the command palette: show its panel, then its action (on the
        highlighted row); a command-line-only verb says how to run it."""
        if verb.panel:
            for mounting in self._build(verb.panel):   # first use of the panel: rows before the action
                await mounting
            self.action_panel(verb.panel)
            if verb.panel in views.ROWS:
                self._refresh_panel(verb.panel)
        if verb.action:
            await self.run_action(verb.action)
        else:
            self.notify(f"on the command line: virtdeck {verb.name} … ({verb.help})", timeout=8)

    def action_vm_create(self) -> None:
        self.app.open_vm_wizard()

    def action_network_create(self) -> None:
        self.app.open_network_wizard()

    def _network_row(self):
        """The Networks panel's highlighted row: ("net", Network) / ("router", Router) / None."""
        table = self.table("networks")
        key = table.cursor_key if table else None
        kind, _, uuid = (key or "").partition(":")
        cloud = self.app.cloud
        rows = {"net": cloud.networks, "router": cloud.routers}.get(kind, ())
        obj = next((x for x in rows if x.uuid == uuid), None)
        return (kind, obj) if obj is not None else None

    def action_routers(self) -> None:
        if self.panel != "networks":
            self.notify("o opens the router screen from the Networks panel (3)", timeout=3)
            return
        row = self._network_row()
        tenant = row[1].tenant if row else None
        router = row[1].display_name if row and row[0] == "router" else None
        if router is None and row and tenant:
            mine = [r.display_name for r in self.app.cloud.routers if r.tenant == tenant]
            router = mine[0] if len(mine) == 1 else None
        self.app.open_router_editor(tenant, router)

    def action_security_group(self) -> None:
        row = self._network_row() if self.panel == "networks" else None
        if row is None or not row[1].tenant:
            self.notify("a opens the tenant's security group from a Networks panel row (3)", timeout=3)
            return
        self.app.open_security_group(row[1].tenant)

    def action_network_delete(self) -> None:
        row = self._network_row()
        if row is None:
            self.notify("no network or router highlighted", timeout=3)
            return
        from .network_actions import delete_from_networks_panel
        delete_from_networks_panel(self, *row)

    def action_network_edit(self) -> None:
        row = self._network_row()
        if row is None or row[0] != "net" or not row[1].tenant:
            self.notify("e edits a virtdeck network: highlight one in the Networks panel", timeout=3)
            return
        self.app.open_network_editor(row[1].tenant, row[1].display_name)

    def action_reconnect(self) -> None:
        table = self.table()
        key = table.cursor_key if table else None
        if self.panel == "hosts" and key:
            host = key.removeprefix("host:")
            self.app.reconnect_host(host)
            self.notify(f"reconnecting {host}", timeout=2)

    def jump(self, panel: str, key: str) -> None:
        """Show ``panel`` and highlight row ``key`` (clearing a filter that hides it)."""
        self.action_panel(panel)
        table = self.table(panel)
        if table is None:
            return
        self._refresh_panel(panel, force=True)
        if not table.select_key(key) and self.filters.pop(panel, None):
            self._refresh_panel(panel, force=True)
            table.select_key(key)
        table.focus()
