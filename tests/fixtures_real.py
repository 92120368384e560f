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


# ---------------------------------------------------------------------------------------------
# OVN NB as production runs it: a PKI and a 3-member raft cluster (issue 12)


@dataclass
class Pki:
    """PEM files in ``dir``: a CA, a server key/cert and a client key/cert signed by it, and a
    second CA (``other_ca``) that signed nothing of ours — the wrong CA for a client to trust."""

    dir: Path
    ca_cert: Path
    server_key: Path
    server_cert: Path
    client_key: Path
    client_cert: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(dir: Path) -> Pki:
    """A throwaway PKI made with openssl (EC P-256 keys: ~50 ms, where ovs-pki's RSA takes
    seconds). Certificates are valid for a day; CN only, OVS checks no host names."""
    dir.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", f"{ca}-key.pem", "-out", f"{ca}-cert.pem", "-days", "1",
                 "-subj", f"/CN=virtdeck test {ca}", cwd=dir)
    for who in ("server", "client"):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{who}-key.pem", "-out", f"{who}.csr", "-subj", f"/CN={who}", cwd=dir)
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem",
                 "-CAcreateserial", "-out", f"{who}-cert.pem", "-days", "1", cwd=dir)
    return Pki(dir, dir / "ca-cert.pem", dir / "server-key.pem", dir / "server-cert.pem",
               dir / "client-key.pem", dir / "client-cert.pem", dir / "other-ca-cert.pem")


@dataclass
class NbCluster:
    """A running 3-member OVN NB raft cluster on 127.0.0.1. ``members``: the client connection
    strings (``tcp:`` or ``ssl:``), ``pids``/``ctls`` per member (index-aligned), ``remote``
    the comma-separated member list a client is given."""

    members: list[str]
    pids: list[int]
    ctls: list[Path]
    dir: Path
    database: str = "OVN_Northbound"   # or OVN_Southbound (start_nb_cluster's ``kind``)

    @property
    def remote(self) -> str:
        return ",".join(self.members)

    def status(self, i: int) -> str:
        """``cluster/status`` of member ``i`` (empty when it does not answer)."""
        out = subprocess.run(["ovs-appctl", "-t", str(self.ctls[i]), "cluster/status",
                              self.database], capture_output=True, text=True, timeout=5)
        return out.stdout

    def leader(self) -> int | None:
        """Index of the member that says it leads (None during an election)."""
        for i, pid in enumerate(self.pids):
            if pid and "Role: leader" in self.status(i):
                return i
        return None

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` (a crash, no leadership transfer) and reap it."""
        os.kill(self.pids[i], 9)
        try:
            os.waitpid(self.pids[i], 0)
        except ChildProcessError:
            pass
        self.pids[i] = 0

    def stop(self) -> None:
        for pid in self.pids:
            if pid:
                stop_pid(pid)


def start_nb_cluster(dir: Path, pki: Pki | None = None, n: int = 3, kind: str = "nb") -> NbCluster:
    """Create and start an ``n``-member NB (``kind`` "nb") or SB ("sb") raft cluster
    (``ovsdb-tool create-cluster`` / ``join-cluster``, raft over TCP on free ports); clients
    reach each member on ``ptcp:`` or, with ``pki``, on ``pssl:`` with the server key/cert
    (client certificates required by ovsdb-server). Returns once every member is a cluster
    member and one leads."""
    dir.mkdir(parents=True, exist_ok=True)
    schema, database = ((NB_SCHEMA, "OVN_Northbound") if kind == "nb"
                        else ("/usr/share/ovn/ovn-sb.ovsschema", "OVN_Southbound"))
    raft = [f"tcp:127.0.0.1:{free_port()}" for _ in range(n)]
    client_ports = [free_port() for _ in range(n)]
    dbs = [dir / f"{kind}{i}.db" for i in range(n)]
    subprocess.run(["ovsdb-tool", "create-cluster", str(dbs[0]), schema, raft[0]],
                   check=True, capture_output=True)
    for i in range(1, n):
        subprocess.run(["ovsdb-tool", "join-cluster", str(dbs[i]), database, raft[i],
                        raft[0]], check=True, capture_output=True)
    cluster = NbCluster([], [], [], dir, database)
    try:
        for i in range(n):
            ctl = dir / f"nb{i}.ctl"
            if pki is None:
                remote = f"--remote=ptcp:{client_ports[i]}:127.0.0.1"
                cluster.members.append(f"tcp:127.0.0.1:{client_ports[i]}")
                tls = []
            else:
                remote = f"--remote=pssl:{client_ports[i]}:127.0.0.1"
                cluster.members.append(f"ssl:127.0.0.1:{client_ports[i]}")
                tls = [f"--private-key={pki.server_key}", f"--certificate={pki.server_cert}",
                       f"--ca-cert={pki.ca_cert}"]
            proc = subprocess.Popen(
                ["ovsdb-server", str(dbs[i]), remote, *tls, f"--unixctl={ctl}", "--no-chdir",
                 f"--log-file={dir}/nb{i}.log"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cluster.pids.append(proc.pid)
            cluster.ctls.append(ctl)
        wait_for(lambda: all("Status: cluster member" in cluster.status(i) for i in range(n))
                 and cluster.leader() is not None, 15, "the raft cluster to form")
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def nb_pki(tmp_path_factory):
    """One throwaway PKI per test module (python-ovs holds one set of SSL files per process)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def nb_cluster(tmp_path):
    """A 3-member NB raft cluster on tcp (function scope: tests kill members)."""
    c = start_nb_cluster(tmp_path / "cluster")
    yield c
    c.stop()


@pytest.fixture
def sb_cluster(tmp_path):
    """A 3-member SB raft cluster on tcp (function scope: tests kill members)."""
    c = start_nb_cluster(tmp_path / "sb-cluster", kind="sb")
    yield c
    c.stop()
