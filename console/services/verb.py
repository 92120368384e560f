"""The verb frame: how every mutating verb of virtdeck runs, written once.

A verb is one service function shared by the TUI and the CLI. Each one runs inside :func:`run`,
which gives it, in this order:

1. the read-only guard: :func:`guard.require_writable` with the verb's audit name, before anything
   is read or touched (the refusal is audited too, ``failed: vm.start refused: ...``);
2. error mapping: the body raises :class:`~console.errors.VirtdeckError` subclasses; anything else
   a backend lets through is passed to ``translate`` (e.g. :func:`backends.domains.host_error`)
   and, if that gives a VirtdeckError, raised as such (one line for the operator, no traceback);
3. exactly ONE audit record (:func:`console.audit.record`) under one canonical dotted name
   (``"vm.start"``, ``"vm.create"``, ``"network.create"``, ``"router.attach"``, ``"sg.rules"``,
   ``"template.add"``: ``<noun>.<verb>``, hyphens inside the verb), whether the verb did its
   work (``ok``), found nothing to do (``noop``) or failed (``failed: <one line>``). Details are
   filtered by :func:`audit_safe` (no user-data bodies, nothing secret-looking).

:class:`Undo` is the reusable rollback: register each step's undo (``on_undo``) BEFORE the call
that may leave something behind when its answer is lost (an OVN transaction that timed out may
still commit; a libvirt call whose reply was lost may still have defined), or right after a call
that fails cleanly on someone else's object (never undo what is not ours). ``rollback()`` runs
them in reverse, reporting ``progress(step, "undo" | "undone" | "undo-failed", detail)``, keeps
going past an undo that fails, and returns what could not be undone. :meth:`Undo.run_steps` is
the step runner :func:`provision.create_vm` uses (``progress(step, "start" | "ok" | "failed",
detail)``).

A read that wants only the error mapping passes ``mutating=False``: no guard, no audit record.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any, Callable, Iterable, TypeVar

from .. import audit
from ..errors import VirtdeckError
from . import guard

T = TypeVar("T")
Progress = Callable[[str, str, str], None]

# Detail keys never written to the audit trail (bodies an operator typed; secrets). audit.record
# refuses secret-looking keys outright; here they are dropped so a verb never fails on its record.
_NEVER_AUDITED = ("user_data",)
_SECRET_WORDS = ("password", "secret", "token")


def audit_safe(details: dict) -> dict:
    """``details`` without user-data bodies and secret-looking keys (``*_hash`` keys stay)."""
    return {k: v for k, v in details.items()
            if k not in _NEVER_AUDITED
            and (k.lower().endswith("_hash") or not any(w in k.lower() for w in _SECRET_WORDS))}


def reason(exc: BaseException) -> str:
    """One line for an exception: a VirtdeckError's own message, else ``Type: message``."""
    if isinstance(exc, VirtdeckError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class VerbRun:
    """One run of one verb, filled in as it goes: what its single audit record will say.

    ``verb``: the canonical audit name; ``target``: e.g. ``"vm demo/web1"`` (the body may sharpen
    it once it knows the tenant); ``host``: the hypervisor acted on, if any (audited first among
    the details); ``details``: JSON-ready facts for the record; ``outcome``: ``"ok"`` unless the
    body sets ``"noop"``.
    """

    def __init__(self, verb: str, target: str):
        self.verb = verb
        self.target = target
        self.host: str | None = None
        self.details: dict[str, Any] = {}
        self.outcome = "ok"
        # Set by a body that words its own failure (e.g. "failed: disk: <why>") before raising;
        # then any exception, KeyboardInterrupt included, is audited with it.
        self.failure: str | None = None

    def note(self, **details: Any) -> None:
        """Add facts to the audit record (later keys win)."""
        self.details.update(details)

    def _record(self, outcome: str) -> None:
        extra = {"host": self.host} if self.host else {}
        audit.record(self.verb, self.target, outcome, **{**extra, **audit_safe(self.details)})


def run(verb: str, target: str, body: Callable[[VerbRun], T], *, mutating: bool = True,
        translate: Callable[[BaseException, VerbRun], VirtdeckError | None] | None = None) -> T:
    """Run ``body(run)`` as the verb ``verb`` on ``target``; return what ``body`` returns.

    Guard first, then ``body``; one audit record whatever happens (``mutating=False``: neither
    guard nor record, only the error mapping). The
    outcome is ``run.outcome``, or the returned object's ``outcome`` attribute if it has one
    (:class:`OpResult`), whose ``details`` mapping, if any, is merged into the record.

    ``translate(exc, run)`` maps an exception that is not a VirtdeckError (a backend library's)
    to one, or returns None to let it through unchanged (and unaudited as a failure, like a bug).

    A body that sets ``run.failure`` (``"failed: <step>: <why>"``) before raising has the record
    say that instead, and has any exception audited (KeyboardInterrupt after a rollback).

    Raises: ReadOnlyError (under --readonly, before ``body`` runs), whatever VirtdeckError
    ``body`` raises or ``translate`` gives; the audit record is written before raising.
    """
    r = VerbRun(verb, target)
    try:
        if mutating:
            guard.require_writable(verb)
        try:
            res = body(r)
        except VirtdeckError:
            raise
        except Exception as exc:  # noqa: BLE001 - offered to translate, re-raised if it declines
            mapped = translate(exc, r) if translate else None
            if mapped is None:
                raise
            raise mapped from None
    except VirtdeckError as exc:
        if mutating:
            _record_failure(r, r.failure or f"failed: {exc}")
        raise
    except BaseException:
        if mutating and r.failure:
            _record_failure(r, r.failure)
        raise
    outcome = getattr(res, "outcome", None)
    if isinstance(outcome, str):
        r.outcome = outcome
    more = getattr(res, "details", None)
    if isinstance(more, dict) or hasattr(more, "items"):
        r.details.update(dict(more))
    if mutating:
        r._record(r.outcome)
    return res


def _record_failure(r: VerbRun, outcome: str) -> None:
    # The verb's own error is what the operator must see: an audit trail that cannot be written
    # (disk full, bad path) must not replace it.
    try:
        r._record(outcome)
    except (OSError, ValueError):
        pass


class Undo:
    """A reusable undo sequence with progress events.

    ``progress(step, status, detail)`` is called from the running thread (default: nothing);
    ``explain(exc)`` words an exception for those events (default :func:`reason`).
    Entries are ``(step, what, fn)``: the step they belong to, a human line ("delete volume
    default/web1.qcow2"), and a no-argument callable. Not thread-safe: one sequence per run.
    """

    def __init__(self, progress: Progress | None = None,
                 explain: Callable[[BaseException], str] = reason):
        self.progress: Progress = progress or (lambda *_a: None)
        self.explain = explain  # exception -> the one line shown in "failed"/"undo-failed"
        self.entries: list[tuple[str, str, Callable[[], None]]] = []
        self.timings: dict[str, float] = {}  # seconds per step finished by run_steps
        self.current: str | None = None      # the step run_steps is in (or failed in)

    def on_undo(self, step: str, what: str, fn: Callable[[], None]) -> None:
        """Register how to undo (part of) ``step``. Register BEFORE a call whose lost answer may
        still have made something (and make ``fn`` if-exists by our own id)."""
        self.entries.append((step, what, fn))

    def rollback(self) -> list[str]:
        """Run every registered undo in reverse order (each once; the list is emptied), reporting
        ``undo`` / ``undone`` / ``undo-failed``. Never raises for a failing undo: returns
        ``["<what>: <reason>", …]`` for what could not be undone (empty when all went)."""
        left = []
        entries, self.entries = self.entries, []
        for step, what, fn in reversed(entries):
            self.progress(step, "undo", what)
            try:
                fn()
                self.progress(step, "undone", what)
            except Exception as exc:  # noqa: BLE001 - keep undoing the rest
                left.append(f"{what}: {self.explain(exc)}")
                self.progress(step, "undo-failed", f"{what}: {self.explain(exc)}")
        return left

    def run_steps(self, steps: Iterable[tuple[str, str, Callable[[], str | None]]],
                  hook: Callable[[str, str], None] | None = None) -> None:
        """Run ``(step, label, fn)`` in order: ``progress(step, "start", label)``, ``fn()``,
        ``progress(step, "ok", fn's detail)``; ``hook("before"|"after", step)`` around each (tests).

        On any exception (KeyboardInterrupt included) it reports ``progress(step, "failed",
        reason)`` and re-raises; :attr:`current` names the failed step. The caller decides to
        :meth:`rollback` (it usually must release other things and audit first)."""
        for step, label, fn in steps:
            self.current = step
            try:
                self.progress(step, "start", label)
                t0 = time.monotonic()
                if hook:
                    hook("before", step)
                detail = fn()
                if hook:
                    hook("after", step)
                self.timings[step] = time.monotonic() - t0
            except BaseException as exc:
                self.progress(step, "failed", self.explain(exc))
                raise
            self.progress(step, "ok", detail or "")


def _detached(exc: BaseException) -> BaseException:
    """Drop an error's traceback and context: their frames hold libvirt objects (domains,
    connections) that would otherwise live as long as the error. (A virDomain freed after its
    Session closed used to block the process at exit; Session.close now waits for the SSH
    forward to close, so that no longer hangs — this only keeps results light.)"""
    exc.__traceback__ = None
    exc.__context__ = None
    exc.__cause__ = None
    return exc


def bulk(fn: Callable[..., T], session, names: Iterable[str], max_workers: int = 4,
         **kwargs) -> list[T | VirtdeckError]:
    """Run verb ``fn`` (e.g. :func:`vm_power.start`) on several targets in parallel threads.

    Returns one entry per name, in order: what ``fn`` returned (an OpResult), or the VirtdeckError it raised (each target
    gets its own audit record; under --readonly each entry is a ReadOnlyError, each audited).
    """
    names = list(dict.fromkeys(names))
    if not names:
        return []

    def one(n: str):
        try:
            return fn(session, n, **kwargs)
        except VirtdeckError as exc:
            return _detached(exc)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(names)))) as pool:
        return list(pool.map(one, names))
