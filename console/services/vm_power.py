"""Power verbs on one VM: start, shutdown (ACPI, wait), poweroff, reboot, suspend, resume.

Each runs in the verb frame (:func:`vm_lookup._run_verb`: guard, one audit record ``vm.<verb>``);
libvirt is reached through :mod:`backends.domains`, whose HostError names the host and carries
libvirt's message. Asking for the state a VM is already in is a ``noop``.
"""

from __future__ import annotations

import time

from ...backends import domains
from ..errors import ExitCode, VirtdeckError
from .vm_lookup import OpResult, VmStateError, _find, _Op, _run_verb, state_name

class ShutdownTimeout(VirtdeckError):
    """The guest did not power off within the timeout after the ACPI power button.

    ``vm``/``host``/``timeout`` say which and how long; the caller may offer :func:`poweroff`.
    """

    exit_code = ExitCode.TIMEOUT

    def __init__(self, vm: str, host: str, timeout: float):
        super().__init__(f"{vm} on {host} is still running {timeout:g} s after the ACPI power button; "
                         f"force it off with `virtdeck vm poweroff {vm}` (or shutdown --force)")
        self.vm, self.host, self.timeout = vm, host, timeout


class RebootIgnored(VirtdeckError):
    """An ACPI reboot changed nothing within the wait: the guest did not act on the power button
    (no shutdown, no reset event from libvirt). ``vm``/``host``/``timeout`` (seconds) say which
    and how long; ``went_down``: it did shut down but was not reset in time."""

    exit_code = ExitCode.TIMEOUT

    def __init__(self, vm: str, host: str, timeout: float, went_down: bool = False):
        if went_down:
            text = (f"{vm} on {host}: the guest went down but did not come back within {timeout:g} s; "
                    f"`virtdeck vm start {vm}` if it stays off")
        else:
            text = (f"{vm} on {host}: the guest ignored the power button after {timeout:g} s; "
                    f"--hard resets it")
        super().__init__(text)
        self.vm, self.host, self.timeout, self.went_down = vm, host, timeout, went_down


def _find_state(op: _Op, session, host: str | None):
    """The VM's domain (:func:`vm_lookup._find`, which sets ``op.host``) and its state name
    (``running``, ``paused``, ``shutoff``, … from :func:`vm_lookup.state_name`).
    Raises VmNotFound, HostError."""
    dom = _find(op, session, host)
    return dom, state_name(dom)


def start(session, name: str, host: str | None = None) -> OpResult:
    """Start (boot) a stopped VM. Running/paused → noop with a note. Raises VmNotFound, HostError."""
    def body(op: _Op) -> OpResult:
        dom, st = _find_state(op, session, host)
        if st in ("running", "blocked"):
            return op.result("noop", f"{name} is already running on {op.host}", state=st)
        if st == "paused":
            return op.result("noop", f"{name} on {op.host} is paused; resume it instead of starting", state=st)
        if st == "pmsuspended":
            domains.wakeup(dom, op.host)
            return op.result("ok", f"{name} on {op.host} woken from guest suspend", state="running")
        domains.start(dom, op.host)
        return op.result("ok", f"{name} started on {op.host}", state=state_name(dom))
    return _run_verb("vm.start", name, body)


def shutdown(session, name: str, host: str | None = None, timeout: float = 60.0,
             force: bool = False) -> OpResult:
    """Ask the guest to power off (ACPI power button) and wait up to ``timeout`` seconds.

    Stopped → noop. ``timeout=0`` returns at once after the request (outcome ``ok``, details
    ``waited=False``). When the guest is still running after ``timeout``: with ``force`` it is
    powered off (details ``forced=True``), else ShutdownTimeout is raised so the caller can offer
    :func:`poweroff`. A paused guest cannot see the button: VmStateError.
    """
    def body(op: _Op) -> OpResult:
        dom, st = _find_state(op, session, host)
        if not domains.is_active(dom, op.host):
            return op.result("noop", f"{name} on {op.host} is already stopped ({st})", state=st)
        if st == "paused":
            raise VmStateError(f"{name} on {op.host} is paused and cannot see the power button; "
                               f"resume it first, or power it off")
        domains.shutdown(dom, op.host)
        op.details["timeout_s"] = timeout
        if timeout <= 0:
            return op.result("ok", f"{name} on {op.host}: power button pressed (not waiting)", waited=False)
        t0 = time.monotonic()
        if domains.wait_state(dom, ("shutoff",), timeout):  # a transient domain that went counts
            return op.result("ok", f"{name} on {op.host} shut down after {time.monotonic() - t0:.1f} s",
                             state="shutoff", seconds=round(time.monotonic() - t0, 1))
        if not force:
            raise ShutdownTimeout(name, op.host, timeout)
        domains.destroy(dom, op.host)
        return op.result("ok", f"{name} on {op.host} ignored the power button for {timeout:g} s and was "
                         f"forced off", state="shutoff", forced=True)
    return _run_verb("vm.shutdown", name, body)


