"""The ``check`` verb (one word, no group): declaration only (see :mod:`console.verbs`).

Service: console/services/drift.py (``check``, ``fix``); CLI handler: console/cli_check.py.
In the console: the drift view (screens/drift.py), opened from the palette.
"""

from __future__ import annotations

import argparse

from . import Group, Verb, arg

GROUPS: tuple[Group, ...] = ()

VERBS = (
    Verb(name="check", help="drift check: every disagreement between libvirt, OVN NB and SB "
                            "(orphans, unbound or misplaced ports, stale chassis) with its fix",
         cli="cli_check.cmd_check", service="drift.check", targets="none",
         action="drift_view",
         args=(arg("kind", nargs="?", choices=("vm", "network", "router", "host"),
                   help="limit the findings to one vm, network, router or host"),
               arg("name", nargs="?", metavar="NAME", help="its name"),
               arg("--fix", action="store_true",
                   help="remove the safe findings (orphans) after a confirmation listing them"),
               arg("--yes", action="store_true", help="with --fix: no question (scripts)"),
               arg("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output"))),
)
