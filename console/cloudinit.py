"""The NoCloud seed's documents: meta-data, user-data (#cloud-config), network-config v2.

Everything here is pure (no I/O): the wizard validates each field as the operator types with the
``validate_*`` / ``parse_*`` helpers (each raises :class:`console.errors.ValidationError` naming the
field and what is allowed), and :func:`build_seed` assembles the three YAML documents that
``backends.seed.build_nocloud_iso`` packs into the ``cidata`` ISO.

Passwords: :func:`hash_password` turns a clear-text password into a SHA-512 crypt hash
(passlib ``sha512_crypt``, ``$6$rounds=656000$…``) the moment it is entered; everything after that
(seed, preview, audit) only ever sees the hash. Extra user-data may not carry a clear-text
password either (``password``, ``plain_text_passwd``, ``chpasswd`` entries of type text are refused).

Facts behind the shapes (LAB-NOTES.md): NICs are matched by MAC in network-config (names differ
between machine types); ``locale`` is left to the template (C.UTF-8).
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
import struct
import uuid
from dataclasses import dataclass

import yaml
from passlib.hash import sha512_crypt

from .errors import ValidationError

DONE_MARKER = "virtdeck: cloud-init done"
USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
SSH_KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)
RESERVED_USERS = ("root", "daemon", "bin", "sys", "nobody")
MAX_EXTRA_BYTES = 16 * 1024
DEFAULT_SUDO = "ALL=(ALL) NOPASSWD:ALL"


class _Dumper(yaml.SafeDumper):
    """SafeDumper that never emits YAML anchors/aliases (cloud-init reads them, humans don't)."""

    def ignore_aliases(self, data):  # noqa: D401
        return True


def _dump(obj) -> str:
    return yaml.dump(obj, Dumper=_Dumper, default_flow_style=False, sort_keys=False, width=4096)


# ---------------------------------------------------------------- field validation (as you type)

def validate_hostname(name: str, field: str = "name") -> str:
    """A VM name doubles as its hostname: lowercase letters, digits and '-', 1-63, no leading/
    trailing '-'. Returns it; raises ValidationError(field, …)."""
    if not name:
        raise ValidationError(field, "required")
    if not HOSTNAME_RE.match(name):
        raise ValidationError(field, "use 1-63 lowercase letters, digits and '-', not starting or ending with '-'")
    return name


def validate_username(name: str, field: str = "user") -> str:
    """A Linux login name: ``[a-z_][a-z0-9_-]{0,31}``, not a system account."""
    if not name:
        raise ValidationError(field, "required")
    if not USERNAME_RE.match(name):
        raise ValidationError(field, "start with a lowercase letter or '_', then up to 31 of a-z 0-9 _ -")
    if name in RESERVED_USERS:
        raise ValidationError(field, f"{name!r} is a system account; pick another login name")
    return name


def hash_password(clear: str, field: str = "password") -> str:
    """SHA-512 crypt hash of ``clear`` (passlib, random salt, 656000 rounds). Min 8 characters.

    Call this as soon as the password is entered and drop the clear text.
    """
    if not clear:
        raise ValidationError(field, "required (it is stored only as a SHA-512 hash)")
    if len(clear) < 8:
        raise ValidationError(field, "use at least 8 characters")
    return sha512_crypt.hash(clear)


def validate_password_hash(value: str, field: str = "password-hash") -> str:
    """Accept a complete SHA-512 crypt hash (``$6$[rounds=N$]SALT$CHECKSUM``, the checksum 86
    characters, e.g. from ``mkpasswd -m sha-512``); passlib parses it. A prefix alone (``$6$``)
    or a hash without its checksum would lock the account, so it is refused."""
    ok = False
    if value and sha512_crypt.identify(value):
        try:
            parsed = sha512_crypt.from_string(value)
            ok = bool(parsed.salt) and bool(parsed.checksum)
        except ValueError:
            ok = False
    if not ok:
        raise ValidationError(field, "must be a complete SHA-512 crypt hash ($6$salt$ and 86 characters), "
                              "e.g. from `mkpasswd -m sha-512`")
    return value


def read_user_data(source: str, stdin=None, field: str = "user-data") -> str:
    """The text of a ``--user-data`` argument: the file ``source`` (``~`` expanded), or
    ``stdin`` when ``source`` is ``-``. Reads at most :data:`MAX_EXTRA_BYTES` + 1 bytes (the size
    rule is :func:`parse_extra_user_data`'s). Raises ValidationError(field, …) in one sentence
    for a missing or unreadable file, a directory, or bytes that are not UTF-8 text."""
    import sys
    from pathlib import Path
    if source == "-":
        data = (stdin or sys.stdin.buffer).read(MAX_EXTRA_BYTES + 1)
        name = "standard input"
    else:
        path = Path(source).expanduser()
        name = str(path)
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_EXTRA_BYTES + 1)
        except FileNotFoundError:
            raise ValidationError(field, f"no such file {name}") from None
        except IsADirectoryError:
            raise ValidationError(field, f"{name} is a directory; give a #cloud-config YAML file") from None
        except OSError as exc:
            raise ValidationError(field, f"cannot read {name} ({exc.strerror or exc})") from None
    if isinstance(data, str):
        data = data.encode()
    if b"\0" in data:
        raise ValidationError(field, f"{name} is binary (it holds NUL bytes); give #cloud-config YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(field, f"{name} is not UTF-8 text; give #cloud-config YAML text") from None


def validate_ssh_key(line: str, field: str = "ssh-keys") -> str:
    """One OpenSSH public key line (``TYPE BASE64 [comment]``); the blob must decode and name the
    same key type. Returns the stripped line."""
    line = line.strip()
    parts = line.split(None, 2)
    if len(parts) < 2:
        raise ValidationError(field, "a public key looks like 'ssh-ed25519 AAAA… comment'")
    kind, blob = parts[0], parts[1]
    if kind not in SSH_KEY_TYPES:
        raise ValidationError(field, f"unknown key type {kind[:30]!r} (allowed: {', '.join(SSH_KEY_TYPES[:5])}, sk-…)")
    try:
        raw = base64.b64decode(blob, validate=True)
        (n,) = struct.unpack(">I", raw[:4])
        inner = raw[4:4 + n].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        raise ValidationError(field, f"the {kind} key's base64 blob does not decode") from None
    if inner != kind:
        raise ValidationError(field, f"the key blob is a {inner[:30]!r} key, not {kind}")
    if "PRIVATE KEY" in line:
        raise ValidationError(field, "that is a private key; paste the .pub file's line")
    return line


def parse_ssh_keys(text: str, field: str = "ssh-keys", required: bool = True) -> list[str]:
    """Public keys, one per line (blank lines and '#' comments skipped). Raises on the first bad
    line, naming its number; with ``required`` at least one key is needed."""
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            keys.append(validate_ssh_key(line, field))
        except ValidationError as exc:
            raise ValidationError(field, f"line {n}: {exc.reason}") from None
    if required and not keys:
        raise ValidationError(field, "at least one SSH public key is needed to log in")
    return keys


def _refuse_clear_passwords(doc: dict, field: str) -> None:
    if "password" in doc:
        raise ValidationError(field, "top-level 'password' is clear text; the wizard's password is hashed for you")
    chpasswd = doc.get("chpasswd")
    if isinstance(chpasswd, dict):
        if "list" in chpasswd:
            raise ValidationError(field, "chpasswd.list holds clear-text passwords; use users[].hashed_passwd")
        for entry in chpasswd.get("users") or []:
            if isinstance(entry, dict) and entry.get("type", "hash") != "hash":
                raise ValidationError(field, "chpasswd.users entries must be of type 'hash' (no clear text)")
    for user in doc.get("users") or []:
        if isinstance(user, dict):
            if "plain_text_passwd" in user:
                raise ValidationError(field, f"users[{user.get('name', '?')}].plain_text_passwd is clear text; use hashed_passwd")
            pw = user.get("passwd") or user.get("hashed_passwd")
            if pw is not None and not (isinstance(pw, str) and pw.startswith("$")):
                raise ValidationError(field, f"users[{user.get('name', '?')}] password must be a crypt hash ($6$…)")


def load_yaml(text: str, field: str):
    """``text`` parsed by ``yaml.safe_load`` (any YAML value; None for an empty document).
    Raises ValidationError(field, "not valid YAML: line L, column C: problem") on a syntax error."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValidationError(field, f"not valid YAML: {where}{problem}") from None


def parse_extra_user_data(text: str, field: str = "user-data") -> dict:
    """Extra #cloud-config YAML to merge. Empty → {}. Must be a mapping, at most 16 KiB, with no
    clear-text password. Raises ValidationError with the YAML error's line."""
    if text is None or not text.strip():
        return {}
    if len(text.encode()) > MAX_EXTRA_BYTES:
        raise ValidationError(field, f"at most {MAX_EXTRA_BYTES // 1024} KiB of extra user-data")
    body = text.lstrip()
    if body.startswith("#!") or body.startswith("Content-Type"):
        raise ValidationError(field, "only #cloud-config YAML can be merged (no scripts or MIME parts)")
    doc = load_yaml(text, field)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValidationError(field, f"must be a YAML mapping (key: value), not a {type(doc).__name__}")
    for key in doc:
        if not isinstance(key, str):
            raise ValidationError(field, f"keys must be strings, not {key!r}")
    if "users" in doc and not isinstance(doc["users"], list):
        raise ValidationError(field, "users must be a list")
    _refuse_clear_passwords(doc, field)
    return doc


def validate_mac(mac: str, field: str = "mac") -> str:
    """Lowercase colon MAC ``52:54:00:xx:xx:xx``."""
    mac = mac.lower()
    if not MAC_RE.match(mac):
        raise ValidationError(field, "a MAC looks like 52:54:00:12:34:56")
    return mac


# ---------------------------------------------------------------- documents

def new_instance_id() -> str:
    """A fresh cloud-init instance-id (``i-`` + 16 hex). A new one makes cloud-init re-run."""
    return "i-" + uuid.uuid4().hex[:16]


def build_meta_data(instance_id: str, hostname: str) -> str:
    """NoCloud meta-data YAML: instance-id and local-hostname."""
    return _dump({"instance-id": instance_id, "local-hostname": hostname})


def merge_user_data(base: dict, extra: dict) -> dict:
    """Merge ``extra`` into a copy of ``base``: mappings merge recursively, lists are appended
    (base first), scalars from ``extra`` win. Raises ValidationError if ``extra`` adds a user of the
    same name as one of base's users (the wizard owns that user)."""
    out = copy.deepcopy(base)
    base_users = {u.get("name") for u in base.get("users", []) if isinstance(u, dict)}
    for u in extra.get("users", []) or []:
        name = u.get("name") if isinstance(u, dict) else u
        if name in base_users:
            raise ValidationError("user-data", f"user {name!r} is the wizard's default user; set it in the wizard")

    def merge(a, b):
        for k, v in b.items():
            if k in a and isinstance(a[k], dict) and isinstance(v, dict):
                merge(a[k], v)
            elif k in a and isinstance(a[k], list) and isinstance(v, list):
                a[k] = a[k] + copy.deepcopy(v)
            else:
                a[k] = copy.deepcopy(v)
    merge(out, extra)
    return out


def build_user_data(hostname: str, user: str, password_hash: str, ssh_keys: list[str],
                    extra: dict | None = None, sudo: str | None = DEFAULT_SUDO) -> str:
    """#cloud-config user-data: hostname, one user (hashed password, keys, sudo), extra merged.

    ``password_hash`` must already be a SHA-512 crypt hash. Returns the document text starting
    with ``#cloud-config``.
    """
    validate_password_hash(password_hash)
    entry = {
        "name": user,
        "shell": "/bin/bash",
        "lock_passwd": False,
        "hashed_passwd": password_hash,
        "ssh_authorized_keys": list(ssh_keys),
    }
    if sudo:
        entry["sudo"] = sudo
    doc = {
        "hostname": hostname,
        "preserve_hostname": False,
        "manage_etc_hosts": True,  # the hostname resolves (sudo complains otherwise)
        "users": [entry],
        "final_message": DONE_MARKER + " after $UPTIME s",
    }
    if extra:
        doc = merge_user_data(doc, extra)
    return "#cloud-config\n" + _dump(doc)


def build_network_config(macs: list[str]) -> str:
    """network-config v2: DHCPv4 on every NIC, matched by MAC (names differ between machine types)."""
    eth = {}
    for i, mac in enumerate(macs):
        eth[f"nic{i}"] = {"match": {"macaddress": validate_mac(mac)}, "dhcp4": True}
    return _dump({"version": 2, "ethernets": eth})


@dataclass(frozen=True)
class Seed:
    """The three NoCloud documents of one VM (text), plus the facts they were built from."""

    instance_id: str
    hostname: str
    meta_data: str
    user_data: str
    network_config: str

    def preview(self) -> str:
        """All three documents, as the wizard shows them (the password appears only as its hash)."""
        return (f"# meta-data\n{self.meta_data}\n# user-data\n{self.user_data}\n"
                f"# network-config\n{self.network_config}")


def build_seed(hostname: str, user: str, password_hash: str, ssh_keys: list[str], macs: list[str],
               extra: dict | None = None, instance_id: str | None = None,
               sudo: str | None = DEFAULT_SUDO) -> Seed:
    """Build the three documents for one VM. ``macs``: one per NIC, in NIC order."""
    validate_hostname(hostname)
    validate_username(user)
    iid = instance_id or new_instance_id()
    return Seed(
        instance_id=iid,
        hostname=hostname,
        meta_data=build_meta_data(iid, hostname),
        user_data=build_user_data(hostname, user, password_hash, ssh_keys, extra, sudo),
        network_config=build_network_config(macs),
    )
