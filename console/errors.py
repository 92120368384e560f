"""Errors an operator can act on, and the one exit-code table of the command line.

Each message is one sentence saying what is wrong and what to do. Each error class carries the
process exit status of its meaning (:class:`ExitCode`); a verb's handler returns one of these
codes too, so a script can rely on one number per meaning, for every verb. ``virtdeck --help``
prints :func:`exit_code_table` and README.md lists the same table.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The CLI's exit statuses, unique per meaning (``virtdeck --help`` lists them).

    Signals are 128 + the signal number (130 = Ctrl-C, 143 = SIGTERM, 129 = SIGHUP).
    """

    OK = 0            #: done (also a no-op: already running, already deleted with --missing-ok)
    FAILED = 1        #: failed for another reason (a step failed and was undone, a check has a fail line)
    USAGE = 2         #: bad usage or input (argparse, a field's value, the inventory file); nothing changed
    NOT_FOUND = 3     #: no such VM, network, router, host, template, tenant, …
    CONFLICT = 4      #: wrong state or already exists / still in use (VM not running, name taken)
    UNREACHABLE = 5   #: a host or the OVN NB did not answer or failed; also a partial listing
    TIMEOUT = 6       #: waited and it did not happen (shutdown, a transaction)
    REFUSED = 7       #: refused by policy: --readonly, quota, a disabled host
    INTERRUPTED = 130  #: Ctrl-C (SIGINT); SIGTERM/SIGHUP give 128 + their number


#: One line per code, as ``virtdeck --help`` and README.md show it.
EXIT_CODE_TEXT = {
    ExitCode.OK: "ok (also a no-op)",
    ExitCode.FAILED: "failed (a step failed and was undone, a check has a fail line)",
    ExitCode.USAGE: "bad usage or input (or no terminal for a terminal verb); nothing changed",
    ExitCode.NOT_FOUND: "not found (VM, network, router, host, template, tenant)",
    ExitCode.CONFLICT: "wrong state, already exists or still in use",
    ExitCode.UNREACHABLE: "host or OVN NB unreachable or failing; partial result",
    ExitCode.TIMEOUT: "timed out",
    ExitCode.REFUSED: "refused by policy: --readonly, quota, disabled host",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); other signals 128+n",
}


def exit_code_table() -> str:
    """The exit-code table as text lines (``  0  ok (also a no-op)``), for --help and README."""
    return "\n".join(f"  {int(c):>3}  {EXIT_CODE_TEXT[c]}" for c in ExitCode)


class VirtdeckError(Exception):
    """Base of every error shown to the operator as one line (CLI) or a notification (TUI).

    ``exit_code`` is the CLI's process exit status for this error (:class:`ExitCode`).
    """

    exit_code = ExitCode.FAILED


class ConfigError(VirtdeckError):
    """The inventory file is missing, unreadable or invalid (names file, key, what is allowed)."""

    exit_code = ExitCode.USAGE


class NotInInventory(ConfigError):
    """No host or template of that name in the inventory (a ConfigError that callers may catch
    as such; the CLI exits 3, not found)."""

    exit_code = ExitCode.NOT_FOUND


class ValidationError(VirtdeckError):
    """Operator input is invalid; ``field`` names the input, the message says what is allowed."""

    exit_code = ExitCode.USAGE

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class AlreadyExists(ValidationError):
    """A field's value names something that exists already (a VM name taken): exit 4. Still a
    ValidationError, so a form shows it beside ``field``."""

    exit_code = ExitCode.CONFLICT


class InUse(ValidationError):
    """The object is still used (a network with VM ports, a template backing disks): exit 4."""

    exit_code = ExitCode.CONFLICT


class QuotaExceeded(ValidationError):
    """The tenant's quota refuses the request (``field`` is ``tenant``): exit 7."""

    exit_code = ExitCode.REFUSED


class NotFoundError(VirtdeckError):
    """The named object (VM, network, router, host, template, tenant) does not exist."""

    exit_code = ExitCode.NOT_FOUND


class ConflictError(VirtdeckError):
    """The object is in the wrong state for the verb, already exists, or is still in use."""

    exit_code = ExitCode.CONFLICT


class WaitTimeout(VirtdeckError):
    """Waited for something (a guest's shutdown, a transaction) and it did not happen in time."""

    exit_code = ExitCode.TIMEOUT


class RefusedError(VirtdeckError):
    """Refused by policy: read-only mode, a quota, a disabled host."""

    exit_code = ExitCode.REFUSED


class ReadOnlyError(RefusedError):
    """A mutating verb was asked for while the console runs with --readonly."""


class HostError(VirtdeckError):
    """A hypervisor or the OVN NB could not be reached or refused an operation.

    The message names the host and carries the underlying libvirt/OVN/SSH message.
    """

    exit_code = ExitCode.UNREACHABLE


class NoTerminal(VirtdeckError):
    """The console was started without a terminal (stdin or stderr is not a TTY: Textual reads
    keys from stdin and draws on stderr): it refuses at once instead of spinning on a closed
    stdin and drawing escape codes into a file. Exit 2 (usage)."""

    exit_code = ExitCode.USAGE


NO_TERMINAL = ("the console needs a terminal (stdin and stderr a TTY; over SSH use `ssh -t`); "
               "without one use the command-line verbs, which all work without a terminal: "
               "`virtdeck vm list`, `virtdeck network list`, … (`virtdeck --help` lists them)")
