"""The console app: `virtdeck` with no verb opens it.

:func:`run_console` loads the inventory, starts the live model (hosts connect in parallel, in
the background) and runs :class:`VirtdeckApp`. The app never blocks on a host: the live model's
publisher posts :class:`screens.main.CloudChanged` (thread-safe) and the screen redraws from
the latest immutable snapshot.

One module (~400 lines): the App class, its palette provider and run_console (terminal checks,
signals) belong together; screens and verbs live elsewhere (screens/, console/verbs/).

Hooks for other screens (wizards, panels) — keep them simple:

- ``app.cloud``: the latest :class:`console.model.Cloud`; ``app.inventory``; ``app.session``:
  the :class:`backends.session.Session` (None with a fixed model, e.g. in snapshot tests).
  Blocking service calls belong in a thread worker (``self.run_worker(fn, thread=True)``).
- ``app.open_vm_wizard()`` / ``app.open_network_wizard()`` (bound to ``c`` in the VMs /
  Networks panel): push ``screens.wizard_vm.VmWizard()`` / ``screens.wizard_network.NetworkWizard()``
  (imported when first opened: the console's start-up does not pay for the wizards).
- ``app.open_router_editor(tenant, router)`` (``o`` in the Networks panel) /
  ``app.open_network_editor(tenant, name)`` (``e`` there): the router screen and the network
  wizard in edit mode.
- ``app.jump(panel, key)``: show a panel and highlight a row (keys: see screens/views.py).
- ``app.run_verb(name)``: run a registry verb (console/verbs/) on the main screen, as the command
  palette does: the palette lists every verb, the ``?`` help shows every verb's help line.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from functools import partial
from typing import Protocol

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from . import verbs
from .errors import NO_TERMINAL, NoTerminal  # defined with the other errors: the CLI checks first
from .model import Cloud
from ..screens import views
from ..screens.dialogs import HelpScreen, HostKeyDialog
from ..screens.main import NAV_BINDINGS, READ_LEAVES, CloudChanged, MainScreen, mutating_key
from ..screens.table import CloudTable
from ..screens.vm_actions import MARK_BINDINGS

log = logging.getLogger(__name__)


class CloudSource(Protocol):
    """What the app needs from a model: :class:`console.live.LiveModel` or
    :class:`FixedModel`."""

    def snapshot(self) -> Cloud: ...
    def subscribe(self, callback): ...
    def host_key_requests(self) -> tuple: ...
    def trust_host_key(self, host: str) -> None: ...
    def refuse_host_key(self, host: str) -> None: ...
    def reconnect(self, host: str | None = None) -> None: ...


class FixedModel:
    """A model that never changes: one given :class:`Cloud` (screenshots, demos, tests of
    rendering). ``host_keys`` may hold pending :class:`console.live.HostKeyRequest` objects."""

    session = None

    def __init__(self, cloud: Cloud, host_keys: tuple = ()):
        self.cloud = cloud
        self.host_keys = list(host_keys)
        self.answers: list[tuple[str, bool]] = []
        self._subs: list = []

    def snapshot(self) -> Cloud:
        return self.cloud

    def set(self, cloud: Cloud) -> None:
        """Replace the cloud and notify subscribers (like a pushed change)."""
        self.cloud = cloud
        for cb in list(self._subs):
            cb()

    def subscribe(self, callback):
        self._subs.append(callback)
        return lambda: self._subs.remove(callback) if callback in self._subs else None

    def host_key_requests(self) -> tuple:
        return tuple(self.host_keys)

    def trust_host_key(self, host: str) -> None:
        self.answers.append((host, True))
        self.host_keys = [r for r in self.host_keys if r.host != host]

    def refuse_host_key(self, host: str) -> None:
        self.answers.append((host, False))
        self.host_keys = [r for r in self.host_keys if r.host != host]

    def reconnect(self, host: str | None = None) -> None:
        pass


def verb_hits(app) -> list[tuple[str, object, str]]:
    """``(text, command, help)`` of every registry verb for the command palette: ``"vm start
    (s)"`` runs the verb on the highlighted row of its panel, a command-line-only verb says how
    to run it."""
    return [(f"{v.name}" + (f" ({v.key_display})" if v.key else ""), partial(app.run_verb, v.name), v.help)
            for v in verbs.all_verbs()]


def mark_hits(app) -> list[tuple[str, object, str]]:
    """The palette's marking commands (bulk verbs then act on the marks)."""
    return [("mark all shown VMs (ctrl+a)", partial(app.run_main_action, "vms", "vm_mark_all"),
             "every VM row shown: all, or those the filter left"),
            ("clear VM marks (x)", partial(app.run_main_action, "vms", "vm_clear_marks"), "unmark every VM")]


