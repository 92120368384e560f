"""QuietLinuxDriver: Textual's Linux driver without the input thread's 10 wakeups a second.

Textual's :class:`~textual.drivers.linux_driver.LinuxDriver` reads the terminal on a thread
that calls ``select`` with a 0.1 s timeout in a loop, so that its escape-sequence parser can
time out a lone ``ESC`` and the thread can notice the exit flag. An idle console thus woke 10
times a second for nothing: 0.15 % of a core, the largest single item of the console's idle
CPU (measured with tests/bench/bench_idle.py, 3 hosts, nothing changing). This driver blocks
in ``select`` until a key arrives, the parser's own deadline (a pending ``ESC``) is due, or the
exit flag is set — the flag's ``set`` writes one byte to each input thread's own pipe.

A terminal that hangs up (tmux server killed, SSH dropped: ``read`` gives EOF or EIO) is
dropped from the ``select`` instead of being read again at once, and the app is told to exit
(128 + SIGHUP): a console whose SIGHUP came before its handler was in place kept running on
the dead terminal, Textual's loop spinning at ~50 % of a core. The SIGCONT a hangup also sends
no longer restarts application mode (only a SIGCONT after our own SIGTSTP does), and nothing is
written once the terminal is gone. Everything else is Textual's.
"""

from __future__ import annotations

import os
import selectors
import signal
import threading
from codecs import getincrementaldecoder
from functools import partial

from textual._parser import ParseError
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver

_UNKNOWN = object()


class _WakingEvent(threading.Event):
    """A :class:`threading.Event` whose ``set`` also writes one byte to every registered pipe,
    so the input threads blocked in ``select`` on those pipes see it at once. Each input thread
    has a pipe of its own, used once and never drained: Textual may run two input threads for
    a moment (a hangup sends SIGCONT, which restarts application mode while exiting), and a
    shared pipe drained by one of them could leave the other asleep for good."""

    def __init__(self):
        super().__init__()
        self._fds: set[int] = set()
        self._fds_lock = threading.Lock()

    def add(self, fd: int) -> None:
        with self._fds_lock:
            self._fds.add(fd)

    def discard(self, fd: int) -> None:
        with self._fds_lock:
            self._fds.discard(fd)

    def set(self) -> None:
        super().set()
        with self._fds_lock:
            for fd in self._fds:
                try:
                    os.write(fd, b"x")
                except OSError:   # full (already woken) or closed
                    pass


class QuietLinuxDriver(LinuxDriver):
    """:class:`LinuxDriver` whose input thread sleeps until there is something to do (see
    module doc). Used by :class:`console.app.VirtdeckApp` wherever Textual would pick
    LinuxDriver; headless runs (tests) keep Textual's headless driver."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.exit_event = _WakingEvent()
        self._tstp = False          # stopped by our own SIGTSTP (Ctrl+Z), so SIGCONT resumes
        self._tty_gone = False      # the terminal hung up: nothing is written any more

    def _sigtstp_application(self, *args) -> None:
        self._tstp = True
        super()._sigtstp_application(*args)

    def _sigcont_application(self, *args) -> None:
        # Textual restarts application mode on every SIGCONT; a hangup sends one too (with
        # SIGHUP), and the restart then ran a second input and writer thread on the dead
        # terminal while the app exited (it hung in a write to the dead writer's full queue)
        if self._tstp:
            self._tstp = False
            super()._sigcont_application(*args)

    def write(self, data: str) -> None:
        # after a hangup Textual's writer thread dies on EIO and its queue (30 writes) fills
        if not self._tty_gone:
            super().write(data)

    def run_input_thread(self) -> None:
        """Textual's input loop (LinuxDriver.run_input_thread), with ``select`` blocking until
        input, the parser's deadline or the exit flag (``None`` timeout while nothing is
        pending), and EOF/EIO on the terminal ending the reads instead of spinning."""
        wake_r, wake_w = os.pipe()
        self.exit_event.add(wake_w)
        selector = selectors.SelectSelector()
        fileno = self.fileno
        selector.register(fileno, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode
        tty_open = True
        woken = False

        def timeout() -> float | None:
            # the parser's deadline for a pending ESC (Textual's private _timeout_time, on
            # Textual's clock); if a Textual release drops that attribute, poll as it does
            due = getattr(parser, "_timeout_time", _UNKNOWN)
            if due is _UNKNOWN:
                return 0.1
            return None if due is None else max(0.0, due - get_time())

        def handle(events, final: bool = False) -> None:
            nonlocal tty_open, woken
            for key, mask in events:
                if key.fd == wake_r:
                    woken = True          # only exit_event.set() writes there: time to go
                    continue
                if not (mask & selectors.EVENT_READ) or not tty_open:
                    continue
                try:
                    data = os.read(fileno, 1024 * 4)
                except OSError:           # EIO: the terminal hung up
                    data = b""
                if not data:
                    tty_open = False
                    self._tty_gone = True
                    selector.unregister(fileno)
                    # SIGHUP ends the app (console/app.py), but one that came before that
                    # handler was in place is lost: the hangup itself ends it too (128 + HUP)
                    self._loop.call_soon_threadsafe(
                        partial(self._app.exit, return_code=128 + signal.SIGHUP))
                    continue
                for event in parser.feed(decode(data, final=final)):
                    self.process_message(event)
            for event in parser.tick():
                self.process_message(event)

        try:
            while not woken and not self.exit_event.is_set():
                handle(selector.select(timeout()))
            if tty_open:
                selector.unregister(fileno)
            handle(selector.select(0), final=True)
        finally:
            self.exit_event.discard(wake_w)
            selector.close()
            os.close(wake_r)
            os.close(wake_w)
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass
