"""The live model, started behind the console's first frame.

``console.live`` pulls in libvirt, asyncssh and ovsdbapp (0.2-0.6 s of imports on a loaded
machine). :class:`DeferredLive` is what the App gets instead: it imports and starts
:class:`console.live.LiveModel` on a thread of its own, so the App's first frame (status line,
panel headers, every host "connecting") paints while those imports run. Until the model exists
its snapshot is built from the inventory alone; subscribers registered meanwhile are handed on,
and told once the model's first snapshot is out. Light on purpose: this module imports only
the domain model.

The CLI's console path (:func:`start_early`) starts it before Textual is even imported, with
the cyclic GC off (:func:`hold_gc`): start-up is CPU-bound under one GIL, so overlapping only
pays once the young collections over the start-up heap are gone (tests/bench/bench_start_ab.py
has the figures). :class:`DeferredLive` built directly (tests, ``run_console`` called without
the CLI) still waits for the first frame.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Callable

from .model import HOST_CONNECTING, HOST_DISABLED, HOST_UNREACHABLE, NB_CONNECTING, Cloud, Host, NbStatus

log = logging.getLogger(__name__)


def placeholder_cloud(inventory, error: str | None = None) -> Cloud:
    """The cloud as the inventory alone knows it: every enabled hypervisor ``connecting`` (or
    ``unreachable`` with ``error``), disabled ones ``disabled``, the NB connecting."""
    hosts = []
    for h in inventory.hypervisors:
        if not h.enabled:
            hosts.append(Host(name=h.name, address=h.address, state=HOST_DISABLED,
                              error=f"disabled in the inventory: {h.disabled_reason or 'no reason given'}"))
        else:
            hosts.append(Host(name=h.name, address=h.address,
                              state=HOST_UNREACHABLE if error else HOST_CONNECTING, error=error))
    remote = inventory.ovn.connection or (
        f"{inventory.ovn.via_host}:{inventory.ovn.nb_socket}" if inventory.ovn.via_host else "")
    return Cloud(hosts=tuple(hosts), nb=NbStatus(NB_CONNECTING, remote=remote, since=time.time()),
                 cpu_ratio=inventory.allocation.cpu_ratio, ram_ratio=inventory.allocation.ram_ratio)


class DeferredLive:
    """A :class:`console.app.CloudSource` that becomes a :class:`console.live.LiveModel` once
    its imports are done (see module doc). :meth:`start` returns at once; :meth:`stop` stops the
    model (or keeps it from starting). ``session`` waits (up to ``wait`` s) for the model: verbs
    ask for it from worker threads, never before the operator can press a key."""

    def __init__(self, inventory, wait: float = 30.0, after_paint: float = 0.0):
        self.inventory = inventory
        self.wait = wait
        # > 0: the imports wait (at most this many s) for :meth:`first_frame`. On a busy machine
        # they would share one GIL with Textual's start-up and hold the first frame back.
        self.after_paint = after_paint
        self._painted = threading.Event()
        self.live = None                      # the LiveModel, once built
        self._cloud = placeholder_cloud(inventory)
        self._lock = threading.Lock()
        self._subs: dict[Callable[[], None], Callable[[], None] | None] = {}
        self._built = threading.Event()
        self._stopped = False
        self.started_at: float | None = None

    def start(self) -> "DeferredLive":
        """Import and start the live model on a thread; returns at once."""
        self.started_at = time.monotonic()
        threading.Thread(target=self._build, name="live-start", daemon=True).start()
        return self

    def first_frame(self) -> None:
        """The App drew its first frame: the model's imports may start (see ``after_paint``)."""
        self._painted.set()

    def _build(self) -> None:
        if self.after_paint > 0:
            self._painted.wait(self.after_paint)
        try:
            from .live import LiveModel
            live = LiveModel(self.inventory)
        except Exception as exc:  # noqa: BLE001 - shown on every host instead of a silent screen
            log.exception("live model did not start")
            self._cloud = placeholder_cloud(self.inventory, f"console could not start: {exc}")
            release_gc()
            self._built.set()
            for cb in list(self._subs):
                cb()
            return
        with self._lock:
            if self._stopped:
                release_gc()
                self._built.set()
                return
            self.live = live
            for cb in self._subs:
                self._subs[cb] = live.subscribe(cb)
            live.start()    # returns at once; under the lock so that stop() cannot come between
        self._built.set()
        if live.wait_ready(GC_HELD_AT_MOST):
            # turned on at ready, the GC ran its first collections over the whole start-up heap
            # while the screen filled (+0.16 s to the complete screen at 4 x 2,500); after the
            # model's own collect + freeze of that heap (console/live.py, 2 s after ready)
            # they find nothing left to scan
            time.sleep(GC_AFTER_READY)
        release_gc()

    @property
    def session(self):
        """The live model's :class:`backends.session.Session`; None if it did not start."""
        self._built.wait(self.wait)
        return self.live.session if self.live else None

    @property
    def ready_at(self) -> float | None:
        return self.live.ready_at if self.live else None

    def snapshot(self) -> Cloud:
        """The model's latest snapshot, or the inventory's placeholder until it has one."""
        live = self.live
        if live is not None and live.snapshot().generation:
            return live.snapshot()
        return self._cloud

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """As :meth:`console.live.LiveModel.subscribe` (handed on once the model exists)."""
        with self._lock:
            self._subs[callback] = self.live.subscribe(callback) if self.live else None

        def unsubscribe() -> None:
            with self._lock:
                inner = self._subs.pop(callback, None)
            if inner:
                inner()
        return unsubscribe

    def wait_ready(self, timeout: float | None = None) -> bool:
        """As :meth:`console.live.LiveModel.wait_ready`, from this object's start."""
        t0 = time.monotonic()
        if not self._built.wait(timeout) or self.live is None:
            return False
        return self.live.wait_ready(None if timeout is None else max(0.0, timeout - (time.monotonic() - t0)))

    def host_key_requests(self) -> tuple:
        return self.live.host_key_requests() if self.live else ()

    def trust_host_key(self, host: str) -> None:
        if self.live:
            self.live.trust_host_key(host)

    def refuse_host_key(self, host: str) -> None:
        if self.live:
            self.live.refuse_host_key(host)

    def reconnect(self, host: str | None = None) -> None:
        if self.live:
            self.live.reconnect(host)

    def stop(self) -> None:
        """Stop the live model, or keep it from starting if its imports are still running."""
        with self._lock:
            self._stopped = True
            live = self.live
        release_gc()
        if live is not None:
            live.stop()