class CloudCommands(Provider):
    """Command palette (``:``): go to a panel, jump to any host, VM, network, tenant, or run a
    verb (every verb of the registry, console/verbs/)."""

    def _targets(self):
        app = self.app
        for i, panel in enumerate(views.PANELS, 1):
            yield f"Go to {views.TITLES[panel]} ({i})", partial(app.show_panel, panel), "panel"
        cloud: Cloud = app.cloud
        for h in cloud.hosts:
            yield f"host {h.name}", partial(app.jump, "hosts", f"host:{h.name}"), h.state
        for n in cloud.networks:
            yield f"network {n.display_name}", partial(app.jump, "networks", f"net:{n.uuid}"), n.kind_label
        for r in cloud.routers:
            yield f"router {r.display_name}", partial(app.jump, "networks", f"router:{r.uuid}"), "router"
            yield (f"edit router {r.display_name} (o)",
                   partial(app.open_router_editor, r.tenant, r.display_name), "router screen")
        yield "Router screen (o)", app.open_router_editor, "routers: create, attach, gateway, SNAT, FIPs"
        yield from mark_hits(app)
        for t in cloud.tenants:
            yield f"tenant {t.name}", partial(app.jump, "tenants", f"tenant:{t.name}"), "tenant"
        for v in cloud.vms:
            yield f"vm {v.name}", partial(app.jump, "vms", f"vm:{v.host}:{v.uuid}"), f"{v.host} {v.state}"
        yield from verb_hits(app)

    async def discover(self) -> Hits:
        for i, panel in enumerate(views.PANELS, 1):
            yield DiscoveryHit(f"Go to {views.TITLES[panel]} ({i})", partial(self.app.show_panel, panel))
        for text, command, help in verb_hits(self.app) + mark_hits(self.app):  # before anything is typed
            yield DiscoveryHit(text, command, help=help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help in self._targets():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, help=help)