def poweroff(session, name: str, host: str | None = None) -> OpResult:
    """Force a VM off at once (libvirt destroy: pulls the plug). Stopped → noop."""
    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        if not domains.is_active(dom, op.host):
            return op.result("noop", f"{name} on {op.host} is already stopped", state=state_name(dom))
        domains.destroy(dom, op.host, missing_ok=False)
        return op.result("ok", f"{name} on {op.host} powered off", state="shutoff")
    return _run_verb("vm.poweroff", name, body)


def reboot(session, name: str, host: str | None = None, hard: bool = False,
           timeout: float = 60.0) -> OpResult:
    """Reboot a running VM and say what happened. ``hard``: reset at once (the reset button, no
    guest cooperation). Else the ACPI power button, then wait up to ``timeout`` seconds for
    libvirt's events (:class:`backends.domains.PowerWatch`): the guest went down and QEMU reset
    it → ``ok`` with ``down_s``/``back_s`` (seconds after the request); ``timeout=0`` → ``ok``
    at once, ``waited=False``. Nothing happened in time → :class:`RebootIgnored` (exit 6), whose
    message gives the seconds and ``--hard``. Not running → VmStateError."""
    def body(op: _Op) -> OpResult:
        dom, st = _find_state(op, session, host)
        if st not in ("running", "blocked"):
            raise VmStateError(f"{name} on {op.host} is {st}, not running; start it instead of rebooting")
        if hard:
            domains.reboot(dom, op.host, hard=True)
            return op.result("ok", f"{name} on {op.host} reset", hard=True)
        op.details["timeout_s"] = timeout
        with domains.PowerWatch(dom, op.host) as watch:  # registered before the button: no event missed
            t0 = time.monotonic()
            domains.reboot(dom, op.host, hard=False)
            if timeout <= 0:
                return op.result("ok", f"{name} on {op.host}: power button pressed (not waiting)",
                                 hard=False, waited=False)
            if watch.came_back.wait(timeout):
                back = round(watch.at["back"] - t0, 1)
                down = round(watch.at["down"] - t0, 1) if "down" in watch.at else None
                # a reset after the button: the guest went down (libvirt then restarts it) or
                # rebooted itself; libvirt reports the shutdown of a fake reboot only sometimes
                went = f"went down after {down:.1f} s and " if down is not None else "went down and "
                return op.result("ok", f"{name} on {op.host} rebooted: the guest {went}came back "
                                 f"(reset) {back:.1f} s after the power button", hard=False,
                                 down_s=down, back_s=back, state=state_name(dom))
            raise RebootIgnored(name, op.host, timeout, went_down=watch.went_down.is_set())
    return _run_verb("vm.reboot", name, body)


def suspend(session, name: str, host: str | None = None) -> OpResult:
    """Pause a running VM's vCPUs (it keeps its memory). Paused → noop; stopped → VmStateError."""
    def body(op: _Op) -> OpResult:
        dom, st = _find_state(op, session, host)
        if st == "paused":
            return op.result("noop", f"{name} on {op.host} is already paused", state=st)
        if not domains.is_active(dom, op.host):
            raise VmStateError(f"{name} on {op.host} is {st}; only a running VM can be suspended")
        domains.suspend(dom, op.host)
        return op.result("ok", f"{name} on {op.host} paused", state="paused")
    return _run_verb("vm.suspend", name, body)


def resume(session, name: str, host: str | None = None) -> OpResult:
    """Resume a paused VM. Running → noop; stopped → VmStateError (start it instead)."""
    def body(op: _Op) -> OpResult:
        dom, st = _find_state(op, session, host)
        if st in ("running", "blocked"):
            return op.result("noop", f"{name} on {op.host} is already running", state=st)
        if st != "paused":
            raise VmStateError(f"{name} on {op.host} is {st}, not paused; use start")
        domains.resume(dom, op.host)
        return op.result("ok", f"{name} on {op.host} resumed", state="running")
    return _run_verb("vm.resume", name, body)
