"""A placement lock held ON the hypervisor, so creates from different processes and operators
serialise their "re-check capacity + define" on one host.

libvirt has no reservation API, and an in-process ledger (backends.scheduler.ReservationLedger)
cannot see another console. So the lock lives where every console meets: the host itself.
:func:`acquire` starts, over the host's existing SSH link, ::

    mkdir -p /run/lock && exec flock -w WAIT /run/lock/virtdeck-placement-$(hostname).lock \
        sh -c 'echo locked; exec cat >/dev/null'

and returns once the remote side printed "locked" (``flock(1)``: kernel advisory lock, FIFO-ish
wake-up). The lock is held while the remote ``cat`` runs; :meth:`HostLock.release` closes its
stdin, so ``cat`` exits and the kernel drops the lock. If the console dies or its SSH connection
drops, sshd closes the channel and the lock goes with it — no stale lock files to clean up.

The file name carries the host's own hostname, so hosts that share a /run (the lab's namespaces)
still lock separately while two inventories naming one host differently still share a lock.
"""

from __future__ import annotations

import asyncio
import time

import asyncssh

from . import ioloop
from ..console.errors import HostError

LOCK_DIR = "/run/lock"


def _command(wait: float) -> str:
    return (f"mkdir -p {LOCK_DIR} && exec flock -w {wait:g} {LOCK_DIR}/virtdeck-placement-$(hostname).lock "
            "sh -c 'echo locked; exec cat >/dev/null'")


class HostLock:
    """A held placement lock on ``host``; ``waited``: seconds spent waiting for it."""

    def __init__(self, host: str, proc, waited: float):
        self.host = host
        self._proc = proc
        self.waited = waited
        self.released = False

    def release(self, timeout: float = 10.0) -> None:
        """Drop the lock (idempotent). Never raises: a lost connection dropped it already."""
        if self.released:
            return
        self.released = True
        if self._proc is None:
            return

        async def _close():
            try:
                self._proc.stdin.write_eof()
                await asyncio.wait_for(self._proc.wait_closed(), timeout)
            except (asyncssh.Error, OSError, asyncio.TimeoutError, BrokenPipeError):
                self._proc.close()

        try:
            ioloop.call(_close(), timeout=timeout + 2)
        except Exception:  # noqa: BLE001 - the lock dies with the channel anyway
            pass

    def __enter__(self) -> "HostLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(session, host: str, wait: float = 60.0) -> HostLock:
    """Take ``host``'s placement lock, waiting up to ``wait`` seconds for another holder.

    Blocking (call from a worker thread). Returns a :class:`HostLock` (a context manager).
    Raises HostError when the host is unreachable, ``flock`` is missing, or the wait ran out
    (naming how long it waited). A session without SSH links (tests on libvirt's test://
    driver) gets a lock that holds nothing.
    """
    if not hasattr(session, "link"):
        return HostLock(host, None, 0.0)  # no SSH (libvirt test:// driver sessions): nothing to lock
    link = session.link(host)
    t0 = time.monotonic()

    async def _start():
        proc = await link.conn.create_process(_command(wait))
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), wait + 10)
        except asyncio.TimeoutError:
            proc.close()
            raise HostError(f"{host}: placement lock not granted within {wait:g} s") from None
        if line.strip() != "locked":
            err = ""
            try:
                err = (await asyncio.wait_for(proc.stderr.read(), 2)).strip()
            except (asyncio.TimeoutError, asyncssh.Error):
                pass
            await asyncio.wait_for(proc.wait_closed(), 5)
            rc = proc.exit_status
            proc.close()
            why = ("another create held it for longer than "
                   f"{wait:g} s" if rc == 1 and not err else err or f"exit status {rc}")
            raise HostError(f"{host}: cannot take the placement lock: {why}")
        return proc

    try:
        proc = ioloop.call(_start(), timeout=wait + 20)
    except HostError:
        raise
    except (asyncssh.Error, OSError) as exc:
        raise HostError(f"{host}: placement lock: {exc}") from None
    return HostLock(host, proc, time.monotonic() - t0)
