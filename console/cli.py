"""virtdeck command line: `virtdeck` opens the console; `virtdeck VERB …` runs one verb.

The verb groups (vm, template, network, router) are generated from the verb registry
(:mod:`console.verbs`: one declaration per verb); their handlers, in console/cli_<group>.py,
return a process exit code. The ``lab`` group is a developer tool, not a cloud verb: it keeps
its own hand-written parser (console/cli_lab.py ``register(subparsers)``).
Errors the operator can act on are raised as :class:`console.errors.VirtdeckError`
and printed as one line, never as a traceback. SIGTERM and SIGHUP end a verb as Ctrl-C does
(its undo runs, its SSH links close), with exit status 128 + the signal number.
"""

from __future__ import annotations

import argparse
import signal
import sys

from . import cli_lab, verbs
from .errors import VirtdeckError

# Verb groups, in the order `virtdeck --help` lists them: the lab, then the registry's groups.
GROUPS = ("lab", *verbs.cli_groups())


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available verb group registered."""
    parser = argparse.ArgumentParser(
        prog="virtdeck",
        description="Console for a small libvirt + OVN cloud. With no verb, opens the TUI.",
    )
    parser.add_argument("--config", metavar="PATH",
                        help="inventory TOML (default: $VIRTDECK_CONFIG, then the XDG config dir, then the lab's)")
    parser.add_argument("--readonly", action="store_true",
                        help="refuse every mutating verb")
    parser.add_argument("--json", action="store_true", help="machine-readable output where a verb supports it")
    sub = parser.add_subparsers(dest="group", metavar="VERB")
    cli_lab.register(sub)
    for group in GROUPS[1:]:
        verbs.register_cli(sub, group)
    return parser


class Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached a command-line verb: it ends as on Ctrl-C (the verb's undo and
    ``finally`` blocks run, its SSH links close and their forward directories go), then the
    process exits with 128 + ``signum``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# The console handles these itself (console/app.py); the lab group has its own handlers.
VERB_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _signalled(signum: int, _frame) -> None:
    for sig in VERB_SIGNALS:   # a second one must not cut the undo short (SIGKILL still does)
        signal.signal(sig, signal.SIG_IGN)
    raise Signalled(signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `virtdeck` script. Returns the process exit code (128 + n when signal
    n — SIGINT, SIGTERM, SIGHUP — ended a verb)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.group is None:
            from .app import run_console
            return run_console(args)
        if args.group != "lab":
            for sig in VERB_SIGNALS:
                signal.signal(sig, _signalled)
        return int(args.func(args) or 0)
    except VirtdeckError as exc:
        print(f"virtdeck: {exc}", file=sys.stderr)
        return exc.exit_code
    except Signalled as exc:
        print(f"virtdeck: ended by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("virtdeck: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
