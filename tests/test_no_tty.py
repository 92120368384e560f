"""`virtdeck` (the console) without a terminal, and ended by SIGHUP — the real script as a
subprocess (issue 16, item 2).

Without a TTY the console used to spin at ~99 % CPU forever, write escape codes into the output
file and never say why; SIGHUP killed it with the terminal left in raw mode. Now: one sentence,
a non-zero exit at once; SIGHUP ends it through the app's own exit (terminal restored).
"""

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


def unreachable_inventory(tmp_path: Path) -> Path:
    """An inventory whose one hypervisor is a closed port on loopback: the console starts and
    shows it unreachable; nothing outside this machine is touched."""
    p = tmp_path / "inv.toml"
    p.write_text(f'[[hosts]]\nname = "nowhere"\naddress = "127.0.0.1"\nport = {free_port()}\n'
                 f'user = "root"\n')
    return p


def test_console_without_a_terminal_refuses_at_once(tmp_path):
    inv = unreachable_inventory(tmp_path)
    out = tmp_path / "out.txt"
    env = dict(os.environ, VIRTDECK_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    t0 = time.monotonic()
    with open(out, "wb") as fh:
        proc = subprocess.Popen([VIRTDECK, "--config", str(inv)], stdin=subprocess.DEVNULL,
                                stdout=fh, stderr=subprocess.PIPE, env=env)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"virtdeck without a terminal still running after 15 s; output file: "
                        f"{out.read_bytes()[:200]!r}")
    took = time.monotonic() - t0
    text = err.decode()
    print(f"refused in {took:.2f} s: {text.strip()}")
    assert proc.returncode != 0
    assert b"\x1b" not in out.read_bytes(), "escape codes written into the output file"
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    assert "terminal" in lines[0] and "vm list" in lines[0]


def test_console_with_stdin_from_an_open_pipe_refuses(tmp_path):
    """stdin is a pipe that stays open: still a refusal, not a hang."""
    inv = unreachable_inventory(tmp_path)
    proc = subprocess.run([VIRTDECK, "--config", str(inv)], stdin=subprocess.PIPE,
                          capture_output=True, timeout=15)
    assert proc.returncode != 0 and b"\x1b" not in proc.stdout
    assert "terminal" in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()


