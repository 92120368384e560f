"""The process-wide I/O loop: one asyncio loop in a daemon thread for asyncssh and libvirt events.

Why a private thread: libvirt-python and ovsdbapp calls block. If the loop that forwards the
libvirt socket over SSH were the caller's loop (Textual's), a blocking libvirt call on it would
wait for bytes only that same loop can move — a deadlock. With asyncssh on this loop, any
other thread (UI workers, the CLI's main thread) may block in libvirt freely.

libvirt's event implementation is process-global and must be registered before the first
``virConnect`` is opened, so it is registered here, once, on this loop (libvirtaio). libvirt
callbacks (lifecycle events, close, keepalive) then run on this thread: they must only
enqueue work, never call libvirt synchronously.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any, Awaitable, TypeVar

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
        import libvirtaio  # shipped with libvirt-python

        fut = asyncio.run_coroutine_threadsafe(_register_libvirt(libvirtaio), loop)
        fut.result(timeout=10)
        _loop = loop
        return loop


async def _register_libvirt(libvirtaio: Any) -> None:
    libvirtaio.virEventRegisterAsyncIOImpl(loop=asyncio.get_running_loop())


def submit(coro: Awaitable[T]) -> Future[T]:
    """Schedule ``coro`` on the I/O loop; returns a concurrent Future (thread-safe)."""
    return asyncio.run_coroutine_threadsafe(coro, io_loop())


def call(coro: Awaitable[T], timeout: float | None = None) -> T:
    """Run ``coro`` on the I/O loop and wait for its result (seconds). Not from the I/O thread."""
    if threading.current_thread().name == "virtdeck-io":
        raise RuntimeError("backends.ioloop.call() from the I/O thread would deadlock")
    return submit(coro).result(timeout=timeout)
