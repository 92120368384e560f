"""The inventory: hosts, OVN northbound, allocation ratios, tenants, templates (TOML).

Read with :mod:`tomllib`, written with :mod:`tomli_w`. Every problem is reported as one
:class:`~console.errors.ConfigError` naming the file, the key and what is allowed.

Shape (all keys but ``hosts[].name`` / ``hosts[].address`` optional)::

    [ssh]            known_hosts = PATH, identity = PATH        # defaults for every host
    [ovn]            via_host = NAME, nb_socket = PATH          # NB over SSH to a host's socket
                     connection = "tcp:A:6641,tcp:B:6641"       # … or a direct (raft) connection
                     sb_socket = PATH, sb_connection = "ssl:A:6642,…"  # the southbound, likewise
                     private_key, certificate, ca_cert = PATH   # PEM files for ssl: members
                     (relative paths are relative to the inventory file's directory)
    [allocation]     cpu_ratio = 4.0, ram_ratio = 1.0           # vCPUs per core, RAM overcommit
    [metrics]        interval = 3.0, window = 600.0             # s between polls, s kept
                     load_window = 300.0, sample = 1.0          # s placement averages / samples
                     cpu_threshold = 85.0, ram_threshold = 95.0  # % above which placement refuses
                                                                 # (unset: no pressure filter)
                     cpu_source = "node" | "guests"             # which CPU figure placement uses
    [[hosts]]        name, address, user, port, identity, known_hosts, libvirt_socket,
                     enabled, disabled_reason, hypervisor, domain_type ("kvm" | "qemu"),
                     ovn (default true; false: libvirt only, no OVS/ovn-controller here)
                     (address: IP, DNS name or ssh alias; user/port unset: ssh_config decides)
    [[tenants]]      name, max_vcpus, max_ram_mib, max_vms
    [[templates]]    name, pool, volume, sha256, arch, os, default_user, kernel, initrd, cmdline,
                     boot ("kernel" | "bios" | "uefi"; unset: kernel if a kernel is set, else bios),
                     secure_boot (UEFI only, default false)
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from ..console.errors import ConfigError, NotInInventory

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
ARCHES = ("x86_64", "aarch64")
BOOT_MODES = ("kernel", "bios", "uefi")  # direct kernel, the disk's BIOS GRUB, the disk's ESP
DOMAIN_TYPES = ("kvm", "qemu")


@dataclass(frozen=True)
class HostConfig:
    """One machine reached over SSH. ``hypervisor`` hosts run libvirtd (socket path on the host).

    ``address`` is an IP, a DNS name or an ssh_config alias. ``user``, ``port`` (and the
    identity/known_hosts here or in [ssh]) override ssh_config only when set; unset (None), the
    host's entry in ``~/.ssh/config`` / ``/etc/ssh/ssh_config`` decides, as for ``ssh ADDRESS``
    (then the local user, port 22). ``ovn = false``: a hypervisor without OVS/ovn-controller
    (e.g. the lab's light hosts): `host check` says so instead of failing its OVN facts, and
    placement refuses it (every VM has an OVN network).
    """

    name: str
    address: str
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    known_hosts: str | None = None
    libvirt_socket: str = "/run/libvirt/libvirt-sock"
    enabled: bool = True
    disabled_reason: str | None = None  # why enabled = false (maintenance), shown by placement
    hypervisor: bool = True
    domain_type: str = "kvm"
    ovn: bool = True


@dataclass(frozen=True)
class OvnConfig:
    """How to reach OVN northbound: over SSH to ``via_host``'s ``nb_socket``, or ``connection``
    (an OVSDB connection string; a comma-separated list of raft members is allowed).

    ``private_key``/``certificate``/``ca_cert``: PEM files (paths, ``~`` expanded) for
    ``ssl:`` members — the client's key, its certificate, and the CA that signed the servers'
    certificates. All three are required when a member is ``ssl:``; each is checked at load,
    and a relative path is made absolute against the inventory file's directory (not the cwd).

    ``sb_socket`` / ``sb_connection``: the same for OVN southbound (read-only consumers): the SB
    socket on ``via_host``, or an SB connection string (raft member list allowed) that uses
    the same SSL files.
    """

    via_host: str | None = None
    nb_socket: str = "/run/ovn/ovnnb_db.sock"
    connection: str | None = None
    sb_socket: str = "/run/ovn/ovnsb_db.sock"
    sb_connection: str | None = None
    private_key: str | None = None
    certificate: str | None = None
    ca_cert: str | None = None

    @property
    def ssl_keys(self) -> dict[str, str | None]:
        """{key name: path or None} for the three SSL files, in inventory order."""
        return {"private_key": self.private_key, "certificate": self.certificate,
                "ca_cert": self.ca_cert}

    @property
    def uses_ssl(self) -> bool:
        """True when ``connection`` or ``sb_connection`` has an ``ssl:`` member."""
        remotes = f"{self.connection or ''},{self.sb_connection or ''}"
        return any(m.strip().startswith("ssl:") for m in remotes.split(","))


@dataclass(frozen=True)
class AllocationConfig:
    """Overcommit ratios: schedulable vCPUs = cores × cpu_ratio; RAM MiB = total × ram_ratio."""

    cpu_ratio: float = 4.0
    ram_ratio: float = 1.0


CPU_SOURCES = ("node", "guests")


@dataclass(frozen=True)
class MetricsConfig:
    """Metrics polling and the placement pressure filter (console.metrics, backends.scheduler).

    ``interval``: seconds between two stats polls of a host; ``window``: seconds of figures kept
    per series (ring buffers, 600 s / 3 s = 200 points). ``load_window``: seconds of history the
    scheduler averages; without that history (a CLI create) it samples each host for ``sample``
    seconds (only when a threshold is set: a create then waits that long). ``cpu_threshold`` /
    ``ram_threshold``: percent of host CPU / RAM in use above which placement refuses the host;
    unset (the default), no host is refused for its load (a refusal on a measured figure is
    the operator's choice, and a lab whose hosts share one busy kernel would refuse them all). ``cpu_source``: "node" (the host kernel's CPU times) or "guests"
    (the guests' CPU time over the host's CPUs; for hosts sharing one kernel, like the lab's)."""

    interval: float = 3.0
    window: float = 600.0
    load_window: float = 300.0
    sample: float = 1.0
    cpu_threshold: float | None = None
    ram_threshold: float | None = None
    cpu_source: str = "node"


@dataclass(frozen=True)
class TenantConfig:
    """A tenant with optional quotas (None = unlimited). RAM in MiB."""

    name: str
    max_vcpus: int | None = None
    max_ram_mib: int | None = None
    max_vms: int | None = None


@dataclass(frozen=True)
class TemplateConfig:
    """A base image in each hypervisor's storage pool, pinned by the sha256 of its content.

    ``kernel``/``initrd``/``cmdline`` are set for direct-kernel-boot templates (volumes in the
    same pool); unset for images that boot from their own disk.
    """

    name: str
    volume: str
    sha256: str
    pool: str = "virtdeck"
    arch: str = "x86_64"
    os: str = "linux"
    default_user: str = "debian"
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    boot: str | None = None
    secure_boot: bool = False

    @property
    def boot_mode(self) -> str:
        """``boot``, else 'kernel' when a kernel volume is set and 'bios' when not."""
        return self.boot or ("kernel" if self.kernel else "bios")


@dataclass(frozen=True)
class SshDefaults:
    """Defaults for every host: an extra known_hosts file (checked with the files ssh reads;
    trusted keys are recorded there) and an identity (private key path, tried before
    ssh_config's IdentityFile). None: ssh_config alone decides."""

    known_hosts: str | None = None
    identity: str | None = None


@dataclass(frozen=True)
class Inventory:
    """The whole inventory. ``path`` is the file it was read from (None if built in memory)."""

    hosts: tuple[HostConfig, ...] = ()
    ovn: OvnConfig = field(default_factory=OvnConfig)
    allocation: AllocationConfig = field(default_factory=AllocationConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tenants: tuple[TenantConfig, ...] = ()
    templates: tuple[TemplateConfig, ...] = ()
    ssh: SshDefaults = field(default_factory=SshDefaults)
    path: Path | None = None

    @property
    def hypervisors(self) -> tuple[HostConfig, ...]:
        """Hosts that run libvirt (enabled or not)."""
        return tuple(h for h in self.hosts if h.hypervisor)

    def host(self, name: str) -> HostConfig:
        """The host called ``name``; raises ConfigError naming the known hosts."""
        for h in self.hosts:
            if h.name == name:
                return h
        known = ", ".join(h.name for h in self.hosts) or "none"
        raise NotInInventory(f"no host named {name!r} in the inventory (hosts: {known})")

    def template(self, name: str) -> TemplateConfig:
        """The template called ``name``; raises ConfigError naming the known templates."""
        for t in self.templates:
            if t.name == name:
                return t
        known = ", ".join(t.name for t in self.templates) or "none"
        raise NotInInventory(f"no template named {name!r} in the inventory (templates: {known})")

    def identity_for(self, host: HostConfig) -> str | None:
        """The private key path for ``host``: its own, else the [ssh] default."""
        return host.identity or self.ssh.identity

    def known_hosts_for(self, host: HostConfig) -> str | None:
        """The extra known_hosts file for ``host``: its own, else the [ssh] default."""
        return host.known_hosts or self.ssh.known_hosts


_SECTIONS = {"ssh": SshDefaults, "ovn": OvnConfig, "allocation": AllocationConfig,
             "metrics": MetricsConfig}
_LISTS = {"hosts": HostConfig, "tenants": TenantConfig, "templates": TemplateConfig}


def _type_name(tp: Any) -> str:
    return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}.get(
        str(tp).replace("str | None", "str").replace("int | None", "int").replace("float | None", "float"),
        str(tp))


def _required(f) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _build(cls: type, data: Any, where: str, file: Path) -> Any:
    """Build dataclass ``cls`` from a TOML table, checking keys and scalar types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: {where} must be a table")
    allowed = {f.name: f for f in fields(cls) if f.name != "path"}
    kwargs = {}
    for key, value in data.items():
        if key not in allowed:
            raise ConfigError(f"{file}: unknown key {where}.{key} (allowed: {', '.join(allowed)})")
        want = str(allowed[key].type)
        base = want.split(" |")[0]
        ok = {
            "str": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
        }.get(base, True)
        if not ok:
            raise ConfigError(f"{file}: {where}.{key} must be {_type_name(base)}, got {type(value).__name__} {value!r}")
        kwargs[key] = float(value) if base == "float" else value
    missing = [f.name for f in fields(cls) if _required(f) and f.name not in kwargs]
    if missing:
        raise ConfigError(f"{file}: {where} needs {', '.join(missing)}")
    return cls(**kwargs)


def _check_address(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        return bool(HOSTNAME_RE.match(address))


#: An SSH login name as ``user =`` may give it (POSIX portable set, no leading '-').
_LOGIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$")


def _validate(inv: Inventory, file: Path) -> None:
    seen: set[str] = set()
    for i, h in enumerate(inv.hosts):
        where = f"hosts[{i}]"
        if not NAME_RE.match(h.name):
            raise ConfigError(f"{file}: {where}.name {h.name!r} must be lowercase letters, digits and '-' (1-63)")
        if h.name in seen:
            raise ConfigError(f"{file}: duplicate host {h.name!r} ({where}); host names must be unique")
        seen.add(h.name)
        if not _check_address(h.address):
            raise ConfigError(f"{file}: {where}.address {h.address!r} is neither an IP address nor a host name")
        if h.port is not None and not 1 <= h.port <= 65535:
            raise ConfigError(f"{file}: {where}.port {h.port} must be 1-65535")
        if h.domain_type not in DOMAIN_TYPES:
            raise ConfigError(f"{file}: {where}.domain_type {h.domain_type!r} must be one of {', '.join(DOMAIN_TYPES)}")
        if h.user is not None and not _LOGIN_RE.match(h.user):
            raise ConfigError(f"{file}: {where}.user {h.user!r} must be a login name (letters, digits, '.', '_', '-'; "
                              f"leave the key out to let ssh_config decide)")
    if inv.ovn.via_host and inv.ovn.connection:
        raise ConfigError(f"{file}: ovn: set either via_host or connection, not both")
    if inv.ovn.via_host and inv.ovn.via_host not in seen:
        raise ConfigError(f"{file}: ovn.via_host {inv.ovn.via_host!r} is not a host in [[hosts]]")
    for key in ("connection", "sb_connection"):
        for member in (getattr(inv.ovn, key) or "").split(",") if getattr(inv.ovn, key) else ():
            if not re.match(r"^(tcp|ssl|unix):.+", member.strip()):
                raise ConfigError(f"{file}: ovn.{key} member {member!r} must look like tcp:HOST:PORT, ssl:HOST:PORT or unix:PATH")
    _validate_ovn_ssl(inv.ovn, file)
    for key in ("cpu_ratio", "ram_ratio"):
        if getattr(inv.allocation, key) <= 0:
            raise ConfigError(f"{file}: allocation.{key} must be greater than 0")
    _validate_metrics(inv.metrics, file)
    names: set[str] = set()
    for i, t in enumerate(inv.tenants):
        if not NAME_RE.match(t.name):
            raise ConfigError(f"{file}: tenants[{i}].name {t.name!r} must be lowercase letters, digits and '-'")
        if t.name in names:
            raise ConfigError(f"{file}: duplicate tenant {t.name!r}")
        names.add(t.name)
        for key in ("max_vcpus", "max_ram_mib", "max_vms"):  # None = unlimited; 0 = none allowed
            value = getattr(t, key)
            if value is not None and value < 0:
                raise ConfigError(f"{file}: tenants[{i}].{key} = {value} must be 0 or more "
                                  f"(leave the key out for no limit)")
    names = set()
    for i, t in enumerate(inv.templates):
        if t.name in names:
            raise ConfigError(f"{file}: duplicate template {t.name!r}")
        names.add(t.name)
        if not SHA256_RE.match(t.sha256):
            raise ConfigError(f"{file}: templates[{i}].sha256 must be 64 lowercase hex digits (the image's sha256)")
        if t.arch not in ARCHES:
            raise ConfigError(f"{file}: templates[{i}].arch {t.arch!r} must be one of {', '.join(ARCHES)}")
        if t.boot is not None and t.boot not in BOOT_MODES:
            raise ConfigError(f"{file}: templates[{i}].boot {t.boot!r} must be one of {', '.join(BOOT_MODES)}")
        if (t.boot_mode == "kernel") != bool(t.kernel):
            raise ConfigError(f"{file}: templates[{i}].boot {t.boot_mode!r} and kernel {t.kernel!r} disagree "
                              f"(a kernel volume is for boot = \"kernel\" only)")


def _validate_metrics(m: MetricsConfig, file: Path) -> None:
    """Positive seconds, a window holding at least one interval, thresholds within 1-100 %."""
    for key in ("interval", "sample", "load_window"):
        if getattr(m, key) <= 0:
            raise ConfigError(f"{file}: metrics.{key} must be greater than 0 seconds")
    if m.window < m.interval:
        raise ConfigError(f"{file}: metrics.window ({m.window:g} s) must be at least metrics.interval "
                          f"({m.interval:g} s)")
    for key in ("cpu_threshold", "ram_threshold"):
        if getattr(m, key) is not None and not 1 <= getattr(m, key) <= 100:
            raise ConfigError(f"{file}: metrics.{key} must be a percent from 1 to 100")
    if m.cpu_source not in CPU_SOURCES:
        raise ConfigError(f"{file}: metrics.cpu_source {m.cpu_source!r} must be one of {', '.join(CPU_SOURCES)}")


def _validate_ovn_ssl(ovn: OvnConfig, file: Path) -> None:
    """ssl: members need all three PEM files; every file given must be a readable file."""
    if ovn.uses_ssl:
        missing = [k for k, v in ovn.ssl_keys.items() if not v]
        if missing:
            raise ConfigError(f"{file}: ovn.connection or ovn.sb_connection has an ssl: member but "
                              f"{', '.join('ovn.' + k for k in missing)} is not set")
    for key, value in ovn.ssl_keys.items():
        if not value:
            continue
        path = Path(value).expanduser()
        if not path.exists():
            raise ConfigError(f"{file}: ovn.{key}: no such file {path}")
        if not path.is_file():
            raise ConfigError(f"{file}: ovn.{key}: {path} is not a file")
        try:
            path.open("rb").close()
        except OSError as exc:
            raise ConfigError(f"{file}: ovn.{key}: cannot read {path} ({exc.strerror})") from None


def parse(data: dict, file: Path) -> Inventory:
    """Build and validate an Inventory from parsed TOML ``data``; raises ConfigError."""
    known = set(_SECTIONS) | set(_LISTS)
    for key in data:
        if key not in known:
            raise ConfigError(f"{file}: unknown key {key!r} (allowed: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {}
    for key, cls in _SECTIONS.items():
        if key in data:
            kwargs[key] = _build(cls, data[key], key, file)
    for key, cls in _LISTS.items():
        if key in data:
            if not isinstance(data[key], list):
                raise ConfigError(f"{file}: {key} must be an array of tables ([[{key}]])")
            kwargs[key] = tuple(_build(cls, item, f"{key}[{i}]", file) for i, item in enumerate(data[key]))
    if "ovn" in kwargs:
        kwargs["ovn"] = _ssl_paths_absolute(kwargs["ovn"], file)
    inv = Inventory(path=file, **kwargs)
    _validate(inv, file)
    return inv


def _ssl_paths_absolute(ovn: OvnConfig, file: Path) -> OvnConfig:
    """``ovn`` with its SSL file paths made absolute: ``~`` expanded, then a relative path taken
    against the directory of the inventory ``file`` (an inventory next to its PKI works from any
    cwd)."""
    changes = {}
    for key, value in ovn.ssl_keys.items():
        if value:
            path = Path(value).expanduser()
            if not path.is_absolute():
                path = Path(file).expanduser().absolute().parent / path
            changes[key] = str(path)
    return replace(ovn, **changes)


def load(path: str | Path) -> Inventory:
    """Read and validate the inventory at ``path``. Raises ConfigError (never a traceback)."""
    file = Path(path).expanduser()
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{file}: no inventory here; run `virtdeck lab up` for the lab, "
                          f"or write one (see README) and pass --config") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse(data, file)


def to_dict(inv: Inventory) -> dict:
    """The TOML-ready dict of ``inv``, leaving out defaults and None (tomli-w has no null)."""
    def clean(obj) -> dict:
        required = {f.name for f in fields(obj) if _required(f)}
        default = type(obj)(**{k: getattr(obj, k) for k in required})
        return {k: v for k, v in asdict(obj).items()
                if v is not None and (k in required or v != getattr(default, k))}
    out: dict[str, Any] = {}
    for key in _SECTIONS:
        d = clean(getattr(inv, key))
        if d:
            out[key] = d
    for key in _LISTS:
        items = [clean(x) for x in getattr(inv, key)]
        if items:
            out[key] = items
    return out


def save(inv: Inventory, path: str | Path | None = None) -> Path:
    """Write ``inv`` as TOML to ``path`` (default: where it was read from), atomically."""
    file = Path(path or inv.path or "")
    if not str(file):
        raise ConfigError("inventory has no path to save to")
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(file.suffix + ".tmp")
    tmp.write_bytes(tomli_w.dumps(to_dict(inv)).encode())
    tmp.replace(file)
    return file


def save_with_backup(inv: Inventory, path: str | Path | None = None) -> tuple[Path, Path | None]:
    """:func:`save` ``inv``, first copying the file it replaces to ``FILE.bak`` (the previous
    backup is replaced). Returns ``(written, backup or None when there was no file)``. tomli-w
    keeps no comments: the backup holds them. Raises ConfigError, OSError."""
    file = Path(path or inv.path or "")
    backup = None
    if str(file) and file.exists():
        backup = file.with_suffix(file.suffix + ".bak")
        backup.write_bytes(file.read_bytes())
    return save(inv, file), backup


def with_host(inv: Inventory, host: HostConfig) -> Inventory:
    """A copy of ``inv`` with ``host`` added or replacing the host of the same name."""
    hosts = tuple(h for h in inv.hosts if h.name != host.name) + (host,)
    return replace(inv, hosts=hosts)
