"""The drift view: `virtdeck check` in the console (palette: "check").

Opened on the highlighted row of the panel (a host, VM, network or router: :func:`scope_of`) it
shows that object's dependency chain, each link ok or ``<- drift``, and its findings, as
``virtdeck check KIND NAME`` prints them; ``a`` switches to the whole cloud. Each finding is one
block — kind, subject, what disagrees, its fix. The check runs in a thread worker
(console/services/drift.py ``check``). ``f`` asks (a confirmation listing the orphans) and
removes the safe findings through ``drift.fix``; ``r`` checks again; escape / q closes.
Layering: services only, no backend import.
"""

from __future__ import annotations

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from ..console.errors import VirtdeckError
from .vm_actions import ConfirmDialog


class DriftDone(Message):
    """The check (or the fix, then the check again) finished: ``report`` (drift.check's dict),
    ``fixed`` (drift.fix's dict, when a fix ran) or ``error`` (one line)."""

    def __init__(self, report: dict | None = None, fixed: dict | None = None, error: str | None = None):
        super().__init__()
        self.report, self.fixed, self.error = report, fixed, error


class DriftScreen(ModalScreen[None]):
    """The drift check's findings; ``f`` removes the safe ones after a confirmation."""

    CSS_PATH = "vm_actions.tcss"
    BINDINGS = [Binding("escape,q", "close", "Close"), Binding("r", "recheck", "Check again"),
                Binding("f", "fix", "Remove orphans"), Binding("a", "whole", "Whole cloud")]

    def __init__(self, session=None, scope: tuple[str, str] | None = None) -> None:
        super().__init__()
        self._session = session
        self.scope = scope          # ("vm", "web1") … or None: the whole cloud
        self.report: dict | None = None

    @property
    def session(self):
        return self._session if self._session is not None else getattr(self.app, "session", None)

    def compose(self) -> ComposeResult:
        with Vertical(id="details-dialog", classes="vm-dialog"):
            yield Static(self._title(), classes="vm-dialog-title", id="drift-title")
            with VerticalScroll(id="details-lines"):
                yield Static("checking libvirt, OVN NB and SB …", id="drift-text")

    def _title(self) -> str:
        what = f"{self.scope[0]} {escape(self.scope[1])}" if self.scope else "whole cloud"
        return f"[b]Drift check: {what}[/b]  r again · a all · f remove orphans · esc close"

    def on_mount(self) -> None:
        self._run(fix=False)

    def action_whole(self) -> None:
        self.scope = None
        self.query_one("#drift-title", Static).update(self._title())
        self.action_recheck()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_recheck(self) -> None:
        self.query_one("#drift-text", Static).update("checking …")
        self._run(fix=False)

    def action_fix(self) -> None:
        safe = [f["subject"] for f in (self.report or {}).get("findings", []) if f["safe"]]
        if not safe:
            self.notify("no orphan to remove", timeout=3)
            return
        if hasattr(self.app, "_writable") and not self.app._writable("drift.fix"):
            return
        self.app.push_screen(ConfirmDialog(f"Remove {len(safe)} orphan(s)?", safe,
                                           "Each is checked again just before it goes.", danger=True),
                             lambda yes: yes and self._run(fix=True))

    @work(thread=True, exit_on_error=False, group="drift")
    def _run(self, fix: bool) -> None:
        from ..console.services import drift
        session = self.session
        if session is None:
            self.post_message(DriftDone(error="no connection to the hosts in this console"))
            return
        try:
            fixed = drift.fix(session, self.report) if fix and self.report else None
            report = drift.check(session, *(self.scope or (None, None)))
        except VirtdeckError as exc:
            self.post_message(DriftDone(error=str(exc)))
            return
        self.post_message(DriftDone(report, fixed))

    def on_drift_done(self, msg: DriftDone) -> None:
        from ..console.services import drift
        text = self.query_one("#drift-text", Static)
        if msg.error:
            text.update(escape(msg.error))
            self.notify(msg.error, severity="error", timeout=8)
            return
        self.report = msg.report
        lines = drift.fix_text(msg.fixed) + [""] if msg.fixed else []
        text.update(escape("\n".join(lines + drift.check_text(msg.report))))


def scope_of(cloud, key: str | None) -> tuple[str, str] | None:
    """The check scope of a main-screen row key (``host:hv1``, ``vm:HOST:UUID``, ``net:UUID``,
    ``router:UUID``) in ``cloud``: ``("host", "hv1")``, ``("vm", name)``, ``("network",
    label)``, ``("router", label)``; None for anything else (the whole cloud)."""
    if not key or cloud is None:
        return None
    kind, _, rest = key.partition(":")
    if kind == "host":
        return ("host", rest)
    if kind == "vm":
        uuid = rest.rsplit(":", 1)[-1]
        v = next((v for v in cloud.vms if v.uuid == uuid), None)
        return ("vm", v.name) if v else None
    if kind == "net":
        n = next((n for n in cloud.networks if n.uuid == rest), None)
        return ("network", n.label or n.name) if n else None
    if kind == "router":
        r = next((r for r in cloud.routers if r.uuid == rest), None)
        return ("router", r.label or r.name) if r else None
    return None
