"""The local ends of SSH socket forwards (backends/ssh.py: one ``virtdeck-fwd-<pid>-*`` directory
per host link) never outlive their process: a console ended by SIGTERM or SIGHUP removes them on
its way out; one killed by SIGKILL leaves them, and the next virtdeck process that opens a link
removes every such directory whose owner PID is gone (issue 16, item 9).

Real processes: the `virtdeck` script in tmux (the console needs a terminal), a throwaway sshd on
loopback as hv1's SSH (forwarding to the lab hv1's libvirt socket), the CLI for the sweep. TMPDIR
points at a directory of this test, so only its own forward directories are counted.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures_real import start_sshd, stop_pid

pytestmark = pytest.mark.lab

VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))


def fwd_dirs(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("virtdeck-fwd-*"))


@pytest.fixture
def hv1_inventory(tmp_path, lab_inv):
    """An inventory whose one hypervisor, hv1, is reached through our own sshd on loopback,
    which forwards to the lab hv1's libvirt socket; the lab's NB (read only here) over TCP on a
    standalone lab (central is no host of this inventory), as the lab inventory says otherwise
    (cluster-ssl: the ssl members and the operator's key pair)."""
    from virtdeck.backends.lab import topology as topo
    from virtdeck.backends.lab.hosts import host_path

    sshd = start_sshd(tmp_path / "sshd")
    sock = host_path("hv1", "/run/libvirt/libvirt-sock")
    o = lab_inv.ovn
    ovn = (f'connection = "{topo.NB_TCP}"\n' if o.via_host else "".join(
        f'{k} = "{getattr(o, k)}"\n' for k in ("connection", "sb_connection", "private_key",
                                                "certificate", "ca_cert") if getattr(o, k)))
    inv = tmp_path / "inv.toml"
    inv.write_text(f'[ssh]\nknown_hosts = "{sshd.known_hosts}"\nidentity = "{sshd.client_key}"\n\n'
                   f'[ovn]\n{ovn}\n'
                   f'[[hosts]]\nname = "hv1"\naddress = "127.0.0.1"\nport = {sshd.port}\n'
                   f'user = "root"\nlibvirt_socket = "{sock}"\ndomain_type = "qemu"\n')
    yield inv
    stop_pid(sshd.pid)


def _tmux(sock: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-S", sock, *argv], capture_output=True, text=True, check=check)


def _wait(pred, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - t0


def _console_ended_by(sig: int, inv: Path, tmp: Path, work: Path) -> list[str]:
    """Start the console in tmux, wait for hv1's forward directory, send ``sig`` to the virtdeck
    process, wait for it to end; returns the forward directories left."""
    sock = str(work / f"tmux-{sig}.sock")
    done = work / f"done-{sig}"
    env = f"env TMPDIR={tmp} VIRTDECK_AUDIT_LOG={work}/audit.jsonl TERM=xterm-256color"
    try:
        _tmux(sock, "new-session", "-d", "-s", "vd", "-x", "100", "-y", "30",
              f"{env} {VIRTDECK} --config {inv}; echo $? > {done}; sleep 600")
        pane = int(_tmux(sock, "display-message", "-p", "-t", "vd", "#{pane_pid}").stdout)
        kids: list[str] = []

        def child() -> bool:
            kids[:] = Path(f"/proc/{pane}/task/{pane}/children").read_text().split()
            return bool(kids)
        _wait(child, 10, "virtdeck to start")
        _wait(lambda: fwd_dirs(tmp), 30, "hv1's forward directory")
        _wait(lambda: any(p.glob("libvirt.sock") for p in tmp.glob("virtdeck-fwd-*")), 30,
              "the libvirt forward")
        os.kill(int(kids[0]), sig)
        took = _wait(done.exists, 15, f"virtdeck to end after signal {sig}")
        print(f"signal {sig}: virtdeck ended in {took:.2f} s (rc {done.read_text().strip()}), "
              f"forward dirs left: {fwd_dirs(tmp)}")
        return fwd_dirs(tmp)
    finally:
        _tmux(sock, "kill-server", check=False)


def test_forward_dirs_removed_on_sigterm_sighup_and_swept_after_sigkill(tmp_path, hv1_inventory):
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        assert _console_ended_by(sig, hv1_inventory, tmp, tmp_path) == [], signal.Signals(sig).name
    left = _console_ended_by(signal.SIGKILL, hv1_inventory, tmp, tmp_path)
    assert len(left) == 1                         # nothing can catch SIGKILL

    # a live process's directory (this test's PID), an old-style one (no PID in its name) whose
    # socket still answers and a recent empty old-style one are not stale; an old-style one
    # with a dead socket and an empty one two days old are
    alive = tmp / f"virtdeck-fwd-{os.getpid()}-keep"
    alive.mkdir()
    old_live, old_dead = tmp / "virtdeck-fwd-oldlive1", tmp / "virtdeck-fwd-olddead1"
    old_live.mkdir()
    old_dead.mkdir()
    old_empty, old_empty_aged = tmp / "virtdeck-fwd-oldempt1", tmp / "virtdeck-fwd-oldempt2"
    old_empty.mkdir()                             # a live old-style link may not have forwarded yet
    old_empty_aged.mkdir()
    os.utime(old_empty_aged, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(old_live / "libvirt.sock"))
    listening.listen()
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(old_dead / "libvirt.sock"))
    dead.close()                                  # the file stays, nobody accepts
    try:
        # the next process that opens an SSH link sweeps the stale ones at its start
        env = dict(os.environ, TMPDIR=str(tmp), VIRTDECK_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
        res = subprocess.run([VIRTDECK, "--config", str(hv1_inventory), "vm", "list"],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                             timeout=60)
        assert res.returncode == 0, res.stderr
        print(f"after `vm list`: {fwd_dirs(tmp)}")
        assert fwd_dirs(tmp) == sorted([alive.name, old_live.name, old_empty.name])
    finally:
        listening.close()
