"""console.live_start: the console's first frame does not wait for libvirt, asyncssh or ovsdbapp;
the deferred live model shows the inventory's hosts at once, then becomes the live model."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from virtdeck.console.live_start import DeferredLive
from virtdeck.console.model import HOST_CONNECTING, HOST_UP, NB_UP
from live_helpers import isolated_user_known_hosts  # noqa: F401 (autouse fixture)


def test_first_frame_imports_leave_out_the_backend_libraries():
    """What the console imports before its first frame (the CLI's console path, the App and the
    deferred model) holds no libvirt, asyncssh, ovsdbapp, python-ovs, pycdlib, yaml, passlib or
    pyroute2, and not importlib.metadata (the version is read only for --version): those load
    on the live model's thread or where a verb runs."""
    heavy = ("libvirt", "asyncssh", "ovsdbapp", "ovs", "pycdlib", "yaml", "passlib", "pyroute2",
             "importlib.metadata", "virtdeck.backends.domains", "virtdeck.backends.hypervisor")
    code = ("import sys, virtdeck.console.cli as cli; "
            "assert cli.console_args(['--config', 'x', '--readonly']) is not None; "
            "import virtdeck.console.app, virtdeck.console.live_start; "
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("argv", [[], ["--readonly"], ["--config", "inv.toml"],
                                  ["--config=inv.toml", "--readonly"],
                                  ["--readonly", "--config", "inv.toml"]])
def test_console_start_arguments_match_the_full_parser(argv):
    """``virtdeck [--config PATH] [--readonly]`` skips building every verb's parser and gives
    what the full parser gives."""
    from virtdeck.console.cli import build_parser, console_args
    fast, full = console_args(argv), build_parser().parse_args(argv)
    assert fast is not None
    assert (fast.config, fast.readonly, fast.group) == (full.config, full.readonly, full.group)


@pytest.mark.parametrize("argv", [["vm", "list"], ["--help"], ["--version"], ["--read"],
                                  ["--config"], ["--config", "--readonly"], ["--config="],
                                  ["--readonly", "--readonly"], ["--config", "a", "--config", "b"],
                                  ["--json"], ["extra"]])
def test_anything_else_goes_to_the_full_parser(argv):
    from virtdeck.console.cli import console_args
    assert console_args(argv) is None


@pytest.mark.lab
def test_deferred_live_shows_inventory_hosts_then_the_lab(lab_inv):
    live = DeferredLive(lab_inv)
    told = threading.Event()
    live.subscribe(told.set)             # before the model exists: handed on when it does
    live.start()
    try:
        first = live.snapshot()
        assert [h.name for h in first.hosts] == [h.name for h in lab_inv.hypervisors]
        assert live.live is not None or all(h.state == HOST_CONNECTING for h in first.hosts)
        assert live.wait_ready(30)
        assert told.wait(5)
        cloud = live.snapshot()
        assert all(h.state == HOST_UP for h in cloud.hosts)
        assert cloud.nb.state == NB_UP
        assert live.session is live.live.session
    finally:
        live.stop()


def test_equal_sb_and_nb_reads_publish_nothing(lab_inv):
    """Idle: the SB's change counter moves on rows the console does not show; a read equal to
    the last one must not make a new snapshot (each redraws every panel)."""
    from dataclasses import replace

    from virtdeck.backends.ovn.southbound import Chassis, SbData
    from virtdeck.console.live import LiveModel

    live = LiveModel(lab_inv)            # not started: only the publishing decision is tested
    try:
        sb = SbData(chassis=(Chassis(name="hv1", hostname="hv1"),))
        live._set_sb(sb)
        assert live._dirty.is_set()
        live._dirty.clear()
        live._set_sb(SbData(chassis=(Chassis(name="hv1", hostname="hv1"),)))
        assert not live._dirty.is_set()
        live._set_sb(SbData(chassis=(Chassis(name="hv1", hostname="hv1",
                                             bridge_mappings={"physnet1": "br-phys"}),)))
        assert live._dirty.is_set()     # a new mapping is news, though Chassis == ignores it
        live._dirty.clear()
        nb = replace(live._nb, answered=True)
        live._set_nb(nb)
        assert live._dirty.is_set()
        live._dirty.clear()
        live._set_nb(replace(live._nb))
        assert not live._dirty.is_set()
    finally:
        live.session.close()


def test_gc_held_over_the_start_comes_back_once():
    """hold_gc turns the cyclic GC off for the console's start; release_gc turns it back on,
    once, and never turns on a GC that someone else turned off."""
    import gc

    from virtdeck.console import live_start
    assert gc.isenabled()
    try:
        live_start.hold_gc()
        assert not gc.isenabled()
        live_start.release_gc()
        assert gc.isenabled()
        gc.disable()                       # not ours: release leaves it off
        live_start.release_gc()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_stop_gives_the_gc_back_even_before_the_model_is_ready():
    """A console quit before any host answered (the model not even built) must not leave the
    GC off."""
    import gc
    from types import SimpleNamespace as NS

    from virtdeck.console import live_start
    inv = NS(hypervisors=[], ovn=NS(connection="tcp:127.0.0.1:1", via_host=None, nb_socket=""),
             allocation=NS(cpu_ratio=4.0, ram_ratio=1.0))
    try:
        live_start.hold_gc()
        DeferredLive(inv).stop()           # never started
        assert gc.isenabled()
    finally:
        gc.enable()


def test_start_early_starts_the_model_before_textual_and_hands_it_over_once(tmp_path):
    """The CLI's console path: the inventory's model starts before Textual is imported (hosts
    on closed loopback ports: nothing to reach), the console takes it once, and its stop gives
    the GC back; the log goes to the state dir, not the terminal."""
    import os
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    inv = tmp_path / "inventory.toml"
    inv.write_text("".join(f'[[hosts]]\nname = "hv{i}"\naddress = "127.0.0.1"\nport = {p}\n'
                           f'user = "root"\n\n' for i, p in enumerate(ports, 1)))
    code = (
        "import gc, sys\n"
        "from virtdeck.console import live_start as ls\n"
        "ls.hold_gc()\n"
        f"live = ls.start_early({str(inv)!r})\n"
        "assert 'textual' not in sys.modules and not gc.isenabled()\n"
        "assert [h.name for h in live.snapshot().hosts] == ['hv1', 'hv2']\n"
        "assert ls.take_early() is live and ls.take_early() is None\n"
        "live.stop()\n"
        "assert gc.isenabled()\n"
        "print('ok')\n")
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok" and out.stderr == ""
