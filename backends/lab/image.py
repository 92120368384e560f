"""The lab's guest template: real Debian 12 + real cloud-init, built offline with mmdebstrap.

Output (in ``image_cache_dir()/debian12/``):

- ``debian12.qcow2``  ext4 root filesystem, no partition table (root=/dev/vda), zstd-compressed
  qcow2, 2 GiB virtual; cloud-init's resizefs grows / to a per-VM overlay's size.
- ``debian12.vmlinuz`` / ``debian12.initrd``  copied out of the rootfs' /boot for direct kernel
  boot (libvirt ``<kernel>``/``<initrd>``, cmdline :data:`CMDLINE`).
- ``manifest.json``  ``{"recipe": <sha256 of RECIPE>, "sha256": <qcow2 sha256>, "files": {...},
  "build_seconds": float}``.

The build is skipped when the manifest's recipe hash equals the current recipe's and every file
is there with its recorded size (``ensure_template``). Facts behind the recipe (LAB-NOTES.md):
merged-usr hook avoids perl; the initramfs must load virtio/ata/sr drivers early because
cloud-init's ds-identify runs as a systemd generator; the cloud kernel has no AHCI, so the seed
goes on an IDE cdrom (machine 'pc'); ``locale: C.UTF-8`` because en_US.UTF-8 is not generated.
Cold build ~1 min on 2 cores (dpkg dominates, not the download).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .state import LabError, image_cache_dir, run

NAME = "debian12"
CMDLINE = "root=/dev/vda ro console=ttyS0"
DISK_SIZE = "2G"
MIRROR = os.environ.get("VIRTDECK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("VIRTDECK_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")

PACKAGES = [
    "usr-is-merged", "systemd-sysv", "udev", "cloud-init", "linux-image-cloud-amd64",
    "initramfs-tools", "zstd", "e2fsprogs", "ifupdown", "isc-dhcp-client", "iproute2",
    "openssh-server", "sudo", "ca-certificates", "netbase",
    "dbus", "acpid",  # systemd-logind needs the bus to act on the ACPI power button (vm shutdown/reboot)
]

# Documentation and translations are dead weight in a template (~218 MB instead of ~300 MB).
DPKG_OPTS = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/i18n/*",
]

# Runs after the essential packages, before the kernel: the initramfs is then built once, small,
# with the drivers that make the root disk and the seed cdrom visible early. The disk images
# (image_disk.py) use the same hooks with their own modules and no fixed hostname; a hook's text
# is part of each recipe's hash.
_ESSENTIAL = r"""
set -e
mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"
printf 'MODULES=list\nCOMPRESS=zstd\n' > "$1/etc/initramfs-tools/conf.d/virtdeck.conf"
cat > "$1/etc/initramfs-tools/hooks/virtdeck" <<'EOF'
#!/bin/sh
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
for m in @MODULES@; do
  force_load "$m" || true
