"""Modal dialogs: the host-key question and the help screen."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class HostKeyDialog(ModalScreen[bool]):
    """Ask whether to trust an unknown SSH host key. Dismisses with True (trust) or False.

    ``y`` trusts, ``n`` / ``escape`` refuses. The fingerprint is OpenSSH's ``SHA256:…`` so the
    operator can compare it with ``ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`` on the host.
    """

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [
        Binding("y", "answer(True)", "Trust"),
        Binding("n,escape", "answer(False)", "Refuse"),
    ]

    def __init__(self, host: str, address: str, port: int, fingerprint: str):
        super().__init__()
        self.host, self.address, self.port, self.fingerprint = host, address, port, fingerprint

    def compose(self) -> ComposeResult:
        with Vertical(id="hostkey", classes="dialog"):
            yield Static("[b]Unknown SSH host key[/b]", classes="dialog-title")
            yield Static(
                f"Host [b]{escape(self.host)}[/b] ({escape(self.address)}:{self.port}) offers a "
                f"key that no known_hosts file lists:\n\n  [b]{escape(self.fingerprint)}[/b]\n\n"
                "Compare it with the host's own key (ssh-keygen -lf on the host). Trust it and "
                "record it in known_hosts?")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Trust (y)", id="trust", variant="warning")
                yield Button("Refuse (n)", id="refuse", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#refuse", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "trust")

    def action_answer(self, trust: bool) -> None:
        self.dismiss(trust)


class HelpScreen(ModalScreen[None]):
    """Every key binding, grouped by where it works (built from the live binding tables).
    ``groups``: ``[(title, [(keys, text[, changes]), …]), …]``; in a ``readonly`` console the
    rows that change the cloud (``changes``) are dimmed and marked, as the footer leaves them out."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, groups: list[tuple[str, list[tuple]]], readonly: bool = False):
        super().__init__()
        self.groups = groups
        self.readonly = readonly

    def compose(self) -> ComposeResult:
        head = "[b]virtdeck keys[/b]  (escape closes)"
        if self.readonly:
            head += "\n[b reverse] READ-ONLY [/] dimmed keys change the cloud and are refused"
        lines = [head, ""]
        for title, items in self.groups:
            lines.append(f"[b u]{escape(title)}[/b u]")
            for keys, what, *changes in items:
                if self.readonly and changes and changes[0]:
                    lines.append(f"  [dim]{escape(keys):<18} {escape(what)} (read-only)[/dim]")
                else:
                    lines.append(f"  [b]{escape(keys):<18}[/b] {escape(what)}")
            lines.append("")
        with VerticalScroll(id="help", classes="dialog"):
            yield Static("\n".join(lines))

    def action_close(self) -> None:
        self.dismiss(None)
