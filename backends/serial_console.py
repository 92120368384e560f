"""Attach the local terminal to a remote interactive command over a host's SSH link.

Used for a domain's serial console: ``virsh console NAME`` runs on the hypervisor in a remote
pseudo-terminal over the SAME asyncssh connection the Session already holds for that host (no
second SSH login, same host-key trust). The local terminal is put in raw mode so every key
(including Ctrl-C) reaches the guest; ``Ctrl-]`` ends the session (virsh's own escape; if the
remote side does not react within a second and a half, the channel is closed locally).

The coroutine runs on the shared I/O loop (:mod:`backends.ioloop`); :func:`attach` blocks the
calling thread until the session ends and restores the terminal whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import termios
import tty

from . import ioloop
from ..console.errors import HostError

ESCAPE = b"\x1d"  # Ctrl-]


async def _bridge(conn, command: str, term_type: str, size: tuple[int, int], fd_in: int, fd_out: int,
                  banner: bytes = b"") -> int:
    import asyncssh

    try:
        proc = await conn.create_process(command, term_type=term_type, term_size=size, encoding=None)
    except (asyncssh.Error, OSError) as exc:
        raise HostError(f"cannot open a terminal session: {exc}") from None
    if banner:  # written once the session is open (a suspending TUI has finished its own output)
        os.write(fd_out, banner)
    loop = asyncio.get_running_loop()
    closing: list[asyncio.TimerHandle] = []

    def on_input() -> None:
        try:
            data = os.read(fd_in, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd_in)
            proc.stdin.write_eof()
            return
        proc.stdin.write(data)
        if ESCAPE in data and not closing:
            closing.append(loop.call_later(1.5, proc.close))

    loop.add_reader(fd_in, on_input)
    try:
        while True:
            data = await proc.stdout.read(65536)
            if not data:
                break
            os.write(fd_out, data)
        await proc.wait_closed()
    finally:
        loop.remove_reader(fd_in)
        for h in closing:
            h.cancel()
    return proc.exit_status if proc.exit_status is not None else 0


def attach(link, command: str, fd_in: int | None = None, fd_out: int | None = None,
           banner: str = "") -> int:
    """Run ``command`` on ``link``'s host in a remote pty wired to this terminal; block until it
    ends. Returns the remote exit status. ``link`` is a :class:`backends.ssh.HostLink`.

    The local terminal (``fd_in``, default stdin) is in raw mode meanwhile when it is a tty.
    ``banner`` is printed once the remote session is open. Raises HostError when the session
    cannot be opened.
    """
    fd_in = sys.stdin.fileno() if fd_in is None else fd_in
    fd_out = sys.stdout.fileno() if fd_out is None else fd_out
    size = shutil.get_terminal_size((80, 24))
    term = os.environ.get("TERM", "xterm")
    saved = None
    if os.isatty(fd_in):
        saved = termios.tcgetattr(fd_in)
        tty.setraw(fd_in)
    old_int = signal.getsignal(signal.SIGINT) if os.isatty(fd_in) else None
    try:
        fut = ioloop.submit(_bridge(link.conn, command, term, (size.columns, size.lines), fd_in, fd_out,
                                    banner.encode()))
        return fut.result()
    finally:
        if saved is not None:
            termios.tcsetattr(fd_in, termios.TCSADRAIN, saved)
        if old_int is not None:
            signal.signal(signal.SIGINT, old_int)
