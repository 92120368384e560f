"""virtdeck command line: `virtdeck` opens the console; `virtdeck VERB …` runs one verb.

Each verb group lives in its own module (console/cli_<group>.py) exposing
``register(subparsers)``; the group's handler returns a process exit code.
Errors the operator can act on are raised as :class:`console.errors.VirtdeckError`
and printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import VirtdeckError

# Verb groups, in the order `virtdeck --help` lists them. A group whose module is not
# there yet is skipped, so the tree stays runnable while groups are added.
GROUPS = ("lab", "vm", "template", "network", "router", "host")


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
    for group in GROUPS:
        try:
            module = importlib.import_module(f"virtdeck.console.cli_{group}")
        except ModuleNotFoundError as exc:
            if exc.name == f"virtdeck.console.cli_{group}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `virtdeck` script. Returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.group is None:
            from .app import run_console
            return run_console(args)
        return int(args.func(args) or 0)
    except VirtdeckError as exc:
        print(f"virtdeck: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("virtdeck: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