#: s the cyclic GC stays off at most (:func:`hold_gc`) when the model is not ready by then
GC_HELD_AT_MOST = 10.0
#: s after the model's first complete snapshot until the GC comes back (see DeferredLive._build)
GC_AFTER_READY = 3.0
_gc_held = False


def hold_gc() -> None:
    """Turn the cyclic GC off until ``GC_AFTER_READY`` s after the live model's first complete
    snapshot (or ``GC_HELD_AT_MOST`` s without one, or its failure or stop: :func:`release_gc`).
    Called at the console's start, before its imports: Textual's and the model's imports
    allocate ~10^5 objects that all survive, and young collections over them were ~0.08 s of
    the ~0.35 s those imports take (quiet machine, warm bytecode).
    Reference counting still frees everything meanwhile; only cycles wait."""
    global _gc_held
    if gc.isenabled():
        gc.disable()
        _gc_held = True


def release_gc() -> None:
    """Turn the cyclic GC back on if :func:`hold_gc` turned it off (once; else nothing)."""
    global _gc_held
    if _gc_held:
        _gc_held = False
        gc.enable()


def setup_console_logging() -> None:
    """Log to $XDG_STATE_HOME/virtdeck/console.log, never to the terminal (it is the UI): set
    before the live model starts, so nothing it logs reaches the screen."""
    from ..config.paths import state_dir

    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    try:
        d = state_dir()
        d.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(d / "console.log")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


_early: DeferredLive | None = None


def start_early(config: str | None) -> DeferredLive:
    """Load the inventory (``config`` as config.paths.resolve_inventory_path takes it) and start
    its live model now, before the console imports Textual: the model's imports and SSH
    handshakes overlap Textual's import and first frame instead of following them.
    :func:`take_early` hands it to the console. Raises ConfigError for a bad inventory (nothing
    started then)."""
    global _early
    from ..config import inventory as inventory_mod
    from ..config.paths import resolve_inventory_path

    inv = inventory_mod.load(resolve_inventory_path(config))
    setup_console_logging()
    _early = DeferredLive(inv).start()
    return _early


def take_early() -> DeferredLive | None:
    """The model :func:`start_early` started, once (None if it was not called)."""
    global _early
    early, _early = _early, None
    return early
