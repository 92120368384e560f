"""screens/driver.py in a real terminal (tmux): the console's input thread sleeps while nothing
happens, keys (a lone Escape included) still arrive, and a terminal that hangs up ends the
console instead of leaving it spinning. The inventory's hosts are closed loopback ports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures_real import free_port

VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


class Pane:
    def __init__(self, tmp_path: Path):
        inv = tmp_path / "inv.toml"
        inv.write_text("".join(f'[[hosts]]\nname = "hv{i}"\naddress = "127.0.0.1"\nport = '
                               f'{free_port()}\nuser = "root"\n\n' for i in (1, 2)))
        self.sock = f"vdquiet-{os.getpid()}-{time.monotonic_ns()}"
        self.env = dict(os.environ, VIRTDECK_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
        self.tmux("new-session", "-d", "-x", "120", "-y", "30",
                  f"exec {VIRTDECK} --config {inv} --readonly")
        self.pid = int(self.tmux("display", "-p", "-t", "0", "#{pane_pid}").strip())

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              env=self.env, timeout=20).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "0")

    def wait_for(self, text: str, timeout: float = 30) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not shown within {timeout} s:\n{self.screen()}")

    def alive(self) -> bool:
        try:
            return Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def wait_gone(self, timeout: float = 15) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.alive():
                return True
            time.sleep(0.1)
        return False

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)
        if self.alive():
            os.kill(self.pid, 9)


def wakeups(pid: int) -> dict[int, int]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        out[int(tid)] = sum(int(line.split()[1]) for line in status.splitlines()
                            if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")))
    return out


def select_threads(pid: int) -> list[int]:
    """Threads blocked in pselect6 (x86_64 syscall 270): the terminal input thread (asyncio's
    loops sit in epoll_wait, queues and locks in futex, libvirt's loop in poll)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            if Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()[0] == "270":
                out.append(int(tid))
        except (OSError, IndexError):
            continue
    return out


def test_idle_input_thread_sleeps_keys_still_arrive_and_q_quits(tmp_path):
    pane = Pane(tmp_path)
    try:
        pane.wait_for("1 Hosts")
        time.sleep(2)
        if os.uname().machine == "x86_64":
            tids = select_threads(pane.pid)
            assert len(tids) == 1, f"expected one input thread in select, found {tids}"
            a = wakeups(pane.pid)
            time.sleep(3)
            b = wakeups(pane.pid)
            # Textual's own input loop wakes 10 times a second (~30 here); the quiet one
            # sleeps until a key comes
            assert b[tids[0]] - a[tids[0]] <= 3, b[tids[0]] - a[tids[0]]
        pane.tmux("send-keys", "-t", "0", "/")
        pane.wait_for("filter (regular expression")
        pane.tmux("send-keys", "-t", "0", "Escape")      # a lone ESC: the parser's deadline
        time.sleep(0.5)
        pane.tmux("send-keys", "-t", "0", "2")
        pane.wait_for("Name")                              # the VMs panel's header
        pane.tmux("send-keys", "-t", "0", "q")
        assert pane.wait_gone(), "q did not end the console"
    finally:
        pane.kill()


@pytest.mark.parametrize("after", [0.15, 0.3, 0.6, 3.0])
def test_a_terminal_that_hangs_up_ends_the_console(tmp_path, after):
    """tmux killed (the pty's master closed: SIGHUP, SIGCONT, EOF/EIO on reads) during start-up
    or once running: the process exits instead of spinning on the dead terminal (Textual's
    driver spun at ~50 % of a core) or hanging in a write to a dead writer thread."""
    pane = Pane(tmp_path)
    try:
        time.sleep(after)
        subprocess.run(["tmux", "-L", pane.sock, "kill-server"], capture_output=True)
        assert pane.wait_gone(), "the console outlived its terminal"
    finally:
        pane.kill()
