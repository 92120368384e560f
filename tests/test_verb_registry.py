"""The verb registry (console/verbs/) drives the CLI, the keys, the palette and the help: every
declared verb shows up in each, and every declaration names functions that exist."""

from __future__ import annotations

import argparse

import pytest

from virtdeck.console import verbs
from virtdeck.console.app import FixedModel, VirtdeckApp, verb_hits
from virtdeck.console.cli import build_parser
from virtdeck.screens.main import MainScreen
from console_fixtures import palette_pick, sample_cloud

ALL = verbs.all_verbs()


def _subparsers(p: argparse.ArgumentParser) -> dict:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return a.choices
    return {}


def _cli_parser(name: str):
    p = build_parser()
    for word in name.split():
        p = _subparsers(p)[word]
    return p


@pytest.mark.parametrize("verb", ALL, ids=lambda v: v.name)
def test_every_verb_has_a_cli_subcommand_running_its_handler(verb):
    p = _cli_parser(verb.name)
    assert p.get_default("func") is not None
    assert callable(verb.cli_fn())
    if verb.service:
        assert callable(verb.service_fn())
    if verb.render:
        assert callable(verb.render_fn())


def test_cli_groups_are_the_registry_and_the_lab():
    top = _subparsers(build_parser())
    # no phantom group: the lab, the registry's groups and one-word verbs, the completion script
    assert list(top) == ["lab", *verbs.cli_groups(), "completion"]
    assert list(top)[:6] == ["lab", "vm", "template", "network", "router", "host"]


@pytest.mark.parametrize("verb", ALL, ids=lambda v: v.name)
def test_every_verb_has_a_help_line(verb):
    titles = {"hosts": "Hosts", "vms": "VMs", "networks": "Networks", "tenants": "Tenants", "templates": "Templates"}
    lines = [(k, w) for _, rows in verbs.help_groups(titles) for k, w, _changes in rows]
    wanted = (verb.key_display, f"{verb.label}: {verb.help}") if verb.key else (verb.name, verb.help)
    assert wanted in lines


@pytest.mark.parametrize("verb", [v for v in ALL if v.key], ids=lambda v: v.name)
def test_every_keyed_verb_is_bound_on_its_panel(verb):
    bound = {b.key: b.action for b in MainScreen.BINDINGS}
    assert bound[verb.key] == f"verb_key({verb.key!r})"
    assert verbs.for_key(verb.panel, verb.key) is verb
    assert verb.action and callable(getattr(MainScreen, "action_" + verb.action.split("(")[0]))


async def test_every_verb_has_a_palette_hit():
    app = VirtdeckApp(FixedModel(sample_cloud()))
    async with app.run_test(size=(80, 24)):
        texts = [t for t, _cmd, _help in verb_hits(app)]
    for v in ALL:
        assert any(t == v.name or t.startswith(v.name + " (") for t in texts), v.name


async def test_palette_runs_a_verb_on_its_panel():
    opened = []

    class Probe(VirtdeckApp):
        def open_network_wizard(self):
            opened.append("net")

    app = Probe(FixedModel(sample_cloud()))
    async with app.run_test(size=(80, 24)) as pilot:
        await palette_pick(pilot, "network create")
        await pilot.pause(0.3)
        assert app.screen.panel == "networks"
    assert opened == ["net"]


async def test_a_key_outside_its_panels_says_where_it_works():
    app = VirtdeckApp(FixedModel(sample_cloud()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4", "e")
        await pilot.pause()
        assert any("works in the VMs (2) and Networks (3) panels" in str(n.message) for n in app._notifications)
