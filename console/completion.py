"""Shell completion (bash, zsh, fish) through argcomplete, with dynamic names.

``virtdeck completion SHELL`` prints argcomplete's script for SHELL (:func:`script`); at each
<TAB> the shell runs ``virtdeck`` with ``_ARGCOMPLETE`` set, console/cli.py ``main`` calls
:func:`autocomplete` on the parser, and the completers below answer without touching a host:

- hosts and templates: the inventory TOML (``--config`` if already typed, else the default one);
- VMs and networks: the names the last ``vm list`` / ``network list`` (CLI) printed, kept in
  ``$XDG_CACHE_HOME/virtdeck/names.json`` by :func:`remember` (a completion never waits on SSH
  or OVN; a stale name is harmless: the verb then says "not found").

:func:`attach_completers` (called by the verb registry's CLI generation) picks a completer for
each argument by its name: ``--host``/``--to``/``--move-to``/``--chassis`` → hypervisors, the VM
verbs' NAME → VMs, ``--network`` → networks, ``--template`` → templates, and the NAME of the
``host``, ``template`` and ``network`` groups.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable


def cache_path() -> Path:
    """``$XDG_CACHE_HOME/virtdeck/names.json``: ``{"vms": [...], "networks": [...]}``."""
    from ..config.paths import cache_dir
    return cache_dir() / "names.json"


def remember(kind: str, names: Iterable[str]) -> None:
    """Keep ``names`` of ``kind`` (``"vms"``, ``"networks"``) for completion; never raises (a
    read-only home must not fail the listing)."""
    try:
        path = cache_path()
        data = _read()
        data[kind] = sorted(set(names))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass


def _read() -> dict:
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _inventory(parsed_args):
    from ..config.inventory import load
    from ..config.paths import resolve_inventory_path
    try:
        return load(resolve_inventory_path(getattr(parsed_args, "config", None)))
    except Exception:  # a completion must stay quiet whatever the file holds
        return None


def hosts(prefix: str = "", parsed_args=None, **_) -> list[str]:
    """Host names from the inventory."""
    inv = _inventory(parsed_args)
    return [h.name for h in inv.hosts if h.name.startswith(prefix)] if inv else []


def hypervisors(prefix: str = "", parsed_args=None, **_) -> list[str]:
    """Hypervisor names from the inventory (where a VM can be)."""
    inv = _inventory(parsed_args)
    return [h.name for h in inv.hosts if h.hypervisor and h.name.startswith(prefix)] if inv else []


def templates(prefix: str = "", parsed_args=None, **_) -> list[str]:
    """Template names from the inventory."""
    inv = _inventory(parsed_args)
    return [t.name for t in inv.templates if t.name.startswith(prefix)] if inv else []


def vms(prefix: str = "", **_) -> list[str]:
    """VM names the last ``vm list`` saw."""
    return [n for n in _read().get("vms", []) if n.startswith(prefix)]


def networks(prefix: str = "", **_) -> list[str]:
    """Network names the last ``network list`` saw."""
    return [n for n in _read().get("networks", []) if n.startswith(prefix)]


_BY_OPTION: dict[str, Callable] = {"--host": hypervisors, "--to": hypervisors, "--move-to": hypervisors,
                                   "--chassis": hypervisors,
                                   "--network": networks, "--template": templates}
_BY_GROUP_NAME: dict[str, Callable] = {"vm": vms, "host": hosts, "template": templates, "network": networks}


def attach_completers(verb, parser) -> None:
    """Set argcomplete's ``completer`` on the arguments of ``verb``'s ``parser`` (see module doc)."""
    for action in parser._actions:
        fn = next((_BY_OPTION[o] for o in action.option_strings if o in _BY_OPTION), None)
        if fn is None and not action.option_strings:
            if action.dest in ("name", "names"):  # router / network sg names are not cached
                fn = _BY_GROUP_NAME.get(verb.group)
            elif action.dest == "network":
                fn = networks
        if fn is not None:
            action.completer = fn


def autocomplete(parser) -> None:
    """Answer the shell's completion request (argcomplete; exits the process)."""
    import argcomplete
    argcomplete.autocomplete(parser, always_complete_options=False)


def script(shell: str) -> str:
    """The completion script for ``shell`` (``bash``, ``zsh`` or ``fish``) of the ``virtdeck``
    command. Raises ValueError for another shell."""
    import argcomplete
    if shell not in ("bash", "zsh", "fish"):
        raise ValueError(f"shell: {shell!r} is not one of bash, zsh, fish")
    return argcomplete.shellcode(["virtdeck"], shell=shell)
