"""`virtdeck check [vm|network|router|host NAME] [--fix [--yes]] [--json]`: the drift check's
CLI handler (declared in console/verbs/check.py; service console/services/drift.py).

Output: one block per finding (kind, subject, what disagrees, the fix), or JSON with ``--json``.
``--fix`` lists the safe findings (orphans) and asks before removing them (``--yes`` for
scripts; without a terminal and without ``--yes`` nothing is removed). Exit codes: 0 no drift
(or every safe finding removed and none other left), 1 drift found (or a removal failed),
2 bad input, 3 ``check KIND NAME`` found no such vm/network/router/host, 5 a host or the southbound did not answer (the check is partial).
"""

from __future__ import annotations

import json
import sys

from .cli_vm_verbs import cli_session

EXIT_DRIFT = 1      # findings left
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3  # check KIND NAME: no such vm (on the hosts that answered), network, router or host
EXIT_PARTIAL = 5    # a host (or the SB) did not answer: what was checked is printed


def _print(args, obj, lines) -> None:
    if getattr(args, "json", False):
        print(json.dumps(obj, indent=2, sort_keys=True, default=str))
    else:
        for line in lines:
            print(line)


def _ask(question: str) -> bool:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_check(args) -> int:
    """Run the check (and ``--fix``); print; return the exit code (module doc)."""
    from .errors import ValidationError
    from .services import drift
    kind, name = getattr(args, "kind", None), getattr(args, "name", None)
    if kind and not name:
        raise ValidationError("name", f"check {kind}: give the {kind}'s name (virtdeck check {kind} NAME)")
    with cli_session(args) as s:
        report = drift.check(s, kind, name)
        out = drift.public(report)
        if not args.fix:
            _print(args, out, drift.check_text(report))
        else:
            safe = [f for f in report["findings"] if f["safe"]]
            if not getattr(args, "json", False):
                for line in drift.check_text(report):
                    print(line)
            if safe and not args.yes:
                question = (f"--fix will remove these {len(safe)} orphan(s):\n  "
                            + "\n  ".join(f["subject"] for f in safe) + "\nRemove them?")
                if not _ask(question):
                    print("virtdeck: nothing removed (answer y at a terminal, or pass --yes)",
                          file=sys.stderr)
                    return EXIT_USAGE
            res = drift.fix(s, report) if (safe or report["stale_marks"]) else \
                {"removed": [], "skipped": [], "failed": [], "marks_dropped": 0}
            out["fixed"] = res
            if getattr(args, "json", False):
                _print(args, out, [])
            else:
                for line in drift.fix_text(res):
                    print(line)
            left = [f for f in report["findings"] if not f["safe"]]
            if res["failed"] or left:
                return EXIT_DRIFT
            return EXIT_PARTIAL if report["partial"] else 0
    if kind and not report["chain"] and not report["findings"]:
        return EXIT_NOT_FOUND
    if report["partial"] or report["sb_error"]:
        return EXIT_PARTIAL if not report["findings"] else EXIT_DRIFT
    return EXIT_DRIFT if report["findings"] else 0
