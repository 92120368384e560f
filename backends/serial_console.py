"""Attach the local terminal to a remote interactive command over a host's SSH link.

Used for a domain's serial console: ``virsh console NAME`` runs on the hypervisor in a remote
pseudo-terminal over the SAME asyncssh connection the Session already holds for that host (no
second SSH login, same host-key trust). The local terminal is put in raw mode so every key
(including Ctrl-C) reaches the guest; ``Ctrl-]`` ends the session (virsh's own escape; if the
remote side does not react within a second and a half, the channel is closed locally).
Without a terminal (input from a pipe, a file or /dev/null) the input is sent as it comes and
the session ends shortly after the input does (see :func:`attach`): never a hang, never a traceback.

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
import threading
import tty

from . import ioloop
from ..console.errors import HostError

ESCAPE = b"\x1d"  # Ctrl-]


# Without a terminal (input from a pipe, a file or /dev/null) the session ends at the input's
# end: `virsh console` itself never does (EOF on its pty means nothing to it), so after EOF the
# guest's answer is shown until it has been quiet this long (seconds), at most EOF_MAX seconds.
EOF_QUIET = 1.5
EOF_MAX = 10.0


def _read_in_thread(loop: asyncio.AbstractEventLoop, fd_in: int, deliver) -> None:
    """Read ``fd_in`` in a daemon thread (a regular file or /dev/null cannot be polled by
    epoll, and a pipe left open must not hold up the process's exit); each chunk, then b"" at
    the end (or on a read error), goes to ``deliver`` on the loop."""
    def pump() -> None:
        while True:
            try:
                data = os.read(fd_in, 4096)
            except OSError:
                data = b""
            try:
                loop.call_soon_threadsafe(deliver, data)
            except RuntimeError:   # the loop is closed: the session is over
                return
            if not data:
                return
    threading.Thread(target=pump, name="console-input", daemon=True).start()


async def _bridge(conn, command: str, term_type: str, size: tuple[int, int], fd_in: int, fd_out: int,
                  banner: bytes = b"") -> int:
    import asyncssh

    try:
        proc = await conn.create_process(command, term_type=term_type, term_size=size, encoding=None)
    except (asyncssh.Error, OSError) as exc:
        raise HostError(f"cannot open a terminal session: {exc}") from None
    loop = asyncio.get_running_loop()
    closing: list[asyncio.TimerHandle] = []
    ended: list[float] = []          # monotonic time the input ended (EOF), once
    quiet: list[asyncio.TimerHandle] = []
    tty_in = os.isatty(fd_in)
    over: list[bool] = []            # set when the session has ended: late input is dropped
    detached: list[bool] = []        # we ended it after the input's end: a normal detach

    def detach() -> None:
        detached.append(True)
        proc.close()

    def close_when_quiet() -> None:
        # (re)armed at EOF and after each output chunk that follows it
        for h in quiet:
            h.cancel()
        quiet.clear()
        delay = min(EOF_QUIET, max(0.0, ended[0] + EOF_MAX - loop.time()))
        quiet.append(loop.call_later(delay, detach))

    def deliver(data: bytes) -> None:
        if over:
            return
        if not data:
            if tty_in:
                loop.remove_reader(fd_in)
            if not ended:
                ended.append(loop.time())
                proc.stdin.write_eof()
                close_when_quiet()
            return
        if ended:
            return
        proc.stdin.write(data)
        if ESCAPE in data and not closing:
            closing.append(loop.call_later(1.5, proc.close))

    def on_input() -> None:
        try:
            data = os.read(fd_in, 4096)
        except OSError:    # EIO: the terminal hung up
            data = b""
        deliver(data)

    try:
        if banner:  # written once the session is open (a suspending TUI has finished its own output)
            os.write(fd_out, banner)
        if tty_in:
            loop.add_reader(fd_in, on_input)
        else:
            _read_in_thread(loop, fd_in, deliver)
        while True:
            data = await proc.stdout.read(65536)
            if not data:
                break
            os.write(fd_out, data)
            if ended:
                close_when_quiet()
        await proc.wait_closed()
    except OSError as exc:       # the output side went away (a closed pipe): end the session
        proc.close()
        raise HostError(f"serial console output: {exc.strerror or exc}") from None
    finally:
        over.append(True)
        if tty_in:
            loop.remove_reader(fd_in)
        for h in closing + quiet:
            h.cancel()
    if detached:   # virsh exits 1 when its pty goes away; ending at the input's end is a detach
        return 0
    return proc.exit_status if proc.exit_status is not None else 0


def attach(link, command: str, fd_in: int | None = None, fd_out: int | None = None,
           banner: str = "") -> int:
    """Run ``command`` on ``link``'s host in a remote pty wired to this terminal; block until it
    ends. Returns the remote exit status. ``link`` is a :class:`backends.ssh.HostLink`.

    The local terminal (``fd_in``, default stdin) is in raw mode meanwhile when it is a tty.
    Without a terminal (a pipe, a file, /dev/null) the input is sent as it comes and its end
    ends the session once the output has been quiet for ``EOF_QUIET`` s (at most ``EOF_MAX`` s
    after the end); a terminal that hangs up ends it the same way. ``banner`` is printed once
    the remote session is open. Raises HostError when the session cannot be opened or the
    output cannot be written (e.g. a closed pipe).
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
