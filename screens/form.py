"""What every modal form of virtdeck shares: a ``#status`` line, a ``#cancel`` button that does
nothing while work runs, and the one-line wording of a service error raised in a thread worker."""

from __future__ import annotations

from rich.markup import escape
from textual import on
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ..console.errors import ValidationError, VirtdeckError


def error_parts(exc: BaseException) -> tuple[str, str | None, str | None]:
    """``(one-line message, field, reason)`` for an error a service raised; field/reason are set
    for a ValidationError so the form can show the reason beside that field. Never a traceback."""
    if isinstance(exc, ValidationError):
        return str(exc), exc.field, exc.reason
    if isinstance(exc, VirtdeckError):
        return str(exc), None, None
    return f"{type(exc).__name__}: {exc}", None, None


class FormScreen(ModalScreen):
    """A modal form. Subclasses set ``busy`` while a worker runs and may override
    :meth:`cancel_result` (what cancelling dismisses with; None by default)."""

    busy = False

    def _set_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(escape(text))
        status.set_class(error, "error")

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def cancel_result(self):
        return None

    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(self.cancel_result())
