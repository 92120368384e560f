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
from .form import FormScreen, error_parts
from ..console.services import security

HELP = ("one rule per line: [b]ingress|egress[/b] any|icmp|tcp|udp [PORT[-PORT]] "
        "[from|to CIDR|self] — everything else is dropped; replies always pass")


class SecurityGroupEditor(FormScreen):
    """Edit one security group's rules. Keys: ctrl+s save, escape cancel."""

    CSS_PATH = "wizard_network.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save"),
                Binding("ctrl+d", "delete", "Delete group", priority=True)]  # over TextArea's ctrl+d

    def __init__(self, session=None, *, tenant: str, group: str = "default"):
        super().__init__()
        self._session = session
        self.tenant, self.group = tenant, group
        self.loaded = False
        self.busy = False
        self.error: str | None = None
        self.note = ""

    @property
    def session(self):
        return self._session if self._session is not None else getattr(self.app, "session", None)

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
        self.run_worker(lambda: self._load(session), thread=True, group="sg-load")

    def _load(self, session) -> None:
        try:
            groups = security.list_security_groups(session, self.tenant)
        except VirtdeckError as exc:
            self.app.call_from_thread(self._set_status, f"cannot read the group: {exc}", True)
            return
        found = next((g for g in groups if g.name == self.group), None)
        if found is not None:
            lines = [r.text() for r in found.rules]
            note = f"{len(found.ports)} port(s) in this group"
        elif self.group == "default":
            from ..backends.ovn.security_groups import DEFAULT_RULES  # a dataclass constant, no OVN access
            lines = [r.text() for r in DEFAULT_RULES]
            note = "not created yet: these are the default rules; saving creates the group"
        else:
            self.app.call_from_thread(self._set_status, f"no security group {self.group!r} in {self.tenant}", True)
            return
        self.app.call_from_thread(self._loaded, "\n".join(lines) + "\n", note)

    def _loaded(self, text: str, note: str) -> None:
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
        self.run_worker(lambda: self._save(session, lines), thread=True, group="sg-save")

    def _save(self, session, lines) -> None:
        try:
            info = security.set_rules(session, self.tenant, self.group, lines)
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            self.app.call_from_thread(self._failed, error_parts(exc)[0])
            return
        self.app.call_from_thread(self._saved, info)

    def action_delete(self) -> None:
        if self.busy or not self.loaded:
            return
        from .vm_actions import ConfirmDialog
        session = self.session

        def delete() -> None:
            try:
                security.delete_security_group(session, self.tenant, self.group)
            except Exception as exc:  # noqa: BLE001 - one line, never a traceback
                self.app.call_from_thread(self._failed, error_parts(exc)[0])
                return
            self.app.call_from_thread(self._deleted)

        def answer(yes) -> None:
            if yes:
                self.busy = True
                self._set_status("deleting …")
                self.run_worker(delete, thread=True, group="sg-delete")
        self.app.push_screen(ConfirmDialog(f"Delete security group {self.tenant}/{self.group}?",
                                           [f"security group {self.tenant}/{self.group}"],
                                           "Its rules go; member ports stay, unprotected by it.",
                                           danger=True), answer)

    def _deleted(self) -> None:
        self.busy = False
        self.app.notify(f"deleted security group {self.tenant}/{self.group}")
        self.dismiss(None)

    def _failed(self, message: str) -> None:
        self.busy = False
        self._set_status(message, True)
        self.query_one("#save", Button).disabled = False

    def _saved(self, info) -> None:
        self.busy = False
        self.app.notify(f"saved {len(info.rules)} rule(s) of {info.tenant}/{info.name}")
        self.dismiss(info)
