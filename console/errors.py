"""Errors an operator can act on. Each message is one sentence saying what is wrong and what to do."""

from __future__ import annotations


class VirtdeckError(Exception):
    """Base of every error shown to the operator as one line (CLI) or a notification (TUI).

    ``exit_code`` is the CLI's process exit status for this error.
    """

    exit_code = 1


class ConfigError(VirtdeckError):
    """The inventory file is missing, unreadable or invalid (names file, key, what is allowed)."""

    exit_code = 2


class ValidationError(VirtdeckError):
    """Operator input is invalid; ``field`` names the input, the message says what is allowed."""

    exit_code = 2

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class ReadOnlyError(VirtdeckError):
    """A mutating verb was asked for while the console runs with --readonly."""

    exit_code = 3


class HostError(VirtdeckError):
    """A hypervisor or the OVN NB could not be reached or refused an operation.

    The message names the host and carries the underlying libvirt/OVN/SSH message.
    """

    exit_code = 4
