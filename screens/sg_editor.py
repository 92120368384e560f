"""Security-group editor: a tenant's group as rule lines, checked as you type, saved at once.

Push it with::

    app.push_screen(SecurityGroupEditor(tenant="demo"))                 # the tenant's default group
    app.push_screen(SecurityGroupEditor(session, tenant="demo", group="web"), callback)

It dismisses with the saved :class:`backends.ovn.security_groups.SecurityGroupInfo`, or None on cancel
or after ``ctrl+d`` deleted the group (asked first; console.services.security.delete_security_group;
member ports stay, unprotected by it). The Networks panel opens it with ``a`` for the
highlighted row's tenant.
One rule per line (``#`` starts a comment)::

    egress any
    ingress any from self
    ingress tcp 22 from 10.0.0.0/8
    ingress icmp

Saving replaces the group's rules in ONE OVN transaction (console.services.security.set_rules);
anything not allowed by a rule is dropped, replies to allowed traffic always pass. The default
group is created on first save if it does not exist yet. ``session`` defaults to ``app.session``.
"""

from __future__ import annotations

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static, TextArea

from ..console.errors import ValidationError, VirtdeckError
from .form import FormScreen, ServiceDone, ServiceFailed
from ..console.services import security

HELP = ("one rule per line: [b]ingress|egress[/b] any|icmp|tcp|udp [PORT[-PORT]] "
        "[from|to CIDR|self] — everything else is dropped; replies always pass")


class SecurityGroupEditor(FormScreen):
    """Edit one security group's rules. Keys: ctrl+s save, escape cancel."""

    CSS_PATH = "wizard_network.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save"),
                Binding("ctrl+d", "delete", "Delete group", priority=True)]  # over TextArea's ctrl+d

    class Loaded(ServiceDone):
        """``result`` is ``(rules text, note)`` from :func:`_read_group`."""

    class Saved(ServiceDone):
        """``result`` is the saved SecurityGroupInfo."""

    class Deleted(ServiceDone):
        """The group is gone (``result`` is None)."""

    class LoadFailed(ServiceFailed):
        """The group could not be read (or does not exist)."""

    class Failed(ServiceFailed):
        """Saving or deleting failed; the rules stay in the editor."""

    def __init__(self, session=None, *, tenant: str, group: str = "default"):
        super().__init__(session)
        self.tenant, self.group = tenant, group
        self.loaded = False
        self.error: str | None = None
        self.note = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="sgedit", classes="dialog"):
            yield Static(f"[b]Security group {escape(self.tenant)}/{escape(self.group)}[/b]",
                         classes="dialog-title")
            yield Static(HELP, id="sg-help")
            yield TextArea("", id="rules", soft_wrap=False, show_line_numbers=True)
            yield Static("loading …", id="status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True, disabled=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        session = self.session
        if session is None:
            self._set_status("not connected to OVN northbound", True)
            return
        tenant, group = self.tenant, self.group
        self.run_read(lambda: _read_group(session, tenant, group), done=self.Loaded, failed=self.LoadFailed)

    @on(LoadFailed)
    def _load_failed(self, event: LoadFailed) -> None:
        # "no security group …" is its own sentence; anything else is a read failure
        missing = isinstance(event.error, _NoSuchGroup)
        self._set_status(event.message if missing else f"cannot read the group: {event.message}", True)

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        text, note = event.result
        area = self.query_one("#rules", TextArea)
        area.load_text(text)
        area.focus()
        self.loaded = True
        self.note = note
        self._check()

    def lines(self) -> list[str]:
        return self.query_one("#rules", TextArea).text.splitlines()

    def _check(self) -> None:
        try:
            rules = security.parse_rules(self.lines())
            self.error = None
            self._set_status(f"{len(rules)} rule(s); {self.note}" if self.note else f"{len(rules)} rule(s)")
        except ValidationError as exc:
            self.error = exc.reason
            self._set_status(exc.reason, True)
        self.query_one("#save", Button).disabled = self.busy or not self.loaded or self.error is not None

    @on(TextArea.Changed)
    def _changed(self) -> None:
        if self.loaded:
            self._check()

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        if self.busy or not self.loaded:
            return
        self._check()
        if self.error:
            return
        self.busy = True
        self.query_one("#save", Button).disabled = True
        self._set_status("saving …")
        session, lines = self.session, self.lines()
        tenant, group = self.tenant, self.group
        self.run_service(lambda: security.set_rules(session, tenant, group, lines),
                         done=self.Saved, failed=self.Failed)

    def action_delete(self) -> None:
        if self.busy or not self.loaded:
            return
        from .vm_actions import ConfirmDialog
        session, tenant, group = self.session, self.tenant, self.group

        def answer(yes) -> None:
            if yes:
                self.busy = True
                self._set_status("deleting …")
                self.run_service(lambda: security.delete_security_group(session, tenant, group),
                                 done=self.Deleted, failed=self.Failed)
        self.app.push_screen(ConfirmDialog(f"Delete security group {self.tenant}/{self.group}?",
                                           [f"security group {self.tenant}/{self.group}"],
                                           "Its rules go; member ports stay, unprotected by it.",
                                           danger=True), answer)

    @on(Deleted)
    def _deleted(self) -> None:
        self.busy = False
        self.app.notify(f"deleted security group {self.tenant}/{self.group}")
        self.dismiss(None)

    @on(Failed)
    def _failed(self, event: Failed) -> None:
        self.busy = False
        self._set_status(event.message, True)
        self.query_one("#save", Button).disabled = False

    @on(Saved)
    def _saved(self, event: Saved) -> None:
        info = event.result
        self.busy = False
        self.app.notify(f"saved {len(info.rules)} rule(s) of {info.tenant}/{info.name}")
        self.dismiss(info)


class _NoSuchGroup(VirtdeckError):
    """The named group is not in the tenant (and is not "default", which a save creates)."""


def _read_group(session, tenant: str, group: str) -> tuple[str, str]:
    """``(rules text, note)`` of ``tenant``'s group ``group`` for the editor, one rule per line
    (blocking: an OVN NB read; run it in a worker). The default group not created yet reads as
    DEFAULT_RULES. Raises VirtdeckError when NB cannot be read, _NoSuchGroup for another
    missing group."""
    groups = security.list_security_groups(session, tenant)
    found = next((g for g in groups if g.name == group), None)
    if found is not None:
        lines = [r.text() for r in found.rules]
        note = f"{len(found.ports)} port(s) in this group"
    elif group == "default":
        from ..backends.ovn.security_groups import DEFAULT_RULES  # a dataclass constant, no OVN access
        lines = [r.text() for r in DEFAULT_RULES]
        note = "not created yet: these are the default rules; saving creates the group"
    else:
        raise _NoSuchGroup(f"no security group {group!r} in {tenant}")
    return "\n".join(lines) + "\n", note