def _tmux(sock: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-S", sock, *argv], capture_output=True, text=True, check=check)


def _child_of(pid: int, timeout: float = 10.0) -> int:
    """The first child process of ``pid`` (the shell in a tmux pane runs virtdeck)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise AssertionError(f"no child of {pid}")


def _drawn_console(sock: str) -> int:
    """The PID of virtdeck in tmux session ``vd`` (the pane shell's child), once it has drawn its
    first screen (the unreachable host "nowhere" shows); fails after 30 s."""
    pid = _child_of(int(_tmux(sock, "display-message", "-p", "-t", "vd", "#{pane_pid}").stdout))
    end = time.monotonic() + 30
    while "nowhere" not in _tmux(sock, "capture-pane", "-p", "-t", "vd").stdout:
        assert time.monotonic() < end, "the console did not draw"
        time.sleep(0.2)
    return pid


def test_sighup_ends_a_running_console_and_restores_the_terminal(tmp_path):
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    inv = unreachable_inventory(tmp_path)
    sock = str(tmp_path / "tmux.sock")
    done = tmp_path / "done.txt"
    # after virtdeck ends, the pane's shell records its exit status and the terminal's modes
    script = (f"env VIRTDECK_AUDIT_LOG={tmp_path}/audit.jsonl TERM=xterm-256color {VIRTDECK} "
              f"--config {inv}; echo rc=$? > {done}.tmp; stty -a >> {done}.tmp; mv {done}.tmp {done}; "
              f"sleep 600")
    try:
        _tmux(sock, "new-session", "-d", "-s", "vd", "-x", "100", "-y", "30", script)
        pid = _drawn_console(sock)
        t0 = time.monotonic()
        os.kill(pid, 1)  # SIGHUP, as when the operator's SSH session drops
        while not done.exists():
            assert time.monotonic() - t0 < 10, "virtdeck still running 10 s after SIGHUP"
            time.sleep(0.05)
        took = time.monotonic() - t0
        report = done.read_text()
        print(f"SIGHUP -> exit in {took:.2f} s; {report.splitlines()[0]}")
        assert report.startswith("rc=129")
        modes = report.split()
        # Textual puts the terminal in raw mode; a clean exit restores canonical mode and echo
        assert "icanon" in modes and "echo" in modes, report
    finally:
        _tmux(sock, "kill-server", check=False)


def test_terminal_gone_ends_the_console(tmp_path):
    """The operator's terminal goes away (tmux killed: hangup, then a dead tty to draw on):
    the console process ends by itself, it does not spin on the dead terminal."""
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    inv = unreachable_inventory(tmp_path)
    sock = str(tmp_path / "tmux.sock")
    _tmux(sock, "new-session", "-d", "-s", "vd", "-x", "100", "-y", "30",
          f"env VIRTDECK_AUDIT_LOG={tmp_path}/audit.jsonl TERM=xterm-256color {VIRTDECK} --config {inv}"
          "; echo ended")   # (a second command: the shell stays virtdeck's parent, no exec)
    try:
        pid = _drawn_console(sock)
    finally:
        _tmux(sock, "kill-server", check=False)
    t0 = time.monotonic()
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() - t0 < 10, "virtdeck still running 10 s after its terminal went away"
        time.sleep(0.05)
    print(f"terminal gone -> virtdeck ended in {time.monotonic() - t0:.2f} s")


# ---------------------------------------------------------------------------------------------
# `vm console NAME` without a terminal (issue 16, item 5): a traceback with stdin from
# /dev/null, no return on a pipe's EOF. Now: input is sent as it comes, and at its end (EOF) the
# guest's answer is shown for a moment, then the session ends with exit 0.

BARE_DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices><serial type='pty'/><console type='pty'/><graphics type='vnc' autoport='yes'/></devices>
</domain>"""


@pytest.fixture
def running_bare_domain(lab):
    """A running domain on the lab's hv1 with a serial console and no disk (SeaBIOS finds
    nothing to boot and waits): enough for `virsh console` to attach. Removed afterwards."""
    import uuid

    from virtdeck.backends.session import Session
    from virtdeck.config.inventory import load

    name = "notty-" + uuid.uuid4().hex[:6]
    with Session(load(lab.inventory)) as s:
        conn = s.libvirt("hv1")
        dom = conn.defineXML(BARE_DOMAIN.format(name=name))
        dom.create()
    yield name
    with Session(load(lab.inventory)) as s:
        dom = s.libvirt("hv1").lookupByName(name)
        dom.destroy()
        dom.undefine()


def _vm_console(lab, name: str, stdin, tmp_path: Path, input: bytes | None = None):
    env = dict(os.environ, VIRTDECK_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    t0 = time.monotonic()
    try:
        res = subprocess.run([VIRTDECK, "--config", str(lab.inventory), "vm", "console", name,
                              "--host", "hv1"], stdin=stdin, input=input, capture_output=True,
                             env=env, timeout=30)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`vm console` without a terminal still running after 30 s; "
                    f"output {exc.stdout!r} {exc.stderr!r}")
    return res, time.monotonic() - t0


@pytest.mark.lab
def test_vm_console_with_stdin_from_dev_null_ends_without_traceback(lab, running_bare_domain, tmp_path):
    res, took = _vm_console(lab, running_bare_domain, subprocess.DEVNULL, tmp_path)
    print(f"/dev/null: rc {res.returncode} in {took:.1f} s; stderr {res.stderr.decode()!r}")
    assert "Traceback" not in res.stderr.decode()
    assert res.returncode == 0, res.stderr
    assert b"serial console" in res.stdout


@pytest.mark.lab
def test_vm_console_from_a_pipe_returns_on_eof(lab, running_bare_domain, tmp_path):
    res, took = _vm_console(lab, running_bare_domain, None, tmp_path, input=b"hello\nworld\n")
    print(f"pipe: rc {res.returncode} in {took:.1f} s; stdout {res.stdout[-200:]!r}")
    assert "Traceback" not in res.stderr.decode()
    assert res.returncode == 0, res.stderr
    assert b"serial console" in res.stdout
    assert '"vm.console"' in (tmp_path / "audit.jsonl").read_text()


@pytest.mark.lab
@pytest.mark.parametrize("sig", [15, 1], ids=["SIGTERM", "SIGHUP"])
def test_cli_verb_ended_by_a_signal_closes_its_links(lab, running_bare_domain, tmp_path, sig):
    """A CLI verb holding an SSH link (`vm console` waiting on an open pipe) ended by SIGTERM or
    SIGHUP ends like Ctrl-C: its session closes, so no forward directory is left (item 9)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), VIRTDECK_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    proc = subprocess.Popen([VIRTDECK, "--config", str(lab.inventory), "vm", "console",
                             running_bare_domain, "--host", "hv1"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        end = time.monotonic() + 30
        while not list(tmp.glob("virtdeck-fwd-*")):
            assert time.monotonic() < end and proc.poll() is None, "no SSH link opened"
            time.sleep(0.05)
        time.sleep(1.0)                      # attached to the console
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = sorted(p.name for p in tmp.glob("virtdeck-fwd-*"))
    print(f"signal {sig}: rc {proc.returncode} in {time.monotonic() - t0:.2f} s, left {left}, "
          f"stderr {err.decode().strip()!r}")
    assert left == []
    assert proc.returncode == 128 + sig and "Traceback" not in err.decode()
