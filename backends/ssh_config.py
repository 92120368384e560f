"""What OpenSSH's client configuration says about one destination, read with asyncssh's parser.

``ssh HOST`` reads ``~/.ssh/config`` then ``/etc/ssh/ssh_config`` (first value wins) and applies
Host/Match blocks to the name typed on the command line. :func:`resolve` does the same through
:class:`asyncssh.config.SSHClientConfig` (so Host patterns, Match, Include and %-tokens behave as
in asyncssh, which applies HostName, Port, User, IdentityFile, IdentitiesOnly, ProxyCommand and
HostKeyAlias itself when it connects). Two options asyncssh does not read are added to its
option table: ``CheckHostIP`` and ``HashKnownHosts``. What asyncssh does NOT do the OpenSSH way,
and :mod:`backends.ssh` therefore does itself from a :class:`Destination`:

- known_hosts files: OpenSSH reads ``UserKnownHostsFile`` (default ``~/.ssh/known_hosts
  ~/.ssh/known_hosts2``) AND ``GlobalKnownHostsFile`` (default ``/etc/ssh/ssh_known_hosts
  /etc/ssh/ssh_known_hosts2``); asyncssh drops the global default, and ``UserKnownHostsFile none``
  turns its checking off altogether;
- ProxyJump: asyncssh checks jump hosts only against its own default files;
- recording a trusted key under the name ssh looks up (``[host]:port``, HostKeyAlias, hashed when
  ``HashKnownHosts yes``, plus the address when ``CheckHostIP yes``).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from asyncssh.config import SSHClientConfig, SSHConfig

# Read at call time (``~`` expands against $HOME then), so tests can point HOME elsewhere.
USER_CONFIG = Path("~/.ssh/config")
SYSTEM_CONFIG = Path("/etc/ssh/ssh_config")
DEFAULT_USER_KNOWN_HOSTS = (Path("~/.ssh/known_hosts"), Path("~/.ssh/known_hosts2"))
DEFAULT_GLOBAL_KNOWN_HOSTS = (Path("/etc/ssh/ssh_known_hosts"), Path("/etc/ssh/ssh_known_hosts2"))
SSH_PORT = 22


class _ClientConfig(SSHClientConfig):
    """asyncssh's client config parser plus the two options it skips (CheckHostIP,
    HashKnownHosts); UserKnownHostsFile gets %-token expansion as in OpenSSH."""

    _handlers = {**SSHClientConfig._handlers,
                 "checkhostip": ("CheckHostIP", SSHConfig._set_bool),
                 "hashknownhosts": ("HashKnownHosts", SSHConfig._set_bool)}
    _percent_expand = SSHClientConfig._percent_expand | {"UserKnownHostsFile"}


def config_paths() -> list[Path]:
    """The ssh_config files OpenSSH reads, in its order (user, then system), that exist."""
    paths = [Path(USER_CONFIG).expanduser(), Path(SYSTEM_CONFIG).expanduser()]
    return [p for p in paths if os.access(p, os.R_OK)]


@dataclass(frozen=True)
class Destination:
    """One destination as ``ssh [-l user] [-p port] ADDRESS`` would reach it.

    - ``address``: what was asked for (an inventory address: IP, DNS name or ssh alias);
    - ``hostname``: where TCP goes (``HostName``, else ``address``);
    - ``port`` / ``user``: effective (inventory value, else ssh_config, else 22 / the local user);
    - ``key_name``: the name host keys are looked up and recorded under (``HostKeyAlias``, else
      ``hostname``) — written ``[key_name]:port`` when the port is not 22;
    - ``identity_files``: ``IdentityFile`` entries (expanded; may not exist);
    - ``proxy_jump``: the ``ProxyJump`` string, None when unset or ``none``;
    - ``proxied``: a ProxyJump or ProxyCommand sits in between (no address of the host is known
      here, so CheckHostIP does not apply — as in OpenSSH);
    - ``user_known_hosts`` / ``global_known_hosts``: the files OpenSSH reads (expanded, existing
      or not); ``check_host_ip`` / ``hash_known_hosts``: the two booleans (OpenSSH default no).
    """

    address: str
    hostname: str
    port: int
    user: str
    key_name: str
    identity_files: tuple[str, ...]
    identities_only: bool
    proxy_jump: str | None
    proxied: bool
    user_known_hosts: tuple[Path, ...]
    global_known_hosts: tuple[Path, ...]
    check_host_ip: bool
    hash_known_hosts: bool
    ciphers: str | None = None     # ``Ciphers`` as ssh_config sets it (None: unset)

    @property
    def known_host_name(self) -> str:
        """``key_name``, or ``[key_name]:port`` off port 22: the known_hosts spelling."""
        return known_host_name(self.key_name, self.port)

    def known_hosts_files(self, extra: str | os.PathLike | None = None) -> list[str]:
        """Every known_hosts file to check, existing ones only: ``extra`` (the inventory's),
        then the user files, then the global files."""
        out: list[str] = []
        cands = ([Path(extra).expanduser()] if extra else []) + list(self.user_known_hosts) + \
            list(self.global_known_hosts)
        for p in cands:
            if p.is_file() and str(p) not in out:
                out.append(str(p))
        return out

    def record_file(self, explicit: str | os.PathLike | None = None) -> Path:
        """Where trusting a key writes: ``explicit``, else the first UserKnownHostsFile (as ssh
        does), else ``~/.ssh/known_hosts`` when ssh_config says ``UserKnownHostsFile none``."""
        if explicit:
            return Path(explicit).expanduser()
        if self.user_known_hosts:
            return self.user_known_hosts[0]
        return Path(DEFAULT_USER_KNOWN_HOSTS[0]).expanduser()


def known_host_name(name: str, port: int) -> str:
    """OpenSSH's known_hosts spelling of ``name`` on ``port``: bare on 22, else ``[name]:port``."""
    return name if port == SSH_PORT else f"[{name}]:{port}"


def _paths(values, default: tuple[Path, ...]) -> tuple[Path, ...]:
    if values is None:                       # option not set: OpenSSH's defaults
        return tuple(Path(p).expanduser() for p in default)
    return tuple(Path(v).expanduser() for v in values)   # [] for "none"


def resolve(address: str, *, port: int | None = None, user: str | None = None) -> Destination:
    """Evaluate ssh_config for ``address`` as OpenSSH would, with ``port`` / ``user`` (when not
    None) taking precedence like ``-p`` / ``-l``. Files: :func:`config_paths`.

    Raises ValueError (asyncssh's ``ConfigParseError`` is one) for a malformed ssh_config line.
    """
    try:
        local_user = getpass.getuser()
    except (KeyError, OSError):
        local_user = str(os.getuid())
    cfg = _ClientConfig.load(None, config_paths(), False, False, False, local_user,
                             user if user else (), address, port if port else ())
    hostname = str(cfg.get("Hostname") or address)
    eff_port = int(cfg.get("Port") or SSH_PORT)
    jump = cfg.get("ProxyJump")
    return Destination(
        address=address, hostname=hostname, port=eff_port,
        user=str(cfg.get("User") or local_user),
        key_name=str(cfg.get("HostKeyAlias") or hostname),
        identity_files=tuple(str(Path(p).expanduser()) for p in (cfg.get("IdentityFile") or ())),
        identities_only=bool(cfg.get("IdentitiesOnly", False)),
        proxy_jump=str(jump) if jump else None,
        proxied=bool(jump or cfg.get("ProxyCommand")),
        user_known_hosts=_paths(cfg.get("UserKnownHostsFile"), DEFAULT_USER_KNOWN_HOSTS),
        global_known_hosts=_paths(cfg.get("GlobalKnownHostsFile"), DEFAULT_GLOBAL_KNOWN_HOSTS),
        check_host_ip=bool(cfg.get("CheckHostIP", False)),
        hash_known_hosts=bool(cfg.get("HashKnownHosts", False)),
        ciphers=str(cfg.get("Ciphers")) if cfg.get("Ciphers") else None,
    )


@dataclass(frozen=True)
class Hop:
    """One ProxyJump hop: ``[user@]host[:port]`` (None = unset: ssh_config of ``host`` decides)."""

    host: str
    port: int | None
    user: str | None


def jump_hops(proxy_jump: str) -> list[Hop]:
    """Split a ProxyJump value (``a,user@b:2222``, ``[::1]:22``) into hops, first hop first.

    Raises ValueError for a hop without a host or with a port that is not a number.
    """
    hops = []
    for part in proxy_jump.split(","):
        part = part.strip()
        if part.startswith("ssh://"):
            part = part[len("ssh://"):]
        user, _, host = part.rpartition("@")
        port: int | None = None
        if host.startswith("["):             # [v6]:port
            inner, _, rest = host[1:].partition("]")
            host, port_s = inner, rest[1:] if rest.startswith(":") else ""
        elif host.count(":") == 1:
            host, port_s = host.split(":")
        else:
            port_s = ""
        if port_s:
            if not port_s.isdigit():
                raise ValueError(f"ProxyJump {proxy_jump!r}: port {port_s!r} is not a number")
            port = int(port_s)
        if not host:
            raise ValueError(f"ProxyJump {proxy_jump!r}: a hop has no host")
        hops.append(Hop(host, port, user or None))
    return hops


def hashed_name(name: str, salt: bytes | None = None) -> str:
    """OpenSSH's hashed known_hosts form of ``name`` (``|1|salt|HMAC-SHA1``), as ``ssh-keygen -H``
    and ``HashKnownHosts yes`` write it; ``salt``: 20 random bytes unless given."""
    salt = salt if salt is not None else os.urandom(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def record_names(dest: Destination) -> list[str]:
    """The known_hosts names ssh would record a newly trusted key of ``dest`` under: the key name
    (with port), plus the host's addresses when ``CheckHostIP yes`` and nothing proxies it
    (ssh records the one it connected to; every address the name resolves to is recorded here,
    as the trust is given after that connection is gone)."""
    names = [dest.known_host_name]
    if dest.check_host_ip and not dest.proxied and dest.key_name == dest.hostname:
        try:
            infos = socket.getaddrinfo(dest.hostname, dest.port, type=socket.SOCK_STREAM)
        except OSError:
            infos = []
        # every address the name resolves to: the one connected to is among them
        for info in infos:
            ip = known_host_name(info[4][0], dest.port)
            if ip not in names:
                names.append(ip)
    return names


def known_hosts_lines(dest: Destination, key_line: str) -> list[str]:
    """The known_hosts lines (no newline) recording ``key_line`` (``TYPE BASE64 [comment]``) for
    ``dest``: one line per name, each name hashed, when ``HashKnownHosts yes``; else one line
    with the names comma-separated (what ssh writes)."""
    kt, kb = key_line.split()[:2]
    names = record_names(dest)
    if dest.hash_known_hosts:
        return [f"{hashed_name(n)} {kt} {kb}" for n in names]
    return [f"{','.join(names)} {kt} {kb}"]
