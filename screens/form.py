"""What every modal form of virtdeck shares: the session it writes through, one way to run a
service function off the UI loop, a ``#status`` line, a ``#cancel`` button that does nothing while
work runs, the one-line wording of a service error, and the common form CSS (form.tcss).

Running a service (blocking libvirt / OVN / SSH work) from a form::

    class Planned(ServiceDone):            # typed: one message class per kind of answer
        \"\"\"``result`` is a provision.Preview.\"\"\"

    self.run_service(lambda: pv.plan(session, inv, req), done=Planned, failed=PlanFailed)

    @on(Planned)
    def _planned(self, event: Planned) -> None: ...     # on the UI loop; widgets may be touched

The call runs in a thread worker (``@work(thread=True, exit_on_error=False)``); it posts ``done``
with the return value or ``failed`` with the exception (already worded by :func:`error_parts`).
Those two messages are the only way a result comes back: nothing in the thread touches a widget
(``post_message`` is thread-safe). Capture widget values on the UI loop before the call, as the
lambda above does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rich.markup import escape
from textual import on, work
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Static
from textual.worker import get_current_worker

from ..console.errors import ValidationError, VirtdeckError


#: The shared form sheet, by absolute path: a subclass in another folder still finds it.
FORM_CSS = str(Path(__file__).with_name("form.tcss"))


def error_parts(exc: BaseException) -> tuple[str, str | None, str | None]:
    """``(one-line message, field, reason)`` for an error a service raised; field/reason are set
    for a ValidationError so the form can show the reason beside that field. Never a traceback."""
    if isinstance(exc, ValidationError):
        return str(exc), exc.field, exc.reason
    if isinstance(exc, VirtdeckError):
        return str(exc), None, None
    return f"{type(exc).__name__}: {exc}", None, None


class ServiceDone(Message, bubble=False):
    """A service call started by :meth:`ServiceRunner.run_service` returned ``result``.

    Subclass it once per kind of answer a form waits for (handled with ``@on(ThatClass)``);
    ``label`` is the caller's words for the job (e.g. ``"creating router demo/r1"``). Subclasses
    do not bubble either: the answer is for the node that asked."""

    def __init_subclass__(cls, bubble: bool | None = False, **kwargs) -> None:
        super().__init_subclass__(bubble=bubble, **kwargs)

    def __init__(self, result: Any, label: str = "") -> None:
        super().__init__()
        self.result = result
        self.label = label


class ServiceFailed(Message, bubble=False):
    """A service call started by :meth:`ServiceRunner.run_service` raised ``error``.

    ``message`` / ``field`` / ``reason`` are :func:`error_parts` of it (field and reason only for
    a ValidationError). A plain ServiceFailed is handled by :class:`FormScreen` (the status line
    says ``label: message``); subclass it where a form does more (ends ``busy``, marks a field)."""

    def __init_subclass__(cls, bubble: bool | None = False, **kwargs) -> None:
        super().__init_subclass__(bubble=bubble, **kwargs)

    def __init__(self, error: BaseException, label: str = "") -> None:
        super().__init__()
        self.error = error
        self.label = label
        self.message, self.field, self.reason = error_parts(error)

    @property
    def line(self) -> str:
        """The status line: ``"label: message"`` (or the message alone without a label)."""
        return f"{self.label}: {self.message}" if self.label else self.message


class ServiceRunner:
    """Mixin for a Widget or Screen: run a service function in a thread worker and hear back
    through typed messages (see the module doc). Writes go through :meth:`run_service` (group
    ``service``); reads that a newer read replaces through :meth:`run_read` (group ``read``,
    exclusive: an older read still running is cancelled and its answer dropped)."""

    def _call_service(self, call: Callable[[], Any], done: type[ServiceDone],
                      failed: type[ServiceFailed], label: str) -> None:
        # In the worker thread: call, then post exactly one answer (unless cancelled meanwhile).
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - becomes one status line, never a traceback
            answer: Message = failed(exc, label)
        else:
            answer = done(result, label)
        if not get_current_worker().is_cancelled:
            self.post_message(answer)

    @work(thread=True, exit_on_error=False, group="service")
    def run_service(self, call: Callable[[], Any], *, done: type[ServiceDone] = ServiceDone,
                    failed: type[ServiceFailed] = ServiceFailed, label: str = "") -> None:
        """Run ``call()`` (a blocking service call, no widget access) in a thread worker; post
        ``done(result, label)`` or ``failed(exception, label)`` to this node. Returns the Worker.
        Only an Exception becomes ``failed``; anything rarer ends the worker in its ERROR state
        without an answer, and ``exit_on_error=False`` keeps the console up."""
        self._call_service(call, done, failed, label)

    @work(thread=True, exit_on_error=False, group="read", exclusive=True)
    def run_read(self, call: Callable[[], Any], *, done: type[ServiceDone] = ServiceDone,
                 failed: type[ServiceFailed] = ServiceFailed, label: str = "") -> None:
        """:meth:`run_service` for a read: a newer read cancels this one (its answer is dropped)."""
        self._call_service(call, done, failed, label)


class FormScreen(ServiceRunner, ModalScreen):
    """A modal form. Subclasses set ``busy`` while a worker runs and may override
    :meth:`cancel_result` (what cancelling dismisses with; None by default).

    ``session`` is the one given to the constructor, else ``app.session`` (None when not
    connected). The CSS of a subclass is form.tcss (the rows, status line and buttons every form
    shares) followed by its own ``CSS_PATH`` file(s)."""

    CSS_PATH = [FORM_CSS]
    busy = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # form.tcss first, so a screen's own sheet can override the shared rules.
        own = cls.__dict__.get("CSS_PATH")
        if own is not None:
            own = [own] if isinstance(own, str) else list(own)
            cls.CSS_PATH = [FORM_CSS, *[p for p in own if str(p) != FORM_CSS]]

    def __init__(self, session=None) -> None:
        super().__init__()
        self._session = session

    @property
    def session(self):
        """The session services write through: the constructor's, else ``app.session``."""
        return self._session if self._session is not None else getattr(self.app, "session", None)

    def _set_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(escape(text))
        status.set_class(error, "error")

    @on(ServiceFailed)
    def _service_failed(self, event: ServiceFailed) -> None:
        """The default answer to a failed call (a read, typically): say why in the status line.
        ``busy`` is left alone: a write passes its own ``failed`` class and ends its work there."""
        self._set_status(event.line, True)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def cancel_result(self):
        return None

    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(self.cancel_result())
