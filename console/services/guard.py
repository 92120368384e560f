"""The read-only switch: `virtdeck --readonly` refuses every mutating verb."""

from __future__ import annotations

from ..errors import ReadOnlyError

_readonly = False


def set_readonly(on: bool) -> None:
    """Turn read-only mode on or off for this process (set once from --readonly)."""
    global _readonly
    _readonly = bool(on)


def is_readonly() -> bool:
    """True when mutating verbs are refused."""
    return _readonly


def require_writable(verb: str) -> None:
    """Raise ReadOnlyError naming ``verb`` when the console runs read-only."""
    if _readonly:
        raise ReadOnlyError(f"{verb} refused: virtdeck runs with --readonly; restart it without --readonly to change things")
