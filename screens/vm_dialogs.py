"""The VMs panel's input and output dialogs: resize (vCPUs, RAM MiB), move (target host) and
details (a read verb's text, e.g. ``vm show``). Styles: vm_actions.tcss. The yes/no question is
:class:`screens.vm_actions.ConfirmDialog`; the actions that open these are in vm_actions.py.
"""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static


class ResizeDialog(ModalScreen["tuple[int, int] | None"]):
    """Ask for vCPUs and RAM (MiB), pre-filled; validates whole numbers as you type.
    Dismisses with ``(vcpus, memory_mib)`` or None."""

    CSS_PATH = "vm_actions.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, vm: str, vcpus: int, memory_mib: int):
        super().__init__()
        self.vm, self.vcpus, self.memory_mib = vm, vcpus, memory_mib

    def compose(self) -> ComposeResult:
        with Vertical(id="resize", classes="vm-dialog"):
            yield Static(f"[b]Resize {escape(self.vm)}[/b]", classes="vm-dialog-title")
            with Horizontal(classes="vm-field"):
                yield Label("vCPUs", classes="vm-label")
                yield Input(str(self.vcpus), id="vcpus", restrict=r"[0-9]*", max_length=3)
            with Horizontal(classes="vm-field"):
                yield Label("RAM MiB", classes="vm-label")
                yield Input(str(self.memory_mib), id="memory", restrict=r"[0-9]*", max_length=7)
            yield Static("Live where the VM's maximum allows, else at its next boot; the host's "
                         "capacity is checked first.", classes="vm-dialog-note")
            yield Static("", id="resize-why", classes="vm-why")
            with Horizontal(classes="vm-dialog-buttons"):
                yield Button("Resize", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#vcpus", Input).focus()

    def _values(self) -> tuple[int, int] | None:
        why = self.query_one("#resize-why", Static)
        try:
            v = int(self.query_one("#vcpus", Input).value or "0")
            m = int(self.query_one("#memory", Input).value or "0")
        except ValueError:
            v = m = 0
        if v < 1:
            why.update("vCPUs: a whole number, at least 1")
            return None
        if m < 64:
            why.update("RAM: whole MiB, at least 64")
            return None
        why.update("")
        return v, m

    def on_input_changed(self, _event: Input.Changed) -> None:
        self._values()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        vals = self._values()
        if vals is not None:
            self.dismiss(vals)

    def action_cancel(self) -> None:
        self.dismiss(None)


class MoveDialog(ModalScreen["str | None"]):
    """Pick the target hypervisor for a cold move. Dismisses with the host name or None."""

    CSS_PATH = "vm_actions.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, vm: str, current: str, hosts: list[str]):
        super().__init__()
        self.vm, self.current, self.hosts = vm, current, hosts

    def compose(self) -> ComposeResult:
        with Vertical(id="move", classes="vm-dialog"):
            yield Static(f"[b]Move {escape(self.vm)}[/b] (now on {escape(self.current)}) to:",
                         classes="vm-dialog-title")
            yield OptionList(*self.hosts, id="move-hosts")
            yield Static("The VM must be shut off; its disk and seed are copied through libvirt.",
                         classes="vm-dialog-note")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.hosts[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)


class DetailsDialog(ModalScreen[None]):
    """Read-only text (a read verb's result, e.g. ``vm show``); escape / q / enter closes."""

    CSS_PATH = "vm_actions.tcss"
    BINDINGS = [Binding("escape,q,enter", "close", "Close")]

    def __init__(self, title: str, lines: list[str]):
        super().__init__()
        self.title_text, self.lines = title, lines

    def compose(self) -> ComposeResult:
        with Vertical(id="details-dialog", classes="vm-dialog"):
            yield Static(f"[b]{escape(self.title_text)}[/b]", classes="vm-dialog-title")
            with VerticalScroll(id="details-lines"):
                yield Static(escape("\n".join(self.lines)), id="details-text")

    def action_close(self) -> None:
        self.dismiss(None)
