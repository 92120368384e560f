"""KeyFooter: Textual's Footer, recomposed only when the keys it shows change.

Textual's :class:`~textual.widgets.Footer` rebuilds all its key widgets (mount + CSS for each)
on every "bindings changed" signal of its screen; focus moves and tab switches send that signal
even when the visible keys stay the same. At start-up the main screen sent it five times:
~170 ms of CPU out of ~500 ms for the app's first paint on the busy lab machine (measured,
load ~7), time taken from the first screen. This subclass compares what would be shown (key,
action, description, enabled, tooltip, palette key) with what is shown and skips identical
recomposes; it looks and behaves like the Footer otherwise.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    """A :class:`~textual.widgets.Footer` that recomposes only when its keys change."""

    _shown: tuple | None = None

    def _keys(self, screen: Screen) -> tuple:
        """What :meth:`Footer.compose` would show for ``screen``'s active bindings."""
        active = screen.active_bindings
        keys = tuple((b.key, b.action, b.description, b.group, enabled, tooltip)
                     for (_node, b, enabled, tooltip) in active.values() if b.show)
        palette = active.get(self.app.COMMAND_PALETTE_BINDING)
        return keys, (palette[1].key, palette[2]) if palette else None, self.compact

    def bindings_changed(self, screen: Screen) -> None:
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            keys = self._keys(screen)
            if self._bindings_ready and keys == self._shown:
                return
            self._shown = keys
        super().bindings_changed(screen)
