"""One asyncssh connection per host: host-key policy, unix-socket forwards, remote commands.

SSH semantics are OpenSSH's (:mod:`backends.ssh_config`): for every option the inventory leaves
unset (user, port, identity), ``~/.ssh/config`` then ``/etc/ssh/ssh_config`` decide — Host
aliases and patterns, HostName, User, Port, IdentityFile, IdentitiesOnly, ProxyJump,
HostKeyAlias; the inventory overrides only what it sets (like ``ssh -l/-p/-i``). ssh-agent is
used as ssh uses it.

Trust model (OpenSSH's): a host key is looked up by name only (HostKeyAlias, else HostName, as
``[name]:port`` off port 22) in the inventory's known_hosts file plus every file ssh reads
(UserKnownHostsFile, GlobalKnownHostsFile and their defaults; hashed entries too) — for each
ProxyJump hop as well. An unknown key is never accepted silently: :class:`HostKeyUnknown` carries
the SHA256 fingerprint for the operator to confirm (:func:`trust_host_key` then records it under
the name ssh looks up) and a one-sentence command to verify it; a key that differs from a
recorded one raises :class:`HostKeyChanged` and is refused. ``CheckHostIP yes``: the address's
entry must not list another key, and trusting records the address too. Dead hosts are detected
by SSH keepalives (``keepalive_interval`` seconds × ``keepalive_count_max`` misses).

Every coroutine here runs on the I/O loop (:mod:`backends.ioloop`).

Why one module of ~410 lines: the connection and its trust model belong together — a
:class:`HostLink` opens only after the host-key check, and trusting a key writes exactly what
the check reads (known_hosts names, CheckHostIP); ssh_config parsing and the I/O loop already
live apart (backends/ssh_config.py, backends/ioloop.py).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import asyncssh

from ..console.errors import HostError
from . import ssh_config
from .ssh_config import Destination

MAX_JUMPS = 8   # ProxyJump chains (a hop's own ProxyJump included) deeper than this are refused

# Cipher preference when ssh_config names no Ciphers: asyncssh's defaults with AES-GCM ahead of
# chacha20-poly1305. Every libvirt message crosses the link in Python (asyncssh), and GCM is one
# `cryptography` call a packet where chacha20-poly1305 is several: a 28-byte round trip through
# a unix-socket forward cost ~100 µs of CPU with chacha20, ~70 with aes128-gcm
# (tests/bench/bench_forward.py), which is most of an idle console's I/O thread.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _cipher_order() -> list[str]:
    from asyncssh.encryption import get_default_encryption_algs
    rest = [a.decode() for a in get_default_encryption_algs()]
    return [a for a in PREFERRED_CIPHERS if a in rest] + [a for a in rest if a not in PREFERRED_CIPHERS]


@dataclass(frozen=True)
class CompletedCommand:
    """Result of a remote command: exit status, decoded stdout/stderr (``bytes`` when run with
    ``binary=True``)."""

    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def _where(host: str, address: str, port: int, jump: bool) -> str:
    return f"{host}: jump host {address}:{port}" if jump else f"{host} ({address}:{port})"


def verify_command(dest: Destination, via: str | None = None) -> str:
    """The shell command an operator runs to see ``dest``'s key fingerprints on their own:
    ``ssh-keyscan -p PORT HOSTNAME | ssh-keygen -lf -``, run on the jump host when the host is
    reached through one (``via``: ssh's arguments for that hop, e.g. ``-p 2201 jump``), since
    ssh-keyscan reads no ssh_config and cannot hop."""
    scan = f"ssh-keyscan -p {dest.port} {shlex.quote(dest.hostname)}"
    if via:
        scan = f"ssh {via} {shlex.quote(scan)}"
    return f"{scan} | ssh-keygen -lf -"


class HostKeyUnknown(HostError):
    """The host (or one of its ProxyJump hops) presented a key found in no known_hosts file.

    ``host``: the inventory's host name; ``address``/``port``: the destination as asked for (an
    alias, DNS name or IP; the hop's for a jump host) — :func:`trust_host_key` takes them back;
    ``fingerprint``: OpenSSH's ``SHA256:…``; ``key_line``: the public key in OpenSSH format;
    ``verify``: the command that shows the key's fingerprints; ``record_as``: the known_hosts
    name ssh looks the key up under; ``jump``: the key is a ProxyJump hop's.
    """

    def __init__(self, host: str, address: str, port: int, fingerprint: str, key_line: str,
                 verify: str = "", record_as: str = "", jump: bool = False):
        verify = verify or f"ssh-keyscan -p {port} {address} | ssh-keygen -lf -"
        super().__init__(f"{_where(host, address, port, jump)}: unknown host key {fingerprint}, not trusted; "
                         f"verify it with `{verify}` and trust it in the console or add it to known_hosts")
        self.host, self.address, self.port = host, address, port
        self.fingerprint, self.key_line = fingerprint, key_line
        self.verify, self.jump = verify, jump
        self.record_as = record_as or ssh_config.known_host_name(address, port)


class HostKeyChanged(HostError):
    """The host (``jump``: a ProxyJump hop) presented a key that differs from the one recorded
    for its name (or, with ``CheckHostIP yes``, for its address: ``detail`` says so): refused."""

    def __init__(self, host: str, address: str, port: int, fingerprint: str, jump: bool = False,
                 detail: str = ""):
        super().__init__(f"{_where(host, address, port, jump)}: HOST KEY CHANGED (now {fingerprint}){detail}; "
                         f"refusing to connect. If the host was reinstalled, remove its old line from "
                         f"known_hosts (ssh-keygen -R); otherwise someone may be intercepting the connection")
        self.host, self.address, self.port, self.fingerprint = host, address, port, fingerprint


def trust_host_key(address: str, port: int | None, key_line: str,
                   file: str | os.PathLike | None = None) -> Path:
    """Record ``key_line`` (``TYPE BASE64 [comment]``) as the key of ``address`` on ``port``
    where ssh (and :func:`open_link`) will find it again; returns the file written.

    ``address`` is what the connection was asked for (alias, DNS name or IP, as in
    :class:`HostKeyUnknown`); ssh_config decides the recorded name (HostKeyAlias, else HostName,
    ``[name]:port`` off port 22; plus the address with ``CheckHostIP yes``), hashing
    (``HashKnownHosts``) and, when ``file`` is None, the file (the first UserKnownHostsFile,
    default ``~/.ssh/known_hosts``). ``port`` None: ssh_config's Port, else 22.
    Raises OSError when the file cannot be written; ValueError for a malformed ssh_config.
    """
    dest = ssh_config.resolve(address, port=port)
    path = dest.record_file(file)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path, "a", encoding="ascii") as fh:
        for line in ssh_config.known_hosts_lines(dest, key_line):
            fh.write(line + "\n")
    return path


FWD_PREFIX = "virtdeck-fwd-"   # + "<owner pid>-<random>": the local ends of one link's forwards
_swept = False
OLD_EMPTY_AGE = 86400.0        # s: an empty old-style directory (no owner PID) younger than this stays


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process: alive
        return True
    return True


def _socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(0.2)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def sweep_stale_fwd_dirs(root: str | None = None) -> list[str]:
    """Remove this user's forward directories (``virtdeck-fwd-*`` in ``root``, default the temp
    dir: $TMPDIR, else /tmp) whose owner is gone; returns the paths removed.

    A console ended by SIGTERM/SIGHUP closes its links (and removes them) on its way out; one
    killed by SIGKILL cannot. The owner is the PID in the name; a directory named before PIDs
    were recorded (``virtdeck-fwd-<random>``) is stale when none of its sockets accepts a
    connection, or, empty (a live link may not have forwarded yet), when older than
    ``OLD_EMPTY_AGE`` seconds. Never raises: a directory that cannot be read or removed is left.
    """
    root = root or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(FWD_PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            owner, sep, _ = entry.name[len(FWD_PREFIX):].partition("-")
            if sep and owner.isdigit():
                if _pid_alive(int(owner)):
                    continue
            else:   # named before PIDs were: judged by its sockets (an empty one by its age)
                files = os.listdir(entry.path)
                if (not files and time.time() - entry.stat().st_mtime < OLD_EMPTY_AGE) or \
                        any(_socket_answers(os.path.join(entry.path, f)) for f in files):
                    continue
            for f in os.listdir(entry.path):
                os.unlink(os.path.join(entry.path, f))
            os.rmdir(entry.path)
            removed.append(entry.path)
        except OSError:
            continue
    return removed


def fwd_dir() -> str:
    """A new 0700 directory for one link's forwarded sockets, named with this process's PID
    (``virtdeck-fwd-<pid>-<random>`` in the temp dir); the first call in a process sweeps the
    stale ones (:func:`sweep_stale_fwd_dirs`). Raises OSError when the temp dir is not writable."""
    global _swept
    if not _swept:
        _swept = True
        sweep_stale_fwd_dirs()
    return tempfile.mkdtemp(prefix=f"{FWD_PREFIX}{os.getpid()}-")


@dataclass
class HostLink:
    """An open SSH connection to one host, with the local ends of its socket forwards."""

    name: str
    conn: asyncssh.SSHClientConnection
    _tmpdir: str = field(default_factory=lambda: fwd_dir())
    _listeners: dict = field(default_factory=dict)   # label -> listener

    async def forward_unix(self, remote_path: str, label: str) -> str:
        """Forward a remote unix socket to a private local one; returns the local path.

        The local socket lives in a 0700 directory only this user can enter. Forwarding the
        same ``label`` again (a reconnect of libvirt or the NB) replaces the old listener.
        """
        local = os.path.join(self._tmpdir, f"{label}.sock")
        old = self._listeners.pop(label, None)
        if old is not None:
            old.close()
        if os.path.exists(local):
            os.unlink(local)
        try:
            listener = await self.conn.forward_local_path(local, remote_path)
        except (asyncssh.Error, OSError) as exc:
            raise HostError(f"{self.name}: cannot forward {remote_path}: {exc}") from None
        self._listeners[label] = listener
        return local

    async def run(self, command: str | Sequence[str], timeout: float = 30.0, input: str | None = None,
                  binary: bool = False) -> CompletedCommand:
        """Run ``command`` (a shell string, or argv that gets quoted) on the host.

        ``binary``: stdout/stderr are returned as undecoded ``bytes`` (e.g. gzip output).
        Raises HostError when the connection fails or ``timeout`` seconds pass.
        """
        cmd = command if isinstance(command, str) else shlex.join(command)
        extra = {"encoding": None} if binary else {}
        try:
            res = await asyncio.wait_for(self.conn.run(cmd, check=False, input=input, **extra), timeout)
        except asyncio.TimeoutError:
            raise HostError(f"{self.name}: `{cmd}` did not finish within {timeout:g} s") from None
        except (asyncssh.Error, OSError) as exc:
            raise HostError(f"{self.name}: `{cmd}` failed: {exc}") from None
        if binary:
            return CompletedCommand(res.exit_status if res.exit_status is not None else -1,
                                    res.stdout or b"", res.stderr or b"")
        return CompletedCommand(res.exit_status if res.exit_status is not None else -1,
                                str(res.stdout or ""), str(res.stderr or ""))

    def close(self) -> None:
        """Close the forwards and the connection (idempotent)."""
        for listener in self._listeners.values():
            listener.close()
        self._listeners.clear()
        self.conn.close()
        try:
            for f in os.listdir(self._tmpdir):
                os.unlink(os.path.join(self._tmpdir, f))
            os.rmdir(self._tmpdir)
        except OSError:
            pass


def _read_known(name: str, files: list[str]) -> asyncssh.SSHKnownHosts:
    try:
        return asyncssh.read_known_hosts(files) if files else asyncssh.import_known_hosts("")
    except (ValueError, OSError) as exc:
        raise HostError(f"{name}: cannot read known_hosts ({', '.join(files)}): {exc}") from None


def _lookup(known: asyncssh.SSHKnownHosts, name: str, port: int):
    """asyncssh's match result for ``name`` on ``port`` the OpenSSH way: by the one spelling
    ssh uses (``[name]:port`` off 22; exact, pattern or hashed entries). Passing the port to
    asyncssh instead would also accept an entry for port 22 when none is found for ``port``."""
    return known.match(ssh_config.known_host_name(name, port), "", None)


def _client_keys(name: str, dest: Destination, identity: str | None):
    """``identity`` (the inventory's, like ``ssh -i``) first, then ssh_config's IdentityFile
    entries that exist; ``()`` when the inventory sets none (asyncssh then applies IdentityFile,
    else the default ~/.ssh/id_* keys)."""
    if not identity:
        return ()
    ident = str(Path(identity).expanduser())
    if not os.path.exists(ident):
        raise HostError(f"{name}: identity file {ident} does not exist; fix hosts.identity or [ssh].identity")
    return [ident] + [f for f in dest.identity_files if f != ident and os.path.exists(f)]


async def _classify_key_failure(name: str, dest: Destination, known: asyncssh.SSHKnownHosts,
                                tunnel, through: str | None, jump: bool, timeout: float) -> HostError:
    """After a failed host-key check, decide: changed (a key is recorded under the name ssh
    looks up, and it is not this one) or unknown. Reads the key with a second handshake over
    the same path (the jump connection ``tunnel`` when there is one)."""
    where = f"{name}: jump host {dest.address}:{dest.port}" if jump else f"{name} ({dest.address}:{dest.port})"
    try:
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(dest.address, dest.port, tunnel=tunnel,
                                         config=ssh_config.config_paths()), timeout)
    except (asyncssh.Error, OSError, asyncio.TimeoutError, ValueError) as exc:
        return HostError(f"{where}: host key not verifiable and could not be read: {exc}")
    if key is None:
        return HostError(f"{where}: the host offered no host key")
    fingerprint = key.get_fingerprint("sha256")
    if _lookup(known, dest.key_name, dest.port)[0]:
        return HostKeyChanged(name, dest.address, dest.port, fingerprint, jump=jump)
    line = key.export_public_key("openssh").decode().strip()
    return HostKeyUnknown(name, dest.address, dest.port, fingerprint, line,
                          verify=verify_command(dest, through), record_as=dest.known_host_name, jump=jump)


def _check_host_ip(name: str, dest: Destination, known: asyncssh.SSHKnownHosts,
                   conn: asyncssh.SSHClientConnection) -> None:
    """``CheckHostIP yes`` on a direct connection: an entry for the peer's address that lists
    other keys than the one just verified by name means the address changed hands (OpenSSH asks
    whether to go on; virtdeck has no one to ask here and refuses). Raises HostKeyChanged."""
    peer = conn.get_extra_info("peername")
    key = conn.get_server_host_key()
    if not peer or key is None:
        return
    at_ip = _lookup(known, peer[0], dest.port)[0]
    if at_ip and all(k.public_data != key.public_data for k in at_ip):
        raise HostKeyChanged(name, dest.address, dest.port, key.get_fingerprint("sha256"),
                             detail=f" for its address {peer[0]} (CheckHostIP)")


async def _connect(name: str, address: str, *, port: int | None, user: str | None,
                   identity: str | None, known_hosts: str | None, tunnel, through: str | None,
                   jump: bool, depth: int, options: dict) -> asyncssh.SSHClientConnection:
    """One connection as ``ssh`` would make it (see module doc); ProxyJump hops first."""
    try:
        dest = ssh_config.resolve(address, port=port, user=user)
    except (ValueError, OSError) as exc:
        raise HostError(f"{name}: ssh_config for {address}: {exc}") from None
    where = f"{name}: jump host {dest.address}:{dest.port}" if jump else f"{name} ({dest.address}:{dest.port})"
    if tunnel is None and dest.proxy_jump:
        if depth >= MAX_JUMPS:
            raise HostError(f"{where}: more than {MAX_JUMPS} ProxyJump hops (a loop in ssh_config?)")
        try:
            hops = ssh_config.jump_hops(dest.proxy_jump)
        except ValueError as exc:
            raise HostError(f"{where}: {exc}") from None
        for hop in hops:
            # The first hop is reached as `ssh HOP` would (its own ProxyJump applies), each
            # next one through the previous: what OpenSSH's `-J a,b` does. A hop's key is
            # checked against the inventory's file too; its identity comes from ssh_config.
            try:
                tunnel = await _connect(name, hop.host, port=hop.port, user=hop.user, identity=None,
                                        known_hosts=known_hosts, tunnel=tunnel, through=through,
                                        jump=True, depth=depth + 1, options=options)
            except BaseException:
                if tunnel is not None:
                    tunnel.close()
                raise
            through = (f"-p {hop.port} " if hop.port else "") + (f"{hop.user}@" if hop.user else "") + hop.host
    try:
        known = _read_known(name, dest.known_hosts_files(known_hosts))
        client_keys = _client_keys(name, dest, identity)
        # ssh_config's Ciphers, when set, decides (asyncssh reads it from config=)
        ciphers = {} if dest.ciphers else {"encryption_algs": _cipher_order()}
        conn = await asyncssh.connect(
            dest.address, dest.port, username=dest.user, config=ssh_config.config_paths(),
            tunnel=tunnel, client_keys=client_keys, ignore_encrypted=True,
            # by name only (OpenSSH); asyncssh on its own also trusts entries for the peer address
            known_hosts=lambda _h, _a, _p: _lookup(known, dest.key_name, dest.port),
            **ciphers, **options)
    except asyncssh.HostKeyNotVerifiable:
        err = await _classify_key_failure(name, dest, known, tunnel, through, jump,
                                          options["connect_timeout"])
        if tunnel is not None:
            tunnel.close()
        raise err from None
    except BaseException as exc:
        if tunnel is not None:
            tunnel.close()
        if isinstance(exc, HostError):
            raise
        if isinstance(exc, asyncssh.PermissionDenied):
            raise HostError(f"{where}: SSH authentication refused for user {dest.user}; "
                            f"check the identity and authorized_keys") from None
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            raise HostError(f"{where}: no SSH answer within {options['connect_timeout']:g} s") from None
        if isinstance(exc, (asyncssh.Error, OSError, ValueError)):
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
            raise HostError(f"{where}: cannot connect over SSH: {reason}") from None
        raise
    if tunnel is not None:
        conn.set_tunnel(tunnel)          # closing this connection closes its jump chain
    if dest.check_host_ip and not dest.proxied:
        try:
            _check_host_ip(name, dest, known, conn)
        except HostKeyChanged:
            conn.close()
            raise
    return conn


async def open_link(name: str, address: str, *, port: int | None = None, user: str | None = None,
                    identity: str | None = None, known_hosts: str | None = None,
                    connect_timeout: float = 10.0, keepalive_interval: float = 3.0,
                    keepalive_count_max: int = 3) -> HostLink:
    """Connect to ``address`` as ``ssh [-l user] [-p port] [-i identity] address`` would and
    return a :class:`HostLink` named ``name`` (the inventory's host name).

    ``address``: IP, DNS name or ssh_config alias; ``port`` / ``user`` / ``identity``: None
    leaves them to ssh_config (then 22 / the local user / the default keys); ``known_hosts``: an
    extra known_hosts file checked with the ones ssh reads, for ProxyJump hops too.
    ``connect_timeout`` is in seconds per connection (each hop is one); a dead peer is noticed
    after ``keepalive_interval × keepalive_count_max`` seconds.

    Raises HostKeyUnknown, HostKeyChanged (for the host or a hop), or HostError (unreachable,
    auth refused, timeout, a malformed ssh_config or known_hosts file).
    """
    options = dict(connect_timeout=connect_timeout, keepalive_interval=keepalive_interval,
                   keepalive_count_max=keepalive_count_max)
    conn = await _connect(name, address, port=port, user=user, identity=identity,
                          known_hosts=known_hosts, tunnel=None, through=None, jump=False, depth=0,
                          options=options)
    return HostLink(name=name, conn=conn)
