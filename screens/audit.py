"""The Audit view: the audit trail's recent records (the ``audit`` verb, from the palette).

One row per record of ``console.services.audit_read.read`` (the trail console/audit.py writes:
``$XDG_STATE_HOME/virtdeck/audit.jsonl``), newest first: time (UTC, to the second), operator,
verb, target, outcome. Read in a thread worker when opened and on ``r``; the table sorts and
selects like the panels' (``<``/``>``/``~``, header click), ``/`` filters by a regular
expression, ``enter`` shows one record in full (its details too), ``escape`` goes back.
Read-only: nothing here changes the cloud. This module imports no libvirt, ovsdbapp or asyncssh.
"""

from __future__ import annotations

import json
import os
import re

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, Static

from ..console.errors import VirtdeckError
from .footer import KeyFooter
from .table import CloudTable, Column, Row

#: records shown (the newest); older ones: ``virtdeck audit --until …``
AUDIT_SHOWN = 1000


def _outcome_style(text: str) -> str:
    return "green" if text == "ok" else "bold red" if text.startswith("failed") else "dim"


AUDIT_COLUMNS = (
    Column("time", "Time (UTC)", 19, 19),
    Column("operator", "Operator", 6, 20),
    Column("verb", "Verb", 6, 18),
    Column("target", "Target", 6, 30),
    Column("outcome", "Outcome", 7, 60, flex=True, style=_outcome_style),
)


def audit_rows(records: list[dict]) -> list[Row]:
    """Rows of the Audit view, newest first; keys ``audit:N`` (N: the record's index, oldest 0)."""
    rows = []
    for i, r in enumerate(records):
        when = str(r.get("time", "?"))[:19].replace("T", " ")
        rows.append(Row(f"audit:{i}", (when, str(r.get("operator", "")), str(r.get("verb", "")),
                                       str(r.get("target", "")), str(r.get("outcome", "")))))
    rows.reverse()
    return rows


class AuditScreen(Screen[None]):
    """The audit trail's newest :data:`AUDIT_SHOWN` records (see the module doc)."""

    DEFAULT_CSS = """
    AuditScreen #audit-status { height: 1; padding: 0 1; background: $panel; }
    AuditScreen CloudTable { height: 1fr; }
    AuditScreen #audit-filter { dock: bottom; height: 3; margin-bottom: 1; display: none; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "reload", "Reload"),
        Binding("slash", "filter", "Filter", key_display="/"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict] | None = None
        self.pattern = ""
        self.path = ""

    def compose(self) -> ComposeResult:
        yield Static("[b]audit trail[/b] reading…", id="audit-status")
        yield CloudTable(AUDIT_COLUMNS, id="audit-table", empty="no audit records yet")
        yield Input(placeholder="filter (regular expression, Enter to apply, Esc to clear)", id="audit-filter")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(CloudTable).focus()
        self.action_reload()

    def action_reload(self) -> None:
        self.run_worker(self._read, thread=True, group="audit-read", exclusive=True, exit_on_error=False)

    def _read(self) -> None:
        from ..console.services import audit_read
        try:
            res = audit_read.read(limit=AUDIT_SHOWN)
        except (VirtdeckError, OSError) as exc:
            self.app.call_from_thread(self.notify, f"audit trail: {exc}", severity="error")
            return
        self.app.call_from_thread(self._show, res)

    def _show(self, res: dict) -> None:
        self.records = list(res.get("records", []))
        self.path = str(res.get("path", ""))
        self._fill()

    def _fill(self) -> None:
        rows = audit_rows(self.records or [])
        table = self.query_one(CloudTable)
        if self.pattern:
            rx = re.compile(self.pattern, re.IGNORECASE)
            rows = [r for r in rows if rx.search(r.text)]
            table.empty_text = f"no match for /{self.pattern}/ (escape clears the filter)"
        else:
            table.empty_text = "no audit records yet"
        table.set_rows(rows)
        shown = f"{len(rows)} of {len(self.records or [])}" if self.pattern else str(len(rows))
        flt = f" · filter [b]/{escape(self.pattern)}/[/b]" if self.pattern else ""
        self.query_one("#audit-status", Static).update(
            f"[b]audit trail[/b] {shown} records, newest first ({escape(os.path.basename(self.path))}){flt}")

    def action_filter(self) -> None:
        box = self.query_one("#audit-filter", Input)
        box.display = True
        box.value = self.pattern
        box.focus()

    @on(Input.Submitted, "#audit-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        try:
            re.compile(event.value)
        except re.error as exc:
            self.notify(f"not a regular expression: {exc}", severity="error")
            return
        self.pattern = event.value
        event.input.display = False
        self.query_one(CloudTable).focus()
        self._fill()

    def action_back(self) -> None:
        box = self.query_one("#audit-filter", Input)
        if box.display or self.pattern:      # escape clears the filter first, as in the panels
            box.display = False
            self.pattern = ""
            self.query_one(CloudTable).focus()
            self._fill()
            return
        self.dismiss(None)

    @on(CloudTable.Selected)
    def _selected(self, event: CloudTable.Selected) -> None:
        if not event.key or self.records is None:
            return
        from .vm_dialogs import DetailsDialog
        rec = self.records[int(event.key.removeprefix("audit:"))]
        lines = json.dumps(rec, indent=2, ensure_ascii=False, default=str).splitlines()
        self.app.push_screen(DetailsDialog(f"audit record {rec.get('verb', '')} {rec.get('target', '')}", lines))
