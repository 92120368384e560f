"""The verb registry: ONE declaration per operator verb, from which the rest is generated.

A :class:`Verb` names the verb (``"vm start"``: group words then the verb), its service function
(``"vm_power.start"``, a module of :mod:`console.services` and a function in it, imported only
when the verb runs so ``virtdeck --help`` and the console's start-up stay cheap), whether it acts
on one VM or on several (``targets``), its confirmation (:class:`Confirm`, or none), its key and
the panel that key works in, the TUI action the key and the palette run, its argparse arguments
(:func:`arg`, the ``add_argument`` call spelled once) and its help line. From the declarations
in :mod:`.vm`, :mod:`.network`, :mod:`.template`, :mod:`.host`, :mod:`.tenant`, … come:

- the CLI subcommands: :func:`register_cli` (called by console/cli.py);
- the panel key bindings: :func:`keys` / :func:`for_key` (screens/main.py turns them into
  Textual ``Binding`` objects and dispatches a key by the active panel);
- the command palette's actions: :func:`all_verbs` (console/app.py ``CloudCommands``);
- the ``?`` help lines: :func:`help_groups`.

Adding a verb = one service function + one entry in :data:`VERBS` (+ its test); a read verb that
prints a dict needs no CLI code: the generic ``cli_vm_verbs.cmd_read`` runs the service and prints
its JSON, or the text lines of ``render``.

The ``lab`` group (console/cli_lab.py) is a developer tool that builds and removes the test lab,
not an operator verb on the cloud: it stays its own hand-written argparse group, outside this
registry, and has no key, palette entry or help line.

This package imports neither textual nor any backend.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Arg:
    """One ``parser.add_argument(*flags, **opts)`` call (argparse's own vocabulary: ``type``,
    ``help``, ``choices``, ``default``, ``metavar``, ``nargs``, ``action``, ``required``, …)."""

    flags: tuple[str, ...]
    opts: Mapping[str, Any] = field(default_factory=dict)


def arg(*flags: str, **opts: Any) -> Arg:
    """Declare an argument exactly as ``add_argument`` takes it."""
    return Arg(tuple(flags), dict(opts))


@dataclass(frozen=True)
class Confirm:
    """How the TUI asks before a verb: ``word`` heads the question (``"Shut down (ACPI)"`` →
    "Shut down (ACPI) 2 VM(s)?"), ``note`` says what happens, ``danger`` colours the dialog and
    focuses "No"; ``always=False`` asks only when the verb acts on several VMs."""

    word: str
    note: str = ""
    danger: bool = False
    always: bool = True


@dataclass(frozen=True)
class Group:
    """A CLI verb group (``vm``, ``network sg``): its help and the argparse ``dest`` of its
    subcommand."""

    name: str
    help: str
    dest: str


@dataclass(frozen=True)
class Verb:
    """One operator verb (see the module doc).

    ``name``: ``"vm start"``; ``help``: one line (CLI ``--help``, the palette, ``?``);
    ``cli``: ``"cli_vm_verbs.cmd_resize"``, the handler under :mod:`console` that prints the
    result and returns the exit code (called ``handler(args)``, or ``handler(args, verb)`` when
    it has ``takes_verb``); ``service``: ``"vm_power.start"`` under :mod:`console.services`;
    ``targets``: ``"many"`` (names, bulk; marks in the TUI), ``"one"`` or ``"none"``;
    ``label``: the key's legend (``"Start"``); ``key``: Textual key name(s), comma-separated;
    ``panel``: the main-screen panel the key works in (``"vms"``, ``"networks"``, …);
    ``action``: the main-screen action the key and the palette run (``"vm_verb('start')"``;
    None: the verb is on the command line only and the palette says how to run it);
    ``confirm``: :class:`Confirm` or None; ``args``: :class:`Arg` in ``--help`` order;
    ``render``: ``"module.function"`` under :mod:`console.services` giving a read result's text
    lines (generic read handler); ``examples``: command lines shown in the verb's ``--help``
    epilog (``"virtdeck vm start web1 db1"``; a ``# comment`` after two spaces is kept).
    """

    name: str
    help: str
    cli: str
    service: str | None = None
    targets: str = "none"
    label: str = ""
    key: str | None = None
    panel: str | None = None
    action: str | None = None
    confirm: Confirm | None = None
    args: tuple[Arg, ...] = ()
    render: str | None = None
    examples: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        """The group words: ``"vm"`` for ``"vm start"``, ``"network sg"`` for ``"network sg list"``."""
        return self.name.rsplit(" ", 1)[0]

    @property
    def leaf(self) -> str:
        """The subcommand word: ``"start"``."""
        return self.name.rsplit(" ", 1)[-1]  # a one-word verb ("check") is its own leaf

    @property
    def key_display(self) -> str:
        """The key as the help shows it: ``"ctrl+d / delete"``."""
        return " / ".join((self.key or "").split(","))

    def service_fn(self) -> Callable:
        """The service function (imported now). Raises ImportError/AttributeError when the
        declaration names something that does not exist (a test checks every entry)."""
        if not self.service:
            raise LookupError(f"{self.name} declares no service function")
        return _resolve("virtdeck.console.services", self.service)

    def cli_fn(self) -> Callable:
        """The CLI handler (imported now)."""
        return _resolve("virtdeck.console", self.cli)

    def render_fn(self) -> Callable | None:
        """The text renderer of a read verb's result, or None."""
        return _resolve("virtdeck.console.services", self.render) if self.render else None


def _resolve(package: str, dotted: str) -> Callable:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(f"{package}.{module}"), name)


def takes_verb(fn: Callable) -> Callable:
    """Mark a CLI handler that is called ``fn(args, verb)`` (generic handlers shared by several
    verbs read their service and confirmation from the declaration)."""
    fn.takes_verb = True
    return fn


