"""Templates: base images in every hypervisor's storage pool, pinned by sha256 of their content.

Shared by `virtdeck template list | add | delete` (console/cli_template.py) and the TUI.

- :func:`list_templates` — each inventory template with, per hypervisor, whether its volume is
  there, its size, and how many volumes use it as their backing file.
- :func:`add_template` — upload the image (and kernel/initrd for direct kernel boot) to every
  enabled hypervisor through the libvirt storage volume API (``virStream`` upload, progress
  callback), verify the sha256 ON each host (``sha256sum`` over SSH), then record the template in
  the inventory (TOML, saved). A mismatch anywhere deletes what this call uploaded on every host
  and nothing is recorded. A host that already holds the volume with the right sum is left as is.
  With ``url``, each hypervisor downloads the image itself instead (backends/download.py: curl
  on the host, resumable, progress per host, sha256 verified there before the volume exists; a
  mismatch keeps nothing on any host). The boot mode is read from the image when not given
  (backends/image_probe.py: GPT/MBR, ESP, BIOS boot partition; aarch64 → UEFI).
- :func:`delete_template` — refused while any volume on any host has the template as its backing
  file, or while a hypervisor cannot be asked; else the volumes go from every host and the
  template from the inventory.

Each mutating verb runs in the verb frame (:func:`verb.run`: the read-only guard first, then
exactly one audit record, "template.add" / "template.delete", whatever happens).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ...backends import domains, download, image_probe, storage
from ...config import inventory as invmod
from ...config.inventory import ARCHES, BOOT_MODES, Inventory, TemplateConfig
from .. import cloudinit
from ..errors import AlreadyExists, HostError, InUse, ValidationError, VirtdeckError
from . import verb as verb_frame
from .image_checks import check_image

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")

#: progress(host, file label, sent bytes, total bytes)
UploadProgress = Callable[[str, str, int, int], None]


@dataclass(frozen=True)
class TemplateHost:
    """A template's volume on one host: ``present``; ``size_bytes`` (virtual); ``users`` (the
    domains whose disk is a volume backed by it: real VMs only); ``leftovers`` (volumes backed by
    it that no domain uses: a dead create's, see ``virtdeck check``); ``error`` when the host
    could not be asked."""

    host: str
    present: bool
    size_bytes: int | None = None
    users: tuple[str, ...] = ()
    error: str | None = None
    leftovers: tuple[str, ...] = ()


@dataclass(frozen=True)
class TemplateRow:
    """One template and where it is."""

    template: TemplateConfig
    hosts: tuple[TemplateHost, ...]

    def to_dict(self) -> dict:
        t = self.template
        return {
            "name": t.name, "volume": t.volume, "pool": t.pool, "sha256": t.sha256, "arch": t.arch,
            "os": t.os, "default_user": t.default_user, "kernel": t.kernel, "initrd": t.initrd,
            "cmdline": t.cmdline, "boot": t.boot_mode, "secure_boot": t.secure_boot,
            "hosts": [{"host": h.host, "present": h.present, "size_bytes": h.size_bytes,
                       "users": list(h.users), "leftovers": list(h.leftovers), "error": h.error}
                      for h in self.hosts],
        }


def _host_row(session, host: str, t: TemplateConfig) -> TemplateHost:
    try:
        conn = session.libvirt(host)
        vols = storage.list_volumes(conn, host, t.pool)
    except VirtdeckError as exc:
        return TemplateHost(host, False, error=str(exc))
    base = next((v for v in vols if v.name == t.volume), None)
    if base is None:
        return TemplateHost(host, False)
    backed = {v.path: v.name for v in vols if v.backing_path == base.path}
    try:
        # users are domains, not volumes: a killed create's overlay is no VM (issue 16)
        by_domain = {}
        for dom in domains.list_all(conn, host):
            f = domains.facts(dom, host, inactive=domains.is_persistent(dom, host))
            for d in f.disks:
                vol = backed.get(d.source or "")
                if vol:
                    by_domain.setdefault(vol, f.name)
    except VirtdeckError as exc:
        return TemplateHost(host, True, base.capacity_bytes, error=str(exc))
    users = tuple(sorted(set(by_domain.values())))
    leftovers = tuple(sorted(v for v in backed.values() if v not in by_domain))
    return TemplateHost(host, True, base.capacity_bytes, users, leftovers=leftovers)


def list_templates(session, inventory: Inventory) -> list[TemplateRow]:
    """Every inventory template with its state on each enabled hypervisor."""
    hosts = [h.name for h in inventory.hypervisors if h.enabled]
    return [TemplateRow(t, tuple(_host_row(session, h, t) for h in hosts)) for t in inventory.templates]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a local file (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(chunk), b""):
            h.update(b)
    return h.hexdigest()


def check_template_name(inventory: Inventory, name: str) -> str:
    """A new template name: lowercase letters, digits, '.', '_', '-'; not taken."""
    if not name or not NAME_RE.match(name):
        raise ValidationError("name", "lowercase letters, digits, '.', '_' and '-' (1-63), starting with a letter or digit")
    if any(t.name == name for t in inventory.templates):
        raise AlreadyExists("name", f"a template named {name!r} exists already")
    return name


def _check_file(path, field: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValidationError(field, f"{p} is not a readable file")
    return p


def add_template(session, inventory: Inventory, name: str, image: str | os.PathLike | None = None, *,
                 sha256: str | None = None, arch: str = "x86_64", os_name: str = "linux",
                 default_user: str = "debian", pool: str = "virtdeck",
                 kernel: str | os.PathLike | None = None, initrd: str | os.PathLike | None = None,
                 cmdline: str | None = None, progress: UploadProgress | None = None,
                 save: bool = True, url: str | None = None, sha256_url: str | None = None,
                 boot: str | None = None, secure_boot: bool = False,
                 limit_rate: str | None = None) -> tuple[Inventory, TemplateConfig]:
    """Upload (or have each host download) and record template ``name``; returns (the new
    inventory, the template).

    ``image``: a local file, or ``url``: an http(s) URL every enabled hypervisor downloads itself
    (exactly one of them). ``sha256``: the pinned sum (None for a local file: computed from it,
    which still proves the transfer on each host; a URL needs ``sha256`` or ``sha256_url``, a
    SHA256SUMS file whose line for the URL's file name is used). ``boot``: one of BOOT_MODES, None
    to read it from the image (GPT/MBR, ESP, BIOS boot partition; a kernel file means 'kernel').
    ``kernel``/``initrd``/``cmdline``: local files and the kernel command line for
    direct-kernel-boot templates. ``limit_rate``: curl's --limit-rate for URL downloads.
    ``save``: write the inventory file. Raises ValidationError (bad input, a local file that does
    not match ``sha256``, a boot mode the image cannot do: nothing uploaded), HostError (upload,
    download or checksum mismatch on a host: everything this call made removed on every host).
    """
    def body(run: verb_frame.VerbRun) -> tuple[Inventory, TemplateConfig]:
        if url is not None:
            return _add_url(run, session, inventory, name, url, sha256=sha256, sha256_url=sha256_url, arch=arch,
                            os_name=os_name, default_user=default_user, pool=pool, boot=boot,
                            secure_boot=secure_boot, progress=progress, save=save, limit_rate=limit_rate)
        if image is None:
            raise ValidationError("image", "give a local image file or --url URL")
        return _add(run, session, inventory, name, image, sha256=sha256, arch=arch, os_name=os_name,
                    default_user=default_user, pool=pool, kernel=kernel, initrd=initrd, cmdline=cmdline,
                    progress=progress, save=save, boot=boot, secure_boot=secure_boot)
    return verb_frame.run("template.add", f"template {name}", body)


def resolve_boot(layout: image_probe.DiskLayout, arch: str, boot: str | None, kernel: bool,
                 secure_boot: bool = False) -> str:
    """The template's boot mode: ``boot`` when given (checked against what ``layout`` shows),
    'kernel' with a kernel file, else :func:`image_probe.suggest_boot`. Raises ValidationError
    naming 'boot' when the image cannot boot that way or shows no way at all."""
    if boot is not None and boot not in BOOT_MODES:
        raise ValidationError("boot", f"one of {', '.join(BOOT_MODES)}")
    if kernel and boot not in (None, "kernel"):
        raise ValidationError("boot", f"--kernel/--initrd/--cmdline are for boot 'kernel', not {boot!r}")
    # An image with no table and no filesystem (blank, or a layout not read here) gives no hint:
    # an explicit --boot is trusted, else it is 'bios' as disk templates always were.
    opaque = layout.table == "none" and not layout.filesystem
    chosen = "kernel" if kernel else (boot or image_probe.suggest_boot(layout, arch)
                                      or ("bios" if opaque and arch == "x86_64" else None))
    if chosen is None:
        raise ValidationError("boot", f"the image shows no bootloader ({layout.describe()}); give --boot "
                                      "bios|uefi, or --kernel (direct kernel boot)")
    if chosen == "kernel" and not kernel:
        raise ValidationError("boot", "boot 'kernel' needs --kernel (and usually --initrd and --cmdline)")
    if chosen in ("bios", "uefi") and not opaque and chosen not in layout.boot_modes():
        what = "an EFI system partition" if chosen == "uefi" else "BIOS boot code (MBR code or a BIOS boot partition)"
        raise ValidationError("boot", f"boot {chosen!r} needs {what}; the image has {layout.describe()}")
    if chosen == "uefi" and layout.efi_arches and arch not in layout.efi_arches:
        raise ValidationError("arch", f"the image's EFI system partition boots {'/'.join(layout.efi_arches)} "
                                      f"(EFI/BOOT), not {arch}; give --arch {layout.efi_arches[0]}")
    if arch == "aarch64" and chosen == "bios":
        raise ValidationError("boot", "aarch64 boots by 'uefi' or 'kernel', there is no BIOS")
    if secure_boot and chosen != "uefi":
        raise ValidationError("secure-boot", "secure boot needs boot 'uefi'")
    return chosen


def parse_sha256sums(text: str, filename: str) -> str | None:
    """The sum for ``filename`` in a SHA256SUMS text (GNU ``HEX  NAME`` / ``HEX *NAME`` or BSD
    ``SHA256 (NAME) = HEX`` lines), lower-case; None when it has no such line."""
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"^([0-9a-fA-F]{64})\s+\*?(.+)$", line)
        if m and m.group(2).strip().lstrip("./") == filename:
            return m.group(1).lower()
        m = re.match(r"^SHA256 \((.+)\) = ([0-9a-fA-F]{64})$", line)
        if m and m.group(1).lstrip("./") == filename:
            return m.group(2).lower()
    return None


def _add_url(run: verb_frame.VerbRun, session, inventory: Inventory, name: str, url: str, *, sha256, sha256_url,
             arch, os_name, default_user, pool, boot, secure_boot, progress, save,
             limit_rate) -> tuple[Inventory, TemplateConfig]:
    """The body of :func:`add_template` for ``url``: every enabled hypervisor downloads in parallel."""
    import concurrent.futures
    import threading
    from urllib.parse import urlparse
    check_template_name(inventory, name)
    u = urlparse(url)
    if u.scheme not in ("http", "https", "ftp") or not u.netloc:
        raise ValidationError("url", f"an http://, https:// or ftp:// URL, not {url!r}")
    if (sha256 is None) == (sha256_url is None):
        raise ValidationError("sha256", "a URL is pinned by --sha256 HEX or --sha256-url URL (one of them)")
    if sha256 is not None and not invmod.SHA256_RE.match(sha256.lower()):
        raise ValidationError("sha256", "64 hex digits (the image's sha256)")
    if arch not in ARCHES:
        raise ValidationError("arch", f"one of {', '.join(ARCHES)}")
    if boot is not None and boot not in BOOT_MODES:
        raise ValidationError("boot", f"one of {', '.join(BOOT_MODES)}")
    if boot == "kernel":
        raise ValidationError("boot", "a URL template boots from its disk ('bios' or 'uefi'); "
                                      "direct kernel boot needs local --kernel files")
    cloudinit.validate_username(default_user, "default-user")
    hosts = [h.name for h in inventory.hypervisors if h.enabled]
    if not hosts:
        raise ValidationError("hosts", "no enabled hypervisor in the inventory")
    if sha256 is None:
        fname = u.path.rsplit("/", 1)[-1]
        digest = parse_sha256sums(download.fetch_text(session, hosts[0], sha256_url), fname)
        if digest is None:
            raise ValidationError("sha256-url", f"{sha256_url} has no line for {fname}")
    else:
        digest = sha256.lower()
    vol = f"{name}.qcow2"
    run.note(hosts=hosts, sha256=digest, url=url)
    made: list[str] = []
    layouts: dict[str, image_probe.DiskLayout] = {}  # hosts[0]'s probe of its download
    lock = threading.Lock()
    cancel = threading.Event()

    def one(host: str) -> None:
        conn = session.libvirt(host)
        existing = storage.find_volume(conn, host, pool, vol)
        if existing is not None:
            got = storage.sha256_on_host(session, host, storage.volume_info(existing).path)
            if got != digest:
                raise HostError(f"{host}: volume {pool}/{vol} exists with sha256 {got}, not {digest}; delete it first")
            return
        cb = (lambda s, t: progress(host, vol, s, t)) if progress else None

        def inspect(path: str) -> None:  # the verified file, which a non-root operator can read
            layouts[host] = image_probe.probe_on_host(session, host, path)
        download.download_volume(session, conn, host, pool, vol, url, digest, progress=cb,
                                 limit_rate=limit_rate, cancel=cancel,
                                 inspect=inspect if host == hosts[0] else None)
        with lock:
            made.append(host)

    errors: list[BaseException] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts)) as ex:
            futs = [ex.submit(one, h) for h in hosts]
            try:
                for f in futs:
                    try:
                        f.result()
                    except VirtdeckError as exc:
                        errors.append(exc)
            except BaseException:
                cancel.set()  # the hosts' curls stop; their partials stay for a resume
                raise
        if errors:
            raise HostError("; ".join(str(e) for e in errors) + "; nothing was recorded")
        layout = layouts.get(hosts[0]) or image_probe.probe_on_host(session, hosts[0], storage.volume_info(
            storage.find_volume(session.libvirt(hosts[0]), hosts[0], pool, vol)).path)
        chosen = resolve_boot(layout, arch, boot, False, secure_boot)
    except BaseException as exc:
        for host in made:
            try:
                storage.delete_volume(session.libvirt(host), host, pool, vol, missing_ok=True)
            except VirtdeckError:
                pass
        run.failure = f"failed: {exc}"
        raise
    tpl = TemplateConfig(name=name, volume=vol, sha256=digest, pool=pool, arch=arch, os=os_name,
                         default_user=default_user, boot=chosen, secure_boot=secure_boot)
    new_inv = replace(inventory, templates=inventory.templates + (tpl,))
    if save:
        invmod.save(new_inv)
    run.note(downloaded=made, boot=chosen, layout=layout.describe())
    return new_inv, tpl


def _add(run: verb_frame.VerbRun, session, inventory: Inventory, name: str, image, *, sha256, arch, os_name,
         default_user, pool, kernel, initrd, cmdline, progress, save, boot=None,
         secure_boot=False) -> tuple[Inventory, TemplateConfig]:
    """The body of :func:`add_template` (inside the verb frame)."""
    check_template_name(inventory, name)
    img = _check_file(image, "image")
    check_image(img)  # a 0-byte or random-bytes file is refused before anything is uploaded
    if sha256 is not None and not invmod.SHA256_RE.match(sha256.lower()):
        raise ValidationError("sha256", "64 hex digits (the image's sha256)")
    if arch not in ARCHES:
        raise ValidationError("arch", f"one of {', '.join(ARCHES)}")
    cloudinit.validate_username(default_user, "default-user")
    if (initrd or cmdline) and not kernel:
        raise ValidationError("kernel", "initrd and cmdline need a kernel (direct kernel boot)")
    files: list[tuple[str, Path, str]] = []  # (volume name, local path, sha256)
    local = sha256_file(img)
    if sha256 is not None and local != sha256.lower():
        raise ValidationError("sha256", f"{img} has sha256 {local}, not {sha256.lower()}; nothing was uploaded")
    chosen = resolve_boot(image_probe.probe_local(img), arch, boot, bool(kernel or initrd or cmdline), secure_boot)
    files.append((f"{name}.qcow2", img, local))
    if kernel:
        k = _check_file(kernel, "kernel")
        files.append((f"{name}.vmlinuz", k, sha256_file(k)))
    if initrd:
        r = _check_file(initrd, "initrd")
        files.append((f"{name}.initrd", r, sha256_file(r)))
    hosts = [h.name for h in inventory.hypervisors if h.enabled]
    if not hosts:
        raise ValidationError("hosts", "no enabled hypervisor in the inventory")

    uploaded: list[tuple[str, str]] = []  # (host, volume) made by this call
    run.note(hosts=hosts, sha256=local)
    try:
        for host in hosts:
            conn = session.libvirt(host)
            for vol, path, digest in files:
                existing = storage.find_volume(conn, host, pool, vol)
                if existing is not None:
                    got = storage.sha256_on_host(session, host, storage.volume_info(existing).path)
                    if got != digest:
                        raise HostError(f"{host}: volume {pool}/{vol} exists with sha256 {got}, not {digest}; "
                                        f"delete it first")
                    if progress:
                        size = path.stat().st_size
                        progress(host, vol, size, size)
                    continue
                cb = (lambda s, t, h=host, v=vol: progress(h, v, s, t)) if progress else None
                storage.upload_template(session, host, pool, vol, path, digest, progress=cb)
                uploaded.append((host, vol))
    except BaseException as exc:
        for host, vol in reversed(uploaded):
            try:
                storage.delete_volume(session.libvirt(host), host, pool, vol)
            except VirtdeckError:
                pass
        run.failure = f"failed: {exc}"  # audited whatever it was (an interrupt too)
        raise
    tpl = TemplateConfig(name=name, volume=f"{name}.qcow2", sha256=local, pool=pool, arch=arch,
                         os=os_name, default_user=default_user,
                         kernel=f"{name}.vmlinuz" if kernel else None,
                         initrd=f"{name}.initrd" if initrd else None,
                         cmdline=cmdline if kernel else None, boot=chosen, secure_boot=secure_boot)
    new_inv = replace(inventory, templates=inventory.templates + (tpl,))
    if save:
        invmod.save(new_inv)
    run.note(uploaded=[f"{h}:{v}" for h, v in uploaded])
    return new_inv, tpl


def delete_template(session, inventory: Inventory, name: str, *, save: bool = True) -> Inventory:
    """Delete template ``name``'s volumes from every hypervisor and drop it from the inventory.

    Refused (ValidationError) while any volume on any host uses it as backing file, naming them,
    and (HostError) while an enabled hypervisor cannot be asked. Returns the new inventory.
    """
    def body(run: verb_frame.VerbRun) -> Inventory:
        try:
            tpl = inventory.template(name)
        except VirtdeckError as exc:
            raise ValidationError("name", str(exc)) from None
        rows = [_host_row(session, h.name, tpl) for h in inventory.hypervisors if h.enabled]
        down = [r for r in rows if r.error]
        if down:
            msg = "; ".join(f"{r.error}" for r in down)
            run.failure = f"failed: {msg}"
            raise HostError(f"cannot delete template {name}: cannot check every host for users ({msg})")
        users = [f"{r.host}:{u}" for r in rows for u in r.users]
        if users:
            run.failure = "failed: in use"
            run.note(users=users)
            raise InUse("name", f"template {name} is the backing file of {', '.join(users)}; "
                                f"delete those VMs first")
        left = [f"{r.host}:{u}" for r in rows for u in r.leftovers]
        if left:
            run.failure = "failed: volumes backed by it"
            run.note(leftovers=left)
            raise InUse("name", f"template {name} is the backing file of {', '.join(left)}, "
                                "which no VM uses: `virtdeck check --fix` removes those a "
                                "virtdeck create left behind; delete the others yourself")
        removed = []
        for r in rows:
            conn = session.libvirt(r.host)
            for vol in (tpl.volume, tpl.kernel, tpl.initrd):
                if vol and storage.delete_volume(conn, r.host, tpl.pool, vol):
                    removed.append(f"{r.host}:{vol}")
        new_inv = replace(inventory, templates=tuple(t for t in inventory.templates if t.name != name))
        if save:
            invmod.save(new_inv)
        run.outcome = "ok" if removed else "noop"
        run.note(removed=removed)
        return new_inv
    return verb_frame.run("template.delete", f"template {name}", body)
