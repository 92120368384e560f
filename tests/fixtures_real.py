"""Real components for tests that need no lab: OpenSSH sshd on 127.0.0.1 and an OVN NB ovsdb-server.

Loaded from tests/conftest.py as a pytest plugin. Each fixture starts the real daemon with
throwaway keys in a tmp dir, waits until it answers, and stops it by its PID afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``pred()`` every 20 ms until true; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            return bool(s.recv(4).startswith(b"SSH"))
    except OSError:
        return False


@dataclass
class Sshd:
    """A running sshd: address/port, the client key it accepts, a known_hosts file listing its
    real host key, and the host's public key line."""

    address: str
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    host_key_pub: str
    pid: int
    dir: Path


def start_sshd(dir: Path, port: int | None = None) -> Sshd:
    """Start a real OpenSSH sshd on 127.0.0.1 in ``dir``; returns an :class:`Sshd`."""
    dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    host_key = dir / "ssh_host_ed25519_key"
    client_key = dir / "id_ed25519"
    for key in (host_key, client_key):
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    shutil.copy(f"{client_key}.pub", dir / "authorized_keys")
    host_pub = (dir / "ssh_host_ed25519_key.pub").read_text().split()
    known = dir / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    cfg = dir / "sshd_config"
    cfg.write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {host_key}\nPidFile {dir}/sshd.pid\n"
        f"AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "AllowStreamLocalForwarding yes\nAllowTcpForwarding yes\nLogLevel ERROR\n"
        "Subsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=open(dir / "sshd.log", "ab"))
    wait_for(lambda: _port_open(port), 10, "sshd to listen")
    return Sshd("127.0.0.1", port, "root", client_key, known, f"{host_pub[0]} {host_pub[1]}", proc.pid, dir)


def stop_pid(pid: int) -> None:
    """Stop a process this test session started, by PID."""
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.waitpid(pid, os.WNOHANG)
            os.kill(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


@pytest.fixture
def sshd(tmp_path):
    """A throwaway sshd on 127.0.0.1 (function scope: tests may stop it)."""
    s = start_sshd(tmp_path / "sshd")
    yield s
    stop_pid(s.pid)


def _unix_accepts(path: Path) -> bool:
    # The socket file appears at bind(), a moment before listen(): connect to be sure.
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
        return True
    except OSError:
        return False


@dataclass
class NbServer:
    """A running ovsdb-server with the OVN NB schema: ``unix``/``tcp`` connection strings."""

    unix: str
    tcp: str
    socket: Path
    pid: int
    db: Path


def start_nb(dir: Path) -> NbServer:
    """Start a real ovsdb-server with the OVN NB schema on a unix socket and a free TCP port."""
    dir.mkdir(parents=True, exist_ok=True)
    db = dir / "ovnnb_db.db"
    if not db.exists():
        subprocess.run(["ovsdb-tool", "create", str(db), NB_SCHEMA], check=True)
    sock = dir / "ovnnb_db.sock"
    port = free_port()
    proc = subprocess.Popen(
        ["ovsdb-server", str(db), f"--remote=punix:{sock}", f"--remote=ptcp:{port}:127.0.0.1",
         f"--unixctl={dir}/ovsdb.ctl", "--no-chdir", f"--log-file={dir}/ovsdb.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _unix_accepts(sock), 10, "ovsdb-server socket")
    return NbServer(f"unix:{sock}", f"tcp:127.0.0.1:{port}", sock, proc.pid, db)


@pytest.fixture
def nb_server(tmp_path):
    """A throwaway OVN NB ovsdb-server (function scope)."""
    s = start_nb(tmp_path / "nb")
    yield s
    stop_pid(s.pid)
