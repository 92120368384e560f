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

Who may take it: any operator, root or not. The lock is a DIRECTORY in /run/lock (1777 on a
stock Debian/Fedora host), made world-readable (``mkdir -m 0755``) by whoever comes first;
``flock`` opens a directory read-only, so every user can lock it whoever created it. (A lock
FILE would not do: one made by an operator with umask 077 cannot be opened by the next, and
under ``fs.protected_regular`` an O_CREAT open of another user's file in a sticky directory is
refused even for root.) A per-user place ($XDG_RUNTIME_DIR) would not serialise two operators.
When /run/lock is not writable and the directory does not exist yet, :func:`acquire` fails with
one sentence naming the directory and the fix (``chmod 1777 /run/lock``).

The name carries the host's own hostname, so hosts that share a /run still lock separately
while two inventories naming one host differently still share a lock.
"""

from __future__ import annotations

import asyncio
import time

from . import ioloop
from ..console.errors import HostError

LOCK_DIR = "/run/lock"
#: the lock directory's name on the host (``$(hostname)`` expanded there)
LOCK_NAME = "virtdeck-placement-$(hostname)"
_DENIED = "@@denied"


def _command(wait: float) -> str:
    lock = f"{LOCK_DIR}/{LOCK_NAME}"
    return (f'l={lock}; [ -d "$l" ] || mkdir -p -m 0755 "$l" 2>/dev/null || [ -d "$l" ] '
            f'|| {{ echo "{_DENIED} $(id -un) $l"; exit 3; }}; '
            f'exec flock -w {wait:g} "$l" sh -c \'echo locked; exec cat >/dev/null\'')


def end_holder(proc, timeout: float = 10.0) -> None:
    """End an SSH process that holds an flock on a host (the placement lock, an owner mark):
    EOF on its stdin, then up to ``timeout`` seconds for the channel to close; closed outright
    after that. Blocking. Never raises: a lost connection has dropped the lock already."""
    import asyncssh  # here, not at the top: the console's first frame does not wait for it

    async def _close():
        try:
            proc.stdin.write_eof()
            await asyncio.wait_for(proc.wait_closed(), timeout)
        except (asyncssh.Error, OSError, asyncio.TimeoutError, BrokenPipeError):
            proc.close()

    try:
        ioloop.call(_close(), timeout=timeout + 2)
    except Exception:  # noqa: BLE001 - the lock dies with the channel anyway
        pass


async def open_holder(link, cmd: str, first_line: float):
    """Start ``cmd`` over ``link`` (an SSH link: ``link.conn`` is an asyncssh connection); the
    command prints ``locked`` once it holds its flock, then keeps it while its stdin is open.
    Returns ``(proc, line, err)``: the first stdout line (stripped) and, when that line is not
    ``locked``, up to 2 s of stderr (stripped). Raises asyncio.TimeoutError (``proc`` closed)
    when no line came within ``first_line`` seconds; asyncssh.Error / OSError from the link."""
    import asyncssh  # here, not at the top: the console's first frame does not wait for it

    proc = await link.conn.create_process(cmd)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), first_line)).strip()
    except asyncio.TimeoutError:
        proc.close()
        raise
    err = ""
    if line != "locked":
        try:
            err = (await asyncio.wait_for(proc.stderr.read(), 2)).strip()
        except (asyncio.TimeoutError, asyncssh.Error):
            pass
    return proc, line, err


class FlockHolder:
    """An SSH process on a host that holds an flock until :meth:`release` (or until its
    connection dies, which drops the lock too). Context manager."""

    def __init__(self, proc):
        self._proc = proc
        self.released = False

    def release(self, timeout: float = 10.0) -> None:
        """Drop the lock (idempotent). Never raises: a lost connection dropped it already."""
        if self.released:
            return
        self.released = True
        if self._proc is not None:
            end_holder(self._proc, timeout)

    def __enter__(self) -> "FlockHolder":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class HostLock(FlockHolder):
    """A held placement lock on ``host``; ``waited``: seconds spent waiting for it."""

    def __init__(self, host: str, proc, waited: float):
        super().__init__(proc)
        self.host = host
        self.waited = waited


def acquire(session, host: str, wait: float = 60.0) -> HostLock:
    """Take ``host``'s placement lock, waiting up to ``wait`` seconds for another holder.

    Blocking (call from a worker thread). Returns a :class:`HostLock` (a context manager).
    Raises HostError when the host is unreachable, ``flock`` is missing, or the wait ran out
    (naming how long it waited). A session without SSH links (tests on libvirt's test://
    driver) gets a lock that holds nothing.
    """
    if not hasattr(session, "link"):
        return HostLock(host, None, 0.0)  # no SSH (libvirt test:// driver sessions): nothing to lock
    import asyncssh  # here, not at the top: the console's first frame does not wait for it

    link = session.link(host)
    t0 = time.monotonic()

    async def _start():
        try:
            proc, line, err = await open_holder(link, _command(wait), wait + 10)
        except asyncio.TimeoutError:
            raise HostError(f"{host}: placement lock not granted within {wait:g} s") from None
        if line.startswith(_DENIED):
            _, user, path = line.split()
            proc.close()
            raise HostError(f"{host}: cannot take the placement lock: {user} may not create {path} "
                            f"({LOCK_DIR} is not writable by {user}; fix on {host}: "
                            f"sudo chmod 1777 {LOCK_DIR}, as a stock system has it)")
        if line != "locked":
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
