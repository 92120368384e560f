"""``vm console``: this terminal on a VM's serial console, over the host's SSH link."""

from __future__ import annotations

import time

from .vm_lookup import OpResult, VmStateError, _find, _Op, _run_verb, state_name

# ---------------------------------------------------------------------------------------------
# Serial console


def console_command(session, host: str, name: str) -> str:
    """The command run on ``host`` to attach to ``name``'s serial console (``virsh console``
    against the host's own libvirt socket)."""
    import shlex

    from ...backends.download import local_uri
    return shlex.join(["virsh", "-c", local_uri(session.inventory.host(host).libvirt_socket), "console", name])


def console(session, name: str, host: str | None = None, fd_in: int | None = None,
            fd_out: int | None = None) -> int:
    """Attach this terminal to the VM's serial console over the host's SSH link
    (:func:`backends.serial_console.attach`); ``Ctrl-]`` comes back. Blocks until detached.
    Without a terminal (stdin a pipe, a file or /dev/null) the input is sent line by line as it
    comes and the session ends shortly after the input does (exit 0), so scripts can drive it.

    The VM must be running (VmStateError otherwise). Typing into a guest console changes things,
    so ``--readonly`` refuses it; the attach is audited (``vm.console``) with how long it lasted.
    Returns the remote exit status (0 after a normal detach).
    """
    from ...backends import serial_console

    out: dict[str, int] = {}

    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        st = state_name(dom)
        if st not in ("running", "blocked", "paused"):
            raise VmStateError(f"{name} on {op.host} is {st}; start it to use its console")
        link = session.link(op.host)
        t0 = time.monotonic()
        banner = f"\r\nConnecting to {name}'s serial console on {op.host}; Ctrl-] to come back.\r\n"
        rc = serial_console.attach(link, console_command(session, op.host, name), fd_in, fd_out, banner=banner)
        out["rc"] = rc
        return op.result("ok", f"detached from {name}'s console on {op.host}", seconds=round(time.monotonic() - t0, 1),
                         exit_status=rc)
    _run_verb("vm.console", name, body)
    return out.get("rc", 0)
