"""`virtdeck check [vm|network|router|host NAME] [--fix [--yes]] [--json|-o yaml]`: the drift
check's CLI handler (declared in console/verbs/check.py; service console/services/drift.py).

Output (console/output.py ``emit``): with a scope, the chain of that vm/network/router/host,
each link ok or marked ``<- drift``; then one block per finding (kind, subject, what disagrees,
the fix); or the report as JSON/YAML. ``--fix`` lists the safe findings (orphans) and asks
before removing them (``--yes`` for scripts; without a terminal and without ``--yes`` nothing is
removed). Exit statuses (:class:`console.errors.ExitCode`): 0 no drift (or every finding was a
removed orphan), 1 drift left (or a removal failed), 2 ``--fix`` not confirmed / bad input,
3 ``check KIND NAME`` names no such vm (on the hosts that answered), network, router or host,
5 a host or the southbound did not answer (the check is partial).
"""

from __future__ import annotations

import sys

from . import output
from .cli_vm_verbs import cli_session
from .errors import ExitCode


def _ask(question: str) -> bool:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_check(args) -> int:
    """Run the check (and ``--fix``); print; return the exit status (module doc)."""
    from .errors import ValidationError
    from .services import drift
    kind, name = getattr(args, "kind", None), getattr(args, "name", None)
    if kind and not name:
        raise ValidationError("name", f"check {kind}: give the {kind}'s name (virtdeck check {kind} NAME)")
    as_data = output.fmt(args) != "table"
    with cli_session(args) as s:
        report = drift.check(s, kind, name)
        out = drift.public(report)
        if not args.fix:
            output.emit(args, out, drift.check_text(report))
        else:
            safe = [f for f in report["findings"] if f["safe"]]
            if not as_data:
                for line in drift.check_text(report):
                    print(line)
            if safe and not args.yes:
                question = (f"--fix will remove these {len(safe)} orphan(s):\n  "
                            + "\n  ".join(f["subject"] for f in safe) + "\nRemove them?")
                if not _ask(question):
                    output.warn("nothing removed (answer y at a terminal, or pass --yes)")
                    return ExitCode.USAGE
            res = drift.fix(s, report) if (safe or report["stale_marks"]) else \
                {"removed": [], "skipped": [], "failed": [], "marks_dropped": 0}
            out["fixed"] = res
            output.emit(args, out, drift.fix_text(res))
            left = [f for f in report["findings"] if not f["safe"]]
            if res["failed"] or left:
                return ExitCode.FAILED
            return ExitCode.UNREACHABLE if report["unreachable"] else ExitCode.OK
    if kind and not report["chain"] and not report["findings"]:
        return ExitCode.NOT_FOUND
    if report["findings"]:
        return ExitCode.FAILED
    if report["unreachable"] or report["sb_error"]:   # a disabled host is policy, not a failure
        return ExitCode.UNREACHABLE
    return ExitCode.OK
