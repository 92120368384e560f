"""The process-wide I/O loop: one asyncio loop in a daemon thread for asyncssh and libvirt events.

Why a private thread: libvirt-python and ovsdbapp calls block. If the loop that forwards the
libvirt socket over SSH were the caller's loop (Textual's), a blocking libvirt call on it would
wait for bytes only that same loop can move — a deadlock. With asyncssh on this loop, any
other thread (UI workers, the CLI's main thread) may block in libvirt freely.

libvirt's event implementation is process-global and must be registered before the first
``virConnect`` is opened, so it is registered here, once, when the loop starts: libvirt's own
C event loop (``virEventRegisterDefaultImpl``) run by a second daemon thread, "libvirt-events".
Not libvirtaio: libvirt calls its handle/timer hooks from the thread doing an RPC, and
libvirtaio's hooks call ``loop.add_reader`` / ``asyncio.ensure_future`` right there — not
thread-safe when RPCs run on worker threads, which is the point of this module (a keepalive
timer added that way only starts when the loop next wakes). The C loop wakes itself through a
pipe. libvirt callbacks (lifecycle events, close, keepalive) run on that thread: they must
only enqueue work, never call libvirt synchronously.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import Awaitable, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def io_loop() -> asyncio.AbstractEventLoop:
    """Return the shared I/O loop, starting its thread (and libvirtaio) on first use."""
    global _loop
    with _lock:
        if _loop is not None:
            return _loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        threading.Thread(target=run, name="virtdeck-io", daemon=True).start()
        ready.wait()
        start_libvirt_events()
        _loop = loop
        return loop


_libvirt_events: threading.Thread | None = None
_events_lock = threading.Lock()


def start_libvirt_events() -> None:
    """Register libvirt's default event loop and run it on the "libvirt-events" daemon thread.

    Idempotent. Must happen before the connections that want events / keepalive are opened.
    """
    global _libvirt_events
    with _events_lock:
        if _libvirt_events is not None:
            return
        import libvirt

        # libvirt prints every error to stderr unless a handler is set; the errors reach us
        # as libvirtError anyway, and stray stderr would tear a full-screen console.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        libvirt.virEventRegisterDefaultImpl()
        _libvirt_events = threading.Thread(target=_run_libvirt_events, name="libvirt-events",
                                           daemon=True)
        _libvirt_events.start()


def _run_libvirt_events() -> None:
    import libvirt

    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except Exception:  # noqa: BLE001 - the loop must outlive one bad callback
            time.sleep(0.05)


def submit(coro: Awaitable[T]) -> Future[T]:
    """Schedule ``coro`` on the I/O loop; returns a concurrent Future (thread-safe)."""
    return asyncio.run_coroutine_threadsafe(coro, io_loop())


def call(coro: Awaitable[T], timeout: float | None = None) -> T:
    """Run ``coro`` on the I/O loop and wait for its result (seconds). Not from the I/O thread."""
    if threading.current_thread().name == "virtdeck-io":
        raise RuntimeError("backends.ioloop.call() from the I/O thread would deadlock")
    return submit(coro).result(timeout=timeout)
