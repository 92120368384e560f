"""Operator verbs in the VMs panel: marks, confirmation, and the actions behind the verb keys.

:class:`VmActions` is a mixin for the main screen (``class MainScreen(VmActions, Screen)``).
The verbs, their keys, confirmations and service functions are declared once in the verb
registry (console/verbs/vm.py); the main screen binds each declared key and runs the verb's
``action`` here (``vm_verb('start')``, ``vm_resize``, ``vm_read('vm show')``, …). The marks
(``space`` mark / unmark the highlighted VM, ``ctrl+a`` mark every VM shown — all of them, or the
ones a ``/`` filter left —, ``x`` clear every mark: bulk verbs act on marks) are this panel's own keys, :data:`MARK_BINDINGS`. It needs from the screen: ``self.panel`` (the
active panel name), ``self.table()`` (the CloudTable of the active panel, rows keyed
``vm:HOST:UUID``) and ``self.refresh_cloud(force)``; the screen calls
:meth:`VmActions.decorate_rows` on each panel's rows so marked VMs show a mark.

Every verb runs its service function in a thread worker (the UI never waits on a host) and
reports one notification per VM (a read verb shows its text in a DetailsDialog; the resize,
move and details dialogs are in screens/vm_dialogs.py). :class:`ConfirmDialog` is the yes/no
question the other panels' screens use too. A
read-only console refuses every mutating key. This module never imports libvirt, ovsdbapp or
asyncssh.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import replace
from typing import Callable

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ..console import verbs
from ..console.errors import VirtdeckError
from ..console.services import guard
from ..console.services.verb import _detached
from .vm_dialogs import DetailsDialog, MoveDialog, ResizeDialog

# The vm_* services are imported where a verb runs, not here: they pull in backends.domains
# and libvirt (~20-40 ms), which the main screen would otherwise load before its first frame.

MARK = "● "


def _verb(leaf: str) -> verbs.Verb:
    """The registry's ``vm <leaf>`` verb."""
    return verbs.get(f"vm {leaf}")


# ---------------------------------------------------------------------------------------------
# Dialogs


class ConfirmDialog(ModalScreen[bool]):
    """Yes/no question listing the targets. ``y`` / Enter on "Yes" confirms; ``n`` / escape
    cancels. Dismisses with True or False."""

    CSS_PATH = "vm_actions.tcss"
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, title: str, targets: list[str], note: str = "", danger: bool = False):
        super().__init__()
        self.title_text, self.targets, self.note, self.danger = title, targets, note, danger

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="vm-dialog" + (" -danger" if self.danger else "")):
            yield Static(f"[b]{escape(self.title_text)}[/b]", classes="vm-dialog-title")
            with VerticalScroll(id="confirm-targets"):
                yield Static("\n".join(f"  • {escape(t)}" for t in self.targets))
            if self.note:
                yield Static(escape(self.note), classes="vm-dialog-note")
            with Horizontal(classes="vm-dialog-buttons"):
                yield Button("Yes (y)", id="yes", variant="error" if self.danger else "primary")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no" if self.danger else "#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


# ---------------------------------------------------------------------------------------------
# The mixin


#: The VMs panel's own keys besides its verbs (those come from the verb registry). The main
#: screen adds them to its BINDINGS (Textual merges bindings only from DOMNode classes, so a
#: plain mixin's BINDINGS would be ignored).
MARK_BINDINGS = [
    Binding("space", "vm_mark", "Mark", show=False),
    Binding("ctrl+a", "vm_mark_all", "Mark all shown (the filtered ones under a filter)", show=False),
    Binding("x", "vm_clear_marks", "Clear marks", show=False),
]