# ---------------------------------------------------------------------------------------------
# The registry


def _load() -> tuple[tuple[Group, ...], tuple[Verb, ...]]:
    from . import check, host, metrics, network, template, tenant, vm
    groups = vm.GROUPS + template.GROUPS + network.GROUPS + host.GROUPS + tenant.GROUPS + check.GROUPS + metrics.GROUPS
    verbs = vm.VERBS + template.VERBS + network.VERBS + host.VERBS + tenant.VERBS + check.VERBS + metrics.VERBS
    names = [v.name for v in verbs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise RuntimeError(f"verbs declared twice: {sorted(dup)}")
    return groups, verbs


GROUPS, VERBS = _load()
_BY_NAME = {v.name: v for v in VERBS}

#: Keys that several panels share get one legend here (Textual shows one binding per key).
SHARED_KEY_TEXT = {"c": "Create", "e": "Edit cloud-config (VMs) / network (Nets)",
                   "ctrl+d,delete": "Delete (VMs, Nets; asks first)"}
#: Verb keys the footer shows (the rest are listed by ``?``).
FOOTER_KEYS = frozenset({"c"})


def all_verbs() -> tuple[Verb, ...]:
    """Every verb, in declaration order (= ``--help`` order)."""
    return VERBS


def get(name: str) -> Verb:
    """The verb called ``name`` (``"vm start"``). Raises KeyError."""
    return _BY_NAME[name]


def for_key(panel: str, key: str) -> Verb | None:
    """The verb bound to ``key`` (as declared, e.g. ``"ctrl+d,delete"``) in ``panel``, or None."""
    return next((v for v in VERBS if v.key == key and v.panel == panel), None)


def panels_of_key(key: str) -> list[str]:
    """The panels where ``key`` does something, in declaration order."""
    return list(dict.fromkeys(v.panel for v in VERBS if v.key == key and v.panel))


def keys() -> list[tuple[str, str, bool]]:
    """``(key, legend, show in footer)`` for every distinct verb key, in declaration order."""
    out = []
    for key in dict.fromkeys(v.key for v in VERBS if v.key):
        labels = list(dict.fromkeys(v.label for v in VERBS if v.key == key))
        out.append((key, SHARED_KEY_TEXT.get(key, " / ".join(labels)), key in FOOTER_KEYS))
    return out


def help_groups(panel_titles: Mapping[str, str], extra: Mapping[str, list] | None = None,
                mutating: Callable[[Verb], bool] | None = None) -> list:
    """The ``?`` help: ``[(title, [(keys, text, changes), …]), …]``: one group per panel with
    keys (``extra[panel]`` rows first, e.g. the VMs panel's marks), then every verb without a key
    as ``virtdeck NAME``. ``panel_titles``: panel → title (``"vms"`` → ``"VMs"``); ``changes``:
    what ``mutating(verb)`` says (False without it; a read-only console dims those rows)."""
    extra = extra or {}
    changes = mutating or (lambda v: False)
    groups = []
    for panel, title in panel_titles.items():
        rows = [(*r, False) if len(r) == 2 else r for r in extra.get(panel, ())]
        rows += [(v.key_display, f"{v.label}: {v.help}", changes(v))
                 for v in VERBS if v.key and v.panel == panel]
        if rows:
            groups.append((f"{title} panel", rows))
    groups.append(("Other verbs (virtdeck NAME …; the : palette lists them too)",
                   [(v.name, v.help, changes(v)) for v in VERBS if not v.key]))
    return groups


# ---------------------------------------------------------------------------------------------
# CLI generation


def _run(verb: Verb, args) -> int:
    fn = verb.cli_fn()
    return fn(args, verb) if getattr(fn, "takes_verb", False) else fn(args)


def _epilog(v: Verb) -> str | None:
    if not v.examples:
        return None
    return "examples:\n" + "\n".join(f"  {e}" for e in v.examples)


def register_cli(subparsers, group: str) -> None:
    """Add top-level group ``group`` (``"vm"``) with every verb of it and of its subgroups to
    argparse ``subparsers``; each subcommand's ``func(args)`` runs the verb's CLI handler.

    Every group and verb parser also takes ``--json``, ``-o/--output`` and ``--wide``
    (console/output.py ``add_format_args``: accepted in every position), shows the verb's
    ``examples`` in its ``--help`` epilog, and gets shell-completion hints for hosts, VMs,
    networks and templates (console/completion.py)."""
    import argparse

    from .. import output
    from ..completion import attach_completers

    by_name = {g.name: g for g in GROUPS}
    made: dict[str, Any] = {}

    def sub_of(gname: str):
        if gname not in made:
            g = by_name[gname]
            parent = subparsers if " " not in gname else sub_of(gname.rsplit(" ", 1)[0])
            p = parent.add_parser(gname.rsplit(" ", 1)[-1], help=g.help, description=g.help)
            output.add_format_args(p)
            made[gname] = p.add_subparsers(dest=g.dest, metavar="ACTION", required=True)
        return made[gname]

    for v in VERBS:
        if v.name.split(" ", 1)[0] != group:
            continue
        # a one-word verb ("check") hangs on the top level, not under a group
        parent = subparsers if " " not in v.name else sub_of(v.group)
        p = parent.add_parser(v.leaf, help=v.help, description=v.help, epilog=_epilog(v),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        for a in v.args:
            p.add_argument(*a.flags, **a.opts)
        output.add_format_args(p)
        attach_completers(v, p)
        p.set_defaults(func=partial(_run, v))


def cli_groups() -> list[str]:
    """The top-level verb groups, in declaration order."""
    return list(dict.fromkeys(v.name.split(" ", 1)[0] for v in VERBS))
