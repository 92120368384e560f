"""One asyncssh connection per host: host-key policy, unix-socket forwards, remote commands.

Trust model (OpenSSH's): keys are checked against ``~/.ssh/known_hosts`` plus the inventory's
known_hosts file; ``~/.ssh/config`` and ssh-agent are honoured (asyncssh defaults). An unknown
key is never accepted silently: :class:`HostKeyUnknown` carries the SHA256 fingerprint for the
operator to confirm (:func:`trust_host_key` then records it); a key that differs from a recorded
one raises :class:`HostKeyChanged` and is refused. Dead hosts are detected by SSH keepalives
(``keepalive_interval`` seconds × ``keepalive_count_max`` misses).

Every coroutine here runs on the I/O loop (:mod:`backends.ioloop`).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import asyncssh

from ..console.errors import HostError

DEFAULT_USER_KNOWN_HOSTS = Path("~/.ssh/known_hosts").expanduser()


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


class HostKeyUnknown(HostError):
    """The host presented a key found in no known_hosts file.

    ``fingerprint`` is OpenSSH's ``SHA256:…`` form; ``key_line`` is the public key in OpenSSH
    format, ready for :func:`trust_host_key`.
    """

    def __init__(self, host: str, address: str, port: int, fingerprint: str, key_line: str):
        super().__init__(f"{host} ({address}:{port}): unknown host key {fingerprint}; "
                         f"confirm it in the console or add it to known_hosts (ssh-keyscan, then verify)")
        self.host, self.address, self.port = host, address, port
        self.fingerprint, self.key_line = fingerprint, key_line


class HostKeyChanged(HostError):
    """The host presented a key that differs from the one recorded for it: refused."""

    def __init__(self, host: str, address: str, port: int, fingerprint: str):
        super().__init__(f"{host} ({address}:{port}): HOST KEY CHANGED (now {fingerprint}); refusing to connect. "
                         f"If the host was reinstalled, remove its old line from known_hosts; otherwise "
                         f"someone may be intercepting the connection")
        self.host, self.address, self.port, self.fingerprint = host, address, port, fingerprint


def _known_host_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def trust_host_key(address: str, port: int, key_line: str, file: str | os.PathLike | None = None) -> Path:
    """Append ``key_line`` for ``address:port`` to ``file`` (default ``~/.ssh/known_hosts``)."""
    path = Path(file).expanduser() if file else DEFAULT_USER_KNOWN_HOSTS
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    parts = key_line.split()
    with open(path, "a", encoding="ascii") as fh:
        fh.write(f"{_known_host_name(address, port)} {parts[0]} {parts[1]}\n")
    return path


@dataclass
class HostLink:
    """An open SSH connection to one host, with the local ends of its socket forwards."""

    name: str
    conn: asyncssh.SSHClientConnection
    _tmpdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="virtdeck-fwd-"))
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


def _known_hosts_files(extra: str | None) -> list[str]:
    files = [str(DEFAULT_USER_KNOWN_HOSTS)] if DEFAULT_USER_KNOWN_HOSTS.exists() else []
    if extra and Path(extra).expanduser().exists():
        files.append(str(Path(extra).expanduser()))
    return files


async def _classify_key_failure(name: str, address: str, port: int, files: list[str],
                                timeout: float) -> HostError:
    """After a failed host-key check, decide: changed (a recorded key differs) or unknown."""
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(address, port), timeout)
    except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
        return HostError(f"{name} ({address}:{port}): host key not verifiable and could not be read: {exc}")
    if key is None:
        return HostError(f"{name} ({address}:{port}): the host offered no host key")
    fingerprint = key.get_fingerprint("sha256")
    recorded = []
    if files:
        known = asyncssh.read_known_hosts(files)
        recorded = known.match(address, address, port)[0]
    if recorded:
        return HostKeyChanged(name, address, port, fingerprint)
    line = key.export_public_key("openssh").decode().strip()
    return HostKeyUnknown(name, address, port, fingerprint, line)


async def open_link(name: str, address: str, *, port: int = 22, user: str | None = None,
                    identity: str | None = None, known_hosts: str | None = None,
                    connect_timeout: float = 10.0, keepalive_interval: float = 3.0,
                    keepalive_count_max: int = 3) -> HostLink:
    """Connect to ``address:port`` and return a :class:`HostLink`.

    ``identity``: private key path (added to the agent's and ~/.ssh/config's keys);
    ``known_hosts``: an extra known_hosts file checked with ``~/.ssh/known_hosts``.
    A dead peer is noticed after ``keepalive_interval × keepalive_count_max`` seconds.

    Raises HostKeyUnknown, HostKeyChanged, or HostError (unreachable, auth refused, timeout).
    """
    files = _known_hosts_files(known_hosts)
    options = dict(
        port=port,
        known_hosts=asyncssh.read_known_hosts(files) if files else ([], [], []),
        connect_timeout=connect_timeout,
        keepalive_interval=keepalive_interval,
        keepalive_count_max=keepalive_count_max,
    )
    if user:
        options["username"] = user
    if identity:
        ident = str(Path(identity).expanduser())
        if not os.path.exists(ident):
            raise HostError(f"{name}: identity file {ident} does not exist; fix hosts.identity or [ssh].identity")
        options["client_keys"] = [ident]
    try:
        conn = await asyncssh.connect(address, **options)
    except asyncssh.HostKeyNotVerifiable:
        raise await _classify_key_failure(name, address, port, files, connect_timeout) from None
    except asyncssh.PermissionDenied:
        raise HostError(f"{name} ({address}:{port}): SSH authentication refused for user "
                        f"{user or 'default'}; check the identity and authorized_keys") from None
    except (asyncio.TimeoutError, TimeoutError):
        raise HostError(f"{name} ({address}:{port}): no SSH answer within {connect_timeout:g} s") from None
    except (asyncssh.Error, OSError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise HostError(f"{name} ({address}:{port}): cannot connect over SSH: {reason}") from None
    return HostLink(name=name, conn=conn)
