"""What the VM wizard (screens/wizard_vm.py) shows: its pages' widgets, their labels, and the
text it draws from service answers (network options, growth ceilings, create progress).

The wizard's behaviour — checking, paging, running plan/create — stays in wizard_vm.py; this
module only builds widgets and strings, so each half reads on its own. Facts come from the
caller (inventory templates/hosts, tenant names, the provision service's rules). No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.markup import escape
from rich.segment import Segment
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.strip import Strip
from textual.suggester import SuggestFromList
from textual.widgets import Checkbox, DataTable, Input, Label, Select, SelectionList, Static, TextArea
from textual.widgets.option_list import OptionDoesNotExist

from ..console import cloudinit
from ..console.errors import ValidationError
from ..console.services import provision as pv
from ..console.services import provision_checks as checks

PAGES = ("basics", "access", "review", "progress")
PAGE_TITLES = {"basics": "1/3 basics", "access": "2/3 access", "review": "3/3 review",
               "progress": "creating"}
PAGE_FIELDS = {
    "basics": ("name", "tenant", "template", "vcpus", "ram", "max_vcpus", "max_ram", "disk", "host", "networks",
               "anti_affinity"),
    "access": ("user", "password", "ssh_keys", "user_data"),
}
LABELS = {"name": "Name", "tenant": "Tenant", "template": "Template", "vcpus": "vCPUs",
          "ram": "RAM MiB", "max_vcpus": "Max vCPUs", "max_ram": "Max RAM", "disk": "Disk GiB", "host": "Host", "weigher": "Weigher",
          "networks": "Networks", "anti_affinity": "Group", "user": "User", "password": "Password",
          "ssh_keys": "SSH keys", "user_data": "User-data"}
#: The Host select's value for "let the scheduler choose".
AUTO = "__auto__"
#: The automatic ceiling rules (provision_checks.growth_limits), as the empty fields' placeholders.
AUTO_MAX_VCPUS = f"automatic: {checks.GROW_VCPUS}×, ≤ host cores"
AUTO_MAX_RAM = f"MiB; automatic: {checks.GROW_RAM}×, ≤ host RAM"
MARKS = {"start": "…", "ok": "✓", "failed": "✗", "undo": "↺", "undone": "↺", "undo-failed": "!"}


def field_row(field: str, widget) -> Horizontal:
    """One form row: label | ``widget`` | the reason it is refused (``#why-<field>``)."""
    return Horizontal(Label(LABELS[field], classes="field-label"), widget,
                      Static("", id=f"why-{field}", classes="field-why"),
                      id=f"row-{field}", classes="field-row")


def basics_page(tenant: str, tenants: list[str], templates: list[str], hosts: list[str]) -> ComposeResult:
    """Page 1: name, tenant (suggested from ``tenants``), template, sizes (vCPUs, RAM MiB, the
    growth ceilings, disk GiB), host (automatic or one of ``hosts``), weigher, networks, group."""
    with VerticalScroll(id="basics"):
        yield field_row("name", Input(id="name", placeholder="web1", compact=True))
        yield field_row("tenant", Input(id="tenant", value=tenant, compact=True,
                                        placeholder=", ".join(tenants[:3]) or "tenant",
                                        suggester=SuggestFromList(tenants) if tenants else None))
        yield field_row("template", Select([(t, t) for t in templates], id="template", compact=True,
                                           value=templates[0] if templates else Select.NULL,
                                           allow_blank=not templates))
        yield field_row("vcpus", Input(id="vcpus", value="1", compact=True))
        yield field_row("ram", Input(id="ram", value="512", compact=True))
        yield field_row("max_vcpus", Input(id="max_vcpus", placeholder=AUTO_MAX_VCPUS, compact=True))
        yield field_row("max_ram", Input(id="max_ram", placeholder=AUTO_MAX_RAM, compact=True))
        yield field_row("disk", Input(id="disk", value="4", compact=True))
        yield field_row("host", Select([("automatic", AUTO)] + [(h, h) for h in hosts],
                                       value=AUTO, allow_blank=False, id="host", compact=True))
        yield field_row("weigher", Select([("spread", "spread"), ("pack", "pack")], value="spread",
                                          allow_blank=False, id="weigher", compact=True))
        yield field_row("networks", NetworkPicker(id="networks", compact=True))
        yield Static("", id="hint-networks", classes="hint")
        yield field_row("anti_affinity", Input(id="anti_affinity", compact=True,
                                               placeholder="anti-affinity group (optional)"))


class NetworkPicker(SelectionList):
    """A tenant's networks as a keyboard multi-select (space toggles); :attr:`order` is what is
    picked, in the order picked — the VM's NIC order. Its SelectedChanged still bubbles up (the
    wizard re-checks the form on it) after ``order`` follows.

    Each row starts with its pick number (`` 1``, `` 2``, … = NIC 0, 1, …) or blanks when not
    picked, instead of the SelectionList's check box (which draws the same ``X`` on every row
    and tells picked from not picked by colour only)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.order: list[str] = []          # picked network names, NIC 0 first
        self._shown: tuple | None = None    # (tenant, names) the options show

    def show(self, tenant: str, names: list[str], facts: dict) -> None:
        """Offer ``tenant``'s networks ``names`` (labels from ``facts``, {(tenant, name): facts});
        picks still offered stay picked, in their order. Nothing happens if that is shown already."""
        shown = (tenant, tuple(names))
        if shown == self._shown:
            return
        self._shown = shown
        keep = [n for n in self.order if n in names]
        with self.prevent(SelectionList.SelectedChanged):
            self.clear_options()
            self.add_options([(network_label(facts.get((tenant, n)), n), n, n in keep) for n in names])
        self.order = keep
        self.refresh()

    def pick(self, *names: str) -> None:
        """Pick exactly ``names``, in this NIC order (what space on each does), quietly."""
        with self.prevent(SelectionList.SelectedChanged):
            self.deselect_all()
            for n in names:
                self.select(n)
        self.order = list(names)
        self.refresh()

    @on(SelectionList.SelectedChanged)
    def _follow_order(self) -> None:
        picked = [str(v) for v in self.selected]
        self.order = [n for n in self.order if n in picked] + [n for n in picked if n not in self.order]
        self.refresh()

    def pick_mark(self, value: str) -> str:
        """The 3 cells before row ``value``: its pick number right-aligned (``" 1 "``), or blank."""
        n = self.order.index(value) + 1 if value in self.order else None
        return f"{n:>2} " if n is not None else "   "

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        segments = list(strip)
        try:
            option = self.get_option_at_index(int(self.scroll_offset.y) + y)
        except OptionDoesNotExist:
            return strip
        if len(segments) < 3:
            return strip
        # segments 0-2 are the check box (▐X▌); the number keeps the box's colour
        mark = Segment(self.pick_mark(str(option.value)), segments[1].style)
        return Strip([mark, *segments[3:]], strip.cell_length)


class PasswordField(Input):
    """A password input that keeps no clear text for long: :meth:`hash_now` (the wizard calls it
    when the field loses focus, on enter and when the page is left) hashes what was typed
    (SHA-512 crypt, cloudinit.hash_password) into :attr:`hash` and wipes the field at once.
    Typing again drops the hash (a new password is being typed)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hash: str | None = None   # the SHA-512 crypt hash; never the clear text

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        if event.value:
            self.hash = None

    def hash_now(self) -> bool | None:
        """Hash and wipe the typed password: True once hashed, False if cloudinit refuses it
        (too short: the clear text stays so the form's check can say why), None if empty."""
        clear = self.value
        if not clear:
            return None
        try:
            h = cloudinit.hash_password(clear)
        except ValidationError:
            return False
        self.hash = h
        with self.prevent(Input.Changed):   # the wipe is not an edit
            self.value = ""
        self.placeholder = f"hashed: {h[:18]}…  (type to replace)"
        return True


def access_page(default_user: str) -> ComposeResult:
    """Page 2: user (``default_user`` = the template's, as placeholder), password, SSH public
    keys, extra user-data, start after create."""
    with VerticalScroll(id="access"):
        yield field_row("user", Input(id="user", placeholder=default_user, compact=True))
        yield field_row("password", PasswordField(id="password", password=True, compact=True,
                                                  placeholder="8+ characters, hashed at once"))
        yield Label(LABELS["ssh_keys"] + " (one public key per line)", classes="area-label")
        yield TextArea(id="ssh_keys", soft_wrap=True, compact=True, classes="keys")
        yield Static("", id="why-ssh_keys", classes="field-why area-why")
        yield Label(LABELS["user_data"] + " (optional #cloud-config YAML, merged)", classes="area-label")
        yield TextArea(id="user_data", soft_wrap=False, compact=True, classes="yaml")
        yield Static("", id="why-user_data", classes="field-why area-why")
        yield Checkbox("start the VM after create", value=True, id="start", compact=True)


def review_page() -> ComposeResult:
    """Page 3: the growth ceilings, the placement table (filled from a Preview), the seed."""
    with VerticalScroll(id="review"):
        yield Static("", id="ceilings")
        yield Static("placement", classes="section")
        yield DataTable(id="placement", cursor_type="row", zebra_stripes=True)
        yield Static("seed (password only as its hash)", classes="section")
        yield TextArea(id="seed", read_only=True, soft_wrap=False, compact=True)


def progress_page() -> ComposeResult:
    """The create steps as they run (:class:`CreateProgress` text)."""
    with VerticalScroll(id="progress"):
        yield Static("", id="steps")


@dataclass
class CreateProgress:
    """The progress view's lines: one per create step (provision.STEPS, in order) and, if a step
    fails, the undo lines of the rollback. Fed with provision.create_vm's progress events."""

    steps: dict[str, str] = field(default_factory=lambda: {s: f"  {label}" for s, label in pv.STEPS})
    undo: list[str] = field(default_factory=list)

    def event(self, step: str, status: str, detail: str) -> None:
        """One progress event (``status`` in MARKS: start/ok/failed or undo/undone/undo-failed)."""
        mark = MARKS.get(status, "?")
        if status in ("undo", "undone", "undo-failed"):
            line = f"  {mark} undo {step}: {detail}"
            if status == "undone" and self.undo and self.undo[-1].endswith(detail):
                self.undo[-1] = line
            else:
                self.undo.append(line)
        else:
            label = pv.STEP_LABELS.get(step, step)
            self.steps[step] = f"{mark} {label}" + (f": {detail}" if status != "start" and detail else "")

    def text(self) -> str:
        text = "\n".join(self.steps.values())
        if self.undo:
            text += "\n\nrolling back:\n" + "\n".join(self.undo)
        return text


def ceilings_text(req: pv.VmRequest, limits: tuple[int, int] | None = None, host: str | None = None) -> str:
    """The review page's growth line: the ceilings typed, or "automatic" with the rule; once
    placed, the values the domain gets on ``host`` (``limits`` = ``Preview.limits``)."""
    def part(what, given, value, unit, grow):
        if value is not None:
            return f"{what} {value}{unit} ({'given' if given else 'automatic'})"
        return f"{what} {given}{unit}" if given else f"{what} automatic ({grow}×, ≤ host)"
    v = part("vCPUs", req.max_vcpus, limits[0] if limits else None, "", checks.GROW_VCPUS)
    r = part("RAM", req.max_ram_mib, limits[1] if limits else None, " MiB", checks.GROW_RAM)
    return f"growth ceilings: {v}, {r}" + (f" on {host}" if limits and host else "")


def split_networks(networks) -> tuple[dict[str, list[str]] | None, dict]:
    """({tenant: [names]}, {(tenant, name): facts}) from {tenant: [names or network facts]}."""
    if networks is None:
        return None, {}
    names: dict[str, list[str]] = {}
    facts: dict = {}
    for tenant, items in networks.items():
        for item in items:
            name = item if isinstance(item, str) else getattr(item, "name", str(item))
            names.setdefault(tenant, []).append(name)
            if not isinstance(item, str):
                facts[(tenant, name)] = item
    return names, facts


def network_label(facts, name: str) -> str:
    """One option line: ``name  overlay  10.0.0.0/24`` or ``name  VLAN 100 physnet1  10.100.0.0/24``."""
    if facts is None:
        return escape(name)
    kind = getattr(facts, "kind", "") or ""
    vlan = getattr(facts, "vlan", None)
    if kind == "provider":
        phys = getattr(facts, "physnet", "") or ""
        kind = (f"VLAN {vlan}" if vlan is not None else "flat") + (f" {phys}" if phys else "")
    cidr = getattr(facts, "cidr", "") or ""
    return escape(f"{name:<10} {kind:<18} {cidr}".rstrip())


def networks_hint(known: dict[str, list[str]] | None, tenant: str, order: list[str], connected: bool) -> str:
    """The line under the networks list: what space does, the NIC order picked, or why there is
    nothing to pick (``known`` None = not read yet; ``connected`` = a session exists)."""
    if known is None:
        return "networks are checked on review (not connected yet)" if not connected else "reading networks…"
    if not known.get(tenant, []):
        return f"tenant {tenant or '…'} has no networks"
    if order:
        return "NICs in order: " + ", ".join(f"{i} {n}" for i, n in enumerate(order, 1)) + "  (space toggles)"
    return "space picks a network (NICs in the order picked)"