class VirtdeckApp(App):
    """The console (see module doc). ``source``: a LiveModel or FixedModel; ``panel``: the
    panel shown first (hosts, vms, networks, tenants, templates)."""

    TITLE = "virtdeck"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {CloudCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("colon", "command_palette", "Jump", key_display=":"),
    ]

    def __init__(self, source: CloudSource, inventory=None, *, readonly: bool = False,
                 panel: str = "hosts"):
        super().__init__()
        self.first_panel = panel
        self.source = source
        self.inventory = inventory
        self.readonly = readonly
        self._unsubscribe = None
        self._pending = threading.Event()
        self._asked: set[str] = set()
        if readonly:
            self.sub_title = "read-only"

    def get_driver_class(self):
        """Textual's choice, with its Linux driver swapped for screens/driver.py's
        :class:`QuietLinuxDriver` (an idle console's input thread no longer wakes 10 times a
        second; a hung-up terminal no longer spins it)."""
        from textual.drivers.linux_driver import LinuxDriver
        driver = super().get_driver_class()
        if driver is LinuxDriver:
            from ..screens.driver import QuietLinuxDriver
            return QuietLinuxDriver
        return driver

    # -- hooks for other screens ------------------------------------------------------------

    @property
    def cloud(self) -> Cloud:
        """The latest immutable snapshot of the cloud."""
        return self.source.snapshot()

    @property
    def session(self):
        """The live model's Session (None for a FixedModel)."""
        return getattr(self.source, "session", None)

    # The screens below are imported when first opened (lazy: not paid for at start-up).

    def open_vm_wizard(self) -> None:
        """Open the VM create wizard (screens/wizard_vm.py: ``VmWizard()``)."""
        if self._writable("VM create wizard"):
            from ..screens.wizard_vm import VmWizard
            self.push_screen(VmWizard())

    def open_network_wizard(self) -> None:
        """Open the network wizard (screens/wizard_network.py: ``NetworkWizard()``)."""
        if self._writable("network wizard"):
            from ..screens.wizard_network import NetworkWizard
            self.push_screen(NetworkWizard())

    def open_router_editor(self, tenant: str | None = None, router: str | None = None) -> None:
        """Open the router screen (screens/router_editor.py) for ``tenant`` / ``router``."""
        if self._writable("router screen"):
            from ..screens.router_editor import RouterEditor
            self.push_screen(RouterEditor(tenant=tenant, router=router))

    def open_network_editor(self, tenant: str, name: str) -> None:
        """Open the network wizard in edit mode on network ``tenant``/``name``."""
        if self._writable("network wizard"):
            from ..screens.wizard_network import NetworkWizard
            self.push_screen(NetworkWizard(edit=(tenant, name)))

    def open_security_group(self, tenant: str, group: str = "default") -> None:
        """Open the security-group editor (screens/sg_editor.py) on ``tenant``'s ``group``."""
        if self._writable("security-group editor"):
            from ..screens.sg_editor import SecurityGroupEditor
            self.push_screen(SecurityGroupEditor(tenant=tenant, group=group))

    def _writable(self, what: str) -> bool:
        """False (and says so) in a read-only console, where the editing screens are off."""
        if self.readonly:
            self.notify(f"read-only console: the {what} is off", severity="warning")
            return False
        return True

    def run_verb(self, name: str) -> None:
        """Run registry verb ``name`` (``"vm start"``) on the main screen (see
        :meth:`screens.main.MainScreen.run_verb`). Raises KeyError for an unknown verb."""
        verb = verbs.get(name)
        main = self._main()
        if main is not None:
            main.run_worker(main.run_verb(verb), group="palette-verb")

    def run_main_action(self, panel: str, action: str) -> None:
        """Show ``panel`` on the main screen and run its ``action`` (``"vm_mark_all"``)."""
        main = self._main()
        if main is not None:
            main.action_panel(panel)
            main.run_worker(main.run_action(action), group="palette-verb")

    def show_panel(self, panel: str) -> None:
        main = self._main()
        if main is not None:
            main.action_panel(panel)

    def jump(self, panel: str, key: str) -> None:
        """Show ``panel`` with row ``key`` highlighted."""
        main = self._main()
        if main is not None:
            main.jump(panel, key)

    def reconnect_host(self, host: str) -> None:
        self.source.reconnect(host)

    def _main(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    # -- lifecycle ----------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(MainScreen(self.first_panel))
        if hasattr(self.source, "first_frame"):   # console/live_start.py: imports after paint
            self.call_after_refresh(self.source.first_frame)
        self._unsubscribe = self.source.subscribe(self._source_changed)
        self._check_host_keys()

    def on_unmount(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()

    def _source_changed(self) -> None:
        """Called from the model's thread: post one CloudChanged until it is handled."""
        if not self._pending.is_set():
            self._pending.set()
            self.post_message(CloudChanged())

    def on_cloud_changed(self, _message: CloudChanged) -> None:
        self._pending.clear()
        main = self._main()
        if main is not None:
            main.refresh_cloud()
        follow = getattr(self.screen, "refresh_cloud", None)   # e.g. the details view on top
        if follow is not None and self.screen is not main:
            follow()
        self._check_host_keys()

    def _check_host_keys(self) -> None:
        for req in self.source.host_key_requests():
            if req.host in self._asked:
                continue
            self._asked.add(req.host)
            self.push_screen(HostKeyDialog(req.host, req.address, req.port, req.fingerprint),
                             partial(self._host_key_answer, req.host))

    def _host_key_answer(self, host: str, trust: bool | None) -> None:
        def work() -> None:
            try:
                if trust:
                    self.source.trust_host_key(host)
                else:
                    self.source.refuse_host_key(host)
            except Exception as exc:  # noqa: BLE001 - shown, never a traceback
                self.call_from_thread(self.notify, f"{host}: {exc}", severity="error")
            finally:
                self._asked.discard(host)
        self.run_worker(work, thread=True, group="host-key")

    # -- help -----------------------------------------------------------------------------

    def action_help(self) -> None:
        def rows(bindings) -> list[tuple[str, str, bool]]:
            out = []
            for b in bindings:
                if isinstance(b, tuple):
                    b = Binding(*b)
                keys = b.key_display or " / ".join(b.key.split(","))
                out.append((keys, b.description or b.action, mutating_key(b.action)))
            return out
        titles = {p: views.TITLES[p] for p in views.PANELS}
        groups = [
            ("Everywhere", rows(self.BINDINGS) + [("ctrl+p", "command palette (same as :)")]),
            ("Panels", rows(NAV_BINDINGS)),
            # one line per verb, from the verb registry: keyed verbs under their panel
            *verbs.help_groups(titles, extra={"vms": rows(MARK_BINDINGS)},
                               mutating=lambda v: v.leaf not in READ_LEAVES),
            ("In a table", rows(CloudTable.BINDINGS)),
            ("Host-key question", rows(HostKeyDialog.BINDINGS)),
        ]
        self.push_screen(HelpScreen(groups, readonly=bool(self.readonly)))


def _setup_logging() -> None:
    """Log to $XDG_STATE_HOME/virtdeck/console.log, never to the terminal (it is the UI)."""
    from .live_start import setup_console_logging

    setup_console_logging()


# Signals that end a running console through the app's own exit, so the terminal is restored,
# the live model stopped and every SSH link closed (with its forward directory). The exit code
# is 128 + the signal number, as a shell reports a process ended by that signal.
EXIT_SIGNALS = (signal.SIGHUP, signal.SIGTERM)


def _run_app(app: App) -> None:
    """``app.run()`` on a loop of its own that turns SIGHUP/SIGTERM into ``app.exit(128 + n)``.

    The handlers go through the loop (``add_signal_handler``: the signal wakes the loop at once,
    whichever thread the kernel delivered it to) and are removed again when the app returns.
    """
    loop = asyncio.new_event_loop()
    for sig in EXIT_SIGNALS:
        loop.add_signal_handler(sig, partial(app.exit, return_code=128 + sig))
    try:
        app.run(loop=loop)
    finally:
        for sig in EXIT_SIGNALS:
            loop.remove_signal_handler(sig)
        loop.close()


def run_console(args) -> int:
    """Open the console for ``args.config`` (see config.paths.resolve_inventory_path),
    honouring ``args.readonly``. Returns the exit code: the app's, or 128 + n when signal n
    (SIGHUP, SIGTERM) ended it. Raises NoTerminal (at once, before anything connects) when
    stdin or stderr is not a terminal (stdout may be redirected: Textual draws on stderr); ConfigError for a bad inventory (both printed as one line
    by the CLI)."""
    from ..config import inventory as inventory_mod
    from ..config.paths import resolve_inventory_path
    from .live_start import DeferredLive, take_early
    from .services.guard import set_readonly

    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        # Textual would spin reading a closed stdin and write its escape codes into the file
        raise NoTerminal(NO_TERMINAL)
    readonly = bool(getattr(args, "readonly", False))
    set_readonly(readonly)
    # the CLI started the live model before importing this module (live_start.start_early):
    # its imports and SSH handshakes overlap Textual's. Otherwise (called directly) it imports
    # and starts on a thread behind the first frame.
    live = take_early()
    if live is not None:
        inv = live.inventory
    else:
        inv = inventory_mod.load(resolve_inventory_path(getattr(args, "config", None)))
        _setup_logging()
        live = DeferredLive(inv, after_paint=2.0).start()
    app = VirtdeckApp(live, inventory=inv, readonly=readonly)
    try:
        _run_app(app)
    finally:
        stopper = threading.Thread(target=live.stop, daemon=True)
        stopper.start()
        stopper.join(timeout=3)
    return app.return_code or 0
