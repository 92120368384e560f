"""virtdeck command line: `virtdeck` opens the console; `virtdeck VERB …` runs one verb.

The verb groups (vm, template, network, router) are generated from the verb registry
(:mod:`console.verbs`: one declaration per verb); their handlers, in console/cli_<group>.py,
return a process exit code. The ``lab`` group is a developer tool, not a cloud verb: it keeps
its own hand-written parser (console/cli_lab.py ``register(subparsers)``).
Errors the operator can act on are raised as :class:`console.errors.VirtdeckError`
and printed as one line, never as a traceback. SIGTERM and SIGHUP end a verb as Ctrl-C does
(its undo runs, its SSH links close), with exit status 128 + the signal number.

Every verb takes ``--json`` / ``-o table|wide|json|yaml`` / ``--wide`` before the group, after the
group or after the verb (console/output.py). Exit statuses: one table,
:class:`console.errors.ExitCode`, printed at the end of ``virtdeck --help``.
``virtdeck completion bash|zsh|fish`` prints a completion script (argcomplete; hosts, VMs,
networks and templates complete from console/completion.py's fast paths).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from . import cli_lab, output, verbs
from .errors import NO_TERMINAL, ExitCode, NoTerminal, VirtdeckError, exit_code_table

# Verb groups, in the order `virtdeck --help` lists them: the lab, then the registry's groups.
GROUPS = ("lab", *verbs.cli_groups())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("virtdeck")
    except PackageNotFoundError:  # run from a tree that is not installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: the version is read when asked for, not at every start (importlib.metadata
    and the email parser it loads cost 15-40 ms, paid before the console's first frame)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show program's version number and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"virtdeck {_version()}")       # on stdout, as argparse's own action prints it
        parser.exit()


EPILOG = f"""exit status (one meaning per code; every verb):
{exit_code_table()}

output: --json, -o table|json|yaml and --wide go before the group, after it or
  after the verb; tables fit 80 columns in a pipe (--wide: every column in full)
completion: eval "$(virtdeck completion bash)" (or zsh; fish: ... fish | source)"""


def _completion(args) -> int:
    from .completion import script
    sys.stdout.write(script(args.shell))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available verb group registered."""
    parser = argparse.ArgumentParser(
        prog="virtdeck",
        description="Console for a small libvirt + OVN cloud. With no verb, opens the TUI.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--config", metavar="PATH",
                        help="inventory TOML (default: $VIRTDECK_CONFIG, then the XDG config dir, then the lab's)")
    parser.add_argument("--readonly", action="store_true",
                        help="refuse every mutating verb")
    output.add_format_args(parser, top=True)
    sub = parser.add_subparsers(dest="group", metavar="VERB")
    cli_lab.register(sub)
    for group in GROUPS[1:]:
        verbs.register_cli(sub, group)
    comp = sub.add_parser("completion", help="print the shell completion script (bash, zsh or fish)",
                          description="Print a completion script for SHELL on stdout.",
                          epilog='examples:\n  eval "$(virtdeck completion bash)"\n'
                                 '  virtdeck completion zsh > "${fpath[1]}/_virtdeck"\n'
                                 '  virtdeck completion fish > ~/.config/fish/completions/virtdeck.fish',
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    comp.add_argument("shell", choices=("bash", "zsh", "fish"))
    comp.set_defaults(func=_completion)
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


def console_args(argv: list[str]) -> argparse.Namespace | None:
    """The arguments of a plain console start — ``virtdeck [--config PATH] [--readonly]``, each
    at most once, spelled in full — as the full parser would give them, or None for anything
    else (a verb, --help, an abbreviation, a bad or repeated option: the full parser then
    answers). The console's start skips building every verb's parser (~15-30 ms before its
    first frame)."""
    config, readonly, i = None, False, 0
    while i < len(argv):
        a = argv[i]
        if a == "--readonly" and not readonly:
            readonly = True
        elif a == "--config" and config is None and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            config = argv[i + 1]
            i += 1
        elif a.startswith("--config=") and config is None and len(a) > len("--config="):
            config = a[len("--config="):]
        else:
            return None
        i += 1
    return argparse.Namespace(config=config, readonly=readonly, group=None)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `virtdeck` script. Returns the process exit code (128 + n when signal
    n — SIGINT, SIGTERM, SIGHUP — ended a verb)."""
    completing = argv is None and "_ARGCOMPLETE" in os.environ   # a shell asks for completions
    args = None if completing else console_args(sys.argv[1:] if argv is None else argv)
    if args is None:
        parser = build_parser()
        if completing:
            from .completion import autocomplete
            autocomplete(parser)  # exits
        args = parser.parse_args(argv)
    output.normalise(args)
    try:
        if args.group is None:
            if not (sys.stdin.isatty() and sys.stderr.isatty()):
                # before importing the console (Textual: ~1 s): `virtdeck </dev/null` answers at once
                raise NoTerminal(NO_TERMINAL)
            from .live_start import hold_gc, start_early
            hold_gc()   # no young collections over the imports (console/live_start.py)
            # the live model starts first: its imports and SSH handshakes overlap Textual's
            start_early(getattr(args, "config", None))
            from .app import run_console
            return run_console(args)
        if args.group != "lab":
            for sig in VERB_SIGNALS:
                signal.signal(sig, _signalled)
        return int(args.func(args) or 0)
    except VirtdeckError as exc:
        print(f"virtdeck: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except Signalled as exc:
        print(f"virtdeck: ended by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:  # `virtdeck vm list | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except KeyboardInterrupt:
        print("virtdeck: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