done
EOF
chmod 755 "$1/etc/initramfs-tools/hooks/virtdeck"
"""

_CUSTOMIZE = r"""
set -e
echo 'LANG=C.UTF-8' > "$1/etc/default/locale"
echo 'LABEL=rootfs / ext4 defaults,errors=remount-ro 0 1' > "$1/etc/fstab"
mkdir -p "$1/etc/cloud/cloud.cfg.d"
cat > "$1/etc/cloud/cloud.cfg.d/90-virtdeck.cfg" <<'EOF'
datasource_list: [NoCloud, None]
locale: C.UTF-8
EOF
@HOSTNAME@rm -f "$1"/etc/ssh/ssh_host_*
: > "$1/etc/machine-id"
rm -f "$1/var/lib/dbus/machine-id"
rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb
rm -f "$1"/var/log/*.log "$1"/var/log/apt/*
"""


def essential_hook(modules: str) -> str:
    """mmdebstrap --essential-hook text: a small zstd initramfs with ``modules`` (kernel module
    names, space-separated) forced in."""
    return _ESSENTIAL.replace("@MODULES@", modules)


def customize_hook(hostname: str | None) -> str:
    """mmdebstrap --customize-hook text: locale, fstab by label, cloud-init's NoCloud datasource,
    ``/etc/hostname`` when ``hostname`` is given, no host keys, machine-id, apt lists or logs."""
    line = f'echo {hostname} > "$1/etc/hostname"\n' if hostname else ""
    return _CUSTOMIZE.replace("@HOSTNAME@", line)


ESSENTIAL_HOOK = essential_hook(
    "virtio_pci virtio_blk virtio_scsi virtio_net sd_mod sr_mod ata_piix ata_generic ext4")
CUSTOMIZE_HOOK = customize_hook("debian12")

RECIPE_VERSION = 1


def recipe() -> dict:
    """Everything that decides the image's content; its hash keys the cache."""
    return {
        "version": RECIPE_VERSION, "suite": "bookworm", "variant": "apt", "arch": "amd64",
        "mirror": MIRROR, "security": SECURITY_MIRROR, "packages": PACKAGES,
        "dpkg": DPKG_OPTS, "essential_hook": ESSENTIAL_HOOK, "customize_hook": CUSTOMIZE_HOOK,
        "disk_size": DISK_SIZE, "format": "qcow2+zstd",
    }


def recipe_hash() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Template:
    """A built template on disk. Paths are in the image cache; sha256 is of the qcow2 bytes."""

    name: str
    qcow2: Path
    kernel: Path
    initrd: Path
    sha256: str
    recipe: str
    build_seconds: float
    built: bool  # True when this call built it, False when the cache was reused

    @property
    def files(self) -> dict[str, Path]:
        """Volume name -> path, as installed in each hypervisor's pool."""
        return {f"{self.name}.qcow2": self.qcow2, f"{self.name}.vmlinuz": self.kernel,
                f"{self.name}.initrd": self.initrd}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def cached_template(cache: Path | None = None) -> Template | None:
    """The cached template if it matches the current recipe and its files are intact, else None."""
    out = (cache or image_cache_dir()) / NAME
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("recipe") != recipe_hash():
        return None
    for fname, size in manifest.get("files", {}).items():
        p = out / fname
        if not p.is_file() or p.stat().st_size != size:
            return None
    return Template(NAME, out / f"{NAME}.qcow2", out / f"{NAME}.vmlinuz", out / f"{NAME}.initrd",
                    manifest["sha256"], manifest["recipe"], manifest.get("build_seconds", 0.0), False)


def build_template(cache: Path | None = None, log=print) -> Template:
    """Build the template from scratch into the cache (atomic rename at the end).

    Raises LabError when mmdebstrap, mkfs.ext4 or qemu-img is missing or fails (the message
    carries the tool's last error line; the full log is in ``<cache>/build.log``).
    """
    cache = cache or image_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    for tool in ("mmdebstrap", "mkfs.ext4", "qemu-img"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is not installed; run `bash .ci/setup` as root")
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    try:
        rootfs = work / "rootfs"
        argv = [
            "mmdebstrap", "--variant=apt", "--mode=root", "--arch=amd64",
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
            "--include=" + ",".join(PACKAGES),
            *[f"--dpkgopt={o}" for o in DPKG_OPTS],
            "--essential-hook=" + ESSENTIAL_HOOK,
            "--customize-hook=" + CUSTOMIZE_HOOK,
            "--aptopt=Acquire::Retries \"3\"",
            "bookworm", str(rootfs),
            f"deb {MIRROR} bookworm main",
            f"deb {MIRROR} bookworm-updates main",
            f"deb {SECURITY_MIRROR} bookworm-security main",
        ]
        log(f"image: mmdebstrap bookworm ({len(PACKAGES)} packages) …")
        proc = run(argv, check=False, timeout=1800)
        (cache / "build.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            lines = (proc.stderr + proc.stdout).strip().splitlines()
            errs = [x for x in lines if x.startswith("E: ")] or lines[-1:] or ["?"]
            hint = (" — is the Debian mirror reachable? (VIRTDECK_DEBIAN_MIRROR)"
                    if "Failed to fetch" in errs[0] else "")
            raise LabError(f"template build (mmdebstrap) failed: {errs[0]}{hint} (log: {cache / 'build.log'})")
        boot = rootfs / "boot"
        kernels = sorted(boot.glob("vmlinuz-*"))
        initrds = sorted(boot.glob("initrd.img-*"))
        if not kernels or not initrds:
            raise LabError(f"template build produced no kernel/initrd in /boot (log: {cache / 'build.log'})")
        out = work / NAME
        out.mkdir()
        shutil.copyfile(kernels[-1], out / f"{NAME}.vmlinuz")
        shutil.copyfile(initrds[-1], out / f"{NAME}.initrd")
        raw = work / "root.raw"
        log("image: mkfs.ext4 + qemu-img convert …")
        run(["truncate", "-s", DISK_SIZE, str(raw)])
        run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-E", "root_owner=0:0", "-d", str(rootfs), str(raw)],
            what="mkfs.ext4", timeout=600)
        run(["qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd",
             str(raw), str(out / f"{NAME}.qcow2")], what="qemu-img convert", timeout=600)
        digest = sha256_file(out / f"{NAME}.qcow2")
        files = {p.name: p.stat().st_size for p in out.iterdir()}
        seconds = round(time.monotonic() - t0, 1)
        (out / "manifest.json").write_text(json.dumps(
            {"recipe": recipe_hash(), "sha256": digest, "files": files, "build_seconds": seconds,
             "recipe_body": recipe()}, indent=2) + "\n")
        final = cache / NAME
        if final.exists():
            old = cache / f".old-{NAME}-{os.getpid()}"
            final.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        out.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    t = cached_template(cache)
    assert t is not None
    return Template(t.name, t.qcow2, t.kernel, t.initrd, t.sha256, t.recipe, t.build_seconds, True)


def ensure_template(cache: Path | None = None, log=print, force: bool = False) -> Template:
    """The cached template, built first when missing, damaged or built from an older recipe.

    Builds are serialized by an flock on ``<cache>/.lock``: a second caller waits and then
    finds the first one's result.
    """
    import fcntl
    if not force:
        t = cached_template(cache)
        if t is not None:
            return t
    cache = cache or image_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("image: another build is running; waiting for it …")
            fcntl.flock(fd, fcntl.LOCK_EX)
            force = False
        if not force:
            t = cached_template(cache)
            if t is not None:
                return t
        return build_template(cache, log=log)
    finally:
        os.close(fd)


if __name__ == "__main__":  # python -m virtdeck.backends.lab.image [--force]
    import sys
    tpl = ensure_template(force="--force" in sys.argv)
    print(json.dumps({"sha256": tpl.sha256, "built": tpl.built, "seconds": tpl.build_seconds,
                      "qcow2": str(tpl.qcow2)}))