class VmActions:
    """Actions for the VMs panel (see module doc). Mix into the main screen, whose BINDINGS
    must include :data:`MARK_BINDINGS` and the registry's keys."""

    #: seconds a shutdown waits for the guest before offering a force-off
    SHUTDOWN_TIMEOUT = 60.0

    # -- marks --------------------------------------------------------------------------------

    @property
    def vm_marks(self) -> set[str]:
        marks = getattr(self, "_vm_marks", None)
        if marks is None:
            marks = self._vm_marks = set()
        return marks

    def decorate_rows(self, panel: str, rows: list) -> list:
        """Rows of ``panel`` with a mark before the name of every marked VM (VMs panel only);
        marks of VMs that are gone are forgotten."""
        if panel != "vms":
            return rows
        marks = self.vm_marks
        if not marks:
            return rows
        marks.intersection_update({r.key for r in rows})
        out = []
        for r in rows:
            if r.key in marks:
                cells = (MARK + r.cells[0],) + tuple(r.cells[1:])
                out.append(replace(r, cells=cells, search=r.search or " ".join(r.cells)))
            else:
                out.append(r)
        return out

    def _vms_by_key(self) -> dict:
        return {f"vm:{v.host}:{v.uuid}": v for v in self.app.cloud.vms}

    def _cursor_vm(self):
        if self.panel != "vms":
            return None
        table = self.table()
        key = table.cursor_key if table else None
        return self._vms_by_key().get(key) if key else None

    def _targets(self) -> list:
        """Marked VMs (in table order) or else the highlighted one."""
        by_key = self._vms_by_key()
        if self.vm_marks:
            table = self.table("vms")
            order = [r.key for r in table.rows] if table else sorted(self.vm_marks)
            return [by_key[k] for k in order if k in self.vm_marks and k in by_key]
        vm = self._cursor_vm()
        return [vm] if vm else []

    def _in_vms_panel(self) -> bool:
        if self.panel != "vms":
            self.notify("VM keys work in the VMs panel (2)", timeout=3)
            return False
        return True

    def _writable(self, verb: str) -> bool:
        if getattr(self.app, "readonly", False) or guard.is_readonly():
            self.notify(f"read-only console: {verb} refused", severity="error")
            return False
        if self.app.session is None:
            self.notify("no connection to the hosts in this console", severity="error")
            return False
        return True

    def action_vm_mark(self) -> None:
        if not self._in_vms_panel():
            return
        table = self.table()
        key = table.cursor_key if table else None
        if not key:
            return
        self.vm_marks.symmetric_difference_update({key})
        self.refresh_cloud(force=True)
        table.set_cursor(table.cursor + 1)

    def action_vm_mark_all(self) -> None:
        """Mark every VM the VMs table shows: all of them, or those a filter left."""
        if not self._in_vms_panel():
            return
        table = self.table("vms")
        shown = {r.key for r in table.rows} if table else set()
        if not shown:
            self.notify("no VM shown to mark", timeout=3)
            return
        self.vm_marks.update(shown)
        self.refresh_cloud(force=True)
        self.notify(f"{len(self.vm_marks)} VM(s) marked (x clears)", timeout=3)

    def action_vm_clear_marks(self) -> None:
        if self.vm_marks:
            self.vm_marks.clear()
            self.refresh_cloud(force=True)

    # -- lifecycle verbs ----------------------------------------------------------------------

    def action_vm_verb(self, verb: str) -> None:
        if not self._in_vms_panel():
            return
        targets = self._targets()
        if not targets:
            self.notify("no VM highlighted", timeout=3)
            return
        if not self._writable(verb):
            return
        confirm = _verb(verb).confirm
        if confirm is not None and (confirm.always or len(targets) > 1):
            names = [f"{v.name}  ({v.host}, {v.state})" for v in targets]
            note = confirm.note.format(timeout=self.SHUTDOWN_TIMEOUT)
            self.app.push_screen(
                ConfirmDialog(f"{confirm.word} {len(targets)} VM(s)?", names, note, danger=confirm.danger),
                lambda yes: yes and self._run_lifecycle(verb, targets))
        else:
            self._run_lifecycle(verb, targets)

    def _run_lifecycle(self, verb: str, targets: list) -> None:
        session = self.app.session
        fn = _verb(verb).service_fn()
        kwargs = {"timeout": self.SHUTDOWN_TIMEOUT} if verb == "shutdown" else {}
        if verb == "delete":
            keys = {f"vm:{v.host}:{v.uuid}" for v in targets}
            self.vm_marks.difference_update(keys)

        def one(vm):
            try:
                return vm, fn(session, vm.name, host=vm.host, **kwargs)
            except VirtdeckError as exc:
                return vm, _detached(exc)

        def work() -> None:
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(4, len(targets))) as pool:
                for vm, res in pool.map(one, targets):
                    self.app.call_from_thread(self._report, verb, vm, res)

        word = (_verb(verb).confirm or verbs.Confirm(verb)).word
        self.notify(f"{word.lower()}: {', '.join(v.name for v in targets)} …", timeout=2)
        self.run_worker(work, thread=True, group="vm-ops", exit_on_error=False)

    def _report(self, verb: str, vm, res) -> None:
        from ..console.services import vm_power
        if isinstance(res, vm_power.ShutdownTimeout):
            self.app.push_screen(
                ConfirmDialog(f"{vm.name} did not shut down within {res.timeout:g} s. Force it off?",
                              [f"{vm.name}  ({vm.host})"], "Like pulling the plug: unsaved guest data is lost.",
                              danger=True),
                lambda yes: yes and self._run_lifecycle("poweroff", [vm]))
            return
        if isinstance(res, Exception):
            self.notify(str(res), severity="error", timeout=8)
            return
        if res.outcome == "noop":
            self.notify(res.message + " (nothing to do)", timeout=4)
        else:
            self.notify(res.message, timeout=4)

    # -- resize, move, ip ---------------------------------------------------------------------

    def _single(self, verb: str):
        if not self._in_vms_panel():
            return None
        if self.vm_marks and len(self._targets()) > 1:
            self.notify(f"{verb} works on one VM: clear the marks (x) or highlight one", timeout=4)
            return None
        targets = self._targets()
        if not targets:
            self.notify("no VM highlighted", timeout=3)
            return None
        return targets[0]

    def action_vm_resize(self) -> None:
        vm = self._single("resize")
        if vm is None or not self._writable("resize"):
            return

        def done(vals) -> None:
            from ..console.services import vm_resize
            if vals:
                self._background(lambda s: vm_resize.resize(s, vm.name, vcpus=vals[0], memory_mib=vals[1], host=vm.host),
                                 "resize", vm)
        self.app.push_screen(ResizeDialog(vm.name, vm.vcpus, vm.memory_mib), done)

    def action_vm_move(self) -> None:
        vm = self._single("move")
        if vm is None or not self._writable("move"):
            return
        inv = getattr(self.app, "inventory", None) or getattr(self.app.session, "inventory", None)
        hosts = [h.name for h in inv.hypervisors if h.enabled and h.name != vm.host] if inv else []
        if not hosts:
            self.notify("no other enabled hypervisor to move to", severity="warning")
            return

        def done(to) -> None:
            from ..console.services import vm_move
            if to:
                self._background(lambda s: vm_move.move(s, vm.name, to, host=vm.host), "move", vm)
        self.app.push_screen(MoveDialog(vm.name, vm.host, hosts), done)

    def action_vm_ip(self) -> None:
        vm = self._single("ip")
        if vm is None or self.app.session is None:
            return

        def work() -> None:
            from ..console.services import vm_lookup
            try:
                nics = vm_lookup.ip(self.app.session, vm.name, host=vm.host)
                text = "; ".join(f"{n['mac']}: {', '.join(n['ips']) or 'no address yet'}" for n in nics) or "no NICs"
                self.app.call_from_thread(self.notify, f"{vm.name}: {text}", timeout=8)
            except VirtdeckError as exc:
                self.app.call_from_thread(self.notify, str(exc), severity="error", timeout=8)
        self.run_worker(work, thread=True, group="vm-ops", exit_on_error=False)

    def action_vm_read(self, name: str) -> None:
        """Run read verb ``name`` (``"vm show"``) on the highlighted VM in a thread worker and
        show its text lines (the verb's ``render``) in a :class:`DetailsDialog`."""
        verb = verbs.get(name)
        vm = self._single(verb.leaf)
        if vm is None:
            return
        session = self.app.session
        if session is None:
            self.notify("no connection to the hosts in this console", severity="error")
            return

        def work() -> None:
            try:
                res = verb.service_fn()(session, vm.name, host=vm.host)
                render = verb.render_fn()
                lines = render(res) if render else [str(res)]
            except VirtdeckError as exc:
                self.app.call_from_thread(self.notify, str(exc), severity="error", timeout=8)
                return
            self.app.call_from_thread(self.app.push_screen, DetailsDialog(f"{name} {vm.name}", lines))
        self.run_worker(work, thread=True, group="vm-ops", exit_on_error=False)

    def _background(self, call: Callable, verb: str, vm) -> None:
        session = self.app.session

        def work() -> None:
            try:
                res = call(session)
            except VirtdeckError as exc:
                res = _detached(exc)
            self.app.call_from_thread(self._report, verb, vm, res)
        self.notify(f"{verb}: {vm.name} …", timeout=2)
        self.run_worker(work, thread=True, group="vm-ops", exit_on_error=False)

    # -- edit cloud-config ($EDITOR) ----------------------------------------------------------

    def action_vm_edit_config(self) -> None:
        vm = self._single("edit-config")
        if vm is None or not self._writable("edit-config"):
            return
        session = self.app.session

        def fetch() -> None:
            from ..console.services import vm_seed
            try:
                text = vm_seed.get_user_data(session, vm.name, host=vm.host)
            except VirtdeckError as exc:
                self.app.call_from_thread(self.notify, str(exc), severity="error", timeout=8)
                return
            self.app.call_from_thread(self._edit_user_data, vm, text, text)
        self.run_worker(fetch, thread=True, group="vm-ops", exit_on_error=False)

    def _edit_user_data(self, vm, original: str, text: str) -> None:
        """Open ``text`` in $EDITOR with the TUI suspended; validate; apply or offer a re-edit."""
        from ..console.cli_vm_verbs import edit_text
        from ..console.services import vm_seed
        try:
            with self.app.suspend():
                new = edit_text(text, suffix=".yaml")
        except Exception as exc:  # noqa: BLE001 - e.g. SuspendNotSupported in a headless run
            self.notify(f"cannot open an editor here: {exc or type(exc).__name__}", severity="error")
            return
        if new is None:
            self.notify("the editor failed; the seed was left as it is", severity="warning")
            return
        if new == original:
            self.notify(f"{vm.name}: user-data unchanged", timeout=3)
            return
        try:
            vm_seed.validate_user_data(new)
        except VirtdeckError as exc:
            self.app.push_screen(
                ConfirmDialog("The user-data is not valid. Edit it again?", [str(exc)],
                              "No keeps the VM's seed as it is."),
                lambda yes: yes and self._edit_user_data(vm, original, new))
            return
        self._background(lambda s: vm_seed.edit_config(s, vm.name, new, host=vm.host), "edit-config", vm)

    # -- serial console -----------------------------------------------------------------------

    def action_vm_console(self) -> None:
        vm = self._single("console")
        if vm is None or not self._writable("console"):
            return
        if vm.state not in ("running", "blocked", "paused"):
            self.notify(f"{vm.name} is {vm.state}; start it to use its console", severity="warning")
            return
        from ..console.services import vm_console
        try:
            with self.app.suspend():
                vm_console.console(self.app.session, vm.name, host=vm.host)
        except VirtdeckError as exc:
            self.notify(str(exc), severity="error", timeout=8)
        except Exception as exc:  # noqa: BLE001 - e.g. SuspendNotSupported in a headless run
            self.notify(f"cannot attach a console here: {exc or type(exc).__name__}", severity="error")
