"""A sandbox ends everything it started, whatever ends it (issue 17).

Each round starts `virtdeck lab sandbox -- python sandbox_inner.py` (a 1-hypervisor lab and one
running tiny TCG guest inside the sandbox's own namespaces), ends the sandbox process with
SIGTERM, SIGHUP or SIGKILL, and checks that no process, namespace, mount, cgroup, directory or
qemu of it remains: at once for SIGTERM/SIGHUP, after the next `virtdeck lab status` for SIGKILL
(which no handler can catch). A second sandbox stays alive through all rounds and must be left
untouched, as must the machine's shared lab (192.168.100.x), which these tests only read.

Destructive only inside the sandboxes they create; prints the time from signal to all-gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
HERE = Path(__file__).resolve().parent
VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))
NS_KINDS = ("net", "mnt", "uts", "ipc", "cgroup")
DAEMONS = {"ovsdb-server", "ovs-vswitchd", "ovn-controller", "ovn-northd", "libvirtd", "virtlogd"}


def _ns(pid: int, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def _all_pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _now_ticks() -> int:
    """Now, in clock ticks since boot (the unit of /proc/PID/stat's start time)."""
    return int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK"))


def _same_process(pid: int, ticks: int | None) -> bool:
    """``pid`` still runs (not a zombie waiting for init to reap it) and is the same process."""
    from virtdeck.backends.lab.owners import start_ticks
    from virtdeck.backends.lab.state import pid_alive
    return ticks is not None and pid_alive(pid) and start_ticks(pid) == ticks


class Sandbox:
    """One `virtdeck lab sandbox` running sandbox_inner.py, started from this (root) namespace."""

    def __init__(self, tmp: Path, name: str, exit_file: Path | None = None):
        self.ready = tmp / f"{name}.ready"
        self.proc = subprocess.Popen(
            [VIRTDECK, "lab", "sandbox", "--", sys.executable, str(HERE / "sandbox_inner.py"),
             str(self.ready), *([str(exit_file)] if exit_file else [])],
            cwd=HERE.parent.parent, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        deadline = time.monotonic() + 120
        while not self.ready.exists():
            assert self.proc.poll() is None, self.proc.stdout.read()
            assert time.monotonic() < deadline, "sandbox lab + guest not ready within 120 s"
            time.sleep(0.1)
        self.figures = self.ready.read_text().strip()
        from virtdeck.backends.lab.owners import base_dir
        self.root = next(d for d in base_dir().glob("sandbox-*")
                         if json.loads((d / "owner.json").read_text())["pid"] == self.proc.pid)
        self.owner = json.loads((self.root / "owner.json").read_text())
        self.state = json.loads((self.root / "lab" / "state.json").read_text())
        self.snap = self.snapshot()

    def snapshot(self) -> dict:
        """Every process of the sandbox (PID -> start ticks), its qemu, namespaces, cgroups."""
        from virtdeck.backends.lab.owners import lab_pids, start_ticks
        pids = lab_pids(self.root, self.owner, self.state)
        assert pids, "the sandbox runs nothing?"
        mine = {k: _ns(os.getpid(), k) for k in NS_KINDS}
        ns = {(k, _ns(p, k)) for p in pids for k in NS_KINDS} - {(k, v) for k, v in mine.items()}
        ns.discard(("net", None))
        from virtdeck.backends.lab.owners import lab_cgroup_roots
        cgroups = [d for dirs in self.state.get("cgroups", {}).values() for d in dirs]
        cgroups += [str(d) for d in lab_cgroup_roots(self.root / "lab")]
        return {"pids": {p: start_ticks(p) for p in pids},
                "qemu": [p for p in pids if _comm(p).startswith("qemu-system")],
                "holders": dict(self.state["holders"]),
                "ns": {x for x in ns if x[1]}, "cgroups": cgroups + [self.owner["freezer"]]}

    def assert_alive(self) -> None:
        assert self.proc.poll() is None and self.root.is_dir()
        gone = [p for p, t in self.snap["pids"].items() if not _same_process(p, t)]
        assert not gone, f"processes of the live sandbox went: {gone}"
        assert len(self.snap["qemu"]) == 1

    def assert_gone(self, since: int) -> None:
        """Nothing of the sandbox is left. ``since``: the signal's time in clock ticks since
        boot. The kernel hands a freed namespace inode number to the next namespace made on
        the machine (others' `ip netns exec` make them all the time), so a process started
        after the signal is in a new namespace, not in one of the sandbox's."""
        from virtdeck.backends.lab.owners import start_ticks
        snap = self.snap
        assert not self.root.exists(), "sandbox directory left"
        left = [p for p, t in snap["pids"].items() if _same_process(p, t)]
        assert not left, f"processes left: {[(p, _comm(p)) for p in left]}"
        assert not [p for p in snap["qemu"] if _same_process(p, snap["pids"][p])], "qemu left"
        old = [p for p in _all_pids() if (start_ticks(p) or since) < since]
        reused = {(k, _ns(p, k)) for p in _all_pids() if (start_ticks(p) or 0) >= since
                  for k in NS_KINDS} & snap["ns"]
        for pid in old:
            held = {(k, _ns(pid, k)) for k in NS_KINDS} & snap["ns"]
            assert not held, f"process {pid} ({_comm(pid)}) is in the sandbox's namespaces {held}"
        # Mounts: none of its paths in any mount namespace left, and no nsfs mount keeps one
        # of its namespaces alive without a process.
        seen_mnt = set()
        for pid in old:
            m = _ns(pid, "mnt")
            if m is None or m in seen_mnt:
                continue
            seen_mnt.add(m)
            try:
                text = Path(f"/proc/{pid}/mountinfo").read_text()
            except OSError:
                continue
            assert str(self.root) not in text, f"a mount of {self.root} is left (mnt ns of {pid})"
            for kind, ino in snap["ns"] - reused:
                assert f"{kind}:[{ino}]" not in text, f"an nsfs mount holds {kind}:[{ino}]"
        for d in snap["cgroups"]:
            assert not os.path.isdir(d), f"cgroup {d} left"


def shared_lab() -> dict:
    """The machine lab's holders and daemons (PID -> start ticks), read from the root netns."""
    from virtdeck.backends.lab.netns import lab_netns, netns_pids
    from virtdeck.backends.lab.owners import start_ticks
    try:
        holders = json.loads(Path("/root/.local/share/virtdeck/lab/state.json").read_text())["holders"]
    except (OSError, ValueError, KeyError):
        return {}
    pids = {p for ns in lab_netns() for p in netns_pids(ns) if _comm(p) in DAEMONS}
    pids |= set(holders.values())
    return {"holders": holders, "pids": {p: start_ticks(p) for p in pids}}


def assert_shared_lab_untouched(before: dict) -> None:
    if not before:
        return
    now = shared_lab()
    if now.get("holders") != before["holders"]:
        return  # its own session took it down or rebuilt it meanwhile: not our doing to judge
    gone = [p for p, t in before["pids"].items() if not _same_process(p, t)]
    assert not gone, f"shared lab processes went: {[(p, _comm(p)) for p in gone]}"


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """The second sandbox, alive through every round; ended (SIGTERM) and checked at the end."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    sb = Sandbox(tmp_path_factory.mktemp("other"), "other")
    yield sb
    if sb.proc.poll() is None:
        since = _now_ticks()
        sb.proc.send_signal(signal.SIGTERM)
        sb.proc.wait(timeout=120)
        sb.assert_gone(since)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
                         ids=["SIGTERM", "SIGHUP", "SIGKILL"])
def test_sandbox_ends_everything_it_started(other, tmp_path, sig):
    shared = shared_lab()
    sb = Sandbox(tmp_path, "victim")
    if sig == signal.SIGTERM:  # `lab status --all` lists both sandboxes, facts from /proc
        p = subprocess.run([VIRTDECK, "--json", "lab", "status", "--all"], capture_output=True,
                           text=True, timeout=60)
        rows = {Path(r["path"]).name: r for r in json.loads(p.stdout)}
        for s in (sb, other):
            r = rows[s.root.name]
            assert r["owner"]["pid"] == s.proc.pid and r["owner_alive"] and not r["orphan"]
            assert r["hosts"] == {"central": True, "hv1": True, "outside": True}
            assert r["guests"] == 1 and r["processes"] >= len(s.snap["pids"]) - 1
    t0, since = time.monotonic(), _now_ticks()
    sb.proc.send_signal(sig)
    code = sb.proc.wait(timeout=120)
    t_exit = time.monotonic() - t0
    out = sb.proc.stdout.read()
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        # Nothing could clean up: the lab is still there (holders alive) until the reaper runs.
        assert any(_same_process(p, sb.snap["pids"].get(p)) for p in sb.snap["holders"].values())
        p = subprocess.run([VIRTDECK, "lab", "status"], capture_output=True, text=True, timeout=120)
        assert f"reaped sandbox {sb.root.name}" in p.stderr, p.stdout + p.stderr
        assert "Traceback" not in p.stderr
    else:
        assert code == 128 + sig, out
    t_gone = time.monotonic() - t0
    sb.assert_gone(since)
    other.assert_alive()
    assert_shared_lab_untouched(shared)
    print(f"\n{signal.Signals(sig).name}: {sb.figures}; {len(sb.snap['pids'])} processes; "
          f"sandbox process exited {t_exit:.2f} s after the signal, all gone after {t_gone:.2f} s")


def test_command_that_ends_leaving_its_lab_up_takes_it_along(other, tmp_path):
    """The command exits by itself (status 0) with its lab and guest still running: the
    sandbox takes them down and reports what it had to stop; its exit status is the command's."""
    shared = shared_lab()
    sb = Sandbox(tmp_path, "leaver", exit_file=tmp_path / "exit")
    t0, since = time.monotonic(), _now_ticks()
    (tmp_path / "exit").touch()
    code = sb.proc.wait(timeout=120)
    out = sb.proc.stdout.read()
    assert code == 0, out
    assert "the sandboxed lab was still up; stopped" in out
    sb.assert_gone(since)
    other.assert_alive()
    assert_shared_lab_untouched(shared)
    print(f"\ncommand ended: all gone {time.monotonic() - t0:.2f} s after")


def test_interrupted_pytest_session_takes_its_lab_down(tmp_path):
    """SIGTERM to a pytest session whose `lab` fixture brought a lab up (in a sandbox, never
    the shared lab): the fixture's teardown runs as after Ctrl-C and takes the lab down, so the
    sandbox finds nothing of it left when the session ends."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    ready = tmp_path / "ready"
    p = subprocess.Popen(
        [VIRTDECK, "lab", "sandbox", "--", sys.executable, "-m", "pytest", "-q", "-s", "-p",
         "no:cacheprovider", str(HERE / "fixture_inner.py")], cwd=HERE.parent.parent,
        env=dict(os.environ, VD_READY=str(ready), VIRTDECK_LAB_KEEP=""),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert p.poll() is None, p.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    t0 = time.monotonic()
    os.kill(int(ready.read_text()), signal.SIGTERM)
    code = p.wait(timeout=120)
    out = p.stdout.read()
    assert code == 2, out  # pytest's "interrupted"
    assert "LabInterrupted: signal SIGTERM" in out or "KeyboardInterrupt" in out, out
    assert "the sandboxed lab was still up" not in out, out  # the fixture took it down itself
    print(f"\npytest session ended by SIGTERM, lab down and sandbox gone {time.monotonic() - t0:.2f} s after")


def test_lab_of_a_killed_session_is_adopted_and_taken_down_by_the_next(tmp_path):
    """SIGKILL to a session that brought a lab up leaves an orphan (its owner record names the
    dead session); the next session's `lab` fixture adopts it and takes it down at its end.
    All in a sandbox (tests/lab/adopt_inner.py); the sandbox must find nothing left."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from virtdeck.backends.lab.sandbox import run_sandboxed
    p = run_sandboxed([sys.executable, str(HERE / "adopt_inner.py")], capture=True, timeout=600,
                      cwd=HERE.parent.parent, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert p.returncode == 0 and "ADOPTED" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.stray == [], p.stray
