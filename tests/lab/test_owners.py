"""Owner records and the reaper (backends/lab/owners.py) without a lab: fake lab and sandbox
directories under a private data dir (``XDG_DATA_HOME`` -> tmp_path), real processes, and a
real freezer cgroup for the orphan. Never looks at the machine's own labs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from virtdeck.backends.lab import owners as O

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")


@pytest.fixture
def base(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    d = O.base_dir()
    assert str(d).startswith(str(tmp_path))
    d.mkdir(parents=True)
    return d


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_owner_alive_goes_by_pid_start_time_and_boot():
    me = O.owner_record()
    assert O.owner_alive(me) is True and not O.is_orphan(me)
    assert O.owner_alive(None) is None and not O.is_orphan(None)
    dead = dict(me, pid=_dead_pid())
    assert O.owner_alive(dead) is False and O.is_orphan(dead)
    recycled = dict(me, start_ticks=me["start_ticks"] - 1)  # same PID, another process
    assert O.owner_alive(recycled) is False
    other_boot = dict(me, boot_id="00000000-0000-0000-0000-000000000000")
    assert O.owner_alive(other_boot) is False
    assert not O.is_orphan(dict(dead, keep=True))  # `lab up`'s lab: kept until `lab down`


def test_first_signal_interrupts_later_ones_are_ignored_then_handlers_come_back():
    before = signal.getsignal(signal.SIGHUP)
    with pytest.raises(O.LabInterrupted) as info:
        with O.interrupt_on_signals():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(1)
    assert info.value.signum == signal.SIGHUP and isinstance(info.value, KeyboardInterrupt)
    with O.interrupt_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except O.LabInterrupted:
            os.kill(os.getpid(), signal.SIGTERM)  # during cleanup: ignored
            time.sleep(0.1)
    assert signal.getsignal(signal.SIGHUP) is before


@needs_root
def test_reaper_takes_orphaned_sandboxes_only(base):
    live = subprocess.Popen(["sleep", "60"])
    freezer = O.freezer_dir(f"virtdeck-test-{os.getpid()}")
    if freezer is None:
        pytest.skip("no cgroup v1 freezer here")
    freezer.mkdir()
    # The orphan's command: a shell that keeps forking, inside its freezer cgroup.
    orphan_cmd = subprocess.Popen(
        ["sh", "-c", f"echo $$ > {freezer}/cgroup.procs; while :; do sleep 30 & sleep 0.01; done"],
        start_new_session=True)
    try:
        sandboxes = {}
        for name, owner in {
            "sandbox-live": O.owner_record(live.pid),
            "sandbox-orphan": dict(O.owner_record(), pid=_dead_pid(), freezer=str(freezer)),
            "sandbox-legacy": None,  # made before owners were recorded: never touched
        }.items():
            d = base / name
            (d / "lab").mkdir(parents=True)
            if owner:
                (d / "owner.json").write_text(json.dumps(owner))
            sandboxes[name] = d
        lab = base / "lab"
        lab.mkdir()
        (lab / "state.json").write_text(json.dumps(
            {"holders": {"central": live.pid},
             "owner": dict(O.owner_record(), pid=_dead_pid(), argv="pytest -q")}))
        time.sleep(0.3)
        forked = O._cgroup_pids(freezer)
        assert len(forked) > 2

        listed = {i.path.name: i for i in O.labs(sample_s=0.1)}
        assert listed["sandbox-orphan"].orphan and len(listed["sandbox-orphan"].pids) > 2
        assert not listed["sandbox-live"].orphan and listed["sandbox-live"].owner_alive
        assert listed["sandbox-legacy"].owner is None and not listed["sandbox-legacy"].orphan
        assert listed["lab"].orphan

        lines = []
        found = O.reap_orphans(lines.append)
        assert sorted(i.path.name for i in found) == ["lab", "sandbox-orphan"]
        assert not sandboxes["sandbox-orphan"].exists() and not freezer.exists()
        assert orphan_cmd.wait(timeout=5) == -signal.SIGKILL
        assert not [p for p in forked if O.pid_alive(p)]
        assert sandboxes["sandbox-live"].is_dir() and sandboxes["sandbox-legacy"].is_dir()
        assert live.poll() is None  # the live owner, and the "holder" of the machine lab
        assert lab.is_dir()
        assert any("reaped sandbox sandbox-orphan" in x for x in lines)
        assert any("`virtdeck lab down`" in x and "pytest -q" in x for x in lines), lines
    finally:
        live.kill()
        if orphan_cmd.poll() is None:
            O.kill_all(lambda: O._cgroup_pids(freezer), freezer)
        O.remove_tree_cgroup(freezer)


@needs_root
def test_stray_lab_cgroups_are_removed_when_empty_and_old(base, monkeypatch):
    from virtdeck.backends.lab.hosts import CGROUP_ROOT, _self_cgroup
    mine = _self_cgroup("cpu")
    if mine is None or not (CGROUP_ROOT / "cpu" / "cgroup.procs").exists():
        pytest.skip("no cgroup v1 cpu hierarchy here")
    parent = CGROUP_ROOT / "cpu" / mine.lstrip("/")
    old, young = parent / f"virtdeck-lab-t{os.getpid()}o", parent / f"virtdeck-lab-t{os.getpid()}y"
    sandbox_lab = O.lab_cgroup_roots(base / "sandbox-x" / "lab")[0]  # a sandbox dir accounts for it
    (base / "sandbox-x").mkdir()
    for d in (old / "hv1", young, sandbox_lab):
        d.mkdir(parents=True)
    past = time.time() - 2 * O.STRAY_MIN_AGE_S
    os.utime(old, (past, past))
    os.utime(sandbox_lab, (past, past))
    try:
        stray = O.stray_cgroups()
        assert old in stray and young in stray and sandbox_lab not in stray
        # Only this test's groups: other people's labs' cgroups are none of its business.
        real = O.stray_cgroups
        monkeypatch.setattr(O, "stray_cgroups", lambda: [d for d in real() if d in (old, young)])
        lines = []
        O._reap_stray_cgroups(lines.append)
        assert not old.exists() and young.is_dir() and sandbox_lab.is_dir()
        assert lines == [f"lab: removed stray cgroup {old}"]
    finally:
        for d in (old, young, sandbox_lab):
            O.remove_tree_cgroup(d)


@needs_root
def test_a_process_inside_an_orphaned_sandbox_does_not_reap_it(base):
    """A child of a killed sandbox's command that runs `lab up` must not freeze its own cgroup
    (nothing would thaw it): it leaves the sandbox to be reaped from outside."""
    import sys
    freezer = O.freezer_dir(f"virtdeck-test-{os.getpid()}-in")
    if freezer is None:
        pytest.skip("no cgroup v1 freezer here")
    freezer.mkdir()
    try:
        d = base / "sandbox-orphan"
        d.mkdir()
        (d / "owner.json").write_text(json.dumps(dict(O.owner_record(), pid=_dead_pid(),
                                                      freezer=str(freezer))))
        code = ("import os, sys; open(sys.argv[1] + '/cgroup.procs', 'w').write(str(os.getpid()));"
                "from virtdeck.backends.lab.owners import reap_orphans;"
                "print([i.path.name for i in reap_orphans(print)])")
        p = subprocess.run([sys.executable, "-c", code, str(freezer)], capture_output=True,
                           text=True, timeout=30, env=dict(os.environ))
        assert p.returncode == 0, p.stderr
        assert "is this process's own" in p.stdout and d.is_dir(), p.stdout
        lines = []
        assert [i.path.name for i in O.reap_orphans(lines.append)] == ["sandbox-orphan"]
        assert not d.exists() and not freezer.exists()
    finally:
        O.remove_tree_cgroup(freezer)
