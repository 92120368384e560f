"""Actions for the Hosts panel: check, disable (maintenance) and enable the highlighted host.

The keys and their legends come from the verb registry (console/verbs/host.py: ``C``, ``M``,
``E`` in the Hosts panel); this mixin only supplies the actions they name. Each runs its service
in a thread worker (:meth:`HostActions._host_work`, ``@work(thread=True)``) that posts one
:class:`HostVerbDone` message; its handler shows the check's lines in a dialog or says what
changed. Mixed into screens/main.py ``MainScreen`` (which has ``panel``, ``table()`` and the app).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.message import Message

from ..console import verbs
from ..console.errors import VirtdeckError
from .vm_actions import ConfirmDialog
from .vm_dialogs import DetailsDialog


class HostVerbDone(Message):
    """A host verb finished: ``verb`` (``"host check"``), ``host``, its ``result`` (the service's
    dict) or the ``error`` line."""

    def __init__(self, verb: str, host: str, result: dict | None = None, error: str | None = None):
        super().__init__()
        self.verb, self.host, self.result, self.error = verb, host, result, error


class HostActions:
    """``host_check`` / ``host_disable`` / ``host_enable`` on the Hosts panel's highlighted row."""

    def _highlighted_host(self) -> str | None:
        if self.panel != "hosts":
            self.notify("host keys work in the Hosts panel (1)", timeout=3)
            return None
        table = self.table("hosts")
        key = table.cursor_key if table else None
        if not key:
            self.notify("no host highlighted", timeout=3)
            return None
        return key.removeprefix("host:")

    def action_host_check(self) -> None:
        host = self._highlighted_host()
        if host:
            self.notify(f"checking {host} …", timeout=2)
            self._host_work("host check", host)

    def action_host_disable(self) -> None:
        host = self._highlighted_host()
        if not host or not self.app._writable("host disable"):
            return
        confirm = verbs.get("host disable").confirm
        self.app.push_screen(ConfirmDialog(f"{confirm.word} {host}?", [host], confirm.note),
                             lambda yes: yes and self._host_work("host disable", host))

    def action_host_enable(self) -> None:
        host = self._highlighted_host()
        if host and self.app._writable("host enable"):
            self._host_work("host enable", host)

    @work(thread=True, exit_on_error=False, group="host-ops")
    def _host_work(self, name: str, host: str) -> None:
        session = self.app.session
        if session is None:
            self.post_message(HostVerbDone(name, host, error="no connection to the hosts in this console"))
            return
        try:
            result = verbs.get(name).service_fn()(session, host)
        except VirtdeckError as exc:
            self.post_message(HostVerbDone(name, host, error=str(exc)))
            return
        self.post_message(HostVerbDone(name, host, result=result))

    def on_host_verb_done(self, msg: HostVerbDone) -> None:
        # by name, not @on: the decorator's handler table is built per class, not for a mixin
        if msg.error:
            self.notify(msg.error, severity="error", timeout=8)
            return
        if msg.verb == "host check":
            from ..console.services.host_check import check_text
            self.app.push_screen(DetailsDialog(f"host check {msg.host}", check_text(msg.result)))
            return
        self.app.inventory = self.app.session.inventory  # the service wrote and adopted it
        res = msg.result
        if res.get("outcome") == "noop":
            self.notify(f"{msg.host} is already {'enabled' if res['enabled'] else 'disabled'}", timeout=4)
        elif res["enabled"]:
            self.notify(f"{msg.host} enabled: placement may pick it", timeout=5)
        else:
            self.notify(f"{msg.host} disabled ({res['reason']}): placement skips it", timeout=5)
